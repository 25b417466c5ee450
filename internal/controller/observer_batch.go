package controller

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// batchSize is the most user IDs Clerk accepts in one GET /users filter, and its page size.
const batchSize = clerk.MaxFilterValues

// sweepPageSize is the page size of a listing of every user: Clerk's largest page.
const sweepPageSize = clerk.MaxListLimit

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
//   - A start reads every managed user before the reconciles ask: with the batches above, or
//     by listing the whole instance 500 users a page when that takes fewer calls (an instance
//     that kubeclerk manages most of: N managed users cost ceil(users/500) reads).
//   - Observations are cached and stay trusted for MaxAge. Every PollInterval one
//     GET /users?order_by=-updated_at (more pages only when more users changed) finds the users
//     changed since the last poll, refreshes them and reports the managed ones through Changed;
//     every other cached observation is then known to be current as of the poll. A
//     GET /users/count per poll finds deletions, which the updated_at order cannot show.
//     An idle instance costs two calls per poll, a poll every 90% of the sync period.
//   - Reconciles report what Clerk confirmed after a write (Remember), so a write never makes
//     the cache stale.
//
// An observation older than MaxAge is never returned: it is read again first. A poll only
// vouches for observations made after the first poll learnt where the changes stand, since a
// change before that has an updated_at below every later watermark.
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
	// Managed returns the IDs of the users that objects are bound to. The first poll calls it
	// (it may block until the objects are known) and reads those users in the fewest calls.
	Managed func(ctx context.Context) ([]string, error)
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
	// readsOpen is set once the first poll has been tried: until then batch reads wait, so that
	// a start reads each managed user once, in the cheaper of batches and a listing, and after
	// the watermark (which lets polls vouch for what was read).
	readsOpen bool
}

