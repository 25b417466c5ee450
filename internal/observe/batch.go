package observe

import (
	"context"
	"errors"
	"fmt"
	"maps"
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

// maxReadsInFlight is how many batch reads run at once, so that a start's reads of many
// batches are paced by the rate limit, not by Clerk's latency.
const maxReadsInFlight = 4

// lockoutRounding is how much Clerk may round lockout_expires_in_seconds up: an observation of a
// lockout is trusted until that much before the end it reports, and the end is reported through
// Changed that much after it.
const lockoutRounding = time.Second

// defaultWindow is Batch.Window when zero.
const defaultWindow = 20 * time.Millisecond

// userLister is the read the batched observer needs; *clerk.Client implements it.
type userLister interface {
	ListUsers(ctx context.Context, p clerk.ListUsersParams) ([]clerk.User, error)
	CountUsers(ctx context.Context, p clerk.ListUsersParams) (int64, error)
}

// Batch is an Observer that observes many users per Clerk call, so that Clerk's rate limit, not
// the number of objects, bounds kubeclerk. Its state and invariants are described in the
// package documentation. What it costs:
//
//   - Reads are coalesced: the IDs that reconciles ask for within Window are fetched together,
//     up to 100 per GET /users?user_id=…, so N objects cost ceil(N/100) reads.
//   - A start costs one count, then either one listing of the newest user and ceil(N/100)
//     batches for the N managed users, or, when that takes fewer calls, ceil(users/500) pages
//     of every user (an instance kubeclerk manages most of); then one count for the deletion
//     check's baseline.
//   - Every PollInterval a change poll costs one GET /users?order_by=-updated_at&limit=100 (more
//     pages, of 500, only when more than 100 users changed, or were updated within the 2 s
//     overlap below the newest change) and one GET /users/count?created_at_before=…: two calls
//     on an idle instance. A deletion outside kubeclerk costs a resync: ceil(users/500) pages when
//     that is cheaper than the reconciles' batches, else every managed user is reported.
//   - Every FullReadInterval every cached user is read again: ceil(N/100) batches for the N
//     cached users, or ceil(users/500) pages of every user when that is fewer calls. With the
//     default interval (6 × MaxAge) that is, amortized, a sixth of it per sync period:
//     ceil(N/100)/6 (or ceil(users/500)/6) calls, e.g. 10,000 managed users cost about 17
//     calls per sync period on top of the polls.
//
// Start must run (manager.Runnable) for Observe to be answered; Poll, Observe, Remember and
// Forget may be called from any goroutine. The exported fields are read, never written, by
// Batch; set them before the first call.
type Batch struct {
	// Clerk is the API to read from.
	Clerk userLister
	// MaxAge is how long an observation is trusted without Clerk confirming it (the sync
	// period); required.
	MaxAge time.Duration
	// PollInterval is how often changed users are polled; 90% of MaxAge when zero, so that a
	// poll confirms the cache before its observations expire.
	PollInterval time.Duration
	// Window is how long a read waits for other reads to share its call; 20 ms when zero.
	Window time.Duration
	// FullReadInterval is how often every cached user is read again, to find what the change
	// poll cannot see (a change that kept its updated_at, or landed with one below the poll's
	// overlap); 6 × MaxAge when zero.
	FullReadInterval time.Duration
	// Managed returns the IDs of the users that objects are bound to. The first poll calls it
	// (it may block until the objects are known) and reads those users in the fewest calls.
	Managed func(ctx context.Context) ([]string, error)
	// Changed is called with the IDs of cached (managed) users that changed outside kubeclerk,
	// are gone, or whose lockout ended. Calls are never concurrent.
	Changed func(ctx context.Context, ids []string)
	// Log receives errors of the background work.
	Log logr.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	once     sync.Once
	pollMu   sync.Mutex // serializes polls (and the full reads and resyncs they run)
	reportMu sync.Mutex // serializes calls of Changed
	kick     chan struct{}
	lockKick chan struct{}

	mu      sync.Mutex // guards everything below
	cache   map[string]entry
	waiting map[string][]waiter  // IDs to read, with the reconciles waiting for them (none: a prefetch)
	reading map[string]readState // IDs whose batch read is in flight
	// lockouts maps cached users whose observation reports a finite lockout to when its end is
	// reported through Changed.
	lockouts map[string]time.Time
	// mark is where the change poll stands; census the deletion check's baseline.
	mark   watermark
	census census
	// ownDeletes are the users kubeclerk deleted that no count has accounted for yet.
	ownDeletes []ownDeletion
	// polled is set once a first poll learnt the watermark.
	polled bool
	// readsOpen is set once the first poll has been tried: until then batch reads wait, so that
	// a start reads each managed user once, in the cheaper of batches and a listing, and after
	// the watermark (which lets polls vouch for what was read).
	readsOpen bool
	// lastFull is when the last full read (or the start) began.
	lastFull time.Time
}

// entry is a cached observation of a user.
type entry struct {
	user clerk.User
	// readAt is when Clerk was last read for this user: the start of the request (batch read,
	// listing page) that returned this state, or when Remember recorded a write's answer.
	readAt time.Time
	// validAt is the time as of which user is known to be Clerk's state: readAt, or a later
	// poll that vouched for it.
	validAt time.Time
	// tracked is set when any later change of the user shows up in a poll (it was observed
	// after the first poll learnt the watermark), so that a poll may extend validAt.
	tracked bool
}

// supersedes reports whether e is at least as new as u read at readAt: a newer updated_at, or
// the same one read at the same time or later. Lockouts end without changing updated_at, so
// between two observations with one updated_at the later read wins.
func (e entry) supersedes(u clerk.User, readAt time.Time) bool {
	return e.user.UpdatedAt > u.UpdatedAt || e.user.UpdatedAt == u.UpdatedAt && !e.readAt.Before(readAt)
}

// lockoutEnd returns when the lockout that e reports ends, if it reports a finite one.
func (e entry) lockoutEnd() (time.Time, bool) {
	if !e.user.Locked || e.user.LockoutExpiresInSeconds == nil {
		return time.Time{}, false
	}
	return e.readAt.Add(time.Duration(*e.user.LockoutExpiresInSeconds) * time.Second), true
}

// waiter is a reconcile waiting in Observe.
type waiter struct {
	ch chan observation
	// notBefore is the earliest start of a read that may answer it.
	notBefore time.Time
}

// readState is a batch read in flight for one ID.
type readState struct {
	// forgotten is set when Forget dropped the ID while it was read: the answer is cached only
	// if a reconcile waits for it.
	forgotten bool
}

type observation struct {
	user *clerk.User
	err  error
}

func (o *Batch) init() {
	o.once.Do(func() {
		o.cache = map[string]entry{}
		o.waiting = map[string][]waiter{}
		o.reading = map[string]readState{}
		o.lockouts = map[string]time.Time{}
		o.kick = make(chan struct{}, 1)
		o.lockKick = make(chan struct{}, 1)
	})
}

func (o *Batch) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Batch) pollInterval() time.Duration {
	if o.PollInterval > 0 {
		return o.PollInterval
	}
	return o.MaxAge * 9 / 10
}

