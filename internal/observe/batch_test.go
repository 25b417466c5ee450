package observe

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// These tests came with the observer from internal/controller; they are adapted to the
// Observer interface of this package (Observe takes notBefore, Forget(id, true) replaces
// Deleted) and to the deletion check's baseline count.

func TestBatchReadsInBatches(t *testing.T) {
	m := newMemClerk(250)
	o := &Batch{Clerk: m, MaxAge: time.Minute}
	startObserver(t, o)
	ids := userIDs(250)
	// A start: every bound user queued at once, as the first poll queues Managed's IDs.
	o.mu.Lock()
	o.queue(ids, o.now())
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
	for i := range lists {
		if p := m.listAt(i); len(p.UserIDs) > clerk.MaxFilterValues || p.Limit != clerk.MaxFilterValues {
			t.Errorf("call %d asked for %d IDs with limit %d", i, len(p.UserIDs), p.Limit)
		}
	}

	// Cached and fresh: no more calls.
	observeAll(t, o, ids)
	if lists2, _ := m.calls(); lists2 != lists {
		t.Errorf("fresh observations cost %d more calls", lists2-lists)
	}
}

func TestBatchExpiryAndNotFound(t *testing.T) {
	m := newMemClerk(2)
	clk := &clock{t: time.Unix(1000, 0)}
	o := &Batch{Clerk: m, MaxAge: time.Minute, Now: clk.Now}
	startObserver(t, o)
	ctx := context.Background()

	if _, err := o.Observe(ctx, "user_0000", time.Time{}); err != nil {
		t.Fatal(err)
	}
	clk.Add(59 * time.Second)
	if _, err := o.Observe(ctx, "user_0000", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if lists, _ := m.calls(); lists != 1 {
		t.Fatalf("a 59 s old observation was read again: %d calls", lists)
	}
	clk.Add(2 * time.Second)
	if _, err := o.Observe(ctx, "user_0000", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if lists, _ := m.calls(); lists != 2 {
		t.Fatalf("an observation older than MaxAge was trusted: %d calls", lists)
	}

	_, err := o.Observe(ctx, "user_gone", time.Time{})
	if !clerk.IsNotFound(err) {
		t.Fatalf("a user the batch did not return: got %v, want a not-found error", err)
	}

	m.setFail(&clerk.APIError{StatusCode: 503})
	clk.Add(2 * time.Minute)
	if _, err := o.Observe(ctx, "user_0001", time.Time{}); !clerk.IsUnavailable(err) {
		t.Fatalf("a failed batch: got %v, want the Clerk error", err)
	}
}

func TestBatchRememberKeepsWritesFresh(t *testing.T) {
	m := newMemClerk(1)
	o := &Batch{Clerk: m, MaxAge: time.Minute}
	startObserver(t, o)
	ctx := context.Background()
	if _, err := o.Observe(ctx, "user_0000", time.Time{}); err != nil {
		t.Fatal(err)
	}
	banned := clerk.User{ID: "user_0000", Banned: true, CreatedAt: at(1000), UpdatedAt: at(9000)}
	m.set(banned)
	o.Remember(&banned)
	u, err := o.Observe(ctx, "user_0000", time.Time{})
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

func TestBatchPoll(t *testing.T) {
	m := newMemClerk(300)
	clk := &clock{t: time.Unix(1000, 0)}
	rec := &recorder{}
	o := &Batch{Clerk: m, MaxAge: time.Minute, Now: clk.Now, Changed: rec.changed}
	ctx := context.Background()

	// First poll: learns the watermark with one small list and one count, and the deletion
	// check's baseline with one count of the users created before the watermark.
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if lists, counts := m.calls(); lists != 1 || counts != 2 || m.listAt(0).Limit != 1 {
		t.Fatalf("first poll: %d lists (limit %d), %d counts; want 1 list of 1 and 2 counts", lists, m.listAt(0).Limit, counts)
	}
	if got := m.counts[1].CreatedBefore; got != at(1299) {
		t.Errorf("the baseline counted users created before %d, want the watermark %d", got, at(1299))
	}
	startObserver(t, o)
	for _, id := range []string{"user_0001", "user_0002"} {
		if _, err := o.Observe(ctx, id, time.Time{}); err != nil {
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
	if _, err := o.Observe(ctx, "user_0001", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if l, _ := m.calls(); l != l0 {
		t.Error("an observation the poll confirmed was read again")
	}
	if changed := rec.take(); len(changed) != 0 {
		t.Errorf("idle poll reported changes: %v", changed)
	}

	// Out-of-band changes: a managed user, an unmanaged one, and 150 more so the poll pages.
	m.set(clerk.User{ID: "user_0001", FirstName: new("Eve"), CreatedAt: at(1000), UpdatedAt: at(5000)})
	for i := 100; i < 250; i++ {
		m.set(clerk.User{ID: fmt.Sprintf("user_%04d", i), CreatedAt: at(1000), UpdatedAt: at(int64(4000 + i))})
	}
	l0, c0 = m.calls()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if l, c := m.calls(); l-l0 != 2 || c-c0 != 1 {
		t.Errorf("poll of 151 changes: %d lists, %d counts; want 2 pages and 1 count", l-l0, c-c0)
	}
	if diff := cmp.Diff([][]string{{"user_0001"}}, rec.take()); diff != "" {
		t.Errorf("changed users reported (-want +got):\n%s", diff)
	}
	u, err := o.Observe(ctx, "user_0001", time.Time{})
	if err != nil || deref(u.FirstName) != "Eve" {
		t.Errorf("the poll did not refresh the cached user: %+v, %v", u, err)
	}

	// A change that only moves timestamps (a sign-in, or kubeclerk's own DisableMFA whose answer
	// has no updated_at) refreshes the cache without a reconcile.
	signedIn := at(7000)
	m.set(clerk.User{ID: "user_0002", CreatedAt: at(1000), UpdatedAt: at(6000), LastSignInAt: &signedIn})
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if changed := rec.take(); len(changed) != 0 {
		t.Errorf("a timestamp-only change was reported: %v", changed)
	}
	if u, err := o.Observe(ctx, "user_0002", time.Time{}); err != nil || u.UpdatedAt != at(6000) {
		t.Errorf("the cache was not refreshed: %+v, %v", u, err)
	}

	// A deletion: the count drops; every cached user is reported and read again.
	m.remove("user_0002")
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"user_0001", "user_0002"}}, rec.take()); diff != "" {
		t.Errorf("after a deletion (-want +got):\n%s", diff)
	}
	if _, err := o.Observe(ctx, "user_0002", time.Time{}); !clerk.IsNotFound(err) {
		t.Errorf("deleted user: got %v, want not found", err)
	}

	// A deletion kubeclerk made itself is no reason to read everything again.
	m.remove("user_0001")
	o.Forget("user_0001", true)
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if changed := rec.take(); len(changed) != 0 {
		t.Errorf("kubeclerk's own deletion was taken for an outside one: %v", changed)
	}

	// A creation alone is no deletion, in the poll that lists it nor in the next.
	m.set(clerk.User{ID: "user_new", CreatedAt: at(9000), UpdatedAt: at(9000)})
	for range 2 {
		if err := o.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if changed := rec.take(); len(changed) != 0 {
			t.Errorf("a new unmanaged user was reported: %v", changed)
		}
	}
}

func TestBatchStartListsEveryUserWhenThatIsCheaper(t *testing.T) {
	m := newMemClerk(1200)
	managed := userIDs(1000)
	rec := &recorder{}
	o := &Batch{Clerk: m, MaxAge: time.Minute,
		Managed: func(context.Context) ([]string, error) { return managed, nil },
		Changed: rec.changed}
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
	if counts != 2 || lists != 3 {
		t.Fatalf("start with 1,000 of 1,200 users managed: %d lists and %d counts, want ceil(1200/500) = 3 and 2 (the total and the baseline)", lists, counts)
	}
	for i := range lists {
		if p := m.listAt(i); p.OrderBy != "-updated_at" || p.Limit != clerk.MaxListLimit || p.Offset != i*clerk.MaxListLimit || len(p.UserIDs) > 0 {
			t.Errorf("list %d: %+v, want every user, newest first, 500 a page", i, p)
		}
	}

	// The listing's first page set the watermark: the next poll finds a later change.
	m.set(clerk.User{ID: "user_0005", FirstName: new("Eve"), CreatedAt: at(1000), UpdatedAt: at(9000)})
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"user_0005"}}, rec.take()); diff != "" {
		t.Errorf("changed users after the start (-want +got):\n%s", diff)
	}
	if l, _ := m.calls(); l != lists+1 {
		t.Errorf("poll after the start: %d lists, want 1", l-lists)
	}
}

