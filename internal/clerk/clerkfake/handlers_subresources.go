package clerkfake

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// maxImageBytes caps profile image uploads.
const maxImageBytes = 10 << 20

// metadataBody parses the PATCH/PUT /users/{id}/metadata body.
func metadataBody(c *call) (vals [3]map[string]any, present [3]bool, names []string, e *apiError) {
	b, e := readBody(c.r, metadataFields...)
	if e != nil {
		return vals, present, nil, e
	}
	for i, f := range metadataFields {
		if vals[i], present[i], e = b.object(f); e != nil {
			return vals, present, nil, e
		}
		if present[i] {
			names = append(names, f)
		}
	}
	return vals, present, names, nil
}

// writeMetadata sets the three metadata values if they fit the 8 KB limit.
func writeMetadata(u *user, next [3]any, names []string) *apiError {
	if n := metadataSize(next[0], next[1], next[2]); n > MetadataLimitBytes {
		param := metadataFields[0]
		if len(names) > 0 {
			param = names[0]
		}
		return errParamTooLarge(param, n, MetadataLimitBytes)
	}
	u.data.PublicMetadata, u.data.PrivateMetadata, u.data.UnsafeMetadata = next[0], next[1], next[2]
	return nil
}

// mergeMetadata answers PATCH /users/{id}/metadata: deep merge; null
// deletes a key at any depth; a top-level null resets the field to {}.
func (s *Server) mergeMetadata(c *call) reply {
	vals, present, names, e := metadataBody(c)
	if e != nil {
		return fail(e)
	}
	return s.mutateReply(c, func(u *user, _ int64) (bool, *apiError) {
		cur := [3]any{u.data.PublicMetadata, u.data.PrivateMetadata, u.data.UnsafeMetadata}
		for i := range vals {
			if !present[i] {
				continue
			}
			if vals[i] == nil {
				cur[i] = emptyObject()
				continue
			}
			base, _ := cur[i].(map[string]any)
			cur[i] = deepMerge(base, vals[i])
		}
		return false, writeMetadata(u, cur, names)
	})
}

// replaceMetadata answers PUT /users/{id}/metadata: each supplied field is
// replaced in full; {} clears it; omitted fields are untouched. null stores
// JSON null (as Clerk's 2026-05-12 upgrade guide says) in private_metadata,
// the only metadata field the User schema allows to be null; for
// public_metadata and unsafe_metadata null clears the field to {}.
func (s *Server) replaceMetadata(c *call) reply {
	vals, present, names, e := metadataBody(c)
	if e != nil {
		return fail(e)
	}
	return s.mutateReply(c, func(u *user, _ int64) (bool, *apiError) {
		cur := [3]any{u.data.PublicMetadata, u.data.PrivateMetadata, u.data.UnsafeMetadata}
		for i := range vals {
			if !present[i] {
				continue
			}
			switch {
			case vals[i] == nil && metadataFields[i] == "private_metadata":
				cur[i] = nil
			case vals[i] == nil:
				cur[i] = emptyObject()
			default:
				cur[i] = vals[i]
			}
		}
		return false, writeMetadata(u, cur, names)
	})
}

// setProfileImage answers POST /users/{id}/profile_image (multipart part "file").
func (s *Server) setProfileImage(c *call) reply {
	noFile := newAPIError(http.StatusBadRequest, "form_param_missing", "missing file",
		"There was no image file present in the request", paramMeta("file"))
	mt, _, err := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return fail(noFile)
	}
	c.r.Body = http.MaxBytesReader(nil, c.r.Body, maxImageBytes+1<<20)
	mr, err := c.r.MultipartReader()
	if err != nil {
		return fail(noFile)
	}
	size := -1
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(errBodyInvalid("The multipart request body could not be read."))
		}
		if part.FormName() == "file" {
			n, err := io.Copy(io.Discard, io.LimitReader(part, maxImageBytes+1))
			if err != nil {
				return fail(errBodyInvalid("The multipart request body could not be read."))
			}
			if n > maxImageBytes {
				return fail(errParamValue("file", fmt.Sprintf("The image must not exceed %d bytes.", maxImageBytes)))
			}
			size = int(n)
		}
		_ = part.Close()
	}
	if size <= 0 {
		return fail(noFile)
	}
	imgID := newID("img")
	return s.mutateReply(c, func(u *user, _ int64) (bool, *apiError) {
		u.data.ImageURL = uploadedImageURL(imgID)
		u.data.HasImage = true
		return false, nil
	})
}

