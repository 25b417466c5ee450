package clerkfake

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestPerKeyRateLimit(t *testing.T) {
	f := newFixture(t, Options{RateLimit: 5})
	for range 5 {
		f.do("GET", "/users", nil).list(t)
		f.clock.Advance(time.Second) // requests at t=0..4 s
	}
	r := f.do("GET", "/users/count", nil)
	r.clerkErr(t, http.StatusTooManyRequests, "too_many_requests")
	// The oldest request (t=0) leaves the window at t=10 s; now is t=5 s.
	if ra := r.header.Get("Retry-After"); ra != "5" {
		t.Errorf("Retry-After %q, want 5", ra)
	}
	// Unauthenticated requests are refused before the limit.
	f.do("GET", "/users", nil, "Authorization: Bearer sk_test_wrong").clerkErr(t, 401, "clerk_key_invalid")
	f.clock.Advance(4500 * time.Millisecond) // t=9.5 s: still blocked, 0.5 s left → Retry-After rounds up to 1
	if ra := f.do("GET", "/users", nil).header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}
	f.clock.Advance(500 * time.Millisecond) // t=10 s: one slot free again
	f.do("GET", "/users", nil).list(t)
	f.do("GET", "/users", nil).clerkErr(t, 429, "too_many_requests")
	f.clock.Advance(10 * time.Second)
	for range 5 {
		f.do("GET", "/users", nil).list(t)
	}
	st := f.srv.Stats()
	if st.RateLimited != 3 || st.CountStatus("GET /v1/users/count", 429) != 1 || st.CountStatus("GET /v1/users", 429) != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestDefaultRateLimitByKeyType(t *testing.T) {
	for _, tc := range []struct {
		key   string
		limit int
	}{{"sk_test_fake", 100}, {"sk_live_fake", 1000}} {
		t.Run(tc.key, func(t *testing.T) {
			f := newFixture(t, Options{SecretKey: tc.key, RateLimit: -1})
			auth := "Authorization: Bearer " + tc.key
			for i := range tc.limit {
				if r := f.do("GET", "/users/count", nil, auth); r.status != 200 {
					t.Fatalf("request %d: %d", i+1, r.status)
				}
			}
			r := f.do("GET", "/users/count", nil, auth)
			r.clerkErr(t, 429, "too_many_requests")
			if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra != 10 {
				t.Errorf("Retry-After %q, want the integer 10", r.header.Get("Retry-After"))
			}
		})
	}
	if DefaultRateLimitForKey("sk_live_x") != 1000 || DefaultRateLimitForKey("sk_test_x") != 100 {
		t.Error("DefaultRateLimitForKey")
	}
	// RateLimit 0 is off.
	f := newFixture(t, Options{RateLimit: 0})
	for range 300 {
		if r := f.do("GET", "/users/count", nil); r.status != 200 {
			t.Fatalf("status %d with the limit off", r.status)
		}
	}
}

func TestPerUserRateLimit(t *testing.T) {
	f := newFixture(t, Options{PerUserRateLimit: 10})
	a, b := f.createEmail("a@example.com"), f.createEmail("b@example.com")
	// The three write routes share one budget per user.
	for i := range 10 {
		var r resp
		switch i % 3 {
		case 0:
			r = f.do("PATCH", "/users/"+a, map[string]any{"first_name": "n" + strconv.Itoa(i)})
		case 1:
			r = f.do("PATCH", "/users/"+a+"/metadata", map[string]any{"public_metadata": map[string]any{"i": i}})
		case 2:
			r = f.do("PUT", "/users/"+a+"/metadata", map[string]any{"public_metadata": map[string]any{"i": i}})
		}
		r.ok(t)
	}
	before, _ := f.srv.User(a)
	r := f.do("PUT", "/users/"+a+"/metadata", map[string]any{"public_metadata": map[string]any{"blocked": true}})
	r.clerkErr(t, 429, "too_many_requests")
	if r.header.Get("Retry-After") != "10" {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	f.do("PATCH", "/users/"+a, map[string]any{"first_name": "blocked"}).clerkErr(t, 429, "too_many_requests")
	if after, _ := f.srv.User(a); string(after) != string(before) {
		t.Error("a rate-limited write was applied")
	}
	// Other users, reads and other writes are not limited.
	f.do("PATCH", "/users/"+b, map[string]any{"first_name": "fine"}).ok(t)
	f.do("GET", "/users/"+a, nil).ok(t)
	f.do("POST", "/users/"+a+"/ban", nil).ok(t)
	f.clock.Advance(10 * time.Second)
	f.do("PATCH", "/users/"+a, map[string]any{"first_name": "later"}).ok(t)
	if got := f.srv.Stats().RateLimited; got != 2 {
		t.Errorf("rate_limited %d", got)
	}
}

func TestSlidingLog(t *testing.T) {
	var l slidingLog
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if w := l.admit(t0.Add(time.Duration(i)*time.Second), 3); w != 0 {
			t.Fatalf("admit %d: wait %v", i, w)
		}
	}
	if w := l.admit(t0.Add(3*time.Second), 3); w != 7*time.Second {
		t.Errorf("wait %v, want 7s", w)
	}
	if w := l.admit(t0.Add(10*time.Second), 3); w != 0 {
		t.Errorf("at 10 s the first event left the window; wait %v", w)
	}
	if w := l.admit(t0.Add(10*time.Second), 3); w != time.Second {
		t.Errorf("wait %v, want 1s (event at t=1 s)", w)
	}
	if retryAfterSeconds(1) != 1 || retryAfterSeconds(1500*time.Millisecond) != 2 || retryAfterSeconds(10*time.Second) != 10 {
		t.Error("retryAfterSeconds rounding")
	}
}
