package controller

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// memClerk is an in-memory user list that records every call, for the batching logic.
type memClerk struct {
	mu     sync.Mutex
	users  map[string]clerk.User
	lists  []clerk.ListUsersParams
	counts int
	fail   error
	// before, when set, runs at the start of every ListUsers call, without the lock.
	before func(p clerk.ListUsersParams)
}

func newMemClerk(n int) *memClerk {
	m := &memClerk{users: map[string]clerk.User{}}
	for i := range n {
		id := fmt.Sprintf("user_%04d", i)
		m.users[id] = clerk.User{ID: id, CreatedAt: 1000, UpdatedAt: int64(1000 + i)}
	}
	return m
}

func (m *memClerk) ListUsers(_ context.Context, p clerk.ListUsersParams) ([]clerk.User, error) {
	if m.before != nil {
		m.before(p)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lists = append(m.lists, p)
	if m.fail != nil {
		return nil, m.fail
	}
	var out []clerk.User
	if len(p.UserIDs) > 0 {
		for _, id := range p.UserIDs {
			if u, ok := m.users[id]; ok {
				out = append(out, u)
			}
		}
		return out, nil
	}
	for _, u := range m.users {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b clerk.User) int { return int(b.UpdatedAt - a.UpdatedAt) })
	out = out[min(p.Offset, len(out)):]
	return out[:min(p.Limit, len(out))], nil
}

func (m *memClerk) CountUsers(context.Context, clerk.ListUsersParams) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts++
	return int64(len(m.users)), m.fail
}

func (m *memClerk) set(u clerk.User) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[u.ID] = u
}

func (m *memClerk) calls() (lists, counts int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.lists), m.counts
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startObserver runs o's batching loop (not its poll loop) until the test ends, as after a
// first poll.
func startObserver(t *testing.T, o *BatchObserver) {
	t.Helper()
	o.init()
	o.polled, o.readsOpen = true, true // the tests drive Poll themselves
	startReads(t, o)
}

