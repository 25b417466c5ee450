package controller

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// TestMergePrivateMetadata: the Secret's object is merged key by key with spec.privateMetadata,
// values keep their exact text; a key in both, a value that is not an object or is over the
// limit is refused with a message that names keys and never values; the hash follows the value
// and its salt and holds nothing of the value.
func TestMergePrivateMetadata(t *testing.T) {
	tests := []struct {
		name     string
		declared string // "" = not declared
		value    string
		want     string
		wantErr  string
	}{
		{name: "alone", value: `{"token":"v1","n":1098765432109876543}`, want: `{"n":1098765432109876543,"token":"v1"}`},
		{name: "merged", declared: `{"team":"x"}`, value: `{"token":"v1"}`, want: `{"team":"x","token":"v1"}`},
		{name: "declared null", declared: `null`, value: `{"token":"v1"}`, want: `{"token":"v1"}`},
		{name: "empty object", declared: `{"team":"x"}`, value: `{}`, want: `{"team":"x"}`},
		{name: "nested kept", value: "{\"a\": {\"b\": [1.50, null]}}", want: `{"a":{"b":[1.50,null]}}`},
		{name: "both", declared: `{"token":"plain","team":"x"}`, value: `{"token":"v1-secret-value"}`, wantErr: `declares "token", also declared in spec.privateMetadata`},
		{name: "array", value: `["v1-secret-value"]`, wantErr: "not a JSON object"},
		{name: "string", value: `"v1-secret-value"`, wantErr: "not a JSON object"},
		{name: "null", value: `null`, wantErr: "not a JSON object"},
		{name: "not JSON", value: `token=v1-secret-value`, wantErr: "not a JSON object"},
		{name: "too large", value: `{"k":"` + strings.Repeat("v", MaxMetadataBytes) + `"}`, wantErr: "over Clerk's metadata limit of 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var declared *apiextensionsv1.JSON
			if tt.declared != "" {
				declared = rawJSON(tt.declared)
			}
			got, hash, err := mergePrivateMetadata(declared, []byte(tt.value), "uid-1")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret-value") {
					t.Errorf("the error shows a value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if string(got.Raw) != tt.want {
				t.Errorf("merged = %s, want %s", got.Raw, tt.want)
			}
			if !strings.HasPrefix(hash, "sha256:") || len(hash) != len("sha256:")+64 {
				t.Errorf("hash = %q", hash)
			}
		})
	}

	hash := func(value string, salt types.UID) string {
		_, h, err := mergePrivateMetadata(nil, []byte(value), salt)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a := hash(`{"token":"v1"}`, "uid-1")
	if b := hash(`{ "token" : "v1" }`, "uid-1"); a != b {
		t.Errorf("the same object written otherwise hashes differently: %s, %s", a, b)
	}
	if b := hash(`{"token":"v2"}`, "uid-1"); a == b {
		t.Error("another value has the same hash")
	}
	if b := hash(`{"token":"v1"}`, "uid-2"); a == b {
		t.Error("the hash does not depend on the Secret's UID: anyone could confirm a guess of the value")
	}
	if _, h, _ := mergePrivateMetadata(rawJSON(`{"team":"x"}`), []byte(`{"token":"v1"}`), "uid-1"); h != a {
		t.Error("the hash depends on spec.privateMetadata; it identifies the Secret's value only")
	}
}

// putPrivateSecret creates or replaces a Secret of the harness namespace holding value under
// metadata.json, labelled for privateMetadataFrom when labelled.
func (h *harness) putPrivateSecret(name, value string, labelled bool) {
	h.t.Helper()
	ctx := context.Background()
	labels := map[string]string{}
	if labelled {
		labels[clerkv1alpha1.PrivateMetadataSecretLabel] = "true"
	}
	h.g.Eventually(func() error {
		cur := &corev1.Secret{}
		err := k8sClient.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: name}, cur)
		if err != nil {
			cur = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns}}
		}
		cur.Labels = labels
		cur.Data = map[string][]byte{"metadata.json": []byte(value)}
		if err != nil {
			return k8sClient.Create(ctx, cur)
		}
		return k8sClient.Update(ctx, cur)
	}).Should(Succeed())
}

func fromSecret(name string) *clerkv1alpha1.PrivateMetadataSource {
	return &clerkv1alpha1.PrivateMetadataSource{SecretKeyRef: clerkv1alpha1.LocalSecretKeyReference{Name: name, Key: "metadata.json"}}
}

