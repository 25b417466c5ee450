package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
	"github.com/kubeclerk/kubeclerk/internal/instance"
)

// managerNamespace is the demo manager's --cluster-resource-namespace: the namespace where
// ClerkInstances' Secrets live, as in config/samples/tenant.
const managerNamespace = "kubeclerk-system"

// tenantPlan is the tenant samples (config/samples/tenant) as the demo applies them, and what it
// expects of each of their ClerkUsers.
type tenantPlan struct {
	// Objects are the samples in kustomize's order, pointed at the fake Clerk API.
	Objects []*unstructured.Unstructured
	// Instances are the ClerkInstances' names.
	Instances []string
	// Namespaces are those of the ClerkUsers, sorted.
	Namespaces []string
	// Users are the ClerkUsers, in the samples' order.
	Users []tenantUser
	// Changes say, one line each, what the demo changed in the samples; they never hold a key.
	Changes []string
}

// tenantUser is one ClerkUser of the tenant samples and what its ClerkInstance should make of it.
type tenantUser struct {
	Namespace, Name string
	// Instance is spec.instanceRef.name ("" without one).
	Instance string
	// Refusal is what the instance's namespaceSelector and policy refuse (nil: allowed); the
	// manager should report it as NotAllowed, before any Clerk call.
	Refusal error
	// Rules are the instance's fields that refuse it, e.g. policy.protectedMetadataKeys.public.
	Rules []string
	// Identifiers are the values kubeclerk would find its user by; no Clerk call may name them
	// while it is refused.
	Identifiers []string
	// Fix is the JSON patch that makes a refused object allowed; nil when allowed, or when no
	// patch of the object alone does (e.g. a protected key that comes from a Secret).
	Fix []patchOp
}

// key is how the demo names the object: namespace/name.
func (u tenantUser) key() string { return u.Namespace + "/" + u.Name }

// patchOp is one JSON patch (RFC 6902) operation.
type patchOp struct {
	Op   string `json:"op"`
	Path string `json:"path"`
}

// decodeObjects splits a YAML stream (kubectl kustomize's output) into objects.
func decodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// encodeObjects renders objects as a YAML stream for kubectl apply -f -.
func encodeObjects(objs []*unstructured.Unstructured) ([]byte, error) {
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}

func isKind(o *unstructured.Unstructured, group, kind string) bool {
	return o.GroupVersionKind().Group == group && o.GetKind() == kind
}

func objKey(namespace, name string) string { return namespace + "/" + name }

