package clerkfake

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	userIDRE = regexp.MustCompile(`^user_[0-9A-Za-z]{27}$`)
	idnRE    = regexp.MustCompile(`^idn_[0-9A-Za-z]{27}$`)
)

func TestAuth(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.createEmail("auth@example.com")
	cases := []struct {
		name, header, code string
	}{
		{"missing", "Authorization:", "authentication_invalid"},
		{"not bearer", "Authorization: Basic c2tfdGVzdF9mYWtlOg==", "authorization_header_format_invalid"},
		{"bearer without key", "Authorization: Bearer", "authorization_header_format_invalid"},
		{"wrong key", "Authorization: Bearer sk_test_other", "clerk_key_invalid"},
		{"live key for test instance", "Authorization: Bearer sk_live_fake", "clerk_key_invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do("GET", "/users/"+id, nil, tc.header)
			f.do("POST", "/users/"+id+"/ban", "null", tc.header).clerkErr(t, http.StatusUnauthorized, tc.code)
			r.clerkErr(t, http.StatusUnauthorized, tc.code)
		})
	}
	u, _ := f.srv.User(id)
	if strings.Contains(string(u), `"banned":true`) {
		t.Fatal("unauthenticated ban was applied")
	}
	// A custom key works and the default one is then refused.
	g := newFixture(t, Options{SecretKey: "sk_live_custom"})
	g.do("GET", "/users", nil, "Authorization: Bearer sk_live_custom").list(t)
	g.do("GET", "/users", nil).clerkErr(t, http.StatusUnauthorized, "clerk_key_invalid")
}

func TestAPIVersionSelection(t *testing.T) {
	f := newFixture(t, Options{})
	f.do("GET", "/users?__clerk_api_version=2025-11-10", nil).clerkErr(t, http.StatusBadRequest, "bad_request")
	f.do("GET", "/users", nil, "Clerk-API-Version: 2019-01-01").clerkErr(t, http.StatusBadRequest, "bad_request")
	f.do("GET", "/users?__clerk_api_version=2025-11-10", nil, "Clerk-API-Version:").list(t)
	f.do("GET", "/users", nil, "Clerk-API-Version:").list(t) // none: 2026-05-12 assumed

	id := f.createEmail("version@example.com")
	// 2026-05-12 (sent or assumed): metadata is not a PATCH /users parameter.
	for _, h := range []string{"Clerk-API-Version: 2026-05-12", "Clerk-API-Version:"} {
		e := f.do("PATCH", "/users/"+id, map[string]any{"first_name": "A", "public_metadata": map[string]any{"a": 1}}, h).
			clerkErr(t, http.StatusUnprocessableEntity, "form_param_unknown")
		if paramName(e) != "public_metadata" {
			t.Errorf("param_name %q", paramName(e))
		}
	}
	// Older versions accept it and replace each supplied object.
	f.do("PUT", "/users/"+id+"/metadata", map[string]any{"public_metadata": map[string]any{"keep": 0, "old": 1}, "private_metadata": map[string]any{"p": 1}}).ok(t)
	u := f.do("PATCH", "/users/"+id, map[string]any{"public_metadata": map[string]any{"new": 2}}, "Clerk-API-Version: 2025-11-10").ok(t)
	if got := mustJSON(t, u["public_metadata"]); got != `{"new":2}` {
		t.Errorf("public_metadata %s, want replaced {\"new\":2}", got)
	}
	if got := mustJSON(t, u["private_metadata"]); got != `{"p":1}` {
		t.Errorf("private_metadata %s, want untouched", got)
	}
}

