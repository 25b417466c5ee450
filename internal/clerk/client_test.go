package clerk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

func TestNewRejectsBadOptions(t *testing.T) {
	const key = "sk_test_NeverPrintMe0123456789"
	tests := []struct {
		name    string
		opts    clerk.Options
		wantErr string // substring
	}{
		{"empty key", clerk.Options{}, "SecretKey is empty"},
		{"key with space", clerk.Options{SecretKey: key + " x"}, "SecretKey contains"},
		{"key with newline", clerk.Options{SecretKey: key + "\n"}, "SecretKey contains"},
		{"key with non-ASCII", clerk.Options{SecretKey: key + "é"}, "SecretKey contains"},
		{"relative URL", clerk.Options{SecretKey: key, BaseURL: "/v1"}, "http or https"},
		{"ftp URL", clerk.Options{SecretKey: key, BaseURL: "ftp://example.com/v1"}, "http or https"},
		{"no host", clerk.Options{SecretKey: key, BaseURL: "https:///v1"}, "no host"},
		{"unparsable", clerk.Options{SecretKey: key, BaseURL: "http://[::1"}, "not a valid URL"},
		{"query", clerk.Options{SecretKey: key, BaseURL: "https://api.clerk.com/v1?x=1"}, "query or fragment"},
		{"fragment", clerk.Options{SecretKey: key, BaseURL: "https://api.clerk.com/v1#x"}, "query or fragment"},
		{"user info", clerk.Options{SecretKey: key, BaseURL: "https://u:hunter2@api.clerk.com/v1"}, "user info"},
		{"negative timeout", clerk.Options{SecretKey: key, Timeout: -time.Second}, "Timeout"},
		{"negative rate", clerk.Options{SecretKey: key, RequestsPerSecond: -1}, "RequestsPerSecond"},
		{"NaN rate", clerk.Options{SecretKey: key, RequestsPerSecond: math.NaN()}, "RequestsPerSecond"},
		{"negative burst", clerk.Options{SecretKey: key, Burst: -1}, "Burst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := clerk.New(tt.opts)
			if err == nil {
				t.Fatalf("New succeeded: %v", c)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			for _, secret := range []string{key, "NeverPrintMe", "hunter2"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q reveals %q", err, secret)
				}
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	tests := []struct {
		name      string
		keyPrefix string
		rps       float64
		burst     int
		wantLimit rate.Limit
		wantBurst int
	}{
		{"test key default", "sk_test_", 0, 0, 5, 5},
		{"live key default", "sk_live_", 0, 0, 50, 50},
		{"other prefix gets test default", "rk_", 0, 0, 5, 5},
		{"explicit rate, burst one second rounded up", "sk_test_", 2.5, 0, 2.5, 3},
		{"slow rate, burst at least one", "sk_live_", 0.1, 0, 0.1, 1},
		{"explicit burst", "sk_live_", 10, 7, 10, 7},
		{"infinite rate", "sk_test_", math.Inf(1), 0, rate.Inf, math.MaxInt32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.keyPrefix + strings.TrimPrefix(uniqueKey(t), "sk_test_")
			c, err := clerk.New(clerk.Options{SecretKey: key, RequestsPerSecond: tt.rps, Burst: tt.burst})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Limiter().Limit(); got != tt.wantLimit {
				t.Errorf("Limit() = %v, want %v", got, tt.wantLimit)
			}
			if got := c.Limiter().Burst(); got != tt.wantBurst {
				t.Errorf("Burst() = %v, want %v", got, tt.wantBurst)
			}
			if got := c.BaseURL(); got != clerk.DefaultBaseURL {
				t.Errorf("BaseURL() = %q, want %q", got, clerk.DefaultBaseURL)
			}
		})
	}
}

func TestBaseURLTrailingSlash(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, userJSON) })
	c := newClient(t, rec.url()+"/")
	if _, err := c.GetUser(t.Context(), "user_1"); err != nil {
		t.Fatal(err)
	}
	if got := rec.requests()[0].Path; got != "/v1/users/user_1" {
		t.Errorf("path = %q, want /v1/users/user_1", got)
	}
}