// secretValue returns the value of key in a Secret, from stringData or data.
func secretValue(s *unstructured.Unstructured, key string) ([]byte, bool, error) {
	if v, ok, _ := unstructured.NestedString(s.Object, "stringData", key); ok {
		return []byte(v), true, nil
	}
	v, ok, _ := unstructured.NestedString(s.Object, "data", key)
	if !ok {
		return nil, false, nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	return b, err == nil, err
}

// planTenant points the tenant samples at the fake Clerk API: each ClerkInstance's spec.apiURL
// becomes apiURL and its key, in the Secret of managerNS that spec.secretKeyRef names, becomes
// key; with webhookSecret set, the entry its spec.webhookSecretRef names (in that namespace)
// becomes webhookSecret. It works out, as the manager's policy checks would, which ClerkUsers their
// instance refuses and the patch that fixes each. objs are changed in place.
func planTenant(objs []*unstructured.Unstructured, apiURL, key, webhookSecret, managerNS string) (*tenantPlan, error) {
	p := &tenantPlan{Objects: objs}
	nsLabels := map[string]map[string]string{}
	secrets := map[string]*unstructured.Unstructured{}
	instances := map[string]*clerkv1alpha1.ClerkInstance{}
	var users []*clerkv1alpha1.ClerkUser
	for _, o := range objs {
		switch {
		case isKind(o, "", "Namespace"):
			nsLabels[o.GetName()] = o.GetLabels()
		case isKind(o, "", "Secret"):
			secrets[objKey(o.GetNamespace(), o.GetName())] = o
		case isKind(o, clerkv1alpha1.GroupVersion.Group, "ClerkInstance"):
			var ci clerkv1alpha1.ClerkInstance
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &ci); err != nil {
				return nil, fmt.Errorf("ClerkInstance %s: %w", o.GetName(), err)
			}
			if err := unstructured.SetNestedField(o.Object, apiURL, "spec", "apiURL"); err != nil {
				return nil, err
			}
			instances[ci.Name] = &ci
			p.Instances = append(p.Instances, ci.Name)
			p.Changes = append(p.Changes, fmt.Sprintf("ClerkInstance %s: spec.apiURL %s (the fake Clerk API)", ci.Name, apiURL))
		case isKind(o, clerkv1alpha1.GroupVersion.Group, "ClerkUser"):
			var cu clerkv1alpha1.ClerkUser
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &cu); err != nil {
				return nil, fmt.Errorf("ClerkUser %s: %w", o.GetName(), err)
			}
			if cu.Namespace == "" {
				return nil, fmt.Errorf("ClerkUser %s has no metadata.namespace; the tenant samples set their namespaces", cu.Name)
			}
			users = append(users, &cu)
		}
	}
	if len(users) == 0 {
		return nil, errors.New("no ClerkUser in the tenant samples")
	}
	// The instances' keys: the fake Clerk's, in the Secrets the manager reads.
	for _, name := range p.Instances {
		if err := p.setInstanceSecrets(instances[name], secrets, key, webhookSecret, managerNS); err != nil {
			return nil, err
		}
	}
	for _, cu := range users {
		u := tenantUser{Namespace: cu.Namespace, Name: cu.Name}
		if !slices.Contains(p.Namespaces, cu.Namespace) {
			p.Namespaces = append(p.Namespaces, cu.Namespace)
		}
		for _, id := range []string{cu.Spec.UserID, cu.Spec.ExternalID, cu.Spec.EmailAddress, cu.Spec.Username} {
			if id != "" {
				u.Identifiers = append(u.Identifiers, id)
			}
		}
		if cu.Spec.InstanceRef == nil {
			p.Users = append(p.Users, u)
			continue
		}
		u.Instance = cu.Spec.InstanceRef.Name
		ci := instances[u.Instance]
		if ci == nil {
			return nil, fmt.Errorf("ClerkUser %s names ClerkInstance %s, which the tenant samples do not hold", u.key(), u.Instance)
		}
		var private []byte
		if from := cu.Spec.PrivateMetadataFrom; from != nil {
			s := secrets[objKey(cu.Namespace, from.SecretKeyRef.Name)]
			var ok bool
			if s != nil {
				private, ok, _ = secretValue(s, from.SecretKeyRef.Key)
			}
			if !ok {
				return nil, fmt.Errorf("ClerkUser %s reads Secret %s key %s (spec.privateMetadataFrom), which the tenant samples do not hold",
					u.key(), objKey(cu.Namespace, from.SecretKeyRef.Name), from.SecretKeyRef.Key)
			}
		}
		var err error
		if u.Refusal, err = expectedRefusal(ci, nsLabels[cu.Namespace], cu, private); err != nil {
			return nil, fmt.Errorf("ClerkUser %s: %w", u.key(), err)
		}
		if u.Refusal != nil {
			u.Rules = refusalRules(u.Refusal)
			if fixed, ops := fixProtectedKeys(ci.Spec.Policy, cu); fixed != nil {
				if again, err := expectedRefusal(ci, nsLabels[cu.Namespace], fixed, private); err == nil && again == nil {
					u.Fix = ops
				}
			}
		}
		p.Users = append(p.Users, u)
	}
	slices.Sort(p.Namespaces)
	return p, nil
}

