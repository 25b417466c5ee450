package clerk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// User is Clerk's User object, reduced to the fields the operator uses. Unknown fields in the
// response are ignored. Timestamps are Unix epoch milliseconds. Metadata objects decode into
// map[string]any with numbers as json.Number (their exact text, never float64), which encode
// back unchanged; a JSON null metadata object decodes to a nil map.
type User struct {
	// ID is Clerk's user ID, "user_…".
	ID string `json:"id"`
	// Object is always "user".
	Object string `json:"object"`
	// ExternalID is the application's own ID for the user; nil when not set.
	ExternalID *string `json:"external_id"`
	// Username is nil when the user has none.
	Username *string `json:"username"`
	// FirstName is nil when not set.
	FirstName *string `json:"first_name"`
	// LastName is nil when not set.
	LastName *string `json:"last_name"`
	// PrimaryEmailAddressID is the ID ("idn_…") of the primary entry of EmailAddresses; nil when
	// the user has no email address.
	PrimaryEmailAddressID *string `json:"primary_email_address_id"`
	// PrimaryPhoneNumberID is the ID of the primary phone number; nil when none.
	PrimaryPhoneNumberID *string `json:"primary_phone_number_id"`
	// EmailAddresses are all of the user's email addresses.
	EmailAddresses []EmailAddress `json:"email_addresses"`
	// PublicMetadata is visible to frontend and backend.
	PublicMetadata map[string]any `json:"public_metadata"`
	// PrivateMetadata is visible to the backend only.
	PrivateMetadata map[string]any `json:"private_metadata"`
	// UnsafeMetadata can be written by the frontend.
	UnsafeMetadata map[string]any `json:"unsafe_metadata"`
	// Banned reports whether the user is banned (all sessions revoked, sign-in refused).
	Banned bool `json:"banned"`
	// Locked reports whether the user is currently locked out of signing in.
	Locked bool `json:"locked"`
	// LockoutExpiresInSeconds is the time left on a lock; nil for a locked user means it never
	// expires, and it is nil for an unlocked user.
	LockoutExpiresInSeconds *int64 `json:"lockout_expires_in_seconds"`
	// TwoFactorEnabled reports whether any second factor is enabled.
	TwoFactorEnabled bool `json:"two_factor_enabled"`
	// TOTPEnabled reports whether an authenticator app (TOTP) is enabled.
	TOTPEnabled bool `json:"totp_enabled"`
	// BackupCodeEnabled reports whether backup codes are enabled.
	BackupCodeEnabled bool `json:"backup_code_enabled"`
	// MFAEnabledAt is when a second factor was last enabled (Unix ms); nil if never. Clerk
	// keeps it when MFA is disabled again.
	MFAEnabledAt *int64 `json:"mfa_enabled_at"`
	// MFADisabledAt is when MFA was last disabled (Unix ms); nil if never. Clerk keeps it when
	// MFA is enabled again.
	MFADisabledAt *int64 `json:"mfa_disabled_at"`
	// PasswordEnabled reports whether the user has a password.
	PasswordEnabled bool `json:"password_enabled"`
	// CreatedAt is the creation time (Unix ms).
	CreatedAt int64 `json:"created_at"`
	// UpdatedAt is the time of the last update (Unix ms).
	UpdatedAt int64 `json:"updated_at"`
	// LastSignInAt is the time of the last sign-in (Unix ms); nil if never.
	LastSignInAt *int64 `json:"last_sign_in_at"`
	// LastActiveAt is the time of the latest session activity (Unix ms, day precision); nil if never.
	LastActiveAt *int64 `json:"last_active_at"`
}

// EmailAddress is an entry of User.EmailAddresses.
type EmailAddress struct {
	// ID is the identification ID, "idn_…".
	ID string `json:"id"`
	// EmailAddress is the address itself.
	EmailAddress string `json:"email_address"`
	// Verification is the address's verification; nil when Clerk sent null.
	Verification *Verification `json:"verification,omitempty"`
}