func TestCreateUser(t *testing.T) {
	f := newFixture(t, Options{})
	now := f.clock.Now().UnixMilli()
	u := f.create(map[string]any{
		"email_address":       []string{"Ada@Example.com", "ada2@example.com"},
		"phone_number":        []string{"+15555550100"},
		"web3_wallet":         []string{"0x0123456789abcdef0123456789abcdef01234567"},
		"username":            "ada_l",
		"first_name":          "Ada",
		"last_name":           "Lovelace",
		"external_id":         "emp-1",
		"locale":              "en-GB",
		"password":            "correct horse",
		"public_metadata":     map[string]any{"role": "admin", "n": 12345678901234567},
		"private_metadata":    map[string]any{"crm": "C-1"},
		"legal_accepted_at":   "2024-01-02T03:04:05.678Z",
		"delete_self_enabled": false,
		"bypass_client_trust": true,
	})
	id := str(u, "id")
	if !userIDRE.MatchString(id) {
		t.Errorf("id %q does not look like user_ + 27 base62", id)
	}
	emails := u["email_addresses"].([]any)
	first := emails[0].(map[string]any)
	if str(first, "email_address") != "ada@example.com" || !idnRE.MatchString(str(first, "id")) {
		t.Errorf("first email %v", first)
	}
	if str(u, "primary_email_address_id") != str(first, "id") {
		t.Errorf("primary email %q, want the first email %q", str(u, "primary_email_address_id"), str(first, "id"))
	}
	wantVer := `{"attempts":null,"expire_at":null,"object":"verification_admin","status":"verified","strategy":"admin"}`
	if got := mustJSON(t, first["verification"]); got != wantVer {
		t.Errorf("verification %s, want %s", got, wantVer)
	}
	phone := u["phone_numbers"].([]any)[0].(map[string]any)
	if str(u, "primary_phone_number_id") != str(phone, "id") || str(u, "primary_web3_wallet_id") == "" {
		t.Errorf("primary phone/web3 not set: %v %v", u["primary_phone_number_id"], u["primary_web3_wallet_id"])
	}
	if num(u, "created_at") != now || num(u, "updated_at") != now {
		t.Errorf("timestamps %d/%d, want ms %d", num(u, "created_at"), num(u, "updated_at"), now)
	}
	if num(u, "legal_accepted_at") != time.Date(2024, 1, 2, 3, 4, 5, 678e6, time.UTC).UnixMilli() {
		t.Errorf("legal_accepted_at %v", u["legal_accepted_at"])
	}
	if u["password_enabled"] != true || num(u, "password_last_updated_at") != now {
		t.Errorf("password flags %v %v", u["password_enabled"], u["password_last_updated_at"])
	}
	if u["delete_self_enabled"] != false || u["create_organization_enabled"] != true || u["bypass_client_trust"] != true {
		t.Errorf("flags %v %v %v", u["delete_self_enabled"], u["create_organization_enabled"], u["bypass_client_trust"])
	}
	if u["two_factor_enabled"] != false || u["mfa_enabled_at"] != nil {
		t.Errorf("no MFA expected: %v %v", u["two_factor_enabled"], u["mfa_enabled_at"])
	}
	// Big integers in metadata survive exactly.
	raw, _ := f.srv.User(id)
	if !strings.Contains(string(raw), `"n":12345678901234567`) {
		t.Errorf("metadata number not preserved: %s", raw)
	}
	if f.srv.UserCount() != 1 {
		t.Errorf("UserCount %d", f.srv.UserCount())
	}
	// GET returns the same JSON.
	if got := f.do("GET", "/users/"+id, nil); string(got.body) != string(raw) {
		t.Errorf("GET differs from create:\n%s\n%s", got.body, raw)
	}

	t.Run("mfa and flags on create", func(t *testing.T) {
		u := f.create(map[string]any{"username": "mfa_user", "totp_secret": "JBSWY3DPEHPK3PXP", "backup_codes": []string{"aaaa1111"},
			"banned": true, "locked": true, "created_at": "2020-05-06T07:08:09Z"})
		if u["totp_enabled"] != true || u["two_factor_enabled"] != true || u["backup_code_enabled"] != true {
			t.Errorf("mfa flags %v %v %v", u["totp_enabled"], u["two_factor_enabled"], u["backup_code_enabled"])
		}
		if num(u, "mfa_enabled_at") <= 0 || u["banned"] != true || u["locked"] != true || u["lockout_expires_in_seconds"] != nil {
			t.Errorf("mfa_enabled_at %v banned %v locked %v lockout %v", u["mfa_enabled_at"], u["banned"], u["locked"], u["lockout_expires_in_seconds"])
		}
		if num(u, "created_at") != time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC).UnixMilli() {
			t.Errorf("created_at %v", u["created_at"])
		}
		if u["primary_email_address_id"] != nil || len(u["email_addresses"].([]any)) != 0 {
			t.Errorf("no email expected")
		}
	})
	t.Run("reserved email", func(t *testing.T) {
		u := f.create(map[string]any{"email_address": []string{"r1@example.com", "r2@example.com"},
			"email_address_identification_status": []string{"reserved", "verified"}})
		es := u["email_addresses"].([]any)
		if e := es[0].(map[string]any); e["reserved"] != true || e["verification"] != nil {
			t.Errorf("reserved email %v", e)
		}
		if e := es[1].(map[string]any); e["reserved"] != false || e["verification"] == nil {
			t.Errorf("verified email %v", e)
		}
	})
}