// startReads runs o's batching loop until the test ends; reads wait for a first poll.
func startReads(t *testing.T, o *BatchObserver) {
	t.Helper()
	o.init()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-o.kick:
			}
			for ids := o.takeBatch(); len(ids) > 0; ids = o.takeBatch() {
				o.read(ctx, ids)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// observeAll observes ids concurrently, as many reconciles at once would.
func observeAll(t *testing.T, o *BatchObserver, ids []string) map[string]error {
	t.Helper()
	var mu sync.Mutex
	errs := map[string]error{}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			u, err := o.Observe(ctx, id)
			if err == nil && u.ID != id {
				err = fmt.Errorf("asked for %s, got %s", id, u.ID)
			}
			mu.Lock()
			errs[id] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return errs
}

func TestBatchObserverReadsInBatches(t *testing.T) {
	m := newMemClerk(250)
	o := &BatchObserver{Clerk: m, MaxAge: time.Minute}
	startObserver(t, o)
	ids := make([]string, 0, 250)
	for id := range m.users {
		ids = append(ids, id)
	}
	// A start: every bound user queued at once, as the first poll queues Managed's IDs.
	o.mu.Lock()
	o.queue(ids)
	o.mu.Unlock()
	for id, err := range observeAll(t, o, ids) {
		if err != nil {
			t.Fatalf("Observe(%s): %v", id, err)
		}
	}
	lists, _ := m.calls()
	if lists != 3 {
		t.Errorf("250 users took %d list calls, want ceil(250/100) = 3", lists)
	}
	for i, p := range m.lists {
		if len(p.UserIDs) > clerk.MaxFilterValues || p.Limit != clerk.MaxFilterValues {
			t.Errorf("call %d asked for %d IDs with limit %d", i, len(p.UserIDs), p.Limit)
		}
	}

	// Cached and fresh: no more calls.
	observeAll(t, o, ids)
	if lists2, _ := m.calls(); lists2 != lists {
		t.Errorf("fresh observations cost %d more calls", lists2-lists)
	}
}

func TestBatchObserverExpiryAndNotFound(t *testing.T) {
	m := newMemClerk(2)
	clk := &clock{t: time.Unix(1000, 0)}
	o := &BatchObserver{Clerk: m, MaxAge: time.Minute, Now: clk.Now}
	startObserver(t, o)
	ctx := context.Background()

	if _, err := o.Observe(ctx, "user_0000"); err != nil {
		t.Fatal(err)
	}
	clk.Add(59 * time.Second)
	if _, err := o.Observe(ctx, "user_0000"); err != nil {
		t.Fatal(err)
	}
	if lists, _ := m.calls(); lists != 1 {
		t.Fatalf("a 59 s old observation was read again: %d calls", lists)
	}
	clk.Add(2 * time.Second)
	if _, err := o.Observe(ctx, "user_0000"); err != nil {
		t.Fatal(err)
	}
	if lists, _ := m.calls(); lists != 2 {
		t.Fatalf("an observation older than MaxAge was trusted: %d calls", lists)
	}

	_, err := o.Observe(ctx, "user_gone")
	if !clerk.IsNotFound(err) {
		t.Fatalf("a user the batch did not return: got %v, want a not-found error", err)
	}

	m.mu.Lock()
	m.fail = &clerk.APIError{StatusCode: 503}
	m.mu.Unlock()
	clk.Add(2 * time.Minute)
	if _, err := o.Observe(ctx, "user_0001"); !clerk.IsUnavailable(err) {
		t.Fatalf("a failed batch: got %v, want the Clerk error", err)
	}
}

func TestBatchObserverRememberKeepsWritesFresh(t *testing.T) {
	m := newMemClerk(1)
	o := &BatchObserver{Clerk: m, MaxAge: time.Minute}
	startObserver(t, o)
	ctx := context.Background()
	if _, err := o.Observe(ctx, "user_0000"); err != nil {
		t.Fatal(err)
	}
	banned := clerk.User{ID: "user_0000", Banned: true, CreatedAt: 1000, UpdatedAt: 9000}
	m.set(banned)
	o.Remember(&banned)
	u, err := o.Observe(ctx, "user_0000")
	if err != nil {
		t.Fatal(err)
	}
	if !u.Banned {
		t.Error("a write's answer was not remembered: the next reconcile would ban again")
	}
	if lists, _ := m.calls(); lists != 1 {
		t.Errorf("%d list calls, want 1", lists)
	}
}

func TestBatchObserverPoll(t *testing.T) {
	m := newMemClerk(300)
	clk := &clock{t: time.Unix(1000, 0)}
	var changed [][]string
	o := &BatchObserver{Clerk: m, MaxAge: time.Minute, Now: clk.Now,
		Changed: func(_ context.Context, ids []string) { slices.Sort(ids); changed = append(changed, ids) }}
	ctx := context.Background()

	// First poll: learns the watermark and count with one small list and one count.
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if lists, counts := m.calls(); lists != 1 || counts != 1 || m.lists[0].Limit != 1 {
		t.Fatalf("first poll: %d lists (limit %d), %d counts; want 1 list of 1 and 1 count", lists, m.lists[0].Limit, counts)
	}
	startObserver(t, o)
	for _, id := range []string{"user_0001", "user_0002"} {
		if _, err := o.Observe(ctx, id); err != nil {
			t.Fatal(err)
		}
	}

	// Idle: one list and one count; cached observations become current as of the poll.
	clk.Add(50 * time.Second)
	l0, c0 := m.calls()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if l, c := m.calls(); l-l0 != 1 || c-c0 != 1 {
		t.Errorf("idle poll: %d lists, %d counts; want 1 and 1", l-l0, c-c0)
	}
	clk.Add(50 * time.Second) // 100 s after the read, 50 s after the poll: still trusted
	l0, _ = m.calls()
	if _, err := o.Observe(ctx, "user_0001"); err != nil {
		t.Fatal(err)
	}
	if l, _ := m.calls(); l != l0 {
		t.Error("an observation the poll confirmed was read again")
	}
	if len(changed) != 0 {
		t.Errorf("idle poll reported changes: %v", changed)
	}

	// Out-of-band changes: a managed user, an unmanaged one, and 150 more so the poll pages.
	m.set(clerk.User{ID: "user_0001", FirstName: new("Eve"), CreatedAt: 1000, UpdatedAt: 5000})
	for i := 100; i < 250; i++ {
		id := fmt.Sprintf("user_%04d", i)
		m.set(clerk.User{ID: id, CreatedAt: 1000, UpdatedAt: int64(4000 + i)})
	}
	l0, c0 = m.calls()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if l, c := m.calls(); l-l0 != 2 || c-c0 != 1 {
		t.Errorf("poll of 151 changes: %d lists, %d counts; want 2 pages and 1 count", l-l0, c-c0)
	}
	if diff := cmp.Diff([][]string{{"user_0001"}}, changed); diff != "" {
		t.Errorf("changed users reported (-want +got):\n%s", diff)
	}
	u, err := o.Observe(ctx, "user_0001")
	if err != nil || deref(u.FirstName) != "Eve" {
		t.Errorf("the poll did not refresh the cached user: %+v, %v", u, err)
	}

	// A change that only moves timestamps (a sign-in, or kubeclerk's own DisableMFA whose answer
	// has no updated_at) refreshes the cache without a reconcile.
	changed = nil
	signedIn := int64(7000)
	m.set(clerk.User{ID: "user_0002", CreatedAt: 1000, UpdatedAt: 6000, LastSignInAt: &signedIn})
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(changed) != 0 {
		t.Errorf("a timestamp-only change was reported: %v", changed)
	}
	if u, err := o.Observe(ctx, "user_0002"); err != nil || u.UpdatedAt != 6000 {
		t.Errorf("the cache was not refreshed: %+v, %v", u, err)
	}

	// A deletion: the count drops; every cached user is reported and read again.
	changed = nil
	m.mu.Lock()
	delete(m.users, "user_0002")
	m.mu.Unlock()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"user_0001", "user_0002"}}, changed); diff != "" {
		t.Errorf("after a deletion (-want +got):\n%s", diff)
	}
	if _, err := o.Observe(ctx, "user_0002"); !clerk.IsNotFound(err) {
		t.Errorf("deleted user: got %v, want not found", err)
	}

	// A deletion kubeclerk made itself is no reason to read everything again.
	changed = nil
	m.mu.Lock()
	delete(m.users, "user_0001")
	m.mu.Unlock()
	o.Deleted("user_0001")
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(changed) != 0 {
		t.Errorf("kubeclerk's own deletion was taken for an outside one: %v", changed)
	}

	// A creation alone is no deletion.
	changed = nil
	m.set(clerk.User{ID: "user_new", CreatedAt: 9000, UpdatedAt: 9000})
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(changed) != 0 {
		t.Errorf("a new unmanaged user was reported: %v", changed)
	}
}