// Verification is the verification state of an identification such as an email address.
type Verification struct {
	// Status is e.g. "verified" or "unverified".
	Status string `json:"status"`
	// Strategy is e.g. "admin", "email_code".
	Strategy string `json:"strategy"`
}

// PrimaryEmailAddress returns the address of the entry of EmailAddresses whose ID is
// PrimaryEmailAddressID, or "" when there is no primary address (or u is nil).
func (u *User) PrimaryEmailAddress() string {
	if u == nil || u.PrimaryEmailAddressID == nil {
		return ""
	}
	for _, e := range u.EmailAddresses {
		if e.ID == *u.PrimaryEmailAddressID {
			return e.EmailAddress
		}
	}
	return ""
}

// MaxFilterValues is the most values Clerk accepts for one list filter (e.g. user_id).
const MaxFilterValues = 100

// MaxListLimit is the largest page size Clerk accepts for GET /users.
const MaxListLimit = 500

// ListUsersParams selects users for [Client.ListUsers] and [Client.CountUsers]. Filters are sent
// as repeated query keys (user_id=a&user_id=b); different filters combine as AND. Clerk reads a
// leading "+" or "-" on UserIDs and ExternalIDs values as include/exclude markers.
type ListUsersParams struct {
	// UserIDs filters by user ID (query key user_id); at most 100 values.
	UserIDs []string
	// ExternalIDs filters by external ID (external_id); at most 100 values.
	ExternalIDs []string
	// EmailAddresses filters by exact email address (email_address); at most 100 values.
	EmailAddresses []string
	// Usernames filters by username (username); at most 100 values.
	Usernames []string
	// CreatedBefore keeps users created before this time (Unix ms; query key created_at_before);
	// 0 omits it. CountUsers sends it too.
	CreatedBefore int64
	// Limit is the page size, 1..500; 0 omits it (Clerk's default is 10). Ignored by CountUsers.
	Limit int
	// Offset skips that many users; must not be negative; 0 omits it. Ignored by CountUsers.
	Offset int
	// OrderBy sorts the page, e.g. "-updated_at" or "+created_at"; "" omits it (Clerk's default
	// is "-created_at"). Ignored by CountUsers.
	OrderBy string
}

// filterQuery validates the filters and returns them as query values.
func (p ListUsersParams) filterQuery(op string) (url.Values, error) {
	q := url.Values{}
	for _, f := range []struct {
		key  string
		vals []string
	}{
		{"user_id", p.UserIDs},
		{"external_id", p.ExternalIDs},
		{"email_address", p.EmailAddresses},
		{"username", p.Usernames},
	} {
		if len(f.vals) > MaxFilterValues {
			return nil, fmt.Errorf("%w for %s: %d values for %s, at most %d allowed",
				ErrInvalidParams, op, len(f.vals), f.key, MaxFilterValues)
		}
		for _, v := range f.vals {
			q.Add(f.key, v)
		}
	}
	if p.CreatedBefore > 0 {
		q.Set("created_at_before", strconv.FormatInt(p.CreatedBefore, 10))
	}
	return q, nil
}

// ListUsers returns one page of users matching p (GET /users). It costs one request; use
// [Client.CountUsers] separately for a total. Clerk returns unknown filter values as no match.
// Without OrderBy users come newest first. It returns an error wrapping [ErrInvalidParams],
// without sending a request, when a filter has more than 100 values, Limit is outside 0..500
// or Offset is negative.
func (c *Client) ListUsers(ctx context.Context, p ListUsersParams) ([]User, error) {
	const op = "ListUsers"
	q, err := p.filterQuery(op)
	if err != nil {
		return nil, err
	}
	switch {
	case p.Limit < 0 || p.Limit > MaxListLimit:
		return nil, fmt.Errorf("%w for %s: limit %d outside 1..%d", ErrInvalidParams, op, p.Limit, MaxListLimit)
	case p.Offset < 0:
		return nil, fmt.Errorf("%w for %s: negative offset %d", ErrInvalidParams, op, p.Offset)
	}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Offset > 0 {
		q.Set("offset", strconv.Itoa(p.Offset))
	}
	if p.OrderBy != "" {
		q.Set("order_by", p.OrderBy)
	}
	var users []User
	if err := c.do(ctx, http.MethodGet, "/users", q, nil, &users); err != nil {
		return nil, err
	}
	if users == nil {
		users = []User{}
	}
	return users, nil
}

