package clerkfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStatsAndReset(t *testing.T) {
	f := newFixture(t, Options{RateLimit: 6})
	id := f.createEmail("stats@example.com")
	f.do("POST", "/users/"+id+"/ban", nil).ok(t)
	f.do("POST", "/users/"+id+"/ban", nil).ok(t)
	f.do("GET", "/users/user_nope", nil).clerkErr(t, 404, "resource_not_found")
	f.do("GET", "/users", nil, "Authorization:").clerkErr(t, 401, "authentication_invalid")
	f.do("PATCH", "/users/"+id+"/metadata", map[string]any{}).ok(t)
	f.do("GET", "/users/count", nil).ok(t)
	f.do("GET", "/users/count", nil).clerkErr(t, 429, "too_many_requests") // 7th authenticated request
	_, _ = f.srv.User(id)                                                  // not counted
	f.admin("GET", "/_fake/stats", "")                                     // not counted

	want := Stats{Total: 8, RateLimited: 1, Requests: map[string]map[string]int64{
		"POST /v1/users":                     {"200": 1},
		"POST /v1/users/{user_id}/ban":       {"200": 2},
		"GET /v1/users/{user_id}":            {"404": 1},
		"GET /v1/users":                      {"401": 1},
		"PATCH /v1/users/{user_id}/metadata": {"200": 1},
		"GET /v1/users/count":                {"200": 1, "429": 1},
	}}
	st := f.srv.Stats()
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if st.Count("POST /v1/users/{user_id}/ban") != 2 || st.Count("GET /v1/users/count") != 2 || st.Count("DELETE /v1/users/{user_id}") != 0 {
		t.Errorf("Count")
	}
	code, body := f.admin("GET", "/_fake/stats", "")
	var viaHTTP Stats
	if err := json.Unmarshal([]byte(body), &viaHTTP); code != 200 || err != nil {
		t.Fatalf("GET /_fake/stats: %d %s", code, body)
	}
	if diff := cmp.Diff(want, viaHTTP); diff != "" {
		t.Errorf("GET /_fake/stats (-want +got):\n%s", diff)
	}
	var generic map[string]any
	_ = json.Unmarshal([]byte(body), &generic)
	for _, k := range []string{"total", "rate_limited", "requests"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("stats JSON lacks %q: %s", k, body)
		}
	}
	// The returned snapshot is a copy.
	st.Requests["POST /v1/users"]["200"] = 99
	if f.srv.Stats().Requests["POST /v1/users"]["200"] != 1 {
		t.Error("Stats shares its maps with the server")
	}

	_ = f.srv.SetFaults(Faults{LatencyMS: 1})
	if code, _ := f.admin("POST", "/_fake/reset", ""); code != http.StatusNoContent {
		t.Errorf("reset: %d", code)
	}
	if f.srv.UserCount() != 0 {
		t.Error("reset kept users")
	}
	if diff := cmp.Diff(Stats{Requests: map[string]map[string]int64{}}, f.srv.Stats()); diff != "" {
		t.Errorf("reset kept counters:\n%s", diff)
	}
	// The rate-limit window was cleared too; faults stay.
	f.do("GET", "/users/count", nil).ok(t)
	if _, got := f.admin("GET", "/_fake/faults", ""); !json.Valid([]byte(got)) || !strings.Contains(got, `"latency_ms":1`) {
		t.Errorf("faults after reset: %s", got)
	}
	if code, _ := f.admin("GET", "/_fake/nothing", ""); code != 404 {
		t.Errorf("unknown admin route: %d", code)
	}
}

// TestConcurrency hammers one server from many goroutines (run with -race):
// creates must stay unique, concurrent merges into one user must all land,
// and the counters must add up.
func TestConcurrency(t *testing.T) {
	f := newFixture(t, Options{Now: time.Now})
	shared := f.createEmail("shared@example.com")
	const workers, perWorker = 32, 20
	var sent atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				do := func(method, path string, body any, want int) {
					sent.Add(1)
					r := f.doNoFatal(method, path, body)
					if r.status != want {
						errs <- fmt.Sprintf("%s %s: %d %s", method, path, r.status, r.body)
					}
				}
				email := fmt.Sprintf("w%d-%d@example.com", w, i)
				do("POST", "/users", map[string]any{"email_address": []string{email}}, 200)
				// Every worker races for the same username: exactly one wins.
				sent.Add(1)
				if r := f.doNoFatal("POST", "/users", map[string]any{"username": fmt.Sprintf("race_%d", i)}); r.status != 200 && r.status != 422 {
					errs <- fmt.Sprintf("race create: %d", r.status)
				}
				do("PATCH", "/users/"+shared+"/metadata", map[string]any{"public_metadata": map[string]any{fmt.Sprintf("k%d_%d", w, i): i}}, 200)
				do("GET", "/users/"+shared, nil, 200)
				do("GET", "/users?limit=5&order_by=-updated_at", nil, 200)
				do("GET", "/users/count", nil, 200)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got, want := f.srv.UserCount(), 1+workers*perWorker+perWorker; got != want {
		t.Errorf("UserCount %d, want %d (unique emails + one winner per username)", got, want)
	}
	raw, _ := f.srv.User(shared)
	var u map[string]any
	_ = json.Unmarshal(raw, &u)
	if n := len(u["public_metadata"].(map[string]any)); n != workers*perWorker {
		t.Errorf("merged keys %d, want %d: concurrent merges lost updates", n, workers*perWorker)
	}
	if st := f.srv.Stats(); st.Total != sent.Load()+1 {
		t.Errorf("stats total %d, sent %d", st.Total, sent.Load()+1)
	}
}

// doNoFatal is do for goroutines other than the test's (no t.Fatal). It
// skips the spec check (covered by the other tests) to keep the hammering fast.
func (f *fixture) doNoFatal(method, path string, body any) resp {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequestWithContext(f.t.Context(), method, f.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+testKey)
	res, err := f.ts.Client().Do(req)
	if err != nil {
		return resp{status: -1, body: []byte(err.Error())}
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}
