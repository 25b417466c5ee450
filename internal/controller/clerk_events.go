package controller

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/metrics"
	"github.com/kubeclerk/kubeclerk/internal/observe"
)

// Clerk user event types (webhooks).
const (
	EventUserCreated = "user.created"
	EventUserUpdated = "user.updated"
	EventUserDeleted = "user.deleted"
)

// pusher is an observer that takes states pushed by Clerk: *observe.Batch.
type pusher interface {
	Offer(ctx context.Context, u clerk.User) bool
	Gone(ctx context.Context, userID string) bool
}

// ClerkEvent takes a verified Clerk event about one user of instance ("default" for the
// manager's own key): user.updated and user.created refresh the user in that instance's
// observer when it is newer (no Clerk call) and reconcile the objects bound to it at once;
// user.created also reconciles the objects waiting with UserNotFound whose identifiers the new
// user holds; user.deleted drops the user and reconciles its objects. Events for users no object
// manages cost nothing. It never blocks on Clerk; it must not be called before the manager starts.
func (r *ClerkUserReconciler) ClerkEvent(ctx context.Context, instanceName, typ, userID string, u *clerk.User) {
	name := instanceName
	if name == metrics.DefaultInstance {
		name = ""
	}
	p := r.pusherOf(name)
	switch {
	case typ == EventUserDeleted:
		if p == nil || !p.Gone(ctx, userID) {
			r.enqueueUsers(ctx, name, []string{userID}, r.changes)
		}
	case u != nil && (typ == EventUserUpdated || typ == EventUserCreated):
		if p == nil || !p.Offer(ctx, *u) {
			// Not cached (or observed one object at a time): a bound object, if any, reads it.
			if p == nil {
				r.enqueueUsers(ctx, name, []string{u.ID}, r.changes)
			}
		}
		if typ == EventUserCreated {
			r.enqueueWaitingFor(ctx, name, u)
		}
	}
}

// pusherOf is the observer of instance name ("" for the manager's own key) that takes pushed
// states, or nil (per-object observation, or no observer running for the instance).
func (r *ClerkUserReconciler) pusherOf(name string) pusher {
	if name == "" {
		p, _ := r.Observer.(pusher)
		return p
	}
	if r.observers == nil {
		return nil
	}
	if o, ok := r.observers.running(name); ok {
		return o
	}
	return nil
}

// enqueueWaitingFor reconciles the objects of instance name waiting with UserNotFound whose
// identifiers u holds: a rule declared before sign-up applies as soon as the person signs up.
func (r *ClerkUserReconciler) enqueueWaitingFor(ctx context.Context, name string, u *clerk.User) {
	var list clerkv1alpha1.ClerkUserList
	if err := r.List(ctx, &list, client.MatchingFields{readyReasonIndex: ReasonUserNotFound}); err != nil {
		logf.FromContext(ctx).Error(err, "Finding the ClerkUsers waiting for a sign-up failed")
		return
	}
	for i := range list.Items {
		obj := &list.Items[i]
		if instanceOf(obj) != name || obj.Spec.UserID != "" {
			continue
		}
		for _, id := range identifiers(&obj.Spec) {
			if id.matches(u) {
				select {
				case r.changes <- event.GenericEvent{Object: obj}:
				case <-ctx.Done():
					return
				}
				break
			}
		}
	}
}

var _ pusher = (*observe.Batch)(nil)