func TestBatchWritesDuringTheStartListingStayTracked(t *testing.T) {
	m := newMemClerk(1200)
	clk := &clock{t: time.Unix(1000, 0)}
	o := &Batch{Clerk: m, MaxAge: time.Minute, Now: clk.Now,
		Managed: func(context.Context) ([]string, error) { return userIDs(1200), nil }}
	// A reconcile answered by the first page bans its user while the second page is listed.
	banned := clerk.User{ID: "user_1100", Banned: true, CreatedAt: at(1000), UpdatedAt: at(9000)}
	m.setHooks(func(p clerk.ListUsersParams) {
		if p.Offset == clerk.MaxListLimit {
			m.set(banned)
			o.Remember(&banned)
		}
	}, nil)
	startReads(t, o)
	ctx := context.Background()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	m.setHooks(nil, nil)
	clk.Add(50 * time.Second)
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(20 * time.Second) // 70 s after the write, 20 s after a poll that saw it
	l0, _ := m.calls()
	u, err := o.Observe(ctx, "user_1100", time.Time{})
	if err != nil || !u.Banned {
		t.Fatalf("Observe: %+v, %v", u, err)
	}
	if l, _ := m.calls(); l != l0 {
		t.Error("a write made during the start's listing was read again: the poll did not vouch for it")
	}
}

