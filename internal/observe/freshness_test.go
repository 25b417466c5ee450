package observe

import (
	"context"
	"math"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// TestBatchObserveNotBefore: an observation read before notBefore is not an answer, however
// young; a zero notBefore takes any trusted one.
func TestBatchObserveNotBefore(t *testing.T) {
	m := newMemClerk(2)
	clk := &clock{t: time.Unix(1000, 0)}
	o := &Batch{Clerk: m, MaxAge: time.Minute, Now: clk.Now}
	startObserver(t, o)
	ctx := context.Background()
	if _, err := o.Observe(ctx, "user_0000", time.Time{}); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	m.set(clerk.User{ID: "user_0000", FirstName: new("Eve"), CreatedAt: at(1000), UpdatedAt: at(5000)}) // out of band

	for _, step := range []struct {
		name      string
		notBefore func() time.Time
		wantName  string
		wantLists int
	}{
		{"a zero notBefore takes the cached observation", func() time.Time { return time.Time{} }, "", 1},
		{"notBefore after the cached read reads again", clk.Now, "Eve", 2},
		{"that read answers the same notBefore from the cache", clk.Now, "Eve", 2},
		{"a notBefore in the future is taken as now: one read", func() time.Time { clk.Add(time.Second); return clk.Now().Add(time.Hour) }, "Eve", 3},
		{"after which the cache answers again", func() time.Time { return time.Time{} }, "Eve", 3},
	} {
		t.Run(step.name, func(t *testing.T) {
			u, err := o.Observe(ctx, "user_0000", step.notBefore())
			if err != nil {
				t.Fatal(err)
			}
			if got := deref(u.FirstName); got != step.wantName {
				t.Errorf("first name %q, want %q", got, step.wantName)
			}
			if lists, _ := m.calls(); lists != step.wantLists {
				t.Errorf("%d list calls, want %d", lists, step.wantLists)
			}
		})
	}
}

// TestBatchReadInFlightAnswersOnlyEarlierNotBefore: a reconcile that asks for a read after a
// read of its user started is not answered by that read, but by the next one.
func TestBatchReadInFlightAnswersOnlyEarlierNotBefore(t *testing.T) {
	m := newMemClerk(1)
	clk := &clock{t: time.Unix(1000, 0)}
	o := &Batch{Clerk: m, MaxAge: time.Minute, Now: clk.Now}
	startObserver(t, o)
	inRead, release := make(chan struct{}), make(chan struct{})
	var reads atomic.Int32
	m.setHooks(nil, func(clerk.ListUsersParams) {
		if reads.Add(1) == 1 { // the first read has its (old) answer and is held
			close(inRead)
			<-release
		}
	})
	early := observeAsync(o, "user_0000", time.Time{})
	<-inRead
	clk.Add(time.Second)
	m.set(clerk.User{ID: "user_0000", FirstName: new("Eve"), CreatedAt: at(1000), UpdatedAt: at(5000)})
	late := observeAsync(o, "user_0000", clk.Now())
	waitWaiting(t, o, 2)
	close(release)

	if r := <-early; r.err != nil || r.user.FirstName != nil {
		t.Errorf("the reconcile that asked first: %+v, %v; want the state before the change", r.user, r.err)
	}
	r := <-late
	if r.err != nil || deref(r.user.FirstName) != "Eve" {
		t.Errorf("the reconcile that asked after the read started was answered by it: %+v, %v", r.user, r.err)
	}
	if lists, _ := m.calls(); lists != 2 {
		t.Errorf("%d reads, want 2", lists)
	}
}

// TestBatchStartListingAnswersOnlyEarlierNotBefore: a page of the start's listing answers only
// the reconciles that asked for a read no later than the page's request.
func TestBatchStartListingAnswersOnlyEarlierNotBefore(t *testing.T) {
	m := newMemClerk(1200)
	clk := &clock{t: time.Unix(1000, 0)}
	o := &Batch{Clerk: m, MaxAge: time.Minute, Now: clk.Now,
		Managed: func(context.Context) ([]string, error) { return userIDs(1200), nil }}
	startReads(t, o)
	early := observeAsync(o, "user_1000", time.Time{})
	waitWaiting(t, o, 1)
	var late <-chan result
	m.setHooks(nil, func(p clerk.ListUsersParams) {
		if p.Offset == 0 && p.Limit == clerk.MaxListLimit && late == nil {
			// The first page holds user_1100 as it was; then it changes, and a reconcile asks
			// for a read after the change.
			clk.Add(time.Second)
			m.set(clerk.User{ID: "user_1100", FirstName: new("Eve"), CreatedAt: at(1000), UpdatedAt: at(9000)})
			late = observeAsync(o, "user_1100", clk.Now())
			waitWaiting(t, o, 2)
		}
	})
	if err := o.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := <-early; r.err != nil || r.user.ID != "user_1000" {
		t.Errorf("a reconcile waiting before the listing: %+v, %v", r.user, r.err)
	}
	r := <-late
	if r.err != nil || deref(r.user.FirstName) != "Eve" {
		t.Errorf("a page that started before the reconcile asked answered it: %+v, %v", r.user, r.err)
	}
	if lists, _ := m.calls(); lists != 4 {
		t.Fatalf("%d lists, want 3 pages and 1 batch read", lists)
	}
	if diff := cmp.Diff([]string{"user_1100"}, m.listAt(3).UserIDs); diff != "" {
		t.Errorf("batch read after the listing (-want +got):\n%s", diff)
	}
}

// fakeClerk serves a clerkfake on the clock clk, and returns it with a client of it.
func fakeClerk(t *testing.T, opts clerkfake.Options) (*clerkfake.Server, *clerk.Client) {
	t.Helper()
	fake := clerkfake.New(opts)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	api, err := clerk.New(clerk.Options{BaseURL: srv.URL + "/v1", SecretKey: clerkfake.DefaultSecretKey, RequestsPerSecond: math.Inf(1)})
	if err != nil {
		t.Fatal(err)
	}
	return fake, api
}

// TestBatchLockoutEnd: Clerk lifts a lockout without changing updated_at. An observation of a
// lockout is trusted no longer than the lockout it reports, and the user is reported when it
// ends, so that its object is reconciled (and a declared lock enforced again).
func TestBatchLockoutEnd(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	clk := &clock{t: t0}
	fake, api := fakeClerk(t, clerkfake.Options{LockoutSeconds: new(int64(60)), Now: clk.Now})
	ctx := context.Background()
	locked, err := api.CreateUser(ctx, clerk.CreateUserParams{EmailAddresses: []string{"locked@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.LockUser(ctx, locked.ID); err != nil {
		t.Fatal(err)
	}
	clk.Add(10 * time.Second)

	rec := &recorder{}
	o := &Batch{Clerk: api, MaxAge: time.Hour, Now: clk.Now, Changed: rec.changed}
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- o.Start(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Error(err)
		}
	})
	lists := func() int64 { return fake.Stats().Count("GET /v1/users") }

	u, err := o.Observe(ctx, locked.ID, time.Time{})
	if err != nil || !u.Locked || deref(u.LockoutExpiresInSeconds) != 50 {
		t.Fatalf("Observe at t0+10s: %+v, %v; want locked, 50 s left", u, err)
	}
	n0 := lists()

	clk.Add(30 * time.Second) // t0+40s: the lockout holds
	if u, err := o.Observe(ctx, locked.ID, time.Time{}); err != nil || !u.Locked {
		t.Fatalf("Observe at t0+40s: %+v, %v", u, err)
	}
	if n := lists(); n != n0 {
		t.Errorf("an observation of a lockout with 20 s left was read again: %d reads", n-n0)
	}
	if next := o.reportLockouts(ctx); !next.Equal(t0.Add(61 * time.Second)) {
		t.Errorf("the end of the lockout is reported at %v, want t0+61s (its end and a second for Clerk's rounding)", next.Sub(t0))
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("reported before the lockout ended: %v", got)
	}

	clk.Add(25 * time.Second) // t0+65s: the lockout ended at t0+60s
	signal(o.lockKick)
	eventually(t, "the end of the lockout is reported", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.ids) > 0
	})
	if diff := cmp.Diff([][]string{{locked.ID}}, rec.take()); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}
	u, err = o.Observe(ctx, locked.ID, time.Time{})
	if err != nil || u.Locked {
		t.Errorf("Observe after the lockout ended: %+v, %v; want a read that shows it unlocked", u, err)
	}
	if n := lists(); n != n0+1 {
		t.Errorf("%d reads after the lockout ended, want 1", n-n0)
	}
}

