package clerk

import "testing"

func TestOperation(t *testing.T) {
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/users", "GET /users"},
		{"GET", "/users/count", "GET /users/count"},
		{"GET", "/users/user_123", "GET /users/{user_id}"},
		{"POST", "/users/user_123/ban", "POST /users/{user_id}/ban"},
		{"PATCH", "/users/user_9/metadata", "PATCH /users/{user_id}/metadata"},
		{"DELETE", "/users/user_9/mfa", "DELETE /users/{user_id}/mfa"},
	} {
		if got := Operation(tc.method, tc.path); got != tc.want {
			t.Errorf("Operation(%s, %s) = %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}