func (s *Server) deleteProfileImage(c *call) reply {
	if _, e := readBody(c.r); e != nil {
		return fail(e)
	}
	return s.mutateReply(c, func(u *user, _ int64) (bool, *apiError) {
		u.data.ImageURL = defaultImageURL(u.data.ID)
		u.data.HasImage = false
		return false, nil
	})
}

// userIDReply is the {"user_id": ...} body of the MFA deletion endpoints.
type userIDReply struct {
	UserID string `json:"user_id"`
}

// mfaChange runs a change of second factors and answers {"user_id"}.
func (s *Server) mfaChange(c *call, fn func(u *user)) reply {
	if _, e := readBody(c.r); e != nil {
		return fail(e)
	}
	_, e := s.mutate(c, func(u *user, ts int64) (bool, *apiError) {
		secretsBefore := u.totpSecret + "|" + strings.Join(u.backupCodes, ",")
		fn(u)
		u.recomputeMFA(ts)
		return secretsBefore != u.totpSecret+"|"+strings.Join(u.backupCodes, ","), nil
	})
	if e != nil {
		return fail(e)
	}
	return okValue(userIDReply{UserID: c.userID()})
}

// disableMFA answers DELETE /users/{id}/mfa: every second factor goes.
func (s *Server) disableMFA(c *call) reply {
	return s.mfaChange(c, func(u *user) {
		u.totpSecret, u.backupCodes = "", nil
		u.data.TOTPEnabled, u.data.BackupCodeEnabled = false, false
		for _, p := range u.data.PhoneNumbers {
			p.ReservedForSecondFactor, p.DefaultSecondFactor, p.BackupCodes = false, false, nil
		}
	})
}

func (s *Server) deleteTOTP(c *call) reply {
	return s.mfaChange(c, func(u *user) {
		u.totpSecret = ""
		u.data.TOTPEnabled = false
	})
}

func (s *Server) deleteBackupCodes(c *call) reply {
	return s.mfaChange(c, func(u *user) {
		u.backupCodes = nil
		u.data.BackupCodeEnabled = false
		for _, p := range u.data.PhoneNumbers {
			p.BackupCodes = nil
		}
	})
}

// deleteListItem removes the item with id from a list of objects and
// answers a DeletedObject.
func (s *Server) deleteListItem(c *call, param, object string, list func(u *user) *[]map[string]any) reply {
	if _, e := readBody(c.r); e != nil {
		return fail(e)
	}
	id := c.params[param]
	_, e := s.mutate(c, func(u *user, _ int64) (bool, *apiError) {
		l := list(u)
		i := slices.IndexFunc(*l, func(m map[string]any) bool { return m["id"] == id })
		if i < 0 {
			return false, errResourceNotFound(fmt.Sprintf("No %s was found with id %s", strings.ReplaceAll(object, "_", " "), id))
		}
		*l = slices.Delete(slices.Clone(*l), i, i+1)
		return false, nil
	})
	if e != nil {
		return fail(e)
	}
	return okValue(deletedObject{Object: object, ID: id, Deleted: true})
}

func (s *Server) deletePasskey(c *call) reply {
	return s.deleteListItem(c, "passkey_identification_id", "passkey", func(u *user) *[]map[string]any { return &u.data.Passkeys })
}

func (s *Server) deleteExternalAccount(c *call) reply {
	return s.deleteListItem(c, "external_account_id", "external_account", func(u *user) *[]map[string]any { return &u.data.ExternalAccounts })
}

func (s *Server) deleteWeb3Wallet(c *call) reply {
	if _, e := readBody(c.r); e != nil {
		return fail(e)
	}
	id := c.params["web3_wallet_identification_id"]
	_, e := s.mutate(c, func(u *user, _ int64) (bool, *apiError) {
		i := slices.IndexFunc(u.data.Web3Wallets, func(w *web3Wallet) bool { return w.ID == id })
		if i < 0 {
			return false, errResourceNotFound("No web3 wallet was found with id " + id)
		}
		delete(s.st.byWeb3, lower(u.data.Web3Wallets[i].Web3Wallet))
		u.data.Web3Wallets = slices.Delete(slices.Clone(u.data.Web3Wallets), i, i+1)
		if deref(u.data.PrimaryWeb3WalletID) == id {
			u.data.PrimaryWeb3WalletID = nil
			if len(u.data.Web3Wallets) > 0 {
				u.data.PrimaryWeb3WalletID = new(u.data.Web3Wallets[0].ID)
			}
		}
		return false, nil
	})
	if e != nil {
		return fail(e)
	}
	return okValue(deletedObject{Object: "web3_wallet", ID: id, Deleted: true})
}