// setInstanceSecrets puts key into the entry of ci's spec.secretKeyRef and, unless empty,
// webhookSecret into that of its spec.webhookSecretRef; secrets are the samples' Secrets by
// namespace/name.
func (p *tenantPlan) setInstanceSecrets(ci *clerkv1alpha1.ClerkInstance, secrets map[string]*unstructured.Unstructured,
	key, webhookSecret, managerNS string) error {
	name := ci.Name
	ref := ci.Spec.SecretKeyRef
	s := secrets[objKey(managerNS, ref.Name)]
	if s == nil {
		return fmt.Errorf("ClerkInstance %s names Secret %s (spec.secretKeyRef), which the tenant samples do not hold in %s, "+
			"the manager's namespace (--cluster-resource-namespace)", name, ref.Name, managerNS)
	}
	if _, ok, err := secretValue(s, ref.Key); !ok || err != nil {
		return fmt.Errorf("the Secret %s/%s has no entry %s, which ClerkInstance %s names (spec.secretKeyRef)",
			managerNS, ref.Name, ref.Key, name)
	}
	unstructured.RemoveNestedField(s.Object, "data", ref.Key)
	if err := unstructured.SetNestedField(s.Object, key, "stringData", ref.Key); err != nil {
		return err
	}
	p.Changes = append(p.Changes, fmt.Sprintf("Secret %s/%s: %s is the fake Clerk's key", managerNS, ref.Name, ref.Key))
	wref := ci.Spec.WebhookSecretRef
	if wref == nil || webhookSecret == "" {
		return nil
	}
	ws := secrets[objKey(managerNS, wref.Name)]
	if ws == nil {
		return fmt.Errorf("ClerkInstance %s names Secret %s (spec.webhookSecretRef), which the tenant samples do not hold in %s, "+
			"the manager's namespace (--cluster-resource-namespace)", name, wref.Name, managerNS)
	}
	unstructured.RemoveNestedField(ws.Object, "data", wref.Key)
	if err := unstructured.SetNestedField(ws.Object, webhookSecret, "stringData", wref.Key); err != nil {
		return err
	}
	p.Changes = append(p.Changes, fmt.Sprintf("Secret %s/%s: %s is a generated webhook signing secret (whsec_…) for "+
		"/webhooks/clerk/%s", managerNS, wref.Name, wref.Key, name))
	return nil
}

// expectedRefusal is what ClerkInstance ci refuses of cu, as the manager decides it before any
// Clerk call: a namespace its namespaceSelector does not select (nsLabels are the namespace's
// labels), or a spec against its policy, with private, the value of spec.privateMetadataFrom's
// Secret, merged into the private metadata. nil: allowed. err: the samples themselves are broken.
func expectedRefusal(ci *clerkv1alpha1.ClerkInstance, nsLabels map[string]string, cu *clerkv1alpha1.ClerkUser,
	private []byte) (refusal, err error) {
	selected, err := instance.CheckNamespace(ci.Spec.NamespaceSelector, nsLabels)
	if err != nil {
		return nil, fmt.Errorf("ClerkInstance %s: %w", ci.Name, err)
	}
	if !selected {
		return instance.NamespaceNotSelected(ci.Name, cu.Namespace), nil
	}
	spec := &cu.Spec
	if private != nil {
		if spec, err = withSecretMetadata(spec, private); err != nil {
			return nil, err
		}
	}
	view, err := instance.ViewFromSpec(ci.Name, spec)
	if err != nil {
		return nil, err
	}
	return instance.CheckSpec(ci.Spec.Policy, view), nil
}

// refusalRules lists the ClerkInstance fields a refusal names, e.g. policy.protectedMetadataKeys.public.
func refusalRules(err error) []string {
	var out []string
	if vs, ok := errors.AsType[instance.Violations](err); ok {
		for _, v := range vs {
			out = append(out, v.Rule)
		}
		return out
	}
	if na, ok := errors.AsType[*instance.NotAllowedError](err); ok {
		out = append(out, na.Rule)
	}
	return out
}