func (o *Batch) window() time.Duration {
	if o.Window > 0 {
		return o.Window
	}
	return defaultWindow
}

func (o *Batch) fullReadInterval() time.Duration {
	if o.FullReadInterval > 0 {
		return o.FullReadInterval
	}
	return 6 * o.MaxAge
}

// signal wakes whoever waits on ch, without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// trustedUntil returns when e stops being trusted: MaxAge after validAt, or before the lockout
// it reports ends (Clerk lifts a lockout without changing updated_at, so no poll would see it),
// whichever comes first.
func (o *Batch) trustedUntil(e entry) time.Time {
	until := e.validAt.Add(o.MaxAge)
	if end, ok := e.lockoutEnd(); ok {
		if t := end.Add(-lockoutRounding); t.Before(until) {
			until = t
		}
	}
	return until
}

// trusted reports whether id has an observation that is trusted at now. o.mu must be held.
func (o *Batch) trusted(id string, now time.Time) bool {
	c, ok := o.cache[id]
	return ok && now.Before(o.trustedUntil(c))
}

// store caches e and schedules the report of the end of the lockout it reports. o.mu must be
// held.
func (o *Batch) store(e entry) {
	id := e.user.ID
	o.cache[id] = e
	if end, ok := e.lockoutEnd(); ok {
		o.lockouts[id] = end.Add(lockoutRounding)
		signal(o.lockKick)
	} else {
		delete(o.lockouts, id)
	}
}

// drop removes id from the cache. o.mu must be held.
func (o *Batch) drop(id string) {
	delete(o.cache, id)
	delete(o.lockouts, id)
}

// keep stores u as read at readAt, unless the cache already holds a state at least as new (a
// write's answer, or a poll's, that came while this read was in flight), and returns the state
// kept. o.mu must be held.
func (o *Batch) keep(u clerk.User, readAt time.Time, tracked bool) clerk.User {
	if c, ok := o.cache[u.ID]; ok && c.supersedes(u, readAt) {
		return c.user
	}
	o.store(entry{user: u, readAt: readAt, validAt: readAt, tracked: tracked})
	return u
}

