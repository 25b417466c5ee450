package controller

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/instance"
)

// applyInstance creates a ClerkInstance pointing at the harness's fake, with its key in the
// Secret secret (entry "secret-key") of the harness namespace; it is deleted when the test ends.
func (h *harness) applyInstance(name, secret string) {
	h.t.Helper()
	inst := &clerkv1alpha1.ClerkInstance{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: clerkv1alpha1.ClerkInstanceSpec{
			SecretKeyRef:      clerkv1alpha1.SecretKeyReference{Name: secret, Key: "secret-key"},
			APIURL:            h.srv.URL + "/v1",
			NamespaceSelector: &metav1.LabelSelector{},
		}}
	h.g.Expect(k8sClient.Create(context.Background(), inst)).To(Succeed())
	h.t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), inst) })
}

// putSecret creates or updates the Secret name of the manager's namespace with entry secret-key.
func (h *harness) putSecret(name, key string) {
	h.t.Helper()
	ctx := context.Background()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.mgrNS},
		Data: map[string][]byte{"secret-key": []byte(key + "\n")}}
	if err := k8sClient.Create(ctx, sec); err == nil {
		return
	}
	h.g.Eventually(func() error {
		cur := &corev1.Secret{}
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: h.mgrNS, Name: name}, cur); err != nil {
			return err
		}
		cur.Data = sec.Data
		return k8sClient.Update(ctx, cur)
	}).Should(Succeed())
}

// waitInstance waits until the instance's Ready condition has the status and reason for its
// generation, and returns it.
func (h *harness) waitInstance(name string, status metav1.ConditionStatus, reason string) *clerkv1alpha1.ClerkInstance {
	h.t.Helper()
	inst := &clerkv1alpha1.ClerkInstance{}
	h.g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), types.NamespacedName{Name: name}, inst)).To(Succeed())
		c := meta.FindStatusCondition(inst.Status.Conditions, ConditionReady)
		g.Expect(c).NotTo(BeNil(), "no Ready condition yet")
		g.Expect(c.ObservedGeneration).To(Equal(inst.Generation))
		g.Expect(c.Reason).To(Equal(reason), "Ready reason (message: %s)", c.Message)
		g.Expect(c.Status).To(Equal(status))
	}).Should(Succeed())
	return inst
}

// TestClerkInstanceConnects: the key is read from the Secret, Clerk accepts it with one probe,
// and the status says so with the key type. The key never reaches the status.
func TestClerkInstanceConnects(t *testing.T) {
	h := newHarness(t)
	h.putSecret("clerk-key", h.opts.fake.SecretKey)
	counts := h.calls("GET /v1/users/count")
	h.applyInstance("inst-"+h.ns, "clerk-key")
	inst := h.waitInstance("inst-"+h.ns, metav1.ConditionTrue, instance.ReasonConnected)
	h.g.Expect(inst.Status.KeyType).To(Equal("test"))
	h.g.Expect(h.calls("GET /v1/users/count")-counts).To(Equal(int64(1)), "one probe")
	c := meta.FindStatusCondition(inst.Status.Conditions, ConditionReady)
	h.g.Expect(c.Message).NotTo(ContainSubstring(h.opts.fake.SecretKey))
	_, ok := h.clients.Get("inst-" + h.ns)
	h.g.Expect(ok).To(BeTrue())
}

// TestClerkInstanceSecretProblems: a missing Secret, a missing entry and a value that is not a
// Clerk secret key each give a condition naming the field, and cost no Clerk call; fixing the
// Secret connects at once (the Secret watch), without a restart.
func TestClerkInstanceSecretProblems(t *testing.T) {
	h := newHarness(t)
	name := "inst-" + h.ns
	reads := h.reads()
	h.applyInstance(name, "later")
	inst := h.waitInstance(name, metav1.ConditionFalse, instance.ReasonSecretNotFound)
	h.g.Expect(meta.FindStatusCondition(inst.Status.Conditions, ConditionReady).Message).To(ContainSubstring("spec.secretKeyRef.name"))

	h.putSecret("later", "pk_test_publishable")
	h.g.Eventually(func() string {
		return meta.FindStatusCondition(h.waitInstance(name, metav1.ConditionFalse, instance.ReasonSecretNotFound).Status.Conditions, ConditionReady).Message
	}).Should(And(ContainSubstring("spec.secretKeyRef"), ContainSubstring("publishable")))
	inst = h.waitInstance(name, metav1.ConditionFalse, instance.ReasonSecretNotFound)
	h.g.Expect(meta.IsStatusConditionTrue(inst.Status.Conditions, ConditionStalled)).To(BeTrue())
	h.g.Expect(h.reads()-reads).To(BeZero(), "a bad Secret must cost no Clerk call")
	_, ok := h.clients.Get(name)
	h.g.Expect(ok).To(BeFalse())

	h.putSecret("later", h.opts.fake.SecretKey)
	h.waitInstance(name, metav1.ConditionTrue, instance.ReasonConnected)
}

// TestClerkInstanceKeyRotation: a key Clerk refuses is AuthenticationFailed; rotating the Secret
// to the right key connects with a new client, without a restart.
func TestClerkInstanceKeyRotation(t *testing.T) {
	h := newHarness(t)
	name := "inst-" + h.ns
	h.putSecret("rot", "sk_test_revoked")
	h.applyInstance(name, "rot")
	inst := h.waitInstance(name, metav1.ConditionFalse, instance.ReasonAuthenticationFailed)
	msg := meta.FindStatusCondition(inst.Status.Conditions, ConditionReady).Message
	h.g.Expect(msg).To(ContainSubstring("Secret " + h.mgrNS + "/rot"))
	h.g.Expect(msg).NotTo(ContainSubstring("sk_test_revoked"))
	old, ok := h.clients.Get(name)
	h.g.Expect(ok).To(BeTrue())

	h.putSecret("rot", h.opts.fake.SecretKey)
	h.waitInstance(name, metav1.ConditionTrue, instance.ReasonConnected)
	rotated, _ := h.clients.Get(name)
	h.g.Expect(rotated).NotTo(BeIdenticalTo(old), "the rotated key needs a new client")
}
