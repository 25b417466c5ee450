package clerkfake

import (
	"bytes"
	"net/http"
	"slices"
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

// createRequest is the decoded body of POST /users.
type createRequest struct {
	extID, first, last, locale, username *string
	emails, phones, wallets              []string
	emailStatus, phoneStatus             []string // parallel to emails and phones; empty = all verified

	password, digest, hasher *string
	skipChecks               *bool
	totp                     *string // as sent; validated into totpSecret
	totpSecret               string  // normalized; "" = none
	backup                   []string

	pub, priv, unsafe map[string]any // nil = absent or null
	meta              [3]any         // pub, priv, unsafe with {} for nil; set by validateSettings

	delSelf, createOrg, bypass, banned, locked *bool
	legal, orgLimit, createdAt                 *int64
}

// decodeCreate reads the fields of a POST /users body in the order of
// createFields, failing on the first one with the wrong type.
func decodeCreate(b body) (*createRequest, *apiError) {
	r := &fieldReader{b: b}
	in := &createRequest{}
	in.extID = r.str("external_id")
	in.first = r.str("first_name")
	in.last = r.str("last_name")
	in.locale = r.str("locale")
	in.emails = r.strings("email_address")
	in.phones = r.strings("phone_number")
	in.wallets = r.strings("web3_wallet")
	in.username = r.str("username")
	in.password = r.str("password")
	in.digest = r.str("password_digest")
	in.hasher = r.str("password_hasher")
	in.skipChecks = r.boolean("skip_password_checks")
	r.boolean("skip_password_requirement") // accepted, no effect
	in.totp = r.str("totp_secret")
	in.backup = r.strings("backup_codes")
	in.pub, _ = r.object("public_metadata")
	in.priv, _ = r.object("private_metadata")
	in.unsafe, _ = r.object("unsafe_metadata")
	in.delSelf = r.boolean("delete_self_enabled")
	in.legal, _ = r.timestamp("legal_accepted_at")
	r.boolean("skip_legal_checks")     // accepted, no effect
	r.boolean("skip_user_requirement") // accepted, no effect
	in.createOrg = r.boolean("create_organization_enabled")
	in.orgLimit, _ = r.integer("create_organizations_limit")
	in.createdAt, _ = r.timestamp("created_at")
	in.bypass = r.boolean("bypass_client_trust")
	in.banned = r.boolean("banned")
	in.locked = r.boolean("locked")
	if r.err != nil {
		return nil, r.err
	}
	return in, nil
}

// validateIdentifiers checks and normalizes the identifiers of a new user;
// at least one is required.
func (in *createRequest) validateIdentifiers(b body) *apiError {
	var e *apiError
	if in.emailStatus, e = identificationStatuses(b, "email_address_identification_status", len(in.emails)); e != nil {
		return e
	}
	if in.phoneStatus, e = identificationStatuses(b, "phone_number_identification_status", len(in.phones)); e != nil {
		return e
	}
	for i, em := range in.emails {
		in.emails[i] = lower(strings.TrimSpace(em))
		if e := checkEmail("email_address", in.emails[i]); e != nil {
			return e
		}
	}
	for _, p := range in.phones {
		if e := checkPhone("phone_number", p); e != nil {
			return e
		}
	}
	for _, w := range in.wallets {
		if e := checkWeb3("web3_wallet", w); e != nil {
			return e
		}
	}
	in.username = nonEmpty(in.username)
	if in.username != nil {
		if e := checkUsername(*in.username); e != nil {
			return e
		}
	}
	if len(in.emails) == 0 && len(in.phones) == 0 && len(in.wallets) == 0 && in.username == nil {
		return newAPIError(http.StatusUnprocessableEntity, "form_data_missing", "missing data",
			"At least one identifier (email_address, phone_number, web3_wallet or username) is required.",
			map[string]any{"names": []string{"email_address", "phone_number", "web3_wallet", "username"}})
	}
	in.extID = nonEmpty(in.extID)
	return nil
}

// validateSecrets checks the password, password digest and TOTP secret.
func (in *createRequest) validateSecrets() *apiError {
	if in.password != nil {
		if e := checkPassword(*in.password, in.skipChecks != nil && *in.skipChecks); e != nil {
			return e
		}
	}
	if e := checkHasher(in.digest, in.hasher); e != nil {
		return e
	}
	if in.totp != nil {
		var e *apiError
		if in.totpSecret, e = normalizeTOTPSecret(*in.totp); e != nil {
			return e
		}
	}
	return nil
}

// validateSettings checks the organization limit and the metadata size.
func (in *createRequest) validateSettings(b body) *apiError {
	if e := checkOrgLimit(in.orgLimit); e != nil {
		return e
	}
	in.meta = [3]any{objectOrEmpty(in.pub), objectOrEmpty(in.priv), objectOrEmpty(in.unsafe)}
	if n := metadataSize(in.meta[0], in.meta[1], in.meta[2]); n > MetadataLimitBytes {
		return errParamTooLarge(firstPresent(b, metadataFields), n, MetadataLimitBytes)
	}
	return nil
}

// checkOrgLimit validates create_organizations_limit.
func checkOrgLimit(limit *int64) *apiError {
	if limit != nil && *limit < 0 {
		return errParamValue("create_organizations_limit", "create_organizations_limit must be 0 (unlimited) or greater.")
	}
	return nil
}

// objectOrEmpty returns m, or a fresh {} for nil.
func objectOrEmpty(m map[string]any) any {
	if m == nil {
		return emptyObject()
	}
	return m
}

// checkUnique rejects identifiers that are taken, also within the request
// itself. Callers hold st.mu.
func (in *createRequest) checkUnique(st *store) *apiError {
	seen := map[string]bool{}
	for _, em := range in.emails {
		if _, dup := st.byEmail[em]; dup || seen["e:"+em] {
			return errIdentifierExists("email_address", "email address")
		}
		seen["e:"+em] = true
	}
	for _, p := range in.phones {
		if _, dup := st.byPhone[p]; dup || seen["p:"+p] {
			return errIdentifierExists("phone_number", "phone number")
		}
		seen["p:"+p] = true
	}
	for _, w := range in.wallets {
		if _, dup := st.byWeb3[lower(w)]; dup || seen["w:"+lower(w)] {
			return errIdentifierExists("web3_wallet", "web3 wallet")
		}
		seen["w:"+lower(w)] = true
	}
	if in.username != nil {
		if _, dup := st.byUser[lower(*in.username)]; dup {
			return errIdentifierExists("username", "username")
		}
	}
	if in.extID != nil {
		if _, dup := st.byExt[*in.extID]; dup {
			return errIdentifierExists("external_id", "external ID")
		}
	}
	return nil
}

// newUser builds the user of a validated create request, stamped ts.
func (in *createRequest) newUser(ts int64) *user {
	id := newID("user")
	u := &user{data: userJSON{
		ID: id, Object: "user", ExternalID: in.extID, Username: in.username,
		FirstName: nonEmpty(in.first), LastName: nonEmpty(in.last), Locale: nonEmpty(in.locale),
		ImageURL: defaultImageURL(id), PublicMetadata: in.meta[0], PrivateMetadata: in.meta[1], UnsafeMetadata: in.meta[2],
		EmailAddresses: []*emailAddress{}, PhoneNumbers: []*phoneNumber{}, Web3Wallets: []*web3Wallet{},
		Passkeys: []map[string]any{}, ExternalAccounts: []map[string]any{}, SAMLAccounts: []map[string]any{},
		EnterpriseAccounts: []map[string]any{},
		DeleteSelfEnabled:  true, CreateOrganizationEnabled: true, CreateOrganizationsLimit: in.orgLimit,
		LegalAcceptedAt: in.legal, CreatedAt: ts, UpdatedAt: ts,
	}}
	setIfPresent(&u.data.CreatedAt, in.createdAt)
	setIfPresent(&u.data.DeleteSelfEnabled, in.delSelf)
	setIfPresent(&u.data.CreateOrganizationEnabled, in.createOrg)
	setIfPresent(&u.data.BypassClientTrust, in.bypass)
	setIfPresent(&u.data.Banned, in.banned)
	in.addIdentifications(u, ts)
	in.setSecrets(u, ts)
	u.recomputeMFA(ts)
	return u
}

// setIfPresent sets *dst to *v unless v is nil.
func setIfPresent[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// addIdentifications adds the email addresses, phone numbers and web3
// wallets of the request to u, the first of each as primary.
func (in *createRequest) addIdentifications(u *user, ts int64) {
	for i, em := range in.emails {
		reserved := len(in.emailStatus) > 0 && in.emailStatus[i] == "reserved"
		u.data.EmailAddresses = append(u.data.EmailAddresses, newEmail(em, reserved, ts))
	}
	for i, p := range in.phones {
		reserved := len(in.phoneStatus) > 0 && in.phoneStatus[i] == "reserved"
		u.data.PhoneNumbers = append(u.data.PhoneNumbers, newPhone(p, reserved, ts))
	}
	for _, w := range in.wallets {
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
}

// setSecrets stores the password (or digest), TOTP secret and backup codes
// of the request and sets the flags derived from them.
func (in *createRequest) setSecrets(u *user, ts int64) {
	if in.password != nil {
		u.password = new(*in.password)
	} else if in.digest != nil {
		u.passwordDigest = new(*in.digest)
	}
	if u.password != nil || u.passwordDigest != nil {
		u.data.PasswordEnabled = true
		u.data.PasswordLastUpdatedAt = new(ts)
	}
	if in.totpSecret != "" {
		u.totpSecret = in.totpSecret
		u.data.TOTPEnabled = true
	}
	if len(in.backup) > 0 {
		u.backupCodes = append([]string(nil), in.backup...)
		u.data.BackupCodeEnabled = true
	}
}

func (s *Server) createUser(c *call) reply {
	b, e := readBody(c.r, createFields...)
	if e != nil {
		return fail(e)
	}
	in, e := decodeCreate(b)
	if e != nil {
		return fail(e)
	}
	if e := in.validateIdentifiers(b); e != nil {
		return fail(e)
	}
	if e := in.validateSecrets(); e != nil {
		return fail(e)
	}
	if e := in.validateSettings(b); e != nil {
		return fail(e)
	}

	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if e := in.checkUnique(st); e != nil {
		return fail(e)
	}
	u := in.newUser(st.stamp(c.now))
	if in.locked != nil && *in.locked {
		s.applyLock(u, c.now)
	}
	st.insert(u)
	out := u.render(c.now.UnixMilli())
	s.emitUser(EventUserCreated, out, c.now, c.r)
	return okJSON(out)
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
// value, whenever the user changed, and then a user.updated webhook event
// goes out. It returns the new User JSON.
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
	changed := secret || !bytes.Equal(before, u.render(nowMS))
	if changed {
		u.data.UpdatedAt = ts
		u.refresh()
	}
	after := u.render(nowMS)
	if changed {
		s.emitUser(EventUserUpdated, after, c.now, c.r)
	}
	return after, nil
}

func (s *Server) mutateReply(c *call, fn func(u *user, ts int64) (bool, *apiError)) reply {
	b, e := s.mutate(c, fn)
	if e != nil {
		return fail(e)
	}
	return okJSON(b)
}

// updateRequest is the decoded body of PATCH /users/{user_id}. The has*
// fields tell an absent field from an explicit null.
type updateRequest struct {
	extID, first, last, locale, username              *string
	hasExt, hasFirst, hasLast, hasLocale, hasUsername bool
	primEmail, primPhone, primWeb3                    *string

	password, digest, hasher *string
	skipChecks, signOut      *bool
	totp                     *string // as sent; validated into totpSecret
	totpSecret               string  // normalized; "" = unchanged
	backup                   []string

	delSelf, createOrg, bypass *bool
	legal, orgLimit, createdAt *int64
	hasLegal, hasOrgLimit      bool

	meta    [3]map[string]any // public, private, unsafe (API versions before 2026-05-12)
	hasMeta [3]bool
}

// decodeUpdate reads the fields of a PATCH /users/{user_id} body in the
// order of updateFields, then the metadata fields when legacyMetadata,
// failing on the first one with the wrong type.
func decodeUpdate(b body, legacyMetadata bool) (*updateRequest, *apiError) {
	r := &fieldReader{b: b}
	in := &updateRequest{}
	in.extID, in.hasExt = r.optStr("external_id")
	in.first, in.hasFirst = r.optStr("first_name")
	in.last, in.hasLast = r.optStr("last_name")
	in.locale, in.hasLocale = r.optStr("locale")
	in.primEmail = r.str("primary_email_address_id")
	r.boolean("notify_primary_email_address_changed") // accepted, no effect
	in.primPhone = r.str("primary_phone_number_id")
	in.primWeb3 = r.str("primary_web3_wallet_id")
	in.username, in.hasUsername = r.optStr("username")
	r.str("profile_image_id") // accepted, no effect
	in.password = r.str("password")
	in.digest = r.str("password_digest")
	in.hasher = r.str("password_hasher")
	in.skipChecks = r.boolean("skip_password_checks")
	in.signOut = r.boolean("sign_out_of_other_sessions")
	in.totp = r.str("totp_secret")
	in.backup = r.strings("backup_codes")
	in.delSelf = r.boolean("delete_self_enabled")
	in.createOrg = r.boolean("create_organization_enabled")
	in.legal, in.hasLegal = r.timestamp("legal_accepted_at")
	r.boolean("skip_legal_checks") // accepted, no effect
	in.orgLimit, in.hasOrgLimit = r.integer("create_organizations_limit")
	in.createdAt, _ = r.timestamp("created_at")
	in.bypass = r.boolean("bypass_client_trust")
	if legacyMetadata {
		for i, f := range metadataFields {
			in.meta[i], in.hasMeta[i] = r.object(f)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return in, nil
}

// validate checks the request on its own, before the stored user is read.
func (in *updateRequest) validate() *apiError {
	if e := in.validatePassword(); e != nil {
		return e
	}
	in.username = nonEmpty(in.username)
	if in.username != nil {
		if e := checkUsername(*in.username); e != nil {
			return e
		}
	}
	if in.totp != nil {
		var e *apiError
		if in.totpSecret, e = normalizeTOTPSecret(*in.totp); e != nil {
			return e
		}
	}
	if e := checkOrgLimit(in.orgLimit); e != nil {
		return e
	}
	in.extID = nonEmpty(in.extID)
	return nil
}

// validatePassword checks password, the options that need it, and
// password_digest.
func (in *updateRequest) validatePassword() *apiError {
	skip := in.skipChecks != nil && *in.skipChecks
	if in.password == nil {
		if skip {
			return newAPIError(http.StatusUnprocessableEntity, "form_conditional_param_missing", "missing data",
				"skip_password_checks can only be used together with password.", paramMeta("password"))
		}
		if in.signOut != nil && *in.signOut {
			return newAPIError(http.StatusUnprocessableEntity, "form_conditional_param_missing", "missing data",
				"sign_out_of_other_sessions can only be used together with password.", paramMeta("password"))
		}
	} else if e := checkPassword(*in.password, skip); e != nil {
		return e
	}
	return checkHasher(in.digest, in.hasher)
}

// checkAgainst validates the request against the stored user u and returns
// the metadata u will have. Callers hold st.mu.
func (in *updateRequest) checkAgainst(st *store, u *user, b body) ([3]any, *apiError) {
	if in.extID != nil && taken(st.byExt, *in.extID, u.data.ID) {
		return [3]any{}, errIdentifierExists("external_id", "external ID")
	}
	if in.username != nil && taken(st.byUser, lower(*in.username), u.data.ID) {
		return [3]any{}, errIdentifierExists("username", "username")
	}
	if in.hasUsername && in.username == nil && u.data.Username != nil &&
		len(u.data.EmailAddresses) == 0 && len(u.data.PhoneNumbers) == 0 && len(u.data.Web3Wallets) == 0 {
		return [3]any{}, errParamValue("username", "The username cannot be removed: it is the user's only identifier.")
	}
	if e := in.checkPrimaries(u); e != nil {
		return [3]any{}, e
	}
	newMeta := [3]any{u.data.PublicMetadata, u.data.PrivateMetadata, u.data.UnsafeMetadata}
	for i := range in.meta {
		if in.hasMeta[i] {
			newMeta[i] = objectOrEmpty(in.meta[i])
		}
	}
	if in.hasMeta[0] || in.hasMeta[1] || in.hasMeta[2] {
		if n := metadataSize(newMeta[0], newMeta[1], newMeta[2]); n > MetadataLimitBytes {
			return [3]any{}, errParamTooLarge(firstPresent(b, metadataFields), n, MetadataLimitBytes)
		}
	}
	return newMeta, nil
}

// checkPrimaries checks that the new primary identifications are verified
// identifications of u.
func (in *updateRequest) checkPrimaries(u *user) *apiError {
	if id := in.primEmail; id != nil && !slices.ContainsFunc(u.data.EmailAddresses, func(em *emailAddress) bool {
		return em.ID == *id && isVerified(em.Verification)
	}) {
		return errPrimaryNotFound("email address", *id, "primary_email_address_id")
	}
	if id := in.primPhone; id != nil && !slices.ContainsFunc(u.data.PhoneNumbers, func(p *phoneNumber) bool {
		return p.ID == *id && isVerified(p.Verification)
	}) {
		return errPrimaryNotFound("phone number", *id, "primary_phone_number_id")
	}
	if id := in.primWeb3; id != nil && !slices.ContainsFunc(u.data.Web3Wallets, func(w *web3Wallet) bool {
		return w.ID == *id && isVerified(w.Verification)
	}) {
		return errPrimaryNotFound("web3 wallet", *id, "primary_web3_wallet_id")
	}
	return nil
}

func errPrimaryNotFound(what, id, param string) *apiError {
	return newAPIError(http.StatusUnprocessableEntity, "form_resource_not_found", "not found",
		"No verified "+what+" with id "+id+" was found for this user.", paramMeta(param))
}

// apply changes u as the request asks and reports whether a secret
// changed. Callers hold st.mu and ran checkAgainst.
func (in *updateRequest) apply(st *store, u *user, ts int64, newMeta [3]any) (secretChanged bool) {
	st.unindex(u)
	defer st.index(u)
	in.applyProfile(u)
	secretChanged = in.applySecrets(u, ts)
	u.recomputeMFA(ts)
	in.applySettings(u)
	u.data.PublicMetadata, u.data.PrivateMetadata, u.data.UnsafeMetadata = newMeta[0], newMeta[1], newMeta[2]
	return secretChanged
}

// applyProfile sets the names, identifiers and primary identifications.
func (in *updateRequest) applyProfile(u *user) {
	d := &u.data
	if in.hasExt {
		d.ExternalID = in.extID
	}
	if in.hasFirst {
		d.FirstName = nonEmpty(in.first)
	}
	if in.hasLast {
		d.LastName = nonEmpty(in.last)
	}
	if in.hasLocale {
		d.Locale = nonEmpty(in.locale)
	}
	if in.hasUsername {
		d.Username = in.username
	}
	if in.primEmail != nil {
		d.PrimaryEmailAddressID = new(*in.primEmail)
	}
	if in.primPhone != nil {
		d.PrimaryPhoneNumberID = new(*in.primPhone)
	}
	if in.primWeb3 != nil {
		d.PrimaryWeb3WalletID = new(*in.primWeb3)
	}
}

// applySecrets replaces the password (or digest), TOTP secret and backup
// codes that the request sets, and reports whether any changed.
func (in *updateRequest) applySecrets(u *user, ts int64) bool {
	changed := false
	if in.password != nil || in.digest != nil {
		if in.password != nil {
			u.password, u.passwordDigest = new(*in.password), nil
		} else {
			u.password, u.passwordDigest = nil, new(*in.digest)
		}
		u.data.PasswordEnabled = true
		u.data.PasswordLastUpdatedAt = new(ts)
		changed = true
	}
	if in.totpSecret != "" {
		u.totpSecret = in.totpSecret
		u.data.TOTPEnabled = true
		changed = true
	}
	if len(in.backup) > 0 {
		u.backupCodes = append([]string(nil), in.backup...)
		u.data.BackupCodeEnabled = true
		changed = true
	}
	return changed
}

// applySettings sets the account settings and timestamps.
func (in *updateRequest) applySettings(u *user) {
	d := &u.data
	setIfPresent(&d.DeleteSelfEnabled, in.delSelf)
	setIfPresent(&d.CreateOrganizationEnabled, in.createOrg)
	if in.hasLegal {
		d.LegalAcceptedAt = in.legal
	}
	if in.hasOrgLimit {
		d.CreateOrganizationsLimit = in.orgLimit
	}
	setIfPresent(&d.CreatedAt, in.createdAt)
	setIfPresent(&d.BypassClientTrust, in.bypass)
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
	in, e := decodeUpdate(b, legacyMetadata)
	if e != nil {
		return fail(e)
	}
	if e := in.validate(); e != nil {
		return fail(e)
	}
	return s.mutateReply(c, func(u *user, ts int64) (bool, *apiError) {
		// Validate everything against the stored state first.
		newMeta, e := in.checkAgainst(s.st, u, b)
		if e != nil {
			return false, e
		}
		return in.apply(s.st, u, ts, newMeta), nil
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
	s.emitDeleted(u.data.ID, c.now, c.r)
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