type cachedUser struct {
	user    clerk.User
	validAt time.Time // Clerk's state was this user as of this time
	// tracked is set when any later change of the user shows up in a poll (it was observed
	// after the first poll learnt the watermark), so that a poll may extend validAt.
	tracked bool
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

func (o *BatchObserver) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// fresh reports whether id has an observation younger than MaxAge. o.mu must be held.
func (o *BatchObserver) fresh(id string) bool {
	c, ok := o.cache[id]
	return ok && o.now().Sub(c.validAt) < o.MaxAge
}

// keep stores u as observed at validAt, unless the cache already holds a newer state of the
// user (a write's answer, or a poll's, that came while this observation was in flight).
// o.mu must be held.
func (o *BatchObserver) keep(u clerk.User, validAt time.Time, tracked bool) clerk.User {
	if c, ok := o.cache[u.ID]; ok && c.user.UpdatedAt > u.UpdatedAt {
		return c.user
	}
	o.cache[u.ID] = cachedUser{user: u, validAt: validAt, tracked: tracked}
	return u
}

// Observe implements Observer: a cached observation younger than MaxAge, else a read that
// shares its call with other reads. A user Clerk does not return is a not-found error.
func (o *BatchObserver) Observe(ctx context.Context, userID string) (*clerk.User, error) {
	o.init()
	o.mu.Lock()
	if o.fresh(userID) {
		u := o.cache[userID].user
		o.mu.Unlock()
		return &u, nil
	}
	ch := make(chan observation, 1)
	o.waiting[userID] = append(o.waiting[userID], ch)
	o.mu.Unlock()
	o.wake()
	select {
	case res := <-ch:
		return res.user, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// queue adds the ids that are not cached fresh to the waiting set. o.mu must be held.
func (o *BatchObserver) queue(ids []string) {
	for _, id := range ids {
		if _, queued := o.waiting[id]; !queued && !o.fresh(id) {
			o.waiting[id] = nil
		}
	}
}

// Remember implements Observer: u is what Clerk answered to a write, current as of now.
func (o *BatchObserver) Remember(u *clerk.User) {
	o.init()
	o.mu.Lock()
	defer o.mu.Unlock()
	if u != nil {
		o.keep(*u, o.now(), o.polled)
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

// maxReadsInFlight is how many batch reads run at once, so that a start's reads of many
// batches are paced by the rate limit, not by Clerk's latency.
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
// IDs a reconcile waits for go before IDs that are only prefetched. Nothing is read before the
// first poll has been tried.
func (o *BatchObserver) takeBatch() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.readsOpen {
		return nil
	}
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
	o.mu.Lock()
	start, tracked := o.now(), o.polled
	o.mu.Unlock()
	users, err := o.Clerk.ListUsers(ctx, clerk.ListUsersParams{UserIDs: ids, Limit: batchSize})
	found := make(map[string]*clerk.User, len(users))
	for i := range users {
		found[users[i].ID] = &users[i]
	}
	o.Log.V(1).Info("Read Clerk users in a batch", "asked", len(ids), "found", len(users), "error", err)
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		var res observation
		switch u := found[id]; {
		case err != nil:
			res.err = fmt.Errorf("read Clerk users in a batch: %w", err)
		case u == nil:
			delete(o.cache, id)
			res.err = notFound(id)
		default:
			kept := o.keep(*u, start, tracked)
			res.user = &kept
		}
		o.answer(id, res)
		delete(o.reading, id)
	}
}

// answer gives res to every reconcile waiting for id and takes id off the waiting set.
// o.mu must be held.
func (o *BatchObserver) answer(id string, res observation) {
	for _, ch := range o.waiting[id] {
		r := res
		if r.user != nil {
			cp := *r.user
			r.user = &cp
		}
		ch <- r
	}
	delete(o.waiting, id)
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

// sweepPays reports whether listing all users (ceil(users/500) calls) reads n users in fewer
// calls than batches of 100 and the extra calls those need.
func sweepPays(users int64, n, extra int) bool {
	pages := max(1, (users+sweepPageSize-1)/sweepPageSize) // an empty instance still takes one call
	return n > 0 && pages < int64((n+batchSize-1)/batchSize+extra)
}

// sweep lists every user, newest updated_at first, 500 a page, and hands each page to fn. It
// stops at a short page or once count users were listed. A user deleted while it pages shifts
// the later ones, so one may be missed: callers read users the sweep did not return one by one.
func (o *BatchObserver) sweep(ctx context.Context, count int64, fn func([]clerk.User)) error {
	for offset := 0; ; offset += sweepPageSize {
		page, err := o.Clerk.ListUsers(ctx, clerk.ListUsersParams{OrderBy: "-updated_at", Limit: sweepPageSize, Offset: offset})
		if err != nil {
			return fmt.Errorf("list all Clerk users: %w", err)
		}
		fn(page)
		if len(page) < sweepPageSize || int64(offset+len(page)) >= count {
			return nil
		}
	}
}

// Poll finds the users changed since the last poll (newest updated_at first, stopping at the last
// change seen), refreshes the cached ones and reports them through Changed; then every cached
// observation is current as of the poll. When Clerk's user count shows deletions, every cached
// user is observed again, and the ones that changed or are gone are reported.
//
// The first poll learns the watermark and the count, and reads the managed users (Managed, and
// every ID waiting to be read): by listing the whole instance when that takes fewer calls than
// batches, else by letting the batch reads go once the watermark is known.
func (o *BatchObserver) Poll(ctx context.Context) error {
	o.init()
	o.mu.Lock()
	first := !o.polled
	o.mu.Unlock()
	if first {
		defer func() {
			o.mu.Lock()
			o.readsOpen = true
			o.mu.Unlock()
			o.wake()
		}()
		return o.firstPoll(ctx)
	}
	return o.nextPoll(ctx)
}

// firstPoll is Poll before a watermark is known.
func (o *BatchObserver) firstPoll(ctx context.Context) error {
	if o.Managed != nil {
		// A retry after a failed first poll asks again; IDs already queued or fresh are skipped.
		ids, err := o.Managed(ctx)
		if err != nil {
			return fmt.Errorf("list the managed Clerk users: %w", err)
		}
		o.mu.Lock()
		o.queue(ids)
		o.mu.Unlock()
	}
	start := o.now()
	count, err := o.Clerk.CountUsers(ctx, clerk.ListUsersParams{})
	if err != nil {
		return fmt.Errorf("count Clerk users: %w", err)
	}
	o.mu.Lock()
	toRead := 0
	for id := range o.waiting {
		if !o.reading[id] {
			toRead++
		}
	}
	o.mu.Unlock()

	var newest int64
	atNewest := map[string]bool{}
	watermark := func(page []clerk.User) {
		for _, u := range page {
			if u.UpdatedAt < newest {
				break
			}
			if u.UpdatedAt > newest {
				newest, atNewest = u.UpdatedAt, map[string]bool{}
			}
			atNewest[u.ID] = true
		}
	}
	// Batches need one more list: the newest user, for the watermark.
	if !sweepPays(count, toRead, 1) {
		// The watermark from the newest user; the batch reads go after it.
		page, err := o.Clerk.ListUsers(ctx, clerk.ListUsersParams{OrderBy: "-updated_at", Limit: 1})
		if err != nil {
			return fmt.Errorf("list changed Clerk users: %w", err)
		}
		watermark(page)
		o.mu.Lock()
		o.watermark, o.atWatermark, o.count, o.polled = newest, atNewest, count, true
		o.mu.Unlock()
		o.Log.V(1).Info("First poll: managed users are read in batches", "users", count, "toRead", toRead)
		return nil
	}

	// A listing of every user, newest first: its first page gives the watermark; every user it
	// returns that is waiting to be read is observed as of the poll. Any change after a page
	// was listed has a newer updated_at than the watermark, so the next poll finds it.
	pages := 0
	err = o.sweep(ctx, count, func(page []clerk.User) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if pages++; pages == 1 {
			// From here on, a write's answer (a reconcile answered by this page may write
			// while the next pages are listed) is newer than the watermark: polls vouch for it.
			watermark(page)
			o.watermark, o.atWatermark, o.count, o.polled = newest, atNewest, count, true
		}
		for _, u := range page {
			if _, waited := o.waiting[u.ID]; waited && !o.reading[u.ID] {
				kept := o.keep(u, start, true)
				o.answer(u.ID, observation{user: &kept})
			}
		}
	})
	if err != nil && pages == 0 {
		return err
	}
	// With the watermark known, users the listing missed (or all of the rest, if it failed
	// part way) are read in batches, vouched for by the next poll.
	o.mu.Lock()
	left := len(o.waiting)
	o.mu.Unlock()
	o.Log.V(1).Info("First poll: listed every user", "users", count, "toRead", toRead, "pages", pages,
		"leftToRead", left, "error", err)
	return err
}

// nextPoll is Poll once a watermark is known.
func (o *BatchObserver) nextPoll(ctx context.Context) error {
	start := o.now()
	o.mu.Lock()
	watermark, lastCount, seen, ownDeletes := o.watermark, o.count, o.atWatermark, o.ownDeletes
	o.mu.Unlock()

	// Count before listing: a user created in between then shows up in the list but not in the
	// count, which can only hide a deletion until the next poll, never invent one.
	count, err := o.Clerk.CountUsers(ctx, clerk.ListUsersParams{})
	if err != nil {
		return fmt.Errorf("count Clerk users: %w", err)
	}
	var ids []string
	changed := 0
	newest, created := watermark, int64(0)
	atNewest := map[string]bool{}
	for id := range seen {
		atNewest[id] = true
	}
	// The first page is small, as an idle instance has nothing to page through; later pages
	// (many users changed, e.g. by kubeclerk itself) take Clerk's largest page. Each page is
	// taken in as it comes, so that a poll through many changes holds one page at a time.
	for offset, limit := 0, batchSize; ; offset, limit = offset+limit, sweepPageSize {
		page, err := o.Clerk.ListUsers(ctx, clerk.ListUsersParams{OrderBy: "-updated_at", Limit: limit, Offset: offset})
		if err != nil {
			// The users already refreshed are reported; the watermark stays, so the next
			// poll lists the rest again.
			o.report(ctx, ids)
			return fmt.Errorf("list changed Clerk users: %w", err)
		}
		done, n := len(page) < limit, len(page)
		for i, u := range page {
			// Changes in the watermark's millisecond are read again, in case they came after
			// the last poll; the users that poll already saw there mark the end.
			if u.UpdatedAt < watermark || u.UpdatedAt == watermark && seen[u.ID] {
				done, n = true, i
				break
			}
			switch {
			case u.UpdatedAt > newest:
				newest, atNewest = u.UpdatedAt, map[string]bool{u.ID: true}
			case u.UpdatedAt == newest:
				atNewest[u.ID] = true
			}
			if u.CreatedAt > watermark {
				created++
			}
		}
		changed += n
		o.mu.Lock()
		ids = append(ids, o.refresh(page[:n], start, false)...)
		o.mu.Unlock()
		if done {
			break
		}
	}
	deleted := count < lastCount+created-ownDeletes
	o.Log.V(1).Info("Polled Clerk for changed users", "changed", changed, "users", count, "deletion", deleted)

	o.mu.Lock()
	o.ownDeletes -= ownDeletes
	managed := len(o.cache)
	o.mu.Unlock()

	if deleted {
		ids = append(ids, o.resync(ctx, start, count, managed)...)
	}

	o.mu.Lock()
	for id, c := range o.cache {
		if c.tracked && c.validAt.Before(start) {
			c.validAt = start
			o.cache[id] = c
		}
	}
	o.watermark, o.atWatermark, o.count = newest, atNewest, count
	o.mu.Unlock()

	o.report(ctx, ids)
	return nil
}

// report hands the IDs of changed users to Changed, each once.
func (o *BatchObserver) report(ctx context.Context, ids []string) {
	if len(ids) > 0 && o.Changed != nil {
		slices.Sort(ids)
		o.Changed(ctx, slices.Compact(ids))
	}
}

// refresh stores the listed users that are managed (cached, or being read) as observed at
// start and returns the IDs of the cached ones whose change the plan can see. With confirm,
// cached users listed unchanged are vouched for as of start too. o.mu must be held.
func (o *BatchObserver) refresh(users []clerk.User, start time.Time, confirm bool) []string {
	var ids []string
	for _, u := range users {
		c, cached := o.cache[u.ID]
		switch {
		case cached && u.UpdatedAt > c.user.UpdatedAt:
			o.cache[u.ID] = cachedUser{user: u, validAt: start, tracked: true}
			// Only a change the plan can see needs a reconcile: not a sign-in, and not
			// kubeclerk's own DisableMFA, whose answer carries no updated_at.
			if !sameState(c.user, u) {
				ids = append(ids, u.ID)
			}
		case cached && confirm && u.UpdatedAt == c.user.UpdatedAt && c.validAt.Before(start):
			c.validAt, c.tracked = start, true
			o.cache[u.ID] = c
		case !cached && o.reading[u.ID]:
			// A read in flight may have seen the user before this change; the newer state wins.
			o.cache[u.ID] = cachedUser{user: u, validAt: start, tracked: true}
		}
	}
	return ids
}

// resync observes every cached user again after the count showed a deletion, and returns the
// IDs of those that changed or are gone: by listing every user when that takes fewer calls
// than batches, else (or when the listing fails) by dropping the cache and reporting every
// user, so that their reconciles read them again.
func (o *BatchObserver) resync(ctx context.Context, start time.Time, count int64, managed int) []string {
	dropAll := func() []string {
		o.mu.Lock()
		defer o.mu.Unlock()
		ids := make([]string, 0, len(o.cache))
		for id := range o.cache {
			delete(o.cache, id)
			ids = append(ids, id)
		}
		return ids
	}
	if !sweepPays(count, managed, 0) {
		return dropAll()
	}
	var ids []string
	listed := map[string]bool{}
	err := o.sweep(ctx, count, func(page []clerk.User) {
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, u := range page {
			if _, cached := o.cache[u.ID]; cached {
				listed[u.ID] = true
			}
		}
		ids = append(ids, o.refresh(page, start, true)...)
	})
	if err != nil {
		o.Log.Error(err, "Listing every Clerk user after a deletion failed; every managed user is read again")
		return append(ids, dropAll()...)
	}
	// The users the listing did not return are gone (or were shifted past a page by another
	// deletion): their reconciles read them again.
	o.mu.Lock()
	defer o.mu.Unlock()
	for id := range o.cache {
		if !listed[id] {
			delete(o.cache, id)
			ids = append(ids, id)
		}
	}
	return ids
}

// sameState reports whether two observations of a user differ only in timestamps.
func sameState(a, b clerk.User) bool {
	a.UpdatedAt, a.LastSignInAt, a.LastActiveAt = 0, nil, nil
	b.UpdatedAt, b.LastSignInAt, b.LastActiveAt = 0, nil, nil
	return reflect.DeepEqual(a, b)
}
