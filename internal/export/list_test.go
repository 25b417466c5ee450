package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// fakeLister serves users oldest first, as GET /users?order_by=created_at does.
type fakeLister struct {
	users []clerk.User
	calls []clerk.ListUsersParams
	// fail, when set, answers call i (0-based) with an error instead.
	fail func(i int) error
}

func newFakeLister(n int) *fakeLister {
	l := &fakeLister{}
	for i := range n {
		id := fmt.Sprintf("user_%05d", i)
		l.users = append(l.users, clerk.User{ID: id, CreatedAt: int64(1000 + i), Username: new(fmt.Sprintf("u%05d", i))})
	}
	return l
}

func (l *fakeLister) ListUsers(_ context.Context, p clerk.ListUsersParams) ([]clerk.User, error) {
	i := len(l.calls)
	l.calls = append(l.calls, p)
	if l.fail != nil {
		if err := l.fail(i); err != nil {
			return nil, err
		}
	}
	if p.OrderBy != "created_at" {
		return nil, fmt.Errorf("order_by %q", p.OrderBy)
	}
	lo, hi := min(p.Offset, len(l.users)), min(p.Offset+p.Limit, len(l.users))
	return append([]clerk.User(nil), l.users[lo:hi]...), nil
}

func noSleep(context.Context, time.Duration) error { return nil }

