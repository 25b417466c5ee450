package observe

import (
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// user is a listed user with an updated_at (and a created_at long before).
func user(id string, updatedAt int64) clerk.User {
	return clerk.User{ID: id, CreatedAt: 1, UpdatedAt: updatedAt}
}

// page is one listing page of a change poll, asked for with limit.
type page struct {
	users []clerk.User
	limit int
}

func TestWatermarkStep(t *testing.T) {
	for _, c := range []struct {
		name string
		from watermark
		// pages are the poll's pages; it must be done at the last one and not before.
		pages       []page
		wantChanges []string
		want        watermark
	}{{
		name: "several users in the watermark's millisecond, across a page boundary",
		from: watermark{mark: 10_000, seen: map[string]int64{"a": 10_000}},
		pages: []page{
			{[]clerk.User{user("a", 10_000), user("b", 10_000)}, 2},
			{[]clerk.User{user("c", 10_000), user("old", 5_000)}, 2},
		},
		wantChanges: []string{"b", "c"},
		want:        watermark{mark: 10_000, seen: map[string]int64{"a": 10_000, "b": 10_000, "c": 10_000}},
	}, {
		name: "users seen by the last poll, unchanged, are no changes",
		from: watermark{mark: 10_000, seen: map[string]int64{"a": 10_000, "b": 9_000}},
		pages: []page{
			{[]clerk.User{user("a", 10_000), user("b", 9_000), user("old", 7_000)}, 3},
		},
		want: watermark{mark: 10_000, seen: map[string]int64{"a": 10_000, "b": 9_000}},
	}, {
		name: "a user changed again in the millisecond it was seen in cannot be told apart (the full read finds it)",
		from: watermark{mark: 10_000, seen: map[string]int64{"a": 10_000}},
		pages: []page{
			{[]clerk.User{user("a", 10_000), user("old", 1_000)}, 100},
		},
		want: watermark{mark: 10_000, seen: map[string]int64{"a": 10_000}},
	}, {
		name: "a user changed again in a later millisecond is a change",
		from: watermark{mark: 10_000, seen: map[string]int64{"a": 10_000}},
		pages: []page{
			{[]clerk.User{user("a", 10_001), user("old", 1_000)}, 100},
		},
		wantChanges: []string{"a"},
		want:        watermark{mark: 10_001, seen: map[string]int64{"a": 10_001}},
	}, {
		name: "a late change with an updated_at inside the overlap is a change",
		from: watermark{mark: 10_000, seen: map[string]int64{"a": 10_000}},
		pages: []page{
			{[]clerk.User{user("a", 10_000), user("late", 8_000), user("old", 1_000)}, 100},
		},
		wantChanges: []string{"late"},
		want:        watermark{mark: 10_000, seen: map[string]int64{"a": 10_000, "late": 8_000}},
	}, {
		name: "a late change with an updated_at below the overlap is not listed (the full read finds it)",
		from: watermark{mark: 10_000, seen: map[string]int64{"a": 10_000}},
		pages: []page{
			{[]clerk.User{user("a", 10_000), user("late", 7_999), user("old", 1_000)}, 100},
		},
		want: watermark{mark: 10_000, seen: map[string]int64{"a": 10_000}},
	}, {
		name: "a user listed twice as offset paging shifts is one change",
		from: watermark{mark: 10_000, seen: map[string]int64{}},
		pages: []page{
			{[]clerk.User{user("x", 12_000), user("y", 11_000)}, 2},
			// z changed while the poll paged and moved to the front: y slid onto page 2.
			{[]clerk.User{user("y", 11_000), user("old", 1_000)}, 500},
		},
		wantChanges: []string{"x", "y"},
		want:        watermark{mark: 12_000, seen: map[string]int64{"x": 12_000, "y": 11_000}},
	}, {
		name: "the floor stays where the poll started: a new mark does not hide older changes on later pages",
		from: watermark{mark: 10_000, seen: map[string]int64{}},
		pages: []page{
			{[]clerk.User{user("new", 50_000)}, 1},
			{[]clerk.User{user("older", 9_000)}, 1},
			{[]clerk.User{user("old", 1_000)}, 1},
		},
		wantChanges: []string{"new", "older"},
		want:        watermark{mark: 50_000, seen: map[string]int64{"new": 50_000}},
	}, {
		name: "users seen drop out once the mark moves past the overlap",
		from: watermark{mark: 10_000, seen: map[string]int64{"a": 10_000, "b": 9_000}},
		pages: []page{
			{[]clerk.User{user("c", 11_500), user("a", 10_000), user("b", 9_000), user("old", 100)}, 100},
		},
		wantChanges: []string{"c"},
		want:        watermark{mark: 11_500, seen: map[string]int64{"c": 11_500, "a": 10_000}},
	}, {
		name: "a short page ends the poll",
		from: watermark{mark: 10_000, seen: map[string]int64{"a": 10_000}},
		pages: []page{
			{[]clerk.User{user("a", 10_000)}, 100},
		},
		want: watermark{mark: 10_000, seen: map[string]int64{"a": 10_000}},
	}, {
		name:  "an empty instance",
		from:  watermark{},
		pages: []page{{nil, 100}},
		want:  watermark{seen: map[string]int64{}},
	}} {
		t.Run(c.name, func(t *testing.T) {
			fromSeen := maps.Clone(c.from.seen)
			s := c.from.scan()
			var changes []string
			for i, p := range c.pages {
				ch, done := s.step(p.users, p.limit)
				for _, u := range ch {
					changes = append(changes, u.ID)
				}
				if last := i == len(c.pages)-1; done != last {
					t.Fatalf("page %d: done = %v, want %v", i, done, last)
				}
			}
			if diff := cmp.Diff(c.wantChanges, changes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.want, s.end(), cmp.AllowUnexported(watermark{})); diff != "" {
				t.Errorf("watermark after the poll (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(fromSeen, c.from.seen); diff != "" {
				t.Errorf("the poll changed the watermark it started from (-before +after):\n%s", diff)
			}
		})
	}
}

func TestNewWatermark(t *testing.T) {
	got := newWatermark([]clerk.User{user("a", 10_000), user("b", 10_000), user("c", 8_500), user("d", 7_000)})
	want := watermark{mark: 10_000, seen: map[string]int64{"a": 10_000, "b": 10_000, "c": 8_500}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(watermark{})); diff != "" {
		t.Errorf("watermark of a first listing (-want +got):\n%s", diff)
	}
}

func TestCensusCheck(t *testing.T) {
	base := census{known: true, below: 300}
	const cutoff, next = 1000, 2000
	for _, c := range []struct {
		name      string
		from      census
		cutoff    int64 // 0: the const cutoff
		next      int64 // 0: the const next
		count     int64
		listed    map[string]int64
		own, late []ownDeletion
		want      bool // a deletion outside kubeclerk
		wantBelow int64
		wantCarry []string
	}{{
		name: "nothing happened", from: base, count: 300,
		want: false, wantBelow: 300,
	}, {
		name: "a deletion is found", from: base, count: 299,
		want: true, wantBelow: 299,
	}, {
		name: "a creation after the listing, before the count, is not counted: no deletion invented",
		from: base, count: 300, // the new user's created_at is after the cutoff
		want: false, wantBelow: 300,
	}, {
		name: "a creation after the last count is listed now and joins the baseline",
		from: base, count: 300, listed: map[string]int64{"new": 1500, "old": 500},
		want: false, wantBelow: 301,
	}, {
		name: "a creation does not hide a deletion",
		from: base, count: 299, listed: map[string]int64{"new": 1500},
		want: true, wantBelow: 300,
	}, {
		name: "a user created in the new watermark's millisecond joins a later baseline, not this one",
		from: base, count: 300, listed: map[string]int64{"new": next},
		want: false, wantBelow: 300,
	}, {
		name: "kubeclerk's own deletion is no deletion",
		from: base, count: 299, own: []ownDeletion{{id: "mine", createdAt: 500}},
		want: false, wantBelow: 299,
	}, {
		name: "an own deletion does not hide an outside one",
		from: base, count: 298, own: []ownDeletion{{id: "mine", createdAt: 500}},
		want: true, wantBelow: 298,
	}, {
		name: "an own deletion of a user it did not know the age of counts as an old user",
		from: base, count: 299, own: []ownDeletion{{id: "mine"}},
		want: false, wantBelow: 299,
	}, {
		name: "an own deletion of a user created after the cutoff, gone before the listing, is in neither count",
		from: base, count: 300, own: []ownDeletion{{id: "mine", createdAt: 1500}},
		want: false, wantBelow: 300,
	}, {
		name: "an own deletion of a listed user created after the cutoff leaves the next baseline",
		from: base, count: 300, listed: map[string]int64{"mine": 1500},
		own:  []ownDeletion{{id: "mine", createdAt: 1500}},
		want: false, wantBelow: 300,
	}, {
		name: "the listing tells the created_at of an own deletion that was not cached",
		from: base, count: 300, listed: map[string]int64{"mine": 1500},
		own:  []ownDeletion{{id: "mine"}},
		want: false, wantBelow: 300,
	}, {
		name: "a late own deletion of an old user is dropped: the count may reflect it, which costs a resync",
		from: base, count: 299, late: []ownDeletion{{id: "mine", createdAt: 500}},
		want: true, wantBelow: 299,
	}, {
		name: "a late own deletion of an old user the count does not reflect yet is dropped too",
		from: base, count: 300, late: []ownDeletion{{id: "mine", createdAt: 500}},
		want: false, wantBelow: 300,
	}, {
		name: "a late own deletion of a listed new user is carried: the next baseline holds it",
		from: base, count: 300, listed: map[string]int64{"mine": 1500},
		late: []ownDeletion{{id: "mine", createdAt: 1500}},
		want: false, wantBelow: 301, wantCarry: []string{"mine"},
	}, {
		name: "the next poll subtracts the carried deletion",
		from: census{known: true, below: 301}, cutoff: next, next: 3000, count: 300,
		own:  []ownDeletion{{id: "mine", createdAt: 1500}},
		want: false, wantBelow: 300,
	}, {
		name: "the first count sets the baseline",
		from: census{}, count: 250,
		want: false, wantBelow: 250,
	}} {
		t.Run(c.name, func(t *testing.T) {
			cut, nxt := int64(cutoff), int64(next)
			if c.cutoff != 0 {
				cut, nxt = c.cutoff, c.next
			}
			deleted, after, carry := c.from.check(cut, nxt, c.count, c.listed, c.own, c.late)
			if deleted != c.want {
				t.Errorf("deletion = %v, want %v", deleted, c.want)
			}
			if want := (census{known: true, below: c.wantBelow}); after != want {
				t.Errorf("next baseline %+v, want %+v", after, want)
			}
			ids := make([]string, 0, len(carry))
			for _, d := range carry {
				ids = append(ids, d.id)
			}
			slices.Sort(ids)
			if diff := cmp.Diff(c.wantCarry, ids, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("own deletions carried (-want +got):\n%s", diff)
			}
		})
	}
}