// waitInvalid waits for InvalidSpec of the object "pm" with a message containing want, and
// returns the message.
func (h *harness) waitInvalid(want string) string {
	const name = "pm"
	h.t.Helper()
	var msg string
	h.g.Eventually(func(g Gomega) {
		obj := h.get(name)
		c := meta.FindStatusCondition(obj.Status.Conditions, ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(ReasonInvalidSpec), "message: %s", c.Message)
		g.Expect(c.Message).To(ContainSubstring(want))
		g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, ConditionStalled)).To(BeTrue())
		msg = c.Message
	}).Should(Succeed())
	return msg
}

// TestPrivateMetadataFromSecret: private metadata from a labelled Secret of a tenant namespace
// is merged with spec.privateMetadata and owned like it; a new value of the Secret is applied at
// once (a key dropped from it is deleted in Clerk); the status holds a hash, never a value, and
// the object's spec never receives the Secret's values. Each bad Secret is InvalidSpec naming it
// and changes nothing in Clerk; fixing the Secret is enough to go on.
func TestPrivateMetadataFromSecret(t *testing.T) {
	h := newHarness(t, withManagerNamespace)
	ctx := context.Background()
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"pm@example.com"},
		PrivateMetadata: map[string]any{"app": "own"}})
	seeded := h.writes()

	// A Secret not labelled for kubeclerk is not read (nor cached, outside the manager's namespace).
	h.putPrivateSecret("pm", `{"apiToken":"tok-1-secret","level":1098765432109876543}`, false)
	h.apply("pm", clerkv1alpha1.ClerkUserSpec{UserID: id, PrivateMetadata: rawJSON(`{"team":"x"}`), PrivateMetadataFrom: fromSecret("pm")})
	h.waitInvalid("Secret " + h.ns + "/pm not found, or not labelled " + clerkv1alpha1.PrivateMetadataSecretLabel)
	h.g.Expect(h.writes()).To(Equal(seeded))

	// Labelling it is enough.
	h.putPrivateSecret("pm", `{"apiToken":"tok-1-secret","level":1098765432109876543}`, true)
	obj := h.waitSynced("pm")
	h.g.Expect(h.clerkUser(id)["private_metadata"]).To(Equal(map[string]any{
		"app": "own", "team": "x", "apiToken": "tok-1-secret", "level": float64(1098765432109876543)}))
	h.g.Expect(obj.Status.OwnedMetadataKeys.Private).To(Equal([]string{"apiToken", "level", "team"}))
	hash1 := obj.Status.PrivateMetadataFromHash
	h.g.Expect(hash1).To(HavePrefix("sha256:"))
	raw, ok := h.fake.User(id)
	h.g.Expect(ok).To(BeTrue())
	h.g.Expect(string(raw)).To(ContainSubstring("1098765432109876543"), "the number was rounded")

	// A new value: applied without a spec change; the dropped key is deleted in Clerk.
	gen := obj.Generation
	h.putPrivateSecret("pm", `{"apiToken":"tok-2-secret"}`, true)
	h.g.Eventually(func() any { return h.clerkUser(id)["private_metadata"] }).Should(Equal(map[string]any{
		"app": "own", "team": "x", "apiToken": "tok-2-secret"}))
	h.g.Eventually(func() string { return h.get("pm").Status.PrivateMetadataFromHash }).ShouldNot(Equal(hash1))
	obj = h.waitSynced("pm")
	h.g.Expect(obj.Generation).To(Equal(gen))
	h.g.Expect(obj.Status.OwnedMetadataKeys.Private).To(Equal([]string{"apiToken", "team"}))
	hash2 := obj.Status.PrivateMetadataFromHash

	// Nothing of the Secret's values in the object (spec or status) or its Events.
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(clerkv1alpha1.GroupVersion.WithKind("ClerkUser"))
	h.g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: h.ns, Name: "pm"}, u)).To(Succeed())
	b, err := json.Marshal(u.Object)
	h.g.Expect(err).NotTo(HaveOccurred())
	h.g.Expect(string(b)).NotTo(ContainSubstring("-secret"))
	h.g.Expect(string(b)).NotTo(ContainSubstring("1098765432109876543"))
	h.g.Eventually(func() []string { return h.events("pm") }).Should(ContainElement(EventMetadataUpdated))
	var events unstructured.UnstructuredList
	events.SetAPIVersion("events.k8s.io/v1")
	events.SetKind("EventList")
	h.g.Expect(k8sClient.List(ctx, &events, client.InNamespace(h.ns))).To(Succeed())
	for _, e := range events.Items {
		b, _ := json.Marshal(e.Object)
		h.g.Expect(string(b)).NotTo(ContainSubstring("-secret"), "an Event shows a value")
	}

	// Bad values: InvalidSpec naming the Secret, nothing written, Clerk keeps what it had.
	before := h.clerkUser(id)["private_metadata"]
	writes := h.writes()
	for _, bad := range []struct{ value, want string }{
		{`{"team":"y-secret"}`, `declares "team", also declared in spec.privateMetadata`},
		{`["tok-3-secret"]`, "is not a JSON object"},
		{`{"k":"` + strings.Repeat("v", MaxMetadataBytes) + `"}`, "over Clerk's metadata limit"},
	} {
		h.putPrivateSecret("pm", bad.value, true)
		msg := h.waitInvalid(bad.want)
		h.g.Expect(msg).To(ContainSubstring(`Secret ` + h.ns + `/pm key "metadata.json"`))
		h.g.Expect(msg).NotTo(ContainSubstring("-secret"))
	}
	// Removing the label: refused too.
	h.putPrivateSecret("pm", `{"apiToken":"tok-2-secret"}`, false)
	h.waitInvalid("not labelled")
	h.g.Expect(h.writes()).To(Equal(writes), "a bad Secret changed Clerk")
	h.g.Expect(h.clerkUser(id)["private_metadata"]).To(Equal(before))
	h.g.Expect(h.get("pm").Status.PrivateMetadataFromHash).To(Equal(hash2), "the hash of the last applied value is kept")

	// Fixed: Ready again without a write (Clerk already holds it).
	h.putPrivateSecret("pm", `{"apiToken":"tok-2-secret"}`, true)
	h.g.Expect(h.waitSynced("pm").Status.PrivateMetadataFromHash).To(Equal(hash2))
	h.g.Expect(h.writes()).To(Equal(writes))

	// A missing key, then a missing Secret.
	h.update("pm", func(s *clerkv1alpha1.ClerkUserSpec) { s.PrivateMetadataFrom.SecretKeyRef.Key = "other.json" })
	h.waitInvalid(`has no key "other.json"`)
	h.update("pm", func(s *clerkv1alpha1.ClerkUserSpec) { s.PrivateMetadataFrom = fromSecret("absent") })
	h.waitInvalid("Secret " + h.ns + "/absent not found")
	h.g.Expect(h.writes()).To(Equal(writes))

	// Dropping privateMetadataFrom deletes the keys it owned, and the hash.
	h.update("pm", func(s *clerkv1alpha1.ClerkUserSpec) { s.PrivateMetadataFrom = nil })
	obj = h.waitSynced("pm")
	h.g.Expect(h.clerkUser(id)["private_metadata"]).To(Equal(map[string]any{"app": "own", "team": "x"}))
	h.g.Expect(obj.Status.PrivateMetadataFromHash).To(BeEmpty())
}

