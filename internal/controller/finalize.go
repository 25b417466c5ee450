package controller

import (
	"context"
	"errors"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// finalize applies the deletionPolicy to the Clerk user of a ClerkUser being deleted, then
// releases the object. A user already gone counts as deleted, so the finalizer never sticks on it.
// refusal is why the object's ClerkInstance does not serve it (nil when it does): a NotAllowed
// object may not write to Clerk, so it is released without a Ban or Delete; any other refusal
// (the instance is not ready) holds the deletion, as a failed Clerk call does.
func (r *ClerkUserReconciler) finalize(ctx context.Context, obj *clerkv1alpha1.ClerkUser, refusal error) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(obj, clerkv1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	err := refusal
	if st, ok := errors.AsType[*stallError](refusal); ok && st.reason == ReasonNotAllowed {
		logf.FromContext(ctx).Info("Releasing a ClerkUser its instance does not allow, without touching Clerk", "reason", st.message)
		err = nil
	} else if err == nil {
		err = r.applyDeletionPolicy(ctx, obj)
	}
	if err != nil {
		orig := obj.DeepCopy()
		o, result, retErr := classify(err, r.SyncPeriod)
		o.message = fmt.Sprintf("Deleting: %s To delete this object without touching Clerk, set spec.deletionPolicy: Orphan.", o.message)
		if !o.stalled && o.reason != ReasonDeletionThrottled {
			o.reason = ReasonDeleting
		}
		r.warnOnce(obj, o)
		setConditions(&obj.Status.Conditions, obj.Generation, o, r.now())
		if perr := r.Status().Patch(ctx, obj, client.MergeFrom(orig)); perr != nil {
			return ctrl.Result{}, errors.Join(retErr, fmt.Errorf("patch status of ClerkUser %s/%s: %w", obj.Namespace, obj.Name, perr))
		}
		return result, retErr
	}
	return ctrl.Result{}, r.syncFinalizer(ctx, obj, false)
}

// applyDeletionPolicy bans or deletes the Clerk user, as the spec says. Nothing is written with
// Orphan or Observe, or for an object that lost a conflict. An object that never recorded its
// user (a create whose status patch was lost; an Adopt user who signed up since the last
// check) finds it by its identifiers first.
func (r *ClerkUserReconciler) applyDeletionPolicy(ctx context.Context, obj *clerkv1alpha1.ClerkUser) error {
	if !needsFinalizer(obj) {
		return nil
	}
	id := boundID(obj)
	if id == "" {
		u, err := r.findByAnyIdentifier(ctx, &obj.Spec)
		if err != nil {
			return err
		}
		if u == nil {
			// No user holds the identifiers: nothing to ban or delete.
			return nil
		}
		id = u.ID
	}
	if err := r.conflict(ctx, obj, id); err != nil {
		if _, ok := errors.AsType[*stallError](err); ok {
			// Another, older object manages the user: releasing this one must not touch it.
			return nil
		}
		return err
	}
	if err := r.DeletionBrake.allow(string(obj.Spec.DeletionPolicy)); err != nil {
		return err
	}
	var err error
	switch obj.Spec.DeletionPolicy {
	case clerkv1alpha1.DeletionPolicyBan:
		if _, err = r.Clerk.BanUser(ctx, id); err == nil {
			r.event(obj, EventBanned, "Banned Clerk user %s: deletionPolicy Ban", id)
		}
	case clerkv1alpha1.DeletionPolicyDelete:
		if err = r.Clerk.DeleteUser(ctx, id); err == nil {
			r.event(obj, EventDeleted, "Deleted Clerk user %s: deletionPolicy Delete", id)
		}
	}
	switch {
	case err == nil:
		r.Observer.Forget(id, obj.Spec.DeletionPolicy == clerkv1alpha1.DeletionPolicyDelete)
		logf.FromContext(ctx).Info("Applied deletion policy", "userID", id, "policy", obj.Spec.DeletionPolicy)
		return nil
	case clerk.IsNotFound(err):
		// The user is already gone: nothing left to ban or delete.
		r.Observer.Forget(id, false)
		return nil
	default:
		return fmt.Errorf("apply deletionPolicy %s to Clerk user %s: %w", obj.Spec.DeletionPolicy, id, err)
	}
}
