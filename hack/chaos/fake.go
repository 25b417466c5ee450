package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// FakeUser is a Clerk user as the fake holds it: the fields of GET /v1/users that the checks
// read. Metadata is decoded with json.Number, so that values compare exactly.
type FakeUser struct {
	ID               string         `json:"id"`
	ExternalID       *string        `json:"external_id"`
	Username         *string        `json:"username"`
	FirstName        *string        `json:"first_name"`
	LastName         *string        `json:"last_name"`
	EmailAddresses   []FakeEmail    `json:"email_addresses"`
	PublicMetadata   map[string]any `json:"public_metadata"`
	PrivateMetadata  map[string]any `json:"private_metadata"`
	UnsafeMetadata   map[string]any `json:"unsafe_metadata"`
	Banned           bool           `json:"banned"`
	Locked           bool           `json:"locked"`
	TwoFactorEnabled bool           `json:"two_factor_enabled"`
	TOTPEnabled      bool           `json:"totp_enabled"`
	MFADisabledAt    *int64         `json:"mfa_disabled_at"`
	CreatedAt        int64          `json:"created_at"`
	UpdatedAt        int64          `json:"updated_at"`
}

// FakeEmail is one email address of a FakeUser.
type FakeEmail struct {
	EmailAddress string `json:"email_address"`
}

// Metadata returns the user's metadata object of kind (public, private, unsafe); never nil.
func (u *FakeUser) Metadata(kind string) map[string]any {
	var m map[string]any
	switch kind {
	case kindPublic:
		m = u.PublicMetadata
	case kindPrivate:
		m = u.PrivateMetadata
	case kindUnsafe:
		m = u.UnsafeMetadata
	}
	if m == nil {
		return map[string]any{}
	}
	return m
}

// HasEmail reports whether the user holds email (case-insensitive, as Clerk stores it).
func (u *FakeUser) HasEmail(email string) bool {
	for _, e := range u.EmailAddresses {
		if strings.EqualFold(e.EmailAddress, email) {
			return true
		}
	}
	return false
}

// HasMFA reports whether any second factor is on.
func (u *FakeUser) HasMFA() bool { return u.TwoFactorEnabled || u.TOTPEnabled }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// fakeAPI talks to the fake Clerk API directly (not through the recording proxy): the admin
// routes, the listing the checks read, and the simulated application's writes.
type fakeAPI struct {
	base string // http://host:port
	key  string
	hc   *http.Client
}

func newFakeAPI(base, key string) *fakeAPI {
	return &fakeAPI{base: base, key: key, hc: &http.Client{Timeout: 30 * time.Second}}
}

// errStatus is a non-2xx answer of the fake.
type errStatus struct {
	status int
	body   string
}

func (e *errStatus) Error() string { return fmt.Sprintf("status %d: %s", e.status, e.body) }

// do sends a request and decodes a 2xx JSON answer into out (when non-nil).
func (f *fakeAPI) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, f.base+path, rd)
	if err != nil {
		return err
	}
	if strings.HasPrefix(path, "/v1/") {
		req.Header.Set("Authorization", "Bearer "+f.key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &errStatus{status: resp.StatusCode, body: strings.TrimSpace(string(data))}
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(out)
}

// setFaults replaces the fake's fault injection; a zero Faults clears it.
func (f *fakeAPI) setFaults(ctx context.Context, faults clerkfake.Faults) error {
	if faults.Rate429 == 0 && faults.Rate500 == 0 && faults.Rate502 == 0 && faults.Rate503 == 0 &&
		faults.DropResponseRate == 0 && faults.LatencyMS == 0 {
		return f.do(ctx, http.MethodDelete, "/_fake/faults", nil, nil)
	}
	return f.do(ctx, http.MethodPost, "/_fake/faults", faults, nil)
}

// listUsers returns every user the fake holds, 500 per page, oldest first.
func (f *fakeAPI) listUsers(ctx context.Context) ([]*FakeUser, error) {
	var all []*FakeUser
	for offset := 0; ; offset += 500 {
		var page []*FakeUser
		q := url.Values{"limit": {"500"}, "offset": {strconv.Itoa(offset)}, "order_by": {"+created_at"}}
		if err := f.do(ctx, http.MethodGet, "/v1/users?"+q.Encode(), nil, &page); err != nil {
			return nil, fmt.Errorf("list the fake's users: %w", err)
		}
		all = append(all, page...)
		if len(page) < 500 {
			return all, nil
		}
	}
}

// mergeMetadata deep-merges metadata into a user's (PATCH /v1/users/{id}/metadata).
func (f *fakeAPI) mergeMetadata(ctx context.Context, id, kind string, values map[string]any) error {
	return f.do(ctx, http.MethodPatch, "/v1/users/"+url.PathEscape(id)+"/metadata",
		map[string]any{kind + "_metadata": values}, nil)
}

// enrollTOTP gives a user an authenticator app again, as the user would after an MFA reset.
func (f *fakeAPI) enrollTOTP(ctx context.Context, id string) error {
	return f.do(ctx, http.MethodPatch, "/v1/users/"+url.PathEscape(id), map[string]any{"totp_secret": totpSecret}, nil)
}

// getText GETs url and returns the body.
func getText(ctx context.Context, target string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	return string(b), nil
}

// isNotFound reports whether err is a 404 of the fake.
func isNotFound(err error) bool {
	var e *errStatus
	return errors.As(err, &e) && e.status == http.StatusNotFound
}

// totpSecret is the authenticator secret of every user with MFA (base32).
const totpSecret = "JBSWY3DPEHPK3PXP"
