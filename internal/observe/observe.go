// Package observe owns what kubeclerk knows of Clerk users between reconciles: the reads that
// answer them, and the rules that say how long an observation may be trusted. It never writes to
// Clerk and never touches Kubernetes objects; the controller reports what it learns
// (Remember, Forget) and is told which users changed (Batch.Changed).
//
// PerObject reads a user per Observe and keeps nothing. Batch keeps a cache, fed by batched
// reads and a change poll; the rest of this comment describes its state and the invariants
// that make the cache safe to answer from.
//
// # Batch state
//
// Each cached user (an entry) holds the user as Clerk returned it and:
//   - readAt: when Clerk was last read for it, that is the start of the request (batch read,
//     listing page, change-poll page, full read) that returned this state, or when Remember
//     recorded a write's answer;
//   - validAt: the time as of which the state is known to be Clerk's: readAt, or the start of a
//     later change poll that vouched for it;
//   - tracked: it was observed after the first poll learnt the watermark, so that any later
//     change of it shows up in a poll.
//
// Beside the cache: the waiting set (IDs to read, each with the reconciles waiting for it and
// the notBefore each asked for; an ID without waiters is a prefetch), the reads in flight, the
// lockout reports scheduled, the watermark (newest updated_at polled and the users seen within
// an overlap of 2 s below it), the census (users created before the watermark, as last
// counted) and the own deletions not yet counted.
//
// # Invariants
//
//   - Trust: an entry is trusted while now < validAt + MaxAge and, when it reports a finite
//     lockout (locked, lockout_expires_in_seconds n), while now < readAt + n − 1 s (Clerk
//     lifts a lockout without changing updated_at, and rounds n). A poll extends validAt, never
//     readAt: it cannot extend a lockout's trust. A second after such a lockout ends (readAt +
//     n + 1 s, by a timer, or by the next poll), the user is reported through Changed, so that
//     its object is reconciled at once.
//   - Freshness: Observe(id, notBefore) answers from the cache only an entry that is trusted and
//     has readAt >= notBefore (any trusted entry for a zero notBefore). Otherwise it waits for a
//     read whose request started at or after notBefore: a batch read (or a page of the start's
//     listing) that started earlier, even one already in flight when the reconcile asked, does
//     not answer it; the ID stays queued and is read again. A notBefore later than the call is
//     taken as the time of the call.
//   - Keep newer: an answer never replaces a cached state at least as new as itself: one with a
//     newer updated_at, or the same updated_at read at the same time or later.
//   - Vouching: a change poll lists, newest updated_at first, every user updated since the
//     watermark (less the overlap), refreshes the cached ones and reports those whose state a
//     plan can see. It then counts the users created before the last watermark: a count lower
//     than the census (less kubeclerk's own deletions) means a deletion outside kubeclerk, and
//     every cached user is observed again (resync). A cached user created at or after the last
//     watermark that the listing did not return is gone, and is dropped and reported. After
//     that, and only for tracked entries, validAt becomes the poll's start.
//   - Safety net: every FullReadInterval every cached user is read again, which finds what the
//     change poll cannot (a change that kept its updated_at, or that landed with an updated_at
//     older than the overlap); the changed and the gone are reported.
//   - Forget drops an entry and its prefetch, and an answer in flight for it is not cached
//     unless a reconcile waits for it: an object deleted (with Orphan, or while Observe) leaves
//     nothing behind.
//   - Background work: every goroutine Batch.Start starts (batch reads, the poll loop, the
//     lockout timer) has ended when Start returns; polls run one at a time (Poll may be called
//     beside the poll loop), and Changed is never called concurrently.
//
// # Limits
//
// What the polls miss, the full read finds within FullReadInterval:
//   - a user changed again within the millisecond in which a poll saw it keeps its (id,
//     updated_at), and a change that lands with an updated_at more than the overlap below the
//     watermark is below every later poll's floor;
//   - a creation with a created_at before the watermark (an import) raises the count as a
//     deletion lowers it;
//   - an own deletion is subtracted from the count it was recorded before; one recorded while
//     the count was in flight is dropped (at most one needless resync). One that Clerk applied
//     before a count but whose answer came after that poll ended is subtracted from the next
//     count too, which can hide one outside deletion.
//
// Offset paging shifts when users are deleted while a listing pages: a user may be missed. The
// start reads it in a batch; a poll takes it for gone and reports it, and its reconcile reads it.
package observe

import (
	"context"
	"time"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// Observer reads the current state of Clerk users for reconciles. It is the one seam through
// which a reconcile reads a bound user.
type Observer interface {
	// Observe returns the Clerk user with the given ID, or an error for which clerk.IsNotFound
	// is true when the user does not exist. The observation was read from Clerk (a read of
	// this user: a batch, a listing page that held it, or the answer of a write) at or after
	// notBefore, and is still trusted by the freshness rules (MaxAge, lockout expiry). A zero
	// notBefore asks only for a trusted observation.
	Observe(ctx context.Context, userID string, notBefore time.Time) (*clerk.User, error)
	// Remember records u as Clerk confirmed it in answer to a write made just now.
	Remember(u *clerk.User)
	// Forget drops what is known of a user: it is gone (deleted true when kubeclerk deleted it
	// itself, so that the next change poll does not take it for an outside deletion), or no
	// object manages it any more.
	Forget(userID string, deleted bool)
}

// UserGetter is the read PerObject needs; *clerk.Client implements it.
type UserGetter interface {
	GetUser(ctx context.Context, id string) (*clerk.User, error)
}

// PerObject observes each user with one GET /users/{id} per Observe: every observation is
// fresh, nothing is cached.
type PerObject struct {
	// Clerk is the API to read from.
	Clerk UserGetter
}

// Observe implements Observer with one GET /users/{id}; the read is always after notBefore.
func (o PerObject) Observe(ctx context.Context, userID string, _ time.Time) (*clerk.User, error) {
	return o.Clerk.GetUser(ctx, userID)
}

// Remember implements Observer; every Observe reads anyway.
func (PerObject) Remember(*clerk.User) {}

// Forget implements Observer; nothing is kept.
func (PerObject) Forget(string, bool) {}
