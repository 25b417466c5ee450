package clerkfake

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// userJSON is the wire form of Clerk's User schema (bapi/2026-05-12.yml,
// components/schemas/User). Field order follows the spec; every required
// field is always present (nullable ones as null).
type userJSON struct {
	ID                            string           `json:"id"`
	Object                        string           `json:"object"`
	ExternalID                    *string          `json:"external_id"`
	PrimaryEmailAddressID         *string          `json:"primary_email_address_id"`
	PrimaryPhoneNumberID          *string          `json:"primary_phone_number_id"`
	PrimaryWeb3WalletID           *string          `json:"primary_web3_wallet_id"`
	Username                      *string          `json:"username"`
	FirstName                     *string          `json:"first_name"`
	LastName                      *string          `json:"last_name"`
	Locale                        *string          `json:"locale"`
	ImageURL                      string           `json:"image_url"`
	HasImage                      bool             `json:"has_image"`
	PublicMetadata                any              `json:"public_metadata"`
	PrivateMetadata               any              `json:"private_metadata"`
	UnsafeMetadata                any              `json:"unsafe_metadata"`
	EmailAddresses                []*emailAddress  `json:"email_addresses"`
	PhoneNumbers                  []*phoneNumber   `json:"phone_numbers"`
	Web3Wallets                   []*web3Wallet    `json:"web3_wallets"`
	Passkeys                      []map[string]any `json:"passkeys"`
	PasswordEnabled               bool             `json:"password_enabled"`
	TwoFactorEnabled              bool             `json:"two_factor_enabled"`
	TOTPEnabled                   bool             `json:"totp_enabled"`
	BackupCodeEnabled             bool             `json:"backup_code_enabled"`
	MFAEnabledAt                  *int64           `json:"mfa_enabled_at"`
	MFADisabledAt                 *int64           `json:"mfa_disabled_at"`
	PasswordLastUpdatedAt         *int64           `json:"password_last_updated_at"`
	ExternalAccounts              []map[string]any `json:"external_accounts"`
	SAMLAccounts                  []map[string]any `json:"saml_accounts"`
	EnterpriseAccounts            []map[string]any `json:"enterprise_accounts"`
	LastSignInAt                  *int64           `json:"last_sign_in_at"`
	Banned                        bool             `json:"banned"`
	Locked                        bool             `json:"locked"`
	Deprovisioned                 bool             `json:"deprovisioned"`
	LockoutExpiresInSeconds       *int64           `json:"lockout_expires_in_seconds"`
	VerificationAttemptsRemaining *int64           `json:"verification_attempts_remaining"`
	UpdatedAt                     int64            `json:"updated_at"`
	CreatedAt                     int64            `json:"created_at"`
	DeleteSelfEnabled             bool             `json:"delete_self_enabled"`
	CreateOrganizationEnabled     bool             `json:"create_organization_enabled"`
	CreateOrganizationsLimit      *int64           `json:"create_organizations_limit"`
	LastActiveAt                  *int64           `json:"last_active_at"`
	LegalAcceptedAt               *int64           `json:"legal_accepted_at"`
	BypassClientTrust             bool             `json:"bypass_client_trust"`
}

// emailAddress is the EmailAddress schema.
type emailAddress struct {
	ID                   string           `json:"id"`
	Object               string           `json:"object"`
	EmailAddress         string           `json:"email_address"`
	Reserved             bool             `json:"reserved"`
	Verification         map[string]any   `json:"verification"`
	LinkedTo             []map[string]any `json:"linked_to"`
	MatchesSSOConnection bool             `json:"matches_sso_connection"`
	CreatedAt            int64            `json:"created_at"`
	UpdatedAt            int64            `json:"updated_at"`
}

// phoneNumber is the PhoneNumber schema.
type phoneNumber struct {
	ID                      string           `json:"id"`
	Object                  string           `json:"object"`
	PhoneNumber             string           `json:"phone_number"`
	ReservedForSecondFactor bool             `json:"reserved_for_second_factor"`
	DefaultSecondFactor     bool             `json:"default_second_factor"`
	Reserved                bool             `json:"reserved"`
	Verification            map[string]any   `json:"verification"`
	LinkedTo                []map[string]any `json:"linked_to"`
	BackupCodes             []string         `json:"backup_codes"`
	CreatedAt               int64            `json:"created_at"`
	UpdatedAt               int64            `json:"updated_at"`
}

// web3Wallet is the Web3Wallet schema.
type web3Wallet struct {
	ID           string         `json:"id"`
	Object       string         `json:"object"`
	Web3Wallet   string         `json:"web3_wallet"`
	Verification map[string]any `json:"verification"`
	CreatedAt    int64          `json:"created_at"`
	UpdatedAt    int64          `json:"updated_at"`
}

// user is one stored Clerk user: the wire state plus the secrets and
// relations Clerk keeps but never returns on the User object.
type user struct {
	data userJSON
	seq  int64 // insertion order; tie-breaker for equal created_at

	password       *string // plaintext, for verify_password
	passwordDigest *string // set via password_digest; cannot be verified
	totpSecret     string
	backupCodes    []string
	lockExpiresAt  int64 // ms; 0 = no finite lockout

	memberships []map[string]any // OrganizationMembership objects (public_user_data filled on read)
	invitations []map[string]any // OrganizationInvitationWithPublicOrganizationData objects

	cached []byte      // rendered JSON; valid unless lockExpiresAt != 0
	search searchIndex // lowercased text for the list filters; rebuilt by refresh
}

