package clerkfake

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clerk/clerk-sdk-go/v2"
	clerkuser "github.com/clerk/clerk-sdk-go/v2/user"
)

// sdkClient returns clerk-sdk-go v2.7.0's user client pointed at the fake,
// with every response checked against the spec.
func sdkClient(f *fixture) *clerkuser.Client {
	cfg := &clerk.ClientConfig{}
	cfg.Key = new(testKey)
	cfg.URL = new(f.base)
	cfg.HTTPClient = f.client
	return clerkuser.NewClient(cfg)
}

func apiErr(t *testing.T, err error, status int, code string) *clerk.APIErrorResponse {
	t.Helper()
	var ae *clerk.APIErrorResponse
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T), want *clerk.APIErrorResponse", err, err)
	}
	if ae.HTTPStatusCode != status || len(ae.Errors) == 0 || ae.Errors[0].Code != code {
		t.Fatalf("error %d %+v, want %d %s", ae.HTTPStatusCode, ae.Errors, status, code)
	}
	if ae.TraceID == "" || ae.Response.TraceID != ae.TraceID {
		t.Errorf("trace ids: body %q header %q", ae.TraceID, ae.Response.TraceID)
	}
	return ae
}

// wantAPIErr is apiErr for callers that need only the check.
func wantAPIErr(t *testing.T, err error, status int, code string) {
	t.Helper()
	_ = apiErr(t, err, status, code)
}

