package clerkfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

const testKey = "sk_test_fake"

// specPath locates Clerk's OpenAPI file, kept with this package's test data.
func specPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "openapi", "2026-05-12.yml")
}

var loadSpec = sync.OnceValues(func() (*openapi3.T, error) {
	p := specPath()
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("Clerk OpenAPI spec not found at %s (Clerk's bapi/2026-05-12.yml, see testdata/openapi/README.md): %w", p, err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(p)
	if err != nil {
		return nil, fmt.Errorf("load Clerk OpenAPI spec %s: %w", p, err)
	}
	return doc, nil
})

// spec returns the loaded OpenAPI document or fails the test loudly.
func spec(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// validateAgainstSpec checks one /v1 response against the operation's
// documented response in the spec, and every error body against ClerkErrors
// (also for statuses the spec does not list, such as 429 and 404 on ban).
func validateAgainstSpec(t testing.TB, req *http.Request, status int, header http.Header, body []byte) error {
	doc := spec(t)
	if status == http.StatusBadGateway && strings.HasPrefix(header.Get("Content-Type"), "text/html") {
		return nil // injected proxy error: deliberately not Clerk's format
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("Content-Type %q, want application/json", ct)
	}
	if header.Get("Clerk-Trace-Id") == "" {
		return fmt.Errorf("missing Clerk-Trace-Id header")
	}
	var decoded any
	if err := json.Unmarshal(body, &decoded); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	if status >= 400 {
		if err := doc.Components.Schemas["ClerkErrors"].Value.VisitJSON(decoded); err != nil {
			return fmt.Errorf("error body is not ClerkErrors: %w", err)
		}
		m, _ := decoded.(map[string]any)
		if tid, _ := m["clerk_trace_id"].(string); tid != header.Get("Clerk-Trace-Id") {
			return fmt.Errorf("clerk_trace_id %q differs from Clerk-Trace-Id header %q", tid, header.Get("Clerk-Trace-Id"))
		}
	}
	rt, params, _ := match(req.Method, req.URL.EscapedPath())
	if rt == nil {
		return nil // unknown route: ClerkErrors checked above
	}
	specP := strings.TrimPrefix(rt.template, "/v1")
	item := doc.Paths.Value(specP)
	if item == nil || item.GetOperation(rt.method) == nil {
		return fmt.Errorf("route %s is not in the spec", rt.name)
	}
	op := item.GetOperation(rt.method)
	if status == http.StatusOK && rt.template == "/v1/users/{user_id}/oauth_access_tokens/{provider}" && req.URL.Query().Get("paginated") == "true" {
		// The spec only has the bare-array shape; the SDKs' paginated
		// envelope wraps the same items.
		items := doc.Components.Schemas["OAuthAccessToken"].Value.Items.Value
		m, ok := decoded.(map[string]any)
		data, _ := m["data"].([]any)
		if _, hasTotal := m["total_count"].(float64); !ok || !hasTotal || data == nil {
			return fmt.Errorf("paginated OAuth tokens: want {data, total_count}, got %s", body)
		}
		for _, it := range data {
			if err := items.VisitJSON(it); err != nil {
				return fmt.Errorf("paginated OAuth token: %w", err)
			}
		}
		return nil
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      &routers.Route{Spec: doc, Path: specP, PathItem: item, Method: rt.method, Operation: op},
		},
		Status: status,
		Header: header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: status < 400, // 2xx must be documented; errors were checked above
			MultiError:            true,
		},
	}
	return openapi3filter.ValidateResponse(context.Background(), input)
}

// specTransport validates every /v1 response against the spec.
type specTransport struct {
	t    testing.TB
	base http.RoundTripper
}

func (st specTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := st.base.RoundTrip(req)
	if err != nil || !strings.HasPrefix(req.URL.Path, "/v1") {
		return res, err
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	if verr := validateAgainstSpec(st.t, req, res.StatusCode, res.Header, body); verr != nil {
		st.t.Errorf("%s %s → %d: response does not match the OpenAPI spec: %v\nbody: %s", req.Method, req.URL, res.StatusCode, verr, truncate(body))
	}
	return res, nil
}

func truncate(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a Server behind httptest with a spec-validating client.
type fixture struct {
	t      *testing.T
	srv    *Server
	ts     *httptest.Server
	client *http.Client
	base   string // ts.URL + "/v1"
	clock  *fakeClock
}

// newFixture starts a server. A nil opts.Now gets a fake clock.
func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	spec(t) // fail early and loudly when the spec is missing
	f := &fixture{t: t}
	if opts.Now == nil {
		f.clock = newFakeClock()
		opts.Now = f.clock.Now
	}
	f.srv = New(opts)
	f.ts = httptest.NewServer(f.srv)
	t.Cleanup(f.ts.Close)
	f.client = &http.Client{Transport: specTransport{t: t, base: f.ts.Client().Transport}, Timeout: 30 * time.Second}
	f.base = f.ts.URL + "/v1"
	return f
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with the test key. body is nil (no body), a string
// (sent verbatim) or any other value (sent as JSON). hdr are "Key: value" pairs
// that replace the defaults; "Authorization:" with no value removes the key.
func (f *fixture) do(method, path string, body any, hdr ...string) resp {
	f.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = f.base + path
	}
	req, err := http.NewRequestWithContext(f.t.Context(), method, url, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Clerk-API-Version", APIVersion)
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ":")
		v = strings.TrimSpace(v)
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := f.client.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// ok asserts a 200 and decodes the body.
func (r resp) ok(t *testing.T) map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return m
}

// list asserts a 200 and decodes a JSON array.
func (r resp) list(t *testing.T) []map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	var l []map[string]any
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return l
}

// clerkErr asserts an error status and code, and returns the first error.
func (r resp) clerkErr(t *testing.T, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var eb struct {
		Errors  []map[string]any `json:"errors"`
		TraceID string           `json:"clerk_trace_id"`
	}
	if err := json.Unmarshal(r.body, &eb); err != nil || len(eb.Errors) == 0 {
		t.Fatalf("not a ClerkErrors body: %s", r.body)
	}
	if got := eb.Errors[0]["code"]; got != code {
		t.Fatalf("error code %v, want %s; body %s", got, code, r.body)
	}
	if eb.TraceID == "" || r.header.Get("Clerk-Trace-Id") != eb.TraceID {
		t.Fatalf("trace id body %q header %q", eb.TraceID, r.header.Get("Clerk-Trace-Id"))
	}
	return eb.Errors[0]
}

// paramName returns meta.param_name of a ClerkError.
func paramName(e map[string]any) string {
	m, _ := e["meta"].(map[string]any)
	s, _ := m["param_name"].(string)
	return s
}

// create makes a user and returns it.
func (f *fixture) create(body map[string]any) map[string]any {
	f.t.Helper()
	return f.do("POST", "/users", body).ok(f.t)
}

// createEmail makes a user with one email address and returns its ID.
func (f *fixture) createEmail(email string) string {
	f.t.Helper()
	return f.create(map[string]any{"email_address": []string{email}})["id"].(string)
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func num(m map[string]any, k string) int64 {
	v, ok := m[k].(float64)
	if !ok {
		return -1
	}
	return int64(v)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