func TestBucketSharedPerKey(t *testing.T) {
	key := uniqueKey(t)
	a, err := clerk.New(clerk.Options{SecretKey: key, RequestsPerSecond: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, err := clerk.New(clerk.Options{SecretKey: key, RequestsPerSecond: 7, Burst: 2, BaseURL: "http://127.0.0.1:1/v1"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := clerk.New(clerk.Options{SecretKey: uniqueKey(t), RequestsPerSecond: 3})
	if err != nil {
		t.Fatal(err)
	}
	if a.Limiter() != b.Limiter() {
		t.Error("clients with the same key do not share a limiter")
	}
	if a.Limiter() == other.Limiter() {
		t.Error("clients with different keys share a limiter")
	}
	// The latest New sets the rate for everyone on the key.
	if got, want := a.Limiter().Limit(), rate.Limit(7); got != want {
		t.Errorf("shared Limit() = %v, want %v", got, want)
	}
	if got, want := a.Limiter().Burst(), 2; got != want {
		t.Errorf("shared Burst() = %v, want %v", got, want)
	}
}

func TestSecretKeyNeverFormatted(t *testing.T) {
	const key = "sk_live_TopSecretValue0123456789abcdef"
	opts := clerk.Options{
		SecretKey:  key,
		BaseURL:    "http://127.0.0.1:1/v1", // nothing listens: network errors below
		HTTPClient: &http.Client{Timeout: time.Second},
		Timeout:    time.Second,
	}
	c, err := clerk.New(opts)
	if err != nil {
		t.Fatal(err)
	}

	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"}
	outputs := make([]string, 0, 6*len(verbs)+20)
	for _, verb := range verbs {
		outputs = append(outputs,
			fmt.Sprintf(verb, opts), fmt.Sprintf(verb, &opts),
			fmt.Sprintf(verb, c), fmt.Sprintf(verb, *c),
			fmt.Sprintf(verb, struct{ C *clerk.Client }{c}),
			fmt.Sprintf(verb, []any{opts, c}))
	}
	outputs = append(outputs, opts.String(), opts.GoString(), c.String(), c.GoString())

	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("Built client", "options", opts, "client", c)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("Built client", "options", opts, "client", c)
	outputs = append(outputs, logs.String())

	// http.Client has a func field (CheckRedirect) that json cannot encode, so the
	// wrapper shadows HTTPClient; every other field, SecretKey's json:"-" included,
	// is marshalled as Options declares it.
	js, err := json.Marshal(struct {
		clerk.Options
		HTTPClient *struct{} // shadows Options.HTTPClient
	}{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(js))

	// Errors: invalid IDs (even the key itself), a network error, a server echoing the key.
	ctx := t.Context()
	_, err = c.GetUser(ctx, key)
	outputs = append(outputs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	_, err = c.GetUser(ctx, "user_ok/"+key)
	outputs = append(outputs, err.Error())
	_, err = c.GetUser(ctx, "user_1")
	if !clerk.IsUnavailable(err) {
		t.Errorf("network error not unavailable: %v", err)
	}
	outputs = append(outputs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))

	echo := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Clerk-Trace-Id", r.Header.Get("Authorization"))
		switch r.URL.Path {
		case "/v1/users/user_html":
			w.WriteHeader(http.StatusBadGateway)
			_, _ = fmt.Fprintf(w, "<html>upstream said: %s</html>", r.Header.Get("Authorization"))
		default:
			writeJSON(w, 401, fmt.Sprintf(`{"errors":[{"code":"clerk_key_invalid","message":"bad key %[1]s","long_message":"The key %[1]s is invalid"}],"clerk_trace_id":"t %[1]s"}`,
				r.Header.Get("Authorization")))
		}
	})
	c2, err := clerk.New(clerk.Options{SecretKey: key, BaseURL: echo.url()})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"user_json", "user_html"} {
		_, err = c2.GetUser(ctx, id)
		var apiErr *clerk.APIError
		if !errors.As(err, &apiErr) {
			t.Fatalf("GetUser(%s): %v, want *APIError", id, err)
		}
		outputs = append(outputs, err.Error(), fmt.Sprintf("%+v", *apiErr), fmt.Sprintf("%#v", apiErr))
	}

	for _, out := range outputs {
		for _, secret := range []string{key, "TopSecretValue", fmt.Sprintf("%x", key), fmt.Sprintf("%X", key)} {
			if strings.Contains(out, secret) {
				t.Errorf("output reveals the key (%q): %s", secret, out)
			}
		}
	}
	if !strings.Contains(fmt.Sprintf("%+v", opts), "SecretKey:[REDACTED]") {
		t.Errorf("%%+v of Options = %+v, want SecretKey:[REDACTED]", opts)
	}
	if !strings.HasPrefix(fmt.Sprintf("%#v", opts), "clerk.Options{") {
		t.Errorf("%%#v of Options = %#v, want clerk.Options{…}", opts)
	}
}

func TestRequestHeaders(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/users" && r.Method == http.MethodGet:
			writeJSON(w, 200, "["+userJSON+"]")
		case r.URL.Path == "/v1/users/count":
			writeJSON(w, 200, `{"object":"total_count","total_count":1}`)
		case r.Method == http.MethodDelete:
			writeJSON(w, 200, `{"user_id":"user_1","object":"user","id":"user_1","deleted":true}`)
		default:
			writeJSON(w, 200, userJSON)
		}
	})
	key := uniqueKey(t)
	c := newClient(t, rec.url(), func(o *clerk.Options) { o.SecretKey = key })
	ctx := t.Context()

	type call struct {
		name     string
		do       func() error
		method   string
		path     string
		wantBody bool
	}
	user := func(_ *clerk.User, err error) error { return err }
	calls := []call{
		{"ListUsers", func() error { _, err := c.ListUsers(ctx, clerk.ListUsersParams{}); return err }, "GET", "/v1/users", false},
		{"CountUsers", func() error { _, err := c.CountUsers(ctx, clerk.ListUsersParams{}); return err }, "GET", "/v1/users/count", false},
		{"GetUser", func() error { return user(c.GetUser(ctx, "user_1")) }, "GET", "/v1/users/user_1", false},
		{"CreateUser", func() error { return user(c.CreateUser(ctx, clerk.CreateUserParams{})) }, "POST", "/v1/users", true},
		{"UpdateUser", func() error { return user(c.UpdateUser(ctx, "user_1", clerk.UpdateUserParams{})) }, "PATCH", "/v1/users/user_1", true},
		{"MergeMetadata", func() error { return user(c.MergeMetadata(ctx, "user_1", clerk.MetadataParams{})) }, "PATCH", "/v1/users/user_1/metadata", true},
		{"ReplaceMetadata", func() error { return user(c.ReplaceMetadata(ctx, "user_1", clerk.MetadataParams{})) }, "PUT", "/v1/users/user_1/metadata", true},
		{"DeleteUser", func() error { return c.DeleteUser(ctx, "user_1") }, "DELETE", "/v1/users/user_1", false},
		{"BanUser", func() error { return user(c.BanUser(ctx, "user_1")) }, "POST", "/v1/users/user_1/ban", false},
		{"UnbanUser", func() error { return user(c.UnbanUser(ctx, "user_1")) }, "POST", "/v1/users/user_1/unban", false},
		{"LockUser", func() error { return user(c.LockUser(ctx, "user_1")) }, "POST", "/v1/users/user_1/lock", false},
		{"UnlockUser", func() error { return user(c.UnlockUser(ctx, "user_1")) }, "POST", "/v1/users/user_1/unlock", false},
		{"DisableMFA", func() error { return c.DisableMFA(ctx, "user_1") }, "DELETE", "/v1/users/user_1/mfa", false},
		{"DeleteTOTP", func() error { return c.DeleteTOTP(ctx, "user_1") }, "DELETE", "/v1/users/user_1/totp", false},
		{"DeleteBackupCodes", func() error { return c.DeleteBackupCodes(ctx, "user_1") }, "DELETE", "/v1/users/user_1/backup_code", false},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			before := rec.count()
			if err := tc.do(); err != nil {
				t.Fatal(err)
			}
			reqs := rec.requests()
			if got := len(reqs) - before; got != 1 {
				t.Fatalf("%d requests, want exactly 1", got)
			}
			r := reqs[len(reqs)-1]
			if r.Method != tc.method || r.Path != tc.path {
				t.Errorf("request %s %s, want %s %s", r.Method, r.Path, tc.method, tc.path)
			}
			want := map[string]string{
				"Authorization":     "Bearer " + key,
				"Clerk-Api-Version": "2026-05-12",
				"User-Agent":        "kubeclerk/dev (+https://github.com/kubeclerk/kubeclerk)",
				"Accept":            "application/json",
				"Content-Type":      "",
			}
			if tc.wantBody {
				want["Content-Type"] = "application/json"
			}
			got := map[string]string{}
			for k := range want {
				got[k] = r.Header.Get(k)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			if !tc.wantBody && (r.Body != "" || r.ContentLength > 0) {
				t.Errorf("body-less call sent body %q (Content-Length %d)", r.Body, r.ContentLength)
			}
			if tc.wantBody && !json.Valid([]byte(r.Body)) {
				t.Errorf("body %q is not JSON", r.Body)
			}
		})
	}
}

