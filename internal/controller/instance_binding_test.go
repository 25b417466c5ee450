package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
	"github.com/kubeclerk/kubeclerk/internal/instance"
)

// otherClerk is a second fake Clerk instance with its own key.
type otherClerk struct {
	fake *clerkfake.Server
	url  string
	key  string
	api  *clerk.Client
}

func (h *harness) otherClerk() *otherClerk {
	h.t.Helper()
	key := "sk_test_other_" + strings.ReplaceAll(h.ns, "-", "_")
	fake := clerkfake.New(clerkfake.Options{SecretKey: key})
	srv := httptest.NewServer(fake)
	h.t.Cleanup(srv.Close)
	api, err := clerk.New(clerk.Options{BaseURL: srv.URL + "/v1", SecretKey: key, RequestsPerSecond: 1000, Burst: 1000})
	h.g.Expect(err).NotTo(HaveOccurred())
	return &otherClerk{fake: fake, url: srv.URL + "/v1", key: key, api: api}
}

// createInstance creates a ClerkInstance for c with the given selector and policy and waits
// until it is Connected.
func (h *harness) createInstance(name string, c *otherClerk, sel map[string]string, policy *clerkv1alpha1.ClerkInstancePolicy) {
	h.t.Helper()
	h.putSecret("key-"+name, c.key)
	inst := &clerkv1alpha1.ClerkInstance{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: clerkv1alpha1.ClerkInstanceSpec{
			SecretKeyRef:      clerkv1alpha1.SecretKeyReference{Name: "key-" + name, Key: "secret-key"},
			APIURL:            c.url,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: sel},
			Policy:            policy,
		}}
	h.g.Expect(k8sClient.Create(context.Background(), inst)).To(Succeed())
	h.t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), inst) })
	h.waitInstance(name, metav1.ConditionTrue, instance.ReasonConnected)
}

// labelNamespace sets labels on the harness namespace.
func (h *harness) labelNamespace(labels map[string]string) {
	h.t.Helper()
	h.g.Eventually(func() error {
		ns := &corev1.Namespace{}
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Name: h.ns}, ns); err != nil {
			return err
		}
		ns.Labels = labels
		return k8sClient.Update(context.Background(), ns)
	}).Should(Succeed())
}

// clerkCalls counts the reads of users and the writes a fake answered: everything but the
// instance probe (GET /users/count).
func clerkCalls(f *clerkfake.Server) int64 {
	s := f.Stats()
	return s.Count("GET /v1/users") + s.Count("GET /v1/users/{user_id}") + s.Writes()
}

