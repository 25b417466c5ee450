package controller

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

// privateMetadataFromIndex is the field index of ClerkUsers by the Secret their
// spec.privateMetadataFrom names, as namespace/name.
const privateMetadataFromIndex = "spec.privateMetadataFrom.secretKeyRef.name"

// privateMetadataFromField names the field in messages.
const privateMetadataFromField = "spec.privateMetadataFrom.secretKeyRef"

// SecretCache is how the manager caches Secrets: every Secret of its own namespace (the
// ClerkInstances' keys), and elsewhere only those labelled clerk.kubeclerk.dev/private-metadata:
// "true", the ones privateMetadataFrom may read. No other Secret is listed, watched or held in
// memory.
// With privateMetadataFrom false, only the manager's namespace is cached (the namespaced Role
// then suffices).
func SecretCache(managerNamespace string, privateMetadataFrom bool) cache.ByObject {
	ns := map[string]cache.Config{managerNamespace: {}}
	if privateMetadataFrom {
		ns[cache.AllNamespaces] = cache.Config{LabelSelector: labels.SelectorFromSet(labels.Set{
			clerkv1alpha1.PrivateMetadataSecretLabel: "true"})}
	}
	return cache.ByObject{Namespaces: ns}
}

// desiredState is the spec a reconcile brings Clerk to: the object's spec, with the private
// metadata of privateMetadataFrom merged in; and the hash of that Secret value, recorded in
// status once applied. It lives only in memory: the object's spec is never written with it.
type desiredState struct {
	spec *clerkv1alpha1.ClerkUserSpec
	// privateHash is status.privateMetadataFromHash once the metadata has been applied.
	privateHash string
	// secret is the Secret read and its resourceVersion, for dating the plan's read.
	secret        types.NamespacedName
	secretVersion string
}

// desired resolves spec.privateMetadataFrom. An unusable Secret is an *InvalidSpecError naming
// it; then desired still returns the object's own spec, so that a policy check of what the
// object declares (NotAllowed) comes first.
func (r *ClerkUserReconciler) desired(ctx context.Context, obj *clerkv1alpha1.ClerkUser) (desiredState, error) {
	d := desiredState{spec: &obj.Spec}
	from := obj.Spec.PrivateMetadataFrom
	if from == nil {
		return d, nil
	}
	ref := from.SecretKeyRef
	d.secret = types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}
	invalid := func(format string, args ...any) error {
		return &InvalidSpecError{Field: privateMetadataFromField, Reason: fmt.Sprintf(format, args...)}
	}
	if r.NoPrivateMetadataFrom {
		return d, invalid("this kubeclerk runs with --private-metadata-from=false and reads no Secret outside its own namespace; declare the keys in spec.privateMetadata, or ask the platform team to enable it")
	}
	var s corev1.Secret
	if err := r.Get(ctx, d.secret, &s); err != nil {
		if !apierrors.IsNotFound(err) {
			return d, fmt.Errorf("read Secret %s: %w", d.secret, err)
		}
		// Unlabelled Secrets outside the manager's namespace are not even cached.
		return d, invalid("Secret %s/%s not found, or not labelled %s: \"true\"; create it with that label in the ClerkUser's namespace", obj.Namespace, ref.Name, clerkv1alpha1.PrivateMetadataSecretLabel)
	}
	if s.Labels[clerkv1alpha1.PrivateMetadataSecretLabel] != "true" {
		return d, invalid("Secret %s/%s is not labelled %s: \"true\"; kubeclerk reads no other Secret for private metadata", obj.Namespace, ref.Name, clerkv1alpha1.PrivateMetadataSecretLabel)
	}
	value, ok := s.Data[ref.Key]
	if !ok {
		return d, invalid("Secret %s/%s has no key %q; add it, or fix the key", obj.Namespace, ref.Name, ref.Key)
	}
	merged, hash, err := mergePrivateMetadata(obj.Spec.PrivateMetadata, value, s.UID)
	if err != nil {
		return d, invalid("Secret %s/%s key %q: %v", obj.Namespace, ref.Name, ref.Key, err)
	}
	spec := obj.Spec.DeepCopy()
	spec.PrivateMetadata = merged
	d.spec, d.privateHash, d.secretVersion = spec, hash, s.ResourceVersion
	return d, nil
}

