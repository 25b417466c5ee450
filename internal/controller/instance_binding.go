package controller

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/instance"
)

// Reasons of a ClerkUser bound to a ClerkInstance.
const (
	// ReasonNotAllowed (Stalled): outside the instance's namespaceSelector, or against its policy.
	ReasonNotAllowed = "NotAllowed"
	// ReasonInstanceNotReady: the instance is missing, or its key is not usable yet.
	ReasonInstanceNotReady = "InstanceNotReady"
)

// instanceRefIndex is the field index of ClerkUsers by spec.instanceRef.name.
const instanceRefIndex = "spec.instanceRef.name"

// forInstance returns the reconciler to use for obj: r itself without spec.instanceRef (the
// manager's own key), else a copy bound to the instance's client, an observer that reads each
// user from that client, and the instance's policy. It refuses, before any Clerk call, an
// object the instance does not serve (namespaceSelector) or allow (policy): NotAllowed; and
// waits while the instance is missing or not connected: InstanceNotReady.
func (r *ClerkUserReconciler) forInstance(ctx context.Context, obj *clerkv1alpha1.ClerkUser, spec *clerkv1alpha1.ClerkUserSpec) (*ClerkUserReconciler, error) {
	if obj.Spec.InstanceRef == nil {
		if r.Clerk == nil {
			return nil, &waitError{reason: ReasonInstanceNotReady, message: "kubeclerk runs without a Clerk key of its own " +
				"(CLERK_SECRET_KEY or --clerk-secret-key-file) and serves ClerkInstances only; set spec.instanceRef to a ClerkInstance, or give the manager a key."}
		}
		return r, nil
	}
	name := obj.Spec.InstanceRef.Name
	notReady := func(format string, args ...any) error {
		return &waitError{reason: ReasonInstanceNotReady, message: fmt.Sprintf(format, args...)}
	}
	var inst clerkv1alpha1.ClerkInstance
	if err := r.Get(ctx, types.NamespacedName{Name: name}, &inst); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, notReady("ClerkInstance %s (spec.instanceRef.name) does not exist; create it, or fix spec.instanceRef.", name)
		}
		return nil, fmt.Errorf("read ClerkInstance %s: %w", name, err)
	}
	var ns corev1.Namespace
	if err := r.Get(ctx, types.NamespacedName{Name: obj.Namespace}, &ns); err != nil {
		return nil, fmt.Errorf("read namespace %s: %w", obj.Namespace, err)
	}
	selected, err := instance.CheckNamespace(inst.Spec.NamespaceSelector, ns.Labels)
	if err != nil {
		return nil, &stallError{reason: ReasonNotAllowed, message: fmt.Sprintf("ClerkInstance %s: %v", name, err)}
	}
	if !selected {
		return nil, &stallError{reason: ReasonNotAllowed, message: instance.NamespaceNotSelected(name, obj.Namespace).Error()}
	}
	view, err := instance.ViewFromSpec(name, spec)
	if err != nil {
		return nil, &InvalidSpecError{Field: "spec", Reason: err.Error()}
	}
	if err := instance.CheckSpec(inst.Spec.Policy, view); err != nil {
		return nil, &stallError{reason: ReasonNotAllowed, message: err.Error()}
	}
	if c := meta.FindStatusCondition(inst.Status.Conditions, ConditionReady); c == nil || c.Status != "True" {
		return nil, notReady("ClerkInstance %s is not Ready (%s); kubeclerk waits for it.", name, readyReason(c))
	}
	c, ok := r.Clients.Get(name)
	if !ok {
		return nil, notReady("ClerkInstance %s has no usable key yet; kubeclerk waits for it.", name)
	}
	o, err := r.instanceObserver(ctx, name, c)
	if err != nil {
		return nil, err
	}
	rr := *r
	rr.Clerk = c
	rr.Observer = o
	rr.instanceName, rr.policy = name, inst.Spec.Policy
	return &rr, nil
}

// readyReason says why an instance is not Ready, from its Ready condition (nil: not yet probed).
func readyReason(c *metav1.Condition) string {
	if c == nil {
		return "not checked yet"
	}
	return c.Reason + ": " + c.Message
}

// checkBoundUser refuses a user whose primary email is outside the instance's emailDomains,
// before anything is bound to it or written.
func (r *ClerkUserReconciler) checkBoundUser(primaryEmail string) error {
	if r.instanceName == "" {
		return nil
	}
	if err := instance.CheckBoundUser(r.policy, primaryEmail); err != nil {
		if na, ok := errors.AsType[*instance.NotAllowedError](err); ok {
			na.Instance = r.instanceName
		}
		return &stallError{reason: ReasonNotAllowed, message: err.Error()}
	}
	return nil
}

// usersOfInstance returns the ClerkUsers bound to the ClerkInstance o: a change of its policy,
// selector or readiness decides them again at once.
func (r *ClerkUserReconciler) usersOfInstance(ctx context.Context, o client.Object) []reconcile.Request {
	if r.observers != nil {
		// A deleted instance's observer stops; a new one with the name starts afresh.
		err := r.Get(ctx, client.ObjectKeyFromObject(o), &clerkv1alpha1.ClerkInstance{})
		if apierrors.IsNotFound(err) {
			r.observers.stop(o.GetName())
		}
	}
	return r.requestsFor(ctx, "the ClerkUsers of ClerkInstance "+o.GetName(), nil,
		client.MatchingFields{instanceRefIndex: o.GetName()})
}

// usersInNamespace returns the instance-bound ClerkUsers of namespace o: a change of its labels
// may move them in or out of an instance's namespaceSelector.
func (r *ClerkUserReconciler) usersInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return r.requestsFor(ctx, "the ClerkUsers of namespace "+o.GetName(),
		func(u *clerkv1alpha1.ClerkUser) bool { return u.Spec.InstanceRef != nil }, client.InNamespace(o.GetName()))
}

// instanceDecides passes the ClerkInstance changes that can change what its ClerkUsers may do:
// its spec (policy, selector, key reference) and its readiness. A status-only change such as
// status.boundUsers (which every new ClerkUser causes) reconciles nothing, or each new object
// would make every bound object read Clerk again.
var instanceDecides = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*clerkv1alpha1.ClerkInstance), e.ObjectNew.(*clerkv1alpha1.ClerkInstance)
		return o.Generation != n.Generation ||
			meta.IsStatusConditionTrue(o.Status.Conditions, ConditionReady) != meta.IsStatusConditionTrue(n.Status.Conditions, ConditionReady)
	},
}
