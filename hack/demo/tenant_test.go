package main

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
	"github.com/kubeclerk/kubeclerk/internal/instance"
)

const (
	tenantDir   = "../../config/samples/tenant"
	testFakeURL = "http://127.0.0.1:8089/v1"
	// testWebhookSecret is a well-formed signing secret: whsec_ and the base64 of 24 bytes.
	testWebhookSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u"
)

// readTenantSamples returns the objects of config/samples/tenant in the order its
// kustomization.yaml lists them, as kubectl kustomize would (the samples use no other kustomize
// feature), after checking that it lists every YAML file of the directory.
func readTenantSamples(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(tenantDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(tenantDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(k.Resources, b) {
			t.Errorf("%s is not in %s/kustomization.yaml", b, tenantDir)
		}
	}
	var stream []byte
	for _, r := range k.Resources {
		b, err := os.ReadFile(filepath.Join(tenantDir, r))
		if err != nil {
			t.Fatal(err)
		}
		stream = append(append(stream, "\n---\n"...), b...)
	}
	objs, err := decodeObjects(stream)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func findObj(objs []*unstructured.Unstructured, kind, namespace, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
			return o
		}
	}
	return nil
}

func findUser(p *tenantPlan, key string) (tenantUser, bool) {
	for _, u := range p.Users {
		if u.key() == key {
			return u, true
		}
	}
	return tenantUser{}, false
}

func TestTenantSamples(t *testing.T) {
	objs := readTenantSamples(t)
	p, err := planTenant(objs, testFakeURL, clerkfake.DefaultSecretKey, testWebhookSecret, managerNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Instances, []string{"acme-prod"}) || !slices.Equal(p.Namespaces, []string{"team-a"}) {
		t.Fatalf("instances %v, namespaces %v", p.Instances, p.Namespaces)
	}
	if ns := findObj(objs, "Namespace", "", "team-a"); ns == nil || ns.GetLabels()["clerk.kubeclerk.dev/instance"] != "acme-prod" {
		t.Errorf("namespace team-a missing or not labelled for acme-prod: %v", ns)
	}

	// The instance points at the fake, with the fake's key, and the changes say so without the key.
	ci := findObj(objs, "ClerkInstance", "", "acme-prod")
	if u, _, _ := unstructured.NestedString(ci.Object, "spec", "apiURL"); u != testFakeURL {
		t.Errorf("spec.apiURL = %q", u)
	}
	sec := findObj(objs, "Secret", managerNamespace, "clerk-acme-prod")
	if sec == nil {
		t.Fatal("no Secret kubeclerk-system/clerk-acme-prod")
	}
	if k, _, _ := secretValue(sec, "secret-key"); string(k) != clerkfake.DefaultSecretKey {
		t.Errorf("secret-key not replaced by the fake's key")
	}
	if _, has, _ := unstructured.NestedFieldNoCopy(sec.Object, "data", "secret-key"); has {
		t.Error("data.secret-key left next to stringData")
	}
	if w, _, _ := secretValue(sec, "webhook-secret"); string(w) != testWebhookSecret {
		t.Errorf("webhook-secret not replaced by the generated signing secret: %q", w)
	}
	for _, c := range p.Changes {
		if strings.Contains(c, clerkfake.DefaultSecretKey) || strings.Contains(c, testWebhookSecret) {
			t.Errorf("a change shows the key or the webhook secret: %s", c)
		}
	}
	if len(p.Changes) != 3 {
		t.Errorf("changes %q", p.Changes)
	}

	// One ClerkUser allowed, one refused on purpose for its protected key, with the fix.
	frank, ok := findUser(p, "team-a/frank")
	if !ok || frank.Refusal != nil || frank.Fix != nil {
		t.Errorf("frank: %+v, want allowed", frank)
	}
	if !slices.Equal(frank.Identifiers, []string{"emp-2001", "frank@acme.com"}) {
		t.Errorf("frank's identifiers %v", frank.Identifiers)
	}
	heidi, ok := findUser(p, "team-a/heidi")
	if !ok || heidi.Refusal == nil {
		t.Fatalf("heidi: %+v, want refused", heidi)
	}
	if !slices.Equal(heidi.Rules, []string{"policy.protectedMetadataKeys.public"}) {
		t.Errorf("heidi's rules %v", heidi.Rules)
	}
	if !slices.Equal(heidi.Identifiers, []string{"emp-2002"}) {
		t.Errorf("heidi's identifiers %v", heidi.Identifiers)
	}
	want := `kubectl -n team-a patch clerkuser heidi --type=json -p '[{"op":"remove","path":"/spec/publicMetadata/role"}]'`
	if got := heidi.fixCommand(); got != want {
		t.Errorf("fix command\n got %s\nwant %s", got, want)
	}
	if got := heidi.fixArgs(); !slices.Equal(got, []string{"-n", "team-a", "patch", "clerkuser", "heidi", "--type=json", "-p",
		`[{"op":"remove","path":"/spec/publicMetadata/role"}]`}) {
		t.Errorf("fix args %q", got)
	}
	// The sample's comment shows the same patch.
	raw, err := os.ReadFile(filepath.Join(tenantDir, "clerk_v1alpha1_clerkuser_refused.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), heidi.fixPatch()) {
		t.Errorf("the refused sample's comment does not show the patch %s", heidi.fixPatch())
	}
	if w := whatToChange(heidi.Refusal.Error()); len(w) != 1 || !strings.HasPrefix(w[0], "remove ") ||
		!strings.Contains(w[0], "spec.publicMetadata") {
		t.Errorf("what to change: %q (message %q)", w, heidi.Refusal)
	}

	// The objects survive the trip to kubectl apply.
	y, err := encodeObjects(p.Objects)
	if err != nil {
		t.Fatal(err)
	}
	again, err := decodeObjects(y)
	if err != nil || len(again) != len(objs) {
		t.Fatalf("round trip: %d objects, %v; want %d", len(again), err, len(objs))
	}
}

// tenantYAML is a small tenant setup; tests change it with strings.Replace.
const tenantYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: t1, labels: {clerk.kubeclerk.dev/instance: i1}}
---
apiVersion: v1
kind: Secret
metadata: {name: key, namespace: mgr}
data: {sk: c2tfdGVzdF9QTEFDRUhPTERFUg==}
---
apiVersion: clerk.kubeclerk.dev/v1alpha1
kind: ClerkInstance
metadata: {name: i1}
spec:
  secretKeyRef: {name: key, key: sk}
  namespaceSelector: {matchLabels: {clerk.kubeclerk.dev/instance: i1}}
  policy:
    emailDomains: [acme.com]
    protectedMetadataKeys: {public: [role, "a/b~c"], private: [salary]}