// mergePrivateMetadata merges the top-level keys of value, a Secret's JSON object, into
// declared (spec.privateMetadata, maybe nil). It refuses a value over Clerk's metadata limit, one
// that is not a JSON object, and a key that both declare; messages name keys, never values.
// Values keep their exact text (numbers are not rounded). The hash identifies the value applied;
// it is salted with the Secret's UID, which only those who can read the Secret know, so that it
// confirms no guess of the value to anyone else.
func mergePrivateMetadata(declared *apiextensionsv1.JSON, value []byte, salt types.UID) (*apiextensionsv1.JSON, string, error) {
	if len(value) > MaxMetadataBytes {
		return nil, "", fmt.Errorf("the value takes %d bytes, over Clerk's metadata limit of %d; keep less in it", len(value), MaxMetadataBytes)
	}
	var from map[string]json.RawMessage
	if err := json.Unmarshal(value, &from); err != nil || from == nil {
		return nil, "", fmt.Errorf("the value is not a JSON object; write an object such as {\"key\": \"value\"}")
	}
	out := map[string]json.RawMessage{}
	if declared != nil && len(declared.Raw) > 0 && string(declared.Raw) != "null" {
		if err := json.Unmarshal(declared.Raw, &out); err != nil || out == nil {
			return nil, "", fmt.Errorf("spec.privateMetadata is not a JSON object")
		}
	}
	var both []string
	for k, v := range from {
		if _, ok := out[k]; ok {
			both = append(both, k)
			continue
		}
		out[k] = v
	}
	if len(both) > 0 {
		slices.Sort(both)
		return nil, "", fmt.Errorf("declares %s, also declared in spec.privateMetadata; keep each key in one place", quoteAll(both))
	}
	raw, err := json.Marshal(out) // sorted keys; values compacted, their text kept
	if err != nil {
		return nil, "", fmt.Errorf("encode the merged private metadata: %w", err)
	}
	canonical, err := json.Marshal(from)
	if err != nil {
		return nil, "", fmt.Errorf("encode the Secret's private metadata: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(salt))
	h.Write([]byte{0})
	h.Write(canonical)
	return &apiextensionsv1.JSON{Raw: raw}, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func quoteAll(keys []string) string {
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", k)
	}
	return b.String()
}

// privateMetadataSecret is the index value of an object's privateMetadataFrom Secret.
func privateMetadataSecret(o client.Object) []string {
	if from := o.(*clerkv1alpha1.ClerkUser).Spec.PrivateMetadataFrom; from != nil {
		return []string{o.GetNamespace() + "/" + from.SecretKeyRef.Name}
	}
	return nil
}

// usersOfSecret returns the ClerkUsers whose privateMetadataFrom names the Secret.
func (r *ClerkUserReconciler) usersOfSecret(ctx context.Context, s client.Object) []reconcile.Request {
	return r.requestsFor(ctx, "the ClerkUsers of private-metadata Secret "+client.ObjectKeyFromObject(s).String(), nil,
		client.InNamespace(s.GetNamespace()), client.MatchingFields{privateMetadataFromIndex: s.GetNamespace() + "/" + s.GetName()})
}

// secretPredicate passes the events of Secrets labelled for private metadata (an Update also
// when the label was just removed: the objects that use it must now refuse it), and records
// when each version of such a Secret was first seen, as watchPredicate does for ClerkUsers.
func (r *ClerkUserReconciler) secretPredicate() predicate.Funcs {
	labelled := func(o client.Object) bool {
		return o.GetLabels()[clerkv1alpha1.PrivateMetadataSecretLabel] == "true"
	}
	key := func(o client.Object) types.NamespacedName { return client.ObjectKeyFromObject(o) }
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool {
			if !labelled(e.Object) {
				return false
			}
			r.secrets.saw(key(e.Object), e.Object.GetResourceVersion(), r.createdSince(e.Object.GetCreationTimestamp().Time, 1))
			return true
		},
		UpdateFunc: func(e event.UpdateEvent) bool {
			if !labelled(e.ObjectNew) && !labelled(e.ObjectOld) {
				return false
			}
			r.secrets.saw(key(e.ObjectNew), e.ObjectNew.GetResourceVersion(), r.now())
			return true
		},
		DeleteFunc: func(e event.DeleteEvent) bool {
			r.secrets.forget(key(e.Object))
			return labelled(e.Object)
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// lastAppliedAnnotation is kubectl's copy of the whole applied object: large, and never read.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// TrimForCache drops what the controllers never read from every object the manager caches:
// managedFields and kubectl's last-applied-configuration annotation (together often larger
// than the object itself). It is the cache's DefaultTransform; objects the manager patches are
// patched with merge patches computed between two cached copies, which never include these
// fields.
func TrimForCache(obj any) (any, error) {
	if o, ok := obj.(client.Object); ok {
		o.SetManagedFields(nil)
		if a := o.GetAnnotations(); a != nil {
			if _, ok := a[lastAppliedAnnotation]; ok {
				delete(a, lastAppliedAnnotation)
				o.SetAnnotations(a)
			}
		}
	}
	return obj, nil
}