// TestBatchPollDoesNotExtendALockout: a poll vouches for cached observations, but not past the
// end of the lockout they report.
func TestBatchPollDoesNotExtendALockout(t *testing.T) {
	m := newMemClerk(200) // newer than the locked user: the poll's page does not hold it
	m.set(clerk.User{ID: "user_locked", Locked: true, LockoutExpiresInSeconds: new(int64(60)), CreatedAt: at(500), UpdatedAt: at(500)})
	clk := &clock{t: time.Unix(1000, 0)}
	o := &Batch{Clerk: m, MaxAge: time.Hour, Now: clk.Now}
	ctx := context.Background()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	startReads(t, o)
	if _, err := o.Observe(ctx, "user_locked", time.Time{}); err != nil {
		t.Fatal(err)
	}
	clk.Add(50 * time.Second)
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	l0, _ := m.calls()
	if _, err := o.Observe(ctx, "user_locked", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if l, _ := m.calls(); l != l0 {
		t.Fatalf("a lockout with 10 s left was read again")
	}
	clk.Add(10 * time.Second)
	if _, err := o.Observe(ctx, "user_locked", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if l, _ := m.calls(); l != l0+1 {
		t.Errorf("%d reads at the end of the lockout, want 1: the poll extended its trust", l-l0)
	}
}

// TestBatchFullReadFindsWhatThePollCannotSee: every FullReadInterval every cached user is read
// again, which finds a change that kept its updated_at, a change that landed with an updated_at
// below the poll's overlap, and a deletion that a creation hid from the count.
func TestBatchFullReadFindsWhatThePollCannotSee(t *testing.T) {
	m := newMemClerk(300)
	clk := &clock{t: time.Unix(1000, 0)}
	o, rec := polledObserver(t, m, clk, []string{"user_0001", "user_0002", "user_0003"})
	ctx := context.Background()

	same := m.get("user_0001")
	same.FirstName = new("Eve") // updated_at kept
	m.set(same)
	late := m.get("user_0003")
	late.FirstName, late.UpdatedAt = new("Bob"), late.UpdatedAt+1 // far below the watermark
	m.set(late)
	m.remove("user_0002")
	m.set(clerk.User{ID: "user_import", CreatedAt: at(1000), UpdatedAt: at(1000)}) // keeps the count

	for range 7 { // 350 s: short of the 6 minutes (6 × MaxAge) of the default interval
		clk.Add(50 * time.Second)
		if err := o.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if got := rec.take(); len(got) != 0 {
			t.Fatalf("a change poll reported %v", got)
		}
	}
	clk.Add(10 * time.Second)
	l0, c0 := m.calls()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"user_0001", "user_0002", "user_0003"}}, rec.take()); diff != "" {
		t.Errorf("the full read reported (-want +got):\n%s", diff)
	}
	if l, c := m.calls(); l-l0 != 2 || c-c0 != 1 {
		t.Fatalf("poll with a full read of 3 users: %d lists and %d counts; want the change poll's list and count and 1 batch", l-l0, c-c0)
	}
	if p := m.listAt(l0 + 1); len(p.UserIDs) != 3 {
		t.Errorf("the full read asked for %v, want the 3 cached users", p.UserIDs)
	}

	l0, _ = m.calls()
	if u, err := o.Observe(ctx, "user_0001", time.Time{}); err != nil || deref(u.FirstName) != "Eve" {
		t.Errorf("Observe(user_0001): %+v, %v; want the full read's observation", u, err)
	}
	if u, err := o.Observe(ctx, "user_0003", time.Time{}); err != nil || deref(u.FirstName) != "Bob" {
		t.Errorf("Observe(user_0003): %+v, %v; want the full read's observation", u, err)
	}
	if l, _ := m.calls(); l != l0 {
		t.Errorf("the full read's observations were read again: %d reads", l-l0)
	}
	if _, err := o.Observe(ctx, "user_0002", time.Time{}); !clerk.IsNotFound(err) {
		t.Errorf("Observe(user_0002): %v, want not found", err)
	}

	// The next full read is due FullReadInterval later.
	clk.Add(50 * time.Second)
	l0, _ = m.calls()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := m.calls(); l-l0 != 1 {
		t.Errorf("the poll after a full read: %d lists, want 1", l-l0)
	}
}