func TestBatchStartReadsFewUsersInBatches(t *testing.T) {
	m := newMemClerk(1200)
	managed := userIDs(150)
	o := &Batch{Clerk: m, MaxAge: time.Minute,
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
	if counts != 2 || lists != 3 {
		t.Fatalf("start with 150 of 1,200 users managed: %d lists and %d counts, want 2 counts (the total and the baseline), 1 list for the watermark and ceil(150/100) = 2 batches", lists, counts)
	}
	if p := m.listAt(0); p.Limit != 1 || len(p.UserIDs) > 0 {
		t.Errorf("first list: %+v, want the newest user only", p)
	}
	if n := len(m.listAt(1).UserIDs) + len(m.listAt(2).UserIDs); n != 150 {
		t.Errorf("the batches asked for %d IDs, want 150", n)
	}
}

func TestBatchStartReadsWhatTheListingMissed(t *testing.T) {
	m := newMemClerk(1200)
	managed := userIDs(1200)
	o := &Batch{Clerk: m, MaxAge: time.Minute,
		Managed: func(context.Context) ([]string, error) { return managed, nil }}
	// user_1199 (the newest) is deleted between the first and the second page, so every later
	// user moves up one place and user_0699 falls between the pages.
	m.setHooks(func(p clerk.ListUsersParams) {
		if p.Offset == clerk.MaxListLimit {
			m.remove("user_1199")
		}
	}, nil)
	startReads(t, o)
	if err := o.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	u, err := o.Observe(context.Background(), "user_0699", time.Time{})
	if err != nil || u.ID != "user_0699" {
		t.Fatalf("Observe(user_0699): %+v, %v", u, err)
	}
	lists, _ := m.calls()
	if lists != 4 {
		t.Fatalf("%d lists, want 3 pages and 1 batch read", lists)
	}
	if diff := cmp.Diff([]string{"user_0699"}, m.listAt(3).UserIDs); diff != "" {
		t.Errorf("batch read after the listing (-want +got):\n%s", diff)
	}
}

func TestBatchKeepsTheNewerState(t *testing.T) {
	m := newMemClerk(1)
	o := &Batch{Clerk: m, MaxAge: time.Minute}
	// A write's answer arrives while a batch read of the older state is in flight.
	banned := clerk.User{ID: "user_0000", Banned: true, CreatedAt: at(1000), UpdatedAt: at(9000)}
	m.setHooks(func(clerk.ListUsersParams) { o.Remember(&banned) }, nil)
	startObserver(t, o)
	u, err := o.Observe(context.Background(), "user_0000", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !u.Banned || u.UpdatedAt != at(9000) {
		t.Errorf("an older read replaced a write's answer: %+v; the next reconcile would ban again", u)
	}
}

func TestBatchPollVouchesOnlyForObservationsAfterTheWatermark(t *testing.T) {
	m := newMemClerk(2)
	clk := &clock{t: time.Unix(1000, 0)}
	o := &Batch{Clerk: m, MaxAge: time.Minute, Now: clk.Now}
	o.init()
	o.readsOpen = true // a read before the first poll, as when the first poll failed
	startReads(t, o)
	ctx := context.Background()
	if _, err := o.Observe(ctx, "user_0000", time.Time{}); err != nil {
		t.Fatal(err)
	}
	// Changed before the first poll: its updated_at is below the watermark (user_0001 changed
	// later), so no poll sees it.
	m.set(clerk.User{ID: "user_0000", FirstName: new("Eve"), CreatedAt: at(1000), UpdatedAt: at(5000)})
	m.set(clerk.User{ID: "user_0001", CreatedAt: at(1000), UpdatedAt: at(6000)})
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(50 * time.Second)
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(20 * time.Second)
	u, err := o.Observe(ctx, "user_0000", time.Time{})
	if err != nil || deref(u.FirstName) != "Eve" {
		t.Errorf("an observation older than MaxAge that no poll could vouch for was trusted: %+v, %v", u, err)
	}
}

// polledObserver returns an observer of m after its first poll, with its batch reads running
// and ids observed, and the recorder of what it reports changed.
func polledObserver(t *testing.T, m *memClerk, clk *clock, ids []string) (*Batch, *recorder) {
	t.Helper()
	rec := &recorder{}
	o := &Batch{Clerk: m, MaxAge: time.Minute, Changed: rec.changed}
	if clk != nil {
		o.Now = clk.Now
	}
	if err := o.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	startReads(t, o)
	for id, err := range observeAll(t, o, ids) {
		if err != nil {
			t.Fatalf("Observe(%s): %v", id, err)
		}
	}
	return o, rec
}

func TestBatchDeletionListsEveryUserWhenThatIsCheaper(t *testing.T) {
	m := newMemClerk(300)
	o, rec := polledObserver(t, m, nil, userIDs(300))
	ctx := context.Background()

	m.remove("user_0007")
	l0, c0 := m.calls()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if l, c := m.calls(); l-l0 != 2 || c-c0 != 1 {
		t.Errorf("poll after a deletion: %d lists, %d counts; want the changes, one listing of all 299 users, and 1 count", l-l0, c-c0)
	}
	if diff := cmp.Diff([][]string{{"user_0007"}}, rec.take()); diff != "" {
		t.Errorf("after a deletion, only the deleted user is reported (-want +got):\n%s", diff)
	}
	l0, _ = m.calls()
	if _, err := o.Observe(ctx, "user_0007", time.Time{}); !clerk.IsNotFound(err) {
		t.Errorf("deleted user: got %v, want not found", err)
	}
	if _, err := o.Observe(ctx, "user_0008", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if l, _ := m.calls(); l-l0 != 1 {
		t.Errorf("%d reads after the deletion's listing, want 1 (the deleted user)", l-l0)
	}
}

func TestBatchPollFailingPartWayReportsWhatItRefreshed(t *testing.T) {
	m := newMemClerk(300)
	o, rec := polledObserver(t, m, nil, []string{"user_0001", "user_0002"})
	ctx := context.Background()

	// 150 changes, so the poll needs a second page; user_0001 is on the first, user_0002 on
	// the second, which fails.
	for i := 100; i < 250; i++ {
		m.set(clerk.User{ID: fmt.Sprintf("user_%04d", i), CreatedAt: at(1000), UpdatedAt: at(int64(4000 + i))})
	}
	m.set(clerk.User{ID: "user_0001", FirstName: new("Eve"), CreatedAt: at(1000), UpdatedAt: at(9000)})
	m.set(clerk.User{ID: "user_0002", FirstName: new("Bob"), CreatedAt: at(1000), UpdatedAt: at(4000)})
	m.setHooks(func(p clerk.ListUsersParams) {
		if p.Offset > 0 {
			m.setFail(&clerk.APIError{StatusCode: 503})
		}
	}, nil)
	if err := o.Poll(ctx); !clerk.IsUnavailable(err) {
		t.Fatalf("poll with a failing second page: got %v, want the Clerk error", err)
	}
	if diff := cmp.Diff([][]string{{"user_0001"}}, rec.take()); diff != "" {
		t.Errorf("a refreshed user must be reported even when a later page fails (-want +got):\n%s", diff)
	}

	// The watermark stayed: the next poll lists the changes again and finds user_0002.
	m.setHooks(nil, nil)
	m.setFail(nil)
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"user_0002"}}, rec.take()); diff != "" {
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
		t.Run(c.situation, func(t *testing.T) {
			if got := sweepPays(c.users, c.n, c.extra); got != c.want {
				t.Errorf("sweepPays(%d users, %d to read, %d extra) = %v, want %v", c.users, c.n, c.extra, got, c.want)
			}
		})
	}
}