func TestUserAgent(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, userJSON) })
	c := newClient(t, rec.url(), func(o *clerk.Options) { o.UserAgent = "custom/1.0" })
	if _, err := c.GetUser(t.Context(), "user_1"); err != nil {
		t.Fatal(err)
	}
	if got := rec.requests()[0].Header.Get("User-Agent"); got != "custom/1.0" {
		t.Errorf("User-Agent = %q, want custom/1.0", got)
	}
}

// bodyOf runs call against a recorder and returns the JSON body it sent, decoded.
func bodyOf(t *testing.T, call func(c *clerk.Client) error) map[string]any {
	t.Helper()
	rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, userJSON) })
	c := newClient(t, rec.url())
	if err := call(c); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(rec.requests()[0].Body), &got); err != nil {
		t.Fatalf("body %q: %v", rec.requests()[0].Body, err)
	}
	return got
}

func TestRequestBodies(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name string
		call func(c *clerk.Client) error
		want map[string]any
	}{
		{
			name: "update: absent fields omitted, null and values sent",
			call: func(c *clerk.Client) error {
				_, err := c.UpdateUser(ctx, "user_1", clerk.UpdateUserParams{
					Username:   clerk.Null[string](),
					FirstName:  clerk.Set("Ada"),
					LastName:   clerk.Set(""),
					ExternalID: clerk.Null[string](),
				})
				return err
			},
			want: map[string]any{"username": nil, "first_name": "Ada", "last_name": "", "external_id": nil},
		},
		{
			name: "update: empty params send {}",
			call: func(c *clerk.Client) error {
				_, err := c.UpdateUser(ctx, "user_1", clerk.UpdateUserParams{})
				return err
			},
			want: map[string]any{},
		},
		{
			name: "update: totp secret and primary email",
			call: func(c *clerk.Client) error {
				_, err := c.UpdateUser(ctx, "user_1", clerk.UpdateUserParams{
					TOTPSecret:            clerk.Set("JBSWY3DPEHPK3PXP"),
					PrimaryEmailAddressID: clerk.Set("idn_2"),
				})
				return err
			},
			want: map[string]any{"totp_secret": "JBSWY3DPEHPK3PXP", "primary_email_address_id": "idn_2"},
		},
		{
			name: "create: nil omitted, empty map sent",
			call: func(c *clerk.Client) error {
				_, err := c.CreateUser(ctx, clerk.CreateUserParams{
					ExternalID:              new("emp-1"),
					EmailAddresses:          []string{"a@example.com", "b@example.com"},
					Username:                new(""),
					PublicMetadata:          map[string]any{},
					PrivateMetadata:         map[string]any{"k": nil, "n": map[string]any{"x": 1}},
					SkipPasswordRequirement: true,
				})
				return err
			},
			want: map[string]any{
				"external_id":               "emp-1",
				"email_address":             []any{"a@example.com", "b@example.com"},
				"username":                  "",
				"public_metadata":           map[string]any{},
				"private_metadata":          map[string]any{"k": nil, "n": map[string]any{"x": float64(1)}},
				"skip_password_requirement": true,
			},
		},
		{
			name: "create: empty params send {}",
			call: func(c *clerk.Client) error {
				_, err := c.CreateUser(ctx, clerk.CreateUserParams{})
				return err
			},
			want: map[string]any{},
		},
		{
			name: "create: password and totp",
			call: func(c *clerk.Client) error {
				_, err := c.CreateUser(ctx, clerk.CreateUserParams{Password: new("correct horse"), TOTPSecret: new("JBSWY3DPEHPK3PXP"),
					FirstName: new("A"), LastName: new("B")})
				return err
			},
			want: map[string]any{"password": "correct horse", "totp_secret": "JBSWY3DPEHPK3PXP", "first_name": "A", "last_name": "B"},
		},
		{
			name: "merge metadata: nil map omitted, nil value is null",
			call: func(c *clerk.Client) error {
				_, err := c.MergeMetadata(ctx, "user_1", clerk.MetadataParams{
					PublicMetadata: map[string]any{"gone": nil, "kept": "v", "nested": map[string]any{"deep": nil}},
					UnsafeMetadata: map[string]any{},
				})
				return err
			},
			want: map[string]any{
				"public_metadata": map[string]any{"gone": nil, "kept": "v", "nested": map[string]any{"deep": nil}},
				"unsafe_metadata": map[string]any{},
			},
		},
		{
			name: "replace metadata: only private",
			call: func(c *clerk.Client) error {
				_, err := c.ReplaceMetadata(ctx, "user_1", clerk.MetadataParams{PrivateMetadata: map[string]any{"a": []any{1, "b"}}})
				return err
			},
			want: map[string]any{"private_metadata": map[string]any{"a": []any{float64(1), "b"}}},
		},
		{
			name: "replace metadata: none",
			call: func(c *clerk.Client) error {
				_, err := c.ReplaceMetadata(ctx, "user_1", clerk.MetadataParams{})
				return err
			},
			want: map[string]any{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, bodyOf(t, tt.call)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListQuery(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/users/count" {
			writeJSON(w, 200, `{"object":"total_count","total_count":42}`)
			return
		}
		writeJSON(w, 200, "[]")
	})
	c := newClient(t, rec.url())
	ctx := t.Context()
	p := clerk.ListUsersParams{
		UserIDs:        []string{"user_a", "-user_b"},
		ExternalIDs:    []string{"+emp-1", "emp 2&x=y"},
		EmailAddresses: []string{"a+tag@example.com"},
		Usernames:      []string{"alice", "bob"},
		Limit:          500,
		Offset:         20,
		OrderBy:        "-updated_at",
	}
	filters := map[string][]string{
		"user_id":       {"user_a", "-user_b"},
		"external_id":   {"+emp-1", "emp 2&x=y"},
		"email_address": {"a+tag@example.com"},
		"username":      {"alice", "bob"},
	}
	tests := []struct {
		name string
		call func() error
		want map[string][]string
	}{
		{"list with every parameter", func() error {
			users, err := c.ListUsers(ctx, p)
			if err == nil && (users == nil || len(users) != 0) {
				return fmt.Errorf("users = %#v, want empty non-nil", users)
			}
			return err
		}, func() map[string][]string {
			m := map[string][]string{"limit": {"500"}, "offset": {"20"}, "order_by": {"-updated_at"}}
			maps.Copy(m, filters)
			return m
		}()},
		{"count sends filters only", func() error {
			n, err := c.CountUsers(ctx, p)
			if err == nil && n != 42 {
				return fmt.Errorf("count = %d, want 42", n)
			}
			return err
		}, filters},
		{"list without parameters sends no query", func() error {
			_, err := c.ListUsers(ctx, clerk.ListUsersParams{})
			return err
		}, map[string][]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			reqs := rec.requests()
			got := map[string][]string(reqs[len(reqs)-1].Query)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListParamsValidation(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, "[]") })
	c := newClient(t, rec.url())
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("user_%d", i)
	}
	tests := []struct {
		name      string
		p         clerk.ListUsersParams
		countToo  bool // CountUsers must refuse it too
		wantInErr string
	}{
		{"101 user IDs", clerk.ListUsersParams{UserIDs: many}, true, "user_id"},
		{"101 external IDs", clerk.ListUsersParams{ExternalIDs: many}, true, "external_id"},
		{"101 emails", clerk.ListUsersParams{EmailAddresses: many}, true, "email_address"},
		{"101 usernames", clerk.ListUsersParams{Usernames: many}, true, "username"},
		{"limit 501", clerk.ListUsersParams{Limit: 501}, false, "limit"},
		{"negative limit", clerk.ListUsersParams{Limit: -1}, false, "limit"},
		{"negative offset", clerk.ListUsersParams{Offset: -1}, false, "offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.ListUsers(t.Context(), tt.p)
			errs := []error{err}
			if tt.countToo {
				_, err := c.CountUsers(t.Context(), tt.p)
				errs = append(errs, err)
			}
			for _, err := range errs {
				if !errors.Is(err, clerk.ErrInvalidParams) || !clerk.IsRejected(err) {
					t.Errorf("err = %v, want ErrInvalidParams and IsRejected", err)
				} else if !strings.Contains(err.Error(), tt.wantInErr) {
					t.Errorf("err = %v, want it to mention %q", err, tt.wantInErr)
				}
			}
			if n := rec.count(); n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
		})
	}
	// Exactly 100 values is allowed.
	if _, err := c.ListUsers(t.Context(), clerk.ListUsersParams{UserIDs: many[:100], Limit: 1}); err != nil {
		t.Errorf("100 values: %v", err)
	}
}