// Observe implements Observer: a cached observation that is trusted and was read at or after
// notBefore, else a read that shares its call with other reads and starts at or after
// notBefore. A notBefore later than now is taken as now. A user Clerk does not return is a
// not-found error.
func (o *Batch) Observe(ctx context.Context, userID string, notBefore time.Time) (*clerk.User, error) {
	o.init()
	o.mu.Lock()
	now := o.now()
	if notBefore.After(now) {
		notBefore = now // a read that starts from here on satisfies it, so that one read does
	}
	if c, ok := o.cache[userID]; ok && o.trusted(userID, now) && !c.readAt.Before(notBefore) {
		u := c.user
		o.mu.Unlock()
		return &u, nil
	}
	ch := make(chan observation, 1)
	o.waiting[userID] = append(o.waiting[userID], waiter{ch: ch, notBefore: notBefore})
	o.mu.Unlock()
	signal(o.kick)
	select {
	case res := <-ch:
		return res.user, res.err
	case <-ctx.Done():
		o.unwait(userID, ch)
		return nil, ctx.Err()
	}
}

// unwait takes the waiter with channel ch off the waiting set, unless a read answered it.
func (o *Batch) unwait(id string, ch chan observation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ws, queued := o.waiting[id]
	if !queued {
		return
	}
	ws = slices.DeleteFunc(ws, func(w waiter) bool { return w.ch == ch })
	if len(ws) == 0 {
		delete(o.waiting, id)
		return
	}
	o.waiting[id] = ws
}

// queue adds the ids that are not cached and trusted to the waiting set, as prefetches. o.mu
// must be held.
func (o *Batch) queue(ids []string, now time.Time) {
	for _, id := range ids {
		if _, queued := o.waiting[id]; !queued && !o.trusted(id, now) {
			o.waiting[id] = nil
		}
	}
}

// Remember implements Observer: u is what Clerk answered to a write, current as of now.
func (o *Batch) Remember(u *clerk.User) {
	if u == nil {
		return
	}
	o.init()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.keep(*u, o.now(), o.polled)
}

// Forget implements Observer: it drops the user's observation and its prefetch, and an answer
// in flight is not cached unless a reconcile waits for it. With deleted, the deletion is
// counted as kubeclerk's own, so that the next poll's count does not take it for one made
// outside kubeclerk (which costs a resync).
func (o *Batch) Forget(userID string, deleted bool) {
	o.init()
	o.mu.Lock()
	defer o.mu.Unlock()
	if deleted {
		d := ownDeletion{id: userID}
		if c, ok := o.cache[userID]; ok {
			d.createdAt = c.user.CreatedAt
		}
		o.ownDeletes = append(o.ownDeletes, d)
	}
	o.drop(userID)
	if ws, queued := o.waiting[userID]; queued && len(ws) == 0 {
		delete(o.waiting, userID)
	}
	if _, busy := o.reading[userID]; busy {
		o.reading[userID] = readState{forgotten: true}
	}
}

// Start runs the batched reads, the change poll and the lockout reports until ctx ends
// (manager.Runnable). Every goroutine it starts has ended when it returns.
func (o *Batch) Start(ctx context.Context) error {
	o.init()
	if o.MaxAge <= 0 {
		return errors.New("start the batched observer: MaxAge must be positive")
	}
	var wg sync.WaitGroup
	wg.Go(func() { o.pollLoop(ctx) })
	wg.Go(func() { o.lockoutLoop(ctx) })
	o.readLoop(ctx)
	wg.Wait()
	return nil
}

