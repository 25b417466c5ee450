package controller

import (
	"errors"
	"fmt"
	"time"

	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// defaultRetryAfter is how long a 429 waits when Clerk sent no usable Retry-After.
const defaultRetryAfter = time.Second

// Retries after an error back off exponentially per object, from retryBackoffBase, doubling, up
// to retryBackoffMax. controller-runtime's default goes up to 1000 s, so an object that failed
// through a long Clerk outage could wait a quarter of an hour after Clerk recovered; capped, every
// object is tried again within retryBackoffMax of the recovery. The Clerk budget, not the
// backoff, bounds the request rate: a retry waits for the budget like any other call.
const (
	retryBackoffBase = 5 * time.Millisecond
	retryBackoffMax  = 30 * time.Second
)

// retryRateLimiter is the per-object backoff of reconciles that returned an error.
func retryRateLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](retryBackoffBase, retryBackoffMax)
}

// stallError is a state of the Clerk user that needs a person: several matches, a conflict, a
// user deleted out of band. The object is Stalled with Reason and checked again every sync period.
type stallError struct {
	reason  string
	message string
}

func (e *stallError) Error() string { return e.message }

// waitError is a state that resolves on its own, like a user who has not signed up yet: the
// object is not Ready, with Reason, and is checked again every sync period.
type waitError struct {
	reason  string
	message string
	// after, when set, is when to check again instead of the sync period.
	after time.Duration
}

func (e *waitError) Error() string { return e.message }

// classify turns the error of a reconcile into its outcome, the result to return to
// controller-runtime, and the error to return (nil when the result already says when to retry).
// Errors are classified once, here:
//   - invalid spec, Clerk's 4xx rejections: Stalled, terminal until the spec changes;
//   - states that need a person (ambiguous, conflict, deleted): Stalled, checked every sync period;
//   - 429: wait for Retry-After, not counted as a failure;
//   - 401/403: AuthenticationFailed, retried with backoff (the key is fixed outside the spec);
//   - 5xx, timeouts, network: ClerkUnavailable, retried with backoff.
func classify(err error, syncPeriod time.Duration) (outcome, ctrl.Result, error) {
	var (
		invalid *InvalidSpecError
		stall   *stallError
		wait    *waitError
	)
	switch {
	case errors.As(err, &invalid):
		return outcome{stalled: true, reason: ReasonInvalidSpec, message: invalid.Error()},
			ctrl.Result{}, reconcile.TerminalError(err)
	case errors.As(err, &stall):
		return outcome{stalled: true, reason: stall.reason, message: stall.message},
			ctrl.Result{RequeueAfter: jitter(syncPeriod)}, nil
	case errors.As(err, &wait):
		after := jitter(syncPeriod)
		if wait.after > 0 {
			after = wait.after
		}
		return outcome{reason: wait.reason, message: wait.message},
			ctrl.Result{RequeueAfter: after}, nil
	case clerk.IsRateLimited(err):
		d, ok := clerk.RetryAfter(err)
		if !ok || d <= 0 {
			d = defaultRetryAfter
		}
		// A bogus Retry-After must not park the object for hours: the client caps its pause alike.
		d = min(d, clerk.MaxPause)
		return outcome{reason: ReasonRateLimited,
				message: fmt.Sprintf("Clerk's rate limit was reached; retrying in %s: %v", d.Round(time.Second), err)},
			ctrl.Result{RequeueAfter: d}, nil
	case clerk.IsAuthentication(err):
		return outcome{reason: ReasonAuthenticationFailed,
			message: fmt.Sprintf("Clerk refused the secret key; check the key given to kubeclerk (CLERK_SECRET_KEY or --clerk-secret-key-file): %v", err)}, ctrl.Result{}, err
	case clerk.IsNotFound(err):
		// The user vanished between the read and a write; the next read finds out how.
		return outcome{reason: ReasonProgressing,
			message: fmt.Sprintf("The Clerk user disappeared while being changed; checking again: %v", err)}, ctrl.Result{}, err
	case clerk.IsRejected(err):
		return outcome{stalled: true, reason: ReasonClerkRejected,
			message: fmt.Sprintf("Clerk rejected the change; fix the spec: %v", err)}, ctrl.Result{}, reconcile.TerminalError(err)
	default:
		return outcome{reason: ReasonClerkUnavailable,
			message: fmt.Sprintf("Clerk is unavailable; retrying with backoff: %v", err)}, ctrl.Result{}, err
	}
}