// userIDs returns the IDs of memClerk's first n users.
func userIDs(n int) []string {
	ids := make([]string, 0, n)
	for i := range n {
		ids = append(ids, fmt.Sprintf("user_%04d", i))
	}
	return ids
}

// waitWaiting polls until n reconciles wait for an observation.
func waitWaiting(t *testing.T, o *BatchObserver, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		o.mu.Lock()
		got := 0
		for _, w := range o.waiting {
			got += len(w)
		}
		o.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reconciles wait for an observation, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// observeInBackground observes ids as reconciles that started before the first poll would,
// and returns a function that waits for their results.
func observeInBackground(t *testing.T, o *BatchObserver, ids []string) func() map[string]error {
	t.Helper()
	var errs map[string]error
	done := make(chan struct{})
	go func() {
		defer close(done)
		errs = observeAll(t, o, ids)
	}()
	waitWaiting(t, o, len(ids))
	return func() map[string]error { <-done; return errs }
}

func TestBatchObserverStartListsEveryUserWhenThatIsCheaper(t *testing.T) {
	m := newMemClerk(1200)
	managed := userIDs(1000)
	var changed [][]string
	o := &BatchObserver{Clerk: m, MaxAge: time.Minute,
		Managed: func(context.Context) ([]string, error) { return managed, nil },
		Changed: func(_ context.Context, ids []string) { changed = append(changed, ids) }}
	startReads(t, o)
	results := observeInBackground(t, o, managed[:300])
	ctx := context.Background()

	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	for id, err := range results() {
		if err != nil {
			t.Fatalf("Observe(%s) waiting for the first poll: %v", id, err)
		}
	}
	for id, err := range observeAll(t, o, managed) {
		if err != nil {
			t.Fatalf("Observe(%s): %v", id, err)
		}
	}
	lists, counts := m.calls()
	if counts != 1 || lists != 3 {
		t.Fatalf("start with 1,000 of 1,200 users managed: %d lists and %d counts, want ceil(1200/500) = 3 and 1", lists, counts)
	}
	for i, p := range m.lists {
		if p.OrderBy != "-updated_at" || p.Limit != clerk.MaxListLimit || p.Offset != i*clerk.MaxListLimit || len(p.UserIDs) > 0 {
			t.Errorf("list %d: %+v, want every user, newest first, 500 a page", i, p)
		}
	}

	// The listing's first page set the watermark: the next poll finds a later change.
	m.set(clerk.User{ID: "user_0005", FirstName: new("Eve"), CreatedAt: 1000, UpdatedAt: 9000})
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"user_0005"}}, changed); diff != "" {
		t.Errorf("changed users after the start (-want +got):\n%s", diff)
	}
	if l, _ := m.calls(); l != lists+1 {
		t.Errorf("poll after the start: %d lists, want 1", l-lists)
	}
}

