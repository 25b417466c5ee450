package clerkfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// userProperties are the properties of the spec's User schema that a seed
// entry may carry.
var userProperties = []string{
	"id", "object", "external_id", "primary_email_address_id", "primary_phone_number_id", "primary_web3_wallet_id",
	"username", "first_name", "last_name", "locale", "profile_image_url", "image_url", "has_image", "public_metadata",
	"private_metadata", "unsafe_metadata", "email_addresses", "phone_numbers", "web3_wallets", "passkeys",
	"password_enabled", "two_factor_enabled", "totp_enabled", "backup_code_enabled", "mfa_enabled_at", "mfa_disabled_at",
	"password_last_updated_at", "external_accounts", "saml_accounts", "enterprise_accounts", "organization_memberships",
	"last_sign_in_at", "banned", "locked", "deprovisioned", "lockout_expires_in_seconds", "verification_attempts_remaining",
	"updated_at", "created_at", "delete_self_enabled", "create_organization_enabled", "create_organizations_limit",
	"last_active_at", "legal_accepted_at", "bypass_client_trust",
}

// seedExtras are seed-only fields for state Clerk never returns.
type seedExtras struct {
	Password                *string          `json:"password"`
	TOTPSecret              *string          `json:"totp_secret"`
	BackupCodes             []string         `json:"backup_codes"`
	OrganizationInvitations []map[string]any `json:"organization_invitations"`
	OrganizationMemberships []map[string]any `json:"organization_memberships"`
}

var seedExtraFields = []string{"password", "totp_secret", "backup_codes", "organization_invitations"}

// Seed adds users, given as (partial) Clerk User JSON objects as returned by
// GET /v1/users/{user_id}. Missing fields get Clerk's defaults: a fresh
// user_… ID, idn_… IDs and admin verifications for email addresses, phone
// numbers and web3 wallets, the first of each as primary, {} metadata,
// millisecond timestamps, delete_self_enabled and
// create_organization_enabled true. organization_memberships,
// external_accounts and passkeys are filled in the same way.
//
// Besides User fields an entry may carry seed-only fields for state Clerk
// keeps secret: "password" (plaintext, for verify_password), "totp_secret"
// (base32), "backup_codes" (string array) and "organization_invitations"
// (OrganizationInvitation objects for GET …/organization_invitations).
//
// Identifiers must be unique across the batch and the users already stored.
// On any error nothing is added, and the error names the entry index and
// the problem, e.g. "seed entry 3: duplicate email_address a@b.c".
// With webhooks on, every added user gets a user.created event.
func (s *Server) Seed(users []json.RawMessage) error {
	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()

	now := s.now()
	claimed := map[string]string{} // "kind:value" → taken within this batch
	var batch []*user
	for i, raw := range users {
		u, err := s.seedUser(raw, now, claimed)
		if err != nil {
			return fmt.Errorf("seed entry %d: %w", i, err)
		}
		batch = append(batch, u)
	}
	for _, u := range batch {
		st.insert(u)
		s.emitUser(EventUserCreated, u.render(now.UnixMilli()), now, nil)
	}
	return nil
}

// claim records a unique identifier, failing if it is taken in the store or
// earlier in the batch.
func (s *Server) claim(claimed map[string]string, idx map[string]string, field, value, key string) error {
	if _, ok := idx[key]; ok {
		return fmt.Errorf("duplicate %s %s (already used by a stored user)", field, value)
	}
	k := field + ":" + key
	if _, ok := claimed[k]; ok {
		return fmt.Errorf("duplicate %s %s", field, value)
	}
	claimed[k] = value
	return nil
}

func (s *Server) seedUser(raw json.RawMessage, now time.Time, claimed map[string]string) (*user, error) {
	e, err := parseSeedEntry(raw)
	if err != nil {
		return nil, err
	}
	u, d := e.user, &e.user.data
	ts := s.st.stamp(now)
	if err := s.seedIdentity(d, ts, claimed); err != nil {
		return nil, err
	}
	if err := s.seedIdentifications(d, ts, claimed); err != nil {
		return nil, err
	}
	if err := e.seedProfile(); err != nil {
		return nil, err
	}
	e.seedLinkedAccounts(ts)
	if err := e.seedSecrets(ts); err != nil {
		return nil, err
	}
	if d.Locked && d.LockoutExpiresInSeconds != nil {
		u.lockExpiresAt = now.UnixMilli() + *d.LockoutExpiresInSeconds*1000
	}
	return u, nil
}

// seedEntry is one decoded seed entry before defaults are filled in.
type seedEntry struct {
	user       *user
	extras     seedExtras
	fields     map[string]json.RawMessage // the User fields given
	profileURL string                     // the legacy profile_image_url, if given
}

// has reports whether the entry sets User field k to a non-null value.
func (e *seedEntry) has(k string) bool {
	v, ok := e.fields[k]
	return ok && !isNull(v)
}

