package controller

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// batchSize is the most user IDs Clerk accepts in one GET /users filter, and its page size.
const batchSize = clerk.MaxFilterValues

// userLister is the read the batched observer needs.
type userLister interface {
	ListUsers(ctx context.Context, p clerk.ListUsersParams) ([]clerk.User, error)
	CountUsers(ctx context.Context, p clerk.ListUsersParams) (int64, error)
}

// BatchObserver observes many users per Clerk call, so that Clerk's rate limit, not the number
// of objects, bounds kubeclerk:
//
//   - Reads are coalesced: the IDs that reconciles ask for within a short window are fetched
//     together, up to 100 per GET /users?user_id=…, so N objects cost ceil(N/100) reads.
//   - Observations are cached and stay trusted for MaxAge. Every PollInterval one
//     GET /users?order_by=-updated_at (more pages only when more users changed) finds the users
//     changed since the last poll, refreshes them and reports the managed ones through Changed;
//     every other cached observation is then known to be current as of the poll. A
//     GET /users/count per poll finds deletions, which the updated_at order cannot show.
//     An idle instance costs two calls per poll, a poll every 90% of the sync period.
//   - Reconciles report what Clerk confirmed after a write (Remember), so a write never makes
//     the cache stale.
//
// An observation older than MaxAge is never returned: it is read again first.
type BatchObserver struct {
	// Clerk is the API to read from.
	Clerk userLister
	// MaxAge is how long an observation is trusted without Clerk confirming it (the sync period).
	MaxAge time.Duration
	// PollInterval is how often changed users are polled; 90% of MaxAge when zero, so that a
	// poll confirms the cache before its observations expire.
	PollInterval time.Duration
	// Window is how long a read waits for other reads to share its call; 20 ms when zero.
	Window time.Duration
	// Changed is called with the IDs of cached (managed) users that changed outside kubeclerk.
	Changed func(ctx context.Context, ids []string)
	// Log receives errors of the background poll.
	Log logr.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	once    sync.Once
	mu      sync.Mutex
	cache   map[string]cachedUser
	waiting map[string][]chan observation // IDs to read, with the reconciles waiting for them
	reading map[string]bool               // IDs of waiting whose read is in flight
	kick    chan struct{}
	// watermark is the updated_at (Unix ms) up to which changes have been polled; 0 before the first poll.
	watermark int64
	// atWatermark are the users last seen with updated_at equal to the watermark.
	atWatermark map[string]bool
	// count is the number of users Clerk had at the last poll.
	count int64
	// ownDeletes counts the users kubeclerk deleted since the last count.
	ownDeletes int64
	// polled is set once the first poll has learnt the watermark and the count.
	polled bool
}

type cachedUser struct {
	user    clerk.User
	validAt time.Time // Clerk's state was this user as of this time
}

type observation struct {
	user *clerk.User
	err  error
}

func (o *BatchObserver) init() {
	o.once.Do(func() {
		o.cache = map[string]cachedUser{}
		o.waiting = map[string][]chan observation{}
		o.reading = map[string]bool{}
		o.kick = make(chan struct{}, 1)
		if o.PollInterval <= 0 {
			o.PollInterval = o.MaxAge * 9 / 10
		}
		if o.Window <= 0 {
			o.Window = 20 * time.Millisecond
		}
	})
}