func TestBatchObserverWritesDuringTheStartListingStayTracked(t *testing.T) {
	m := newMemClerk(1200)
	clk := &clock{t: time.Unix(1000, 0)}
	o := &BatchObserver{Clerk: m, MaxAge: time.Minute, Now: clk.Now,
		Managed: func(context.Context) ([]string, error) { return userIDs(1200), nil }}
	// A reconcile answered by the first page bans its user while the second page is listed.
	banned := clerk.User{ID: "user_1100", Banned: true, CreatedAt: 1000, UpdatedAt: 9000}
	m.before = func(p clerk.ListUsersParams) {
		if p.Offset == clerk.MaxListLimit {
			m.set(banned)
			o.Remember(&banned)
		}
	}
	startReads(t, o)
	ctx := context.Background()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	m.before = nil
	clk.Add(50 * time.Second)
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(20 * time.Second) // 70 s after the write, 20 s after a poll that saw it
	l0, _ := m.calls()
	u, err := o.Observe(ctx, "user_1100")
	if err != nil || !u.Banned {
		t.Fatalf("Observe: %+v, %v", u, err)
	}
	if l, _ := m.calls(); l != l0 {
		t.Error("a write made during the start's listing was read again: the poll did not vouch for it")
	}
}

func TestBatchObserverStartReadsFewUsersInBatches(t *testing.T) {
	m := newMemClerk(1200)
	managed := userIDs(150)
	o := &BatchObserver{Clerk: m, MaxAge: time.Minute,
		Managed: func(context.Context) ([]string, error) { return managed, nil }}
	startReads(t, o)
	if err := o.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, err := range observeAll(t, o, managed) {
		if err != nil {
			t.Fatalf("Observe(%s): %v", id, err)
		}
	}
	lists, counts := m.calls()
	if counts != 1 || lists != 3 {
		t.Fatalf("start with 150 of 1,200 users managed: %d lists and %d counts, want 1 count, 1 list for the watermark and ceil(150/100) = 2 batches", lists, counts)
	}
	if p := m.lists[0]; p.Limit != 1 || len(p.UserIDs) > 0 {
		t.Errorf("first list: %+v, want the newest user only", p)
	}
	if n := len(m.lists[1].UserIDs) + len(m.lists[2].UserIDs); n != 150 {
		t.Errorf("the batches asked for %d IDs, want 150", n)
	}
}

