package observe

import (
	"maps"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// overlapMS is how far below the watermark (in Unix ms of Clerk's clock) a change poll keeps
// listing, so that a change whose updated_at lands a little behind the newest one already seen
// (Clerk's servers do not share one clock, and a write's updated_at is taken before it commits)
// is still found.
const overlapMS = 2000

// watermark is where the change poll stands: the newest updated_at it has seen, and every user
// it has seen with an updated_at within overlapMS of that, with the updated_at it saw.
//
// A poll lists users newest updated_at first, down to the first user below mark−overlapMS (or a
// short page). A listed user is a change unless seen holds it with the same updated_at. Limits,
// each caught by the full re-read (Batch.FullReadInterval):
//   - a user changed again within the millisecond in which it was seen keeps its (id,
//     updated_at): that second change cannot be told apart from the state already seen;
//   - a change that lands with an updated_at more than overlapMS below the watermark is below
//     every later poll's floor and is not listed.
type watermark struct {
	// mark is the newest updated_at seen (Unix ms); 0 before the first poll.
	mark int64
	// seen maps the ID of each user seen with updated_at >= mark−overlapMS to that updated_at.
	seen map[string]int64
}

// newWatermark returns the watermark of a first listing, newest updated_at first: its newest
// user, and the users within the overlap of it. Users within the overlap that the page does not
// hold are taken for changes by the next poll, which costs nothing but their refresh.
func newWatermark(page []clerk.User) watermark {
	s := changeScan{seen: map[string]int64{}, listed: map[string]int64{}}
	for _, u := range page {
		s.mark = max(s.mark, u.UpdatedAt)
	}
	s.floor = s.mark - overlapMS
	s.step(page, len(page))
	return s.end()
}

// changeScan is a change poll in progress: the watermark it started from, and what its pages
// listed so far. It owns its maps (scan copies the watermark's), so the watermark a poll started
// from stays as it was, and step updates the scan in place: a poll of N changed users in pages
// of 500 allocates O(N), not a copy of both maps per page.
type changeScan struct {
	// floor is the updated_at below which the poll stops: the starting mark − overlapMS. It does
	// not move while the poll pages, so that a change found on the first page does not hide the
	// older ones on later pages.
	floor int64
	// mark is the newest updated_at seen, this poll included.
	mark int64
	// seen is the starting watermark's seen and every user this poll listed within the window.
	seen map[string]int64
	// listed maps each user this poll listed within the window to its created_at, for the
	// deletion check (census.check).
	listed map[string]int64
}

// scan starts a change poll from w.
func (w watermark) scan() changeScan {
	seen := maps.Clone(w.seen)
	if seen == nil {
		seen = map[string]int64{}
	}
	return changeScan{floor: w.mark - overlapMS, mark: w.mark, seen: seen, listed: map[string]int64{}}
}

// step takes in one page of a listing ordered by -updated_at, asked for with limit: it returns
// the users of the page that are changes (their (id, updated_at) not seen before, in this poll
// or the last ones) and whether the poll is done (the page reached the floor, or was short), and
// records the page in s. A user listed twice (offset paging shifts when users change while the
// poll pages) is a change at most once.
func (s *changeScan) step(page []clerk.User, limit int) (changes []clerk.User, done bool) {
	done = len(page) < limit
	for _, u := range page {
		if u.UpdatedAt < s.floor {
			done = true
			break
		}
		if at, ok := s.seen[u.ID]; !ok || at != u.UpdatedAt {
			changes = append(changes, u)
		}
		s.seen[u.ID] = u.UpdatedAt
		s.listed[u.ID] = u.CreatedAt
		s.mark = max(s.mark, u.UpdatedAt)
	}
	return changes, done
}

// end returns the watermark after the poll: the newest updated_at seen, and the users seen
// within the overlap of it.
func (s changeScan) end() watermark {
	seen := make(map[string]int64, len(s.seen))
	for id, at := range s.seen {
		if at >= s.mark-overlapMS {
			seen[id] = at
		}
	}
	return watermark{mark: s.mark, seen: seen}
}

// census is the deletion check's baseline: how many users were created before the cutoff (the
// watermark of the last poll, in Clerk's clock), as of the last poll's count. Counting only
// users created before a cutoff taken from an earlier listing keeps creations out of the
// comparison: a user created while a poll runs has a created_at at or after the cutoff.
type census struct {
	// known is set once a count established the baseline.
	known bool
	// below is the number of users created before the cutoff.
	below int64
}

// ownDeletion is a user kubeclerk deleted itself (Forget with deleted true).
type ownDeletion struct {
	id string
	// createdAt is the user's created_at (Unix ms) as last observed; 0 when it was not cached,
	// which counts it as created before any cutoff (kubeclerk observes a user before it deletes
	// it, so such a user is one it has known for a while).
	createdAt int64
}

// check compares a poll's count with the baseline and returns whether users were deleted
// outside kubeclerk, the baseline for the next poll and the own deletions to carry to it.
//
//   - cutoff is the last poll's watermark and count the number of users with created_at <
//     cutoff now, counted after this poll's listing; next is this poll's watermark.
//   - listed maps each user the listing returned within its window to its created_at. Every
//     user created at or after cutoff that existed when the listing began is in it, as its
//     updated_at is at least its created_at, which is above the listing's floor.
//   - own are the deletions kubeclerk recorded before the count was sent: the count reflects
//     them. late are those recorded since: the count may or may not reflect them.
//
// A deletion happened when count < below − own deletions of users created before cutoff. The
// next baseline is count + the listed users created in [cutoff, next), less those that own
// deleted before the count. A late deletion of a user created before cutoff is dropped: it
// makes at most one deletion appear (this poll or the next), which costs a resync, never hides
// one. A late deletion of a listed user created in [cutoff, next) is in the next baseline for
// sure, so it is carried to the next poll, which subtracts it.
func (c census) check(cutoff, next, count int64, listed map[string]int64, own, late []ownDeletion) (
	deleted bool, after census, carry []ownDeletion) {
	expected := c.below
	below := count
	for _, created := range listed {
		if created >= cutoff && created < next {
			below++
		}
	}
	createdAt := func(d ownDeletion) (int64, bool) {
		if created, ok := listed[d.id]; ok {
			return created, true
		}
		return d.createdAt, false
	}
	for _, d := range own {
		switch created, wasListed := createdAt(d); {
		case created < cutoff:
			expected--
		case wasListed && created < next:
			below-- // listed, then deleted before the count
		}
	}
	for _, d := range late {
		if created, wasListed := createdAt(d); wasListed && created >= cutoff && created < next {
			carry = append(carry, d)
		}
	}
	return c.known && count < expected, census{known: true, below: below}, carry
}