// TestPrivateMetadataSecretChangePlansAgainstAFreshRead: an out-of-band unban, then a new value
// of the privateMetadataFrom Secret (no spec change): the reconcile it starts plans against a
// read made after the Secret changed, so it bans again, and Ready with the new hash is never
// reported while Clerk shows the user unbanned.
func TestPrivateMetadataSecretChangePlansAgainstAFreshRead(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"fresh-pm@example.com"}})
	h.putPrivateSecret("fresh", `{"apiToken":"tok-1"}`, true)
	h.apply("fresh", clerkv1alpha1.ClerkUserSpec{UserID: id, Banned: new(true), PrivateMetadataFrom: fromSecret("fresh")})
	hash1 := h.waitSynced("fresh").Status.PrivateMetadataFromHash
	_, err := h.api.UnbanUser(ctx, id)
	h.g.Expect(err).NotTo(HaveOccurred())

	h.putPrivateSecret("fresh", `{"apiToken":"tok-2"}`, true)
	var obj *clerkv1alpha1.ClerkUser
	h.g.Eventually(func(g Gomega) {
		obj = h.get("fresh")
		g.Expect(obj.Status.PrivateMetadataFromHash).NotTo(Equal(hash1))
		g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, ConditionReady)).To(BeTrue())
	}).Should(Succeed())
	h.g.Expect(h.clerkUser(id)["banned"]).To(BeTrue(), "Ready for the new Secret value while Clerk shows the user unbanned")
	h.g.Expect(obj.Status.Observed.Banned).To(BeTrue())
	h.g.Expect(h.clerkUser(id)["private_metadata"]).To(Equal(map[string]any{"apiToken": "tok-2"}))
}