// TestSDKConformance drives every operation of clerk-sdk-go v2.7.0's user
// package against the fake.
func TestSDKConformance(t *testing.T) {
	f := newFixture(t, Options{})
	if err := f.srv.Seed(rawUsers(t, `{"id":"user_linked","email_addresses":[{"email_address":"linked@example.com"}],
		"passkeys":[{"id":"idn_pk"}],"external_accounts":[{"id":"eac_1","provider":"oauth_google"}],
		"organization_memberships":[{"organization":{"id":"org_1","name":"Acme"}}],
		"organization_invitations":[{"id":"orginv_1","status":"pending"},{"id":"orginv_2","status":"accepted"}]}`)); err != nil {
		t.Fatal(err)
	}
	c := sdkClient(f)
	ctx := context.Background()

	created, err := c.Create(ctx, &clerkuser.CreateParams{
		EmailAddresses: &[]string{"sdk@example.com"}, Username: new("sdk_user"), FirstName: new("Sdk"),
		ExternalID: new("ext-sdk"), Password: new("sdk-password-1"), TOTPSecret: new(totpSecret),
		BackupCodes: &[]string{"bc-1"}, PublicMetadata: new(json.RawMessage(`{"role":"admin","nested":{"a":1}}`)),
		LegalAcceptedAt: new("2024-01-01T00:00:00Z"), CreateOrganizationsLimit: new(2),
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	id := created.ID
	if created.PrimaryEmailAddressID == nil || len(created.EmailAddresses) != 1 || *created.PrimaryEmailAddressID != created.EmailAddresses[0].ID ||
		!created.TOTPEnabled || !created.TwoFactorEnabled || !created.BackupCodeEnabled || !created.PasswordEnabled ||
		created.Response == nil || created.Response.TraceID == "" {
		t.Errorf("Create result: %+v", created)
	}
	_, err = c.Create(ctx, &clerkuser.CreateParams{EmailAddresses: &[]string{"SDK@example.com"}})
	if ae := apiErr(t, err, 422, "form_identifier_exists"); !strings.Contains(string(ae.Errors[0].Meta), "email_address") {
		t.Errorf("meta %s", ae.Errors[0].Meta)
	}

	got, err := c.Get(ctx, id)
	if err != nil || got.ID != id || got.Username == nil || *got.Username != "sdk_user" {
		t.Fatalf("Get: %v %+v", err, got)
	}
	_, err = c.Get(ctx, "user_missing")
	wantAPIErr(t, err, 404, "resource_not_found")

	list, err := c.List(ctx, &clerkuser.ListParams{EmailAddresses: []string{"sdk@example.com", "linked@example.com"},
		ListParams: clerk.ListParams{Limit: clerk.Int64(1)}, OrderBy: new("-created_at")})
	if err != nil || len(list.Users) != 1 || list.TotalCount != 2 || list.Users[0].ID != id {
		t.Fatalf("List: %v %+v", err, list)
	}
	cnt, err := c.Count(ctx, &clerkuser.ListParams{UserIDs: []string{id}})
	if err != nil || cnt.TotalCount != 1 || cnt.Object != "total_count" {
		t.Fatalf("Count: %v %+v", err, cnt)
	}

	// Update with metadata = PATCH (without metadata) + PUT /metadata in v2.7.0.
	upd, err := c.Update(ctx, id, &clerkuser.UpdateParams{FirstName: new("Updated"), Username: new(""),
		PrivateMetadata: new(json.RawMessage(`{"crm":"C-9"}`))}) //nolint:staticcheck // SA1019: tests the deprecated field's routing
	if err != nil || upd.FirstName == nil || *upd.FirstName != "Updated" || upd.Username != nil || string(upd.PrivateMetadata) != `{"crm":"C-9"}` {
		t.Fatalf("Update: %v %+v", err, upd)
	}
	st := f.srv.Stats()
	if st.CountStatus("PATCH /v1/users/{user_id}", 200) != 1 || st.CountStatus("PUT /v1/users/{user_id}/metadata", 200) != 1 {
		t.Errorf("Update fan-out: %v", st.Requests)
	}
	merged, err := c.UpdateMetadata(ctx, id, &clerkuser.UpdateMetadataParams{
		PublicMetadata: new(json.RawMessage(`{"nested":{"a":null,"b":2},"role":null}`))})
	if err != nil || string(merged.PublicMetadata) != `{"nested":{"b":2}}` {
		t.Fatalf("UpdateMetadata: %v %s", err, merged.PublicMetadata)
	}
	replaced, err := c.ReplaceMetadata(ctx, id, &clerkuser.ReplaceMetadataParams{
		PublicMetadata: new(json.RawMessage(`{"only":true}`)), UnsafeMetadata: new(json.RawMessage(`{}`))})
	if err != nil || string(replaced.PublicMetadata) != `{"only":true}` || string(replaced.PrivateMetadata) != `{"crm":"C-9"}` {
		t.Fatalf("ReplaceMetadata: %v %s %s", err, replaced.PublicMetadata, replaced.PrivateMetadata)
	}

	for name, call := range map[string]func(context.Context, string) (*clerk.User, error){
		"Ban": c.Ban, "Unban": c.Unban, "Lock": c.Lock, "Unlock": c.Unlock, "DeleteProfileImage": c.DeleteProfileImage,
	} {
		u, err := call(ctx, id)
		if err != nil || u.ID != id {
			t.Errorf("%s: %v", name, err)
		}
		_, err = call(ctx, "user_missing")
		wantAPIErr(t, err, 404, "resource_not_found")
	}
	if u, _ := c.Ban(ctx, id); !u.Banned {
		t.Error("Ban did not ban")
	}
	if u, _ := c.Lock(ctx, id); !u.Locked || u.LockoutExpiresInSeconds != nil {
		t.Error("Lock did not lock")
	}

	vp, err := c.VerifyPassword(ctx, &clerkuser.VerifyPasswordParams{UserID: id, Password: "sdk-password-1"})
	if err != nil || !vp.Verified {
		t.Errorf("VerifyPassword: %v %+v", err, vp)
	}
	_, err = c.VerifyPassword(ctx, &clerkuser.VerifyPasswordParams{UserID: id, Password: "wrong-password"})
	wantAPIErr(t, err, 422, "incorrect_password")

	img, err := os.Open(writeTemp(t, "avatar.png", "\x89PNG…"))
	if err != nil {
		t.Fatal(err)
	}
	withImg, err := c.UpdateProfileImage(ctx, id, &clerkuser.UpdateProfileImageParams{File: img})
	if err != nil || !withImg.HasImage {
		t.Errorf("UpdateProfileImage: %v", err)
	}

	totp, err := c.CreateTOTP(ctx, id) //nolint:staticcheck // SA1019: a deprecated no-op in the SDK; proves it sends no request
	if err != nil || totp.Object != "totp" {
		t.Errorf("CreateTOTP: %v %+v", err, totp)
	}
	if n := f.srv.Stats().Count("POST /v1/users/{user_id}/totp"); n != 0 {
		t.Errorf("CreateTOTP sent %d requests", n)
	}
	if m, err := c.DeleteTOTP(ctx, id); err != nil || m.UserID != id {
		t.Errorf("DeleteTOTP: %v %+v", err, m)
	}
	if m, err := c.DeleteBackupCode(ctx, id); err != nil || m.UserID != id {
		t.Errorf("DeleteBackupCode: %v %+v", err, m)
	}
	if m, err := c.DeleteMFA(ctx, &clerkuser.DeleteMFAParams{ID: id}); err != nil || m.UserID != id {
		t.Errorf("DeleteMFA: %v %+v", err, m)
	}
	if u, _ := c.Get(ctx, id); u.TwoFactorEnabled || u.TOTPEnabled || u.BackupCodeEnabled || u.MFADisabledAt == nil {
		t.Errorf("MFA not disabled: %+v", u)
	}

	if d, err := c.DeletePasskey(ctx, "user_linked", "idn_pk"); err != nil || !d.Deleted || d.Object != "passkey" || d.ID != "idn_pk" {
		t.Errorf("DeletePasskey: %v %+v", err, d)
	}
	if d, err := c.DeleteExternalAccount(ctx, &clerkuser.DeleteExternalAccountParams{UserID: "user_linked", ID: "eac_1"}); err != nil || !d.Deleted || d.ID != "eac_1" {
		t.Errorf("DeleteExternalAccount: %v %+v", err, d)
	}
	_, err = c.DeleteExternalAccount(ctx, &clerkuser.DeleteExternalAccountParams{UserID: "user_linked", ID: "eac_1"})
	wantAPIErr(t, err, 404, "resource_not_found")

	if err := f.srv.Seed(rawUsers(t, `{"id":"user_oauth","external_accounts":[{"id":"eac_2","provider":"oauth_google","approved_scopes":"email"}]}`)); err != nil {
		t.Fatal(err)
	}
	toks, err := c.ListOAuthAccessTokens(ctx, &clerkuser.ListOAuthAccessTokensParams{ID: "user_oauth", Provider: "oauth_google"})
	if err != nil || toks.TotalCount != 1 || len(toks.OAuthAccessTokens) != 1 || toks.OAuthAccessTokens[0].ExternalAccountID != "eac_2" ||
		len(toks.OAuthAccessTokens[0].Scopes) != 1 {
		t.Errorf("ListOAuthAccessTokens: %v %+v", err, toks)
	}
	mems, err := c.ListOrganizationMemberships(ctx, "user_linked", &clerkuser.ListOrganizationMembershipsParams{})
	if err != nil || mems.TotalCount != 1 || mems.OrganizationMemberships[0].Organization.ID != "org_1" ||
		mems.OrganizationMemberships[0].PublicUserData.UserID != "user_linked" {
		t.Errorf("ListOrganizationMemberships: %v %+v", err, mems)
	}
	invs, err := c.ListOrganizationInvitations(ctx, &clerkuser.ListOrganizationInvitationsParams{UserID: "user_linked", Statuses: &[]string{"pending"}})
	if err != nil || invs.TotalCount != 1 || invs.OrganizationInvitations[0].ID != "orginv_1" {
		t.Errorf("ListOrganizationInvitations: %v %+v", err, invs)
	}

	del, err := c.Delete(ctx, id)
	if err != nil || !del.Deleted || del.ID != id || del.Object != "user" {
		t.Fatalf("Delete: %v %+v", err, del)
	}
	_, err = c.Delete(ctx, id)
	wantAPIErr(t, err, 404, "resource_not_found")

	// The SDK sends body-less calls as JSON null and always the 2026-05-12 version.
	if st := f.srv.Stats(); st.Count("POST /v1/users/{user_id}/ban") != 3 || st.Count("DELETE /v1/users/{user_id}/mfa") != 1 {
		t.Errorf("stats %v", st.Requests)
	}
}

// TestSDKErrorsOnFaults shows what the official SDK makes of the fake's
// rate limits and injected faults: typed errors with Retry-After for 429,
// and the untyped error Clerk's SDK returns for a non-JSON 502.
func TestSDKErrorsOnFaults(t *testing.T) {
	f := newFixture(t, Options{PerUserRateLimit: 1})
	c := sdkClient(f)
	ctx := context.Background()
	u, err := c.Create(ctx, &clerkuser.CreateParams{Username: new("sdk_faults")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateMetadata(ctx, u.ID, &clerkuser.UpdateMetadataParams{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.UpdateMetadata(ctx, u.ID, &clerkuser.UpdateMetadataParams{})
	ae := apiErr(t, err, http.StatusTooManyRequests, "too_many_requests")
	if ae.Response.Header.Get("Retry-After") != "10" {
		t.Errorf("Retry-After %q", ae.Response.Header.Get("Retry-After"))
	}
	_ = f.srv.SetFaults(Faults{Rate502: 1})
	_, err = c.Get(ctx, u.ID)
	var typed *clerk.APIErrorResponse
	if err == nil || errors.As(err, &typed) || !strings.Contains(err.Error(), "502 Bad Gateway") {
		t.Errorf("502: %v", err)
	}
	_ = f.srv.SetFaults(Faults{Rate503: 1})
	_, err = c.Get(ctx, u.ID)
	wantAPIErr(t, err, 503, "maintenance_mode")
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
