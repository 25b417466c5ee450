package controller

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/instance"
)

// secretKeyRefIndex is the field index of ClerkInstances by the name of their key's Secret.
const secretKeyRefIndex = "spec.secretKeyRef.name"

// ClerkInstanceReconciler keeps one Clerk client per ClerkInstance, built from the key in the
// instance's Secret (in Namespace), and reports in status whether Clerk accepts that key, with
// one cheap probe (GET /users/count) per change and per ProbePeriod. A change of the Secret is
// picked up at once: the next call uses the rotated key, without a restart.
type ClerkInstanceReconciler struct {
	client.Client
	// Clients holds the instances' Clerk clients.
	Clients *instance.Clients
	// Namespace is where the instances' Secrets live (--cluster-resource-namespace).
	Namespace string
	// ProbePeriod is how often a connected instance's key is checked again; DefaultSyncPeriod when zero.
	ProbePeriod time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu     sync.Mutex
	probed map[string]generationProbe // last successful probe per instance
}

// +kubebuilder:rbac:groups=clerk.kubeclerk.dev,resources=clerkinstances,verbs=get;list;watch
// +kubebuilder:rbac:groups=clerk.kubeclerk.dev,resources=clerkinstances/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",namespace=kubeclerk-system,resources=secrets,verbs=get;list;watch

// Reconcile reads the instance's key, (re)builds its client and probes Clerk with it.
func (r *ClerkInstanceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	inst := &clerkv1alpha1.ClerkInstance{}
	if err := r.Get(ctx, req.NamespacedName, inst); err != nil {
		if apierrors.IsNotFound(err) {
			r.Clients.Remove(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	orig := inst.DeepCopy()
	o, keyType, result, retErr := r.connect(ctx, inst)
	if keyType != "" {
		inst.Status.KeyType = keyType
	}
	inst.Status.ObservedGeneration = inst.Generation
	var bound clerkv1alpha1.ClerkUserList
	if err := r.List(ctx, &bound, client.MatchingFields{instanceRefIndex: inst.Name}); err == nil {
		inst.Status.BoundUsers = int32(min(len(bound.Items), math.MaxInt32)) //nolint:gosec // bounded above
	}
	setConditions(&inst.Status.Conditions, inst.Generation, o, r.now())
	if err := r.Status().Patch(ctx, inst, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, errors.Join(retErr, fmt.Errorf("patch status of ClerkInstance %s: %w", inst.Name, err))
	}
	return result, retErr
}

// connect reads the key from the instance's Secret, ensures its client and probes Clerk. It
// returns the Ready outcome, the key type when the key is well-formed, and when to come back.
func (r *ClerkInstanceReconciler) connect(ctx context.Context, inst *clerkv1alpha1.ClerkInstance) (outcome, string, ctrl.Result, error) {
	ref := inst.Spec.SecretKeyRef
	where := fmt.Sprintf("Secret %s/%s", r.Namespace, ref.Name)
	// A missing or malformed key needs a change of the Secret, which the Secret watch reports;
	// the periodic retry is only a safety net.
	retry := ctrl.Result{RequeueAfter: jitter(r.probePeriod())}
	var sec corev1.Secret
	if err := r.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: ref.Name}, &sec); err != nil {
		if !apierrors.IsNotFound(err) {
			return outcome{reason: instance.ReasonSecretNotFound, message: fmt.Sprintf("Reading %s failed; retrying: %v", where, err)},
				"", ctrl.Result{}, err
		}
		r.Clients.Remove(inst.Name)
		return outcome{reason: instance.ReasonSecretNotFound, message: fmt.Sprintf(
			"%s (spec.secretKeyRef.name) was not found; create it in %s with the instance's secret key under %q (spec.secretKeyRef.key).",
			where, r.Namespace, ref.Key)}, "", retry, nil
	}
	value, ok := sec.Data[ref.Key]
	if !ok {
		r.Clients.Remove(inst.Name)
		return outcome{reason: instance.ReasonSecretNotFound, message: fmt.Sprintf(
			"%s has no entry %q (spec.secretKeyRef.key); add the instance's secret key under that name, or change spec.secretKeyRef.key.",
			where, ref.Key)}, "", retry, nil
	}
	key, keyType, err := instance.ParseKey(value)
	if err != nil {
		r.Clients.Remove(inst.Name)
		return outcome{stalled: true, reason: instance.ReasonSecretNotFound, message: fmt.Sprintf("%s, entry %q: %v", where, ref.Key, err)},
			"", retry, nil
	}
	cfg := instance.Config{Key: key, APIURL: inst.Spec.APIURL}
	if inst.Spec.RequestsPerSecond != nil {
		cfg.RequestsPerSecond = *inst.Spec.RequestsPerSecond
	}
	if inst.Spec.Burst != nil {
		cfg.Burst = *inst.Spec.Burst
	}
	c, changed, err := r.Clients.Ensure(inst.Name, cfg)
	if err != nil {
		return outcome{stalled: true, reason: ReasonInvalidSpec, message: err.Error()}, keyType, retry, nil
	}
	if changed {
		logf.FromContext(ctx).Info("Using the key of the instance's Secret", "secret", where, "keyType", keyType, "apiURL", c.BaseURL())
	}
	connected := outcome{ready: true, reason: instance.ReasonConnected,
		message: fmt.Sprintf("Clerk accepted the %s key of %s at %s", keyType, where, c.BaseURL())}
	if !changed && r.probedRecently(inst) {
		// Only status.boundUsers changed (a ClerkUser came or went): no new probe.
		return connected, keyType, ctrl.Result{RequeueAfter: jitter(r.probePeriod())}, nil
	}
	if _, err := c.CountUsers(ctx, clerk.ListUsersParams{}); err != nil {
		switch {
		case clerk.IsAuthentication(err):
			return outcome{stalled: true, reason: instance.ReasonAuthenticationFailed, message: fmt.Sprintf(
					"Clerk refused the key in %s, entry %q; put a valid secret key of this instance there: %v", where, ref.Key, err)},
				keyType, retry, nil
		case clerk.IsRateLimited(err):
			// Clerk checks the key before the rate limit: a 429 means the key is accepted, and a
			// storm must not take the instance's objects out of service.
			connected.message += "; Clerk's rate limit was reached at the last check"
			r.markProbed(inst)
			return connected, keyType, ctrl.Result{RequeueAfter: jitter(r.probePeriod())}, nil
		default:
			return outcome{reason: instance.ReasonClerkUnavailable, message: fmt.Sprintf("Clerk could not be reached at %s; retrying with backoff: %v", c.BaseURL(), err)},
				keyType, ctrl.Result{}, err
		}
	}
	r.markProbed(inst)
	return connected, keyType, ctrl.Result{RequeueAfter: jitter(r.probePeriod())}, nil
}

// probedRecently reports whether the instance's current generation was probed successfully
// less than a probe period ago and is still Ready.
func (r *ClerkInstanceReconciler) probedRecently(inst *clerkv1alpha1.ClerkInstance) bool {
	r.mu.Lock()
	p, ok := r.probed[inst.Name]
	r.mu.Unlock()
	return ok && p.generation == inst.Generation && r.now().Sub(p.at) < r.probePeriod() &&
		meta.IsStatusConditionTrue(inst.Status.Conditions, ConditionReady)
}

// markProbed records a successful probe of the instance's current generation.
func (r *ClerkInstanceReconciler) markProbed(inst *clerkv1alpha1.ClerkInstance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.probed == nil {
		r.probed = map[string]generationProbe{}
	}
	r.probed[inst.Name] = generationProbe{generation: inst.Generation, at: r.now()}
}

type generationProbe struct {
	generation int64
	at         time.Time
}

func (r *ClerkInstanceReconciler) probePeriod() time.Duration {
	if r.ProbePeriod > 0 {
		return r.ProbePeriod
	}
	return DefaultSyncPeriod
}

func (r *ClerkInstanceReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetupWithManager registers the reconciler: spec changes of ClerkInstances, and any change of a
// Secret in Namespace that an instance names (found through a field index).
func (r *ClerkInstanceReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Clients == nil {
		r.Clients = &instance.Clients{}
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &clerkv1alpha1.ClerkInstance{}, secretKeyRefIndex, func(o client.Object) []string {
		return []string{o.(*clerkv1alpha1.ClerkInstance).Spec.SecretKeyRef.Name}
	}); err != nil {
		return fmt.Errorf("index ClerkInstances by %s: %w", secretKeyRefIndex, err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&clerkv1alpha1.ClerkInstance{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.instancesOfSecret)).
		// A ClerkUser that names an instance, or goes, changes its status.boundUsers.
		Watches(&clerkv1alpha1.ClerkUser{}, handler.EnqueueRequestsFromMapFunc(instanceOfUser),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }})).
		WithOptions(controller.Options{RateLimiter: retryRateLimiter()}).
		Named("clerkinstance").
		Complete(r)
}

