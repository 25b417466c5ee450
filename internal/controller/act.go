package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// Event reasons, one Event per Clerk write.
const (
	EventCreated         = "Created"
	EventUpdated         = "Updated"
	EventMetadataUpdated = "MetadataUpdated"
	EventBanned          = "Banned"
	EventUnbanned        = "Unbanned"
	EventLocked          = "Locked"
	EventUnlocked        = "Unlocked"
	EventMFADisabled     = "MFADisabled"
	EventDeleted         = "Deleted"
)

// act runs the steps of p in order, one Clerk call each, and stops at the first error. It
// returns the user as Clerk last confirmed it and how many steps landed.
func (r *ClerkUserReconciler) act(ctx context.Context, obj *clerkv1alpha1.ClerkUser, u *clerk.User, p Plan) (*clerk.User, int, error) {
	for i, s := range p.Steps {
		next, err := r.apply(ctx, u, s)
		if err != nil {
			if outcomeUnknown(err) {
				// The write may have landed (a lost response, a timeout, a 5xx after the change):
				// what is cached of the user may be older than Clerk now, and planning against it
				// would repeat a one-shot write (a second DisableMfa for one reset token). The next
				// reconcile reads the user again.
				r.Observer.Forget(u.ID, false)
			}
			return u, i, fmt.Errorf("%s Clerk user %s: %w", stepVerb(s.Kind), u.ID, err)
		}
		u = next
		logf.FromContext(ctx).Info("Changed Clerk user", "userID", u.ID, "step", stepVerb(s.Kind), "changes", s.Changes)
		r.event(obj, stepEvent(s.Kind), "%s Clerk user %s: %s", capitalize(stepVerb(s.Kind)), u.ID, strings.Join(s.Changes, ", "))
	}
	return u, len(p.Steps), nil
}

// apply makes the one Clerk call of step s and returns the user as Clerk confirmed it.
func (r *ClerkUserReconciler) apply(ctx context.Context, u *clerk.User, s Step) (*clerk.User, error) {
	switch s.Kind {
	case StepUnban:
		return r.Clerk.UnbanUser(ctx, u.ID)
	case StepUnlock:
		return r.Clerk.UnlockUser(ctx, u.ID)
	case StepUpdateProfile:
		return r.Clerk.UpdateUser(ctx, u.ID, s.Profile)
	case StepMetadata:
		if s.ReplaceMetadata {
			return r.Clerk.ReplaceMetadata(ctx, u.ID, s.Metadata)
		}
		return r.Clerk.MergeMetadata(ctx, u.ID, s.Metadata)
	case StepDisableMFA:
		if err := r.Clerk.DisableMFA(ctx, u.ID); err != nil {
			return nil, err
		}
		// Clerk answers with the user ID only; every second factor is now off.
		next := *u
		next.TwoFactorEnabled, next.TOTPEnabled, next.BackupCodeEnabled = false, false, false
		return &next, nil
	case StepLock:
		return r.Clerk.LockUser(ctx, u.ID)
	case StepBan:
		return r.Clerk.BanUser(ctx, u.ID)
	}
	return nil, fmt.Errorf("unknown step %d", s.Kind)
}

// create makes the Clerk user from spec in one POST /users, with the body plan decides
// (identifiers, profile and metadata, no password). Ban, lock and MFA follow as plan steps on
// the created user.
func (r *ClerkUserReconciler) create(ctx context.Context, obj *clerkv1alpha1.ClerkUser, spec *clerkv1alpha1.ClerkUserSpec) (*clerk.User, error) {
	p, err := createParams(spec)
	if err != nil {
		return nil, err
	}
	u, err := r.Clerk.CreateUser(ctx, p)
	if apiErr, ok := errors.AsType[*clerk.APIError](err); ok && apiErr.HasCode("form_identifier_exists") {
		// An identifier is taken: the user may have signed up (or a create of ours landed)
		// since the lookup. Adopt it when it is the user the spec declares.
		found, ferr := r.findByAnyIdentifier(ctx, spec)
		switch {
		case ferr != nil:
			return nil, ferr
		case found != nil:
			logf.FromContext(ctx).Info("Adopted the existing Clerk user that holds an identifier of the spec", "userID", found.ID)
			return found, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create Clerk user: %w", err)
	}
	logf.FromContext(ctx).Info("Created Clerk user", "userID", u.ID)
	r.event(obj, EventCreated, "Created Clerk user %s", u.ID)
	return u, nil
}

// event records a Normal Kubernetes Event on obj, when a recorder is configured.
func (r *ClerkUserReconciler) event(obj *clerkv1alpha1.ClerkUser, reason, format string, args ...any) {
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, reason, reason, format, args...)
}

func stepVerb(k StepKind) string {
	return [...]string{"unban", "unlock", "update", "update metadata of", "disable MFA of", "lock", "ban"}[k]
}

func stepEvent(k StepKind) string {
	return [...]string{EventUnbanned, EventUnlocked, EventUpdated, EventMetadataUpdated, EventMFADisabled, EventLocked, EventBanned}[k]
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// outcomeUnknown reports whether a failed write may still have been applied by Clerk: no answer
// (network error, timeout, lost response) or a 5xx. A 4xx, a 429 and an error raised before the
// request was sent (the rate limiter) mean Clerk did not apply it.
func outcomeUnknown(err error) bool {
	if clerk.IsRateLimited(err) {
		return false
	}
	if apiErr, ok := errors.AsType[*clerk.APIError](err); ok {
		return apiErr.StatusCode >= 500
	}
	var le *clerk.LimiterError
	return !errors.As(err, &le)
}
