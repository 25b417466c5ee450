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

// startObserver runs o's batching loop (not its poll loop) until the test ends.
func startObserver(t *testing.T, o *BatchObserver) {
	t.Helper()
	o.init()
	o.polled = true // the tests drive Poll themselves
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
	o.Prefetch(ids) // a start: every bound user at once
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

//go:fix inline
