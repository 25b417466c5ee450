/*
Copyright 2026 The kubeclerk Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package controller holds the ClerkUser reconciler: observe the Clerk user, plan the calls
// that bring it to the spec (a pure function), act on the plan, and report in status.
package controller

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/instance"
	"github.com/kubeclerk/kubeclerk/internal/metrics"
	"github.com/kubeclerk/kubeclerk/internal/observe"
)

// DefaultSyncPeriod is how often a user is read again to catch out-of-band changes.
const DefaultSyncPeriod = 10 * time.Minute

// ClerkUserReconciler brings Clerk users to the state their ClerkUser objects declare.
type ClerkUserReconciler struct {
	client.Client
	// Clerk is the Clerk Backend API of the manager's own key; every write of an object without
	// spec.instanceRef goes through it. nil: the manager has no key of its own, and such objects
	// wait with reason InstanceNotReady.
	Clerk ClerkAPI
	// Observer reads the users of the manager's own key; observe.PerObject{Clerk} when nil. An
	// *observe.Batch is hooked into the manager by SetupWithManager (its change reports, its
	// start listing), and lends its settings to the ClerkInstances' batched observers.
	Observer observe.Observer
	// Recorder records one Event per Clerk write; optional.
	Recorder events.EventRecorder
	// SyncPeriod is how often each user is checked for out-of-band changes (jittered).
	SyncPeriod time.Duration
	// MaxConcurrentReconciles is the number of workers.
	MaxConcurrentReconciles int
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	// DeletionBrake limits the Ban/Delete actions of deletion policies; nil: no limit.
	DeletionBrake *DeletionBrake

	// Metrics records drift corrections and counts objects; optional.
	Metrics *metrics.Metrics

	// NoPrivateMetadataFrom turns spec.privateMetadataFrom off: no Secret outside the manager's
	// namespace is watched or read, and objects that use it are InvalidSpec.
	NoPrivateMetadataFrom bool

	// Clients are the ClerkInstances' Clerk clients (shared with the ClerkInstanceReconciler);
	// objects with spec.instanceRef use them.
	Clients *instance.Clients

	// observers are the ClerkInstances' batched observers (nil without batched observation).
	observers *instanceObservers
	// changes feeds reconciles of objects whose Clerk user changed (observers, webhooks).
	changes chan event.GenericEvent

	gens *generations
	// secrets dates the versions of privateMetadataFrom Secrets as gens does generations.
	secrets *secretVersions
	// started is when SetupWithManager ran: nothing the observer holds is older.
	started time.Time
	// instanceName and policy are set on the copy of the reconciler that serves an object bound
	// to a ClerkInstance (forInstance).
	instanceName string
	policy       *clerkv1alpha1.ClerkInstancePolicy
}

// syncResult is what observe, plan and act found and did in one reconcile.
type syncResult struct {
	user    *clerk.User // the user as Clerk last confirmed it; nil when none was read
	plan    Plan
	planned bool  // plan was computed for user
	done    int   // steps of plan that landed
	err     error // the first error, classified by report
	// privateHash is the hash of the privateMetadataFrom value planned for (status.privateMetadataFromHash).
	privateHash string
}

// +kubebuilder:rbac:groups=clerk.kubeclerk.dev,resources=clerkusers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=clerk.kubeclerk.dev,resources=clerkusers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=clerk.kubeclerk.dev,resources=clerkusers/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch

// Reconcile brings one ClerkUser's Clerk user to its spec: observe → plan → act → report.
func (r *ClerkUserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &clerkv1alpha1.ClerkUser{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		// Deleted objects need nothing more: the finalizer already ran.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// The state to bring Clerk to: the spec, with the private metadata of privateMetadataFrom.
	d, fromErr := r.desired(ctx, obj)
	// An object bound to a ClerkInstance uses its client and policy; one the instance does not
	// serve or allow makes no Clerk call at all.
	rr, refusal := r.forInstance(ctx, obj, d.spec)
	if !obj.DeletionTimestamp.IsZero() {
		// Deletion needs no metadata: an unusable Secret never holds it up.
		if refusal != nil {
			return r.finalize(ctx, obj, refusal)
		}
		return rr.finalize(ctx, obj, nil)
	}
	if refusal == nil {
		refusal = fromErr
	}
	// The plan for this generation is made against a read of Clerk made after the generation
	// appeared, and after the value of its privateMetadataFrom Secret did: a cache from before
	// a change of the declared state never decides what the change does.
	now := r.now()
	notBefore := r.gens.saw(obj.UID, obj.Generation, now)
	if d.secretVersion != "" {
		if t := r.secrets.saw(d.secret, d.secretVersion, now); t.After(notBefore) {
			notBefore = t
		}
	}
	// The finalizer is there exactly while deleting this object must call Clerk.
	if err := r.syncFinalizer(ctx, obj, needsFinalizer(obj)); err != nil {
		return ctrl.Result{}, err
	}
	orig := obj.DeepCopy()
	var res syncResult
	// Every exit from here reports in status, with one patch.
	defer func() { result, retErr = r.report(ctx, obj, orig, res) }()
	if refusal != nil {
		res = syncResult{err: refusal}
		return result, retErr
	}
	res = rr.sync(ctx, obj, orig, d, notBefore)
	return result, retErr
}

// sync observes the Clerk user, plans against d, and (with Manage) acts.
func (r *ClerkUserReconciler) sync(ctx context.Context, obj, orig *clerkv1alpha1.ClerkUser, d desiredState, notBefore time.Time) syncResult {
	res := r.syncDesired(ctx, obj, orig, d, notBefore)
	res.privateHash = d.privateHash
	return res
}

func (r *ClerkUserReconciler) syncDesired(ctx context.Context, obj, orig *clerkv1alpha1.ClerkUser, d desiredState, notBefore time.Time) syncResult {
	// While Clerk holds this key back after a 429, a reconcile reports it and comes back when
	// the pause ends, instead of taking a worker that other instances' objects need.
	if err := r.paused(); err != nil {
		return syncResult{err: err}
	}
	u, err := r.find(ctx, obj, notBefore)
	if err != nil {
		return syncResult{err: err}
	}
	if u != nil {
		// A ClerkInstance may only serve users with a primary email in its emailDomains.
		if err := r.checkBoundUser(u.PrimaryEmailAddress()); err != nil {
			return syncResult{err: err}
		}
		// Only one Manage object may write to a Clerk user; a newer one writes nothing.
		if err := r.conflict(ctx, obj, u.ID); err != nil {
			return syncResult{user: u, err: err}
		}
	}
	if u == nil {
		// find returns no user and no error only for AdoptOrCreate with Manage.
		if u, err = r.create(ctx, obj, d.spec); err != nil {
			return syncResult{err: err}
		}
		r.Observer.Remember(u)
	}
	p, err := plan(d.spec, &obj.Status, u)
	if err != nil {
		return syncResult{user: u, err: err}
	}
	if !manages(obj) {
		return syncResult{user: u, plan: p, planned: true}
	}
	if err := r.markMFAReset(ctx, obj, orig, p); err != nil {
		return syncResult{user: u, plan: p, planned: true, err: err}
	}
	u, done, err := r.act(ctx, obj, u, p)
	if done > 0 {
		r.countDrift(orig, d, p.Steps[:done])
		// After a write whose outcome is unknown, the answer of an earlier step is older than
		// Clerk may be now: act dropped the user from the cache, and it stays dropped.
		if err == nil || !outcomeUnknown(err) {
			r.Observer.Remember(u)
		}
	}
	return syncResult{user: u, plan: p, planned: true, done: done, err: err}
}

// markMFAReset records in status, before the DisableMfa call of a new reset token, which reset
// is under way, so that a restart between the call and the final status patch neither calls
// again nor removes a factor enrolled after the call (see PendingMFAReset).
func (r *ClerkUserReconciler) markMFAReset(ctx context.Context, obj, orig *clerkv1alpha1.ClerkUser, p Plan) error {
	want := p.PendingMFAReset
	if want == nil || obj.Status.PendingMFAReset != nil && obj.Status.PendingMFAReset.Token == want.Token {
		return nil
	}
	before := obj.DeepCopy()
	obj.Status.PendingMFAReset = want.DeepCopy()
	if err := r.Status().Patch(ctx, obj, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("record the MFA reset under way in the status of ClerkUser %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	orig.Status.PendingMFAReset = want.DeepCopy()
	return nil
}

// report writes the outcome into status with one patch and says when to reconcile again.
func (r *ClerkUserReconciler) report(ctx context.Context, obj, orig *clerkv1alpha1.ClerkUser, res syncResult) (ctrl.Result, error) {
	o, result, retErr := r.outcomeOf(obj, res)
	r.warnOnce(obj, o)
	obj.Status = nextStatus(obj.Status, obj.Generation, manages(obj), res, o, r.now())
	if err := r.Status().Patch(ctx, obj, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, errors.Join(retErr, fmt.Errorf("patch status of ClerkUser %s/%s: %w", obj.Namespace, obj.Name, err))
	}
	return result, retErr
}

// outcomeOf concludes a reconcile: success is Synced (or Observed), anything else is classified.
func (r *ClerkUserReconciler) outcomeOf(obj *clerkv1alpha1.ClerkUser, res syncResult) (outcome, ctrl.Result, error) {
	if res.err != nil {
		return classify(res.err, r.SyncPeriod)
	}
	requeue := ctrl.Result{RequeueAfter: jitter(r.SyncPeriod), Priority: ptr.To(handler.LowPriority)}
	if !manages(obj) {
		msg := fmt.Sprintf("Observing Clerk user %s; nothing to change", res.user.ID)
		if pending := res.plan.PendingChanges(0); len(pending) > 0 {
			msg = fmt.Sprintf("Observing Clerk user %s; managementPolicy Manage would change: %v", res.user.ID, pending)
		}
		return outcome{ready: true, reason: ReasonObserved, message: msg}, requeue, nil
	}
	return outcome{ready: true, reason: ReasonSynced, message: fmt.Sprintf("Clerk user %s matches the spec", res.user.ID)}, requeue, nil
}

// needsFinalizer: deleting the object must call Clerk only for Ban or Delete, and never with Observe.
func needsFinalizer(obj *clerkv1alpha1.ClerkUser) bool {
	return obj.Spec.DeletionPolicy != clerkv1alpha1.DeletionPolicyOrphan &&
		obj.Spec.DeletionPolicy != "" &&
		obj.Spec.ManagementPolicy != clerkv1alpha1.ManagementPolicyObserve
}

// syncFinalizer adds or removes the finalizer so that it is present exactly when want.
func (r *ClerkUserReconciler) syncFinalizer(ctx context.Context, obj *clerkv1alpha1.ClerkUser, want bool) error {
	if controllerutil.ContainsFinalizer(obj, clerkv1alpha1.Finalizer) == want {
		return nil
	}
	before := obj.DeepCopy()
	if want {
		controllerutil.AddFinalizer(obj, clerkv1alpha1.Finalizer)
	} else {
		controllerutil.RemoveFinalizer(obj, clerkv1alpha1.Finalizer)
	}
	if err := r.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("update finalizer of ClerkUser %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	return nil
}

// paused returns a rate-limit error while the client's key is paused after a 429.
func (r *ClerkUserReconciler) paused() error {
	p, ok := r.Clerk.(interface{ PausedUntil() time.Time })
	if !ok {
		return nil
	}
	if d := p.PausedUntil().Sub(r.now()); d > 0 {
		return &clerk.LimiterError{Method: "every", Path: "request", RetryAfter: d,
			Err: fmt.Errorf("paused after Clerk answered 429; requests with this key resume in %s", d.Round(time.Second))}
	}
	return nil
}

func (r *ClerkUserReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func jitterRand() float64 { return rand.Float64() } //nolint:gosec // jitter needs no cryptographic randomness

// SetupWithManager registers the reconciler and the status.userID field index with mgr.
// Only spec changes (generation) and annotation changes start a reconcile: the reconciler's own
// status patches never cause new Clerk calls.
func (r *ClerkUserReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Observer == nil && r.Clerk != nil {
		getter, ok := r.Clerk.(observe.UserGetter)
		if !ok {
			return fmt.Errorf("no Observer set and the Clerk API cannot get users")
		}
		r.Observer = observe.PerObject{Clerk: getter}
	}
	if r.SyncPeriod <= 0 {
		r.SyncPeriod = DefaultSyncPeriod
	}
	r.started = r.now()
	if r.gens == nil {
		r.gens = &generations{}
	}
	if r.secrets == nil {
		r.secrets = &secretVersions{}
	}
	if r.Clients == nil {
		r.Clients = &instance.Clients{}
	}
	r.Metrics.CountUsers(r.userCounts)
	if err := mgr.GetFieldIndexer().IndexField(ctx, &clerkv1alpha1.ClerkUser{}, instanceRefIndex, func(o client.Object) []string {
		if ref := o.(*clerkv1alpha1.ClerkUser).Spec.InstanceRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index ClerkUsers by %s: %w", instanceRefIndex, err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &clerkv1alpha1.ClerkUser{}, privateMetadataFromIndex, privateMetadataSecret); err != nil {
		return fmt.Errorf("index ClerkUsers by %s: %w", privateMetadataFromIndex, err)
	}
	src, err := r.changedUsersSource(mgr)
	if err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &clerkv1alpha1.ClerkUser{}, readyReasonIndex, func(o client.Object) []string {
		if c := meta.FindStatusCondition(o.(*clerkv1alpha1.ClerkUser).Status.Conditions, ConditionReady); c != nil {
			return []string{c.Reason}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index ClerkUsers by %s: %w", readyReasonIndex, err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &clerkv1alpha1.ClerkUser{}, userIDIndex, func(o client.Object) []string {
		if id := o.(*clerkv1alpha1.ClerkUser).Status.UserID; id != "" {
			return []string{id}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index ClerkUsers by %s: %w", userIDIndex, err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&clerkv1alpha1.ClerkUser{}, builder.WithPredicates(r.watchPredicate(),
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WatchesRawSource(src)
	if !r.NoPrivateMetadataFrom {
		// A new value of a privateMetadataFrom Secret is applied at once.
		b = b.Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.usersOfSecret),
			builder.WithPredicates(r.secretPredicate()))
	}
	return b.
		// A change of an instance (policy, selector, readiness) decides its objects again.
		Watches(&clerkv1alpha1.ClerkInstance{}, handler.EnqueueRequestsFromMapFunc(r.usersOfInstance),
			builder.WithPredicates(instanceDecides)).
		// So does a change of a namespace's labels.
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.usersInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		// When an object goes, the objects that lost a conflict to it may take its user over.
		Watches(&clerkv1alpha1.ClerkUser{}, handler.EnqueueRequestsFromMapFunc(r.conflictLosers),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc:  func(event.CreateEvent) bool { return false },
				UpdateFunc:  func(event.UpdateEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles),
			RateLimiter:             retryRateLimiter(),
		}).
		Named("clerkuser").
		Complete(r)
}

// changedUsersSource returns the source of reconciles for users an Observer found changed
// outside kubeclerk, and hooks an observe.Batch (and its background work) into mgr.
func (r *ClerkUserReconciler) changedUsersSource(mgr ctrl.Manager) (source.Source, error) {
	changes := make(chan event.GenericEvent, 1024)
	r.changes = changes
	if bo, ok := r.Observer.(*observe.Batch); ok {
		if bo.Changed == nil {
			bo.Changed = func(ctx context.Context, ids []string) { r.enqueueUsers(ctx, "", ids, changes) }
		}
		if bo.MaxAge <= 0 {
			bo.MaxAge = r.SyncPeriod
		}
		bo.Log = mgr.GetLogger().WithName("observer")
		// After a start, the observer reads every bound user in the fewest calls before the
		// reconciles ask one by one.
		managed := func(ctx context.Context, name string) ([]string, error) {
			if !mgr.GetCache().WaitForCacheSync(ctx) {
				return nil, errors.New("the ClerkUser cache did not sync")
			}
			return r.boundToInstance(ctx, name)
		}
		if bo.Managed == nil {
			// Objects bound to a ClerkInstance are read by that instance's observer.
			bo.Managed = func(ctx context.Context) ([]string, error) { return managed(ctx, "") }
		}
		// Without a key of its own (Clerk nil) it only lends its settings to the instances'.
		if r.Clerk != nil {
			if err := mgr.Add(bo); err != nil {
				return nil, fmt.Errorf("add the batched observer: %w", err)
			}
		}
		// Each ClerkInstance gets a batched observer of its own, with the same settings.
		r.observers = newInstanceObservers(bo, r.Clients, mgr.GetLogger().WithName("observer"))
		r.observers.managed = managed
		r.observers.changed = func(ctx context.Context, name string, ids []string) { r.enqueueUsers(ctx, name, ids, changes) }
		if err := mgr.Add(r.observers); err != nil {
			return nil, fmt.Errorf("add the ClerkInstances' batched observers: %w", err)
		}
		if r.Clerk == nil {
			r.Observer = nil // never started: nothing to observe with
		}
	}
	return source.Channel(changes, &handler.EnqueueRequestForObject{}), nil
}

// enqueueUsers asks for a reconcile of every ClerkUser of instanceName ("" for the manager's
// own key) bound to one of ids.
func (r *ClerkUserReconciler) enqueueUsers(ctx context.Context, instanceName string, ids []string, out chan<- event.GenericEvent) {
	for _, id := range ids {
		var list clerkv1alpha1.ClerkUserList
		if err := r.List(ctx, &list, client.MatchingFields{userIDIndex: id}); err != nil {
			logf.FromContext(ctx).Error(err, "Finding ClerkUsers of a changed Clerk user failed", "userID", id)
			continue
		}
		for i := range list.Items {
			if instanceOf(&list.Items[i]) != instanceName {
				continue // another Clerk instance's user with the same ID
			}
			logf.FromContext(ctx).V(1).Info("Clerk user changed outside kubeclerk", "userID", id,
				"clerkUser", client.ObjectKeyFromObject(&list.Items[i]))
			select {
			case out <- event.GenericEvent{Object: &list.Items[i]}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// boundID is the Clerk user ID an object is bound to: spec.userID, else status.userID.
func boundID(obj *clerkv1alpha1.ClerkUser) string {
	if obj.Spec.UserID != "" {
		return obj.Spec.UserID
	}
	return obj.Status.UserID
}

// readyReasonIndex is the field index of ClerkUsers by the reason of their Ready condition.
const readyReasonIndex = "status.readyReason"

// conflictLosers returns the objects Stalled with reason Conflict, found through an index.
func (r *ClerkUserReconciler) conflictLosers(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.requestsFor(ctx, "ClerkUsers that lost a conflict", nil, client.MatchingFields{readyReasonIndex: ReasonConflict})
}

// requestsFor lists the ClerkUsers matching opts (those keep passes, all when keep is nil) as
// reconcile requests, for a watch's map function; a failed list is logged, naming what, and
// maps to nothing.
func (r *ClerkUserReconciler) requestsFor(ctx context.Context, what string, keep func(*clerkv1alpha1.ClerkUser) bool,
	opts ...client.ListOption) []reconcile.Request {
	var list clerkv1alpha1.ClerkUserList
	if err := r.List(ctx, &list, opts...); err != nil {
		logf.FromContext(ctx).Error(err, "Finding "+what+" failed")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		if keep == nil || keep(&list.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}