// parseSeedEntry splits a seed entry into User fields and seed-only extras
// and decodes both, rejecting unknown fields.
func parseSeedEntry(raw json.RawMessage) (*seedEntry, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	e := &seedEntry{user: &user{}, fields: map[string]json.RawMessage{}}
	var unknown []string
	for k, v := range fields {
		switch {
		case slices.Contains(seedExtraFields, k) || k == "organization_memberships":
			one, _ := json.Marshal(map[string]json.RawMessage{k: v})
			dec := json.NewDecoder(bytes.NewReader(one))
			dec.UseNumber()
			if err := dec.Decode(&e.extras); err != nil {
				return nil, fmt.Errorf("field %s: %w", k, err)
			}
		case slices.Contains(userProperties, k):
			e.fields[k] = v
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("unknown field %s", strings.Join(unknown, ", "))
	}
	if v, ok := e.fields["profile_image_url"]; ok {
		_ = json.Unmarshal(v, &e.profileURL)
		delete(e.fields, "profile_image_url")
	}
	filtered, _ := json.Marshal(e.fields)
	dec := json.NewDecoder(bytes.NewReader(filtered))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e.user.data); err != nil {
		return nil, fmt.Errorf("invalid User object: %w", err)
	}
	return e, nil
}

// seedIdentity checks and defaults the ID, object, timestamps, external ID
// and username.
func (s *Server) seedIdentity(d *userJSON, ts int64, claimed map[string]string) error {
	st := s.st
	if d.ID == "" {
		d.ID = newID("user")
	} else if !strings.HasPrefix(d.ID, "user_") || len(d.ID) <= len("user_") {
		return fmt.Errorf("id %q must look like user_<id>", d.ID)
	}
	if _, ok := st.users[d.ID]; ok {
		return fmt.Errorf("duplicate id %s (already used by a stored user)", d.ID)
	}
	if _, ok := claimed["id:"+d.ID]; ok {
		return fmt.Errorf("duplicate id %s", d.ID)
	}
	claimed["id:"+d.ID] = d.ID
	if d.Object != "" && d.Object != "user" {
		return fmt.Errorf("object must be \"user\", got %q", d.Object)
	}
	d.Object = "user"
	if d.CreatedAt == 0 {
		d.CreatedAt = ts
	}
	if d.UpdatedAt == 0 {
		d.UpdatedAt = max(ts, d.CreatedAt)
	}
	if d.ExternalID != nil {
		if err := s.claim(claimed, st.byExt, "external_id", *d.ExternalID, *d.ExternalID); err != nil {
			return err
		}
	}
	if d.Username != nil {
		if err := s.claim(claimed, st.byUser, "username", *d.Username, lower(*d.Username)); err != nil {
			return err
		}
	}
	return nil
}

// seedIdentifications checks and defaults the email addresses, phone
// numbers and web3 wallets and their primary IDs.
func (s *Server) seedIdentifications(d *userJSON, ts int64, claimed map[string]string) error {
	if err := s.seedEmails(d, ts, claimed); err != nil {
		return err
	}
	if err := s.seedPhones(d, ts, claimed); err != nil {
		return err
	}
	if err := s.seedWallets(d, ts, claimed); err != nil {
		return err
	}
	if err := seedPrimary(&d.PrimaryEmailAddressID, "primary_email_address_id", len(d.EmailAddresses),
		func(i int) string { return d.EmailAddresses[i].ID }); err != nil {
		return err
	}
	if err := seedPrimary(&d.PrimaryPhoneNumberID, "primary_phone_number_id", len(d.PhoneNumbers),
		func(i int) string { return d.PhoneNumbers[i].ID }); err != nil {
		return err
	}
	return seedPrimary(&d.PrimaryWeb3WalletID, "primary_web3_wallet_id", len(d.Web3Wallets),
		func(i int) string { return d.Web3Wallets[i].ID })
}

func (s *Server) seedEmails(d *userJSON, ts int64, claimed map[string]string) error {
	if d.EmailAddresses == nil {
		d.EmailAddresses = []*emailAddress{}
	}
	for j, e := range d.EmailAddresses {
		if e == nil || e.EmailAddress == "" {
			return fmt.Errorf("email_addresses[%d]: email_address is required", j)
		}
		e.EmailAddress = lower(strings.TrimSpace(e.EmailAddress))
		if !validEmail(e.EmailAddress) {
			return fmt.Errorf("email_addresses[%d]: invalid email_address %q", j, e.EmailAddress)
		}
		if err := s.claim(claimed, s.st.byEmail, "email_address", e.EmailAddress, e.EmailAddress); err != nil {
			return err
		}
		fillIdent(&e.ID, &e.Object, "email_address", &e.CreatedAt, &e.UpdatedAt, ts)
		if e.Verification == nil && !e.Reserved {
			e.Verification = verificationAdmin()
		}
		if e.LinkedTo == nil {
			e.LinkedTo = []map[string]any{}
		}
	}
	return nil
}