// fixProtectedKeys returns cu without the protected metadata keys it declares, and the JSON patch
// that removes them; nil when it declares none, or has metadataPolicy Replace (then the whole
// object would have to go, which is the tenant's call).
func fixProtectedKeys(policy *clerkv1alpha1.ClerkInstancePolicy, cu *clerkv1alpha1.ClerkUser) (*clerkv1alpha1.ClerkUser, []patchOp) {
	if policy == nil || policy.ProtectedMetadataKeys == nil || cu.Spec.MetadataPolicy == clerkv1alpha1.MetadataPolicyReplace {
		return nil, nil
	}
	fixed := cu.DeepCopy()
	var ops []patchOp
	for _, m := range []struct {
		field     string
		j         **apiextensionsv1.JSON
		protected []string
	}{
		{"publicMetadata", &fixed.Spec.PublicMetadata, policy.ProtectedMetadataKeys.Public},
		{"privateMetadata", &fixed.Spec.PrivateMetadata, policy.ProtectedMetadataKeys.Private},
		{"unsafeMetadata", &fixed.Spec.UnsafeMetadata, policy.ProtectedMetadataKeys.Unsafe},
	} {
		obj := jsonObject(*m.j)
		removed := false
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if slices.Contains(m.protected, k) {
				delete(obj, k)
				ops = append(ops, patchOp{Op: "remove", Path: "/spec/" + m.field + "/" + jsonPointerEscape(k)})
				removed = true
			}
		}
		if removed {
			raw, err := json.Marshal(obj)
			if err != nil {
				return nil, nil
			}
			*m.j = &apiextensionsv1.JSON{Raw: raw}
		}
	}
	if len(ops) == 0 {
		return nil, nil
	}
	return fixed, ops
}

// jsonPointerEscape escapes one JSON pointer (RFC 6901) reference token.
func jsonPointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// fixPatch is u.Fix as the JSON kubectl patch --type=json takes.
func (u tenantUser) fixPatch() string {
	b, _ := json.Marshal(u.Fix)
	return string(b)
}

// fixArgs are kubectl's arguments that apply u.Fix.
func (u tenantUser) fixArgs() []string {
	return []string{"-n", u.Namespace, "patch", "clerkuser", u.Name, "--type=json", "-p", u.fixPatch()}
}

// fixCommand is the shell command that applies u.Fix.
func (u tenantUser) fixCommand() string {
	return fmt.Sprintf("kubectl -n %s patch clerkuser %s --type=json -p %s", u.Namespace, u.Name, shellQuote(u.fixPatch()))
}

// withSecretMetadata returns spec with the top-level keys of value, the JSON object of a
// privateMetadataFrom Secret, merged into spec.privateMetadata, as kubeclerk applies it.
func withSecretMetadata(spec *clerkv1alpha1.ClerkUserSpec, value []byte) (*clerkv1alpha1.ClerkUserSpec, error) {
	var from map[string]json.RawMessage
	if err := json.Unmarshal(value, &from); err != nil || from == nil {
		return nil, errors.New("the private metadata Secret's value is not a JSON object")
	}
	merged := map[string]json.RawMessage{}
	if spec.PrivateMetadata != nil && len(spec.PrivateMetadata.Raw) > 0 && string(spec.PrivateMetadata.Raw) != "null" {
		if err := json.Unmarshal(spec.PrivateMetadata.Raw, &merged); err != nil || merged == nil {
			return nil, errors.New("spec.privateMetadata is not a JSON object")
		}
	}
	maps.Copy(merged, from)
	raw, err := json.Marshal(merged)
	if err != nil {
		return nil, err
	}
	out := spec.DeepCopy()
	out.PrivateMetadata = &apiextensionsv1.JSON{Raw: raw}
	return out, nil
}

// violationNumber separates the violations of a message with several: "…; (2) ClerkInstance …".
var violationNumber = regexp.MustCompile(`; \(\d+\) `)

// whatToChange picks from a NotAllowed message what to change, one line per violation: the part
// after the first "; " of each, where the manager says what to do.
func whatToChange(msg string) []string {
	parts := []string{msg}
	if _, rest, ok := strings.Cut(msg, " policy violations: (1) "); ok {
		parts = violationNumber.Split(rest, -1)
	}
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if _, todo, ok := strings.Cut(p, "; "); ok && todo != "" {
			p = todo
		}
		out = append(out, p)
	}
	return out
}