// readLoop runs batch reads of the waiting IDs, at most maxReadsInFlight at once, until ctx
// ends; it returns once its reads have ended.
func (o *Batch) readLoop(ctx context.Context) {
	slots := make(chan struct{}, maxReadsInFlight)
	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	window := time.NewTimer(0)
	defer window.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.kick:
		}
		// Give reads queued at about the same time (a startup, a resync) a moment to join.
		window.Reset(o.window())
		select {
		case <-ctx.Done():
			return
		case <-window.C:
		}
		for {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
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

// takeBatch marks up to batchSize waiting IDs as in flight and returns them, leaving their
// waiters in place. IDs a reconcile waits for go before IDs that are only prefetched; a
// prefetch that a write's answer or a poll made moot is dropped. Nothing is read before the
// first poll has been tried.
func (o *Batch) takeBatch() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.readsOpen {
		return nil
	}
	now := o.now()
	ids := make([]string, 0, min(batchSize, len(o.waiting)))
	for _, waited := range []bool{true, false} {
		for id, waiters := range o.waiting {
			if len(ids) == batchSize {
				break
			}
			if _, busy := o.reading[id]; busy || (len(waiters) > 0) != waited {
				continue
			}
			if !waited && o.trusted(id, now) {
				delete(o.waiting, id)
				continue
			}
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		o.reading[id] = readState{}
	}
	return ids
}

// read fetches ids in one GET /users and answers the reconciles that wait for them and asked
// for a read no later than its start. Reconciles that asked for a later read stay queued.
func (o *Batch) read(ctx context.Context, ids []string) {
	o.mu.Lock()
	start, tracked := o.now(), o.polled
	o.mu.Unlock()
	var users []clerk.User
	err := pausedError(o.Clerk)
	if err == nil {
		users, err = o.Clerk.ListUsers(ctx, clerk.ListUsersParams{UserIDs: ids, Limit: batchSize})
	}
	found := make(map[string]*clerk.User, len(users))
	for i := range users {
		found[users[i].ID] = &users[i]
	}
	o.Log.V(1).Info("Read Clerk users in a batch", "asked", len(ids), "found", len(users), "error", err)
	o.mu.Lock()
	again := false
	for _, id := range ids {
		rs := o.reading[id]
		delete(o.reading, id)
		var res observation
		switch u := found[id]; {
		case err != nil:
			res.err = fmt.Errorf("read Clerk users in a batch: %w", err)
		case u == nil:
			if c, ok := o.cache[id]; ok && c.readAt.Before(start) {
				o.drop(id)
			}
			res.err = notFound(id)
		case rs.forgotten && len(o.waiting[id]) == 0:
			res.user = u // no object manages it any more: not cached
		default:
			kept := o.keep(*u, start, tracked)
			res.user = &kept
		}
		if o.answer(id, res, start) {
			again = true
		}
	}
	o.mu.Unlock()
	if again {
		signal(o.kick)
	}
}

// answer gives res, the result of a read that started at start, to every reconcile waiting for
// id that asked for a read no later than start, and reports whether others still wait. An ID
// nobody else waits for leaves the waiting set. o.mu must be held.
func (o *Batch) answer(id string, res observation, start time.Time) (left bool) {
	waiters, queued := o.waiting[id]
	if !queued {
		return false
	}
	var rest []waiter
	for _, w := range waiters {
		if w.notBefore.After(start) {
			rest = append(rest, w)
			continue
		}
		r := res
		if r.user != nil {
			cp := *r.user
			r.user = &cp
		}
		w.ch <- r
	}
	if len(rest) == 0 {
		delete(o.waiting, id)
		return false
	}
	o.waiting[id] = rest
	return true
}

// pausedError returns a rate-limit error, without a call, while Clerk holds the key back after a
// 429 (when c tells): the reconciles waiting for a read hear it at once and come back when the
// pause ends, instead of each holding a worker for the whole pause.
func pausedError(c userLister) error {
	p, ok := c.(interface{ PausedUntil() time.Time })
	if !ok {
		return nil
	}
	if d := time.Until(p.PausedUntil()); d > 0 {
		return &clerk.LimiterError{Method: http.MethodGet, Path: "/users", RetryAfter: d, Err: errPaused}
	}
	return nil
}

// errPaused is the cause of the error pausedError returns.
var errPaused = errors.New("paused after Clerk answered 429 Too Many Requests")

// notFound is the error Clerk gives for a user that does not exist, for a user a batch read did
// not return.
func notFound(id string) error {
	return &clerk.APIError{StatusCode: http.StatusNotFound, Method: http.MethodGet, Path: "/users?user_id=" + id,
		Errors: []clerk.ErrorDetail{{Code: "resource_not_found", Message: "not found",
			LongMessage: "No user was found with id " + id}}}
}

// pollLoop polls for changed users every PollInterval until ctx ends.
func (o *Batch) pollLoop(ctx context.Context) {
	t := time.NewTicker(o.pollInterval())
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

// lockoutLoop reports the users whose lockout ended, as each ends, until ctx ends.
func (o *Batch) lockoutLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		wait := time.Hour // nothing scheduled: wait for a lockout to be stored
		if next := o.reportLockouts(ctx); !next.IsZero() {
			wait = next.Sub(o.now())
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.lockKick:
		}
	}
}

