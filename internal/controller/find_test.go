package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/observe"
)

// TestIdentifierExactLookup: an external_id filter value goes behind an explicit "+", so that
// Clerk includes exactly that value whatever its first character; results are kept only when
// they hold the identifier exactly.
func TestIdentifierExactLookup(t *testing.T) {
	tests := []struct {
		name       string
		id         identifier
		wantParams clerk.ListUsersParams
		match      []*clerk.User
		noMatch    []*clerk.User
	}{
		{
			name:       "externalID with a leading +",
			id:         identifier{"externalID", "+15551234567"},
			wantParams: clerk.ListUsersParams{Limit: lookupLimit, ExternalIDs: []string{"++15551234567"}},
			match:      []*clerk.User{{ExternalID: new("+15551234567")}},
			noMatch:    []*clerk.User{{ExternalID: new("15551234567")}, {}},
		},
		{
			name:       "externalID with a leading -",
			id:         identifier{"externalID", "-7"},
			wantParams: clerk.ListUsersParams{Limit: lookupLimit, ExternalIDs: []string{"+-7"}},
			match:      []*clerk.User{{ExternalID: new("-7")}},
			noMatch:    []*clerk.User{{ExternalID: new("7")}},
		},
		{
			name:       "email: exact address, any case",
			id:         identifier{"emailAddress", "+ada@example.com"},
			wantParams: clerk.ListUsersParams{Limit: lookupLimit, EmailAddresses: []string{"+ada@example.com"}},
			match:      []*clerk.User{{EmailAddresses: []clerk.EmailAddress{{EmailAddress: "x@example.com"}, {EmailAddress: "+Ada@Example.com"}}}},
			noMatch:    []*clerk.User{{EmailAddresses: []clerk.EmailAddress{{EmailAddress: "ada@example.com"}}}},
		},
		{
			name:       "username",
			id:         identifier{"username", "+ada"},
			wantParams: clerk.ListUsersParams{Limit: lookupLimit, Usernames: []string{"+ada"}},
			match:      []*clerk.User{{Username: new("+ada")}},
			noMatch:    []*clerk.User{{Username: new("ada")}, {}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.wantParams, tt.id.params()); diff != "" {
				t.Errorf("params (-want +got):\n%s", diff)
			}
			for _, u := range tt.match {
				if !tt.id.matches(u) {
					t.Errorf("%+v does not match %+v", tt.id, u)
				}
			}
			for _, u := range tt.noMatch {
				if tt.id.matches(u) {
					t.Errorf("%+v matches %+v", tt.id, u)
				}
			}
		})
	}
}

func TestIdentifiersOrder(t *testing.T) {
	got := identifiers(&clerkv1alpha1.ClerkUserSpec{Username: "u", EmailAddress: "e@x", ExternalID: "x"})
	want := []identifier{{"externalID", "x"}, {"emailAddress", "e@x"}, {"username", "u"}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(identifier{})); diff != "" {
		t.Errorf("identifiers (-want +got):\n%s", diff)
	}
}

// TestGenerations: a generation is dated by the first time it was seen; a new generation gets a
// new date; an unseen one counts as seen now.
func TestGenerations(t *testing.T) {
	var g generations
	t0 := time.Unix(1000, 0)
	if got := g.saw("a", 1, t0); !got.Equal(t0) {
		t.Fatalf("first sight = %v", got)
	}
	if got := g.saw("a", 1, t0.Add(time.Minute)); !got.Equal(t0) {
		t.Errorf("same generation again = %v, want %v", got, t0)
	}
	if got := g.saw(types.UID("a"), 2, t0.Add(2*time.Minute)); !got.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("new generation = %v", got)
	}
	g.forget("a")
	if got := g.saw("a", 2, t0.Add(3*time.Minute)); !got.Equal(t0.Add(3 * time.Minute)) {
		t.Errorf("after forget = %v", got)
	}
}

