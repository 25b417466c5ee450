package clerkfake

import (
	"bytes"
	"net/http"
	"strings"
	"time"
)

var createFields = []string{
	"external_id", "first_name", "last_name", "locale", "email_address", "email_address_identification_status",
	"phone_number", "phone_number_identification_status", "web3_wallet", "username", "password", "password_digest",
	"password_hasher", "skip_password_checks", "skip_password_requirement", "totp_secret", "backup_codes",
	"public_metadata", "private_metadata", "unsafe_metadata", "delete_self_enabled", "legal_accepted_at",
	"skip_legal_checks", "skip_user_requirement", "create_organization_enabled", "create_organizations_limit",
	"created_at", "bypass_client_trust", "banned", "locked",
}

// updateFields is the PATCH /users/{user_id} body of API version 2026-05-12.
var updateFields = []string{
	"external_id", "first_name", "last_name", "locale", "primary_email_address_id", "notify_primary_email_address_changed",
	"primary_phone_number_id", "primary_web3_wallet_id", "username", "profile_image_id", "password", "password_digest",
	"password_hasher", "skip_password_checks", "sign_out_of_other_sessions", "totp_secret", "backup_codes",
	"delete_self_enabled", "create_organization_enabled", "legal_accepted_at", "skip_legal_checks",
	"create_organizations_limit", "created_at", "bypass_client_trust",
}