// applyTenant applies the tenant samples, pointed at the fake Clerk API (kubectl kustomize, then
// kubectl apply --server-side, so that no last-applied annotation holds the key).
func (d *demo) applyTenant(ctx context.Context) error {
	kubectl := func(stdin []byte, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, d.kubectl, d.kubectlArgs(args...)...)
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		return cmd.CombinedOutput()
	}
	built, err := kubectl(nil, "kustomize", d.o.tenant)
	if err != nil {
		return fmt.Errorf("kubectl kustomize %s: %w: %s", d.o.tenant, err, strings.TrimSpace(string(built)))
	}
	objs, err := decodeObjects(built)
	if err != nil {
		return fmt.Errorf("kubectl kustomize %s: %w", d.o.tenant, err)
	}
	p, err := planTenant(objs, d.fake.apiURL(), clerkfake.DefaultSecretKey, d.instanceWebhookSecret, managerNamespace)
	if err != nil {
		return fmt.Errorf("%s: %w", d.o.tenant, err)
	}
	manifest, err := encodeObjects(p.Objects)
	if err != nil {
		return err
	}
	// A refused object's identifiers must appear in no Clerk call: count those that name them.
	for _, u := range p.Users {
		if u.Refusal != nil {
			d.fake.watch(u.Identifiers...)
		}
	}
	d.printf("  tenant samples   kubectl kustomize %s | kubectl apply --server-side -f -, changed for the demo:\n", d.o.tenant)
	for _, c := range p.Changes {
		d.printf("                     %s\n", c)
	}
	if d.webhookAddr != "" && len(p.Instances) > 0 {
		d.printf("                   (the one fake Clerk serves %s too, but sends its webhooks to one URL, %s:\n"+
			"                   changes to the users bound to %s are corrected by polling, within the sync period)\n",
			strings.Join(p.Instances, ", "), webhookPath, strings.Join(p.Instances, ", "))
	}
	outB, err := kubectl(manifest, "apply", "--server-side", "-f", "-")
	for l := range strings.SplitSeq(strings.TrimSpace(string(outB)), "\n") {
		d.printf("                   %s\n", l)
	}
	if err != nil {
		return fmt.Errorf("kubectl apply the tenant samples of %s: %w", d.o.tenant, err)
	}
	d.tenant = p
	d.instances = append(d.instances, p.Instances...)
	for _, u := range p.Users {
		if u.Refusal != nil {
			d.refused = append(d.refused, u.key())
			d.printf("                   %s is refused on purpose (%s)\n", u.key(), strings.Join(u.Rules, ", "))
		} else {
			d.samples = append(d.samples, u.key())
		}
	}
	d.printf("\n")
	return nil
}

// tenantUserView returns the view of the tenant user u in s.
func tenantUserView(s *snapshot, u tenantUser) (userView, bool) {
	for _, v := range s.views {
		if v.Name == u.key() {
			return v, true
		}
	}
	return userView{}, false
}

