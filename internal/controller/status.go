package controller

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// Condition types, kstatus-compatible: Ready is the summary; Reconciling and Stalled are present
// only while true ("abnormal-true" polarity), so kstatus, Flux and Argo CD read them.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// Condition reasons of the contract.
const (
	ReasonSynced               = "Synced"
	ReasonObserved             = "Observed"
	ReasonProgressing          = "Progressing"
	ReasonUserNotFound         = "UserNotFound"
	ReasonUserDeleted          = "UserDeleted"
	ReasonAmbiguousUser        = "AmbiguousUser"
	ReasonConflict             = "Conflict"
	ReasonInvalidSpec          = "InvalidSpec"
	ReasonClerkRejected        = "ClerkRejected"
	ReasonClerkUnavailable     = "ClerkUnavailable"
	ReasonRateLimited          = "RateLimited"
	ReasonAuthenticationFailed = "AuthenticationFailed"
	ReasonDeleting             = "Deleting"
)

// outcome is what one reconcile concluded, in the terms of the Ready condition.
type outcome struct {
	// ready is Ready=True.
	ready bool
	// stalled means no progress without a change of spec (Stalled=True).
	stalled bool
	// reason and message of every condition set.
	reason  string
	message string
}

// transient reports whether the outcome is work in progress or being retried, i.e. neither a
// final success nor a stall: Reconciling=True. Waiting for a user to sign up (UserNotFound) is
// not: it is the steady state of a rule declared before sign-up, with no work under way and
// nothing to fix, so it sets neither Reconciling nor Stalled (Ready stays False: Clerk holds no
// such user). GitOps health checks accept it by its reason (README).
func (o outcome) transient() bool { return !o.ready && !o.stalled && o.reason != ReasonUserNotFound }

// final reports whether the outcome is final for the object's generation, so that
// status.observedGeneration may advance.
func (o outcome) final() bool {
	return o.ready || o.stalled || o.reason == ReasonUserNotFound
}

// setConditions writes Ready, Reconciling and Stalled for outcome o into conds. It is pure: the
// transition time comes from now and is kept when a condition's status does not change.
func setConditions(conds *[]metav1.Condition, generation int64, o outcome, now time.Time) {
	ts := metav1.NewTime(now)
	ready := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: o.reason,
		Message: o.message, ObservedGeneration: generation, LastTransitionTime: ts}
	if o.ready {
		ready.Status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, ready)

	setOrRemove := func(condType string, present bool) {
		if !present {
			meta.RemoveStatusCondition(conds, condType)
			return
		}
		meta.SetStatusCondition(conds, metav1.Condition{Type: condType, Status: metav1.ConditionTrue,
			Reason: o.reason, Message: o.message, ObservedGeneration: generation, LastTransitionTime: ts})
	}
	setOrRemove(ConditionReconciling, o.transient())
	setOrRemove(ConditionStalled, o.stalled)
}

// observedUser is the status view of a Clerk user: no metadata values, no secrets.
func observedUser(u *clerk.User) *clerkv1alpha1.ObservedUser {
	if u == nil {
		return nil
	}
	return &clerkv1alpha1.ObservedUser{
		ExternalID:              deref(u.ExternalID),
		Username:                deref(u.Username),
		FirstName:               deref(u.FirstName),
		LastName:                deref(u.LastName),
		PrimaryEmailAddress:     u.PrimaryEmailAddress(),
		Banned:                  u.Banned,
		Locked:                  u.Locked,
		LockoutExpiresInSeconds: u.LockoutExpiresInSeconds,
		TwoFactorEnabled:        u.TwoFactorEnabled,
		TOTPEnabled:             u.TOTPEnabled,
		BackupCodeEnabled:       u.BackupCodeEnabled,
		UpdatedAt:               millisToTime(&u.UpdatedAt),
		LastSignInAt:            millisToTime(u.LastSignInAt),
	}
}

// millisToTime converts Clerk's Unix milliseconds; nil or 0 is nil.
func millisToTime(ms *int64) *metav1.Time {
	if ms == nil || *ms == 0 {
		return nil
	}
	t := metav1.NewTime(time.UnixMilli(*ms).UTC())
	return &t
}

// nextStatus is the status after a reconcile of generation gen that ended with outcome o. It is
// pure: everything it records comes from st, what the reconcile found and did (res), and now.
//   - userID, observed and lastSyncTime follow the user read or written (a Conflict loser
//     releases the user it had bound);
//   - pendingChanges are the plan's steps that did not land;
//   - ownedMetadataKeys, privateMetadataFromHash and lastMFAResetToken change only with Manage,
//     and only once their step landed or was not needed (a reset token also clears the reset marked under way);
//   - observedGeneration advances when the outcome is final for gen.
func nextStatus(st clerkv1alpha1.ClerkUserStatus, gen int64, manage bool, res syncResult, o outcome, now time.Time) clerkv1alpha1.ClerkUserStatus {
	st = *st.DeepCopy()
	if res.user != nil {
		if o.reason != ReasonConflict {
			st.UserID = res.user.ID
		} else if st.UserID == res.user.ID {
			st.UserID = ""
		}
		st.Observed = observedUser(res.user)
		t := metav1.NewTime(now)
		st.LastSyncTime = &t
	}
	if res.planned {
		st.PendingChanges = res.plan.PendingChanges(res.done)
		if manage && stepLanded(res, StepMetadata) {
			st.OwnedMetadataKeys = res.plan.OwnedMetadataKeys
			st.PrivateMetadataFromHash = res.privateHash
		}
		if manage && res.plan.MFAResetToken != "" && stepLanded(res, StepDisableMFA) {
			st.LastMFAResetToken = res.plan.MFAResetToken
			st.PendingMFAReset = nil
		}
	}
	if o.final() {
		st.ObservedGeneration = gen
	}
	setConditions(&st.Conditions, gen, o, now)
	return st
}

// stepLanded reports whether the plan's step of kind k landed, or was planned and not needed.
func stepLanded(res syncResult, k StepKind) bool {
	if !res.planned {
		return false
	}
	for i, s := range res.plan.Steps {
		if s.Kind == k {
			return i < res.done
		}
	}
	return true
}