// TestInstanceBinding: a ClerkUser with spec.instanceRef is served with that instance's key and
// budget, never the manager's; the instance's namespaceSelector and policy refuse objects before
// any Clerk call (NotAllowed); a user found whose primary email is outside emailDomains is not
// bound; a missing instance is InstanceNotReady, and creating it serves the object at once.
func TestInstanceBinding(t *testing.T) {
	h := newHarness(t)
	b := h.otherClerk()
	h.labelNamespace(map[string]string{"tenant": "a"})
	instB := "b-" + h.ns
	no := false
	h.createInstance(instB, b, map[string]string{"tenant": "a"},
		&clerkv1alpha1.ClerkInstancePolicy{AllowUserID: &no, EmailDomains: []string{"acme.com"}})
	ctx := context.Background()
	u, err := b.api.CreateUser(ctx, clerk.CreateUserParams{ExternalID: new("emp-1"), EmailAddresses: []string{"ann@acme.com"}, SkipPasswordRequirement: true})
	h.g.Expect(err).NotTo(HaveOccurred())
	ref := &clerkv1alpha1.InstanceReference{Name: instB}
	own := h.fake.Stats().Total

	h.apply("ann", clerkv1alpha1.ClerkUserSpec{InstanceRef: ref, ExternalID: "emp-1", FirstName: new("Ann")})
	obj := h.waitSynced("ann")
	h.g.Expect(obj.Status.UserID).To(Equal(u.ID))
	got, err := b.api.GetUser(ctx, u.ID)
	h.g.Expect(err).NotTo(HaveOccurred())
	h.g.Expect(got.FirstName).To(Equal(new("Ann")))
	h.g.Expect(h.fake.Stats().Total).To(Equal(own), "the manager's own instance was called for an instance-bound object")
	h.g.Eventually(func(g Gomega) int32 {
		inst := &clerkv1alpha1.ClerkInstance{}
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Name: instB}, inst)).To(Succeed())
		return inst.Status.BoundUsers
	}).Should(Equal(int32(1)), "status.boundUsers")

	// Policy refusals: no Clerk call at all, nothing observed.
	calls := clerkCalls(b.fake)
	h.apply("by-id", clerkv1alpha1.ClerkUserSpec{InstanceRef: ref, UserID: u.ID, Banned: new(true)})
	h.apply("evil", clerkv1alpha1.ClerkUserSpec{InstanceRef: ref, EmailAddress: "eve@evil.com", Banned: new(true),
		DeletionPolicy: clerkv1alpha1.DeletionPolicyBan})
	for name, rule := range map[string]string{"by-id": "policy.allowUserID", "evil": "emailDomains"} {
		obj := h.waitCondition(name, metav1.ConditionFalse, ReasonNotAllowed)
		h.g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, ConditionStalled)).To(BeTrue())
		h.g.Expect(meta.FindStatusCondition(obj.Status.Conditions, ConditionReady).Message).To(ContainSubstring(rule))
		h.g.Expect(obj.Status.Observed).To(BeNil())
	}
	h.g.Expect(clerkCalls(b.fake)).To(Equal(calls), "a refused object called Clerk")
	// Deleting a refused object with deletionPolicy Ban releases it without a Ban: it may not write.
	evil := h.get("evil")
	h.g.Expect(evil.Finalizers).To(ContainElement(clerkv1alpha1.Finalizer))
	h.g.Expect(k8sClient.Delete(ctx, evil)).To(Succeed())
	h.g.Eventually(h.gone("evil")).Should(BeTrue())
	h.g.Expect(clerkCalls(b.fake)).To(Equal(calls), "deleting a refused object called Clerk: %v", b.fake.Stats().Requests)

	// A user found by externalID whose primary email is outside emailDomains is not bound.
	_, err = b.api.CreateUser(ctx, clerk.CreateUserParams{ExternalID: new("emp-2"), EmailAddresses: []string{"bob@other.org"}, SkipPasswordRequirement: true})
	h.g.Expect(err).NotTo(HaveOccurred())
	writes := b.fake.Stats().Writes()
	h.apply("bob", clerkv1alpha1.ClerkUserSpec{InstanceRef: ref, ExternalID: "emp-2", Banned: new(true)})
	obj = h.waitCondition("bob", metav1.ConditionFalse, ReasonNotAllowed)
	h.g.Expect(obj.Status.UserID).To(BeEmpty())
	h.g.Expect(obj.Status.Observed).To(BeNil())
	h.g.Expect(b.fake.Stats().Writes()).To(Equal(writes))

	// A namespace the instance does not select: refused, no call; labelling it serves it.
	instC := "c-" + h.ns
	h.createInstance(instC, b, map[string]string{"tenant": "c"}, nil)
	calls = clerkCalls(b.fake)
	h.apply("elsewhere", clerkv1alpha1.ClerkUserSpec{InstanceRef: &clerkv1alpha1.InstanceReference{Name: instC}, ExternalID: "emp-1"})
	obj = h.waitCondition("elsewhere", metav1.ConditionFalse, ReasonNotAllowed)
	h.g.Expect(meta.FindStatusCondition(obj.Status.Conditions, ConditionReady).Message).To(ContainSubstring("namespaceSelector"))
	h.g.Expect(clerkCalls(b.fake)).To(Equal(calls), "an object outside the namespaceSelector called Clerk")

	// A missing instance: InstanceNotReady; creating it serves the object without a spec change.
	instD := "d-" + h.ns
	h.apply("early", clerkv1alpha1.ClerkUserSpec{InstanceRef: &clerkv1alpha1.InstanceReference{Name: instD}, ExternalID: "emp-1",
		ManagementPolicy: clerkv1alpha1.ManagementPolicyObserve})
	h.waitCondition("early", metav1.ConditionFalse, ReasonInstanceNotReady)
	h.createInstance(instD, b, map[string]string{}, nil)
	h.waitCondition("early", metav1.ConditionTrue, ReasonObserved)
}

// TestInstanceRateLimitIsolation: a 429 storm on one instance never slows another: the
// manager's own instance converges while the other answers only 429s.
func TestInstanceRateLimitIsolation(t *testing.T) {
	h := newHarness(t)
	b := h.otherClerk()
	instB := "storm-" + h.ns
	h.createInstance(instB, b, map[string]string{}, nil)
	ctx := context.Background()
	ub, err := b.api.CreateUser(ctx, clerk.CreateUserParams{ExternalID: new("emp-s"), EmailAddresses: []string{"s@example.com"}, SkipPasswordRequirement: true})
	h.g.Expect(err).NotTo(HaveOccurred())
	h.g.Expect(b.fake.SetFaults(clerkfake.Faults{Rate429: 1, RetryAfterSeconds: 30})).To(Succeed())
	h.apply("stormy", clerkv1alpha1.ClerkUserSpec{InstanceRef: &clerkv1alpha1.InstanceReference{Name: instB}, UserID: ub.ID, FirstName: new("S")})
	h.waitCondition("stormy", metav1.ConditionFalse, ReasonRateLimited)

	// The manager's own instance is not slowed: ten objects converge at once.
	for i := range 10 {
		id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"calm" + string(rune('a'+i)) + "@example.com"}})
		h.apply("calm-"+string(rune('a'+i)), clerkv1alpha1.ClerkUserSpec{UserID: id, FirstName: new("C")})
	}
	for i := range 10 {
		h.waitSynced("calm-" + string(rune('a'+i)))
	}
	h.g.Expect(meta.FindStatusCondition(h.get("stormy").Status.Conditions, ConditionReady).Reason).To(Equal(ReasonRateLimited))
	b.fake.ClearFaults()
}

