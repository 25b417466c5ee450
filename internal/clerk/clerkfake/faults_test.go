package clerkfake

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// admin sends a request to a /_fake route.
func (f *fixture) admin(method, path, body string) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequestWithContext(f.t.Context(), method, f.ts.URL+path, strings.NewReader(body))
	res, err := f.ts.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestFaultStatuses(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.createEmail("faults@example.com")

	if code, body := f.admin("POST", "/_fake/faults", `{"rate_500":1}`); code != 200 {
		t.Fatalf("set faults: %d %s", code, body)
	}
	e := f.do("GET", "/users/"+id, nil).clerkErr(t, 500, "internal_clerk_error")
	if str(e, "message") != "Oops, an unexpected error occurred" {
		t.Errorf("message %q", str(e, "message"))
	}
	f.do("POST", "/users/"+id+"/ban", nil).clerkErr(t, 500, "internal_clerk_error")
	if u, _ := f.srv.User(id); strings.Contains(string(u), `"banned":true`) {
		t.Error("a request answered with an injected 500 was applied")
	}

	if err := f.srv.SetFaults(Faults{Rate429: 1, RetryAfterSeconds: 3}); err != nil {
		t.Fatal(err)
	}
	r := f.do("GET", "/users", nil)
	r.clerkErr(t, 429, "too_many_requests")
	if r.header.Get("Retry-After") != "3" {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	_ = f.srv.SetFaults(Faults{Rate429: 1})
	if ra := f.do("GET", "/users", nil).header.Get("Retry-After"); ra != "1" {
		t.Errorf("default Retry-After %q, want 1", ra)
	}

	_ = f.srv.SetFaults(Faults{Rate503: 1})
	f.do("GET", "/users", nil).clerkErr(t, 503, "maintenance_mode")

	_ = f.srv.SetFaults(Faults{Rate502: 1})
	r = f.do("GET", "/users", nil)
	if r.status != 502 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || json.Valid(r.body) || !strings.Contains(string(r.body), "502 Bad Gateway") {
		t.Errorf("502 fault: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}

	// Faults apply after authentication.
	f.do("GET", "/users", nil, "Authorization:").clerkErr(t, 401, "authentication_invalid")

	if code, _ := f.admin("DELETE", "/_fake/faults", ""); code != http.StatusNoContent {
		t.Errorf("clear faults: %d", code)
	}
	f.do("GET", "/users/"+id, nil).ok(t)
	st := f.srv.Stats()
	if st.CountStatus("GET /v1/users", 429) != 2 || st.RateLimited != 2 || st.CountStatus("GET /v1/users", 502) != 1 || st.CountStatus("GET /v1/users/{user_id}", 500) != 1 {
		t.Errorf("stats %+v", st.Requests)
	}
}

func TestFaultRoutesAndRates(t *testing.T) {
	f := newFixture(t, Options{})
	if err := f.srv.SetFaults(Faults{Rate500: 1, Routes: []string{"POST /v1/users", "PATCH /v1/users/{user_id}/metadata"}}); err != nil {
		t.Fatal(err)
	}
	f.do("POST", "/users", map[string]any{"username": "nope1"}).clerkErr(t, 500, "internal_clerk_error")
	f.do("GET", "/users", nil).list(t)
	if err := f.srv.Seed(rawUsers(t, `{"id":"user_r"}`)); err != nil {
		t.Fatal(err)
	}
	f.do("PATCH", "/users/user_r/metadata", map[string]any{}).clerkErr(t, 500, "internal_clerk_error")
	f.do("PUT", "/users/user_r/metadata", map[string]any{}).ok(t)

	// A rate of 0.5 hits about half of the requests.
	f.srv.ClearFaults()
	_ = f.srv.SetFaults(Faults{Rate503: 0.5, Routes: []string{"GET /v1/users/count"}})
	hits := 0
	for range 400 {
		if r := f.do("GET", "/users/count", nil); r.status == 503 {
			hits++
		}
	}
	if hits < 140 || hits > 260 {
		t.Errorf("rate 0.5 gave %d/400 faults", hits)
	}
}

func TestFaultValidation(t *testing.T) {
	f := newFixture(t, Options{})
	for _, body := range []string{
		`{"rate_500":1,"bogus":1}`,
		`{"rate_500":1.5}`,
		`{"rate_429":0.6,"rate_500":0.6}`,
		`{"drop_response_rate":-0.1}`,
		`{"latency_ms":-1}`,
		`{"routes":["POST /v1/users/{id}/ban"]}`,
		`{"routes":["POST /v1/users/{user_id}/totp"]}`,
		`not json`,
		`{"rate_500":1} {"rate_500":0}`,
	} {
		if code, resp := f.admin("POST", "/_fake/faults", body); code != 400 || !strings.Contains(resp, "invalid faults") {
			t.Errorf("%s: %d %s", body, code, resp)
		}
	}
	if code, _ := f.admin("GET", "/_fake/faults", ""); code != 200 {
		t.Errorf("get faults %d", code)
	}
	full := `{"rate_429":0.1,"rate_500":0.05,"rate_503":0,"retry_after_seconds":2,"latency_ms":0,"drop_response_rate":0,"routes":["POST /v1/users"]}`
	if code, resp := f.admin("POST", "/_fake/faults", full); code != 200 {
		t.Fatalf("contract example refused: %d %s", code, resp)
	}
	_, got := f.admin("GET", "/_fake/faults", "")
	var fl Faults
	if err := json.Unmarshal([]byte(got), &fl); err != nil || fl.Rate429 != 0.1 || fl.RetryAfterSeconds != 2 || len(fl.Routes) != 1 {
		t.Errorf("GET /_fake/faults: %s", got)
	}
	for _, r := range RouteNames() {
		if err := f.srv.SetFaults(Faults{Routes: []string{r}}); err != nil {
			t.Errorf("route %s refused: %v", r, err)
		}
	}
}

func TestFaultLatency(t *testing.T) {
	f := newFixture(t, Options{})
	_ = f.srv.SetFaults(Faults{LatencyMS: 150, Routes: []string{"GET /v1/users/count"}})
	start := time.Now()
	f.do("GET", "/users/count", nil).ok(t)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("took %v, want ≥150ms", d)
	}
	start = time.Now()
	f.do("GET", "/users", nil).list(t)
	if d := time.Since(start); d >= 150*time.Millisecond {
		t.Errorf("unaffected route took %v", d)
	}
}

func TestDropResponse(t *testing.T) {
	f := newFixture(t, Options{})
	if err := f.srv.SetFaults(Faults{DropResponseRate: 1, Routes: []string{"POST /v1/users"}}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", f.base+"/users", strings.NewReader(`{"username":"dropped"}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	res, err := f.ts.Client().Do(req)
	if err == nil {
		_ = res.Body.Close()
		t.Fatalf("got a response (%d), want the connection dropped", res.StatusCode)
	}
	// The request was applied anyway.
	if f.srv.UserCount() != 1 {
		t.Fatalf("UserCount %d, want the dropped create applied", f.srv.UserCount())
	}
	f.srv.ClearFaults()
	f.do("POST", "/users", map[string]any{"username": "dropped"}).clerkErr(t, 422, "form_identifier_exists")
	st := f.srv.Stats()
	if st.Dropped != 1 || st.CountStatus("POST /v1/users", 200) != 1 || st.CountStatus("POST /v1/users", 422) != 1 {
		t.Errorf("stats dropped %d requests %v", st.Dropped, st.Requests)
	}
}