func TestCreateUserValidation(t *testing.T) {
	f := newFixture(t, Options{})
	f.create(map[string]any{"email_address": []string{"taken@example.com"}, "username": "taken", "external_id": "ext-taken",
		"phone_number": []string{"+15555550101"}, "web3_wallet": []string{"0x1111111111111111111111111111111111111111"}})
	big := strings.Repeat("x", MetadataLimitBytes)
	cases := []struct {
		name   string
		body   any
		status int
		code   string
		param  string
	}{
		{"unknown field", map[string]any{"username": "abcd", "nickname": "x"}, 422, "form_param_unknown", "nickname"},
		{"duplicate email, other case", map[string]any{"email_address": []string{"TAKEN@example.com"}}, 422, "form_identifier_exists", "email_address"},
		{"duplicate email in request", map[string]any{"email_address": []string{"d@example.com", "d@example.com"}}, 422, "form_identifier_exists", "email_address"},
		{"duplicate username", map[string]any{"username": "TAKEN"}, 422, "form_identifier_exists", "username"},
		{"duplicate external_id", map[string]any{"username": "fresh", "external_id": "ext-taken"}, 422, "form_identifier_exists", "external_id"},
		{"duplicate phone", map[string]any{"phone_number": []string{"+15555550101"}}, 422, "form_identifier_exists", "phone_number"},
		{"duplicate web3", map[string]any{"web3_wallet": []string{"0x1111111111111111111111111111111111111111"}}, 422, "form_identifier_exists", "web3_wallet"},
		{"bad email", map[string]any{"email_address": []string{"not-an-email"}}, 422, "form_param_format_invalid", "email_address"},
		{"bad phone", map[string]any{"phone_number": []string{"555-0100"}}, 422, "form_param_format_invalid", "phone_number"},
		{"short username", map[string]any{"username": "ab"}, 422, "form_username_invalid_length", "username"},
		{"no identifier", map[string]any{"first_name": "Nobody", "external_id": "x"}, 422, "form_data_missing", ""},
		{"empty body", nil, 422, "form_data_missing", ""},
		{"short password", map[string]any{"username": "pwuser", "password": "short"}, 422, "form_password_length_too_short", "password"},
		{"digest without hasher", map[string]any{"username": "pwuser", "password_digest": "$2a$..."}, 422, "form_param_missing", "password_hasher"},
		{"bad totp secret", map[string]any{"username": "totpuser", "totp_secret": "not base32!"}, 422, "invalid_totp_secret_code", "totp_secret"},
		{"wrong type", map[string]any{"username": "typeuser", "first_name": 5}, 422, "form_param_type_invalid", "first_name"},
		{"wrong array type", map[string]any{"email_address": "a@example.com"}, 422, "form_param_type_invalid", "email_address"},
		{"status count mismatch", map[string]any{"email_address": []string{"s@example.com"}, "email_address_identification_status": []string{"verified", "reserved"}}, 422, "form_param_value_invalid", "email_address_identification_status"},
		{"metadata not an object", map[string]any{"username": "metauser", "public_metadata": []int{1}}, 422, "form_param_value_invalid", "public_metadata"},
		{"metadata too large", map[string]any{"username": "metauser", "private_metadata": map[string]any{"x": big}}, 422, "form_param_exceeds_allowed_size", "private_metadata"},
		{"bad created_at", map[string]any{"username": "timeuser", "created_at": "yesterday"}, 422, "form_param_invalid_time", "created_at"},
		{"malformed JSON", `{"username":`, 400, "request_body_invalid", ""},
		{"JSON array body", `[1]`, 400, "request_body_invalid", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := f.do("POST", "/users", tc.body).clerkErr(t, tc.status, tc.code)
			if paramName(e) != tc.param {
				t.Errorf("param_name %q, want %q", paramName(e), tc.param)
			}
		})
	}
	if n := f.srv.UserCount(); n != 1 {
		t.Errorf("failed creates stored users: count %d", n)
	}
	// Several unknown fields: one error each.
	r := f.do("POST", "/users", map[string]any{"username": "abcd", "zz": 1, "aa": 2})
	var eb struct{ Errors []map[string]any }
	_ = json.Unmarshal(r.body, &eb)
	if len(eb.Errors) != 2 || paramName(eb.Errors[0]) != "aa" || paramName(eb.Errors[1]) != "zz" {
		t.Errorf("errors %s", r.body)
	}
	if str(eb.Errors[0], "long_message") != "aa is not a valid parameter for this request." {
		t.Errorf("long_message %q", str(eb.Errors[0], "long_message"))
	}
}