func TestBatchObserverStartReadsWhatTheListingMissed(t *testing.T) {
	m := newMemClerk(1200)
	managed := userIDs(1200)
	o := &BatchObserver{Clerk: m, MaxAge: time.Minute,
		Managed: func(context.Context) ([]string, error) { return managed, nil }}
	// user_1199 (the newest) is deleted between the first and the second page, so every later
	// user moves up one place and user_0699 falls between the pages.
	m.before = func(p clerk.ListUsersParams) {
		if p.Offset == clerk.MaxListLimit {
			m.mu.Lock()
			delete(m.users, "user_1199")
			m.mu.Unlock()
		}
	}
	startReads(t, o)
	if err := o.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	u, err := o.Observe(context.Background(), "user_0699")
	if err != nil || u.ID != "user_0699" {
		t.Fatalf("Observe(user_0699): %+v, %v", u, err)
	}
	lists, _ := m.calls()
	if lists != 4 {
		t.Fatalf("%d lists, want 3 pages and 1 batch read", lists)
	}
	if diff := cmp.Diff([]string{"user_0699"}, m.lists[3].UserIDs); diff != "" {
		t.Errorf("batch read after the listing (-want +got):\n%s", diff)
	}
}

func TestBatchObserverKeepsTheNewerState(t *testing.T) {
	m := newMemClerk(1)
	o := &BatchObserver{Clerk: m, MaxAge: time.Minute}
	// A write's answer arrives while a batch read of the older state is in flight.
	banned := clerk.User{ID: "user_0000", Banned: true, CreatedAt: 1000, UpdatedAt: 9000}
	m.before = func(clerk.ListUsersParams) { o.Remember(&banned) }
	startObserver(t, o)
	u, err := o.Observe(context.Background(), "user_0000")
	if err != nil {
		t.Fatal(err)
	}
	if !u.Banned || u.UpdatedAt != 9000 {
		t.Errorf("an older read replaced a write's answer: %+v; the next reconcile would ban again", u)
	}
}

func TestBatchObserverPollVouchesOnlyForObservationsAfterTheWatermark(t *testing.T) {
	m := newMemClerk(2)
	clk := &clock{t: time.Unix(1000, 0)}
	o := &BatchObserver{Clerk: m, MaxAge: time.Minute, Now: clk.Now}
	o.init()
	o.readsOpen = true // a read before the first poll, as when the first poll failed
	startReads(t, o)
	ctx := context.Background()
	if _, err := o.Observe(ctx, "user_0000"); err != nil {
		t.Fatal(err)
	}
	// Changed before the first poll: its updated_at is below the watermark, so no poll sees it.
	m.set(clerk.User{ID: "user_0000", FirstName: new("Eve"), CreatedAt: 1000, UpdatedAt: 5000})
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(50 * time.Second)
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(20 * time.Second)
	u, err := o.Observe(ctx, "user_0000")
	if err != nil || deref(u.FirstName) != "Eve" {
		t.Errorf("an observation older than MaxAge that no poll could vouch for was trusted: %+v, %v", u, err)
	}
}

// polledObserver returns an observer of m after its first poll, with its batch reads running
// and ids observed, and where it records the IDs it reports changed.
func polledObserver(t *testing.T, m *memClerk, ids []string) (*BatchObserver, *[][]string) {
	t.Helper()
	changed := &[][]string{}
	o := &BatchObserver{Clerk: m, MaxAge: time.Minute,
		Changed: func(_ context.Context, ids []string) { *changed = append(*changed, ids) }}
	if err := o.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	startReads(t, o)
	for id, err := range observeAll(t, o, ids) {
		if err != nil {
			t.Fatalf("Observe(%s): %v", id, err)
		}
	}
	return o, changed
}

