package clerkfake

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

const totpSecret = "JBSWY3DPEHPK3PXP"

func TestDisableMFA(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.create(map[string]any{"username": "mfa_all", "totp_secret": totpSecret, "backup_codes": []string{"b1", "b2"}})["id"].(string)
	f.clock.Advance(time.Minute)
	got := f.do("DELETE", "/users/"+id+"/mfa", "null").ok(t)
	if mustJSON(t, got) != `{"user_id":"`+id+`"}` {
		t.Errorf("body %v", got)
	}
	u := f.do("GET", "/users/"+id, nil).ok(t)
	if u["two_factor_enabled"] != false || u["totp_enabled"] != false || u["backup_code_enabled"] != false {
		t.Errorf("flags %v %v %v", u["two_factor_enabled"], u["totp_enabled"], u["backup_code_enabled"])
	}
	if num(u, "mfa_disabled_at") != f.clock.Now().UnixMilli() || num(u, "mfa_enabled_at") <= 0 {
		t.Errorf("mfa_disabled_at %v mfa_enabled_at %v", u["mfa_disabled_at"], u["mfa_enabled_at"])
	}
	// The secrets are gone, not only the flags.
	f.do("POST", "/users/"+id+"/verify_totp", map[string]any{"code": "b1"}).clerkErr(t, 400, "totp_disabled")
	f.do("DELETE", "/users/user_missing/mfa", nil).clerkErr(t, 404, "resource_not_found")
}

func TestDeleteTOTPAndBackupCodes(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.create(map[string]any{"username": "mfa_parts", "totp_secret": totpSecret, "backup_codes": []string{"b1"}})["id"].(string)
	if got := f.do("DELETE", "/users/"+id+"/totp", nil).ok(t); str(got, "user_id") != id {
		t.Errorf("body %v", got)
	}
	u := f.do("GET", "/users/"+id, nil).ok(t)
	if u["totp_enabled"] != false || u["backup_code_enabled"] != true || u["two_factor_enabled"] != true || u["mfa_disabled_at"] != nil {
		t.Errorf("after totp delete: %v %v %v %v", u["totp_enabled"], u["backup_code_enabled"], u["two_factor_enabled"], u["mfa_disabled_at"])
	}
	if got := f.do("DELETE", "/users/"+id+"/backup_code", nil).ok(t); str(got, "user_id") != id {
		t.Errorf("body %v", got)
	}
	u = f.do("GET", "/users/"+id, nil).ok(t)
	if u["backup_code_enabled"] != false || u["two_factor_enabled"] != false || u["mfa_disabled_at"] == nil {
		t.Errorf("after backup delete: %v %v %v", u["backup_code_enabled"], u["two_factor_enabled"], u["mfa_disabled_at"])
	}
	f.do("DELETE", "/users/user_missing/totp", nil).clerkErr(t, 404, "resource_not_found")
	f.do("DELETE", "/users/user_missing/backup_code", nil).clerkErr(t, 404, "resource_not_found")
}

func TestVerifyPassword(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.create(map[string]any{"username": "pw_user", "password": "s3cret-pass"})["id"].(string)
	nopw := f.create(map[string]any{"username": "no_pw_user"})["id"].(string)
	if got := f.do("POST", "/users/"+id+"/verify_password", map[string]any{"password": "s3cret-pass"}).ok(t); mustJSON(t, got) != `{"verified":true}` {
		t.Errorf("body %v", got)
	}
	f.do("POST", "/users/"+id+"/verify_password", map[string]any{"password": "wrong-pass"}).clerkErr(t, 422, "incorrect_password")
	f.do("POST", "/users/"+id+"/verify_password", map[string]any{}).clerkErr(t, 422, "form_param_missing")
	f.do("POST", "/users/"+id+"/verify_password", map[string]any{"password": "x", "extra": 1}).clerkErr(t, 422, "form_param_unknown")
	f.do("POST", "/users/"+nopw+"/verify_password", map[string]any{"password": "whatever"}).clerkErr(t, 400, "no_password_set")
	f.do("POST", "/users/user_missing/verify_password", map[string]any{"password": "x"}).clerkErr(t, 404, "resource_not_found")

	// remove_password takes it away again.
	if u := f.do("POST", "/users/"+id+"/remove_password", map[string]any{"sign_out_of_other_sessions": true}).ok(t); u["password_enabled"] != false {
		t.Errorf("password_enabled %v", u["password_enabled"])
	}
	f.do("POST", "/users/"+id+"/verify_password", map[string]any{"password": "s3cret-pass"}).clerkErr(t, 400, "no_password_set")
}

