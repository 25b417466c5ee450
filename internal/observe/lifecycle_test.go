package observe

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// TestBatchStartJoinsItsGoroutines: when Start returns, the poll loop, the batch reads and the
// lockout timer have ended, even with Clerk calls in flight at the cancel.
func TestBatchStartJoinsItsGoroutines(t *testing.T) {
	m := newMemClerk(10)
	m.set(clerk.User{ID: "user_locked", Locked: true, LockoutExpiresInSeconds: new(int64(600)), CreatedAt: at(1), UpdatedAt: at(1)})
	o := &Batch{Clerk: m, MaxAge: time.Minute, PollInterval: time.Millisecond, Window: time.Millisecond}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	var hold atomic.Bool
	pollIn, readIn := make(chan struct{}, 1), make(chan struct{}, 1)
	m.setHooks(func(p clerk.ListUsersParams) {
		if !hold.Load() {
			return
		}
		in := pollIn
		if len(p.UserIDs) > 0 {
			in = readIn
		}
		select {
		case in <- struct{}{}:
		default:
		}
		<-ctx.Done()
		// Clerk answers a moment after the cancel, as a request in flight does.
		<-time.After(20 * time.Millisecond)
	}, nil)
	stopped := make(chan error, 1)
	go func() { stopped <- o.Start(ctx) }()

	// A locked user is cached (its lockout end is scheduled); then a read and a poll are held
	// in flight.
	if r := <-observeAsync(o, "user_locked", time.Time{}); r.err != nil {
		t.Fatal(r.err)
	}
	hold.Store(true)
	read := observeAsync(o, "user_0001", time.Time{})
	<-readIn
	<-pollIn
	cancel()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after its context ended")
	}
	m.mu.Lock()
	busy := m.busy
	m.mu.Unlock()
	if busy != 0 {
		t.Errorf("%d Clerk calls still in flight when Start returned: a goroutine it started outlived it", busy)
	}
	<-read // answered by the read that was in flight
	eventually(t, fmt.Sprintf("the goroutines are back to %d", before), func() bool { return runtime.NumGoroutine() <= before })
}

// TestBatchIsSafeForConcurrentUse: polls run one at a time, whoever calls them, and every
// exported method may be called concurrently (run with -race).
func TestBatchIsSafeForConcurrentUse(t *testing.T) {
	m := newMemClerk(300)
	clk := &clock{t: time.Unix(1000, 0)}
	o := &Batch{Clerk: m, MaxAge: time.Minute, PollInterval: time.Millisecond, Window: time.Millisecond, Now: clk.Now,
		Changed: func(context.Context, []string) {}}
	var polling, most atomic.Int32
	m.setHooks(func(p clerk.ListUsersParams) {
		if p.OrderBy != "" {
			n := polling.Add(1)
			for cur := most.Load(); n > cur && !most.CompareAndSwap(cur, n); cur = most.Load() {
			}
			runtime.Gosched()
		}
	}, func(p clerk.ListUsersParams) {
		if p.OrderBy != "" {
			polling.Add(-1)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- o.Start(ctx) }()

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5 {
				id := fmt.Sprintf("user_%04d", (g*5+i)%300)
				if err := o.Poll(ctx); err != nil {
					t.Error(err)
				}
				clk.Add(time.Second)
				m.set(clerk.User{ID: id, CreatedAt: at(1000), UpdatedAt: at(int64(5000 + g*5 + i))})
				u, err := o.Observe(ctx, id, clk.Now())
				if err != nil {
					t.Error(err)
					continue
				}
				u.Banned = true
				o.Remember(u)
				o.Forget(id, i%2 == 0)
			}
		})
	}
	wg.Wait()
	cancel()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if n := most.Load(); n != 1 {
		t.Errorf("%d polls listed at once, want 1", n)
	}
}

// TestBatchForget: an object deleted (with Orphan, or while Observe) leaves nothing behind:
// not its observation, not its prefetch, not the answer of a read in flight; a deletion by
// kubeclerk is counted as its own.
func TestBatchForget(t *testing.T) {
	m := newMemClerk(3)
	o := &Batch{Clerk: m, MaxAge: time.Minute}
	startObserver(t, o)
	ctx := context.Background()
	cached := func(id string) bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		_, ok := o.cache[id]
		return ok
	}
	queued := func(id string) bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		_, ok := o.waiting[id]
		return ok
	}

	t.Run("a cached observation", func(t *testing.T) {
		if _, err := o.Observe(ctx, "user_0000", time.Time{}); err != nil {
			t.Fatal(err)
		}
		o.Forget("user_0000", false)
		if cached("user_0000") {
			t.Error("the observation stayed")
		}
	})

	t.Run("a prefetch", func(t *testing.T) {
		o.mu.Lock()
		o.readsOpen = false // hold the reads, as before a first poll
		o.queue([]string{"user_0001"}, o.now())
		o.mu.Unlock()
		o.Forget("user_0001", false)
		if queued("user_0001") {
			t.Error("the prefetch stayed queued")
		}
		o.mu.Lock()
		o.readsOpen = true
		o.mu.Unlock()
	})

	t.Run("a prefetch read in flight", func(t *testing.T) {
		forgotten := make(chan struct{})
		m.setHooks(func(p clerk.ListUsersParams) {
			if slices.Contains(p.UserIDs, "user_0002") {
				o.Forget("user_0002", false)
				close(forgotten)
			}
		}, nil)
		defer m.setHooks(nil, nil)
		o.mu.Lock()
		o.queue([]string{"user_0002"}, o.now())
		o.mu.Unlock()
		signal(o.kick)
		select {
		case <-forgotten:
		case <-time.After(10 * time.Second):
			t.Fatal("user_0002 was not read")
		}
		eventually(t, "the read ended", func() bool {
			o.mu.Lock()
			defer o.mu.Unlock()
			return len(o.reading) == 0
		})
		if cached("user_0002") || queued("user_0002") {
			t.Error("the answer of a read in flight was cached after Forget")
		}
	})

	t.Run("a deletion by kubeclerk", func(t *testing.T) {
		if _, err := o.Observe(ctx, "user_0000", time.Time{}); err != nil {
			t.Fatal(err)
		}
		o.Forget("user_0000", true)
		o.mu.Lock()
		own := o.ownDeletes
		o.mu.Unlock()
		if diff := cmp.Diff([]ownDeletion{{id: "user_0000", createdAt: at(1000)}}, own, cmp.AllowUnexported(ownDeletion{})); diff != "" {
			t.Errorf("own deletions (-want +got):\n%s", diff)
		}
		if cached("user_0000") {
			t.Error("the observation stayed")
		}
	})
}

// TestBatchObserveGivesUp: a reconcile whose context ends stops waiting and leaves no waiter
// behind.
func TestBatchObserveGivesUp(t *testing.T) {
	o := &Batch{Clerk: newMemClerk(1), MaxAge: time.Minute} // no reads run
	o.init()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := o.Observe(ctx, "user_0000", time.Time{})
		res <- err
	}()
	waitWaiting(t, o, 1)
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Errorf("Observe: %v, want %v", err, context.Canceled)
	}
	waitWaiting(t, o, 0)
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, queued := o.waiting["user_0000"]; queued {
		t.Error("the user stays queued for nobody")
	}
}
