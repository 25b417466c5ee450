package clerkfake

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// notImplemented are users operations of the spec that the fake leaves out
// on purpose (billing, trusted devices, identifier replacement, compromised
// passwords); they answer 404 like unknown routes.
var notImplemented = []string{
	"GET /users/{user_id}/billing/subscription",
	"GET /users/{user_id}/billing/credits",
	"POST /users/{user_id}/billing/credits",
	"GET /users/{user_id}/trusted_devices",
	"DELETE /users/{user_id}/trusted_devices/{trusted_device_id}",
	"PUT /users/{user_id}/email_address",
	"PUT /users/{user_id}/phone_number",
	"POST /users/{user_id}/password/set_compromised",
	"POST /users/{user_id}/password/unset_compromised",
}

func TestSpecCoverage(t *testing.T) {
	doc := spec(t)
	implemented := map[string]bool{}
	for _, r := range routes {
		specP := strings.TrimPrefix(r.template, "/v1")
		item := doc.Paths.Value(specP)
		if item == nil || item.GetOperation(r.method) == nil {
			t.Errorf("fake route %s is not an operation of the spec", r.name)
		}
		implemented[r.method+" "+specP] = true
	}
	for p, item := range doc.Paths.Map() {
		if !strings.HasPrefix(p, "/users") {
			continue
		}
		for method := range item.Operations() {
			op := method + " " + p
			if !implemented[op] && !slices.Contains(notImplemented, op) {
				t.Errorf("spec users operation %s is neither implemented nor listed as out of scope", op)
			}
		}
	}
	// CreateUserTOTP was removed from the API (openapi-specs d5a2a89, 2025-01-31).
	if item := doc.Paths.Value("/users/{user_id}/totp"); item == nil || item.Post != nil || item.Delete == nil {
		t.Errorf("expected the spec to have DELETE but no POST /users/{user_id}/totp")
	}
}

func TestRemovedCreateTOTPIsUnknownRoute(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.createEmail("totp@example.com")
	for _, body := range []any{nil, "null", map[string]any{}} {
		e := f.do("POST", "/users/"+id+"/totp", body).clerkErr(t, http.StatusNotFound, "resource_not_found")
		if str(e, "message") != "not found" {
			t.Errorf("message %q", str(e, "message"))
		}
	}
	if got := f.srv.Stats().CountStatus("POST /v1/users/{user_id}/totp", 404); got != 3 {
		t.Errorf("stats for removed route: %d, want 3", got)
	}
	// Unknown paths and methods behave the same way.
	f.do("GET", "/jwks_nope", nil).clerkErr(t, http.StatusNotFound, "resource_not_found")
	f.do("PUT", "/users/"+id, map[string]any{}).clerkErr(t, http.StatusNotFound, "resource_not_found")
	f.do("GET", f.ts.URL+"/v2/users", nil).clerkErr(t, http.StatusNotFound, "resource_not_found")
	if got := f.srv.Stats().Count("GET /v1/*"); got != 1 {
		t.Errorf("unmatched path counted %d times under GET /v1/*, want 1", got)
	}
}

// TestSpecValidatorIsStrict guards the spec check itself: a User lacking a
// required field, or with a wrong type, must be rejected.
func TestSpecValidatorIsStrict(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.createEmail("strict@example.com")
	good, _ := f.srv.User(id)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", f.base+"/users/"+id, nil)
	hdr := http.Header{"Content-Type": {"application/json"}, "Clerk-Trace-Id": {"t"}}
	if err := validateAgainstSpec(t, req, 200, hdr, good); err != nil {
		t.Fatalf("valid user rejected: %v", err)
	}
	bad := []string{
		strings.Replace(string(good), `"banned":false,`, ``, 1),             // required field missing
		strings.Replace(string(good), `"banned":false`, `"banned":"no"`, 1), // wrong type
		strings.Replace(string(good), `"object":"user"`, `"object":"usr"`, 1),
		strings.Replace(string(good), `"has_image":false`, `"has_image":false,"extra":1`, 1), // additionalProperties: false
	}
	for i, b := range bad {
		if err := validateAgainstSpec(t, req, 200, hdr, []byte(b)); err == nil {
			t.Errorf("case %d: invalid user accepted", i)
		}
	}
	if err := validateAgainstSpec(t, req, 404, hdr, []byte(`{"errors":[{"message":"x"}]}`)); err == nil {
		t.Errorf("ClerkErrors without code/long_message accepted")
	}
}