func TestGetUserNotFound(t *testing.T) {
	f := newFixture(t, Options{})
	e := f.do("GET", "/users/user_missing", nil).clerkErr(t, http.StatusNotFound, "resource_not_found")
	if str(e, "long_message") != "No user was found with id user_missing" {
		t.Errorf("long_message %q", str(e, "long_message"))
	}
	// Escaped path segments are decoded.
	f.do("GET", "/users/user%2Fx", nil).clerkErr(t, http.StatusNotFound, "resource_not_found")
}

func TestUpdateUser(t *testing.T) {
	f := newFixture(t, Options{})
	other := f.create(map[string]any{"email_address": []string{"other@example.com"}, "username": "other", "external_id": "ext-other"})
	u := f.create(map[string]any{"email_address": []string{"me@example.com", "me2@example.com"}, "username": "me_user",
		"first_name": "Me", "last_name": "Last", "external_id": "ext-me"})
	id := str(u, "id")
	path := "/users/" + id

	got := f.do("PATCH", path, map[string]any{"first_name": "New", "locale": "fr-FR", "create_organizations_limit": 3}).ok(t)
	if str(got, "first_name") != "New" || str(got, "last_name") != "Last" || str(got, "locale") != "fr-FR" || num(got, "create_organizations_limit") != 3 {
		t.Errorf("partial update: %v %v %v %v", got["first_name"], got["last_name"], got["locale"], got["create_organizations_limit"])
	}
	// null and "" clear nullable fields; "" removes the username.
	got = f.do("PATCH", path, map[string]any{"last_name": nil, "username": "", "locale": nil}).ok(t)
	if got["last_name"] != nil || got["username"] != nil || got["locale"] != nil {
		t.Errorf("clear: %v %v %v", got["last_name"], got["username"], got["locale"])
	}
	// The removed username is free again.
	f.do("PATCH", "/users/"+str(other, "id"), map[string]any{"username": "me_user"}).ok(t)

	t.Run("uniqueness", func(t *testing.T) {
		e := f.do("PATCH", path, map[string]any{"external_id": "ext-other"}).clerkErr(t, 422, "form_identifier_exists")
		if paramName(e) != "external_id" {
			t.Errorf("param %q", paramName(e))
		}
		e = f.do("PATCH", path, map[string]any{"username": "ME_USER"}).clerkErr(t, 422, "form_identifier_exists")
		if paramName(e) != "username" {
			t.Errorf("param %q", paramName(e))
		}
		f.do("PATCH", path, map[string]any{"external_id": "ext-me"}).ok(t) // own value again
		f.do("PATCH", path, map[string]any{"external_id": nil}).ok(t)
		f.do("PATCH", "/users/"+str(other, "id"), map[string]any{"external_id": "ext-me"}).ok(t) // freed
	})
	t.Run("primary email", func(t *testing.T) {
		second := u["email_addresses"].([]any)[1].(map[string]any)
		got := f.do("PATCH", path, map[string]any{"primary_email_address_id": str(second, "id"), "notify_primary_email_address_changed": true}).ok(t)
		if str(got, "primary_email_address_id") != str(second, "id") {
			t.Errorf("primary %v", got["primary_email_address_id"])
		}
		otherEmail := other["email_addresses"].([]any)[0].(map[string]any)
		e := f.do("PATCH", path, map[string]any{"primary_email_address_id": str(otherEmail, "id")}).clerkErr(t, 422, "form_resource_not_found")
		if paramName(e) != "primary_email_address_id" {
			t.Errorf("param %q", paramName(e))
		}
	})
	t.Run("password", func(t *testing.T) {
		f.do("PATCH", path, map[string]any{"skip_password_checks": true}).clerkErr(t, 422, "form_conditional_param_missing")
		f.do("PATCH", path, map[string]any{"password": "short"}).clerkErr(t, 422, "form_password_length_too_short")
		got := f.do("PATCH", path, map[string]any{"password": "short", "skip_password_checks": true, "sign_out_of_other_sessions": true}).ok(t)
		if got["password_enabled"] != true {
			t.Errorf("password_enabled %v", got["password_enabled"])
		}
		f.do("POST", path+"/verify_password", map[string]any{"password": "short"}).ok(t)
	})
	t.Run("mfa via update", func(t *testing.T) {
		got := f.do("PATCH", path, map[string]any{"totp_secret": "JBSWY3DPEHPK3PXP", "backup_codes": []string{"c1", "c2"}}).ok(t)
		if got["totp_enabled"] != true || got["two_factor_enabled"] != true || got["backup_code_enabled"] != true || got["mfa_enabled_at"] == nil {
			t.Errorf("mfa %v %v %v %v", got["totp_enabled"], got["two_factor_enabled"], got["backup_code_enabled"], got["mfa_enabled_at"])
		}
	})
	t.Run("errors", func(t *testing.T) {
		f.do("PATCH", path, map[string]any{"email_address": []string{"x@example.com"}}).clerkErr(t, 422, "form_param_unknown")
		f.do("PATCH", path, map[string]any{"first_name": true}).clerkErr(t, 422, "form_param_type_invalid")
		f.do("PATCH", "/users/user_missing", map[string]any{"first_name": "x"}).clerkErr(t, 404, "resource_not_found")
	})
}