// tenantText tells what became of the tenant samples: the instances, the allowed users and,
// clearly, the refused ones, with what to change.
func (d *demo) tenantText(s *snapshot) string {
	if d.tenant == nil {
		return ""
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("\nTenant samples (%s): ClerkUsers bound to a ClerkInstance, which holds the key and the rules.\n", d.o.tenant)
	for _, iv := range s.instances {
		if slices.Contains(d.tenant.Instances, iv.Name) {
			p("  ClerkInstance %s: Ready %s (%s), %d ClerkUsers bound; its key is in Secret %s/%s.\n", iv.Name, dash(iv.Ready),
				dash(iv.Reason), iv.BoundUsers, managerNamespace, d.instanceSecret(iv.Name))
		}
	}
	for _, u := range d.tenant.Users {
		v, ok := tenantUserView(s, u)
		if !ok || u.Refusal != nil {
			continue
		}
		line := fmt.Sprintf("  %s: allowed; Ready %s (%s)", u.key(), dash(v.Ready), dash(v.Reason))
		if v.Clerk != nil {
			line += ", Clerk user " + v.Clerk.ID + ": " + metadataText(v.Clerk)
		}
		p("%s\n", line)
	}
	for _, u := range d.tenant.Users {
		if u.Refusal == nil {
			continue
		}
		v, ok := tenantUserView(s, u)
		if !ok {
			continue
		}
		if !v.refused() {
			p("  %s: was to be refused on purpose, but is Ready %s (%s).\n", u.key(), dash(v.Ready), dash(v.Reason))
			continue
		}
		p("\nREFUSED ON PURPOSE: %s breaks the rules of ClerkInstance %s, so kubeclerk made no Clerk call for it.\n",
			u.key(), u.Instance)
		p("  Ready:          %s, reason %s (Stalled %s)\n", v.Ready, v.Reason, dash(v.Stalled))
		p("  Message:        %s\n", v.Message)
		for i, w := range whatToChange(v.Message) {
			label := "What to change:"
			if i > 0 {
				label = "               "
			}
			p("  %s %s\n", label, w)
		}
		if u.Fix != nil {
			p("  Fix it:         %s\n", u.fixCommand())
			if !d.o.check {
				p("                  (from another terminal, after the export line below; the change is reported here)\n")
			}
		}
	}
	return b.String()
}

// instanceSecret is the name of the Secret ClerkInstance name takes its key from, per the samples.
func (d *demo) instanceSecret(name string) string {
	for _, o := range d.tenant.Objects {
		if isKind(o, clerkv1alpha1.GroupVersion.Group, "ClerkInstance") && o.GetName() == name {
			n, _, _ := unstructured.NestedString(o.Object, "spec", "secretKeyRef", "name")
			return n
		}
	}
	return ""
}

// checkTenant is demo-check's part for the tenant samples: the instances are Connected, the
// allowed users hold what they declare (with their Secret's private metadata), the refused ones
// are NotAllowed for the right rule without a Clerk call, and Ready once fixed.
func (d *demo) checkTenant(ctx context.Context, s *snapshot, deadline time.Time) error {
	for _, name := range d.tenant.Instances {
		iv, ok := findInstance(s.instances, name)
		if !ok || !iv.connected() {
			return fmt.Errorf("ClerkInstance %s is not Ready (Connected): Ready=%s reason=%s: %s", name, dash(iv.Ready),
				dash(iv.Reason), iv.Message)
		}
	}
	for _, u := range d.tenant.Users {
		v, ok := tenantUserView(s, u)
		if !ok {
			return fmt.Errorf("ClerkUser %s is gone", u.key())
		}
		obj := s.objs[v.Name]
		if u.Refusal == nil {
			if !v.converged() {
				return fmt.Errorf("%s is not Ready with Clerk holding what it declares: %s", u.key(), strings.Join(pendingOf(
					[]userView{v}, nil, expectations{samples: []string{v.Name}}), "; "))
			}
			if from := obj.Spec.PrivateMetadataFrom; from != nil {
				value, err := d.secretValue(ctx, obj.Namespace, from.SecretKeyRef)
				if err != nil {
					return err
				}
				only, err := withSecretMetadata(&clerkv1alpha1.ClerkUserSpec{}, value)
				if err != nil {
					return fmt.Errorf("%s: %w", u.key(), err)
				}
				if miss := mismatches(only, v.Clerk); len(miss) > 0 {
					return fmt.Errorf("%s: the fake Clerk does not hold the private metadata of Secret %s/%s: %s", u.key(),
						obj.Namespace, from.SecretKeyRef.Name, strings.Join(miss, "; "))
				}
				d.printf("Checked: %s is Ready and its Clerk user %s holds private_metadata keys [%s] from Secret %s/%s.\n",
					u.key(), v.UserID, strings.Join(slices.Sorted(maps.Keys(jsonObject(only.PrivateMetadata))), ","),
					obj.Namespace, from.SecretKeyRef.Name)
			} else {
				d.printf("Checked: %s is Ready and its Clerk user %s holds what it declares.\n", u.key(), v.UserID)
			}
			continue
		}
		if err := checkRefused(v, u); err != nil {
			return err
		}
		if n := d.fake.mentioned(u.Identifiers...); n > 0 {
			return fmt.Errorf("%s is refused, yet the fake Clerk received %d requests naming its identifiers %v",
				u.key(), n, u.Identifiers)
		}
		d.printf("Checked: %s is Ready=False, Stalled, reason NotAllowed, naming %s, and no Clerk call named %s.\n",
			u.key(), strings.Join(u.Rules, ", "), strings.Join(u.Identifiers, " or "))
		if err := d.applyFix(ctx, s, u, deadline); err != nil {
			return err
		}
	}
	return nil
}

// checkRefused checks that v, the view of u, is refused as u.Refusal says.
func checkRefused(v userView, u tenantUser) error {
	switch {
	case !v.refused():
		return fmt.Errorf("%s should be refused by ClerkInstance %s (%s), but is Ready=%s reason=%s (generation %d of %d): %s",
			u.key(), u.Instance, u.Refusal.Error(), dash(v.Ready), dash(v.Reason), v.ReadyGeneration, v.Generation, v.Message)
	case v.Stalled != readyTrue:
		return fmt.Errorf("%s is NotAllowed but not Stalled (Stalled=%s)", u.key(), dash(v.Stalled))
	case v.UserID != "":
		return fmt.Errorf("%s is refused, yet bound to Clerk user %s", u.key(), v.UserID)
	}
	for _, r := range u.Rules {
		if !strings.Contains(v.Message, r) {
			return fmt.Errorf("%s is NotAllowed, but its message does not name %s: %s", u.key(), r, v.Message)
		}
	}
	return nil
}

// applyFix applies u.Fix with kubectl, as the demo tells users to, and waits until u is Ready and
// the fake Clerk holds what it declares.
func (d *demo) applyFix(ctx context.Context, s *snapshot, u tenantUser, deadline time.Time) error {
	if u.Fix == nil {
		return fmt.Errorf("%s is refused, and the demo knows no patch that fixes it", u.key())
	}
	d.printf("\nApplying the fix: %s\n", u.fixCommand())
	outB, err := exec.CommandContext(ctx, d.kubectl, d.kubectlArgs(u.fixArgs()...)...).CombinedOutput()
	d.printf("  %s\n", strings.TrimSpace(string(outB)))
	if err != nil {
		return fmt.Errorf("kubectl patch %s: %w", u.key(), err)
	}
	prev := s
	e := expectations{samples: []string{u.key()}}
	return d.pollSnapshots(ctx, deadline, func(cur *snapshot) (bool, error) {
		for _, l := range diffSnapshots(prev, cur) {
			if strings.HasPrefix(l, u.key()) || strings.HasPrefix(l, "kubeclerk") {
				d.printf("  %s\n", l)
			}
		}
		prev = cur
		if pending := pendingOf(cur.views, nil, e); len(pending) > 0 {
			if time.Now().After(deadline) {
				return false, fmt.Errorf("after the fix, %s", strings.Join(pending, "; "))
			}
			return false, nil
		}
		v, _ := tenantUserView(cur, u)
		d.printf("Fixed: %s is Ready (%s) and bound to Clerk user %s, which holds %s%s.\n", u.key(), v.Reason, v.UserID,
			metadataText(v.Clerk), keptNote(u.Fix, v.Clerk))
		// The check that no call named the refused object means something only if calls that do are seen.
		if d.fake.mentioned(u.Identifiers...) == 0 {
			return false, fmt.Errorf("the fake Clerk saw no request naming %v even after the fix, so the demo cannot tell "+
				"whether kubeclerk called Clerk for the refused object", u.Identifiers)
		}
		d.refused = slices.DeleteFunc(d.refused, func(n string) bool { return n == u.key() })
		d.samples = append(d.samples, u.key())
		return true, nil
	})
}

// keptNote says which metadata keys the fix stopped declaring that Clerk still holds: those stay
// as the application set them.
func keptNote(fix []patchOp, c *clerkState) string {
	var kept []string
	for _, op := range fix {
		rest, ok := strings.CutPrefix(op.Path, "/spec/publicMetadata/")
		if !ok || strings.Contains(rest, "/") {
			continue
		}
		k := strings.ReplaceAll(strings.ReplaceAll(rest, "~1", "/"), "~0", "~")
		if _, held := c.PublicMetadata[k]; held {
			kept = append(kept, k)
		}
	}
	if len(kept) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s: the application's, left as it is)", strings.Join(kept, ", "))
}

// secretValue reads the entry ref of a Secret in namespace.
func (d *demo) secretValue(ctx context.Context, namespace string, ref clerkv1alpha1.LocalSecretKeyReference) ([]byte, error) {
	var sec corev1.Secret
	if err := d.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, &sec); err != nil {
		return nil, fmt.Errorf("read Secret %s/%s: %w", namespace, ref.Name, err)
	}
	v, ok := sec.Data[ref.Key]
	if !ok {
		return nil, fmt.Errorf("the Secret %s/%s has no key %s", namespace, ref.Name, ref.Key)
	}
	return v, nil
}