func TestSameState(t *testing.T) {
	base := clerk.User{ID: "user_1", FirstName: new("Ann"), CreatedAt: 1, UpdatedAt: 2}
	with := func(f func(*clerk.User)) clerk.User { u := base; f(&u); return u }
	for _, c := range []struct {
		name string
		a, b clerk.User
		want bool
	}{
		{"timestamps only", base, with(func(u *clerk.User) { u.UpdatedAt, u.LastSignInAt, u.LastActiveAt = 9, new(int64(9)), new(int64(9)) }), true},
		{"a profile field", base, with(func(u *clerk.User) { u.FirstName = new("Bob") }), false},
		{"a lockout counting down",
			with(func(u *clerk.User) { u.Locked, u.LockoutExpiresInSeconds = true, new(int64(60)) }),
			with(func(u *clerk.User) { u.Locked, u.LockoutExpiresInSeconds = true, new(int64(20)) }), true},
		{"a lockout lifted",
			with(func(u *clerk.User) { u.Locked, u.LockoutExpiresInSeconds = true, new(int64(1)) }), base, false},
		{"a finite lockout and one that never ends",
			with(func(u *clerk.User) { u.Locked, u.LockoutExpiresInSeconds = true, new(int64(60)) }),
			with(func(u *clerk.User) { u.Locked = true }), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := sameState(c.a, c.b); got != c.want {
				t.Errorf("sameState = %v, want %v", got, c.want)
			}
		})
	}
}