// CountUsers returns how many users match the filters of p (GET /users/count); Limit, Offset
// and OrderBy are not sent. It returns an error wrapping [ErrInvalidParams], without sending a
// request, when a filter has more than 100 values.
func (c *Client) CountUsers(ctx context.Context, p ListUsersParams) (int64, error) {
	q, err := p.filterQuery("CountUsers")
	if err != nil {
		return 0, err
	}
	var out struct {
		TotalCount *int64 `json:"total_count"`
	}
	if err := c.do(ctx, http.MethodGet, "/users/count", q, nil, &out); err != nil {
		return 0, err
	}
	if out.TotalCount == nil {
		return 0, &RequestError{Method: http.MethodGet, Path: "/users/count", StatusCode: http.StatusOK,
			Err: errors.New("decode response body: no total_count")}
	}
	return *out.TotalCount, nil
}

// GetUser returns the user with the given ID (GET /users/{id}). An unknown user is an
// *APIError for which [IsNotFound] is true.
func (c *Client) GetUser(ctx context.Context, id string) (*User, error) {
	path, err := c.userPath("GetUser", id, "")
	if err != nil {
		return nil, err
	}
	return c.userCall(ctx, http.MethodGet, path, nil)
}

// CreateUserParams is the body of POST /users. Nil pointers, nil slices and nil maps are left
// out; what is required depends on the instance's settings (Clerk answers 422 form_data_missing).
type CreateUserParams struct {
	// ExternalID must be unique across the instance.
	ExternalID *string `json:"external_id,omitempty"`
	// EmailAddresses are created verified; the first becomes the primary address. Each must be
	// unique across the instance.
	EmailAddresses []string `json:"email_address,omitempty"`
	// Username must be unique across the instance.
	Username *string `json:"username,omitempty"`
	// FirstName is the given name.
	FirstName *string `json:"first_name,omitempty"`
	// LastName is the family name.
	LastName *string `json:"last_name,omitempty"`
	// Password is a plaintext password (at least 8 characters, not breached).
	Password *string `json:"password,omitempty"`
	// SkipPasswordRequirement allows creating a user without a password in an instance that
	// has passwords enabled.
	SkipPasswordRequirement bool `json:"skip_password_requirement,omitempty"`
	// TOTPSecret (base32) enables TOTP for the user.
	TOTPSecret *string `json:"totp_secret,omitempty"`
	// BackupCodes enables backup codes (plain codes or bcrypt digests).
	BackupCodes []string `json:"backup_codes,omitempty"`
	// PublicMetadata is sent when non-nil (an empty map sends {}).
	PublicMetadata map[string]any `json:"public_metadata,omitzero"`
	// PrivateMetadata is sent when non-nil.
	PrivateMetadata map[string]any `json:"private_metadata,omitzero"`
	// UnsafeMetadata is sent when non-nil.
	UnsafeMetadata map[string]any `json:"unsafe_metadata,omitzero"`
}

// CreateUser creates a user (POST /users) and returns it. Duplicate identifiers are an
// *APIError with status 422 and code "form_identifier_exists" ([IsRejected]).
func (c *Client) CreateUser(ctx context.Context, p CreateUserParams) (*User, error) {
	return c.userCall(ctx, http.MethodPost, "/users", p)
}