func TestInvalidIDsRejectedWithoutRequest(t *testing.T) {
	rec := newRecorder(t, nil)
	c := newClient(t, rec.url())
	ctx := t.Context()
	methods := map[string]func(id string) error{
		"GetUser":           func(id string) error { _, err := c.GetUser(ctx, id); return err },
		"UpdateUser":        func(id string) error { _, err := c.UpdateUser(ctx, id, clerk.UpdateUserParams{}); return err },
		"MergeMetadata":     func(id string) error { _, err := c.MergeMetadata(ctx, id, clerk.MetadataParams{}); return err },
		"ReplaceMetadata":   func(id string) error { _, err := c.ReplaceMetadata(ctx, id, clerk.MetadataParams{}); return err },
		"DeleteUser":        func(id string) error { return c.DeleteUser(ctx, id) },
		"BanUser":           func(id string) error { _, err := c.BanUser(ctx, id); return err },
		"UnbanUser":         func(id string) error { _, err := c.UnbanUser(ctx, id); return err },
		"LockUser":          func(id string) error { _, err := c.LockUser(ctx, id); return err },
		"UnlockUser":        func(id string) error { _, err := c.UnlockUser(ctx, id); return err },
		"DisableMFA":        func(id string) error { return c.DisableMFA(ctx, id) },
		"DeleteTOTP":        func(id string) error { return c.DeleteTOTP(ctx, id) },
		"DeleteBackupCodes": func(id string) error { return c.DeleteBackupCodes(ctx, id) },
	}
	bad := []string{"", "user", "user_", "_abc", "USER_abc", "user_a/b", "user_../../x", "user_a?b=1", "user_a#b",
		"user_a b", "user_ä", "user_a%2F", "1_abc", "user__a", "user_a_b", strings.Repeat("user_x", 100) + "/"}
	for name, call := range methods {
		for _, id := range bad {
			t.Run(fmt.Sprintf("%s/%q", name, id), func(t *testing.T) {
				err := call(id)
				if !errors.Is(err, clerk.ErrInvalidID) || !clerk.IsRejected(err) {
					t.Fatalf("err = %v, want ErrInvalidID and IsRejected", err)
				}
				if !strings.Contains(err.Error(), name) {
					t.Errorf("err %q does not name the operation", err)
				}
				if len(err.Error()) > 200 {
					t.Errorf("err is %d bytes long, want the bad ID truncated", len(err.Error()))
				}
			})
		}
	}
	if n := rec.count(); n != 0 {
		t.Errorf("%d requests sent for invalid IDs, want none", n)
	}
	for _, id := range []string{"user_2dYS7stz9bgxQsSRvNqEAHhuxvW", "idn_1", "a_B"} {
		if !clerk.ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
	}
}