func TestUpdatedAtStrictlyIncreasing(t *testing.T) {
	f := newFixture(t, Options{}) // the fake clock never moves on its own
	id := f.createEmail("ts@example.com")
	last := int64(0)
	steps := []struct {
		method, path string
		body         any
	}{
		{"PATCH", "", map[string]any{"first_name": "A"}},
		{"PATCH", "", map[string]any{"first_name": "B"}},
		{"PATCH", "/metadata", map[string]any{"public_metadata": map[string]any{"a": 1}}},
		{"PUT", "/metadata", map[string]any{"public_metadata": map[string]any{"a": 2}}},
		{"POST", "/ban", nil},
		{"POST", "/unban", nil},
		{"POST", "/lock", nil},
		{"POST", "/unlock", nil},
		{"PATCH", "", map[string]any{"password": "password123"}},
	}
	for i, s := range steps {
		u := f.do(s.method, "/users/"+id+s.path, s.body).ok(t)
		ts := num(u, "updated_at")
		if ts <= last {
			t.Fatalf("step %d (%s %s): updated_at %d not after %d", i, s.method, s.path, ts, last)
		}
		last = ts
	}
	// No change, no move.
	for _, s := range []struct {
		method, path string
		body         any
	}{{"PATCH", "", map[string]any{}}, {"PATCH", "/metadata", map[string]any{}}, {"POST", "/unban", "{}"}, {"PATCH", "", map[string]any{"first_name": "B"}}} {
		if u := f.do(s.method, "/users/"+id+s.path, s.body).ok(t); num(u, "updated_at") != last {
			t.Errorf("%s %s without change moved updated_at %d → %d", s.method, s.path, last, num(u, "updated_at"))
		}
	}
	// The clock moving ahead is reflected exactly.
	f.clock.Advance(time.Hour)
	u := f.do("PATCH", "/users/"+id, map[string]any{"first_name": "C"}).ok(t)
	if num(u, "updated_at") != f.clock.Now().UnixMilli() {
		t.Errorf("updated_at %d, want clock %d", num(u, "updated_at"), f.clock.Now().UnixMilli())
	}
}

func TestDeleteUser(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.create(map[string]any{"email_address": []string{"del@example.com"}, "username": "deluser", "external_id": "ext-del"})["id"].(string)
	got := f.do("DELETE", "/users/"+id, "null").ok(t)
	if mustJSON(t, got) != `{"deleted":true,"id":"`+id+`","object":"user"}` {
		t.Errorf("deleted object %v", got)
	}
	f.do("GET", "/users/"+id, nil).clerkErr(t, 404, "resource_not_found")
	f.do("DELETE", "/users/"+id, nil).clerkErr(t, 404, "resource_not_found")
	if _, ok := f.srv.User(id); ok || f.srv.UserCount() != 0 {
		t.Error("user still stored")
	}
	// Identifiers are free again.
	f.create(map[string]any{"email_address": []string{"del@example.com"}, "username": "deluser", "external_id": "ext-del"})
}