---
apiVersion: v1
kind: Secret
metadata: {name: priv, namespace: t1, labels: {clerk.kubeclerk.dev/private-metadata: "true"}}
stringData: {m.json: '{"hr": 1}'}
---
apiVersion: clerk.kubeclerk.dev/v1alpha1
kind: ClerkUser
metadata: {name: u1, namespace: t1}
spec:
  instanceRef: {name: i1}
  emailAddress: u1@acme.com
  publicMetadata: {role: x, "a/b~c": 1, keep: 2}
  privateMetadataFrom: {secretKeyRef: {name: priv, key: m.json}}
`

func planOf(t *testing.T, manifest string) (*tenantPlan, error) {
	t.Helper()
	objs, err := decodeObjects([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	return planTenant(objs, testFakeURL, clerkfake.DefaultSecretKey, "", "mgr")
}

func TestPlanTenantRefusals(t *testing.T) {
	p, err := planOf(t, tenantYAML)
	if err != nil {
		t.Fatal(err)
	}
	u := p.Users[0]
	if !slices.Equal(u.Rules, []string{"policy.protectedMetadataKeys.public"}) {
		t.Fatalf("rules %v (%v)", u.Rules, u.Refusal)
	}
	if got := u.fixPatch(); got !=
		`[{"op":"remove","path":"/spec/publicMetadata/a~1b~0c"},{"op":"remove","path":"/spec/publicMetadata/role"}]` {
		t.Errorf("fix %s", got)
	}
	// The key in data (base64) is replaced too, and data no longer holds it.
	sec := findObj(p.Objects, "Secret", "mgr", "key")
	if v, ok, err := secretValue(sec, "sk"); !ok || err != nil || string(v) != clerkfake.DefaultSecretKey {
		t.Errorf("key %q %t %v", v, ok, err)
	}
	if _, has, _ := unstructured.NestedFieldNoCopy(sec.Object, "data", "sk"); has {
		t.Error("data.sk kept")
	}

	for _, tc := range []struct {
		name, old, new string
		rules          []string
		fixable        bool
	}{
		{"allowed", "role: x, \"a/b~c\": 1, ", "", nil, false},
		{"namespace not selected", "{clerk.kubeclerk.dev/instance: i1}}\n---", "{team: a}}\n---",
			[]string{"spec.namespaceSelector"}, false},
		{"protected and bad email: the patch alone does not fix it", "u1@acme.com", "u1@example.com",
			[]string{"policy.emailDomains", "policy.protectedMetadataKeys.public"}, false},
		{"protected key from the Secret", `'{"hr": 1}'`, `'{"salary": 1}'`,
			[]string{"policy.protectedMetadataKeys.public", "policy.protectedMetadataKeys.private"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := strings.Replace(tenantYAML, tc.old, tc.new, 1)
			if m == tenantYAML {
				t.Fatalf("%q not in the manifest", tc.old)
			}
			p, err := planOf(t, m)
			if err != nil {
				t.Fatal(err)
			}
			u := p.Users[0]
			if !slices.Equal(u.Rules, tc.rules) || (u.Refusal == nil) != (tc.rules == nil) {
				t.Errorf("rules %v, want %v (%v)", u.Rules, tc.rules, u.Refusal)
			}
			if (u.Fix != nil) != tc.fixable {
				t.Errorf("fix %v", u.Fix)
			}
			if u.Refusal != nil {
				if w := whatToChange(u.Refusal.Error()); len(w) != len(tc.rules) {
					t.Errorf("what to change %q, want one line per rule %v", w, tc.rules)
				}
			}
		})
	}

	for _, tc := range []struct{ name, old, new, want string }{
		{"instance Secret elsewhere", "namespace: mgr", "namespace: other", "do not hold in mgr"},
		{"instance Secret without the entry", "secretKeyRef: {name: key, key: sk}", "secretKeyRef: {name: key, key: nope}", "no entry nope"},
		{"unknown instance", "instanceRef: {name: i1}", "instanceRef: {name: i2}", "ClerkInstance i2"},
		{"private metadata Secret missing", "secretKeyRef: {name: priv,", "secretKeyRef: {name: gone,", "t1/gone"},
		{"private metadata not an object", `'{"hr": 1}'`, `'[1]'`, "not a JSON object"},
		{"user without namespace", "metadata: {name: u1, namespace: t1}", "metadata: {name: u1}", "no metadata.namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := strings.Replace(tenantYAML, tc.old, tc.new, 1)
			if m == tenantYAML {
				t.Fatalf("%q not in the manifest", tc.old)
			}
			if _, err := planOf(t, m); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestWhatToChange(t *testing.T) {
	one := "ClerkInstance acme-prod does not allow spec.publicMetadata to declare role (policy.protectedMetadataKeys.public: [role]); " +
		"remove role from spec.publicMetadata: the application manages role"
	if got := whatToChange(one); !slices.Equal(got, []string{"remove role from spec.publicMetadata: the application manages role"}) {
		t.Errorf("one: %q", got)
	}
	two := "2 policy violations: (1) ClerkInstance a does not allow X (policy.x); do x; (2) ClerkInstance a does not allow Y (policy.y); do y"
	if got := whatToChange(two); !slices.Equal(got, []string{"do x", "do y"}) {
		t.Errorf("two: %q", got)
	}
	if got := whatToChange("ClerkInstance a: spec.namespaceSelector is invalid"); !slices.Equal(got,
		[]string{"ClerkInstance a: spec.namespaceSelector is invalid"}) {
		t.Errorf("no advice: %q", got)
	}
	// The manager's own messages.
	v := instance.Violations{
		{Instance: "a", Rule: "policy.x", Detail: "does not allow X (policy.x); do x"},
		{Instance: "a", Rule: "policy.y", Detail: "does not allow Y (policy.y); do y"},
	}
	if got := whatToChange(v.Error()); !slices.Equal(got, []string{"do x", "do y"}) {
		t.Errorf("Violations: %q from %q", got, v.Error())
	}
	if got := refusalRules(v); !slices.Equal(got, []string{"policy.x", "policy.y"}) {
		t.Errorf("refusalRules = %q", got)
	}
	if got := refusalRules(instance.NamespaceNotSelected("a", "ns")); !slices.Equal(got, []string{"spec.namespaceSelector"}) {
		t.Errorf("refusalRules = %q", got)
	}
	if got := refusalRules(errors.New("other")); got != nil {
		t.Errorf("refusalRules = %q", got)
	}
}

func TestPendingOf(t *testing.T) {
	ready := func(name string) userView {
		return userView{Name: name, Generation: 1, Ready: "True", Reason: "Synced", ReadyGeneration: 1, Clerk: &clerkState{ID: "user_1"}}
	}
	refused := userView{Name: "t/heidi", Generation: 1, Ready: "False", Reason: reasonNotAllowed, Stalled: "True", ReadyGeneration: 1,
		Message: "ClerkInstance i does not allow …"}
	connected := instanceView{Name: "i", Generation: 2, Ready: "True", Reason: reasonConnected, ReadyGeneration: 2}
	e := expectations{samples: []string{"alice", "t/frank"}, refused: []string{"t/heidi"}, instances: []string{"i"}}

	views := []userView{ready("alice"), ready("t/frank"), refused}
	if got := pendingOf(views, []instanceView{connected}, e); len(got) != 0 {
		t.Errorf("all settled, got %q", got)
	}
	if !settled(views) || !slices.Equal(refusedNames(views), []string{"t/heidi"}) {
		t.Error("settled or refusedNames")
	}

	// The refused object, fixed and in sync, counts as settled too.
	if got := pendingOf([]userView{ready("alice"), ready("t/frank"), ready("t/heidi")}, []instanceView{connected}, e); len(got) != 0 {
		t.Errorf("fixed, got %q", got)
	}

	notConnected := instanceView{Name: "i", Generation: 2, Ready: "False", Reason: "AuthenticationFailed", Message: "Clerk refused the key",
		ReadyGeneration: 2}
	waiting := refused
	waiting.Reason, waiting.Stalled, waiting.Message = "InstanceNotReady", "", "ClerkInstance i is not Ready"
	oldGen := refused
	oldGen.Generation = 2
	frankRefused := refused
	frankRefused.Name = "t/frank"
	got := pendingOf([]userView{ready("alice"), frankRefused, waiting}, []instanceView{notConnected}, e)
	want := []string{
		"ClerkInstance i: Ready=False reason=AuthenticationFailed: Clerk refused the key",
		"t/frank: Ready=False reason=NotAllowed: ClerkInstance i does not allow …",
		"t/heidi: to be refused (NotAllowed), but Ready=False reason=InstanceNotReady",
	}
	if !slices.Equal(got, want) {
		t.Errorf("pending:\n got %q\nwant %q", got, want)
	}
	if settled([]userView{waiting}) {
		t.Error("InstanceNotReady counts as settled")
	}
	got = pendingOf([]userView{ready("alice"), ready("t/frank"), oldGen}, []instanceView{{Name: "i", Generation: 3, Ready: "True",
		Reason: reasonConnected, ReadyGeneration: 2}}, e)
	want = []string{
		"ClerkInstance i: Ready is for generation 2, the spec is at 3",
		"t/heidi: to be refused (NotAllowed), but Ready=False reason=NotAllowed (for generation 1, the spec is at 2)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("old generations:\n got %q\nwant %q", got, want)
	}
	if got := pendingOf(nil, nil, e); len(got) != 4 || got[0] != "ClerkInstance i: the object is gone" {
		t.Errorf("nothing there: %q", got)
	}
}

func TestCheckRefused(t *testing.T) {
	u := tenantUser{Namespace: "t", Name: "heidi", Instance: "i", Refusal: errors.New("x"),
		Rules: []string{"policy.protectedMetadataKeys.public"}}
	v := userView{Name: "t/heidi", Generation: 1, Ready: "False", Reason: reasonNotAllowed, Stalled: "True", ReadyGeneration: 1,
		Message: "ClerkInstance i does not allow spec.publicMetadata to declare role (policy.protectedMetadataKeys.public: [role]); remove role"}
	if err := checkRefused(v, u); err != nil {
		t.Errorf("refused as expected: %v", err)
	}
	bad := v
	bad.Message = "ClerkInstance i does not allow spec.userID (policy.allowUserID: false)"
	if err := checkRefused(bad, u); err == nil || !strings.Contains(err.Error(), "does not name policy.protectedMetadataKeys.public") {
		t.Errorf("wrong rule: %v", err)
	}
	bad = v
	bad.Stalled = "False"
	if err := checkRefused(bad, u); err == nil || !strings.Contains(err.Error(), "not Stalled") {
		t.Errorf("not stalled: %v", err)
	}
	bad = v
	bad.UserID = "user_1"
	if err := checkRefused(bad, u); err == nil || !strings.Contains(err.Error(), "bound to Clerk user") {
		t.Errorf("bound: %v", err)
	}
	bad = v
	bad.Ready, bad.Reason = "True", "Synced"
	if err := checkRefused(bad, u); err == nil || !strings.Contains(err.Error(), "should be refused") {
		t.Errorf("ready: %v", err)
	}
}

func TestWithSecretMetadata(t *testing.T) {
	spec := &clerkv1alpha1.ClerkUserSpec{PrivateMetadata: js(`{"crmID":"C-1","n":1}`)}
	got, err := withSecretMetadata(spec, []byte(`{"hrID":"HR-1","n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(got.PrivateMetadata.Raw, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 || m["crmID"] != "C-1" || m["hrID"] != "HR-1" || m["n"] != float64(2) {
		t.Errorf("merged %v", m)
	}
	if string(spec.PrivateMetadata.Raw) != `{"crmID":"C-1","n":1}` {
		t.Error("the spec was changed")
	}
	if _, err := withSecretMetadata(spec, []byte(`"x"`)); err == nil {
		t.Error("a string was accepted")
	}
	// The view compares Clerk with the merged spec.
	u := &clerkState{ID: "user_1", PrivateMetadata: map[string]any{"crmID": "C-1", "n": 2}}
	if miss := mismatches(got, u); !slices.Equal(miss, []string{"private_metadata.hrID differs in Clerk"}) {
		t.Errorf("mismatches %q", miss)
	}
}