func TestUserDecoding(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, userJSON) })
	c := newClient(t, rec.url())
	u, err := c.GetUser(t.Context(), "user_2dYS7stz9bgxQsSRvNqEAHhuxvW")
	if err != nil {
		t.Fatal(err)
	}
	want := &clerk.User{
		ID:                    "user_2dYS7stz9bgxQsSRvNqEAHhuxvW",
		Object:                "user",
		ExternalID:            new("emp-1042"),
		FirstName:             new("Ada"),
		LastName:              new("Lovelace"),
		PrimaryEmailAddressID: new("idn_2"),
		EmailAddresses: []clerk.EmailAddress{
			{ID: "idn_1", EmailAddress: "old@example.com"},
			{ID: "idn_2", EmailAddress: "ada@example.com", Verification: &clerk.Verification{Status: "verified", Strategy: "admin"}},
		},
		PublicMetadata:          map[string]any{"team": "support", "level": json.Number("3"), "tags": []any{"a", "b"}},
		UnsafeMetadata:          map[string]any{},
		Banned:                  true,
		Locked:                  true,
		LockoutExpiresInSeconds: new(int64(3600)),
		TwoFactorEnabled:        true,
		TOTPEnabled:             true,
		MFAEnabledAt:            new(int64(1730160000001)),
		PasswordEnabled:         true,
		CreatedAt:               1730160000000,
		UpdatedAt:               1730160000003,
		LastSignInAt:            new(int64(1730160000002)),
	}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
	if got := u.PrimaryEmailAddress(); got != "ada@example.com" {
		t.Errorf("PrimaryEmailAddress() = %q, want ada@example.com", got)
	}
}

func TestPrimaryEmailAddress(t *testing.T) {
	emails := []clerk.EmailAddress{{ID: "idn_1", EmailAddress: "a@x"}, {ID: "idn_2", EmailAddress: "b@x"}}
	tests := []struct {
		name string
		u    *clerk.User
		want string
	}{
		{"nil user", nil, ""},
		{"no primary", &clerk.User{EmailAddresses: emails}, ""},
		{"primary second", &clerk.User{EmailAddresses: emails, PrimaryEmailAddressID: new("idn_2")}, "b@x"},
		{"dangling primary", &clerk.User{EmailAddresses: emails, PrimaryEmailAddressID: new("idn_9")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.u.PrimaryEmailAddress(); got != tt.want {
				t.Errorf("PrimaryEmailAddress() = %q, want %q", got, tt.want)
			}
		})
	}
}

// classes summarises the classification of an error for table tests.
type classes struct {
	NotFound, Rejected, Authentication, RateLimited, Unavailable bool
}

func classify(err error) classes {
	return classes{
		NotFound:       clerk.IsNotFound(err),
		Rejected:       clerk.IsRejected(err),
		Authentication: clerk.IsAuthentication(err),
		RateLimited:    clerk.IsRateLimited(err),
		Unavailable:    clerk.IsUnavailable(err),
	}
}