// UpdateUserParams is the body of PATCH /users/{id}. Absent fields (the zero Field) are left
// unchanged; [Null] clears a field; [Set] sets it. Metadata cannot be changed here in API
// version 2026-05-12: use [Client.MergeMetadata] or [Client.ReplaceMetadata].
type UpdateUserParams struct {
	// ExternalID must be unique across the instance.
	ExternalID Field[string] `json:"external_id,omitzero"`
	// Username must be unique; Null (or "") deletes the username identification.
	Username Field[string] `json:"username,omitzero"`
	// FirstName is the given name.
	FirstName Field[string] `json:"first_name,omitzero"`
	// LastName is the family name.
	LastName Field[string] `json:"last_name,omitzero"`
	// PrimaryEmailAddressID must be the ID of a verified email address of this user.
	PrimaryEmailAddressID Field[string] `json:"primary_email_address_id,omitzero"`
	// TOTPSecret (base32) sets the user's TOTP secret.
	TOTPSecret Field[string] `json:"totp_secret,omitzero"`
}

// IsEmpty reports whether no field is set, i.e. an update would change nothing.
func (p UpdateUserParams) IsEmpty() bool {
	return p.ExternalID.IsZero() && p.Username.IsZero() && p.FirstName.IsZero() &&
		p.LastName.IsZero() && p.PrimaryEmailAddressID.IsZero() && p.TOTPSecret.IsZero()
}

// UpdateUser changes the fields set in p (PATCH /users/{id}) and returns the updated user. An
// empty p still sends one request (with body {}); check [UpdateUserParams.IsEmpty] first to
// save it. Clerk limits this route, together with the metadata routes, to 10 requests per 10 s
// per user.
func (c *Client) UpdateUser(ctx context.Context, id string, p UpdateUserParams) (*User, error) {
	path, err := c.userPath("UpdateUser", id, "")
	if err != nil {
		return nil, err
	}
	return c.userCall(ctx, http.MethodPatch, path, p)
}

// MetadataParams is the body of the metadata endpoints. A nil map leaves that metadata object
// out of the request (untouched); a non-nil map is sent (an empty map as {}). Inside a map, a
// nil value is sent as JSON null, which deletes the key on merge.
type MetadataParams struct {
	// PublicMetadata is visible to frontend and backend.
	PublicMetadata map[string]any `json:"public_metadata,omitzero"`
	// PrivateMetadata is visible to the backend only.
	PrivateMetadata map[string]any `json:"private_metadata,omitzero"`
	// UnsafeMetadata can be written by the frontend.
	UnsafeMetadata map[string]any `json:"unsafe_metadata,omitzero"`
}

// MergeMetadata deep-merges p into the user's metadata (PATCH /users/{id}/metadata): nested
// objects merge, a null value deletes its key at any depth, any other value (arrays included)
// replaces. Objects left nil in p are untouched. Returns the updated user.
func (c *Client) MergeMetadata(ctx context.Context, id string, p MetadataParams) (*User, error) {
	path, err := c.userPath("MergeMetadata", id, "/metadata")
	if err != nil {
		return nil, err
	}
	return c.userCall(ctx, http.MethodPatch, path, p)
}

// ReplaceMetadata replaces each non-nil object of p wholesale (PUT /users/{id}/metadata); an
// empty map clears that object, nil ones are untouched. Returns the updated user.
func (c *Client) ReplaceMetadata(ctx context.Context, id string, p MetadataParams) (*User, error) {
	path, err := c.userPath("ReplaceMetadata", id, "/metadata")
	if err != nil {
		return nil, err
	}
	return c.userCall(ctx, http.MethodPut, path, p)
}

// DeleteUser deletes the user (DELETE /users/{id}). A user that does not exist (e.g. already
// deleted) is an *APIError for which [IsNotFound] is true.
func (c *Client) DeleteUser(ctx context.Context, id string) error {
	return c.deleteCall(ctx, "DeleteUser", id, "")
}

// BanUser bans the user (POST /users/{id}/ban): all sessions are revoked and sign-in is refused.
// Banning a banned user is not an error. Returns the updated user. Status 402 means the plan
// does not include banning.
func (c *Client) BanUser(ctx context.Context, id string) (*User, error) {
	return c.userAction(ctx, "BanUser", id, "/ban")
}