// TestBatchFullReadListsEveryUserWhenThatIsCheaper: with most of the instance cached, the full
// read lists every user, 500 a page, instead of reading batches.
func TestBatchFullReadListsEveryUserWhenThatIsCheaper(t *testing.T) {
	m := newMemClerk(600)
	clk := &clock{t: time.Unix(1000, 0)}
	o, rec := polledObserver(t, m, clk, userIDs(600))
	o.FullReadInterval = time.Minute
	same := m.get("user_0001")
	same.FirstName = new("Eve")
	m.set(same)
	m.remove("user_0002")
	m.set(clerk.User{ID: "user_import", CreatedAt: at(1000), UpdatedAt: at(1000)}) // keeps the count

	clk.Add(time.Minute)
	l0, _ := m.calls()
	if err := o.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"user_0001", "user_0002"}}, rec.take()); diff != "" {
		t.Errorf("the full read reported (-want +got):\n%s", diff)
	}
	if l, _ := m.calls(); l-l0 != 3 {
		t.Errorf("poll with a full read of 600 users: %d lists, want the change poll's and 2 pages (not 6 batches)", l-l0)
	}
}

// TestBatchPollSeesALockoutLiftedOnItsPage: a poll page that holds a cached user is a read of
// it: a lockout lifted without a new updated_at is taken in and reported.
func TestBatchPollSeesALockoutLiftedOnItsPage(t *testing.T) {
	m := newMemClerk(2)
	locked := clerk.User{ID: "user_0001", Locked: true, LockoutExpiresInSeconds: new(int64(600)), CreatedAt: at(1000), UpdatedAt: at(1001)}
	m.set(locked)
	clk := &clock{t: time.Unix(1000, 0)}
	o, rec := polledObserver(t, m, clk, []string{"user_0001"})
	clk.Add(time.Second)
	unlocked := locked
	unlocked.Locked, unlocked.LockoutExpiresInSeconds = false, nil // updated_at kept
	m.set(unlocked)
	if err := o.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"user_0001"}}, rec.take()); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}
	l0, _ := m.calls()
	if u, err := o.Observe(context.Background(), "user_0001", clk.Now()); err != nil || u.Locked {
		t.Errorf("Observe: %+v, %v; want the page's observation, unlocked", u, err)
	}
	if l, _ := m.calls(); l != l0 {
		t.Errorf("the page's observation was read again")
	}
}