func (s *Server) seedPhones(d *userJSON, ts int64, claimed map[string]string) error {
	if d.PhoneNumbers == nil {
		d.PhoneNumbers = []*phoneNumber{}
	}
	for j, p := range d.PhoneNumbers {
		if p == nil || !phoneRE.MatchString(p.PhoneNumber) {
			return fmt.Errorf("phone_numbers[%d]: phone_number must be in E.164 format", j)
		}
		if err := s.claim(claimed, s.st.byPhone, "phone_number", p.PhoneNumber, p.PhoneNumber); err != nil {
			return err
		}
		fillIdent(&p.ID, &p.Object, "phone_number", &p.CreatedAt, &p.UpdatedAt, ts)
		if p.Verification == nil && !p.Reserved {
			p.Verification = verificationAdmin()
		}
		if p.LinkedTo == nil {
			p.LinkedTo = []map[string]any{}
		}
	}
	return nil
}

func (s *Server) seedWallets(d *userJSON, ts int64, claimed map[string]string) error {
	if d.Web3Wallets == nil {
		d.Web3Wallets = []*web3Wallet{}
	}
	for j, w := range d.Web3Wallets {
		if w == nil || w.Web3Wallet == "" {
			return fmt.Errorf("web3_wallets[%d]: web3_wallet is required", j)
		}
		if err := s.claim(claimed, s.st.byWeb3, "web3_wallet", w.Web3Wallet, lower(w.Web3Wallet)); err != nil {
			return err
		}
		fillIdent(&w.ID, &w.Object, "web3_wallet", &w.CreatedAt, &w.UpdatedAt, ts)
		if w.Verification == nil {
			w.Verification = verificationAdmin()
		}
	}
	return nil
}

// seedProfile defaults the image URL, metadata and account settings.
func (e *seedEntry) seedProfile() error {
	d := &e.user.data
	if d.ImageURL == "" {
		d.ImageURL = e.profileURL
	}
	if d.ImageURL == "" {
		if d.HasImage {
			d.ImageURL = uploadedImageURL(newID("img"))
		} else {
			d.ImageURL = defaultImageURL(d.ID)
		}
	}
	for _, m := range []*any{&d.PublicMetadata, &d.PrivateMetadata, &d.UnsafeMetadata} {
		if *m == nil {
			*m = emptyObject()
		}
		if _, ok := (*m).(map[string]any); !ok {
			return fmt.Errorf("metadata must be JSON objects")
		}
	}
	if n := metadataSize(d.PublicMetadata, d.PrivateMetadata, d.UnsafeMetadata); n > MetadataLimitBytes {
		return fmt.Errorf("metadata is %d bytes, over Clerk's %d byte limit", n, MetadataLimitBytes)
	}
	if !e.has("delete_self_enabled") {
		d.DeleteSelfEnabled = true
	}
	if !e.has("create_organization_enabled") {
		d.CreateOrganizationEnabled = true
	}
	return nil
}