func TestFakeCountsMentions(t *testing.T) {
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := startFakeClerk(ln, "clerk-users.json", io.Discard, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer f.stop()
	f.watch("emp-2002", "Heidi.New@acme.com")
	call := func(method, path, body string) int {
		req, err := http.NewRequestWithContext(t.Context(), method, f.apiURL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+clerkfake.DefaultSecretKey)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	call(http.MethodGet, "/users?external_id=emp-1042", "")
	if n := f.mentioned("emp-2002", "heidi.new@acme.com"); n != 0 {
		t.Errorf("an unrelated call counted: %d", n)
	}
	call(http.MethodGet, "/users?external_id="+url.QueryEscape("emp-2002"), "")
	call(http.MethodGet, "/users?email_address="+url.QueryEscape("heidi.new@acme.com"), "")
	// The body is read for the count and still reaches the fake.
	create := `{"email_address":["heidi.new@acme.com"],"skip_password_requirement":true}`
	if code := call(http.MethodPost, "/users", create); code != http.StatusOK {
		t.Errorf("create: %d", code)
	}
	if n := f.mentioned("emp-2002"); n != 1 {
		t.Errorf("emp-2002 mentioned %d times, want 1", n)
	}
	if n := f.mentioned("heidi.new@acme.com"); n != 2 {
		t.Errorf("the email mentioned %d times, want 2", n)
	}
	if got := requestText(&url.URL{Path: "/v1/users", RawQuery: "email_address=A%40B.com&x=1"}, []byte(`{"K":1}`)); got !=
		"/v1/users?email_address=a@b.com&x=1\n{\"k\":1}" {
		t.Errorf("requestText = %q", got)
	}
}

func TestRenderInstances(t *testing.T) {
	var b strings.Builder
	renderInstances(&b, []instanceView{
		{Name: "acme-prod", Ready: "True", Reason: "Connected", KeyType: "test", BoundUsers: 2},
		{Name: "other", Ready: "False", Reason: "SecretNotFound", Message: "Secret kubeclerk-system/x not found"},
	})
	want := `  ClerkInstance acme-prod: Ready True/Connected, test key, 2 ClerkUsers bound
  ClerkInstance other: Ready False/SecretNotFound, 0 ClerkUsers bound: Secret kubeclerk-system/x not found
`
	if b.String() != want {
		t.Errorf("renderInstances:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestKeptNote(t *testing.T) {
	fix := []patchOp{{Op: "remove", Path: "/spec/publicMetadata/role"}, {Op: "remove", Path: "/spec/publicMetadata/a~1b"},
		{Op: "remove", Path: "/spec/unsafeMetadata/role"}}
	c := &clerkState{PublicMetadata: map[string]any{"role": "member", "a/b": 1, "teams": []any{}}}
	if got := keptNote(fix, c); got != " (role, a/b: the application's, left as it is)" {
		t.Errorf("keptNote = %q", got)
	}
	if got := keptNote(fix, &clerkState{}); got != "" {
		t.Errorf("nothing kept: %q", got)
	}
}