func (o *BatchObserver) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Observe implements Observer: a cached observation younger than MaxAge, else a read that
// shares its call with other reads. A user Clerk does not return is a not-found error.
func (o *BatchObserver) Observe(ctx context.Context, userID string) (*clerk.User, error) {
	o.init()
	o.mu.Lock()
	if c, ok := o.cache[userID]; ok && o.now().Sub(c.validAt) < o.MaxAge {
		o.mu.Unlock()
		u := c.user
		return &u, nil
	}
	ch := make(chan observation, 1)
	o.waiting[userID] = append(o.waiting[userID], ch)
	o.mu.Unlock()
	select {
	case o.kick <- struct{}{}:
	default:
	}
	select {
	case res := <-ch:
		return res.user, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Prefetch queues reads of ids that are not cached fresh, without waiting for them: after a
// start, reading every managed user in batches of 100 costs ceil(N/100) calls however few
// reconciles run at once, and the reconciles then find them cached.
func (o *BatchObserver) Prefetch(ids []string) {
	o.init()
	o.mu.Lock()
	for _, id := range ids {
		if c, ok := o.cache[id]; ok && o.now().Sub(c.validAt) < o.MaxAge {
			continue
		}
		if _, queued := o.waiting[id]; !queued {
			o.waiting[id] = nil
		}
	}
	o.mu.Unlock()
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Remember implements Observer: u is what Clerk answered to a write, current as of now.
func (o *BatchObserver) Remember(u *clerk.User) {
	o.init()
	o.mu.Lock()
	defer o.mu.Unlock()
	if u != nil {
		o.cache[u.ID] = cachedUser{user: *u, validAt: o.now()}
	}
}

// Forget implements Observer: the user is gone, or no object manages it any more.
func (o *BatchObserver) Forget(userID string) {
	o.init()
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.cache, userID)
}

// Deleted records that kubeclerk itself deleted a user, so that the next poll's count does not
// take it for a deletion made outside kubeclerk (which costs a refresh of every cached user).
func (o *BatchObserver) Deleted(userID string) {
	o.init()
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.cache, userID)
	o.ownDeletes++
}

// maxReadsInFlight is how many batch reads run at once, so that a start's prefetch of many
// batches is paced by the rate limit, not by Clerk's latency.
const maxReadsInFlight = 4

// Start runs the batched reads and the change poll until ctx ends (manager.Runnable).
func (o *BatchObserver) Start(ctx context.Context) error {
	o.init()
	go o.pollLoop(ctx)
	slots := make(chan struct{}, maxReadsInFlight)
	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.kick:
		}
		// Give reads queued at about the same time (a startup, a resync) a moment to join.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Window):
		}
		for {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			ids := o.takeBatch()
			if len(ids) == 0 {
				<-slots
				break
			}
			inFlight.Go(func() {
				defer func() { <-slots }()
				o.read(ctx, ids)
			})
		}
	}
}

// takeBatch removes up to batchSize IDs from the waiting set, leaving their waiters in place.
// IDs a reconcile waits for go before IDs that are only prefetched.
func (o *BatchObserver) takeBatch() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	ids := make([]string, 0, min(batchSize, len(o.waiting)))
	for _, waited := range []bool{true, false} {
		for id, waiters := range o.waiting {
			if len(ids) == batchSize {
				break
			}
			if (len(waiters) > 0) == waited && !o.reading[id] {
				ids = append(ids, id)
			}
		}
	}
	for _, id := range ids {
		o.reading[id] = true
	}
	return ids
}

// read fetches ids in one GET /users and answers their waiters.
func (o *BatchObserver) read(ctx context.Context, ids []string) {
	start := o.now()
	users, err := o.Clerk.ListUsers(ctx, clerk.ListUsersParams{UserIDs: ids, Limit: batchSize})
	found := make(map[string]*clerk.User, len(users))
	for i := range users {
		found[users[i].ID] = &users[i]
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		u := found[id]
		switch {
		case err != nil:
		case u == nil:
			delete(o.cache, id)
		default:
			o.cache[id] = cachedUser{user: *u, validAt: start}
		}
		for _, ch := range o.waiting[id] {
			switch {
			case err != nil:
				ch <- observation{err: fmt.Errorf("read Clerk users in a batch: %w", err)}
			case u == nil:
				ch <- observation{err: notFound(id)}
			default:
				cp := *u
				ch <- observation{user: &cp}
			}
		}
		delete(o.waiting, id)
		delete(o.reading, id)
	}
}

// notFound is the error Clerk gives for a user that does not exist, for a user a batch read did not return.
func notFound(id string) error {
	return &clerk.APIError{StatusCode: http.StatusNotFound, Method: http.MethodGet, Path: "/users?user_id=" + id,
		Errors: []clerk.ErrorDetail{{Code: "resource_not_found", Message: "not found",
			LongMessage: "No user was found with id " + id}}}
}