// seedLinkedAccounts fills in passkeys, external, SAML and enterprise
// accounts, organization memberships and invitations.
func (e *seedEntry) seedLinkedAccounts(ts int64) {
	u, d := e.user, &e.user.data
	d.Passkeys = fillList(d.Passkeys, func(m map[string]any) {
		setDefault(m, "id", newID("idn"))
		setDefault(m, "object", "passkey")
		setDefault(m, "name", "Passkey")
		setDefault(m, "last_used_at", ts)
		setDefault(m, "verification", map[string]any{"object": "verification_passkey", "status": "verified",
			"strategy": "passkey", "attempts": nil, "expire_at": nil})
	})
	d.ExternalAccounts = fillList(d.ExternalAccounts, func(m map[string]any) {
		setDefault(m, "object", "external_account")
		setDefault(m, "id", newID("eac"))
		setDefault(m, "provider", "oauth_google")
		setDefault(m, "identification_id", newID("idn"))
		setDefault(m, "provider_user_id", newID("puid")[5:])
		setDefault(m, "approved_scopes", "email profile openid")
		setDefault(m, "email_address", u.primaryEmail())
		setDefault(m, "first_name", deref(d.FirstName))
		setDefault(m, "last_name", deref(d.LastName))
		setDefault(m, "public_metadata", map[string]any{})
		setDefault(m, "created_at", ts)
		setDefault(m, "updated_at", ts)
		setDefault(m, "verification", map[string]any{"object": "verification_oauth", "status": "verified",
			"strategy": m["provider"], "attempts": nil, "expire_at": ts + 3600*1000})
	})
	d.SAMLAccounts = fillList(d.SAMLAccounts, func(map[string]any) {})
	d.EnterpriseAccounts = fillList(d.EnterpriseAccounts, func(map[string]any) {})
	u.memberships = fillList(e.extras.OrganizationMemberships, func(m map[string]any) {
		setDefault(m, "id", newID("orgmem"))
		setDefault(m, "object", "organization_membership")
		setDefault(m, "role", "org:member")
		setDefault(m, "role_name", "Member")
		setDefault(m, "permissions", []any{})
		setDefault(m, "public_metadata", map[string]any{})
		setDefault(m, "private_metadata", map[string]any{})
		setDefault(m, "created_at", ts)
		setDefault(m, "updated_at", ts)
		org, _ := m["organization"].(map[string]any)
		if org == nil {
			org = map[string]any{}
		}
		setDefault(org, "object", "organization")
		setDefault(org, "id", newID("org"))
		setDefault(org, "name", "Fake Organization")
		setDefault(org, "slug", strings.ToLower(strings.ReplaceAll(fmt.Sprint(org["name"]), " ", "-")))
		setDefault(org, "has_image", false)
		setDefault(org, "max_allowed_memberships", 5)
		setDefault(org, "admin_delete_enabled", true)
		setDefault(org, "public_metadata", map[string]any{})
		setDefault(org, "created_at", ts)
		setDefault(org, "updated_at", ts)
		m["organization"] = org
		delete(m, "public_user_data") // rendered from the user on read
	})
	u.invitations = fillList(e.extras.OrganizationInvitations, func(m map[string]any) {
		setDefault(m, "object", "organization_invitation")
		setDefault(m, "id", newID("orginv"))
		setDefault(m, "email_address", u.primaryEmail())
		setDefault(m, "role", "org:member")
		setDefault(m, "role_name", "Member")
		setDefault(m, "organization_id", newID("org"))
		setDefault(m, "inviter_id", nil)
		setDefault(m, "public_inviter_data", nil)
		setDefault(m, "status", "pending")
		setDefault(m, "public_metadata", map[string]any{})
		setDefault(m, "private_metadata", map[string]any{})
		setDefault(m, "url", nil)
		setDefault(m, "expires_at", nil)
		setDefault(m, "created_at", ts)
		setDefault(m, "updated_at", ts)
		setDefault(m, "public_organization_data", map[string]any{"id": m["organization_id"], "name": "Fake Organization",
			"slug": "fake-organization", "has_image": false})
	})
}

// seedSecrets stores the seed-only password, TOTP secret and backup codes
// and derives the flags the entry does not set itself.
func (e *seedEntry) seedSecrets(ts int64) error {
	u, d, x := e.user, &e.user.data, &e.extras
	if x.Password != nil {
		u.password = new(*x.Password)
		if !e.has("password_enabled") {
			d.PasswordEnabled = true
		}
		if d.PasswordLastUpdatedAt == nil {
			d.PasswordLastUpdatedAt = new(ts)
		}
	}
	seededMFAAt := d.MFAEnabledAt
	if x.TOTPSecret != nil {
		secret, ae := normalizeTOTPSecret(*x.TOTPSecret)
		if ae != nil {
			return fmt.Errorf("totp_secret must be base32")
		}
		u.totpSecret = secret
		if !e.has("totp_enabled") {
			d.TOTPEnabled = true
		}
	}
	if len(x.BackupCodes) > 0 {
		u.backupCodes = append([]string(nil), x.BackupCodes...)
		if !e.has("backup_code_enabled") {
			d.BackupCodeEnabled = true
		}
	}
	if !e.has("two_factor_enabled") {
		u.recomputeMFA(ts)
		if seededMFAAt != nil {
			d.MFAEnabledAt = seededMFAAt
		}
	}
	return nil
}

// fillIdent sets the default id, object and timestamps of an identification.
func fillIdent(id, object *string, kind string, created, updated *int64, ts int64) {
	if *id == "" {
		*id = newID("idn")
	}
	*object = kind
	if *created == 0 {
		*created = ts
	}
	if *updated == 0 {
		*updated = *created
	}
}

// seedPrimary defaults a primary_* ID to the first item and checks that a
// given one exists.
func seedPrimary(p **string, field string, n int, id func(int) string) error {
	if *p == nil {
		if n > 0 {
			*p = new(id(0))
		}
		return nil
	}
	for i := range n {
		if id(i) == **p {
			return nil
		}
	}
	return fmt.Errorf("%s %s does not match any of the user's identifications", field, **p)
}

func fillList(l []map[string]any, fill func(map[string]any)) []map[string]any {
	out := make([]map[string]any, 0, len(l))
	for _, m := range l {
		if m == nil {
			m = map[string]any{}
		}
		fill(m)
		out = append(out, m)
	}
	return out
}

func setDefault(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}
