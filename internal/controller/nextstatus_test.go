package controller

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// TestNextStatus: the status after a reconcile is a pure function of the status before it, what
// the reconcile found and did, and the outcome.
func TestNextStatus(t *testing.T) {
	now := time.Unix(1_800_000_000, 0).UTC()
	user := &clerk.User{ID: "user_1", Banned: true}
	owned := &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role"}}
	mfaThenBan := Plan{
		Steps: []Step{
			{Kind: StepMetadata, Changes: []string{"publicMetadata.role"}},
			{Kind: StepDisableMFA, Changes: []string{"resetMFA"}},
			{Kind: StepBan, Changes: []string{"ban"}},
		},
		OwnedMetadataKeys: owned,
		MFAResetToken:     "T2",
		PendingMFAReset:   &clerkv1alpha1.PendingMFAReset{Token: "T2", UserUpdatedAt: 5},
	}
	before := clerkv1alpha1.ClerkUserStatus{ObservedGeneration: 1, LastMFAResetToken: "T1",
		PendingMFAReset: &clerkv1alpha1.PendingMFAReset{Token: "T2", UserUpdatedAt: 5}}
	synced := outcome{ready: true, reason: ReasonSynced, message: "ok"}
	failed := outcome{reason: ReasonClerkUnavailable, message: "down"}
	tests := []struct {
		name   string
		st     clerkv1alpha1.ClerkUserStatus
		manage bool
		res    syncResult
		o      outcome
		want   func(st *clerkv1alpha1.ClerkUserStatus)
	}{
		{
			name: "every step landed: owned keys and token recorded, pending reset cleared, generation observed",
			st:   before, manage: true, o: synced,
			res: syncResult{user: user, plan: mfaThenBan, planned: true, done: 3},
			want: func(st *clerkv1alpha1.ClerkUserStatus) {
				st.ObservedGeneration, st.UserID, st.LastMFAResetToken, st.PendingMFAReset = 2, "user_1", "T2", nil
				st.OwnedMetadataKeys = owned
			},
		},
		{
			name: "failed at the MFA step: owned keys recorded, token not, reset stays under way, generation not observed",
			st:   before, manage: true, o: failed,
			res: syncResult{user: user, plan: mfaThenBan, planned: true, done: 1},
			want: func(st *clerkv1alpha1.ClerkUserStatus) {
				st.UserID, st.OwnedMetadataKeys = "user_1", owned
				st.PendingChanges = []string{"resetMFA", "ban"}
			},
		},
		{
			name: "Observe: nothing recorded but what Clerk holds and the plan",
			st:   before, manage: false, o: outcome{ready: true, reason: ReasonObserved},
			res: syncResult{user: user, plan: mfaThenBan, planned: true},
			want: func(st *clerkv1alpha1.ClerkUserStatus) {
				st.ObservedGeneration, st.UserID = 2, "user_1"
				st.PendingChanges = []string{"publicMetadata.role", "resetMFA", "ban"}
			},
		},
		{
			name: "Conflict loser releases the user it had bound",
			st:   clerkv1alpha1.ClerkUserStatus{UserID: "user_1"}, manage: true,
			o:   outcome{stalled: true, reason: ReasonConflict},
			res: syncResult{user: user},
			want: func(st *clerkv1alpha1.ClerkUserStatus) {
				st.ObservedGeneration, st.UserID = 2, ""
			},
		},
		{
			name: "nothing read: observed and lastSyncTime stay",
			st:   clerkv1alpha1.ClerkUserStatus{UserID: "user_1", Observed: &clerkv1alpha1.ObservedUser{Banned: false}}, manage: true,
			o: failed,
			want: func(st *clerkv1alpha1.ClerkUserStatus) {
				st.UserID, st.Observed = "user_1", &clerkv1alpha1.ObservedUser{Banned: false}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.st.DeepCopy()
			got := nextStatus(tt.st, 2, tt.manage, tt.res, tt.o, now)
			if diff := cmp.Diff(*in, tt.st); diff != "" {
				t.Errorf("nextStatus changed its input:\n%s", diff)
			}
			want := *tt.st.DeepCopy()
			want.PendingChanges, want.LastSyncTime, want.Conditions = nil, nil, nil
			tt.want(&want)
			if tt.res.user != nil {
				want.Observed = observedUser(tt.res.user)
				want.LastSyncTime = &metav1.Time{Time: now}
			}
			setConditions(&want.Conditions, 2, tt.o, now)
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("nextStatus (-want +got):\n%s", diff)
			}
		})
	}
}