// reportLockouts reports through Changed the cached users whose lockout has ended, so that their
// objects are reconciled (and a declared lock enforced again) at once, and returns when the next
// one ends (zero if none is scheduled).
func (o *Batch) reportLockouts(ctx context.Context) time.Time {
	o.init()
	o.mu.Lock()
	now := o.now()
	var ended []string
	var next time.Time
	for id, at := range o.lockouts {
		switch {
		case !at.After(now):
			ended = append(ended, id)
			delete(o.lockouts, id)
		case next.IsZero() || at.Before(next):
			next = at
		}
	}
	o.mu.Unlock()
	if len(ended) > 0 {
		o.Log.V(1).Info("Lockouts of Clerk users ended", "users", len(ended))
		o.report(ctx, ended)
	}
	return next
}

// sweepPays reports whether listing all users (ceil(users/500) calls) reads n users in fewer
// calls than batches of 100 and the extra calls those need.
func sweepPays(users int64, n, extra int) bool {
	pages := max(1, (users+sweepPageSize-1)/sweepPageSize) // an empty instance still takes one call
	return n > 0 && pages < int64((n+batchSize-1)/batchSize+extra)
}

// sweep lists every user, newest updated_at first, 500 a page, and hands each page to fn with
// the time its request started. It stops at a short page or, when count > 0, once count users
// were listed. A user deleted while it pages shifts the later ones, so one may be missed:
// callers read users the sweep did not return one by one.
func (o *Batch) sweep(ctx context.Context, count int64, fn func(page []clerk.User, start time.Time)) error {
	for offset := 0; ; offset += sweepPageSize {
		start := o.now()
		page, err := o.Clerk.ListUsers(ctx, clerk.ListUsersParams{OrderBy: "-updated_at", Limit: sweepPageSize, Offset: offset})
		if err != nil {
			return fmt.Errorf("list all Clerk users: %w", err)
		}
		fn(page, start)
		if len(page) < sweepPageSize || count > 0 && int64(offset+len(page)) >= count {
			return nil
		}
	}
}

// Poll finds the users changed since the last poll, refreshes the cached ones and reports the
// ones whose change a plan can see through Changed; then every cached observation that polls
// track is current as of the poll. When the count of users created before the last watermark
// shows a deletion, every cached user is observed again, and the ones that changed or are gone
// are reported. Once FullReadInterval has passed since the last full read, every cached user is
// read again. Users whose lockout ended are reported. Polls run one at a time.
//
// The first poll learns the watermark and the deletion check's baseline, and reads the managed
// users (Managed, and every ID waiting to be read): by listing the whole instance when that
// takes fewer calls than batches, else by letting the batch reads go once the watermark is
// known.
func (o *Batch) Poll(ctx context.Context) error {
	o.init()
	o.pollMu.Lock()
	defer o.pollMu.Unlock()
	o.mu.Lock()
	first := !o.polled
	o.mu.Unlock()
	var err error
	if first {
		err = o.firstPoll(ctx)
		o.mu.Lock()
		o.readsOpen = true
		o.mu.Unlock()
		signal(o.kick)
	} else {
		err = o.nextPoll(ctx)
		o.mu.Lock()
		due := !o.now().Before(o.lastFull.Add(o.fullReadInterval()))
		o.mu.Unlock()
		if err == nil && due {
			err = o.fullRead(ctx)
		}
	}
	o.reportLockouts(ctx)
	return err
}