// forgetRecorder is an Observer that records what it is told to forget.
type forgetRecorder struct {
	observe.PerObject
	forgot []string
}

func (f *forgetRecorder) Forget(id string, deleted bool) {
	f.forgot = append(f.forgot, fmt.Sprintf("%s %t", id, deleted))
}

// TestDeletedObjectsLeaveNothingCached: an object deleted with Orphan or while Observe (no
// finalizer, so no finalize step) still makes the observer forget its user.
func TestDeletedObjectsLeaveNothingCached(t *testing.T) {
	rec := &forgetRecorder{}
	r := &ClerkUserReconciler{Observer: rec, gens: &generations{}}
	p := r.watchPredicate()
	orphan := &clerkv1alpha1.ClerkUser{Spec: clerkv1alpha1.ClerkUserSpec{EmailAddress: "a@x"},
		Status: clerkv1alpha1.ClerkUserStatus{UserID: "user_orphan"}}
	observed := &clerkv1alpha1.ClerkUser{Spec: clerkv1alpha1.ClerkUserSpec{UserID: "user_obs",
		ManagementPolicy: clerkv1alpha1.ManagementPolicyObserve}}
	never := &clerkv1alpha1.ClerkUser{Spec: clerkv1alpha1.ClerkUserSpec{EmailAddress: "b@x"}}
	for _, o := range []*clerkv1alpha1.ClerkUser{orphan, observed, never} {
		if !p.Delete(event.DeleteEvent{Object: o}) {
			t.Errorf("the predicate filtered a delete event")
		}
	}
	if diff := cmp.Diff([]string{"user_orphan false", "user_obs false"}, rec.forgot); diff != "" {
		t.Errorf("forgotten (-want +got):\n%s", diff)
	}
}

// TestCreatedSince: a Create event handled late (a busy start) is dated no later than the
// process start for objects that existed before it, and by creation for new, unedited objects.
func TestCreatedSince(t *testing.T) {
	start := time.Unix(1000, 0)
	now := start.Add(time.Minute)
	r := &ClerkUserReconciler{started: start, Now: func() time.Time { return now }}
	for _, tc := range []struct {
		name    string
		created time.Time
		gen     int64
		want    time.Time
	}{
		{"existed before the start", start.Add(-time.Hour), 3, start},
		{"new since the start", start.Add(10 * time.Second), 1, start.Add(10 * time.Second)},
		{"new since the start, already edited", start.Add(10 * time.Second), 2, now},
		{"no creation time", time.Time{}, 1, start},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.createdSince(tc.created, tc.gen); !got.Equal(tc.want) {
				t.Errorf("createdSince = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestInstanceDecides: a ClerkInstance's status-only change (boundUsers, a new probe message)
// reconciles none of its ClerkUsers; a spec change or a change of readiness does.
func TestInstanceDecides(t *testing.T) {
	ready := func(st metav1.ConditionStatus, msg string, gen int64, bound int32) *clerkv1alpha1.ClerkInstance {
		i := &clerkv1alpha1.ClerkInstance{}
		i.Generation = gen
		i.Status.BoundUsers = bound
		i.Status.Conditions = []metav1.Condition{{Type: ConditionReady, Status: st, Message: msg}}
		return i
	}
	for _, tc := range []struct {
		name     string
		old, new *clerkv1alpha1.ClerkInstance
		want     bool
	}{
		{"boundUsers only", ready("True", "a", 1, 1), ready("True", "a", 1, 2), false},
		{"probe message only", ready("True", "a", 1, 1), ready("True", "b", 1, 1), false},
		{"spec changed", ready("True", "a", 1, 1), ready("True", "a", 2, 1), true},
		{"became ready", ready("False", "a", 1, 1), ready("True", "a", 1, 1), true},
		{"lost readiness", ready("True", "a", 1, 1), ready("False", "a", 1, 1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := instanceDecides.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
				t.Errorf("Update = %v, want %v", got, tc.want)
			}
		})
	}
}
