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
func (r *ClerkUserReconciler) finalize(ctx context.Context, obj *clerkv1alpha1.ClerkUser) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(obj, clerkv1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	if err := r.applyDeletionPolicy(ctx, obj); err != nil {
		orig := obj.DeepCopy()
		o, result, retErr := classify(err, r.SyncPeriod)
		o.message = fmt.Sprintf("Deleting: %s To delete this object without touching Clerk, set spec.deletionPolicy: Orphan.", o.message)
		if !o.stalled {
			o.reason = ReasonDeleting
		}
		setConditions(&obj.Status.Conditions, obj.Generation, o, r.now())
		if perr := r.Status().Patch(ctx, obj, client.MergeFrom(orig)); perr != nil {
			return ctrl.Result{}, fmt.Errorf("patch status of ClerkUser %s/%s: %w", obj.Namespace, obj.Name, perr)
		}
		return result, retErr
	}
	return ctrl.Result{}, r.syncFinalizer(ctx, obj, false)
}

// applyDeletionPolicy bans or deletes the bound Clerk user, as the spec says. Nothing is written
// with Orphan or Observe, for an object never bound, or for one that lost a conflict.
func (r *ClerkUserReconciler) applyDeletionPolicy(ctx context.Context, obj *clerkv1alpha1.ClerkUser) error {
	id := obj.Status.UserID
	if !needsFinalizer(obj) || id == "" {
		return nil
	}
	if err := r.conflict(ctx, obj, id); err != nil {
		if _, ok := errors.AsType[*stallError](err); ok {
			// Another, older object manages the user: releasing this one must not touch it.
			return nil
		}
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
			if d, ok := r.Observer.(interface{ Deleted(string) }); ok {
				d.Deleted(id)
			}
			r.event(obj, EventDeleted, "Deleted Clerk user %s: deletionPolicy Delete", id)
		}
	}
	if err == nil || clerk.IsNotFound(err) {
		r.Observer.Forget(id)
	}
	switch {
	case err == nil:
		logf.FromContext(ctx).Info("Applied deletion policy", "userID", id, "policy", obj.Spec.DeletionPolicy)
		return nil
	case clerk.IsNotFound(err):
		// The user is already gone: nothing left to ban or delete.
		return nil
	default:
		return fmt.Errorf("apply deletionPolicy %s to Clerk user %s: %w", obj.Spec.DeletionPolicy, id, err)
	}
}