// firstPoll is Poll before a watermark is known.
func (o *Batch) firstPoll(ctx context.Context) error {
	if o.Managed != nil {
		// A retry after a failed first poll asks again; IDs already queued or trusted are skipped.
		ids, err := o.Managed(ctx)
		if err != nil {
			return fmt.Errorf("list the managed Clerk users: %w", err)
		}
		o.mu.Lock()
		o.queue(ids, o.now())
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
		if _, busy := o.reading[id]; !busy {
			toRead++
		}
	}
	o.mu.Unlock()

	// Batches need one more list: the newest user, for the watermark.
	if !sweepPays(count, toRead, 1) {
		pageStart := o.now()
		page, err := o.Clerk.ListUsers(ctx, clerk.ListUsersParams{OrderBy: "-updated_at", Limit: 1})
		if err != nil {
			return fmt.Errorf("list the newest Clerk user: %w", err)
		}
		o.mu.Lock()
		o.mark, o.polled, o.lastFull = newWatermark(page), true, start
		ids := o.refresh(page, pageStart)
		o.mu.Unlock()
		o.report(ctx, ids)
		o.Log.V(1).Info("First poll: managed users are read in batches", "users", count, "toRead", toRead)
		return o.baseline(ctx)
	}

	// A listing of every user, newest first: its first page gives the watermark; every user it
	// returns that is waiting to be read is observed as of its page. Any change after a page
	// was listed has a newer updated_at than the watermark, so the next poll finds it.
	pages := 0
	var ids []string
	err = o.sweep(ctx, count, func(page []clerk.User, pageStart time.Time) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if pages++; pages == 1 {
			// From here on, a write's answer (a reconcile answered by this page may write
			// while the next pages are listed) is newer than the watermark: polls vouch for it.
			o.mark, o.polled, o.lastFull = newWatermark(page), true, start
		}
		ids = append(ids, o.refresh(page, pageStart)...)
		for _, u := range page {
			if _, waited := o.waiting[u.ID]; !waited {
				continue
			}
			if _, busy := o.reading[u.ID]; busy {
				continue
			}
			kept := o.keep(u, pageStart, true)
			o.answer(u.ID, observation{user: &kept}, pageStart)
		}
	})
	o.report(ctx, ids)
	if pages == 0 {
		return err
	}
	// With the watermark known, users the listing missed (or all of the rest, if it failed
	// part way), and reconciles that asked for a later read, are read in batches, vouched for
	// by the next poll.
	o.mu.Lock()
	left := len(o.waiting)
	o.mu.Unlock()
	o.Log.V(1).Info("First poll: listed every user", "users", count, "toRead", toRead, "pages", pages,
		"leftToRead", left, "error", err)
	return errors.Join(err, o.baseline(ctx))
}

// baseline counts the users created before the first poll's watermark: the deletion check's
// first baseline. Own deletions recorded until the count returns are reflected in it (or may
// be: those recorded while it ran), so none is carried to the next poll.
func (o *Batch) baseline(ctx context.Context) error {
	o.mu.Lock()
	cutoff := o.mark.mark
	o.mu.Unlock()
	var below int64
	if cutoff > 0 { // nobody was created before the epoch
		n, err := o.Clerk.CountUsers(ctx, clerk.ListUsersParams{CreatedBefore: cutoff})
		if err != nil {
			return fmt.Errorf("count Clerk users created before %d: %w", cutoff, err)
		}
		below = n
	}
	o.mu.Lock()
	o.census, o.ownDeletes = census{known: true, below: below}, nil
	o.mu.Unlock()
	return nil
}

// nextPoll is Poll once a watermark is known.
func (o *Batch) nextPoll(ctx context.Context) error {
	start := o.now()
	o.mu.Lock()
	from, base := o.mark, o.census
	o.mu.Unlock()
	cutoff := from.mark

	// The first page is small, as an idle instance has nothing to page through; later pages
	// (many users changed, e.g. by kubeclerk itself) take Clerk's largest page. Each page is
	// taken in as it comes, so that a poll through many changes holds one page at a time.
	scan := from.scan()
	var ids []string
	changed := 0
	for offset, limit := 0, batchSize; ; offset, limit = offset+limit, sweepPageSize {
		pageStart := o.now()
		page, err := o.Clerk.ListUsers(ctx, clerk.ListUsersParams{OrderBy: "-updated_at", Limit: limit, Offset: offset})
		if err != nil {
			// The users already refreshed are reported; the watermark stays, so the next
			// poll lists the rest again.
			o.report(ctx, ids)
			return fmt.Errorf("list changed Clerk users: %w", err)
		}
		changes, done := scan.step(page, limit)
		changed += len(changes)
		o.mu.Lock()
		ids = append(ids, o.refresh(page, pageStart)...)
		o.mu.Unlock()
		if done {
			break
		}
	}
	next := scan.end()

	// Count after listing, users created before the last watermark only: a user created since
	// has a created_at at or after it, so no creation can invent or hide a deletion.
	o.mu.Lock()
	own := o.ownDeletes
	o.ownDeletes = nil
	o.mu.Unlock()
	var count int64
	if cutoff > 0 {
		var err error
		if count, err = o.Clerk.CountUsers(ctx, clerk.ListUsersParams{CreatedBefore: cutoff}); err != nil {
			o.mu.Lock()
			o.ownDeletes = append(own, o.ownDeletes...)
			o.mu.Unlock()
			o.report(ctx, ids)
			return fmt.Errorf("count Clerk users created before %d: %w", cutoff, err)
		}
	}
	o.mu.Lock()
	deleted, after, carry := base.check(cutoff, next.mark, count, scan.listed, own, o.ownDeletes)
	o.ownDeletes = carry
	gone := o.dropUnlisted(cutoff, start, scan.listed)
	managed := len(o.cache)
	o.mu.Unlock()
	ids = append(ids, gone...)
	users := count
	for _, created := range scan.listed {
		if created >= cutoff {
			users++
		}
	}
	o.Log.V(1).Info("Polled Clerk for changed users", "changed", changed, "usersBeforeCutoff", count,
		"deletion", deleted, "gone", len(gone))
	if deleted {
		ids = append(ids, o.resync(ctx, users, managed)...)
	}

	o.mu.Lock()
	if base.known {
		// Every change since the last poll was listed and every deletion counted: the tracked
		// observations are current as of the start of this poll.
		for id, c := range o.cache {
			if c.tracked && c.validAt.Before(start) {
				c.validAt = start
				o.cache[id] = c
			}
		}
	}
	o.mark, o.census = next, after
	o.mu.Unlock()

	o.report(ctx, ids)
	return nil
}