// pausedClerk is a memClerk whose key Clerk holds back until pausedUntil.
type pausedClerk struct {
	*memClerk
	pausedUntil time.Time
}

func (p *pausedClerk) PausedUntil() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pausedUntil
}

// TestBatchReadWhilePaused: while Clerk holds the key back after a 429, a read answers its
// reconciles at once with a rate-limit error carrying the time left, without a call; once the
// pause has passed, reads go to Clerk again.
func TestBatchReadWhilePaused(t *testing.T) {
	m := &pausedClerk{memClerk: newMemClerk(1), pausedUntil: time.Now().Add(time.Hour)}
	o := &Batch{Clerk: m, MaxAge: time.Minute}
	startObserver(t, o)
	ctx := context.Background()
	_, err := o.Observe(ctx, "user_0000", time.Time{})
	if !clerk.IsRateLimited(err) {
		t.Fatalf("Observe while paused = %v, want a rate-limit error", err)
	}
	if d, ok := clerk.RetryAfter(err); !ok || d < 59*time.Minute {
		t.Errorf("RetryAfter = %v, %v; want about an hour", d, ok)
	}
	if lists, _ := m.calls(); lists != 0 {
		t.Errorf("%d calls while paused", lists)
	}
	m.mu.Lock()
	m.pausedUntil = time.Time{}
	m.mu.Unlock()
	if _, err := o.Observe(ctx, "user_0000", time.Time{}); err != nil {
		t.Fatalf("Observe after the pause: %v", err)
	}
}

// TestBatchOffer: a pushed state newer than the cached one is taken as an observation (no call)
// and reported; an older, equal or unmanaged one is ignored; a deletion drops and reports.
func TestBatchOffer(t *testing.T) {
	m := newMemClerk(2)
	clk := &clock{t: time.UnixMilli(at(2000))}
	rec := &recorder{}
	o := &Batch{Clerk: m, MaxAge: time.Minute, Now: clk.Now, Changed: rec.changed}
	startObserver(t, o)
	ctx := context.Background()
	if _, err := o.Observe(ctx, "user_0000", time.Time{}); err != nil {
		t.Fatal(err)
	}
	lists, _ := m.calls()

	banned := m.get("user_0000")
	banned.Banned, banned.UpdatedAt = true, at(1500)
	if !o.Offer(ctx, banned) {
		t.Fatal("a newer state was not taken")
	}
	if got := rec.take(); len(got) != 1 || got[0][0] != "user_0000" {
		t.Errorf("reported %v", got)
	}
	// Served from the cache to a reconcile that needs a read after the event's update.
	u, err := o.Observe(ctx, "user_0000", time.UnixMilli(at(1400)))
	if err != nil || !u.Banned {
		t.Fatalf("Observe after the offer = %+v, %v", u, err)
	}
	if l, _ := m.calls(); l != lists {
		t.Errorf("%d calls after an offer", l-lists)
	}

	older := banned
	older.Banned, older.UpdatedAt = false, at(1200)
	if o.Offer(ctx, older) || o.Offer(ctx, banned) {
		t.Error("an older or repeated state was taken")
	}
	stranger := clerk.User{ID: "user_9999", UpdatedAt: at(3000)}
	if o.Offer(ctx, stranger) {
		t.Error("a user nobody manages was taken")
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("ignored offers reported %v", got)
	}

	if !o.Gone(ctx, "user_0000") || o.Gone(ctx, "user_9999") {
		t.Error("Gone")
	}
	if got := rec.take(); len(got) != 1 || got[0][0] != "user_0000" {
		t.Errorf("deletion reported %v", got)
	}
}
