package clerk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// fakeEnv is a fake Clerk API over httptest and a client for it.
type fakeEnv struct {
	fake *clerkfake.Server
	srv  *httptest.Server
	key  string
	c    *clerk.Client
}

// newFake starts the fake with a unique key (set into opts) and returns a client without
// client-side rate limiting.
func newFake(t *testing.T, opts clerkfake.Options, mods ...func(*clerk.Options)) *fakeEnv {
	t.Helper()
	key := uniqueKey(t)
	opts.SecretKey = key
	fake := clerkfake.New(opts)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	mods = append([]func(*clerk.Options){func(o *clerk.Options) { o.SecretKey = key }}, mods...)
	return &fakeEnv{fake: fake, srv: srv, key: key, c: newClient(t, srv.URL+"/v1", mods...)}
}

// fakeUser decodes the fake's stored JSON of id, or nil when it does not exist.
func (e *fakeEnv) fakeUser(t *testing.T, id string) map[string]any {
	t.Helper()
	raw, ok := e.fake.User(id)
	if !ok {
		return nil
	}
	// Numbers as json.Number, as the client decodes them.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// mustCreate creates a user through the client.
func (e *fakeEnv) mustCreate(t *testing.T, p clerk.CreateUserParams) *clerk.User {
	t.Helper()
	p.SkipPasswordRequirement = true
	u, err := e.c.CreateUser(t.Context(), p)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u
}

func userIDs(users []clerk.User) []string {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	return ids
}

func TestFakeCreateAndGet(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	ctx := t.Context()
	created, err := env.c.CreateUser(ctx, clerk.CreateUserParams{
		ExternalID:              new("emp-1042"),
		EmailAddresses:          []string{"alice@example.com", "alice2@example.com"},
		Username:                new("alice"),
		FirstName:               new("Alice"),
		LastName:                new("Liddell"),
		PublicMetadata:          map[string]any{"team": "support"},
		PrivateMetadata:         map[string]any{"level": 3},
		SkipPasswordRequirement: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.ID, "user_") || !clerk.ValidID(created.ID) {
		t.Fatalf("created ID %q", created.ID)
	}
	got, err := env.c.GetUser(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("GetUser differs from CreateUser (-create +get):\n%s", diff)
	}
	want := &clerk.User{
		ID: created.ID, Object: "user",
		ExternalID: new("emp-1042"), Username: new("alice"), FirstName: new("Alice"), LastName: new("Liddell"),
		PrimaryEmailAddressID: created.PrimaryEmailAddressID,
		PublicMetadata:        map[string]any{"team": "support"},
		PrivateMetadata:       map[string]any{"level": json.Number("3")},
		UnsafeMetadata:        map[string]any{},
	}
	ignore := cmpopts.IgnoreFields(clerk.User{}, "EmailAddresses", "CreatedAt", "UpdatedAt")
	if diff := cmp.Diff(want, got, ignore); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
	if got.PrimaryEmailAddress() != "alice@example.com" {
		t.Errorf("PrimaryEmailAddress() = %q, want the first address", got.PrimaryEmailAddress())
	}
	if len(got.EmailAddresses) != 2 || got.EmailAddresses[0].Verification == nil || got.EmailAddresses[0].Verification.Status != "verified" {
		t.Errorf("EmailAddresses = %+v, want two verified addresses", got.EmailAddresses)
	}
	if got.CreatedAt == 0 || got.UpdatedAt < got.CreatedAt {
		t.Errorf("timestamps created=%d updated=%d", got.CreatedAt, got.UpdatedAt)
	}
}

func TestFakeListAndCount(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	ctx := t.Context()
	ids := make([]string, 0, 3) // in creation order: alice, bob, carol
	for _, name := range []string{"alice", "bobby", "carol"} {
		u := env.mustCreate(t, clerk.CreateUserParams{
			ExternalID:     new("ext-" + name),
			EmailAddresses: []string{name + "@example.com"},
			Username:       new(name),
		})
		ids = append(ids, u.ID)
	}
	alice, bob, carol := ids[0], ids[1], ids[2]
	tests := []struct {
		name    string
		p       clerk.ListUsersParams
		want    []string
		ordered bool
	}{
		{"no filter: newest first", clerk.ListUsersParams{}, []string{carol, bob, alice}, true},
		{"user IDs", clerk.ListUsersParams{UserIDs: []string{alice, bob, "user_unknown"}}, []string{alice, bob}, false},
		{"external IDs", clerk.ListUsersParams{ExternalIDs: []string{"ext-carol"}}, []string{carol}, false},
		{"email addresses", clerk.ListUsersParams{EmailAddresses: []string{"bobby@example.com", "nobody@example.com"}}, []string{bob}, false},
		{"usernames", clerk.ListUsersParams{Usernames: []string{"carol", "alice"}}, []string{alice, carol}, false},
		{"filters combine as AND", clerk.ListUsersParams{UserIDs: []string{alice, bob}, Usernames: []string{"bobby", "carol"}}, []string{bob}, false},
		{"no match", clerk.ListUsersParams{ExternalIDs: []string{"ext-nobody"}}, []string{}, false},
		{"limit and order", clerk.ListUsersParams{Limit: 2, OrderBy: "+created_at"}, []string{alice, bob}, true},
		{"offset", clerk.ListUsersParams{Limit: 2, Offset: 2, OrderBy: "+created_at"}, []string{carol}, true},
		{"order by username desc", clerk.ListUsersParams{OrderBy: "-username"}, []string{carol, bob, alice}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users, err := env.c.ListUsers(ctx, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			got := userIDs(users)
			var opts []cmp.Option
			if !tt.ordered {
				opts = append(opts, cmpopts.SortSlices(func(a, b string) bool { return a < b }))
			}
			if diff := cmp.Diff(tt.want, got, opts...); diff != "" {
				t.Errorf("ListUsers (-want +got):\n%s", diff)
			}
			// CountUsers ignores paging: it counts every match of the filters.
			all := tt.p
			all.Limit, all.Offset, all.OrderBy = 0, 0, ""
			matching, err := env.c.ListUsers(ctx, all)
			if err != nil {
				t.Fatal(err)
			}
			n, err := env.c.CountUsers(ctx, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(matching)) {
				t.Errorf("CountUsers = %d, want %d", n, len(matching))
			}
		})
	}
}

func TestFakeUpdateUser(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	ctx := t.Context()
	u := env.mustCreate(t, clerk.CreateUserParams{
		ExternalID: new("emp-1"), EmailAddresses: []string{"u@example.com"}, Username: new("user1"),
		FirstName: new("First"), LastName: new("Last"),
	})
	tests := []struct {
		name  string
		p     clerk.UpdateUserParams
		check func(t *testing.T, got *clerk.User)
	}{
		{"set values; absent fields untouched", clerk.UpdateUserParams{FirstName: clerk.Set("Alice"), ExternalID: clerk.Set("emp-2")},
			func(t *testing.T, got *clerk.User) {
				want := struct{ Ext, User, First, Last *string }{new("emp-2"), new("user1"), new("Alice"), new("Last")}
				if diff := cmp.Diff(want, struct{ Ext, User, First, Last *string }{got.ExternalID, got.Username, got.FirstName, got.LastName}); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			}},
		{"null clears", clerk.UpdateUserParams{LastName: clerk.Null[string](), ExternalID: clerk.Null[string](), Username: clerk.Null[string]()},
			func(t *testing.T, got *clerk.User) {
				want := struct{ Ext, User, First, Last *string }{nil, nil, new("Alice"), nil}
				if diff := cmp.Diff(want, struct{ Ext, User, First, Last *string }{got.ExternalID, got.Username, got.FirstName, got.LastName}); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				stored := env.fakeUser(t, got.ID)
				for _, k := range []string{"external_id", "username", "last_name"} {
					if v, ok := stored[k]; !ok || v != nil {
						t.Errorf("stored %s = %v (present %v), want null", k, v, ok)
					}
				}
			}},
		{"empty update changes nothing", clerk.UpdateUserParams{},
			func(t *testing.T, got *clerk.User) {
				if got.FirstName == nil || *got.FirstName != "Alice" {
					t.Errorf("FirstName = %v", got.FirstName)
				}
			}},
		{"TOTP secret enables TOTP", clerk.UpdateUserParams{TOTPSecret: clerk.Set("JBSWY3DPEHPK3PXP")},
			func(t *testing.T, got *clerk.User) {
				if !got.TOTPEnabled || !got.TwoFactorEnabled {
					t.Errorf("TOTPEnabled=%v TwoFactorEnabled=%v, want both", got.TOTPEnabled, got.TwoFactorEnabled)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := env.c.UpdateUser(ctx, u.ID, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
			again, err := env.c.GetUser(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, again, cmpopts.IgnoreFields(clerk.User{}, "LockoutExpiresInSeconds")); diff != "" {
				t.Errorf("GetUser after UpdateUser (-update +get):\n%s", diff)
			}
		})
	}
}

func TestFakeMetadataMergeVsReplace(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	ctx := t.Context()
	start := map[string]any{"a": 1, "nested": map[string]any{"x": 1, "y": 2}, "list": []any{1, 2}}
	newUser := func(t *testing.T) *clerk.User {
		return env.mustCreate(t, clerk.CreateUserParams{
			EmailAddresses:  []string{strings.ToLower(uniqueKey(t)[8:]) + "@example.com"},
			PublicMetadata:  start,
			PrivateMetadata: start,
			UnsafeMetadata:  map[string]any{"keep": true},
		})
	}
	type meta struct{ Public, Private, Unsafe map[string]any }
	startJSON := map[string]any{"a": json.Number("1"), "nested": map[string]any{"x": json.Number("1"), "y": json.Number("2")}, "list": []any{json.Number("1"), json.Number("2")}}
	tests := []struct {
		name string
		call func(c *clerk.Client, id string) (*clerk.User, error)
		want meta
	}{
		{"merge: deep merge, null deletes, arrays replace, nil maps untouched",
			func(c *clerk.Client, id string) (*clerk.User, error) {
				return c.MergeMetadata(ctx, id, clerk.MetadataParams{PublicMetadata: map[string]any{
					"b": "new", "nested": map[string]any{"x": nil, "z": 3}, "list": []any{9}, "a": nil,
				}})
			},
			meta{
				Public:  map[string]any{"b": "new", "nested": map[string]any{"y": json.Number("2"), "z": json.Number("3")}, "list": []any{json.Number("9")}},
				Private: startJSON,
				Unsafe:  map[string]any{"keep": true},
			}},
		{"merge: empty map changes nothing",
			func(c *clerk.Client, id string) (*clerk.User, error) {
				return c.MergeMetadata(ctx, id, clerk.MetadataParams{PrivateMetadata: map[string]any{}})
			},
			meta{Public: startJSON, Private: startJSON, Unsafe: map[string]any{"keep": true}}},
		{"replace: wholesale, nil maps untouched",
			func(c *clerk.Client, id string) (*clerk.User, error) {
				return c.ReplaceMetadata(ctx, id, clerk.MetadataParams{PublicMetadata: map[string]any{"nested": map[string]any{"z": 3}}})
			},
			meta{Public: map[string]any{"nested": map[string]any{"z": json.Number("3")}}, Private: startJSON, Unsafe: map[string]any{"keep": true}}},
		{"replace: empty map clears",
			func(c *clerk.Client, id string) (*clerk.User, error) {
				return c.ReplaceMetadata(ctx, id, clerk.MetadataParams{PrivateMetadata: map[string]any{}, UnsafeMetadata: map[string]any{}})
			},
			meta{Public: startJSON, Private: map[string]any{}, Unsafe: map[string]any{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUser(t)
			got, err := tt.call(env.c, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, meta{got.PublicMetadata, got.PrivateMetadata, got.UnsafeMetadata}); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
			stored := env.fakeUser(t, u.ID)
			if diff := cmp.Diff(tt.want, meta{
				Public: stored["public_metadata"].(map[string]any), Private: stored["private_metadata"].(map[string]any),
				Unsafe: stored["unsafe_metadata"].(map[string]any),
			}); diff != "" {
				t.Errorf("stored metadata (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFakeDeleteUser(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	ctx := t.Context()
	u := env.mustCreate(t, clerk.CreateUserParams{EmailAddresses: []string{"gone@example.com"}})
	if err := env.c.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if env.fakeUser(t, u.ID) != nil {
		t.Error("user still stored after DeleteUser")
	}
	_, err := env.c.GetUser(ctx, u.ID)
	if !clerk.IsNotFound(err) {
		t.Errorf("GetUser after delete: %v, want not found", err)
	}
	var apiErr *clerk.APIError
	if !errors.As(err, &apiErr) || !apiErr.HasCode("resource_not_found") || apiErr.TraceID == "" {
		t.Errorf("GetUser after delete: %#v, want resource_not_found with a trace ID", err)
	}
	if err := env.c.DeleteUser(ctx, u.ID); !clerk.IsNotFound(err) {
		t.Errorf("second DeleteUser: %v, want not found", err)
	}
	// Every per-user call on a missing user is a 404.
	missing := "user_doesnotexist"
	calls := map[string]func() error{
		"UpdateUser": func() error {
			_, err := env.c.UpdateUser(ctx, missing, clerk.UpdateUserParams{FirstName: clerk.Set("x")})
			return err
		},
		"MergeMetadata":     func() error { _, err := env.c.MergeMetadata(ctx, missing, clerk.MetadataParams{}); return err },
		"ReplaceMetadata":   func() error { _, err := env.c.ReplaceMetadata(ctx, missing, clerk.MetadataParams{}); return err },
		"BanUser":           func() error { _, err := env.c.BanUser(ctx, missing); return err },
		"UnbanUser":         func() error { _, err := env.c.UnbanUser(ctx, missing); return err },
		"LockUser":          func() error { _, err := env.c.LockUser(ctx, missing); return err },
		"UnlockUser":        func() error { _, err := env.c.UnlockUser(ctx, missing); return err },
		"DisableMFA":        func() error { return env.c.DisableMFA(ctx, missing) },
		"DeleteTOTP":        func() error { return env.c.DeleteTOTP(ctx, missing) },
		"DeleteBackupCodes": func() error { return env.c.DeleteBackupCodes(ctx, missing) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !clerk.IsNotFound(err) {
				t.Errorf("%s on a missing user: %v, want not found", name, err)
			}
		})
	}
}

func TestFakeBanAndLock(t *testing.T) {
	env := newFake(t, clerkfake.Options{LockoutSeconds: new(int64(600))})
	ctx := t.Context()
	u := env.mustCreate(t, clerk.CreateUserParams{EmailAddresses: []string{"b@example.com"}})
	type state struct {
		Banned, Locked bool
		Lockout        bool // LockoutExpiresInSeconds set
	}
	steps := []struct {
		name string
		call func(id string) (*clerk.User, error)
		want state
	}{
		{"ban", func(id string) (*clerk.User, error) { return env.c.BanUser(ctx, id) }, state{Banned: true}},
		{"ban again is idempotent", func(id string) (*clerk.User, error) { return env.c.BanUser(ctx, id) }, state{Banned: true}},
		{"lock", func(id string) (*clerk.User, error) { return env.c.LockUser(ctx, id) }, state{Banned: true, Locked: true, Lockout: true}},
		{"unban", func(id string) (*clerk.User, error) { return env.c.UnbanUser(ctx, id) }, state{Locked: true, Lockout: true}},
		{"unlock", func(id string) (*clerk.User, error) { return env.c.UnlockUser(ctx, id) }, state{}},
		{"unlock again", func(id string) (*clerk.User, error) { return env.c.UnlockUser(ctx, id) }, state{}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := st.call(u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(st.want, state{got.Banned, got.Locked, got.LockoutExpiresInSeconds != nil}); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
			if got.LockoutExpiresInSeconds != nil && (*got.LockoutExpiresInSeconds <= 0 || *got.LockoutExpiresInSeconds > 600) {
				t.Errorf("LockoutExpiresInSeconds = %d, want (0, 600]", *got.LockoutExpiresInSeconds)
			}
		})
	}
	stats := env.fake.Stats()
	for route, want := range map[string]int64{
		"POST /v1/users/{user_id}/ban": 2, "POST /v1/users/{user_id}/unban": 1,
		"POST /v1/users/{user_id}/lock": 1, "POST /v1/users/{user_id}/unlock": 2,
	} {
		if got := stats.Count(route); got != want {
			t.Errorf("Stats.Count(%q) = %d, want %d", route, got, want)
		}
	}
}

func TestFakeMFA(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	ctx := t.Context()
	type mfa struct{ TwoFactor, TOTP, Backup bool }
	newMFAUser := func(t *testing.T) string {
		u := env.mustCreate(t, clerk.CreateUserParams{
			EmailAddresses: []string{strings.ToLower(uniqueKey(t)[8:]) + "@example.com"},
			TOTPSecret:     new("JBSWY3DPEHPK3PXP"),
			BackupCodes:    []string{"aaaa1111", "bbbb2222"},
		})
		if diff := cmp.Diff(mfa{true, true, true}, mfa{u.TwoFactorEnabled, u.TOTPEnabled, u.BackupCodeEnabled}); diff != "" {
			t.Fatalf("created MFA state (-want +got):\n%s", diff)
		}
		return u.ID
	}
	tests := []struct {
		name  string
		calls []func(id string) error
		want  mfa
	}{
		{"DeleteTOTP keeps backup codes", []func(string) error{func(id string) error { return env.c.DeleteTOTP(ctx, id) }}, mfa{true, false, true}},
		{"DeleteBackupCodes keeps TOTP", []func(string) error{func(id string) error { return env.c.DeleteBackupCodes(ctx, id) }}, mfa{true, true, false}},
		{"TOTP and backup codes deleted", []func(string) error{
			func(id string) error { return env.c.DeleteTOTP(ctx, id) },
			func(id string) error { return env.c.DeleteBackupCodes(ctx, id) },
		}, mfa{false, false, false}},
		{"DisableMFA removes everything", []func(string) error{func(id string) error { return env.c.DisableMFA(ctx, id) }}, mfa{false, false, false}},
		{"DisableMFA twice", []func(string) error{
			func(id string) error { return env.c.DisableMFA(ctx, id) },
			func(id string) error { return env.c.DisableMFA(ctx, id) },
		}, mfa{false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := newMFAUser(t)
			for _, call := range tt.calls {
				if err := call(id); err != nil {
					t.Fatal(err)
				}
			}
			got, err := env.c.GetUser(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, mfa{got.TwoFactorEnabled, got.TOTPEnabled, got.BackupCodeEnabled}); diff != "" {
				t.Errorf("MFA state (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFakeOneRequestPerCall checks that every method is exactly one request to its route.
func TestFakeOneRequestPerCall(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	ctx := t.Context()
	u := env.mustCreate(t, clerk.CreateUserParams{EmailAddresses: []string{"one@example.com"}})
	victim := env.mustCreate(t, clerk.CreateUserParams{EmailAddresses: []string{"victim@example.com"}})
	user := func(_ *clerk.User, err error) error { return err }
	tests := []struct {
		route string
		call  func() error
	}{
		{"GET /v1/users", func() error {
			_, err := env.c.ListUsers(ctx, clerk.ListUsersParams{UserIDs: []string{u.ID}})
			return err
		}},
		{"GET /v1/users/count", func() error { _, err := env.c.CountUsers(ctx, clerk.ListUsersParams{}); return err }},
		{"GET /v1/users/{user_id}", func() error { return user(env.c.GetUser(ctx, u.ID)) }},
		{"POST /v1/users", func() error {
			return user(env.c.CreateUser(ctx, clerk.CreateUserParams{Username: new("another"), SkipPasswordRequirement: true}))
		}},
		{"PATCH /v1/users/{user_id}", func() error {
			return user(env.c.UpdateUser(ctx, u.ID, clerk.UpdateUserParams{FirstName: clerk.Set("X")}))
		}},
		{"PATCH /v1/users/{user_id}/metadata", func() error {
			return user(env.c.MergeMetadata(ctx, u.ID, clerk.MetadataParams{PublicMetadata: map[string]any{"k": 1}}))
		}},
		{"PUT /v1/users/{user_id}/metadata", func() error {
			return user(env.c.ReplaceMetadata(ctx, u.ID, clerk.MetadataParams{PublicMetadata: map[string]any{}}))
		}},
		{"POST /v1/users/{user_id}/ban", func() error { return user(env.c.BanUser(ctx, u.ID)) }},
		{"POST /v1/users/{user_id}/unban", func() error { return user(env.c.UnbanUser(ctx, u.ID)) }},
		{"POST /v1/users/{user_id}/lock", func() error { return user(env.c.LockUser(ctx, u.ID)) }},
		{"POST /v1/users/{user_id}/unlock", func() error { return user(env.c.UnlockUser(ctx, u.ID)) }},
		{"DELETE /v1/users/{user_id}/mfa", func() error { return env.c.DisableMFA(ctx, u.ID) }},
		{"DELETE /v1/users/{user_id}/totp", func() error { return env.c.DeleteTOTP(ctx, u.ID) }},
		{"DELETE /v1/users/{user_id}/backup_code", func() error { return env.c.DeleteBackupCodes(ctx, u.ID) }},
		{"DELETE /v1/users/{user_id}", func() error { return env.c.DeleteUser(ctx, victim.ID) }},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			before := env.fake.Stats()
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			after := env.fake.Stats()
			if got := after.Total - before.Total; got != 1 {
				t.Errorf("%d requests, want 1", got)
			}
			if got := after.CountStatus(tt.route, 200) - before.CountStatus(tt.route, 200); got != 1 {
				t.Errorf("%d successful requests to %s, want 1; stats %v", got, tt.route, after.Requests)
			}
		})
	}
}

func TestFakeWrongKey(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	const wrong = "sk_test_WrongKeyDoNotPrint42"
	c := newClient(t, env.srv.URL+"/v1", func(o *clerk.Options) { o.SecretKey = wrong })
	_, err := c.GetUser(t.Context(), "user_1")
	if diff := cmp.Diff(classes{Authentication: true}, classify(err)); diff != "" {
		t.Errorf("classification of %v (-want +got):\n%s", err, diff)
	}
	var apiErr *clerk.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || len(apiErr.Errors) == 0 || apiErr.TraceID == "" {
		t.Errorf("err = %#v, want a 401 with Clerk errors and a trace ID", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), env.key) {
		t.Errorf("error %q reveals a key", err)
	}
}

func TestFakeUniqueness(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	ctx := t.Context()
	env.mustCreate(t, clerk.CreateUserParams{ExternalID: new("emp-1"), EmailAddresses: []string{"taken@example.com"}, Username: new("taken")})
	other := env.mustCreate(t, clerk.CreateUserParams{EmailAddresses: []string{"other@example.com"}})
	tests := []struct {
		name  string
		call  func() error
		param string
	}{
		{"create: username", func() error {
			_, err := env.c.CreateUser(ctx, clerk.CreateUserParams{Username: new("taken"), SkipPasswordRequirement: true})
			return err
		}, "username"},
		{"create: email", func() error {
			_, err := env.c.CreateUser(ctx, clerk.CreateUserParams{EmailAddresses: []string{"taken@example.com"}, SkipPasswordRequirement: true})
			return err
		}, "email_address"},
		{"create: external ID", func() error {
			_, err := env.c.CreateUser(ctx, clerk.CreateUserParams{ExternalID: new("emp-1"), Username: new("fresh"), SkipPasswordRequirement: true})
			return err
		}, "external_id"},
		{"update: username", func() error {
			_, err := env.c.UpdateUser(ctx, other.ID, clerk.UpdateUserParams{Username: clerk.Set("taken")})
			return err
		}, "username"},
		{"update: external ID", func() error {
			_, err := env.c.UpdateUser(ctx, other.ID, clerk.UpdateUserParams{ExternalID: clerk.Set("emp-1")})
			return err
		}, "external_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if diff := cmp.Diff(classes{Rejected: true}, classify(err)); diff != "" {
				t.Fatalf("classification of %v (-want +got):\n%s", err, diff)
			}
			var apiErr *clerk.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 422 || !apiErr.HasCode("form_identifier_exists") {
				t.Fatalf("err = %v, want 422 form_identifier_exists", err)
			}
			if got := apiErr.Errors[0].Meta["param_name"]; got != tt.param {
				t.Errorf("meta.param_name = %v, want %s", got, tt.param)
			}
			if !strings.Contains(err.Error(), "422 form_identifier_exists: ") || !strings.Contains(err.Error(), "(trace ") {
				t.Errorf("Error() = %q", err)
			}
		})
	}
}

func TestFakeUnknownBodyFieldsNeverSent(t *testing.T) {
	// The fake rejects unknown body fields (422 form_param_unknown), like Clerk; every field the
	// client can send must therefore be known. Send every field at once.
	env := newFake(t, clerkfake.Options{})
	ctx := t.Context()
	u, err := env.c.CreateUser(ctx, clerk.CreateUserParams{
		ExternalID: new("all-1"), EmailAddresses: []string{"all@example.com"}, Username: new("allfields"),
		FirstName: new("A"), LastName: new("B"), Password: new("a-Long-and-unusual-passw0rd!"),
		SkipPasswordRequirement: true, TOTPSecret: new("JBSWY3DPEHPK3PXP"), BackupCodes: []string{"c1"},
		PublicMetadata: map[string]any{}, PrivateMetadata: map[string]any{}, UnsafeMetadata: map[string]any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !u.PasswordEnabled {
		t.Error("PasswordEnabled = false after creating with a password")
	}
	if _, err := env.c.UpdateUser(ctx, u.ID, clerk.UpdateUserParams{
		ExternalID: clerk.Set("all-2"), Username: clerk.Set("allfields2"), FirstName: clerk.Null[string](),
		LastName: clerk.Set("C"), PrimaryEmailAddressID: clerk.Set(*u.PrimaryEmailAddressID), TOTPSecret: clerk.Null[string](),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.c.MergeMetadata(ctx, u.ID, clerk.MetadataParams{PublicMetadata: map[string]any{}, PrivateMetadata: map[string]any{}, UnsafeMetadata: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
}

func TestFake429PausesBucket(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	ctx := t.Context()
	u := env.mustCreate(t, clerk.CreateUserParams{EmailAddresses: []string{"p@example.com"}})
	if err := env.fake.SetFaults(clerkfake.Faults{Rate429: 1, RetryAfterSeconds: 1, Routes: []string{"GET /v1/users/{user_id}"}}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	_, err := env.c.GetUser(ctx, u.ID)
	if diff := cmp.Diff(classes{RateLimited: true}, classify(err)); diff != "" {
		t.Fatalf("classification of %v (-want +got):\n%s", err, diff)
	}
	if d, ok := clerk.RetryAfter(err); !ok || d != time.Second {
		t.Errorf("RetryAfter() = %v, %v; want 1s", d, ok)
	}
	env.fake.ClearFaults()
	until := env.c.PausedUntil()
	if until.Before(before.Add(time.Second)) {
		t.Fatalf("PausedUntil() = %v, want at least 1s after %v", until, before)
	}

	// Another client with the same key, another route: it must wait for the pause too.
	sibling := newClient(t, env.srv.URL+"/v1", func(o *clerk.Options) { o.SecretKey = env.key })
	const banRoute = "POST /v1/users/{user_id}/ban"
	type result struct {
		u   *clerk.User
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		u, err := sibling.BanUser(ctx, u.ID)
		done <- result{u, err, time.Now()}
	}()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.at.Before(until) {
				t.Errorf("BanUser returned at %v, before the pause ended at %v", r.at, until)
			}
			if r.u.UpdatedAt < until.UnixMilli() {
				t.Errorf("ban applied at %d ms, before the pause ended at %d ms", r.u.UpdatedAt, until.UnixMilli())
			}
			if n := env.fake.Stats().Count(banRoute); n != 1 {
				t.Errorf("%d ban requests, want 1", n)
			}
			return
		case <-tick.C:
			// Read the counter first, then the clock: a request counted before a time that is
			// still inside the pause was sent during the pause.
			n := env.fake.Stats().Count(banRoute)
			if now := time.Now(); n != 0 && now.Before(until) {
				t.Fatalf("ban request reached the server at or before %v, during the pause (until %v)", now, until)
			}
		case <-deadline:
			t.Fatal("BanUser did not complete after the pause")
		}
	}
}

func TestFakeRealRateLimit(t *testing.T) {
	env := newFake(t, clerkfake.Options{RateLimit: 2})
	ctx := t.Context()
	for range 2 {
		if _, err := env.c.ListUsers(ctx, clerk.ListUsersParams{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := env.c.ListUsers(ctx, clerk.ListUsersParams{})
	if diff := cmp.Diff(classes{RateLimited: true}, classify(err)); diff != "" {
		t.Fatalf("classification of %v (-want +got):\n%s", err, diff)
	}
	d, ok := clerk.RetryAfter(err)
	if !ok || d <= 0 || d > 10*time.Second {
		t.Fatalf("RetryAfter() = %v, %v; want (0, 10s]", d, ok)
	}
	if until := env.c.PausedUntil(); time.Until(until) <= 0 {
		t.Fatalf("bucket not paused after 429 (PausedUntil %v)", until)
	}
	// While paused, a caller with a near deadline fails at once without a request.
	total := env.fake.Stats().Total
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = env.c.GetUser(short, "user_1")
	var le *clerk.LimiterError
	if !errors.As(err, &le) || !clerk.IsRateLimited(err) {
		t.Fatalf("err = %v, want a rate-limited *LimiterError", err)
	}
	if short.Err() != nil {
		t.Error("the call waited for the deadline instead of failing fast")
	}
	if got := env.fake.Stats().Total; got != total {
		t.Errorf("%d requests sent while paused, want 0", got-total)
	}
}

func TestFakePerUserRateLimit(t *testing.T) {
	env := newFake(t, clerkfake.Options{PerUserRateLimit: 1})
	ctx := t.Context()
	a := env.mustCreate(t, clerk.CreateUserParams{EmailAddresses: []string{"a@example.com"}})
	if _, err := env.c.MergeMetadata(ctx, a.ID, clerk.MetadataParams{PublicMetadata: map[string]any{"n": 1}}); err != nil {
		t.Fatal(err)
	}
	_, err := env.c.UpdateUser(ctx, a.ID, clerk.UpdateUserParams{FirstName: clerk.Set("A")})
	if !clerk.IsRateLimited(err) {
		t.Fatalf("second write to the same user: %v, want rate limited", err)
	}
	if _, ok := clerk.RetryAfter(err); !ok {
		t.Error("no Retry-After on the per-user 429")
	}
}

func TestFakeServerErrors(t *testing.T) {
	tests := []struct {
		name     string
		faults   clerkfake.Faults
		wantCode string
		wantBody bool // non-JSON body kept
	}{
		{"500", clerkfake.Faults{Rate500: 1}, "internal_clerk_error", false},
		{"503", clerkfake.Faults{Rate503: 1}, "maintenance_mode", false},
		{"502 HTML", clerkfake.Faults{Rate502: 1}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newFake(t, clerkfake.Options{})
			u := env.mustCreate(t, clerk.CreateUserParams{EmailAddresses: []string{"e@example.com"}})
			if err := env.fake.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			before := env.fake.Stats().Total
			_, err := env.c.BanUser(t.Context(), u.ID)
			if diff := cmp.Diff(classes{Unavailable: true}, classify(err)); diff != "" {
				t.Fatalf("classification of %v (-want +got):\n%s", err, diff)
			}
			var apiErr *clerk.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %#v, want *APIError", err)
			}
			if tt.wantCode != "" && (!apiErr.HasCode(tt.wantCode) || apiErr.TraceID == "") {
				t.Errorf("err = %v, want code %s and a trace ID", err, tt.wantCode)
			}
			if tt.wantBody != (apiErr.Body != "") || (tt.wantBody && !strings.Contains(apiErr.Body, "502 Bad Gateway")) {
				t.Errorf("Body = %q", apiErr.Body)
			}
			if got := env.fake.Stats().Total - before; got != 1 {
				t.Errorf("%d requests, want 1: the client must not retry", got)
			}
			env.fake.ClearFaults()
			got, err := env.c.GetUser(t.Context(), u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Banned {
				t.Error("user banned although the ban failed")
			}
		})
	}
}

func TestFakeDroppedResponse(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	u := env.mustCreate(t, clerk.CreateUserParams{EmailAddresses: []string{"d@example.com"}})
	if err := env.fake.SetFaults(clerkfake.Faults{DropResponseRate: 1, Routes: []string{"POST /v1/users/{user_id}/ban"}}); err != nil {
		t.Fatal(err)
	}
	_, err := env.c.BanUser(t.Context(), u.ID)
	var re *clerk.RequestError
	if !errors.As(err, &re) || !clerk.IsUnavailable(err) {
		t.Fatalf("err = %#v, want an unavailable *RequestError", err)
	}
	if n := env.fake.Stats().Count("POST /v1/users/{user_id}/ban"); n != 1 {
		t.Errorf("%d ban requests, want 1: the client must not retry", n)
	}
	// The server applied the ban; only the answer was lost.
	if stored := env.fakeUser(t, u.ID); stored["banned"] != true {
		t.Errorf("stored banned = %v, want true", stored["banned"])
	}
}

func TestFakeTimeout(t *testing.T) {
	env := newFake(t, clerkfake.Options{}, func(o *clerk.Options) { o.Timeout = 50 * time.Millisecond })
	if err := env.fake.SetFaults(clerkfake.Faults{LatencyMS: 2000, Routes: []string{"GET /v1/users"}}); err != nil {
		t.Fatal(err)
	}
	_, err := env.c.ListUsers(t.Context(), clerk.ListUsersParams{EmailAddresses: []string{"who@example.com"}})
	var re *clerk.RequestError
	if !errors.As(err, &re) || !re.Timeout() || !clerk.IsUnavailable(err) {
		t.Fatalf("err = %#v, want an unavailable timeout", err)
	}
	if strings.Contains(err.Error(), "who@example.com") || strings.Contains(err.Error(), "who%40example.com") {
		t.Errorf("error %q reveals the query", err)
	}
}

func TestFakeSeededUsers(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	seed := []json.RawMessage{
		json.RawMessage(`{"id":"user_seeded1","username":"seed1","public_metadata":{"a":1},"banned":true,"created_at":1000,"updated_at":1000}`),
		json.RawMessage(`{"id":"user_seeded2","external_id":"seed-ext","email_addresses":[{"id":"idn_seed2","email_address":"seed2@example.com"}],"primary_email_address_id":"idn_seed2","created_at":2000,"updated_at":2000}`),
	}
	if err := env.fake.Seed(seed); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	u1, err := env.c.GetUser(ctx, "user_seeded1")
	if err != nil {
		t.Fatal(err)
	}
	if u1.Username == nil || *u1.Username != "seed1" || !u1.Banned || u1.PublicMetadata["a"] != json.Number("1") {
		t.Errorf("seeded user 1 = %+v", u1)
	}
	users, err := env.c.ListUsers(ctx, clerk.ListUsersParams{EmailAddresses: []string{"seed2@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"user_seeded2"}, userIDs(users)); diff != "" {
		t.Errorf("list by email (-want +got):\n%s", diff)
	}
	if got := users[0].PrimaryEmailAddress(); got != "seed2@example.com" {
		t.Errorf("PrimaryEmailAddress() = %q", got)
	}
	n, err := env.c.CountUsers(ctx, clerk.ListUsersParams{})
	if err != nil || n != 2 {
		t.Errorf("CountUsers = %d, %v; want 2", n, err)
	}
	ids := userIDs(mustList(t, env.c, clerk.ListUsersParams{OrderBy: "+created_at"}))
	if !slices.Equal(ids, []string{"user_seeded1", "user_seeded2"}) {
		t.Errorf("ordered IDs = %v", ids)
	}
}

func mustList(t *testing.T, c *clerk.Client, p clerk.ListUsersParams) []clerk.User {
	t.Helper()
	users, err := c.ListUsers(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	return users
}

// TestFakeClientSideBudget checks that the default budget (5/s for sk_test_) holds a burst of
// calls back rather than letting them hit Clerk's limit.
func TestFakeClientSideBudget(t *testing.T) {
	env := newFake(t, clerkfake.Options{RateLimit: 100}, func(o *clerk.Options) {
		o.RequestsPerSecond = 0 // the sk_test_ default: 5/s, burst 5
	})
	if got := float64(env.c.Limiter().Limit()); got != 5 {
		t.Fatalf("Limit() = %v, want 5", got)
	}
	if got := env.c.Limiter().Burst(); got != 5 {
		t.Fatalf("Burst() = %v, want 5", got)
	}
	start := time.Now()
	for range 5 {
		if _, err := env.c.CountUsers(t.Context(), clerk.ListUsersParams{}); err != nil {
			t.Fatal(err)
		}
	}
	// The burst is spent: a caller that cannot wait for the next token (~200 ms) is refused
	// without a request. Only meaningful if the five calls left the bucket empty, i.e. took
	// well under one token interval (a loaded machine may be slower).
	if elapsed := time.Since(start); elapsed > 150*time.Millisecond {
		t.Skipf("five calls took %v; cannot check the empty bucket", elapsed)
	}
	short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := env.c.CountUsers(short, clerk.ListUsersParams{})
	if !clerk.IsRateLimited(err) || env.fake.Stats().Total != 5 {
		t.Errorf("err = %v with %d requests; want rate limited after 5 requests", err, env.fake.Stats().Total)
	}
}