// dropUnlisted drops the cached users that the count does not cover (created at or after
// cutoff) and that the listing would have returned had they still existed (observed before the
// poll started), and returns their IDs. o.mu must be held.
func (o *Batch) dropUnlisted(cutoff int64, start time.Time, listed map[string]int64) []string {
	var ids []string
	for id, c := range o.cache {
		if _, ok := listed[id]; !ok && c.user.CreatedAt >= cutoff && c.readAt.Before(start) {
			o.drop(id)
			ids = append(ids, id)
		}
	}
	return ids
}

// report hands the IDs of changed users to Changed, each once.
func (o *Batch) report(ctx context.Context, ids []string) {
	if len(ids) == 0 || o.Changed == nil {
		return
	}
	slices.Sort(ids)
	o.reportMu.Lock()
	defer o.reportMu.Unlock()
	o.Changed(ctx, slices.Compact(ids))
}

// refresh stores the listed users that are managed (cached, or being read for a reconcile) as
// read at start, unless the cache holds a state at least as new, and returns the IDs of the
// cached ones whose change a plan can see. o.mu must be held.
func (o *Batch) refresh(users []clerk.User, start time.Time) []string {
	var ids []string
	for _, u := range users {
		c, cached := o.cache[u.ID]
		rs, busy := o.reading[u.ID]
		switch {
		case cached:
			if c.supersedes(u, start) {
				continue
			}
			o.store(entry{user: u, readAt: start, validAt: start, tracked: o.polled})
			// Only a change the plan can see needs a reconcile: not a sign-in, and not
			// kubeclerk's own DisableMFA, whose answer carries no updated_at.
			if !sameState(c.user, u) {
				ids = append(ids, u.ID)
			}
		case busy && !rs.forgotten:
			// A read in flight may have seen the user before this change; the newer state wins.
			o.store(entry{user: u, readAt: start, validAt: start, tracked: o.polled})
		}
	}
	return ids
}

// resync observes every cached user again after the count showed a deletion, and returns the
// IDs of those that changed or are gone: by listing every user when that takes fewer calls
// than batches, else (or when the listing fails) by dropping the cache and reporting every
// user, so that their reconciles read them again.
func (o *Batch) resync(ctx context.Context, users int64, managed int) []string {
	dropAll := func() []string {
		o.mu.Lock()
		defer o.mu.Unlock()
		ids := make([]string, 0, len(o.cache))
		for id := range o.cache {
			o.drop(id)
			ids = append(ids, id)
		}
		return ids
	}
	if !sweepPays(users, managed, 0) {
		return dropAll()
	}
	var ids []string
	start := o.now()
	listed := map[string]bool{}
	err := o.sweep(ctx, users, func(page []clerk.User, pageStart time.Time) {
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, u := range page {
			listed[u.ID] = true
		}
		ids = append(ids, o.refresh(page, pageStart)...)
	})
	if err != nil {
		o.Log.Error(err, "Listing every Clerk user after a deletion failed; every managed user is read again")
		return append(ids, dropAll()...)
	}
	// The users the listing did not return are gone (or were shifted past a page by another
	// deletion): their reconciles read them again.
	o.mu.Lock()
	defer o.mu.Unlock()
	return append(ids, o.dropMissing(listed, start)...)
}

// dropMissing drops the cached users observed before start that listed does not hold, and
// returns their IDs. o.mu must be held.
func (o *Batch) dropMissing(listed map[string]bool, start time.Time) []string {
	var ids []string
	for id, c := range o.cache {
		if !listed[id] && c.readAt.Before(start) {
			o.drop(id)
			ids = append(ids, id)
		}
	}
	return ids
}