// pollLoop polls for changed users every PollInterval.
func (o *BatchObserver) pollLoop(ctx context.Context) {
	t := time.NewTicker(o.PollInterval)
	defer t.Stop()
	for {
		if err := o.Poll(ctx); err != nil && ctx.Err() == nil {
			o.Log.Error(err, "Polling Clerk for changed users failed; cached observations expire after the sync period")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll finds the users changed since the last poll (newest updated_at first, stopping at the last
// change seen), refreshes the cached ones and reports them through Changed; then every cached
// observation is current as of the poll. When Clerk's user count shows deletions, every cached
// observation is dropped so that the next reads find out which users are gone.
func (o *BatchObserver) Poll(ctx context.Context) error {
	o.init()
	start := o.now()
	o.mu.Lock()
	watermark, lastCount, first, seen, ownDeletes := o.watermark, o.count, !o.polled, o.atWatermark, o.ownDeletes
	o.mu.Unlock()

	// Count before listing: a user created in between then shows up in the list but not in the
	// count, which can only hide a deletion until the next poll, never invent one.
	count, err := o.Clerk.CountUsers(ctx, clerk.ListUsersParams{})
	if err != nil {
		return fmt.Errorf("count Clerk users: %w", err)
	}
	var changed []clerk.User
	newest, created := watermark, int64(0)
	atNewest := map[string]bool{}
	for id := range seen {
		atNewest[id] = true
	}
	limit := batchSize
	if first {
		limit = 1 // the first poll only learns where the changes stand
	}
	for offset := 0; ; offset += limit {
		page, err := o.Clerk.ListUsers(ctx, clerk.ListUsersParams{OrderBy: "-updated_at", Limit: limit, Offset: offset})
		if err != nil {
			return fmt.Errorf("list changed Clerk users: %w", err)
		}
		done := len(page) < limit || first
		for _, u := range page {
			// Changes in the watermark's millisecond are read again, in case they came after
			// the last poll; the users that poll already saw there mark the end.
			if u.UpdatedAt < watermark || u.UpdatedAt == watermark && seen[u.ID] {
				done = true
				break
			}
			switch {
			case u.UpdatedAt > newest:
				newest, atNewest = u.UpdatedAt, map[string]bool{u.ID: true}
			case u.UpdatedAt == newest:
				atNewest[u.ID] = true
			}
			if !first {
				changed = append(changed, u)
				if u.CreatedAt > watermark {
					created++
				}
			}
		}
		if done {
			break
		}
	}

	o.mu.Lock()
	var ids []string
	for _, u := range changed {
		// Only managed (cached) users matter; a cached copy at least as new (a write's answer
		// remembered during the poll) is kept.
		if c, ok := o.cache[u.ID]; ok && u.UpdatedAt > c.user.UpdatedAt {
			o.cache[u.ID] = cachedUser{user: u, validAt: start}
			// Only a change the plan can see needs a reconcile: not a sign-in, and not
			// kubeclerk's own DisableMFA, whose answer carries no updated_at.
			if !sameState(c.user, u) {
				ids = append(ids, u.ID)
			}
		}
	}
	deleted := !first && count < lastCount+created-ownDeletes
	o.ownDeletes -= ownDeletes
	for id, c := range o.cache {
		switch {
		case deleted:
			delete(o.cache, id)
			ids = append(ids, id)
		case c.validAt.Before(start):
			c.validAt = start
			o.cache[id] = c
		}
	}
	o.watermark, o.atWatermark, o.count, o.polled = newest, atNewest, count, true
	o.mu.Unlock()

	if len(ids) > 0 && o.Changed != nil {
		o.Changed(ctx, ids)
	}
	return nil
}

// sameState reports whether two observations of a user differ only in timestamps.
func sameState(a, b clerk.User) bool {
	a.UpdatedAt, a.LastSignInAt, a.LastActiveAt = 0, nil, nil
	b.UpdatedAt, b.LastSignInAt, b.LastActiveAt = 0, nil, nil
	return reflect.DeepEqual(a, b)
}