func TestBodylessCalls(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.createEmail("bodyless@example.com")
	for _, body := range []any{nil, "", "null", "{}", " null \n"} {
		for _, p := range []string{"/ban", "/unban", "/lock", "/unlock"} {
			f.do("POST", "/users/"+id+p, body).ok(t)
		}
		f.do("DELETE", "/users/"+id+"/mfa", body).ok(t)
		f.do("DELETE", "/users/"+id+"/totp", body).ok(t)
		f.do("DELETE", "/users/"+id+"/backup_code", body).ok(t)
		f.do("DELETE", "/users/"+id+"/profile_image", body).ok(t)
	}
	e := f.do("POST", "/users/"+id+"/ban", map[string]any{"reason": "spam"}).clerkErr(t, 422, "form_param_unknown")
	if paramName(e) != "reason" {
		t.Errorf("param %q", paramName(e))
	}
	f.do("DELETE", "/users/"+id, `{"x":1}`).clerkErr(t, 422, "form_param_unknown")
	f.do("POST", "/users/"+id+"/lock", `[]`).clerkErr(t, 400, "request_body_invalid")
}

func TestBanLock(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.createEmail("ban@example.com")
	if u := f.do("POST", "/users/"+id+"/ban", nil).ok(t); u["banned"] != true {
		t.Errorf("ban: %v", u["banned"])
	}
	if u := f.do("POST", "/users/"+id+"/ban", nil).ok(t); u["banned"] != true { // idempotent
		t.Errorf("ban again: %v", u["banned"])
	}
	if u := f.do("POST", "/users/"+id+"/unban", nil).ok(t); u["banned"] != false {
		t.Errorf("unban: %v", u["banned"])
	}
	u := f.do("POST", "/users/"+id+"/lock", nil).ok(t)
	if u["locked"] != true || u["lockout_expires_in_seconds"] != nil {
		t.Errorf("lock with default lockout: %v %v", u["locked"], u["lockout_expires_in_seconds"])
	}
	if u := f.do("POST", "/users/"+id+"/unlock", nil).ok(t); u["locked"] != false || u["lockout_expires_in_seconds"] != nil {
		t.Errorf("unlock: %v %v", u["locked"], u["lockout_expires_in_seconds"])
	}
	for _, p := range []string{"ban", "unban", "lock", "unlock"} {
		f.do("POST", "/users/user_missing/"+p, nil).clerkErr(t, 404, "resource_not_found")
	}

	t.Run("finite lockout counts down", func(t *testing.T) {
		g := newFixture(t, Options{LockoutSeconds: new(int64(3600))})
		id := g.createEmail("lock@example.com")
		u := g.do("POST", "/users/"+id+"/lock", nil).ok(t)
		if u["locked"] != true || num(u, "lockout_expires_in_seconds") != 3600 {
			t.Fatalf("lock: %v %v", u["locked"], u["lockout_expires_in_seconds"])
		}
		g.clock.Advance(1000 * time.Second)
		if u := g.do("GET", "/users/"+id, nil).ok(t); num(u, "lockout_expires_in_seconds") != 2600 {
			t.Errorf("after 1000 s: %v", u["lockout_expires_in_seconds"])
		}
		g.clock.Advance(2600 * time.Second)
		if u := g.do("GET", "/users/"+id, nil).ok(t); u["locked"] != false || u["lockout_expires_in_seconds"] != nil {
			t.Errorf("after expiry: %v %v", u["locked"], u["lockout_expires_in_seconds"])
		}
	})
}

func TestBulkBan(t *testing.T) {
	f := newFixture(t, Options{})
	a, b := f.createEmail("a@example.com"), f.createEmail("b@example.com")
	l := f.do("POST", "/users/ban", map[string]any{"user_ids": []string{a, b, "user_missing"}}).list(t)
	if len(l) != 2 || l[0]["banned"] != true || l[1]["banned"] != true {
		t.Errorf("bulk ban: %v", l)
	}
	l = f.do("POST", "/users/unban", map[string]any{"user_ids": []string{b}}).list(t)
	if len(l) != 1 || l[0]["banned"] != false || str(l[0], "id") != b {
		t.Errorf("bulk unban: %v", l)
	}
	f.do("POST", "/users/ban", map[string]any{}).clerkErr(t, 422, "form_param_missing")
	ids := make([]string, 51)
	for i := range ids {
		ids[i] = a
	}
	f.do("POST", "/users/ban", map[string]any{"user_ids": ids}).clerkErr(t, 400, "bulk_size_exceeded")
}