// removePassword answers POST /users/{id}/remove_password.
func (s *Server) removePassword(c *call) reply {
	b, e := readBody(c.r, "sign_out_of_other_sessions")
	if e != nil {
		return fail(e)
	}
	if _, e := b.boolean("sign_out_of_other_sessions"); e != nil {
		return fail(e)
	}
	return s.mutateReply(c, func(u *user, _ int64) (bool, *apiError) {
		had := u.password != nil || u.passwordDigest != nil
		u.password, u.passwordDigest = nil, nil
		u.data.PasswordEnabled = false
		return had, nil
	})
}

// verifyPassword answers POST /users/{id}/verify_password.
func (s *Server) verifyPassword(c *call) reply {
	b, e := readBody(c.r, "password")
	if e != nil {
		return fail(e)
	}
	pw, _, e := b.str("password")
	if e != nil {
		return fail(e)
	}
	if pw == nil {
		return fail(errParamMissing("password"))
	}
	s.st.mu.RLock()
	u := s.st.users[c.userID()]
	var stored, digest *string
	if u != nil {
		stored, digest = u.password, u.passwordDigest
	}
	s.st.mu.RUnlock()
	switch {
	case u == nil:
		return fail(errUserNotFound(c.userID()))
	case stored == nil && digest == nil:
		return fail(newAPIError(http.StatusBadRequest, "no_password_set", "no password set",
			"The user does not have a password set.", nil))
	case stored == nil || *stored != *pw:
		return fail(newAPIError(http.StatusUnprocessableEntity, "incorrect_password", "incorrect password",
			"The provided password was incorrect.", paramMeta("password")))
	}
	return okValue(map[string]bool{"verified": true})
}

// verifyTOTP answers POST /users/{id}/verify_totp: a current TOTP code or
// an unused backup code (which is consumed).
func (s *Server) verifyTOTP(c *call) reply {
	b, e := readBody(c.r, "code")
	if e != nil {
		return fail(e)
	}
	code, _, e := b.str("code")
	if e != nil {
		return fail(e)
	}
	if code == nil {
		return fail(errParamMissing("code"))
	}
	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	u := st.users[c.userID()]
	if u == nil {
		return fail(errUserNotFound(c.userID()))
	}
	if !u.data.TOTPEnabled && !u.data.BackupCodeEnabled {
		return fail(newAPIError(http.StatusBadRequest, "totp_disabled", "TOTP is disabled",
			"TOTP is not configured for this user.", nil))
	}
	if i := slices.Index(u.backupCodes, *code); i >= 0 {
		u.backupCodes = slices.Delete(slices.Clone(u.backupCodes), i, i+1)
		if len(u.backupCodes) == 0 {
			ts := st.stamp(c.now)
			u.data.BackupCodeEnabled = false
			u.recomputeMFA(ts)
			u.data.UpdatedAt = ts
			u.refresh()
			s.emitUser(EventUserUpdated, u.render(c.now.UnixMilli()), c.now, c.r)
		}
		return okValue(map[string]any{"verified": true, "code_type": "backup_code"})
	}
	if len(*code) != 6 {
		return fail(newAPIError(http.StatusUnprocessableEntity, "totp_invalid_length", "invalid length",
			"Enter the 6-digit code from your authenticator app: the code must be 6 characters long.", paramMeta("code")))
	}
	if u.data.TOTPEnabled && u.totpSecret != "" && totpValid(u.totpSecret, *code, c.now) {
		return okValue(map[string]any{"verified": true, "code_type": "totp"})
	}
	return fail(newAPIError(http.StatusUnprocessableEntity, "totp_incorrect_code", "incorrect code",
		"The provided TOTP code was incorrect.", paramMeta("code")))
}

// oauthToken is one item of the OAuthAccessToken schema.
type oauthToken struct {
	Object            string         `json:"object"`
	ExternalAccountID string         `json:"external_account_id"`
	ProviderUserID    string         `json:"provider_user_id"`
	Token             string         `json:"token"`
	ExpiresAt         *int64         `json:"expires_at"`
	Provider          string         `json:"provider"`
	PublicMetadata    map[string]any `json:"public_metadata"`
	Label             *string        `json:"label"`
	Scopes            []string       `json:"scopes,omitempty"`
}

// paginatedList is the {"data": [...], "total_count": N} envelope.
type paginatedList struct {
	Data       []any `json:"data"`
	TotalCount int64 `json:"total_count"`
}

