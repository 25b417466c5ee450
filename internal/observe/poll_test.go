package observe

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// TestBatchPollFindsAChangeInTheWatermarkMillisecond: more users than a page share the
// watermark's millisecond; a change that lands in that millisecond after a poll saw them is
// found, on the poll's second page.
func TestBatchPollFindsAChangeInTheWatermarkMillisecond(t *testing.T) {
	m := &memClerk{users: map[string]clerk.User{}}
	for i := range 150 {
		m.set(clerk.User{ID: fmt.Sprintf("user_m%03d", i), CreatedAt: at(1000), UpdatedAt: at(2000)})
	}
	m.set(clerk.User{ID: "user_x", CreatedAt: at(1000), UpdatedAt: at(1500)})
	m.set(clerk.User{ID: "user_old", CreatedAt: at(1000), UpdatedAt: at(1400)})
	o, rec := polledObserver(t, m, nil, []string{"user_x"})
	ctx := context.Background()
	if err := o.Poll(ctx); err != nil { // sees the 150 users of the watermark's millisecond
		t.Fatal(err)
	}
	// user_x changes within the same millisecond; Clerk lists it after the others, on page 2.
	m.set(clerk.User{ID: "user_x", FirstName: new("Eve"), CreatedAt: at(1000), UpdatedAt: at(2000)})
	l0, _ := m.calls()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"user_x"}}, rec.take()); diff != "" {
		t.Errorf("changed users (-want +got):\n%s", diff)
	}
	if l, _ := m.calls(); l-l0 != 2 {
		t.Errorf("%d lists, want 2 pages", l-l0)
	}
}

// TestBatchPollCreationDuringThePollIsNoDeletion: a user created while a poll lists the
// changes does not invent a deletion, and a creation does not hide one.
func TestBatchPollCreationDuringThePollIsNoDeletion(t *testing.T) {
	m := newMemClerk(300)
	o, rec := polledObserver(t, m, nil, userIDs(2))
	ctx := context.Background()
	created := false
	m.setHooks(func(p clerk.ListUsersParams) {
		if p.OrderBy == "-updated_at" && !created {
			created = true
			m.set(clerk.User{ID: "user_new", CreatedAt: at(9000), UpdatedAt: at(9000)})
		}
	}, nil)
	l0, c0 := m.calls()
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	m.setHooks(nil, nil)
	if got := rec.take(); len(got) != 0 {
		t.Errorf("a creation during the poll was taken for a deletion: %v reported", got)
	}
	if l, c := m.calls(); l-l0 != 1 || c-c0 != 1 {
		t.Errorf("poll: %d lists, %d counts; want 1 and 1", l-l0, c-c0)
	}
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("the poll after a creation reported %v", got)
	}

	// A creation and a deletion between two polls: the creation does not hide the deletion.
	m.set(clerk.User{ID: "user_new2", CreatedAt: at(9500), UpdatedAt: at(9500)})
	m.remove("user_0001")
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"user_0000", "user_0001"}}, rec.take()); diff != "" {
		t.Errorf("after a deletion (-want +got):\n%s", diff)
	}
}

// TestBatchPollFindsARecentUserDeletedOutside: the count covers the users created before the
// last watermark; a cached user created since that is deleted outside kubeclerk before the next
// poll is missing from the poll's listing, which shows it gone.
func TestBatchPollFindsARecentUserDeletedOutside(t *testing.T) {
	m := newMemClerk(10)
	clk := &clock{t: time.Unix(1000, 0)}
	o, rec := polledObserver(t, m, clk, nil)
	ctx := context.Background()
	// kubeclerk creates a user and remembers Clerk's answer; it is deleted outside kubeclerk.
	nu := clerk.User{ID: "user_new", CreatedAt: at(5000), UpdatedAt: at(5000)}
	m.set(nu)
	o.Remember(&nu)
	m.remove("user_new")
	clk.Add(time.Second)
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"user_new"}}, rec.take()); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}
	if _, err := o.Observe(ctx, "user_new", time.Time{}); !clerk.IsNotFound(err) {
		t.Errorf("Observe(user_new): %v, want not found", err)
	}

	// One that still exists is listed, and stays.
	nu.ID = "user_new2"
	m.set(nu)
	o.Remember(&nu)
	clk.Add(time.Second)
	if err := o.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("a recent user that exists was reported: %v", got)
	}
}
