package controller

import (
	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// planMFA returns the DisableMFA step, the reset token to record once the plan has landed, and
// the reset to mark as under way before the step runs.
//
//   - mfa.disabled: remove every second factor whenever Clerk reports one.
//   - mfa.resetToken: a token other than status.lastMFAResetToken removes every second factor
//     once. A user with no second factor has nothing to remove: the token is recorded without a
//     call (the plan is made against a read after the generation appeared, so "no factor" is
//     Clerk's current answer, not a cache's).
//   - A reset marked under way (status.pendingMFAReset, written just before its DisableMfa
//     call) whose factors Clerk reports removed since (mfa_disabled_at at or after the
//     updated_at the call was planned against) is done: the token is recorded without another
//     call, so a factor enrolled after that removal stays.
func planMFA(mfa *clerkv1alpha1.MFASpec, status *clerkv1alpha1.ClerkUserStatus, observed *clerk.User) (Step, string, *clerkv1alpha1.PendingMFAReset, bool) {
	if mfa == nil {
		return Step{}, "", nil, false
	}
	hasMFA := observed.TwoFactorEnabled || observed.TOTPEnabled || observed.BackupCodeEnabled
	s := Step{Kind: StepDisableMFA}
	if mfa.Disabled && hasMFA {
		s.Changes = append(s.Changes, "disableMFA")
	}
	token := ""
	var pending *clerkv1alpha1.PendingMFAReset
	if mfa.ResetToken != "" && mfa.ResetToken != status.LastMFAResetToken {
		token = mfa.ResetToken
		if hasMFA && !resetDone(status.PendingMFAReset, token, observed) {
			s.Changes = append(s.Changes, "resetMFA")
			pending = &clerkv1alpha1.PendingMFAReset{Token: token, UserUpdatedAt: observed.UpdatedAt}
			if p := status.PendingMFAReset; p != nil && p.Token == token {
				pending.UserUpdatedAt = p.UserUpdatedAt // the earliest bound stays
			}
		}
	}
	return s, token, pending, len(s.Changes) > 0
}

// resetDone reports whether Clerk removed the user's second factors after the reset of token
// was marked under way.
func resetDone(p *clerkv1alpha1.PendingMFAReset, token string, observed *clerk.User) bool {
	return p != nil && p.Token == token && observed.MFADisabledAt != nil && *observed.MFADisabledAt >= p.UserUpdatedAt
}