func TestAPIErrors(t *testing.T) {
	htmlPage := "<html><head><title>502 Bad Gateway</title></head><body>" + strings.Repeat("nginx ", 200) + "</body></html>"
	utf8Page := strings.Repeat("é", 600) // 1200 bytes: the snippet must be cut at a rune boundary
	tests := []struct {
		name       string
		method     string // of the call below
		call       func(c *clerk.Client) error
		status     int
		header     map[string]string
		body       string
		want       *clerk.APIError
		wantString string
		wantClass  classes
	}{
		{
			name:   "404 Clerk JSON",
			status: 404,
			body:   `{"errors":[{"message":"not found","long_message":"No user was found with id user_1","code":"resource_not_found","meta":{}}],"meta":{},"clerk_trace_id":"trace404"}`,
			want: &clerk.APIError{StatusCode: 404, Method: "GET", Path: "/users/user_1", TraceID: "trace404",
				Errors: []clerk.ErrorDetail{{Code: "resource_not_found", Message: "not found", LongMessage: "No user was found with id user_1", Meta: map[string]any{}}}},
			wantString: "clerk: GET /users/user_1: 404 resource_not_found: No user was found with id user_1 (trace trace404)",
			wantClass:  classes{NotFound: true},
		},
		{
			name: "422 on PATCH",
			call: func(c *clerk.Client) error {
				_, err := c.UpdateUser(context.Background(), "user_1", clerk.UpdateUserParams{Username: clerk.Set("taken")})
				return err
			},
			status: 422,
			body:   `{"errors":[{"message":"taken","long_message":"That username is taken.","code":"form_identifier_exists","meta":{"param_name":"username"}}],"clerk_trace_id":"abc"}`,
			want: &clerk.APIError{StatusCode: 422, Method: "PATCH", Path: "/users/user_1", TraceID: "abc",
				Errors: []clerk.ErrorDetail{{Code: "form_identifier_exists", Message: "taken", LongMessage: "That username is taken.", Meta: map[string]any{"param_name": "username"}}}},
			wantString: "clerk: PATCH /users/user_1: 422 form_identifier_exists: That username is taken. (trace abc)",
			wantClass:  classes{Rejected: true},
		},
		{
			name:   "two errors, message fallback, header trace",
			status: 400,
			header: map[string]string{"Clerk-Trace-Id": "hdr"},
			body:   `{"errors":[{"message":"a","code":"c1"},{"message":"b","long_message":"","code":"c2"}]}`,
			want: &clerk.APIError{StatusCode: 400, Method: "GET", Path: "/users/user_1", TraceID: "hdr",
				Errors: []clerk.ErrorDetail{{Code: "c1", Message: "a"}, {Code: "c2", Message: "b"}}},
			wantString: "clerk: GET /users/user_1: 400 c1: a; c2: b (trace hdr)",
			wantClass:  classes{Rejected: true},
		},
		{
			name:       "402 plan",
			status:     402,
			body:       `{"errors":[{"message":"m","long_message":"l","code":"unsupported_subscription_plan_features"}]}`,
			want:       &clerk.APIError{StatusCode: 402, Method: "GET", Path: "/users/user_1", Errors: []clerk.ErrorDetail{{Code: "unsupported_subscription_plan_features", Message: "m", LongMessage: "l"}}},
			wantString: "clerk: GET /users/user_1: 402 unsupported_subscription_plan_features: l",
			wantClass:  classes{Rejected: true},
		},
		{
			name:       "409 conflict",
			status:     409,
			body:       `{"errors":[]}`,
			want:       &clerk.APIError{StatusCode: 409, Method: "GET", Path: "/users/user_1", Errors: []clerk.ErrorDetail{}},
			wantString: "clerk: GET /users/user_1: 409 Conflict",
			wantClass:  classes{Rejected: true},
		},
		{
			name:      "401",
			status:    401,
			body:      `{"errors":[{"message":"m","long_message":"l","code":"clerk_key_invalid"}]}`,
			want:      &clerk.APIError{StatusCode: 401, Method: "GET", Path: "/users/user_1", Errors: []clerk.ErrorDetail{{Code: "clerk_key_invalid", Message: "m", LongMessage: "l"}}},
			wantClass: classes{Authentication: true},
		},
		{
			name:      "403",
			status:    403,
			body:      `{"errors":[{"message":"m","long_message":"l","code":"authorization_invalid"}]}`,
			want:      &clerk.APIError{StatusCode: 403, Method: "GET", Path: "/users/user_1", Errors: []clerk.ErrorDetail{{Code: "authorization_invalid", Message: "m", LongMessage: "l"}}},
			wantClass: classes{Authentication: true},
		},
		{
			name:      "403 feature_not_enabled is about the instance, not the key",
			status:    403,
			body:      `{"errors":[{"message":"not enabled","long_message":"This feature is not enabled on this instance","code":"feature_not_enabled"}]}`,
			want:      &clerk.APIError{StatusCode: 403, Method: "GET", Path: "/users/user_1", Errors: []clerk.ErrorDetail{{Code: "feature_not_enabled", Message: "not enabled", LongMessage: "This feature is not enabled on this instance"}}},
			wantClass: classes{Rejected: true},
		},
		{
			name:      "403 user_quota_exceeded",
			status:    403,
			body:      `{"errors":[{"message":"quota","long_message":"You have reached your limit of 100 users.","code":"user_quota_exceeded"}]}`,
			want:      &clerk.APIError{StatusCode: 403, Method: "GET", Path: "/users/user_1", Errors: []clerk.ErrorDetail{{Code: "user_quota_exceeded", Message: "quota", LongMessage: "You have reached your limit of 100 users."}}},
			wantClass: classes{Rejected: true},
		},
		{
			name:      "403 from a proxy without Clerk errors counts as the key",
			status:    403,
			body:      `<html>Forbidden</html>`,
			want:      &clerk.APIError{StatusCode: 403, Method: "GET", Path: "/users/user_1", Body: `<html>Forbidden</html>`},
			wantClass: classes{Authentication: true},
		},
		{
			name:       "429 with integer Retry-After",
			status:     429,
			header:     map[string]string{"Retry-After": "7"},
			body:       `{"errors":[{"message":"Too many requests","long_message":"Too many requests","code":"too_many_requests"}],"clerk_trace_id":"t429"}`,
			want:       &clerk.APIError{StatusCode: 429, Method: "GET", Path: "/users/user_1", TraceID: "t429", RetryAfter: 7 * time.Second, Errors: []clerk.ErrorDetail{{Code: "too_many_requests", Message: "Too many requests", LongMessage: "Too many requests"}}},
			wantString: "clerk: GET /users/user_1: 429 too_many_requests: Too many requests (trace t429)",
			wantClass:  classes{RateLimited: true},
		},
		{
			name:       "502 HTML from a proxy",
			status:     502,
			header:     map[string]string{"Content-Type": "text/html", "Clerk-Trace-Id": "hdr502"},
			body:       htmlPage,
			want:       &clerk.APIError{StatusCode: 502, Method: "GET", Path: "/users/user_1", TraceID: "hdr502", Body: htmlPage[:512]},
			wantString: "clerk: GET /users/user_1: 502 Bad Gateway (trace hdr502)",
			wantClass:  classes{Unavailable: true},
		},
		{
			name:       "500 malformed JSON",
			status:     500,
			body:       `{"errors":[{"code":`,
			want:       &clerk.APIError{StatusCode: 500, Method: "GET", Path: "/users/user_1", Body: `{"errors":[{"code":`},
			wantString: "clerk: GET /users/user_1: 500 Internal Server Error",
			wantClass:  classes{Unavailable: true},
		},
		{
			name:      "503 with Retry-After and non-Clerk JSON carrying a trace",
			status:    503,
			header:    map[string]string{"Retry-After": "3"},
			body:      `{"message":"maintenance","clerk_trace_id":"t503"}`,
			want:      &clerk.APIError{StatusCode: 503, Method: "GET", Path: "/users/user_1", TraceID: "t503", RetryAfter: 3 * time.Second, Body: `{"message":"maintenance","clerk_trace_id":"t503"}`},
			wantClass: classes{Unavailable: true},
		},
		{
			name:      "504 empty body",
			status:    504,
			want:      &clerk.APIError{StatusCode: 504, Method: "GET", Path: "/users/user_1"},
			wantClass: classes{Unavailable: true},
		},
		{
			name:      "408 from a proxy",
			status:    408,
			body:      "timeout",
			want:      &clerk.APIError{StatusCode: 408, Method: "GET", Path: "/users/user_1", Body: "timeout"},
			wantClass: classes{Unavailable: true},
		},
		{
			name:      "non-UTF-8-boundary snippet",
			status:    502,
			body:      utf8Page,
			want:      &clerk.APIError{StatusCode: 502, Method: "GET", Path: "/users/user_1", Body: strings.Repeat("é", 256)},
			wantClass: classes{Unavailable: true},
		},
		{
			name:      "redirect is not followed",
			status:    302,
			header:    map[string]string{"Location": "https://example.com/elsewhere"},
			want:      &clerk.APIError{StatusCode: 302, Method: "GET", Path: "/users/user_1"},
			wantClass: classes{},
		},
		{
			name: "ban 404",
			call: func(c *clerk.Client) error {
				_, err := c.BanUser(context.Background(), "user_x")
				return err
			},
			status:     404,
			body:       `{"errors":[{"message":"not found","long_message":"No user was found with id user_x","code":"resource_not_found"}]}`,
			want:       &clerk.APIError{StatusCode: 404, Method: "POST", Path: "/users/user_x/ban", Errors: []clerk.ErrorDetail{{Code: "resource_not_found", Message: "not found", LongMessage: "No user was found with id user_x"}}},
			wantString: "clerk: POST /users/user_x/ban: 404 resource_not_found: No user was found with id user_x",
			wantClass:  classes{NotFound: true},
		},
		{
			name: "list 422 has no query in Path",
			call: func(c *clerk.Client) error {
				_, err := c.ListUsers(context.Background(), clerk.ListUsersParams{EmailAddresses: []string{"private@example.com"}})
				return err
			},
			status:     422,
			body:       `{"errors":[{"message":"bad","long_message":"bad","code":"form_param_format_invalid"}]}`,
			want:       &clerk.APIError{StatusCode: 422, Method: "GET", Path: "/users", Errors: []clerk.ErrorDetail{{Code: "form_param_format_invalid", Message: "bad", LongMessage: "bad"}}},
			wantString: "clerk: GET /users: 422 form_param_format_invalid: bad",
			wantClass:  classes{Rejected: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			c := newClient(t, rec.url())
			call := tt.call
			if call == nil {
				call = func(c *clerk.Client) error { _, err := c.GetUser(context.Background(), "user_1"); return err }
			}
			err := call(c)
			var apiErr *clerk.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %#v, want *APIError", err)
			}
			if diff := cmp.Diff(tt.want, apiErr); diff != "" {
				t.Errorf("APIError (-want +got):\n%s", diff)
			}
			if tt.wantString != "" && err.Error() != tt.wantString {
				t.Errorf("Error() = %q\nwant      %q", err.Error(), tt.wantString)
			}
			if diff := cmp.Diff(tt.wantClass, classify(err)); diff != "" {
				t.Errorf("classification (-want +got):\n%s", diff)
			}
			// Wrapping keeps the classification and the accessors.
			wrapped := fmt.Errorf("reconcile: %w", err)
			if diff := cmp.Diff(tt.wantClass, classify(wrapped)); diff != "" {
				t.Errorf("classification of wrapped error (-want +got):\n%s", diff)
			}
			if got := clerk.TraceID(wrapped); got != tt.want.TraceID {
				t.Errorf("TraceID() = %q, want %q", got, tt.want.TraceID)
			}
			d, ok := clerk.RetryAfter(wrapped)
			if d != tt.want.RetryAfter || ok != (tt.want.RetryAfter > 0) {
				t.Errorf("RetryAfter() = %v, %v; want %v", d, ok, tt.want.RetryAfter)
			}
			if n := rec.count(); n != 1 {
				t.Errorf("%d requests, want 1 (no retries)", n)
			}
		})
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	tests := []struct {
		name     string
		offset   time.Duration
		min, max time.Duration
	}{
		{"future date", 30 * time.Second, 28 * time.Second, 31 * time.Second},
		{"past date", -time.Minute, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", time.Now().Add(tt.offset).UTC().Format(http.TimeFormat))
				writeJSON(w, 503, `{"errors":[{"code":"maintenance_mode","message":"m","long_message":"l"}]}`)
			})
			c := newClient(t, rec.url())
			_, err := c.GetUser(t.Context(), "user_1")
			d, ok := clerk.RetryAfter(err)
			if d < tt.min || d > tt.max || ok != (tt.max > 0) {
				t.Errorf("RetryAfter() = %v, %v; want within [%v, %v]", d, ok, tt.min, tt.max)
			}
		})
	}
}

