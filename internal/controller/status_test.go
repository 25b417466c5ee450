package controller

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

var (
	ptT0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	ptT1 = ptT0.Add(5 * time.Minute)
)

// ptCond is a condition as setConditions writes it.
func ptCond(typ string, status metav1.ConditionStatus, reason, msg string, gen int64, at time.Time) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: gen, LastTransitionTime: metav1.NewTime(at)}
}

var ptSortConds = cmpopts.SortSlices(func(a, b metav1.Condition) bool { return a.Type < b.Type })

func TestSetConditions(t *testing.T) {
	const (
		T = metav1.ConditionTrue
		F = metav1.ConditionFalse
	)
	tests := []struct {
		name   string
		before []metav1.Condition
		gen    int64
		o      outcome
		want   []metav1.Condition
	}{
		{
			name: "synced: Ready=True only",
			gen:  3,
			o:    outcome{ready: true, reason: ReasonSynced, message: "in sync"},
			want: []metav1.Condition{ptCond(ConditionReady, T, ReasonSynced, "in sync", 3, ptT1)},
		},
		{
			name: "observed: Ready=True only",
			gen:  1,
			o:    outcome{ready: true, reason: ReasonObserved, message: "observing"},
			want: []metav1.Condition{ptCond(ConditionReady, T, ReasonObserved, "observing", 1, ptT1)},
		},
		{
			name: "progressing: Ready=False and Reconciling=True, no Stalled",
			gen:  2,
			o:    outcome{reason: ReasonProgressing, message: "working"},
			want: []metav1.Condition{
				ptCond(ConditionReady, F, ReasonProgressing, "working", 2, ptT1),
				ptCond(ConditionReconciling, T, ReasonProgressing, "working", 2, ptT1),
			},
		},
		{
			name: "rate limited: retried, so Reconciling=True",
			gen:  2,
			o:    outcome{reason: ReasonRateLimited, message: "wait"},
			want: []metav1.Condition{
				ptCond(ConditionReady, F, ReasonRateLimited, "wait", 2, ptT1),
				ptCond(ConditionReconciling, T, ReasonRateLimited, "wait", 2, ptT1),
			},
		},
		{
			name: "user not found: waiting for sign-up is steady, neither Reconciling nor Stalled",
			gen:  2,
			o:    outcome{reason: ReasonUserNotFound, message: "none yet"},
			want: []metav1.Condition{
				ptCond(ConditionReady, F, ReasonUserNotFound, "none yet", 2, ptT1),
			},
		},
		{
			name: "stalled: Ready=False and Stalled=True, no Reconciling",
			gen:  4,
			o:    outcome{stalled: true, reason: ReasonInvalidSpec, message: "bad spec"},
			want: []metav1.Condition{
				ptCond(ConditionReady, F, ReasonInvalidSpec, "bad spec", 4, ptT1),
				ptCond(ConditionStalled, T, ReasonInvalidSpec, "bad spec", 4, ptT1),
			},
		},
		{
			name: "stalled after progressing: Reconciling removed, Ready's transition time kept",
			before: []metav1.Condition{
				ptCond(ConditionReady, F, ReasonProgressing, "working", 4, ptT0),
				ptCond(ConditionReconciling, T, ReasonProgressing, "working", 4, ptT0),
			},
			gen: 5,
			o:   outcome{stalled: true, reason: ReasonClerkRejected, message: "rejected"},
			want: []metav1.Condition{
				ptCond(ConditionReady, F, ReasonClerkRejected, "rejected", 5, ptT0),
				ptCond(ConditionStalled, T, ReasonClerkRejected, "rejected", 5, ptT1),
			},
		},
		{
			name: "ready after stalled and reconciling: both removed, Ready transitions",
			before: []metav1.Condition{
				ptCond(ConditionReady, F, ReasonInvalidSpec, "bad", 6, ptT0),
				ptCond(ConditionReconciling, T, ReasonInvalidSpec, "bad", 6, ptT0),
				ptCond(ConditionStalled, T, ReasonInvalidSpec, "bad", 6, ptT0),
			},
			gen:  7,
			o:    outcome{ready: true, reason: ReasonSynced, message: "in sync"},
			want: []metav1.Condition{ptCond(ConditionReady, T, ReasonSynced, "in sync", 7, ptT1)},
		},
		{
			name:   "still ready: transition time kept, generation and message updated",
			before: []metav1.Condition{ptCond(ConditionReady, T, ReasonSynced, "old", 1, ptT0)},
			gen:    2,
			o:      outcome{ready: true, reason: ReasonSynced, message: "new"},
			want:   []metav1.Condition{ptCond(ConditionReady, T, ReasonSynced, "new", 2, ptT0)},
		},
		{
			name: "still retrying with another reason: transition times kept, reason updated",
			before: []metav1.Condition{
				ptCond(ConditionReady, F, ReasonProgressing, "working", 3, ptT0),
				ptCond(ConditionReconciling, T, ReasonProgressing, "working", 3, ptT0),
			},
			gen: 3,
			o:   outcome{reason: ReasonClerkUnavailable, message: "503"},
			want: []metav1.Condition{
				ptCond(ConditionReady, F, ReasonClerkUnavailable, "503", 3, ptT0),
				ptCond(ConditionReconciling, T, ReasonClerkUnavailable, "503", 3, ptT0),
			},
		},
		{
			name: "still stalled: transition times kept",
			before: []metav1.Condition{
				ptCond(ConditionReady, F, ReasonAmbiguousUser, "two", 3, ptT0),
				ptCond(ConditionStalled, T, ReasonAmbiguousUser, "two", 3, ptT0),
			},
			gen: 4,
			o:   outcome{stalled: true, reason: ReasonConflict, message: "conflict"},
			want: []metav1.Condition{
				ptCond(ConditionReady, F, ReasonConflict, "conflict", 4, ptT0),
				ptCond(ConditionStalled, T, ReasonConflict, "conflict", 4, ptT0),
			},
		},
		{
			name: "foreign conditions are left alone",
			before: []metav1.Condition{
				ptCond("Other", T, "Because", "x", 1, ptT0),
			},
			gen: 2,
			o:   outcome{ready: true, reason: ReasonSynced, message: "in sync"},
			want: []metav1.Condition{
				ptCond("Other", T, "Because", "x", 1, ptT0),
				ptCond(ConditionReady, T, ReasonSynced, "in sync", 2, ptT1),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conds := append([]metav1.Condition(nil), tt.before...)
			setConditions(&conds, tt.gen, tt.o, ptT1)
			if diff := cmp.Diff(tt.want, conds, ptSortConds); diff != "" {
				t.Errorf("setConditions() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSetConditionsKstatus: Reconciling and Stalled are never written as False (kstatus reads
// their presence), and never both at once; Ready is always there; UserNotFound has neither.
func TestSetConditionsKstatus(t *testing.T) {
	outcomes := []outcome{
		{ready: true, reason: ReasonSynced}, {ready: true, reason: ReasonObserved},
		{reason: ReasonProgressing}, {reason: ReasonUserNotFound}, {reason: ReasonRateLimited},
		{reason: ReasonClerkUnavailable}, {reason: ReasonAuthenticationFailed}, {reason: ReasonDeleting},
		{stalled: true, reason: ReasonInvalidSpec}, {stalled: true, reason: ReasonClerkRejected},
		{stalled: true, reason: ReasonAmbiguousUser}, {stalled: true, reason: ReasonConflict},
		{stalled: true, reason: ReasonUserDeleted},
	}
	for _, o := range outcomes {
		t.Run(o.reason, func(t *testing.T) {
			var conds []metav1.Condition
			for _, prev := range outcomes { // from every previous outcome
				conds = nil
				setConditions(&conds, 1, prev, ptT0)
				setConditions(&conds, 2, o, ptT1)
				types := map[string]metav1.Condition{}
				for _, c := range conds {
					types[c.Type] = c
					if c.ObservedGeneration != 2 {
						t.Errorf("after %s: %s.observedGeneration = %d, want 2", prev.reason, c.Type, c.ObservedGeneration)
					}
					if c.Reason != o.reason {
						t.Errorf("after %s: %s.reason = %q, want %q", prev.reason, c.Type, c.Reason, o.reason)
					}
				}
				ready, ok := types[ConditionReady]
				if !ok {
					t.Fatalf("after %s: no Ready condition", prev.reason)
				}
				want := metav1.ConditionFalse
				if o.ready {
					want = metav1.ConditionTrue
				}
				if ready.Status != want {
					t.Errorf("after %s: Ready = %s, want %s", prev.reason, ready.Status, want)
				}
				rec, hasRec := types[ConditionReconciling]
				st, hasSt := types[ConditionStalled]
				// Working or retrying: Reconciling. Waiting for sign-up is steady: neither.
				wantRec := !o.ready && !o.stalled && o.reason != ReasonUserNotFound
				if hasRec != wantRec {
					t.Errorf("after %s: Reconciling present = %v, want %v", prev.reason, hasRec, wantRec)
				}
				if hasSt != o.stalled {
					t.Errorf("after %s: Stalled present = %v, want %v", prev.reason, hasSt, o.stalled)
				}
				if hasRec && rec.Status != metav1.ConditionTrue || hasSt && st.Status != metav1.ConditionTrue {
					t.Errorf("after %s: Reconciling/Stalled written as False: %+v", prev.reason, conds)
				}
			}
		})
	}
}

func TestStatusOutcomeFinal(t *testing.T) {
	tests := []struct {
		o    outcome
		want bool
	}{
		{outcome{ready: true, reason: ReasonSynced}, true},
		{outcome{ready: true, reason: ReasonObserved}, true},
		{outcome{stalled: true, reason: ReasonInvalidSpec}, true},
		{outcome{stalled: true, reason: ReasonClerkRejected}, true},
		{outcome{stalled: true, reason: ReasonAmbiguousUser}, true},
		{outcome{stalled: true, reason: ReasonConflict}, true},
		{outcome{stalled: true, reason: ReasonUserDeleted}, true},
		{outcome{reason: ReasonUserNotFound}, true}, // waiting for sign-up is the steady state of this generation
		{outcome{reason: ReasonProgressing}, false},
		{outcome{reason: ReasonRateLimited}, false},
		{outcome{reason: ReasonClerkUnavailable}, false},
		{outcome{reason: ReasonAuthenticationFailed}, false},
		{outcome{reason: ReasonDeleting}, false},
	}
	for _, tt := range tests {
		t.Run(tt.o.reason, func(t *testing.T) {
			if got := tt.o.final(); got != tt.want {
				t.Errorf("outcome%+v.final() = %v, want %v", tt.o, got, tt.want)
			}
		})
	}
}

func TestObservedUser(t *testing.T) {
	updated := ptT0.UnixMilli()
	signIn := ptT0.Add(-26 * time.Hour).UnixMilli()
	tests := []struct {
		name string
		user *clerk.User
		want *clerkv1alpha1.ObservedUser
	}{
		{name: "nil user", user: nil, want: nil},
		{
			name: "every field",
			user: &clerk.User{
				ID: "user_1", ExternalID: new("emp-1042"), Username: new("alice"),
				FirstName: new("Alice"), LastName: new("Liddell"),
				PrimaryEmailAddressID: new("idn_2"),
				EmailAddresses: []clerk.EmailAddress{
					{ID: "idn_1", EmailAddress: "old@example.com"},
					{ID: "idn_2", EmailAddress: "alice@example.com"},
				},
				Banned: true, Locked: true, LockoutExpiresInSeconds: new(int64(300)),
				TwoFactorEnabled: true, TOTPEnabled: true, BackupCodeEnabled: true,
				UpdatedAt: updated, LastSignInAt: &signIn,
			},
			want: &clerkv1alpha1.ObservedUser{
				ExternalID: "emp-1042", Username: "alice", FirstName: "Alice", LastName: "Liddell",
				PrimaryEmailAddress: "alice@example.com",
				Banned:              true, Locked: true, LockoutExpiresInSeconds: new(int64(300)),
				TwoFactorEnabled: true, TOTPEnabled: true, BackupCodeEnabled: true,
				UpdatedAt:    &metav1.Time{Time: ptT0},
				LastSignInAt: &metav1.Time{Time: ptT0.Add(-26 * time.Hour)},
			},
		},
		{
			name: "sparse user: nil pointers and zero times are empty",
			user: &clerk.User{ID: "user_1", PrimaryEmailAddressID: new("idn_gone"),
				EmailAddresses: []clerk.EmailAddress{{ID: "idn_1", EmailAddress: "a@example.com"}}},
			want: &clerkv1alpha1.ObservedUser{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := observedUser(tt.user)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("observedUser() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestObservedUserNoMetadata: status.observed never carries metadata, neither values nor keys.
func TestObservedUserNoMetadata(t *testing.T) {
	u := &clerk.User{ID: "user_1", Username: new("alice"),
		PublicMetadata:  map[string]any{"pubKey": "pub-s3cr3t"},
		PrivateMetadata: map[string]any{"privKey": map[string]any{"deep": "priv-s3cr3t"}},
		UnsafeMetadata:  map[string]any{"unsKey": []any{"uns-s3cr3t"}},
	}
	b, err := json.Marshal(observedUser(u))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"s3cr3t", "pubKey", "privKey", "unsKey", "etadata"} {
		if strings.Contains(string(b), s) {
			t.Errorf("status.observed %s contains %q", b, s)
		}
	}
	if !strings.Contains(string(b), `"username":"alice"`) {
		t.Errorf("status.observed %s lacks the username: the check above proves nothing", b)
	}
}