// fullRead reads every cached user again, whatever the change poll saw: in batches of 100, or
// by listing every user when that takes fewer calls. It stores what it reads, and reports the
// users whose state changed and drops and reports those that are gone.
func (o *Batch) fullRead(ctx context.Context) error {
	o.mu.Lock()
	start := o.now()
	ids := slices.Sorted(maps.Keys(o.cache))
	users := o.census.below
	o.mu.Unlock()

	var changed []string
	defer func() { o.report(ctx, changed) }()
	if sweepPays(users, len(ids), 0) {
		listed := map[string]bool{}
		err := o.sweep(ctx, 0, func(page []clerk.User, pageStart time.Time) {
			o.mu.Lock()
			defer o.mu.Unlock()
			for _, u := range page {
				listed[u.ID] = true
			}
			changed = append(changed, o.refresh(page, pageStart)...)
		})
		if err != nil {
			return fmt.Errorf("read every cached Clerk user again: %w", err)
		}
		o.mu.Lock()
		changed = append(changed, o.dropMissing(listed, start)...)
		o.mu.Unlock()
	} else {
		for batch := range slices.Chunk(ids, batchSize) {
			batchStart := o.now()
			found, err := o.Clerk.ListUsers(ctx, clerk.ListUsersParams{UserIDs: batch, Limit: batchSize})
			if err != nil {
				return fmt.Errorf("read every cached Clerk user again: %w", err)
			}
			listed := make(map[string]bool, len(found))
			for _, u := range found {
				listed[u.ID] = true
			}
			o.mu.Lock()
			changed = append(changed, o.refresh(found, batchStart)...)
			for _, id := range batch {
				if c, ok := o.cache[id]; ok && !listed[id] && c.readAt.Before(batchStart) {
					o.drop(id)
					changed = append(changed, id)
				}
			}
			o.mu.Unlock()
		}
	}
	o.mu.Lock()
	o.lastFull = start
	o.mu.Unlock()
	o.Log.V(1).Info("Read every cached Clerk user again", "users", len(ids), "changed", len(changed))
	return nil
}

// sameState reports whether two observations of a user differ only in timestamps (the seconds
// left on a finite lockout count down: any finite lockout is one state).
func sameState(a, b clerk.User) bool {
	for _, u := range []*clerk.User{&a, &b} {
		u.UpdatedAt, u.LastSignInAt, u.LastActiveAt = 0, nil, nil
		if u.LockoutExpiresInSeconds != nil {
			u.LockoutExpiresInSeconds = new(int64(0))
		}
	}
	return reflect.DeepEqual(a, b)
}

// Offer takes a user's state pushed by Clerk (a verified webhook event) as an observation, when
// it is newer than what is cached: a later updated_at. Only cached (managed) users are taken, so
// an event for a user no object manages costs nothing. The state is dated by its updated_at (at
// most now): it was Clerk's state then, and a poll may vouch for it later as for a read. A taken
// change the plan can see is reported through Changed at once, so that the objects bound to the
// user are reconciled without waiting for the next poll. Events can come late, twice or out of
// order: an older or equal state is ignored. It reports whether the state was taken.
func (o *Batch) Offer(ctx context.Context, u clerk.User) bool {
	o.init()
	o.mu.Lock()
	c, cached := o.cache[u.ID]
	if !cached || c.user.UpdatedAt >= u.UpdatedAt {
		o.mu.Unlock()
		return false
	}
	at := time.UnixMilli(u.UpdatedAt)
	if now := o.now(); at.After(now) {
		at = now
	}
	if at.Before(c.readAt) {
		// Clerk's clock is behind ours: the state is still the newest known, read no earlier
		// than the cached one.
		at = c.readAt
	}
	o.store(entry{user: u, readAt: at, validAt: at, tracked: c.tracked})
	changed := !sameState(c.user, u)
	o.mu.Unlock()
	if changed {
		o.report(ctx, []string{u.ID})
	}
	return true
}

// Gone takes Clerk's word (a verified user.deleted event) that a user was deleted: a cached
// user is dropped and reported through Changed, so that its objects find out at once (their
// reconcile reads Clerk and reports UserDeleted, or creates the user again). It reports whether
// the user was cached.
func (o *Batch) Gone(ctx context.Context, userID string) bool {
	o.init()
	o.mu.Lock()
	_, cached := o.cache[userID]
	if cached {
		o.drop(userID)
	}
	o.mu.Unlock()
	if cached {
		o.report(ctx, []string{userID})
	}
	return cached
}
