package clerkfake

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func rawUsers(t *testing.T, objs ...string) []json.RawMessage {
	t.Helper()
	out := make([]json.RawMessage, len(objs))
	for i, o := range objs {
		if !json.Valid([]byte(o)) {
			t.Fatalf("test seed %d is not JSON: %s", i, o)
		}
		out[i] = json.RawMessage(o)
	}
	return out
}

func TestSeedDefaults(t *testing.T) {
	f := newFixture(t, Options{})
	err := f.srv.Seed(rawUsers(t,
		`{"email_addresses":[{"email_address":"Seed@Example.com"},{"email_address":"two@example.com","reserved":true}],
		  "first_name":"Seed","public_metadata":{"plan":"pro"},"banned":true}`,
		`{"id":"user_fixed","username":"fixed","external_id":"ext-1","delete_self_enabled":false,
		  "passkeys":[{"name":"YubiKey"}],"external_accounts":[{"provider":"oauth_github"}],
		  "password":"hunter2hunter2","totp_secret":"JBSWY3DPEHPK3PXP","backup_codes":["bk1"],
		  "created_at":1700000000000}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	if f.srv.UserCount() != 2 {
		t.Fatalf("UserCount %d", f.srv.UserCount())
	}
	// Both users pass the spec's User schema through the API.
	l := f.do("GET", "/users?order_by=created_at", nil).list(t)
	a, b := l[1], l[0] // user_fixed has the older created_at
	if !userIDRE.MatchString(str(a, "id")) || str(b, "id") != "user_fixed" {
		t.Errorf("ids %q %q", str(a, "id"), str(b, "id"))
	}
	emails := a["email_addresses"].([]any)
	e0, e1 := emails[0].(map[string]any), emails[1].(map[string]any)
	if str(e0, "email_address") != "seed@example.com" || str(a, "primary_email_address_id") != str(e0, "id") || !idnRE.MatchString(str(e0, "id")) {
		t.Errorf("email defaults: %v primary %v", e0, a["primary_email_address_id"])
	}
	if str(e0["verification"].(map[string]any), "strategy") != "admin" || e1["verification"] != nil {
		t.Errorf("verifications %v %v", e0["verification"], e1["verification"])
	}
	if a["banned"] != true || a["delete_self_enabled"] != true || a["create_organization_enabled"] != true || num(a, "created_at") <= 0 {
		t.Errorf("defaults: banned %v delete_self %v create_org %v created %v", a["banned"], a["delete_self_enabled"], a["create_organization_enabled"], a["created_at"])
	}
	if b["delete_self_enabled"] != false || num(b, "created_at") != 1700000000000 || num(b, "updated_at") < 1700000000000 {
		t.Errorf("explicit values: %v %v %v", b["delete_self_enabled"], b["created_at"], b["updated_at"])
	}
	if b["password_enabled"] != true || b["totp_enabled"] != true || b["backup_code_enabled"] != true || b["two_factor_enabled"] != true {
		t.Errorf("secrets: %v %v %v %v", b["password_enabled"], b["totp_enabled"], b["backup_code_enabled"], b["two_factor_enabled"])
	}
	pk := b["passkeys"].([]any)[0].(map[string]any)
	ea := b["external_accounts"].([]any)[0].(map[string]any)
	if !strings.HasPrefix(str(pk, "id"), "idn_") || str(pk, "name") != "YubiKey" || !strings.HasPrefix(str(ea, "id"), "eac_") || str(ea, "provider") != "oauth_github" {
		t.Errorf("passkey %v external account %v", pk, ea)
	}
	f.do("POST", "/users/user_fixed/verify_password", map[string]any{"password": "hunter2hunter2"}).ok(t)
	// Seeded identifiers are taken.
	f.do("POST", "/users", map[string]any{"email_address": []string{"SEED@example.com"}}).clerkErr(t, 422, "form_identifier_exists")
	f.do("POST", "/users", map[string]any{"username": "fixed"}).clerkErr(t, 422, "form_identifier_exists")
}

func TestSeedErrors(t *testing.T) {
	f := newFixture(t, Options{})
	if err := f.srv.Seed(rawUsers(t, `{"id":"user_existing","email_addresses":[{"email_address":"x@example.com"}]}`)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		objs []string
		want string
	}{
		{"duplicate email in batch", []string{`{"username":"aaaa"}`, `{"email_addresses":[{"email_address":"a@b.co"}]}`, `{"username":"bbbb"}`,
			`{"email_addresses":[{"email_address":"A@b.co"}]}`}, "seed entry 3: duplicate email_address a@b.co"},
		{"duplicate with stored user", []string{`{"email_addresses":[{"email_address":"x@example.com"}]}`}, "seed entry 0: duplicate email_address x@example.com"},
		{"duplicate id", []string{`{"id":"user_existing"}`}, "seed entry 0: duplicate id user_existing"},
		{"duplicate username", []string{`{"username":"Same"}`, `{"username":"same"}`}, "seed entry 1: duplicate username same"},
		{"duplicate external_id", []string{`{"external_id":"e"}`, `{"external_id":"e"}`}, "seed entry 1: duplicate external_id e"},
		{"unknown field", []string{`{"username":"aaaa","nickname":"x"}`}, "seed entry 0: unknown field nickname"},
		{"wrong type", []string{`{"username":5}`}, "seed entry 0: invalid User object"},
		{"not an object", []string{`{"username":"ok12"}`, `[1]`}, "seed entry 1: not a JSON object"},
		{"bad id", []string{`{"id":"usr_1"}`}, `seed entry 0: id "usr_1" must look like user_<id>`},
		{"bad email", []string{`{"email_addresses":[{"email_address":"nope"}]}`}, "seed entry 0: email_addresses[0]: invalid email_address"},
		{"bad primary", []string{`{"primary_email_address_id":"idn_x","email_addresses":[{"email_address":"p@example.com"}]}`}, "seed entry 0: primary_email_address_id idn_x"},
		{"bad totp", []string{`{"username":"totp","totp_secret":"!!"}`}, "seed entry 0: totp_secret must be base32"},
		{"metadata not object", []string{`{"public_metadata":[1]}`}, "seed entry 0: metadata must be JSON objects"},
		{"metadata too big", []string{`{"private_metadata":{"x":"` + strings.Repeat("y", MetadataLimitBytes) + `"}}`}, "seed entry 0: metadata is"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := f.srv.Seed(rawUsers(t, tc.objs...))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want prefix %q", err, tc.want)
			}
			if f.srv.UserCount() != 1 {
				t.Fatalf("a failed seed added users: %d", f.srv.UserCount())
			}
		})
	}
}

func TestSeedFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s := New(Options{})
	if err := s.SeedFile(write("ok.json", `[{"username":"one1"},{"username":"two2"}]`)); err != nil || s.UserCount() != 2 {
		t.Fatalf("err %v count %d", err, s.UserCount())
	}
	for name, tc := range map[string]struct{ content, want string }{
		"object.json": {`{"username":"x"}`, "want a JSON array of User objects"},
		"broken.json": {`[{"username":`, "invalid JSON"},
		"dup.json":    {`[{"username":"dupe"},{"username":"dupe"}]`, "seed entry 1: duplicate username dupe"},
	} {
		err := s.SeedFile(write(name, tc.content))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want it to name the file and contain %q", name, err, tc.want)
		}
	}
	if err := s.SeedFile(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
}