func TestMalformedSuccessBody(t *testing.T) {
	tests := []struct {
		name string
		body string
		call func(c *clerk.Client) error
	}{
		{"user HTML", "<html>hi</html>", func(c *clerk.Client) error { _, err := c.GetUser(t.Context(), "user_1"); return err }},
		{"user truncated", userJSON[:100], func(c *clerk.Client) error { _, err := c.BanUser(t.Context(), "user_1"); return err }},
		{"list not an array", `{"data":[]}`, func(c *clerk.Client) error { _, err := c.ListUsers(t.Context(), clerk.ListUsersParams{}); return err }},
		{"count without total", `{"object":"total_count"}`, func(c *clerk.Client) error { _, err := c.CountUsers(t.Context(), clerk.ListUsersParams{}); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, tt.body) })
			err := tt.call(newClient(t, rec.url()))
			var re *clerk.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("err = %#v, want *RequestError", err)
			}
			if re.StatusCode != 200 {
				t.Errorf("StatusCode = %d, want 200", re.StatusCode)
			}
			if diff := cmp.Diff(classes{Unavailable: true}, classify(err)); diff != "" {
				t.Errorf("classification (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)

	tests := []struct {
		name string
		mod  func(*clerk.Options)
	}{
		{"Options.Timeout", func(o *clerk.Options) { o.Timeout = 50 * time.Millisecond }},
		{"Options.Timeout with caller HTTPClient", func(o *clerk.Options) {
			o.Timeout = 50 * time.Millisecond
			o.HTTPClient = &http.Client{}
		}},
		{"HTTPClient.Timeout", func(o *clerk.Options) {
			o.HTTPClient = &http.Client{Timeout: 50 * time.Millisecond}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, rec.url(), tt.mod)
			start := time.Now()
			_, err := c.ListUsers(t.Context(), clerk.ListUsersParams{EmailAddresses: []string{"secret-person@example.com"}})
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("took %v; the timeout did not apply", elapsed)
			}
			var re *clerk.RequestError
			if !errors.As(err, &re) || !re.Timeout() {
				t.Fatalf("err = %v, want a *RequestError with Timeout()", err)
			}
			if diff := cmp.Diff(classes{Unavailable: true}, classify(err)); diff != "" {
				t.Errorf("classification (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), "secret-person") || strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("error %q reveals the query or URL", err)
			}
			if !strings.HasPrefix(err.Error(), "clerk: GET /users: ") {
				t.Errorf("error %q does not name the route", err)
			}
		})
	}
}

func TestCallerCancellationIsNotUnavailable(t *testing.T) {
	arrived := make(chan struct{}, 1)
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	c := newClient(t, rec.url())
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	_, err := c.GetUser(ctx, "user_1")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if diff := cmp.Diff(classes{}, classify(err)); diff != "" {
		t.Errorf("classification (-want +got):\n%s", diff)
	}
}

func TestCallerDeadlineDuringRequestIsUnavailable(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c := newClient(t, rec.url())
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.GetUser(ctx, "user_1")
	if !errors.Is(err, context.DeadlineExceeded) || !clerk.IsUnavailable(err) {
		t.Fatalf("err = %v, want DeadlineExceeded and IsUnavailable", err)
	}
}

