package controller

import (
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

// ReasonDeletionThrottled: the deletion brake holds this object's Ban or Delete.
const ReasonDeletionThrottled = "DeletionThrottled"

// DefaultMaxDeletionsPerMinute is the deletion brake's default: enough for the day-to-day
// removal of a few people, far too few for a deleted CRD or namespace to ban everyone.
const DefaultMaxDeletionsPerMinute = 10

// DeletionBrake limits the Ban and Delete actions of deletion policies, across every instance:
// deleting the CRD, a namespace, or many objects at once must never ban or delete a crowd of
// Clerk users in one go. Beyond the limit, objects wait (DeletionThrottled) and are retried as
// the budget refills; nothing is lost. Safe for concurrent use; a nil brake never holds.
type DeletionBrake struct {
	perMinute int
	limiter   *rate.Limiter
	log       logr.Logger
	now       func() time.Time

	mu        sync.Mutex
	lastLog   time.Time
	heldSince int // actions held since the last log line
}

// NewDeletionBrake allows perMinute Ban/Delete actions a minute, all of them at once at most;
// perMinute <= 0 returns nil: no brake.
func NewDeletionBrake(perMinute int, log logr.Logger) *DeletionBrake {
	if perMinute <= 0 {
		return nil
	}
	return &DeletionBrake{perMinute: perMinute, log: log, now: time.Now,
		limiter: rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute)}
}

// allow takes one action from the budget, or returns a waitError saying when to come back.
func (b *DeletionBrake) allow(policy string) error {
	if b == nil {
		return nil
	}
	now := b.now()
	res := b.limiter.ReserveN(now, 1)
	d := res.DelayFrom(now)
	if d == 0 {
		return nil
	}
	res.CancelAt(now) // not taken: the object comes back
	b.logHeld(now)
	return &waitError{reason: ReasonDeletionThrottled, after: d,
		message: fmt.Sprintf("The deletion brake holds this %s: kubeclerk carries out at most %d Ban/Delete actions of deletion policies a minute (--max-deletions-per-minute), so that deleting the CRD, a namespace or many objects at once never bans or deletes a crowd of users; retrying in %s.",
			policy, b.perMinute, d.Round(time.Second))}
}

// logHeld says, at most once a minute, that the brake holds actions and how to lift it.
func (b *DeletionBrake) logHeld(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.heldSince++
	if now.Sub(b.lastLog) < time.Minute {
		return
	}
	b.log.Info("The deletion brake is holding Ban/Delete actions of deletion policies. If these deletions are intended, "+
		"raise --max-deletions-per-minute (0 turns the brake off) and restart the manager; if not (a CRD or namespace deleted "+
		"by mistake), set spec.deletionPolicy: Orphan on the objects, or stop the manager, before they are carried out.",
		"maxDeletionsPerMinute", b.perMinute, "heldSinceLastMessage", b.heldSince)
	b.lastLog, b.heldSince = now, 0
}

// warnOnce records a Warning Event when obj enters a state that needs a person: Stalled,
// AuthenticationFailed, or held by the deletion brake. It is called before the status is
// updated, and records nothing while the Ready reason stays the same, so retries add no Events.
func (r *ClerkUserReconciler) warnOnce(obj *clerkv1alpha1.ClerkUser, o outcome) {
	if !o.stalled && o.reason != ReasonAuthenticationFailed && o.reason != ReasonDeletionThrottled {
		return
	}
	if c := meta.FindStatusCondition(obj.Status.Conditions, ConditionReady); c != nil && c.Reason == o.reason {
		return
	}
	if o.reason == ReasonDeletionThrottled {
		r.Metrics.DeletionThrottled(r.instanceLabel())
	}
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, o.reason, o.reason, "%s", o.message)
	}
}