func TestBatchObserverDeletionListsEveryUserWhenThatIsCheaper(t *testing.T) {
	m := newMemClerk(300)
	o, changed := polledObserver(t, m, userIDs(300))
	ctx := context.Background()

	m.mu.Lock()
	delete(m.users, "user_0007")
	m.mu.Unlock()
	l0, c0 := m.calls()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if l, c := m.calls(); l-l0 != 2 || c-c0 != 1 {
		t.Errorf("poll after a deletion: %d lists, %d counts; want the changes, one listing of all 299 users, and 1 count", l-l0, c-c0)
	}
	if diff := cmp.Diff([][]string{{"user_0007"}}, *changed); diff != "" {
		t.Errorf("after a deletion, only the deleted user is reported (-want +got):\n%s", diff)
	}
	l0, _ = m.calls()
	if _, err := o.Observe(ctx, "user_0007"); !clerk.IsNotFound(err) {
		t.Errorf("deleted user: got %v, want not found", err)
	}
	if _, err := o.Observe(ctx, "user_0008"); err != nil {
		t.Fatal(err)
	}
	if l, _ := m.calls(); l-l0 != 1 {
		t.Errorf("%d reads after the deletion's listing, want 1 (the deleted user)", l-l0)
	}
}

func TestBatchObserverPollFailingPartWayReportsWhatItRefreshed(t *testing.T) {
	m := newMemClerk(300)
	o, changed := polledObserver(t, m, []string{"user_0001", "user_0002"})
	ctx := context.Background()

	// 150 changes, so the poll needs a second page; user_0001 is on the first, user_0002 on
	// the second, which fails.
	for i := 100; i < 250; i++ {
		m.set(clerk.User{ID: fmt.Sprintf("user_%04d", i), CreatedAt: 1000, UpdatedAt: int64(4000 + i)})
	}
	m.set(clerk.User{ID: "user_0001", FirstName: new("Eve"), CreatedAt: 1000, UpdatedAt: 9000})
	m.set(clerk.User{ID: "user_0002", FirstName: new("Bob"), CreatedAt: 1000, UpdatedAt: 4000})
	m.before = func(p clerk.ListUsersParams) {
		if p.Offset > 0 {
			m.mu.Lock()
			m.fail = &clerk.APIError{StatusCode: 503}
			m.mu.Unlock()
		}
	}
	if err := o.Poll(ctx); !clerk.IsUnavailable(err) {
		t.Fatalf("poll with a failing second page: got %v, want the Clerk error", err)
	}
	if diff := cmp.Diff([][]string{{"user_0001"}}, *changed); diff != "" {
		t.Errorf("a refreshed user must be reported even when a later page fails (-want +got):\n%s", diff)
	}

	// The watermark stayed: the next poll lists the changes again and finds user_0002.
	m.before = nil
	m.mu.Lock()
	m.fail = nil
	m.mu.Unlock()
	*changed = nil
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"user_0002"}}, *changed); diff != "" {
		t.Errorf("the poll after the failure (-want +got):\n%s", diff)
	}
}

func TestSweepPays(t *testing.T) {
	for _, c := range []struct {
		users     int64
		n, extra  int
		want      bool
		situation string
	}{
		{1003, 1000, 1, true, "kubeclerk manages most of the instance: 3 pages against 11 calls"},
		{1200, 150, 1, false, "3 pages against 2 batches and the watermark's list"},
		{1000, 150, 1, true, "2 pages against 2 batches and the watermark's list"},
		{1000, 150, 0, false, "2 pages against 2 batches"},
		{100000, 10000, 1, false, "200 pages against 101 calls"},
		{0, 1, 1, true, "an empty instance: one empty page against a batch and the watermark's list"},
		{0, 1, 0, false, "an empty instance: one empty page against one batch"},
		{500, 0, 1, false, "nothing to read"},
	} {
		if got := sweepPays(c.users, c.n, c.extra); got != c.want {
			t.Errorf("sweepPays(%d users, %d to read, %d extra) = %v, want %v: %s", c.users, c.n, c.extra, got, c.want, c.situation)
		}
	}
}