func TestNetworkError(t *testing.T) {
	rec := newRecorder(t, nil)
	base := rec.url()
	rec.srv.Close()
	c := newClient(t, base)
	err := c.DisableMFA(t.Context(), "user_1")
	var re *clerk.RequestError
	if !errors.As(err, &re) {
		t.Fatalf("err = %#v, want *RequestError", err)
	}
	if re.Method != "DELETE" || re.Path != "/users/user_1/mfa" || re.StatusCode != 0 {
		t.Errorf("RequestError = %+v", re)
	}
	if diff := cmp.Diff(classes{Unavailable: true}, classify(err)); diff != "" {
		t.Errorf("classification (-want +got):\n%s", diff)
	}
}

func TestPauseAfter429(t *testing.T) {
	var mu sync.Mutex
	first := true
	rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if first {
			first = false
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, `{"errors":[{"code":"too_many_requests","message":"m","long_message":"l"}]}`)
			return
		}
		writeJSON(w, 200, userJSON)
	})
	key := uniqueKey(t)
	c := newClient(t, rec.url(), func(o *clerk.Options) { o.SecretKey = key })
	sibling := newClient(t, rec.url(), func(o *clerk.Options) { o.SecretKey = key })

	before := time.Now()
	_, err := c.GetUser(t.Context(), "user_1")
	if !clerk.IsRateLimited(err) {
		t.Fatalf("err = %v, want rate limited", err)
	}
	until := c.PausedUntil()
	if until.Before(before.Add(time.Second)) || until.After(time.Now().Add(time.Second)) {
		t.Fatalf("PausedUntil() = %v, want about 1s after the 429", until)
	}
	if !sibling.PausedUntil().Equal(until) {
		t.Errorf("sibling client on the same key is not paused")
	}

	// A caller whose deadline ends before the pause gets a LimiterError at once, and no request
	// reaches the server.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = sibling.GetUser(ctx, "user_1")
	var le *clerk.LimiterError
	if !errors.As(err, &le) || !clerk.IsRateLimited(err) || clerk.IsUnavailable(err) {
		t.Fatalf("err = %v, want a rate-limited *LimiterError", err)
	}
	if d, ok := clerk.RetryAfter(err); !ok || d <= 0 || d > time.Second {
		t.Errorf("RetryAfter() = %v, %v; want (0, 1s]", d, ok)
	}
	if ctx.Err() != nil {
		t.Errorf("GetUser waited for the deadline instead of failing fast")
	}
	if n := rec.count(); n != 1 {
		t.Errorf("%d requests reached the server, want 1", n)
	}

	// A caller without a deadline waits until the pause is over, then is served.
	done := make(chan error, 1)
	go func() {
		_, err := sibling.GetUser(t.Context(), "user_1")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request did not complete after the pause")
	}
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if reqs[1].At.Before(until) {
		t.Errorf("second request arrived at %v, before the pause ended at %v", reqs[1].At, until)
	}
}

func TestPauseWithoutRetryAfterUsesDefault(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(429) })
	c := newClient(t, rec.url())
	before := time.Now()
	_, err := c.GetUser(t.Context(), "user_1")
	if !clerk.IsRateLimited(err) {
		t.Fatalf("err = %v", err)
	}
	if _, ok := clerk.RetryAfter(err); ok {
		t.Errorf("RetryAfter reported a value without a header")
	}
	if until := c.PausedUntil(); until.Before(before.Add(clerk.DefaultRetryAfter)) {
		t.Errorf("PausedUntil() = %v, want at least %v after the request", until, clerk.DefaultRetryAfter)
	}
}

func TestLimiterDeadline(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, userJSON) })
	c := newClient(t, rec.url(), func(o *clerk.Options) {
		o.RequestsPerSecond = 0.5
		o.Burst = 1
	})
	if _, err := c.GetUser(t.Context(), "user_1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.GetUser(ctx, "user_1")
	var le *clerk.LimiterError
	if !errors.As(err, &le) || !clerk.IsRateLimited(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want rate-limited *LimiterError wrapping DeadlineExceeded", err)
	}
	if d, ok := clerk.RetryAfter(err); !ok || d <= 0 || d > 2*time.Second {
		t.Errorf("RetryAfter() = %v, %v; want (0, 2s]", d, ok)
	}
	if !strings.HasPrefix(err.Error(), "clerk: GET /users/user_1: waiting for rate limiter") {
		t.Errorf("Error() = %q", err)
	}
	if n := rec.count(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}

	// Cancellation while waiting is neither rate-limited nor unavailable.
	ctx2, cancel2 := context.WithCancel(t.Context())
	cancel2()
	_, err = c.GetUser(ctx2, "user_1")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	if diff := cmp.Diff(classes{}, classify(err)); diff != "" {
		t.Errorf("classification (-want +got):\n%s", diff)
	}
}

func TestConcurrentUse(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			writeJSON(w, 200, userJSON)
			return
		}
		w.Header().Set("Retry-After", "0")
		writeJSON(w, 429, `{"errors":[]}`)
	})
	c := newClient(t, rec.url(), func(o *clerk.Options) { o.RequestsPerSecond = 1000 })
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			var err error
			if i%10 == 0 {
				_, err = c.BanUser(t.Context(), "user_1")
				if clerk.IsRateLimited(err) {
					err = nil
				}
			} else {
				_, err = c.GetUser(t.Context(), "user_1")
			}
			_ = c.String()
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestErrorClassifiersOnOtherErrors(t *testing.T) {
	for _, err := range []error{nil, errors.New("x"), context.Canceled, context.DeadlineExceeded} {
		if diff := cmp.Diff(classes{}, classify(err)); diff != "" {
			t.Errorf("classify(%v) (-want +got):\n%s", err, diff)
		}
		if _, ok := clerk.RetryAfter(err); ok {
			t.Errorf("RetryAfter(%v) ok", err)
		}
		if got := clerk.TraceID(err); got != "" {
			t.Errorf("TraceID(%v) = %q", err, got)
		}
	}
	// Hand-built errors, as the controller's tests will use them.
	e := &clerk.APIError{StatusCode: 429, RetryAfter: 2 * time.Second, TraceID: "t"}
	if d, ok := clerk.RetryAfter(e); !ok || d != 2*time.Second {
		t.Errorf("RetryAfter(hand-built) = %v, %v", d, ok)
	}
	if !(&clerk.APIError{Errors: []clerk.ErrorDetail{{Code: "a"}, {Code: "b"}}}).HasCode("b") {
		t.Error("HasCode(b) = false")
	}
}