func TestVerifyTOTP(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.create(map[string]any{"username": "totp_user", "totp_secret": totpSecret, "backup_codes": []string{"backup-1", "backup-2"}})["id"].(string)
	plain := f.create(map[string]any{"username": "plain_user"})["id"].(string)
	path := "/users/" + id + "/verify_totp"

	code, err := TOTPCode(totpSecret, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := f.do("POST", path, map[string]any{"code": code}).ok(t); mustJSON(t, got) != `{"code_type":"totp","verified":true}` {
		t.Errorf("totp: %v", got)
	}
	prev, _ := TOTPCode(totpSecret, f.clock.Now().Add(-30*time.Second))
	f.do("POST", path, map[string]any{"code": prev}).ok(t) // one period of drift is accepted
	old, _ := TOTPCode(totpSecret, f.clock.Now().Add(-5*time.Minute))
	if old != code && old != prev {
		f.do("POST", path, map[string]any{"code": old}).clerkErr(t, 422, "totp_incorrect_code")
	}
	f.do("POST", path, map[string]any{"code": "12345"}).clerkErr(t, 422, "totp_invalid_length")

	if got := f.do("POST", path, map[string]any{"code": "backup-1"}).ok(t); str(got, "code_type") != "backup_code" {
		t.Errorf("backup: %v", got)
	}
	f.do("POST", path, map[string]any{"code": "backup-1"}).clerkErr(t, 422, "totp_invalid_length") // consumed
	f.do("POST", path, map[string]any{}).clerkErr(t, 422, "form_param_missing")
	f.do("POST", "/users/"+plain+"/verify_totp", map[string]any{"code": "123456"}).clerkErr(t, 400, "totp_disabled")
	f.do("POST", "/users/user_missing/verify_totp", map[string]any{"code": "123456"}).clerkErr(t, 404, "resource_not_found")

	// RFC 6238 test vector (SHA1, secret "12345678901234567890", T=59 s → 94287082, last 6 digits).
	if c, _ := TOTPCode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", time.Unix(59, 0)); c != "287082" {
		t.Errorf("RFC 6238 vector: %s", c)
	}
}

func multipartBody(t *testing.T, field string, content []byte) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, err := w.CreateFormFile(field, "profileImage")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(content)
	_ = w.Close()
	return buf.String(), w.FormDataContentType()
}

func TestProfileImage(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.createEmail("img@example.com")
	before := f.do("GET", "/users/"+id, nil).ok(t)
	body, ct := multipartBody(t, "file", []byte("\x89PNG fake image"))
	u := f.do("POST", "/users/"+id+"/profile_image", body, "Content-Type: "+ct).ok(t)
	if u["has_image"] != true || str(u, "image_url") == str(before, "image_url") || !strings.HasPrefix(str(u, "image_url"), "https://img.clerk.com/") {
		t.Errorf("after upload: %v %v", u["has_image"], u["image_url"])
	}
	u = f.do("DELETE", "/users/"+id+"/profile_image", nil).ok(t)
	if u["has_image"] != false || str(u, "image_url") != str(before, "image_url") {
		t.Errorf("after delete: %v %v", u["has_image"], u["image_url"])
	}
	wrong, ct2 := multipartBody(t, "image", []byte("data"))
	f.do("POST", "/users/"+id+"/profile_image", wrong, "Content-Type: "+ct2).clerkErr(t, 400, "form_param_missing")
	empty, ct3 := multipartBody(t, "file", nil)
	f.do("POST", "/users/"+id+"/profile_image", empty, "Content-Type: "+ct3).clerkErr(t, 400, "form_param_missing")
	f.do("POST", "/users/"+id+"/profile_image", `{"file":"x"}`).clerkErr(t, 400, "form_param_missing")
	f.do("POST", "/users/user_missing/profile_image", body, "Content-Type: "+ct).clerkErr(t, 404, "resource_not_found")
	f.do("DELETE", "/users/user_missing/profile_image", nil).clerkErr(t, 404, "resource_not_found")
}