// UnbanUser removes the ban (POST /users/{id}/unban). Returns the updated user.
func (c *Client) UnbanUser(ctx context.Context, id string) (*User, error) {
	return c.userAction(ctx, "UnbanUser", id, "/unban")
}

// LockUser locks the user out of signing in until the instance's lockout duration passes
// (POST /users/{id}/lock). Returns the updated user. Status 403 means lockout is not enabled.
func (c *Client) LockUser(ctx context.Context, id string) (*User, error) {
	return c.userAction(ctx, "LockUser", id, "/lock")
}

// UnlockUser removes a lock, including one set by failed sign-ins (POST /users/{id}/unlock).
// Returns the updated user.
func (c *Client) UnlockUser(ctx context.Context, id string) (*User, error) {
	return c.userAction(ctx, "UnlockUser", id, "/unlock")
}

// DisableMFA removes all of the user's second factors at once (DELETE /users/{id}/mfa).
func (c *Client) DisableMFA(ctx context.Context, id string) error {
	return c.deleteCall(ctx, "DisableMFA", id, "/mfa")
}

// DeleteTOTP deletes all of the user's TOTP authenticators (DELETE /users/{id}/totp).
func (c *Client) DeleteTOTP(ctx context.Context, id string) error {
	return c.deleteCall(ctx, "DeleteTOTP", id, "/totp")
}

// DeleteBackupCodes disables all of the user's backup codes (DELETE /users/{id}/backup_code).
func (c *Client) DeleteBackupCodes(ctx context.Context, id string) error {
	return c.deleteCall(ctx, "DeleteBackupCodes", id, "/backup_code")
}

// userAction sends a body-less POST to /users/{id}<suffix> and decodes the returned user.
func (c *Client) userAction(ctx context.Context, op, id, suffix string) (*User, error) {
	path, err := c.userPath(op, id, suffix)
	if err != nil {
		return nil, err
	}
	return c.userCall(ctx, http.MethodPost, path, nil)
}

// deleteCall sends a body-less DELETE to /users/{id}<suffix> and discards the response body.
func (c *Client) deleteCall(ctx context.Context, op, id, suffix string) error {
	path, err := c.userPath(op, id, suffix)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil, nil)
}

// userCall sends a request whose 2xx body is a User.
func (c *Client) userCall(ctx context.Context, method, path string, body any) (*User, error) {
	var u User
	if err := c.do(ctx, method, path, nil, body, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// userPath validates id and returns "/users/<id><suffix>".
func (c *Client) userPath(op, id, suffix string) (string, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("%w %s for %s", ErrInvalidID, c.quoteBadID(id), op)
	}
	return "/users/" + id + suffix, nil
}

// quoteBadID quotes an invalid ID for an error message: truncated to 64 bytes and with the
// secret key replaced, should a caller pass it by mistake.
func (c *Client) quoteBadID(id string) string {
	const maxLen = 64
	s := scrub(id, c.key())
	if len(s) > maxLen {
		return strconv.Quote(truncateUTF8(s, maxLen)) + "…"
	}
	return strconv.Quote(s)
}

// ValidID reports whether id has the form of a Clerk ID, ^[a-z]+_[A-Za-z0-9]+$ (e.g.
// "user_2xK9…"), and is therefore safe to put into a URL path.
func ValidID(id string) bool {
	i := 0
	for i < len(id) && id[i] >= 'a' && id[i] <= 'z' {
		i++
	}
	if i == 0 || i >= len(id) || id[i] != '_' {
		return false
	}
	i++
	if i == len(id) {
		return false
	}
	for ; i < len(id); i++ {
		b := id[i]
		if (b < 'a' || b > 'z') && (b < 'A' || b > 'Z') && (b < '0' || b > '9') {
			return false
		}
	}
	return true
}