func page[T any](items []T, limit, offset int) []any {
	out := []any{}
	for i := offset; i < len(items) && len(out) < limit; i++ {
		out = append(out, items[i])
	}
	return out
}

// oauthAccessTokens answers GET /users/{id}/oauth_access_tokens/{provider}:
// one token per external account of that provider. The spec's shape is a
// bare array; with ?paginated=true (sent by both official SDKs) it is
// {"data": [...], "total_count": N}.
func (s *Server) oauthAccessTokens(c *call) reply {
	q := c.r.URL.Query()
	limit, offset, e := pageParams(q)
	if e != nil {
		return fail(e)
	}
	paginated := false
	if v := q.Get("paginated"); v != "" {
		if paginated, e = parseBoolParam("paginated", v); e != nil {
			return fail(e)
		}
	}
	provider := c.params["provider"]
	s.st.mu.RLock()
	u := s.st.users[c.userID()]
	var tokens []oauthToken
	if u != nil {
		for _, ea := range u.data.ExternalAccounts {
			p, _ := ea["provider"].(string)
			if !providerMatches(p, provider) {
				continue
			}
			id, _ := ea["id"].(string)
			pid, _ := ea["provider_user_id"].(string)
			scopes, _ := ea["approved_scopes"].(string)
			label, _ := ea["label"].(string)
			t := oauthToken{Object: "oauth_access_token", ExternalAccountID: id, ProviderUserID: pid,
				Token: "fake_oauth_token_" + id, Provider: p, PublicMetadata: map[string]any{}, Scopes: strings.Fields(scopes)}
			if pm, ok := ea["public_metadata"].(map[string]any); ok {
				t.PublicMetadata = pm
			}
			if label != "" {
				t.Label = new(label)
			}
			tokens = append(tokens, t)
		}
	}
	s.st.mu.RUnlock()
	if u == nil {
		return fail(errUserNotFound(c.userID()))
	}
	if paginated {
		return okValue(paginatedList{Data: page(tokens, limit, offset), TotalCount: int64(len(tokens))})
	}
	return okValue(page(tokens, limit, offset))
}

func parseBoolParam(param, v string) (bool, *apiError) {
	switch v {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, errQueryValue(param, v)
}

// organizationMemberships answers GET /users/{id}/organization_memberships.
func (s *Server) organizationMemberships(c *call) reply {
	limit, offset, e := pageParams(c.r.URL.Query())
	if e != nil {
		return fail(e)
	}
	s.st.mu.RLock()
	defer s.st.mu.RUnlock()
	u := s.st.users[c.userID()]
	if u == nil {
		return fail(errUserNotFound(c.userID()))
	}
	items := make([]map[string]any, len(u.memberships))
	for i, m := range u.memberships {
		mm := make(map[string]any, len(m)+1)
		maps.Copy(mm, m)
		mm["public_user_data"] = u.publicUserData()
		items[i] = mm
	}
	return okValue(paginatedList{Data: page(items, limit, offset), TotalCount: int64(len(items))})
}

// publicUserData is the OrganizationMembershipPublicUserData of u.
func (u *user) publicUserData() map[string]any {
	var username any
	if u.data.Username != nil {
		username = *u.data.Username
	}
	return map[string]any{
		"user_id": u.data.ID, "first_name": u.data.FirstName, "last_name": u.data.LastName,
		"profile_image_url": u.data.ImageURL, "image_url": u.data.ImageURL, "has_image": u.data.HasImage,
		"identifier": u.identifier(), "username": username, "banned": u.data.Banned, "deprovisioned": u.data.Deprovisioned,
	}
}

var invitationStatuses = []string{"pending", "accepted", "revoked", "expired"}

// organizationInvitations answers GET /users/{id}/organization_invitations.
func (s *Server) organizationInvitations(c *call) reply {
	q := c.r.URL.Query()
	limit, offset, e := pageParams(q)
	if e != nil {
		return fail(e)
	}
	statuses := q["status"]
	for _, st := range statuses {
		if !slices.Contains(invitationStatuses, st) {
			return fail(errQueryValue("status", st))
		}
	}
	s.st.mu.RLock()
	defer s.st.mu.RUnlock()
	u := s.st.users[c.userID()]
	if u == nil {
		return fail(errUserNotFound(c.userID()))
	}
	var items []map[string]any
	for _, inv := range u.invitations {
		if st, _ := inv["status"].(string); len(statuses) == 0 || slices.Contains(statuses, st) {
			items = append(items, inv)
		}
	}
	return okValue(paginatedList{Data: page(items, limit, offset), TotalCount: int64(len(items))})
}