func TestForEachUserPages(t *testing.T) {
	for _, tc := range []struct {
		users, calls int
	}{{1234, 3}, {1000, 3}, {0, 1}, {499, 1}, {500, 2}} {
		t.Run(fmt.Sprint(tc.users), func(t *testing.T) {
			l := newFakeLister(tc.users)
			var got []string
			pages, err := ForEachUser(context.Background(), l, Paging{}, func(u *clerk.User) error {
				got = append(got, u.ID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if pages != tc.calls || len(l.calls) != tc.calls {
				t.Errorf("pages %d, calls %d, want %d", pages, len(l.calls), tc.calls)
			}
			for i, p := range l.calls {
				if p.Limit != 500 || p.Offset != 500*i || p.OrderBy != "created_at" {
					t.Errorf("call %d: %+v", i, p)
				}
			}
			if len(got) != tc.users {
				t.Errorf("%d users, want %d", len(got), tc.users)
			}
		})
	}
}

func TestForEachUserShiftedPages(t *testing.T) {
	// A user deleted between two pages shifts the next page back by one: its first user is one
	// already seen, and is passed once.
	l := newFakeLister(700)
	deleted := false
	l.fail = func(i int) error {
		if i == 1 && !deleted {
			l.users = append(l.users[:10:10], l.users[11:]...)
			deleted = true
		}
		return nil
	}
	seen := map[string]int{}
	if _, err := ForEachUser(context.Background(), l, Paging{}, func(u *clerk.User) error { seen[u.ID]++; return nil }); err != nil {
		t.Fatal(err)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s passed %d times", id, n)
		}
	}
}

func TestForEachUserRetries(t *testing.T) {
	rateLimited := &clerk.APIError{StatusCode: http.StatusTooManyRequests, RetryAfter: 3 * time.Second, Method: "GET", Path: "/users"}
	unavailable := &clerk.APIError{StatusCode: http.StatusServiceUnavailable, Method: "GET", Path: "/users"}
	l := newFakeLister(600)
	l.fail = func(i int) error {
		switch i {
		case 0:
			return rateLimited
		case 1, 2:
			return unavailable
		}
		return nil
	}
	var waits []time.Duration
	sleep := func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	n := 0
	pages, err := ForEachUser(context.Background(), l, Paging{Sleep: sleep}, func(*clerk.User) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if n != 600 || pages != 2 || len(l.calls) != 5 {
		t.Errorf("users %d pages %d calls %d", n, pages, len(l.calls))
	}
	if want := []time.Duration{3 * time.Second, 2 * time.Second, 4 * time.Second}; fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v (Retry-After, then backoff)", waits, want)
	}

	// Past the retries, the last error is returned: no partial result.
	l = newFakeLister(600)
	l.fail = func(i int) error {
		if i >= 1 {
			return unavailable
		}
		return nil
	}
	res, err := Run(context.Background(), l, Options{}, Paging{Sleep: noSleep, Retries: 2})
	var pe *PageError
	if res != nil || !errors.As(err, &pe) || pe.Offset != 500 || pe.Attempts != 3 || !clerk.IsUnavailable(err) {
		t.Errorf("Run = %v, %v", res, err)
	}

	// A 401 is not retried.
	l = newFakeLister(10)
	l.fail = func(int) error { return &clerk.APIError{StatusCode: http.StatusUnauthorized} }
	if _, err := Run(context.Background(), l, Options{}, Paging{Sleep: noSleep}); !clerk.IsAuthentication(err) || len(l.calls) != 1 {
		t.Errorf("err %v after %d calls", err, len(l.calls))
	}
}

func TestRunFiltersAndOrders(t *testing.T) {
	l := &fakeLister{}
	for i, email := range []string{"a@Example.com", "b@other.com", "", "c@example.com", "d@EXAMPLE.COM"} {
		u := clerk.User{ID: fmt.Sprintf("user_%d", i), CreatedAt: int64(10 - i)} // newest first
		if email != "" {
			u.PrimaryEmailAddressID = new("idn")
			u.EmailAddresses = []clerk.EmailAddress{{ID: "idn", EmailAddress: email}}
		}
		l.users = append(l.users, u)
	}
	res, err := Run(context.Background(), l, Options{EmailDomains: []string{"EXAMPLE.com"}}, Paging{})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, 0, len(res.Entries))
	for _, e := range res.Entries {
		got = append(got, e.UserID+"="+e.Object.Name)
	}
	if want := "[user_4=d-example-com user_3=c-example-com user_0=a-example-com]"; fmt.Sprint(got) != want {
		t.Errorf("entries %v, want %s", got, want)
	}
	if res.Read != 5 || res.Filtered != 2 || res.Pages != 1 {
		t.Errorf("result %+v", res)
	}
}

// fakeServer serves a clerkfake with the given key and users.
func fakeServer(t *testing.T, key string, users ...string) (*clerkfake.Server, *httptest.Server) {
	t.Helper()
	f := clerkfake.New(clerkfake.Options{SecretKey: key})
	seed := make([]json.RawMessage, 0, len(users))
	for _, u := range users {
		seed = append(seed, json.RawMessage(u))
	}
	if err := f.Seed(seed); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func newClient(t *testing.T, url, key string) *clerk.Client {
	t.Helper()
	c, err := clerk.New(clerk.Options{BaseURL: url, SecretKey: key, RequestsPerSecond: 1000, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRunAgainstFakeClerk(t *testing.T) {
	key := "sk_test_" + strings.ReplaceAll(t.Name(), "/", "_")
	users := make([]string, 0, 1234)
	for i := range 1234 {
		users = append(users, fmt.Sprintf(`{"email_addresses":[{"email_address":"p%d@example.com"}],"banned":%v}`, i, i%10 == 0))
	}
	f, srv := fakeServer(t, key, users...)
	res, err := Run(context.Background(), newClient(t, srv.URL+"/v1", key), Options{}, Paging{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 1234 || res.Pages != 3 {
		t.Errorf("%d entries in %d pages", len(res.Entries), res.Pages)
	}
	st := f.Stats()
	if st.Count("GET /v1/users") != 3 || st.Writes() != 0 || st.Total != 3 {
		t.Errorf("requests: %v", st.ByRoute())
	}
}

func TestRunErrors(t *testing.T) {
	key := "sk_test_" + strings.ReplaceAll(t.Name(), "/", "_")
	_, srv := fakeServer(t, key, `{"email_addresses":[{"email_address":"a@example.com"}]}`)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	for _, tc := range []struct {
		name, url, key string
		is             func(error) bool
		want           []string
	}{{
		name: "wrong key", url: srv.URL + "/v1", key: "sk_test_wrong",
		is:   clerk.IsAuthentication,
		want: []string{"Clerk refused the secret key from CLERK_SECRET_KEY (HTTP 401)", "Clerk Dashboard → API keys", srv.URL + "/v1"},
	}, {
		name: "unreachable", url: closedURL + "/v1", key: key,
		is:   Unreachable,
		want: []string{"cannot reach the Clerk API at " + closedURL + "/v1: check --clerk-api-url", "connection refused"},
	}, {
		name: "unknown host", url: "http://clerk-api.invalid/v1", key: key,
		is:   Unreachable,
		want: []string{"cannot reach the Clerk API at http://clerk-api.invalid/v1: check --clerk-api-url"},
	}, {
		name: "no version prefix", url: srv.URL, key: key,
		is:   clerk.IsNotFound,
		want: []string{"has no Clerk users API (HTTP 404 for GET /users): check --clerk-api-url", "https://api.clerk.com/v1"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res, err := Run(context.Background(), newClient(t, tc.url, tc.key), Options{}, Paging{Sleep: noSleep})
			if res != nil || err == nil || !tc.is(err) {
				t.Fatalf("Run = %v, %v", res, err)
			}
			msg := Explain(err, Source{URL: tc.url, URLFrom: "--clerk-api-url", KeyFrom: "CLERK_SECRET_KEY"})
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, tc.key) && tc.key != "" {
				t.Errorf("message %q contains the key", msg)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v: an unreachable server must fail at once", d)
			}
		})
	}
}

func TestExplainOthers(t *testing.T) {
	src := Source{URL: "https://api.clerk.com/v1", URLFrom: "--clerk-api-url", KeyFrom: "CLERK_SECRET_KEY"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&clerk.APIError{StatusCode: 429, Method: "GET", Path: "/users"}, "Clerk kept answering 429"},
		{&clerk.APIError{StatusCode: 502, Method: "GET", Path: "/users"}, "failed or did not answer in time; try again later"},
		{&clerk.APIError{StatusCode: 403, Method: "GET", Path: "/users", Errors: []clerk.ErrorDetail{{Code: "authorization_invalid"}}}, "Clerk refused the secret key from CLERK_SECRET_KEY (HTTP 403)"},
		{&clerk.APIError{StatusCode: 301, Method: "GET", Path: "/users"}, "answered with a redirect (HTTP 301)"},
		{&PageError{Err: context.Canceled}, "interrupted"},
		{&clerk.RequestError{Method: "GET", Path: "/users", Err: context.DeadlineExceeded}, "did not answer in time"},
		{errors.New("odd"), "odd"},
	} {
		if got := Explain(tc.err, src); !strings.Contains(got, tc.want) {
			t.Errorf("Explain(%v) = %q, want it to contain %q", tc.err, got, tc.want)
		}
	}
}

// countingLister counts concurrent calls: the paging loop asks for one page at a time.
type countingLister struct {
	fakeLister
	inFlight, max atomic.Int32
}

func (c *countingLister) ListUsers(ctx context.Context, p clerk.ListUsersParams) ([]clerk.User, error) {
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	if n > c.max.Load() {
		c.max.Store(n)
	}
	return c.fakeLister.ListUsers(ctx, p)
}

func TestForEachUserStopsOnCallbackError(t *testing.T) {
	l := &countingLister{fakeLister: *newFakeLister(1500)}
	stop := errors.New("stop")
	n := 0
	_, err := ForEachUser(context.Background(), l, Paging{}, func(*clerk.User) error {
		n++
		if n == 600 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || len(l.calls) != 2 || l.max.Load() != 1 {
		t.Errorf("err %v, calls %d, max in flight %d", err, len(l.calls), l.max.Load())
	}
}