// instancesOfSecret returns the ClerkInstances whose key is in the Secret o.
func (r *ClerkInstanceReconciler) instancesOfSecret(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetNamespace() != r.Namespace {
		return nil
	}
	var list clerkv1alpha1.ClerkInstanceList
	if err := r.List(ctx, &list, client.MatchingFields{secretKeyRefIndex: o.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "Finding the ClerkInstances of a Secret failed", "secret", client.ObjectKeyFromObject(o))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
	}
	return reqs
}

// instanceOfUser returns the ClerkInstance a ClerkUser names, if any.
func instanceOfUser(_ context.Context, o client.Object) []reconcile.Request {
	if ref := o.(*clerkv1alpha1.ClerkUser).Spec.InstanceRef; ref != nil {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: ref.Name}}}
	}
	return nil
}

// WebhookSecret returns the webhook signing secret (whsec_…) of ClerkInstance name, from the
// Secret entry its spec.webhookSecretRef names in the manager's namespace (read from the cache at
// each request, so that a rotated secret is used at once). It reports false when the instance,
// its webhookSecretRef, the Secret or the entry is missing, or the value is not a whsec_ secret.
func (r *ClerkInstanceReconciler) WebhookSecret(ctx context.Context, name string) (string, bool) {
	var inst clerkv1alpha1.ClerkInstance
	if err := r.Get(ctx, types.NamespacedName{Name: name}, &inst); err != nil || inst.Spec.WebhookSecretRef == nil {
		return "", false
	}
	ref := inst.Spec.WebhookSecretRef
	var sec corev1.Secret
	if err := r.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: ref.Name}, &sec); err != nil {
		return "", false
	}
	v := strings.TrimSpace(string(sec.Data[ref.Key]))
	if !strings.HasPrefix(v, "whsec_") {
		return "", false
	}
	return v, true
}
