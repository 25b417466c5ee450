package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// TestPlanMFAResetUnderWay: a reset marked under way before its DisableMfa call is done once
// Clerk reports a removal at or after the observation it was planned against, and a factor
// enrolled after that removal is left alone (the restart between the call and the status patch).
func TestPlanMFAResetUnderWay(t *testing.T) {
	const planned = int64(1_700_000_000_000)
	reEnrolled := func(u *clerk.User) {
		u.TwoFactorEnabled, u.TOTPEnabled = true, true
		u.MFADisabledAt, u.MFAEnabledAt, u.UpdatedAt = new(planned+500), new(planned+900), planned+900
	}
	stillOn := func(u *clerk.User) {
		u.TwoFactorEnabled, u.TOTPEnabled = true, true
		u.MFADisabledAt, u.MFAEnabledAt, u.UpdatedAt = new(planned-5000), new(planned-100), planned
	}
	tests := []struct {
		name        string
		mfa         clerkv1alpha1.MFASpec
		pending     *clerkv1alpha1.PendingMFAReset
		user        *clerk.User
		wantChanges []string
		wantToken   string
		wantPending *clerkv1alpha1.PendingMFAReset
	}{
		{name: "new token, MFA on: the reset is marked under way with the observation's updated_at",
			mfa: clerkv1alpha1.MFASpec{ResetToken: "T2"}, user: ptUser(stillOn),
			wantChanges: []string{"resetMFA"}, wantToken: "T2",
			wantPending: &clerkv1alpha1.PendingMFAReset{Token: "T2", UserUpdatedAt: planned}},
		{name: "call landed, status lost, factor enrolled since: token recorded, no call",
			mfa: clerkv1alpha1.MFASpec{ResetToken: "T2"}, pending: &clerkv1alpha1.PendingMFAReset{Token: "T2", UserUpdatedAt: planned},
			user: ptUser(reEnrolled), wantToken: "T2"},
		{name: "call did not land (last removal before the plan): called again, earliest bound kept",
			mfa: clerkv1alpha1.MFASpec{ResetToken: "T2"}, pending: &clerkv1alpha1.PendingMFAReset{Token: "T2", UserUpdatedAt: planned},
			user: ptUser(stillOn, func(u *clerk.User) { u.UpdatedAt = planned + 50 }), wantChanges: []string{"resetMFA"}, wantToken: "T2",
			wantPending: &clerkv1alpha1.PendingMFAReset{Token: "T2", UserUpdatedAt: planned}},
		{name: "a mark for an older token does not satisfy a new one",
			mfa: clerkv1alpha1.MFASpec{ResetToken: "T3"}, pending: &clerkv1alpha1.PendingMFAReset{Token: "T2", UserUpdatedAt: planned},
			user: ptUser(reEnrolled), wantChanges: []string{"resetMFA"}, wantToken: "T3",
			wantPending: &clerkv1alpha1.PendingMFAReset{Token: "T3", UserUpdatedAt: planned + 900}},
		{name: "mfa.disabled still removes a factor enrolled after a finished reset",
			mfa: clerkv1alpha1.MFASpec{Disabled: true, ResetToken: "T2"}, pending: &clerkv1alpha1.PendingMFAReset{Token: "T2", UserUpdatedAt: planned},
			user: ptUser(reEnrolled), wantChanges: []string{"disableMFA"}, wantToken: "T2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mfa := tt.mfa
			got := mustPlan(t, clerkv1alpha1.ClerkUserSpec{UserID: "user_1", MFA: &mfa},
				clerkv1alpha1.ClerkUserStatus{LastMFAResetToken: "T1", PendingMFAReset: tt.pending}, tt.user)
			if diff := cmp.Diff(tt.wantChanges, got.PendingChanges(0)); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			if got.MFAResetToken != tt.wantToken {
				t.Errorf("MFAResetToken = %q, want %q", got.MFAResetToken, tt.wantToken)
			}
			if diff := cmp.Diff(tt.wantPending, got.PendingMFAReset); diff != "" {
				t.Errorf("PendingMFAReset (-want +got):\n%s", diff)
			}
		})
	}
}