// searchIndex holds lowercased copies of the fields the partial-match
// filters of GET /users look at, so listing does not allocate per user.
type searchIndex struct {
	emails, phones []string
	username, name string
	all            string // every `query` candidate, NUL-separated
}

func verificationAdmin() map[string]any {
	return map[string]any{"object": "verification_admin", "status": "verified", "strategy": "admin", "attempts": nil, "expire_at": nil}
}

func isVerified(v map[string]any) bool {
	if v == nil {
		return false
	}
	s, _ := v["status"].(string)
	return s == "verified"
}

// defaultImageURL mimics Clerk's img.clerk.com URLs: base64url JSON
// describing either the default avatar or an uploaded image.
func defaultImageURL(userID string) string {
	b, _ := json.Marshal(map[string]string{"type": "default", "iid": InstanceID, "rid": userID})
	return "https://img.clerk.com/" + base64.RawURLEncoding.EncodeToString(b)
}

func uploadedImageURL(imgID string) string {
	b, _ := json.Marshal(map[string]string{"type": "proxy", "src": "https://images.clerk.dev/uploaded/" + imgID})
	return "https://img.clerk.com/" + base64.RawURLEncoding.EncodeToString(b)
}

// render returns the User JSON as of nowMS. Users with a finite lockout are
// rendered fresh because lockout_expires_in_seconds counts down.
func (u *user) render(nowMS int64) []byte {
	if u.lockExpiresAt == 0 && u.cached != nil {
		return u.cached
	}
	d := u.data
	if u.lockExpiresAt != 0 {
		if nowMS >= u.lockExpiresAt {
			d.Locked = false
			d.LockoutExpiresInSeconds = nil
		} else {
			left := (u.lockExpiresAt - nowMS + 999) / 1000
			d.LockoutExpiresInSeconds = &left
		}
	}
	b, err := json.Marshal(&d)
	if err != nil {
		panic("clerkfake: render user: " + err.Error()) // only plain JSON values are stored
	}
	return b
}

// refresh re-renders the cached JSON and the search index; call after
// every mutation.
func (u *user) refresh() {
	u.cached = nil
	if u.lockExpiresAt == 0 {
		u.cached = u.render(0)
	}
	d := &u.data
	ix := searchIndex{username: lower(deref(d.Username)), name: lower(fullName(d))}
	parts := []string{lower(d.ID), ix.username, lower(deref(d.FirstName)), lower(deref(d.LastName)), ix.name}
	for _, e := range d.EmailAddresses {
		ix.emails = append(ix.emails, lower(e.EmailAddress))
	}
	for _, p := range d.PhoneNumbers {
		ix.phones = append(ix.phones, lower(p.PhoneNumber))
	}
	parts = append(append(parts, ix.emails...), ix.phones...)
	for _, w := range d.Web3Wallets {
		parts = append(parts, lower(w.Web3Wallet))
	}
	ix.all = strings.Join(parts, "\x00")
	u.search = ix
}

// primaryEmail returns the primary email address string or "".
func (u *user) primaryEmail() string {
	if u.data.PrimaryEmailAddressID == nil {
		return ""
	}
	for _, e := range u.data.EmailAddresses {
		if e.ID == *u.data.PrimaryEmailAddressID {
			return e.EmailAddress
		}
	}
	return ""
}

func (u *user) primaryPhone() string {
	if u.data.PrimaryPhoneNumberID == nil {
		return ""
	}
	for _, p := range u.data.PhoneNumbers {
		if p.ID == *u.data.PrimaryPhoneNumberID {
			return p.PhoneNumber
		}
	}
	return ""
}

func (u *user) primaryWeb3() string {
	if u.data.PrimaryWeb3WalletID == nil {
		return ""
	}
	for _, w := range u.data.Web3Wallets {
		if w.ID == *u.data.PrimaryWeb3WalletID {
			return w.Web3Wallet
		}
	}
	return ""
}

// identifier is what Clerk shows as public_user_data.identifier: the
// primary email, else phone, else username, else web3 wallet.
func (u *user) identifier() string {
	for _, s := range []string{u.primaryEmail(), u.primaryPhone(), deref(u.data.Username), u.primaryWeb3()} {
		if s != "" {
			return s
		}
	}
	return ""
}

// recomputeMFA derives two_factor_enabled and the MFA timestamps after a
// change of TOTP, backup codes or phone second factors.
func (u *user) recomputeMFA(ts int64) {
	was := u.data.TwoFactorEnabled
	phone2FA := false
	for _, p := range u.data.PhoneNumbers {
		if p.ReservedForSecondFactor {
			phone2FA = true
		}
	}
	now := u.data.TOTPEnabled || u.data.BackupCodeEnabled || phone2FA
	u.data.TwoFactorEnabled = now
	switch {
	case now && !was:
		u.data.MFAEnabledAt = new(ts)
	case !now && was:
		u.data.MFADisabledAt = new(ts)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func lower(s string) string { return strings.ToLower(s) }
