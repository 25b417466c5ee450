package clerk_test

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// keySeq makes every test key unique: Clients with the same key share a process-wide bucket,
// so tests must not share keys unless they mean to.
var keySeq atomic.Int64

// uniqueKey returns a fresh sk_test_ key derived from the test name.
func uniqueKey(t *testing.T) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, t.Name())
	return "sk_test_" + name + strconv.FormatInt(keySeq.Add(1), 10)
}

// recorded is one request seen by a test server.
type recorded struct {
	Method        string
	Path          string
	Query         url.Values
	Header        http.Header
	Body          string
	ContentLength int64
	At            time.Time
}

// recorder is a hand-written test server that records requests and answers with handle.
type recorder struct {
	srv *httptest.Server

	mu   sync.Mutex
	reqs []recorded
}

// newRecorder starts a server that records each request and then calls handle (200 {} when
// handle is nil). It is closed at the end of the test.
func newRecorder(t *testing.T, handle http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recorded{
			Method:        r.Method,
			Path:          r.URL.Path,
			Query:         r.URL.Query(),
			Header:        r.Header.Clone(),
			Body:          string(body),
			ContentLength: r.ContentLength,
			At:            time.Now(),
		})
		rec.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if handle == nil {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "{}")
			return
		}
		handle(w, r)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// url returns the base URL of the API on this server.
func (r *recorder) url() string { return r.srv.URL + "/v1" }

// newClient builds a client for baseURL with a unique key and no client-side rate limit,
// after applying mods.
func newClient(t *testing.T, baseURL string, mods ...func(*clerk.Options)) *clerk.Client {
	t.Helper()
	opts := clerk.Options{
		BaseURL:           baseURL,
		SecretKey:         uniqueKey(t),
		RequestsPerSecond: math.Inf(1),
		Timeout:           5 * time.Second,
	}
	for _, m := range mods {
		m(&opts)
	}
	c, err := clerk.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// writeJSON answers with status and a JSON body.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// userJSON is a realistic User object with every required field and some unknown ones.
const userJSON = `{
  "id": "user_2dYS7stz9bgxQsSRvNqEAHhuxvW",
  "object": "user",
  "external_id": "emp-1042",
  "primary_email_address_id": "idn_2",
  "primary_phone_number_id": null,
  "primary_web3_wallet_id": null,
  "username": null,
  "first_name": "Ada",
  "last_name": "Lovelace",
  "locale": null,
  "image_url": "https://img.clerk.com/x",
  "has_image": false,
  "public_metadata": {"team": "support", "level": 3, "tags": ["a", "b"]},
  "private_metadata": null,
  "unsafe_metadata": {},
  "email_addresses": [
    {"id": "idn_1", "object": "email_address", "email_address": "old@example.com", "reserved": false,
     "verification": null, "linked_to": [], "created_at": 1, "updated_at": 1},
    {"id": "idn_2", "object": "email_address", "email_address": "ada@example.com", "reserved": false,
     "verification": {"object": "verification_admin", "status": "verified", "strategy": "admin", "attempts": null, "expire_at": null},
     "linked_to": [], "matches_sso_connection": false, "created_at": 1730160000000, "updated_at": 1730160000000}
  ],
  "phone_numbers": [], "web3_wallets": [], "passkeys": [],
  "password_enabled": true, "two_factor_enabled": true, "totp_enabled": true, "backup_code_enabled": false,
  "mfa_enabled_at": 1730160000001, "mfa_disabled_at": null, "password_last_updated_at": null,
  "external_accounts": [], "saml_accounts": [], "enterprise_accounts": [],
  "last_sign_in_at": 1730160000002,
  "banned": true, "locked": true, "lockout_expires_in_seconds": 3600,
  "verification_attempts_remaining": null,
  "created_at": 1730160000000, "updated_at": 1730160000003,
  "delete_self_enabled": true, "create_organization_enabled": true, "create_organizations_limit": null,
  "last_active_at": null, "legal_accepted_at": null, "bypass_client_trust": false,
  "some_future_field": {"nested": [1, 2, 3]}
}`