// TestInstanceBatchedObservation: the users bound to a ClerkInstance are read by that instance's
// own batched observer: with its key, in batches (never one GET per user), and its change poll
// or expiry finds drift, which is corrected; the manager's own Clerk is not called for them.
// Deleting the instance stops its observer.
func TestInstanceBatchedObservation(t *testing.T) {
	h := newHarness(t, withSyncPeriod(2*time.Second))
	b := h.otherClerk()
	inst := "batch-" + h.ns
	h.createInstance(inst, b, map[string]string{}, nil)
	ctx := context.Background()
	ownWrites, ownGets := h.writes(), h.calls("GET /v1/users/{user_id}")
	ids := make([]string, 0, 5)
	for i := range 5 {
		u, err := b.api.CreateUser(ctx, clerk.CreateUserParams{ExternalID: new(fmt.Sprintf("emp-b%d", i)),
			EmailAddresses: []string{fmt.Sprintf("b%d@example.com", i)}, SkipPasswordRequirement: true})
		h.g.Expect(err).NotTo(HaveOccurred())
		ids = append(ids, u.ID)
		h.apply(fmt.Sprintf("b%d", i), clerkv1alpha1.ClerkUserSpec{InstanceRef: &clerkv1alpha1.InstanceReference{Name: inst},
			UserID: u.ID, FirstName: new("B"), Banned: new(false)})
	}
	for i := range 5 {
		h.waitSynced(fmt.Sprintf("b%d", i))
	}
	_, running := h.reconciler.observers.running(inst)
	h.g.Expect(running).To(BeTrue(), "no batched observer for the instance")

	// Drift on the instance is found and corrected.
	_, err := b.api.BanUser(ctx, ids[2])
	h.g.Expect(err).NotTo(HaveOccurred())
	h.g.Eventually(func(g Gomega) any {
		raw, ok := b.fake.User(ids[2])
		g.Expect(ok).To(BeTrue())
		var u map[string]any
		g.Expect(json.Unmarshal(raw, &u)).To(Succeed())
		return u["banned"]
	}).Should(BeFalse())
	h.g.Expect(b.fake.Stats().Count("GET /v1/users/{user_id}")).To(BeZero(),
		"users of the instance were read one by one: %v", b.fake.Stats().Requests)
	h.g.Expect(b.fake.Stats().Count("GET /v1/users")).To(BeNumerically(">", 0))
	// The manager's own Clerk only answers its own observer's polls.
	h.g.Expect(h.writes()).To(Equal(ownWrites), "the manager's own Clerk was written for the instance's users")
	h.g.Expect(h.calls("GET /v1/users/{user_id}")).To(Equal(ownGets))

	// Deleting the instance stops its observer.
	h.g.Expect(k8sClient.Delete(ctx, &clerkv1alpha1.ClerkInstance{ObjectMeta: metav1.ObjectMeta{Name: inst}})).To(Succeed())
	h.g.Eventually(func() bool { _, ok := h.reconciler.observers.running(inst); return ok }).Should(BeFalse())
}

// TestManagerWithoutOwnKey: a manager started without a key of its own serves ClerkInstances:
// their objects converge; an object without spec.instanceRef waits with InstanceNotReady, makes
// no Clerk call, and its deletion with deletionPolicy Orphan is not held up.
func TestManagerWithoutOwnKey(t *testing.T) {
	h := newHarness(t, withoutOwnKey)
	b := h.otherClerk()
	inst := "only-" + h.ns
	h.createInstance(inst, b, map[string]string{}, nil)
	u, err := b.api.CreateUser(context.Background(), clerk.CreateUserParams{ExternalID: new("emp-k"),
		EmailAddresses: []string{"k@example.com"}, SkipPasswordRequirement: true})
	h.g.Expect(err).NotTo(HaveOccurred())
	h.apply("bound", clerkv1alpha1.ClerkUserSpec{InstanceRef: &clerkv1alpha1.InstanceReference{Name: inst}, ExternalID: "emp-k", LastName: new("K")})
	h.g.Expect(h.waitSynced("bound").Status.UserID).To(Equal(u.ID))

	h.apply("unbound", clerkv1alpha1.ClerkUserSpec{EmailAddress: "k@example.com", Banned: new(true)})
	obj := h.waitCondition("unbound", metav1.ConditionFalse, ReasonInstanceNotReady)
	h.g.Expect(meta.FindStatusCondition(obj.Status.Conditions, ConditionReady).Message).To(ContainSubstring("set spec.instanceRef"))
	h.g.Expect(h.fake.Stats().Total).To(BeZero(), "the manager called a Clerk it has no key for")
	h.g.Expect(k8sClient.Delete(context.Background(), obj)).To(Succeed())
	h.g.Eventually(h.gone("unbound")).Should(BeTrue())
}
