package observe

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// at turns a timestamp of these tests into Unix ms: the tests count in units of 10 s, so that
// users stored one unit apart are further apart than the change poll's overlap.
func at(units int64) int64 { return units * 10_000 }

// memClerk is an in-memory user list that records every call, for the batching logic.
type memClerk struct {
	mu     sync.Mutex
	users  map[string]clerk.User
	lists  []clerk.ListUsersParams
	counts []clerk.ListUsersParams
	fail   error
	// before, when set, runs at the start of every ListUsers call, without the lock.
	before func(p clerk.ListUsersParams)
	// after, when set, runs once a ListUsers call's answer is computed, before it returns,
	// without the lock.
	after func(p clerk.ListUsersParams)
	// busy is the number of calls in progress.
	busy int
}

// newMemClerk returns n users, user_0000 … user_<n-1>, all created at at(1000), user i last
// updated at at(1000+i).
func newMemClerk(n int) *memClerk {
	m := &memClerk{users: map[string]clerk.User{}}
	for i := range n {
		id := fmt.Sprintf("user_%04d", i)
		m.users[id] = clerk.User{ID: id, CreatedAt: at(1000), UpdatedAt: at(int64(1000 + i))}
	}
	return m
}

func (m *memClerk) hooks() (before, after func(clerk.ListUsersParams)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.before, m.after
}

func (m *memClerk) setHooks(before, after func(clerk.ListUsersParams)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.before, m.after = before, after
}

func (m *memClerk) ListUsers(_ context.Context, p clerk.ListUsersParams) ([]clerk.User, error) {
	before, after := m.hooks()
	m.mu.Lock()
	m.busy++
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.busy--
		m.mu.Unlock()
	}()
	if before != nil {
		before(p)
	}
	out, err := m.list(p)
	if after != nil {
		after(p)
	}
	return out, err
}

func (m *memClerk) list(p clerk.ListUsersParams) ([]clerk.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lists = append(m.lists, p)
	if m.fail != nil {
		return nil, m.fail
	}
	var out []clerk.User
	if len(p.UserIDs) > 0 {
		for _, id := range p.UserIDs {
			if u, ok := m.users[id]; ok && (p.CreatedBefore == 0 || u.CreatedAt < p.CreatedBefore) {
				out = append(out, u)
			}
		}
		return out, nil
	}
	for _, u := range m.users {
		if p.CreatedBefore == 0 || u.CreatedAt < p.CreatedBefore {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b clerk.User) int {
		return cmp.Or(cmp.Compare(b.UpdatedAt, a.UpdatedAt), cmp.Compare(a.ID, b.ID))
	})
	out = out[min(p.Offset, len(out)):]
	return out[:min(p.Limit, len(out))], nil
}

func (m *memClerk) CountUsers(_ context.Context, p clerk.ListUsersParams) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts = append(m.counts, p)
	if m.fail != nil {
		return 0, m.fail
	}
	var n int64
	for _, u := range m.users {
		if p.CreatedBefore == 0 || u.CreatedAt < p.CreatedBefore {
			n++
		}
	}
	return n, nil
}

func (m *memClerk) set(u clerk.User) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[u.ID] = u
}

func (m *memClerk) remove(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.users, id)
}

func (m *memClerk) get(id string) clerk.User {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.users[id]
}

func (m *memClerk) setFail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

func (m *memClerk) calls() (lists, counts int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.lists), len(m.counts)
}

func (m *memClerk) listAt(i int) clerk.ListUsersParams {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lists[i]
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

// recorder records what an observer reports through Changed.
type recorder struct {
	mu  sync.Mutex
	ids [][]string
}

func (r *recorder) changed(_ context.Context, ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, slices.Clone(ids))
}

// take returns what was reported since the last take.
func (r *recorder) take() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := r.ids
	r.ids = nil
	return ids
}

// startObserver runs o's batching loop (not its poll loop) until the test ends, as after a
// first poll.
func startObserver(t *testing.T, o *Batch) {
	t.Helper()
	o.init()
	o.mu.Lock()
	o.polled, o.readsOpen, o.lastFull = true, true, o.now() // the tests drive Poll themselves
	o.mu.Unlock()
	startReads(t, o)
}

// startReads runs o's batch reads one at a time until the test ends; reads wait for a first
// poll.
func startReads(t *testing.T, o *Batch) {
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
func observeAll(t *testing.T, o *Batch, ids []string) map[string]error {
	t.Helper()
	var mu sync.Mutex
	errs := map[string]error{}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			u, err := o.Observe(ctx, id, time.Time{})
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

// userIDs returns the IDs of memClerk's first n users.
func userIDs(n int) []string {
	ids := make([]string, 0, n)
	for i := range n {
		ids = append(ids, fmt.Sprintf("user_%04d", i))
	}
	return ids
}

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitWaiting polls until n reconciles wait for an observation.
func waitWaiting(t *testing.T, o *Batch, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d reconciles wait for an observation", n), func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		got := 0
		for _, w := range o.waiting {
			got += len(w)
		}
		return got == n
	})
}

// observeInBackground observes ids as reconciles that started before the first poll would,
// and returns a function that waits for their results.
func observeInBackground(t *testing.T, o *Batch, ids []string) func() map[string]error {
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

// result is what an Observe returned.
type result struct {
	user *clerk.User
	err  error
}

// observeAsync runs one Observe in the background; its result arrives on the channel.
func observeAsync(o *Batch, id string, notBefore time.Time) <-chan result {
	ch := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		u, err := o.Observe(ctx, id, notBefore)
		ch <- result{u, err}
	}()
	return ch
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