// TestPrivateMetadataSecretProtectedKey: a key of the Secret that the instance protects is
// NotAllowed like a declared one, the message pointing at the Secret; no Clerk call at all.
func TestPrivateMetadataSecretProtectedKey(t *testing.T) {
	h := newHarness(t)
	b := h.otherClerk()
	inst := "pm-" + h.ns
	h.createInstance(inst, b, map[string]string{}, &clerkv1alpha1.ClerkInstancePolicy{
		ProtectedMetadataKeys: &clerkv1alpha1.ProtectedMetadataKeys{Private: []string{"role"}}})
	u, err := b.api.CreateUser(context.Background(), clerk.CreateUserParams{ExternalID: new("emp-pm"), EmailAddresses: []string{"pm@acme.com"}, SkipPasswordRequirement: true})
	h.g.Expect(err).NotTo(HaveOccurred())
	calls := clerkCalls(b.fake)
	h.putPrivateSecret("sneaky", `{"role":"admin"}`, true)
	h.apply("sneaky", clerkv1alpha1.ClerkUserSpec{InstanceRef: &clerkv1alpha1.InstanceReference{Name: inst}, ExternalID: "emp-pm",
		PrivateMetadataFrom: fromSecret("sneaky")})
	obj := h.waitCondition("sneaky", metav1.ConditionFalse, ReasonNotAllowed)
	msg := meta.FindStatusCondition(obj.Status.Conditions, ConditionReady).Message
	h.g.Expect(msg).To(ContainSubstring("policy.protectedMetadataKeys.private"))
	h.g.Expect(msg).To(ContainSubstring("Secret sneaky (spec.privateMetadataFrom)"))
	h.g.Expect(clerkCalls(b.fake)).To(Equal(calls), "a refused object called Clerk")

	// Without the protected key it is served.
	h.putPrivateSecret("sneaky", `{"note":"ok"}`, true)
	h.waitSynced("sneaky")
	got, err := b.api.GetUser(context.Background(), u.ID)
	h.g.Expect(err).NotTo(HaveOccurred())
	h.g.Expect(got.PrivateMetadata).To(HaveKeyWithValue("note", "ok"))
}

// TestSecretCache: the manager's namespace is cached whole; elsewhere only labelled Secrets, and
// nothing at all with privateMetadataFrom off.
func TestSecretCache(t *testing.T) {
	on := SecretCache("kubeclerk-system", true)
	if len(on.Namespaces) != 2 {
		t.Fatalf("namespaces = %v", on.Namespaces)
	}
	if c := on.Namespaces["kubeclerk-system"]; c.LabelSelector != nil {
		t.Errorf("the manager's namespace is filtered by %v", c.LabelSelector)
	}
	all, ok := on.Namespaces[cache.AllNamespaces]
	if !ok || all.LabelSelector == nil || all.LabelSelector.String() != clerkv1alpha1.PrivateMetadataSecretLabel+"=true" {
		t.Errorf("other namespaces: %+v", all)
	}
	off := SecretCache("kubeclerk-system", false)
	if _, ok := off.Namespaces[cache.AllNamespaces]; ok || len(off.Namespaces) != 1 {
		t.Errorf("with privateMetadataFrom off, Secrets are cached in %v", off.Namespaces)
	}
}

// TestPrivateMetadataFromOff: with --private-metadata-from=false an object that uses it is
// InvalidSpec saying so, without reading any Secret.
func TestPrivateMetadataFromOff(t *testing.T) {
	r := &ClerkUserReconciler{NoPrivateMetadataFrom: true} // no client: reading a Secret would panic
	obj := &clerkv1alpha1.ClerkUser{Spec: clerkv1alpha1.ClerkUserSpec{Username: "al", PrivateMetadataFrom: fromSecret("s")}}
	d, err := r.desired(context.Background(), obj)
	var invalid *InvalidSpecError
	if !errors.As(err, &invalid) || !strings.Contains(invalid.Error(), "--private-metadata-from=false") {
		t.Fatalf("err = %v", err)
	}
	if d.spec != &obj.Spec {
		t.Error("the object's own spec is not kept for the policy check")
	}
}

// TestTrimForCache: managedFields and last-applied-configuration go; other annotations stay.
func TestTrimForCache(t *testing.T) {
	obj := &clerkv1alpha1.ClerkUser{ObjectMeta: metav1.ObjectMeta{
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		Annotations:   map[string]string{lastAppliedAnnotation: "{...}", "clerk.kubeclerk.dev/requested-at": "now"},
	}}
	out, err := TrimForCache(obj)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*clerkv1alpha1.ClerkUser)
	if got.ManagedFields != nil || len(got.Annotations) != 1 || got.Annotations["clerk.kubeclerk.dev/requested-at"] != "now" {
		t.Errorf("trimmed: managedFields %v, annotations %v", got.ManagedFields, got.Annotations)
	}
}