func findInstance(views []instanceView, name string) (instanceView, bool) {
	for _, v := range views {
		if v.Name == name {
			return v, true
		}
	}
	return instanceView{Name: name}, false
}

// expectations are what the demo waits for.
type expectations struct {
	// samples must be Ready with Clerk holding what they declare.
	samples []string
	// refused must be refused by their ClerkInstance (NotAllowed), or, once fixed, as samples.
	refused []string
	// instances must be Ready (Connected).
	instances []string
}

// pendingOf lists, with why, what has not settled as e expects.
func pendingOf(views []userView, instances []instanceView, e expectations) []string {
	byName := map[string]userView{}
	for _, v := range views {
		byName[v.Name] = v
	}
	var out []string
	for _, name := range e.instances {
		iv, ok := findInstance(instances, name)
		switch {
		case !ok:
			out = append(out, "ClerkInstance "+name+": the object is gone")
		case iv.connected():
		case iv.Ready == readyTrue && iv.ReadyGeneration != iv.Generation:
			out = append(out, fmt.Sprintf("ClerkInstance %s: Ready is for generation %d, the spec is at %d", name,
				iv.ReadyGeneration, iv.Generation))
		default:
			why := fmt.Sprintf("ClerkInstance %s: Ready=%s reason=%s", name, dash(iv.Ready), dash(iv.Reason))
			if iv.Message != "" {
				why += ": " + iv.Message
			}
			out = append(out, why)
		}
	}
	for _, name := range e.samples {
		v, ok := byName[name]
		switch {
		case !ok:
			out = append(out, name+": the object is gone")
		case v.converged():
		case v.Ready != readyTrue:
			why := fmt.Sprintf("%s: Ready=%s reason=%s", name, dash(v.Ready), dash(v.Reason))
			if v.Message != "" {
				why += ": " + v.Message
			}
			out = append(out, why)
		case v.ReadyGeneration != v.Generation:
			out = append(out, fmt.Sprintf("%s: Ready is for generation %d, the spec is at %d", name, v.ReadyGeneration, v.Generation))
		case v.Clerk == nil:
			out = append(out, name+": Ready, but the fake Clerk has no user "+v.UserID)
		default:
			out = append(out, name+": Ready, but "+strings.Join(v.Mismatches, "; "))
		}
	}
	for _, name := range e.refused {
		v, ok := byName[name]
		switch {
		case !ok:
			out = append(out, name+": the object is gone")
		case v.refused(), v.converged():
		default:
			why := fmt.Sprintf("%s: to be refused (NotAllowed), but Ready=%s reason=%s", name, dash(v.Ready), dash(v.Reason))
			if v.Ready != "" && v.ReadyGeneration != v.Generation {
				why += fmt.Sprintf(" (for generation %d, the spec is at %d)", v.ReadyGeneration, v.Generation)
			}
			out = append(out, why)
		}
	}
	return out
}

// settled reports whether every ClerkUser in views is in sync with Clerk or refused by its ClerkInstance.
func settled(views []userView) bool {
	for _, v := range views {
		if !v.converged() && !v.refused() {
			return false
		}
	}
	return true
}

// refusedNames lists the views refused by their ClerkInstance.
func refusedNames(views []userView) []string {
	var out []string
	for _, v := range views {
		if v.refused() {
			out = append(out, v.Name)
		}
	}
	return out
}