// firstErr returns the first non-nil error.
func firstErr(errs ...*apiError) *apiError {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// nonEmpty maps "" to nil: an empty string clears a nullable string field
// (documented for username; assumed for the other names).
func nonEmpty(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}

// identificationStatuses validates a *_identification_status array that
// runs parallel to values.
func identificationStatuses(b body, param string, n int) ([]string, *apiError) {
	st, ok, e := b.strings(param)
	if e != nil || !ok || len(st) == 0 {
		return nil, e
	}
	if len(st) != n {
		return nil, errParamValue(param, param+" must contain exactly one item per identifier.")
	}
	for _, v := range st {
		if v != "verified" && v != "reserved" {
			return nil, errParamValue(param, v+" is not a valid identification status; use verified or reserved.")
		}
	}
	return st, nil
}

func (s *Server) createUser(c *call) reply {
	b, e := readBody(c.r, createFields...)
	if e != nil {
		return fail(e)
	}
	extID, _, e1 := b.str("external_id")
	first, _, e2 := b.str("first_name")
	last, _, e3 := b.str("last_name")
	locale, _, e4 := b.str("locale")
	emails, _, e5 := b.strings("email_address")
	phones, _, e6 := b.strings("phone_number")
	wallets, _, e7 := b.strings("web3_wallet")
	username, _, e8 := b.str("username")
	password, _, e9 := b.str("password")
	digest, _, e10 := b.str("password_digest")
	hasher, _, e11 := b.str("password_hasher")
	skipChecks, _, e12 := b.boolean("skip_password_checks")
	_, _, e13 := b.boolean("skip_password_requirement")
	totp, _, e14 := b.str("totp_secret")
	backup, _, e15 := b.strings("backup_codes")
	pub, _, e16 := b.object("public_metadata")
	priv, _, e17 := b.object("private_metadata")
	unsafe, _, e18 := b.object("unsafe_metadata")
	delSelf, _, e19 := b.boolean("delete_self_enabled")
	legal, _, e20 := b.timestamp("legal_accepted_at")
	_, _, e21 := b.boolean("skip_legal_checks")
	_, _, e22 := b.boolean("skip_user_requirement")
	createOrg, _, e23 := b.boolean("create_organization_enabled")
	orgLimit, _, e24 := b.integer("create_organizations_limit")
	createdAt, _, e25 := b.timestamp("created_at")
	bypass, _, e26 := b.boolean("bypass_client_trust")
	banned, _, e27 := b.boolean("banned")
	locked, _, e28 := b.boolean("locked")
	if e := firstErr(e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15, e16, e17, e18, e19, e20,
		e21, e22, e23, e24, e25, e26, e27, e28); e != nil {
		return fail(e)
	}
	emailStatus, e := identificationStatuses(b, "email_address_identification_status", len(emails))
	if e != nil {
		return fail(e)
	}
	phoneStatus, e := identificationStatuses(b, "phone_number_identification_status", len(phones))
	if e != nil {
		return fail(e)
	}
	for i, em := range emails {
		emails[i] = lower(strings.TrimSpace(em))
		if e := checkEmail("email_address", emails[i]); e != nil {
			return fail(e)
		}
	}
	for _, p := range phones {
		if e := checkPhone("phone_number", p); e != nil {
			return fail(e)
		}
	}
	for _, w := range wallets {
		if e := checkWeb3("web3_wallet", w); e != nil {
			return fail(e)
		}
	}
	username = nonEmpty(username)
	if username != nil {
		if e := checkUsername(*username); e != nil {
			return fail(e)
		}
	}
	if len(emails) == 0 && len(phones) == 0 && len(wallets) == 0 && username == nil {
		return fail(newAPIError(http.StatusUnprocessableEntity, "form_data_missing", "missing data",
			"At least one identifier (email_address, phone_number, web3_wallet or username) is required.",
			map[string]any{"names": []string{"email_address", "phone_number", "web3_wallet", "username"}}))
	}
	if password != nil {
		if e := checkPassword(*password, skipChecks != nil && *skipChecks); e != nil {
			return fail(e)
		}
	}
	if e := checkHasher(digest, hasher); e != nil {
		return fail(e)
	}
	var totpSecret string
	if totp != nil {
		if totpSecret, e = normalizeTOTPSecret(*totp); e != nil {
			return fail(e)
		}
	}
	if orgLimit != nil && *orgLimit < 0 {
		return fail(errParamValue("create_organizations_limit", "create_organizations_limit must be 0 (unlimited) or greater."))
	}
	var pubV, privV, unsafeV any = emptyObject(), emptyObject(), emptyObject()
	if pub != nil {
		pubV = pub
	}
	if priv != nil {
		privV = priv
	}
	if unsafe != nil {
		unsafeV = unsafe
	}
	if n := metadataSize(pubV, privV, unsafeV); n > MetadataLimitBytes {
		return fail(errParamTooLarge(firstPresent(b, metadataFields), n, MetadataLimitBytes))
	}

	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	// Uniqueness, also within the request itself.
	seen := map[string]bool{}
	for _, em := range emails {
		if _, dup := st.byEmail[em]; dup || seen["e:"+em] {
			return fail(errIdentifierExists("email_address", "email address"))
		}
		seen["e:"+em] = true
	}
	for _, p := range phones {
		if _, dup := st.byPhone[p]; dup || seen["p:"+p] {
			return fail(errIdentifierExists("phone_number", "phone number"))
		}
		seen["p:"+p] = true
	}
	for _, w := range wallets {
		if _, dup := st.byWeb3[lower(w)]; dup || seen["w:"+lower(w)] {
			return fail(errIdentifierExists("web3_wallet", "web3 wallet"))
		}
		seen["w:"+lower(w)] = true
	}
	if username != nil {
		if _, dup := st.byUser[lower(*username)]; dup {
			return fail(errIdentifierExists("username", "username"))
		}
	}
	extID = nonEmpty(extID)
	if extID != nil {
		if _, dup := st.byExt[*extID]; dup {
			return fail(errIdentifierExists("external_id", "external ID"))
		}
	}

	ts := st.stamp(c.now)
	id := newID("user")
	u := &user{data: userJSON{
		ID: id, Object: "user", ExternalID: extID, Username: username,
		FirstName: nonEmpty(first), LastName: nonEmpty(last), Locale: nonEmpty(locale),
		ImageURL: defaultImageURL(id), PublicMetadata: pubV, PrivateMetadata: privV, UnsafeMetadata: unsafeV,
		EmailAddresses: []*emailAddress{}, PhoneNumbers: []*phoneNumber{}, Web3Wallets: []*web3Wallet{},
		Passkeys: []map[string]any{}, ExternalAccounts: []map[string]any{}, SAMLAccounts: []map[string]any{},
		EnterpriseAccounts: []map[string]any{},
		DeleteSelfEnabled:  true, CreateOrganizationEnabled: true, CreateOrganizationsLimit: orgLimit,
		LegalAcceptedAt: legal, CreatedAt: ts, UpdatedAt: ts,
	}}
	if createdAt != nil {
		u.data.CreatedAt = *createdAt
	}
	if delSelf != nil {
		u.data.DeleteSelfEnabled = *delSelf
	}
	if createOrg != nil {
		u.data.CreateOrganizationEnabled = *createOrg
	}
	if bypass != nil {
		u.data.BypassClientTrust = *bypass
	}
	if banned != nil {
		u.data.Banned = *banned
	}
	for i, em := range emails {
		reserved := len(emailStatus) > 0 && emailStatus[i] == "reserved"
		u.data.EmailAddresses = append(u.data.EmailAddresses, newEmail(em, reserved, ts))
	}
	for i, p := range phones {
		reserved := len(phoneStatus) > 0 && phoneStatus[i] == "reserved"
		u.data.PhoneNumbers = append(u.data.PhoneNumbers, newPhone(p, reserved, ts))
	}
	for _, w := range wallets {
		u.data.Web3Wallets = append(u.data.Web3Wallets, newWallet(w, ts))
	}
	if len(u.data.EmailAddresses) > 0 {
		u.data.PrimaryEmailAddressID = new(u.data.EmailAddresses[0].ID)
	}
	if len(u.data.PhoneNumbers) > 0 {
		u.data.PrimaryPhoneNumberID = new(u.data.PhoneNumbers[0].ID)
	}
	if len(u.data.Web3Wallets) > 0 {
		u.data.PrimaryWeb3WalletID = new(u.data.Web3Wallets[0].ID)
	}
	if password != nil {
		u.password = new(*password)
	} else if digest != nil {
		u.passwordDigest = new(*digest)
	}
	if u.password != nil || u.passwordDigest != nil {
		u.data.PasswordEnabled = true
		u.data.PasswordLastUpdatedAt = new(ts)
	}
	if totpSecret != "" {
		u.totpSecret = totpSecret
		u.data.TOTPEnabled = true
	}
	if len(backup) > 0 {
		u.backupCodes = append([]string(nil), backup...)
		u.data.BackupCodeEnabled = true
	}
	u.recomputeMFA(ts)
	if locked != nil && *locked {
		s.applyLock(u, c.now)
	}
	st.insert(u)
	return okJSON(u.render(c.now.UnixMilli()))
}

// firstPresent returns the first of names present in b, or names[0].
func firstPresent(b body, names []string) string {
	for _, n := range names {
		if _, ok := b[n]; ok {
			return n
		}
	}
	return names[0]
}

func newEmail(addr string, reserved bool, ts int64) *emailAddress {
	e := &emailAddress{ID: newID("idn"), Object: "email_address", EmailAddress: addr, Reserved: reserved,
		LinkedTo: []map[string]any{}, CreatedAt: ts, UpdatedAt: ts}
	if !reserved {
		e.Verification = verificationAdmin()
	}
	return e
}

func newPhone(num string, reserved bool, ts int64) *phoneNumber {
	p := &phoneNumber{ID: newID("idn"), Object: "phone_number", PhoneNumber: num, Reserved: reserved,
		LinkedTo: []map[string]any{}, CreatedAt: ts, UpdatedAt: ts}
	if !reserved {
		p.Verification = verificationAdmin()
	}
	return p
}

func newWallet(addr string, ts int64) *web3Wallet {
	return &web3Wallet{ID: newID("idn"), Object: "web3_wallet", Web3Wallet: addr, Verification: verificationAdmin(),
		CreatedAt: ts, UpdatedAt: ts}
}

func (s *Server) getUser(c *call) reply {
	s.st.mu.RLock()
	defer s.st.mu.RUnlock()
	u := s.st.users[c.userID()]
	if u == nil {
		return fail(errUserNotFound(c.userID()))
	}
	return okJSON(u.render(c.now.UnixMilli()))
}

// mutate runs fn on the user under the write lock. fn validates before it
// changes anything and reports whether it changed state that is not part
// of the User JSON (secrets). updated_at moves, to a strictly greater
// value, whenever the user changed. It returns the new User JSON.
func (s *Server) mutate(c *call, fn func(u *user, ts int64) (secretChanged bool, e *apiError)) ([]byte, *apiError) {
	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	u := st.users[c.userID()]
	if u == nil {
		return nil, errUserNotFound(c.userID())
	}
	nowMS := c.now.UnixMilli()
	before := u.render(nowMS)
	oldUpdated := u.data.UpdatedAt
	ts := st.stamp(c.now)
	secret, e := fn(u, ts)
	if e != nil {
		return nil, e
	}
	u.data.UpdatedAt = oldUpdated
	u.refresh()
	if secret || !bytes.Equal(before, u.render(nowMS)) {
		u.data.UpdatedAt = ts
		u.refresh()
	}
	return u.render(nowMS), nil
}

func (s *Server) mutateReply(c *call, fn func(u *user, ts int64) (bool, *apiError)) reply {
	b, e := s.mutate(c, fn)
	if e != nil {
		return fail(e)
	}
	return okJSON(b)
}

func (s *Server) updateUser(c *call) reply {
	allowed := updateFields
	legacyMetadata := c.version < "2026-05-12"
	if legacyMetadata {
		allowed = append(append([]string(nil), updateFields...), metadataFields...)
	}
	b, e := readBody(c.r, allowed...)
	if e != nil {
		return fail(e)
	}
	extID, hasExt, e1 := b.str("external_id")
	first, hasFirst, e2 := b.str("first_name")
	last, hasLast, e3 := b.str("last_name")
	locale, hasLocale, e4 := b.str("locale")
	primEmail, _, e5 := b.str("primary_email_address_id")
	_, _, e6 := b.boolean("notify_primary_email_address_changed")
	primPhone, _, e7 := b.str("primary_phone_number_id")
	primWeb3, _, e8 := b.str("primary_web3_wallet_id")
	username, hasUsername, e9 := b.str("username")
	_, _, e10 := b.str("profile_image_id")
	password, _, e11 := b.str("password")
	digest, _, e12 := b.str("password_digest")
	hasher, _, e13 := b.str("password_hasher")
	skipChecks, _, e14 := b.boolean("skip_password_checks")
	signOut, _, e15 := b.boolean("sign_out_of_other_sessions")
	totp, _, e16 := b.str("totp_secret")
	backup, hasBackup, e17 := b.strings("backup_codes")
	delSelf, _, e18 := b.boolean("delete_self_enabled")
	createOrg, _, e19 := b.boolean("create_organization_enabled")
	legal, hasLegal, e20 := b.timestamp("legal_accepted_at")
	_, _, e21 := b.boolean("skip_legal_checks")
	orgLimit, hasOrgLimit, e22 := b.integer("create_organizations_limit")
	createdAt, _, e23 := b.timestamp("created_at")
	bypass, _, e24 := b.boolean("bypass_client_trust")
	if e := firstErr(e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15, e16, e17, e18, e19, e20,
		e21, e22, e23, e24); e != nil {
		return fail(e)
	}
	var meta [3]map[string]any
	var hasMeta [3]bool
	if legacyMetadata {
		for i, f := range metadataFields {
			var e *apiError
			if meta[i], hasMeta[i], e = b.object(f); e != nil {
				return fail(e)
			}
		}
	}
	if password == nil {
		if skipChecks != nil && *skipChecks {
			return fail(newAPIError(http.StatusUnprocessableEntity, "form_conditional_param_missing", "missing data",
				"skip_password_checks can only be used together with password.", paramMeta("password")))
		}
		if signOut != nil && *signOut {
			return fail(newAPIError(http.StatusUnprocessableEntity, "form_conditional_param_missing", "missing data",
				"sign_out_of_other_sessions can only be used together with password.", paramMeta("password")))
		}
	} else if e := checkPassword(*password, skipChecks != nil && *skipChecks); e != nil {
		return fail(e)
	}
	if e := checkHasher(digest, hasher); e != nil {
		return fail(e)
	}
	username = nonEmpty(username)
	if username != nil {
		if e := checkUsername(*username); e != nil {
			return fail(e)
		}
	}
	var totpSecret string
	if totp != nil {
		if totpSecret, e = normalizeTOTPSecret(*totp); e != nil {
			return fail(e)
		}
	}
	if orgLimit != nil && *orgLimit < 0 {
		return fail(errParamValue("create_organizations_limit", "create_organizations_limit must be 0 (unlimited) or greater."))
	}
	extID = nonEmpty(extID)

	return s.mutateReply(c, func(u *user, ts int64) (bool, *apiError) {
		st := s.st
		// Validate everything against the stored state first.
		if extID != nil && taken(st.byExt, *extID, u.data.ID) {
			return false, errIdentifierExists("external_id", "external ID")
		}
		if username != nil && taken(st.byUser, lower(*username), u.data.ID) {
			return false, errIdentifierExists("username", "username")
		}
		if hasUsername && username == nil && u.data.Username != nil &&
			len(u.data.EmailAddresses) == 0 && len(u.data.PhoneNumbers) == 0 && len(u.data.Web3Wallets) == 0 {
			return false, errParamValue("username", "The username cannot be removed: it is the user's only identifier.")
		}
		var newPrimEmail, newPrimPhone, newPrimWeb3 *string
		if primEmail != nil {
			ok := false
			for _, em := range u.data.EmailAddresses {
				ok = ok || (em.ID == *primEmail && isVerified(em.Verification))
			}
			if !ok {
				return false, newAPIError(http.StatusUnprocessableEntity, "form_resource_not_found", "not found",
					"No verified email address with id "+*primEmail+" was found for this user.", paramMeta("primary_email_address_id"))
			}
			newPrimEmail = primEmail
		}
		if primPhone != nil {
			ok := false
			for _, p := range u.data.PhoneNumbers {
				ok = ok || (p.ID == *primPhone && isVerified(p.Verification))
			}
			if !ok {
				return false, newAPIError(http.StatusUnprocessableEntity, "form_resource_not_found", "not found",
					"No verified phone number with id "+*primPhone+" was found for this user.", paramMeta("primary_phone_number_id"))
			}
			newPrimPhone = primPhone
		}
		if primWeb3 != nil {
			ok := false
			for _, w := range u.data.Web3Wallets {
				ok = ok || (w.ID == *primWeb3 && isVerified(w.Verification))
			}
			if !ok {
				return false, newAPIError(http.StatusUnprocessableEntity, "form_resource_not_found", "not found",
					"No verified web3 wallet with id "+*primWeb3+" was found for this user.", paramMeta("primary_web3_wallet_id"))
			}
			newPrimWeb3 = primWeb3
		}
		newMeta := [3]any{u.data.PublicMetadata, u.data.PrivateMetadata, u.data.UnsafeMetadata}
		for i := range meta {
			if hasMeta[i] {
				if meta[i] == nil {
					newMeta[i] = emptyObject()
				} else {
					newMeta[i] = meta[i]
				}
			}
		}
		if hasMeta[0] || hasMeta[1] || hasMeta[2] {
			if n := metadataSize(newMeta[0], newMeta[1], newMeta[2]); n > MetadataLimitBytes {
				return false, errParamTooLarge(firstPresent(b, metadataFields), n, MetadataLimitBytes)
			}
		}

		// Apply.
		st.unindex(u)
		defer st.index(u)
		secret := false
		if hasExt {
			u.data.ExternalID = extID
		}
		if hasFirst {
			u.data.FirstName = nonEmpty(first)
		}
		if hasLast {
			u.data.LastName = nonEmpty(last)
		}
		if hasLocale {
			u.data.Locale = nonEmpty(locale)
		}
		if hasUsername {
			u.data.Username = username
		}
		if newPrimEmail != nil {
			u.data.PrimaryEmailAddressID = new(*newPrimEmail)
		}
		if newPrimPhone != nil {
			u.data.PrimaryPhoneNumberID = new(*newPrimPhone)
		}
		if newPrimWeb3 != nil {
			u.data.PrimaryWeb3WalletID = new(*newPrimWeb3)
		}
		if password != nil || digest != nil {
			if password != nil {
				u.password, u.passwordDigest = new(*password), nil
			} else {
				u.password, u.passwordDigest = nil, new(*digest)
			}
			u.data.PasswordEnabled = true
			u.data.PasswordLastUpdatedAt = new(ts)
			secret = true
		}
		if totpSecret != "" {
			u.totpSecret = totpSecret
			u.data.TOTPEnabled = true
			secret = true
		}
		if hasBackup && len(backup) > 0 {
			u.backupCodes = append([]string(nil), backup...)
			u.data.BackupCodeEnabled = true
			secret = true
		}
		u.recomputeMFA(ts)
		if delSelf != nil {
			u.data.DeleteSelfEnabled = *delSelf
		}
		if createOrg != nil {
			u.data.CreateOrganizationEnabled = *createOrg
		}
		if hasLegal {
			u.data.LegalAcceptedAt = legal
		}
		if hasOrgLimit {
			u.data.CreateOrganizationsLimit = orgLimit
		}
		if createdAt != nil {
			u.data.CreatedAt = *createdAt
		}
		if bypass != nil {
			u.data.BypassClientTrust = *bypass
		}
		u.data.PublicMetadata, u.data.PrivateMetadata, u.data.UnsafeMetadata = newMeta[0], newMeta[1], newMeta[2]
		return secret, nil
	})
}

func (s *Server) deleteUser(c *call) reply {
	if _, e := readBody(c.r); e != nil {
		return fail(e)
	}
	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	u := st.users[c.userID()]
	if u == nil {
		return fail(errUserNotFound(c.userID()))
	}
	st.remove(u)
	return okValue(deletedObject{Object: "user", ID: u.data.ID, Deleted: true})
}

// deletedObject is the DeletedObject schema.
type deletedObject struct {
	Object  string `json:"object"`
	ID      string `json:"id,omitempty"`
	Deleted bool   `json:"deleted"`
}

// setFlag is the body of ban/unban/lock/unlock: no parameters, then one change.
func (s *Server) setFlag(c *call, apply func(u *user)) reply {
	if _, e := readBody(c.r); e != nil {
		return fail(e)
	}
	return s.mutateReply(c, func(u *user, _ int64) (bool, *apiError) {
		apply(u)
		return false, nil
	})
}

func (s *Server) banUser(c *call) reply {
	return s.setFlag(c, func(u *user) { u.data.Banned = true })
}

func (s *Server) unbanUser(c *call) reply {
	return s.setFlag(c, func(u *user) { u.data.Banned = false })
}

func (s *Server) lockUser(c *call) reply {
	return s.setFlag(c, func(u *user) { s.applyLock(u, c.now) })
}

func (s *Server) unlockUser(c *call) reply {
	return s.setFlag(c, func(u *user) {
		u.data.Locked = false
		u.data.LockoutExpiresInSeconds = nil
		u.lockExpiresAt = 0
	})
}

// applyLock locks u for Options.LockoutSeconds (nil = forever).
func (s *Server) applyLock(u *user, now time.Time) {
	u.data.Locked = true
	u.data.LockoutExpiresInSeconds = nil
	u.lockExpiresAt = 0
	if s.lockoutSec != nil {
		u.data.LockoutExpiresInSeconds = new(*s.lockoutSec)
		u.lockExpiresAt = now.UnixMilli() + *s.lockoutSec*1000
	}
}

// bulk applies fn to up to 50 users (POST /users/ban, /users/unban) and
// returns the existing ones as a bare array. Unknown IDs are skipped.
func (s *Server) bulk(c *call, fn func(u *user)) reply {
	b, e := readBody(c.r, "user_ids")
	if e != nil {
		return fail(e)
	}
	ids, ok, e := b.strings("user_ids")
	if e != nil {
		return fail(e)
	}
	if !ok || len(ids) == 0 {
		return fail(errParamMissing("user_ids"))
	}
	if len(ids) > 50 {
		return fail(newAPIError(http.StatusBadRequest, "bulk_size_exceeded", "bulk size exceeded",
			"You can pass at most 50 user_ids per request.", paramMeta("user_ids")))
	}
	var out [][]byte
	for _, id := range ids {
		cc := *c
		cc.params = map[string]string{"user_id": id}
		ub, e := s.mutate(&cc, func(u *user, _ int64) (bool, *apiError) { fn(u); return false, nil })
		if e == nil {
			out = append(out, ub)
		}
	}
	return okJSON(joinArray(out))
}

func (s *Server) bulkBan(c *call) reply   { return s.bulk(c, func(u *user) { u.data.Banned = true }) }
func (s *Server) bulkUnban(c *call) reply { return s.bulk(c, func(u *user) { u.data.Banned = false }) }

// joinArray builds a JSON array from encoded elements.
func joinArray(items [][]byte) []byte {
	n := 2
	for _, it := range items {
		n += len(it) + 1
	}
	out := make([]byte, 0, n)
	out = append(out, '[')
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
	}
	return append(out, ']')
}