// linkedFixture seeds a user with passkeys, external accounts, a web3
// wallet, memberships and invitations.
func linkedFixture(t *testing.T) *fixture {
	f := newFixture(t, Options{})
	err := f.srv.Seed(rawUsers(t, `{
		"id":"user_linked","first_name":"Lin","email_addresses":[{"id":"idn_mail","email_address":"linked@example.com"}],
		"passkeys":[{"id":"idn_pk1","name":"Laptop"},{"id":"idn_pk2","name":"Phone"}],
		"web3_wallets":[{"id":"idn_w1","web3_wallet":"0x1234567890123456789012345678901234567890"},{"id":"idn_w2","web3_wallet":"0x2234567890123456789012345678901234567890"}],
		"external_accounts":[
			{"id":"eac_g1","provider":"oauth_google","provider_user_id":"g-1","approved_scopes":"email profile","label":"work"},
			{"id":"eac_g2","provider":"oauth_google","provider_user_id":"g-2"},
			{"id":"eac_gh","provider":"oauth_github","provider_user_id":"gh-1"}],
		"organization_memberships":[
			{"organization":{"id":"org_1","name":"Acme Inc"},"role":"org:admin"},
			{"organization":{"id":"org_2","name":"Beta"}},
			{"organization":{"id":"org_3","name":"Gamma"}}],
		"organization_invitations":[
			{"id":"orginv_1","status":"pending","organization_id":"org_9"},
			{"id":"orginv_2","status":"accepted","organization_id":"org_8"},
			{"id":"orginv_3","status":"revoked","organization_id":"org_7"}]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestDeleteLinkedResources(t *testing.T) {
	f := linkedFixture(t)
	if got := f.do("DELETE", "/users/user_linked/passkeys/idn_pk1", "null").ok(t); mustJSON(t, got) != `{"deleted":true,"id":"idn_pk1","object":"passkey"}` {
		t.Errorf("passkey: %v", got)
	}
	if got := f.do("DELETE", "/users/user_linked/external_accounts/eac_gh", nil).ok(t); mustJSON(t, got) != `{"deleted":true,"id":"eac_gh","object":"external_account"}` {
		t.Errorf("external account: %v", got)
	}
	if got := f.do("DELETE", "/users/user_linked/web3_wallets/idn_w1", nil).ok(t); mustJSON(t, got) != `{"deleted":true,"id":"idn_w1","object":"web3_wallet"}` {
		t.Errorf("web3 wallet: %v", got)
	}
	u := f.do("GET", "/users/user_linked", nil).ok(t)
	if n := len(u["passkeys"].([]any)); n != 1 {
		t.Errorf("passkeys left %d", n)
	}
	if n := len(u["external_accounts"].([]any)); n != 2 {
		t.Errorf("external accounts left %d", n)
	}
	if str(u, "primary_web3_wallet_id") != "idn_w2" {
		t.Errorf("primary wallet %v, want the remaining idn_w2", u["primary_web3_wallet_id"])
	}
	// Deleted wallet address is free for others.
	f.create(map[string]any{"web3_wallet": []string{"0x1234567890123456789012345678901234567890"}})
	f.do("DELETE", "/users/user_linked/passkeys/idn_pk1", nil).clerkErr(t, 404, "resource_not_found")
	f.do("DELETE", "/users/user_linked/external_accounts/eac_nope", nil).clerkErr(t, 404, "resource_not_found")
	f.do("DELETE", "/users/user_missing/passkeys/idn_pk2", nil).clerkErr(t, 404, "resource_not_found")
	f.do("DELETE", "/users/user_missing/external_accounts/eac_g1", nil).clerkErr(t, 404, "resource_not_found")
}

func TestOAuthAccessTokens(t *testing.T) {
	f := linkedFixture(t)
	l := f.do("GET", "/users/user_linked/oauth_access_tokens/oauth_google", nil).list(t)
	if len(l) != 2 || str(l[0], "external_account_id") != "eac_g1" || str(l[0], "provider_user_id") != "g-1" || str(l[0], "label") != "work" ||
		mustJSON(t, l[0]["scopes"]) != `["email","profile"]` || str(l[0], "object") != "oauth_access_token" || str(l[0], "token") == "" {
		t.Errorf("bare array: %v", l)
	}
	p := f.do("GET", "/users/user_linked/oauth_access_tokens/google?paginated=true&limit=1&offset=1", nil).ok(t)
	data := p["data"].([]any)
	if num(p, "total_count") != 2 || len(data) != 1 || str(data[0].(map[string]any), "external_account_id") != "eac_g2" {
		t.Errorf("paginated: %v", p)
	}
	if l := f.do("GET", "/users/user_linked/oauth_access_tokens/oauth_facebook", nil).list(t); len(l) != 0 {
		t.Errorf("other provider: %v", l)
	}
	f.do("GET", "/users/user_missing/oauth_access_tokens/oauth_google", nil).clerkErr(t, 404, "resource_not_found")
	f.do("GET", "/users/user_linked/oauth_access_tokens/oauth_google?paginated=maybe", nil).clerkErr(t, 400, "invalid_query_parameter_value")
}

func TestOrganizationMembershipsAndInvitations(t *testing.T) {
	f := linkedFixture(t)
	m := f.do("GET", "/users/user_linked/organization_memberships?limit=2", nil).ok(t)
	data := m["data"].([]any)
	if num(m, "total_count") != 3 || len(data) != 2 {
		t.Fatalf("memberships: %v", m)
	}
	first := data[0].(map[string]any)
	org := first["organization"].(map[string]any)
	pud := first["public_user_data"].(map[string]any)
	if str(first, "role") != "org:admin" || str(org, "id") != "org_1" || str(org, "slug") != "acme-inc" ||
		str(pud, "user_id") != "user_linked" || str(pud, "identifier") != "linked@example.com" || str(pud, "first_name") != "Lin" {
		t.Errorf("membership: %v", first)
	}
	if m := f.do("GET", "/users/user_linked/organization_memberships?offset=2", nil).ok(t); len(m["data"].([]any)) != 1 {
		t.Errorf("offset: %v", m)
	}
	f.do("GET", "/users/user_missing/organization_memberships", nil).clerkErr(t, 404, "resource_not_found")

	inv := f.do("GET", "/users/user_linked/organization_invitations", nil).ok(t)
	if num(inv, "total_count") != 3 {
		t.Errorf("invitations: %v", inv)
	}
	inv = f.do("GET", "/users/user_linked/organization_invitations?status=pending&status=revoked", nil).ok(t)
	if num(inv, "total_count") != 2 {
		t.Errorf("status filter: %v", inv)
	}
	one := f.do("GET", "/users/user_linked/organization_invitations?status=accepted", nil).ok(t)["data"].([]any)[0].(map[string]any)
	if str(one, "id") != "orginv_2" || str(one, "email_address") != "linked@example.com" || str(one, "object") != "organization_invitation" {
		t.Errorf("invitation: %v", one)
	}
	f.do("GET", "/users/user_linked/organization_invitations?status=lost", nil).clerkErr(t, 400, "invalid_query_parameter_value")
	f.do("GET", "/users/user_missing/organization_invitations", nil).clerkErr(t, 404, "resource_not_found")
}

// TestHTTPClientTimeoutStillApplies shows the "lost response" behaviour of
// latency: the client gives up, the server still applies the request.
func TestHTTPClientTimeoutStillApplies(t *testing.T) {
	f := newFixture(t, Options{Latency: 300 * time.Millisecond})
	client := &http.Client{Timeout: 50 * time.Millisecond}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", f.base+"/users", strings.NewReader(`{"username":"slow_user"}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	res, err := client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		t.Fatal("expected a client timeout")
	}
	eventually(t, 5*time.Second, func() bool { return f.srv.UserCount() == 1 }, "the timed-out create was not applied")
	start := time.Now()
	f.do("GET", "/users/count", nil).ok(t)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("request took %v, want at least the 300ms latency", d)
	}
}
