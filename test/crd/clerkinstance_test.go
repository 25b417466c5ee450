package crd_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubeclerk/kubeclerk/internal/instance"
)

const instanceCRDName = "clerkinstances.clerk.kubeclerk.dev"

// instanceSampleFile is the ClerkInstance sample of config/samples/tenant.
var instanceSampleFile = filepath.Join(samplesDir, "tenant", "clerk_v1alpha1_clerkinstance.yaml")

// wantInstanceColumns are the columns of `kubectl get clerkinstances` after NAME.
var wantInstanceColumns = []apiextensionsv1.CustomResourceColumnDefinition{
	{Name: "Key-Type", Type: "string", JSONPath: ".status.keyType"},
	{Name: "Ready", Type: "string", JSONPath: `.status.conditions[?(@.type=="Ready")].status`},
	{Name: "Reason", Type: "string", JSONPath: `.status.conditions[?(@.type=="Ready")].reason`},
	{Name: "Users", Type: "integer", JSONPath: ".status.boundUsers"},
	{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"},
}

// wantInstanceHeader is the header of `kubectl get clerkinstances`.
var wantInstanceHeader = []string{"NAME", "KEY-TYPE", "READY", "REASON", "USERS", "AGE"}

// A valid spec, and the pieces tests combine into specs (JSON, which is YAML too).
const (
	secretRef   = `"secretKeyRef":{"name":"clerk-acme-prod","key":"secret-key"}`
	anyNS       = `"namespaceSelector":{}`
	minimalSpec = `{` + secretRef + `,` + anyNS + `}`
	fullSpec    = `{` + secretRef + `,"apiURL":"https://api.clerk.com/v1","requestsPerSecond":50,"burst":100,` +
		`"webhookSecretRef":{"name":"clerk-acme-prod","key":"webhook-secret"},` +
		`"namespaceSelector":{"matchLabels":{"clerk.kubeclerk.dev/instance":"acme-prod"},` +
		`"matchExpressions":[{"key":"team","operator":"In","values":["support"]},{"key":"frozen","operator":"DoesNotExist"}]},` +
		`"policy":{"allowUserID":false,"allowCreate":true,"allowedDeletionPolicies":["Orphan","Ban","Delete"],` +
		`"emailDomains":["acme.com","eu.acme.com","xn--bcher-kva.example"],"externalIDPrefixes":["emp-","svc-"],` +
		`"protectedMetadataKeys":{"public":["role"],"private":["crmID"],"unsafe":[]}}}`
)

// withPolicy is a valid spec with the given policy (a JSON object).
func withPolicy(policy string) string {
	return `{` + secretRef + `,` + anyNS + `,"policy":` + policy + `}`
}

// with is a valid spec with one more top-level field (`"name":value`).
func with(fieldJSON string) string { return `{` + secretRef + `,` + anyNS + `,` + fieldJSON + `}` }

// instanceManifest renders a ClerkInstance with the given spec; no spec when spec is "".
func instanceManifest(name, spec string) string {
	m := "apiVersion: clerk.kubeclerk.dev/v1alpha1\nkind: ClerkInstance\nmetadata:\n  name: " + name + "\n"
	if spec != "" {
		m += "spec: " + spec + "\n"
	}
	return m
}

func applyInstance(name, spec string, modeArgs ...string) result {
	return kc.run(instanceManifest(name, spec), append([]string{"apply", "-f", "-"}, modeArgs...)...)
}

// deleteInstanceLater deletes a ClerkInstance (cluster-scoped, so shared by every test) when the test ends.
func deleteInstanceLater(t *testing.T, name string) {
	t.Helper()
	t.Cleanup(func() { kc.run("", "delete", "clerkinstance", name, "--ignore-not-found", "--wait=false") })
}

// getInstance reads a ClerkInstance; ok is false when it does not exist.
func getInstance(t *testing.T, name string) (obj map[string]any, ok bool) {
	t.Helper()
	r := kc.run("", "get", "clerkinstances", name, "-o", "json", "--ignore-not-found")
	if r.err != nil {
		t.Fatalf("read %s: %s", name, r)
	}
	if strings.TrimSpace(r.stdout) == "" {
		return nil, false
	}
	if err := json.Unmarshal([]byte(r.stdout), &obj); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
	return obj, true
}

// TestClerkInstanceCRD checks the ClerkInstance CRD as generated (the YAML file) and as served.
func TestClerkInstanceCRD(t *testing.T) {
	forEachCRDSource(t, "clerk.kubeclerk.dev_clerkinstances.yaml", instanceCRDName, "ci", checkInstanceCRD)
}

func checkInstanceCRD(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	v := checkCRDNames(t, crd, instanceCRDName, "ClerkInstance", "clerkinstances", "ci", apiextensionsv1.ClusterScoped)
	if !slices.Equal(v.AdditionalPrinterColumns, wantInstanceColumns) {
		t.Errorf("printer columns\n%+v\nwant\n%+v", v.AdditionalPrinterColumns, wantInstanceColumns)
	}
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		t.Fatal("no schema")
	}
	root := v.Schema.OpenAPIV3Schema
	if !slices.Contains(root.Required, "spec") {
		t.Errorf("spec is not required: %v", root.Required)
	}
	spec := root.Properties["spec"]
	required := slices.Clone(spec.Required)
	slices.Sort(required)
	if want := []string{"namespaceSelector", "secretKeyRef"}; !slices.Equal(required, want) {
		t.Errorf("spec requires %v, want %v", required, want)
	}
	if got := spec.Properties["secretKeyRef"].Required; !slices.Contains(got, "name") || !slices.Contains(got, "key") {
		t.Errorf("spec.secretKeyRef requires %v, want name and key", got)
	}
	// No field has a default: unset means "Clerk's default" or "no limit", decided in code.
	var walk func(path string, p apiextensionsv1.JSONSchemaProps)
	walk = func(path string, p apiextensionsv1.JSONSchemaProps) {
		if p.Default != nil {
			t.Errorf("%s has default %s", path, p.Default.Raw)
		}
		if p.Description == "" && !strings.Contains(path, "namespaceSelector.") {
			t.Errorf("%s has no description (kubectl explain shows it)", path)
		}
		for name, c := range p.Properties {
			walk(path+"."+name, c)
		}
	}
	walk("spec", spec)
	walk("status", root.Properties["status"])
	for _, f := range []string{"requestsPerSecond", "burst"} {
		p := spec.Properties[f]
		if p.Type != "integer" || p.Minimum == nil || *p.Minimum != 1 {
			t.Errorf("spec.%s: type %q minimum %v; want an integer of at least 1", f, p.Type, p.Minimum)
		}
	}
	if p := spec.Properties["policy"].Properties["allowedDeletionPolicies"]; p.Items == nil || len(p.Items.Schema.Enum) != 3 ||
		p.XListType == nil || *p.XListType != "set" {
		t.Errorf("spec.policy.allowedDeletionPolicies: %+v; want a set of Orphan, Ban, Delete", p)
	}
}

type instanceInvalidCase struct {
	name string
	// before are specs applied first, in order; each must be accepted.
	before []string
	// spec must be refused ("" = no spec at all).
	spec string
	// want are texts stderr must contain: the field path, and what is wrong.
	want []string
	// wantAny, when set, are texts of which stderr must contain at least one.
	wantAny []string
}

func instanceInvalidCases() []instanceInvalidCase {
	dup := []string{"Duplicate value", "duplicate entries"}
	notInt := []string{"must be of type integer", "expected numeric", "expected int"}
	cases := []instanceInvalidCase{
		{name: "no spec", spec: "", want: []string{"spec: Required value"}},
		{name: "missing namespaceSelector", spec: `{` + secretRef + `}`, want: []string{"spec.namespaceSelector: Required value"}},
		{name: "missing secretKeyRef", spec: `{` + anyNS + `}`, want: []string{"spec.secretKeyRef: Required value"}},
		{name: "secretKeyRef without key", spec: `{"secretKeyRef":{"name":"clerk"},` + anyNS + `}`,
			want: []string{"spec.secretKeyRef.key: Required value"}},
		{name: "secretKeyRef without name", spec: `{"secretKeyRef":{"key":"secret-key"},` + anyNS + `}`,
			want: []string{"spec.secretKeyRef.name: Required value"}},
		{name: "secretKeyRef bad secret name", spec: `{"secretKeyRef":{"name":"Clerk_Prod","key":"secret-key"},` + anyNS + `}`,
			want: []string{"spec.secretKeyRef.name"}},
		{name: "secretKeyRef bad key", spec: `{"secretKeyRef":{"name":"clerk","key":"secret key"},` + anyNS + `}`,
			want: []string{"spec.secretKeyRef.key"}},
		{name: "webhookSecretRef without key", spec: with(`"webhookSecretRef":{"name":"clerk"}`),
			want: []string{"spec.webhookSecretRef.key: Required value"}},
		{name: "namespaceSelector removed later", before: []string{minimalSpec}, spec: `{` + secretRef + `}`,
			want: []string{"spec.namespaceSelector: Required value"}},

		{name: "apiURL http remote", spec: with(`"apiURL":"http://api.clerk.com/v1"`),
			want: []string{"spec.apiURL", "spec.apiURL must be an https:// URL", "http:// is allowed only for 127.0.0.1, localhost or [::1]"}},
		{name: "apiURL http to a look-alike of localhost", spec: with(`"apiURL":"http://localhost.evil.com/v1"`),
			want: []string{"spec.apiURL", "https://"}},
		{name: "apiURL with user info", spec: with(`"apiURL":"http://127.0.0.1@evil.com/v1"`),
			want: []string{"spec.apiURL", "without user info"}},
		{name: "apiURL not a URL", spec: with(`"apiURL":"api.clerk.com/v1"`), want: []string{"spec.apiURL"}},
		{name: "apiURL changed to http remote", before: []string{with(`"apiURL":"https://api.clerk.com/v1"`)},
			spec: with(`"apiURL":"http://api.clerk.com/v1"`), want: []string{"spec.apiURL", "https://"}},

		{name: "requestsPerSecond 0", spec: with(`"requestsPerSecond":0`),
			want: []string{"spec.requestsPerSecond", "greater than or equal to 1"}},
		{name: "requestsPerSecond negative", spec: with(`"requestsPerSecond":-5`),
			want: []string{"spec.requestsPerSecond", "greater than or equal to 1"}},
		{name: "requestsPerSecond fractional", spec: with(`"requestsPerSecond":2.5`), want: []string{"spec.requestsPerSecond"}, wantAny: notInt},
		{name: "burst 0", spec: with(`"burst":0`), want: []string{"spec.burst", "greater than or equal to 1"}},

		{name: "empty allowedDeletionPolicies", spec: withPolicy(`{"allowedDeletionPolicies":[]}`),
			want: []string{"spec.policy.allowedDeletionPolicies", "must not be empty", "even one with the default deletionPolicy Orphan"}},
		{name: "allowedDeletionPolicies bad enum", spec: withPolicy(`{"allowedDeletionPolicies":["Orphan","Retain"]}`),
			want: []string{"spec.policy.allowedDeletionPolicies[1]", "Unsupported value", `"Retain"`}},
		{name: "allowedDeletionPolicies lowercase", spec: withPolicy(`{"allowedDeletionPolicies":["orphan"]}`),
			want: []string{"spec.policy.allowedDeletionPolicies[0]", "Unsupported value"}},
		{name: "allowedDeletionPolicies duplicate", spec: withPolicy(`{"allowedDeletionPolicies":["Ban","Ban"]}`),
			want: []string{"spec.policy.allowedDeletionPolicies"}, wantAny: dup},

		{name: "email domain with @", spec: withPolicy(`{"emailDomains":["acme.com","@acme.io"]}`),
			want: []string{"spec.policy.emailDomains[1]", "an email domain is the part after '@'"}},
		{name: "email address as domain", spec: withPolicy(`{"emailDomains":["alice@acme.com"]}`),
			want: []string{"spec.policy.emailDomains[0]", "write acme.com, not user@acme.com"}},
		{name: "email domain uppercase", spec: withPolicy(`{"emailDomains":["Acme.com"]}`),
			want: []string{"spec.policy.emailDomains[0]", "must be a lowercase domain name"}},
		{name: "email domain wildcard", spec: withPolicy(`{"emailDomains":["*.acme.com"]}`),
			want: []string{"spec.policy.emailDomains[0]", "no wildcard"}},
		{name: "email domain trailing dot", spec: withPolicy(`{"emailDomains":["acme.com."]}`),
			want: []string{"spec.policy.emailDomains[0]", "no leading or trailing dot"}},
		{name: "email domain without a dot", spec: withPolicy(`{"emailDomains":["localhost"]}`),
			want: []string{"spec.policy.emailDomains[0]", "at least one dot"}},
		{name: "email domain with a space", spec: withPolicy(`{"emailDomains":["acme .com"]}`),
			want: []string{"spec.policy.emailDomains[0]", "lowercase domain name"}},
		{name: "empty emailDomains", spec: withPolicy(`{"emailDomains":[]}`),
			want: []string{"spec.policy.emailDomains", "must not be empty"}},
		{name: "emailDomains duplicate", spec: withPolicy(`{"emailDomains":["acme.com","acme.com"]}`),
			want: []string{"spec.policy.emailDomains"}, wantAny: dup},

		{name: "empty externalIDPrefixes", spec: withPolicy(`{"externalIDPrefixes":[]}`),
			want: []string{"spec.policy.externalIDPrefixes", "must not be empty"}},
		{name: "empty externalID prefix", spec: withPolicy(`{"externalIDPrefixes":["emp-",""]}`),
			want: []string{"spec.policy.externalIDPrefixes[1]"}},
		{name: "empty protected key", spec: withPolicy(`{"protectedMetadataKeys":{"public":[""]}}`),
			want: []string{"spec.policy.protectedMetadataKeys.public[0]"}},
		{name: "allowUserID not a boolean", spec: withPolicy(`{"allowUserID":"no"}`), want: []string{"spec.policy.allowUserID"}},
		{name: "unknown policy field", spec: withPolicy(`{"allowedDomains":["acme.com"]}`), want: []string{"allowedDomains"}},

		{name: "namespaceSelector bad operator",
			spec: `{` + secretRef + `,"namespaceSelector":{"matchExpressions":[{"key":"team","operator":"Equals","values":["a"]}]}}`,
			want: []string{"spec.namespaceSelector", "operator must be In, NotIn, Exists or DoesNotExist"}},
		{name: "namespaceSelector In without values",
			spec: `{` + secretRef + `,"namespaceSelector":{"matchExpressions":[{"key":"team","operator":"In"}]}}`,
			want: []string{"spec.namespaceSelector", "In and NotIn need values"}},
		{name: "namespaceSelector Exists with values",
			spec: `{` + secretRef + `,"namespaceSelector":{"matchExpressions":[{"key":"team","operator":"Exists","values":["a"]}]}}`,
			want: []string{"spec.namespaceSelector", "Exists and DoesNotExist take none"}},
	}
	return cases
}

func TestClerkInstanceInvalidObjectsAreRefused(t *testing.T) {
	cases := instanceInvalidCases()
	for mi, mode := range applyModes {
		t.Run(mode.name, func(t *testing.T) {
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					name := objectName(mi*1000+i, "ci-invalid-"+tc.name)
					deleteInstanceLater(t, name)
					for _, spec := range tc.before {
						if r := applyInstance(name, spec, mode.args...); r.err != nil {
							t.Fatalf("expected %s to be accepted: %s", instanceManifest(name, spec), r)
						}
					}
					before, existed := getInstance(t, name)

					r := applyInstance(name, tc.spec, mode.args...)
					if r.exitCode == 0 {
						t.Fatalf("expected kubectl apply to refuse %s but it exited 0: %s", instanceManifest(name, tc.spec), r)
					}
					if r.exitCode < 0 {
						t.Fatalf("kubectl did not run: %s", r)
					}
					t.Logf("refused: %s", strings.TrimSpace(r.stderr))
					for _, w := range tc.want {
						if !strings.Contains(r.stderr, w) {
							t.Errorf("stderr does not contain %q: %s", w, r)
						}
					}
					if len(tc.wantAny) > 0 && !slices.ContainsFunc(tc.wantAny, func(w string) bool { return strings.Contains(r.stderr, w) }) {
						t.Errorf("stderr contains none of %q: %s", tc.wantAny, r)
					}

					after, exists := getInstance(t, name)
					switch {
					case exists != existed:
						t.Errorf("the refused apply changed whether %s exists (before %v, after %v): %v", name, existed, exists, after)
					case exists && !reflect.DeepEqual(before["spec"], after["spec"]):
						t.Errorf("the refused apply changed the spec from %v to %v", before["spec"], after["spec"])
					}
				})
			}
		})
	}
}

func TestClerkInstanceValidObjectsAreAccepted(t *testing.T) {
	cases := []struct {
		name, spec string
	}{
		{"minimal, every namespace", minimalSpec},
		{"every field", fullSpec},
		{"fake Clerk on 127.0.0.1", with(`"apiURL":"http://127.0.0.1:8089/v1"`)},
		{"fake Clerk on localhost", with(`"apiURL":"http://localhost/v1"`)},
		{"fake Clerk on [::1]", with(`"apiURL":"http://[::1]:8089/v1"`)},
		{"https with a port", with(`"apiURL":"https://clerk-proxy.internal:8443/v1"`)},
		{"rate of 1", with(`"requestsPerSecond":1,"burst":1`)},
		{"empty policy", withPolicy(`{}`)},
		{"only Orphan may be used", withPolicy(`{"allowedDeletionPolicies":["Orphan"]}`)},
		{"Orphan not allowed", withPolicy(`{"allowedDeletionPolicies":["Ban","Delete"]}`)},
		{"empty protected key lists", withPolicy(`{"protectedMetadataKeys":{"public":[],"private":[]}}`)},
		{"NotIn and Exists selectors", `{` + secretRef + `,"namespaceSelector":{"matchExpressions":[` +
			`{"key":"team","operator":"NotIn","values":["x"]},{"key":"clerk","operator":"Exists"}]}}`},
	}
	for mi, mode := range applyModes {
		t.Run(mode.name, func(t *testing.T) {
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					name := objectName(mi*1000+i, "ci-valid-"+tc.name)
					deleteInstanceLater(t, name)
					if r := applyInstance(name, tc.spec, mode.args...); r.err != nil {
						t.Fatalf("expected %s to be accepted: %s", instanceManifest(name, tc.spec), r)
					}
					obj, ok := getInstance(t, name)
					if !ok {
						t.Fatalf("%s does not exist after kubectl apply", name)
					}
					var want map[string]any
					if err := json.Unmarshal([]byte(tc.spec), &want); err != nil {
						t.Fatalf("bad test case: %v", err)
					}
					// The server keeps the spec as written: no defaults, nothing pruned ({} stays {}).
					if !reflect.DeepEqual(obj["spec"], want) {
						t.Errorf("spec is %v, want %v", obj["spec"], want)
					}
					if ns, _ := field(obj, "metadata", "namespace"); ns != nil {
						t.Errorf("a cluster-scoped object has metadata.namespace %v", ns)
					}
				})
			}
		})
	}
}

// TestClerkInstanceAPIURLRuleAgreesWithValidateAPIURL checks that the CRD's CEL rule for
// spec.apiURL and instance.ValidateAPIURL accept and refuse the same URLs, so that the manager
// never finds a URL invalid that the API server let in, nor the other way round.
func TestClerkInstanceAPIURLRuleAgreesWithValidateAPIURL(t *testing.T) {
	urls := []string{
		"https://api.clerk.com/v1", "https://api.clerk.com/v1/", "https://api.clerk.com", "HTTPS://api.clerk.com/v1",
		"https://api.clerk.com:443/v1", "https://10.0.0.5/v1", "https://[2001:db8::1]/v1",
		"http://127.0.0.1/v1", "http://127.0.0.1:8089/v1", "http://localhost:8089/v1", "http://localhost", "HTTP://localhost/v1",
		"http://[::1]:8089/v1", "http://[::1]/v1",
		"http://api.clerk.com/v1", "http://10.0.0.5:8089/v1", "http://127.0.0.2/v1", "http://localhost.evil.com/v1",
		"http://127.0.0.1.nip.io/v1", "http://[::2]/v1", "http://0.0.0.0:8089/v1", "http://LOCALHOST/v1",
		"http://127.0.0.1@evil.com/v1", "https://user:pass@api.clerk.com/v1", "https://api.clerk.com/v1?x=1",
		"https://api.clerk.com/v1#frag", "ftp://api.clerk.com/v1", "ws://localhost/v1", "api.clerk.com/v1", "/v1/users",
		"https:///v1", "https:api.clerk.com", "https://", "https:// api.clerk.com", "https://api.clerk.com/v 1",
		"http://localhost:99999/v1", "http://localhost:port/v1", "https://api.clerk.com/%zz",
	}
	name := "ci-apiurl-agreement"
	for _, u := range urls {
		t.Run(u, func(t *testing.T) {
			spec := with(fmt.Sprintf(`"apiURL":%q`, u))
			r := kc.run(instanceManifest(name, spec), "apply", "--dry-run=server", "-f", "-")
			if r.exitCode < 0 {
				t.Fatalf("kubectl did not run: %s", r)
			}
			crdOK := r.exitCode == 0
			goErr := instance.ValidateAPIURL(u)
			if crdOK != (goErr == nil) {
				t.Errorf("the CRD accepts %q: %v; ValidateAPIURL: %v\n%s", u, crdOK, goErr, r)
			}
			if !crdOK && !strings.Contains(r.stderr, "spec.apiURL") {
				t.Errorf("refusal does not name spec.apiURL: %s", r)
			}
		})
	}
	if _, ok := getInstance(t, name); ok {
		t.Errorf("a server-side dry run created %s", name)
	}
}

func TestClerkInstanceSampleAndColumns(t *testing.T) {
	data, err := os.ReadFile(instanceSampleFile)
	if err != nil {
		t.Fatalf("read %s: %v", instanceSampleFile, err)
	}
	var sample map[string]any
	if err := yaml.Unmarshal(data, &sample); err != nil {
		t.Fatalf("decode %s: %v", instanceSampleFile, err)
	}
	n, _ := field(sample, "metadata", "name")
	name, _ := n.(string)
	if sample["kind"] != "ClerkInstance" || name == "" {
		t.Fatalf("%s: kind %v name %q, want a named ClerkInstance", instanceSampleFile, sample["kind"], name)
	}
	// Start from scratch: another test (apply -k config/samples) may have created it already.
	mustRun(t, "", "delete", "clerkinstance", name, "--ignore-not-found", "--wait=true")
	deleteInstanceLater(t, name)
	const bare = "ci-columns-no-status"
	deleteInstanceLater(t, bare)

	checkSpec := func(t *testing.T) {
		t.Helper()
		obj, ok := getInstance(t, name)
		if !ok {
			t.Fatalf("%s does not exist", name)
		}
		if !reflect.DeepEqual(obj["spec"], sample["spec"]) {
			t.Errorf("spec %v, want the sample's %v", obj["spec"], sample["spec"])
		}
	}
	t.Run("kubectl apply", func(t *testing.T) {
		r := mustRun(t, "", "apply", "-f", instanceSampleFile)
		if !strings.Contains(r.stdout, "clerkinstance.clerk.kubeclerk.dev/"+name+" created") {
			t.Errorf("kubectl apply did not report %s created: %s", name, r)
		}
		checkSpec(t)
		r = mustRun(t, "", "apply", "-f", instanceSampleFile)
		if !strings.Contains(r.stdout, "clerkinstance.clerk.kubeclerk.dev/"+name+" unchanged") {
			t.Errorf("applying the sample again did not report %s unchanged: %s", name, r)
		}
	})
	t.Run("kubectl apply --server-side", func(t *testing.T) {
		mustRun(t, "", "apply", "--server-side", "-f", instanceSampleFile)
		checkSpec(t)
	})
	if r := applyInstance(bare, minimalSpec); r.err != nil {
		t.Fatalf("apply %s: %s", bare, r)
	}

	mustRun(t, "", "patch", "clerkinstance", name, "--subresource=status", "--type=merge", "-p", `{"status":{
		"keyType":"live","boundUsers":1204,"observedGeneration":1,
		"conditions":[{"type":"Ready","status":"True","reason":"`+instance.ReasonConnected+`",
			"message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`)
	// The status is a subresource and validated.
	r := kc.run("", "patch", "clerkinstance", name, "--subresource=status", "--type=merge", "-p", `{"status":{"keyType":"prod"}}`)
	if r.exitCode == 0 ||
		!strings.Contains(r.stderr, "status.keyType") {
		t.Errorf("status.keyType prod was not refused: %s", r)
	}

	for _, tc := range []struct{ name, resource string }{
		{"plural", "clerkinstances"},
		{"singular", "clerkinstance"},
		{"short name", "ci"},
		{"fully qualified", "clerkinstances.clerk.kubeclerk.dev"},
	} {
		t.Run("kubectl get "+tc.resource+" ("+tc.name+")", func(t *testing.T) {
			r := mustRun(t, "", "get", tc.resource, name, bare)
			header, rows := table(t, r)
			if !slices.Equal(header, wantInstanceHeader) {
				t.Errorf("header %v, want %v:\n%s", header, wantInstanceHeader, r)
			}
			age := regexp.MustCompile(`^[0-9]+[smhdy]`)
			for row, want := range map[string][]string{
				name: {name, "live", "True", "Connected", "1204"},
				bare: {bare, "", "", "", ""},
			} {
				got := rows[row]
				if len(got) != len(wantInstanceHeader) || !slices.Equal(got[:len(want)], want) || !age.MatchString(got[len(got)-1]) {
					t.Errorf("row of %s is %q, want %q followed by an age:\n%s", row, got, want, r)
				}
			}
		})
	}

	t.Run("kubectl get clerk (category)", func(t *testing.T) {
		r := mustRun(t, "", "get", "clerk", "-o", "name")
		for _, n := range []string{name, bare} {
			if !strings.Contains(r.stdout, "clerkinstance.clerk.kubeclerk.dev/"+n+"\n") {
				t.Errorf("kubectl get clerk does not list %s: %s", n, r)
			}
		}
	})
}

func TestClerkInstanceExplain(t *testing.T) {
	for _, tc := range []struct {
		path   string
		fields []string
	}{
		{"clerkinstance.spec", []string{
			"secretKeyRef", "apiURL", "requestsPerSecond", "burst", "webhookSecretRef", "namespaceSelector", "policy",
		}},
		{"ci.spec.policy", []string{
			"allowUserID", "allowCreate", "allowedDeletionPolicies", "emailDomains", "externalIDPrefixes", "protectedMetadataKeys",
		}},
		{"ci.spec.secretKeyRef", []string{"name", "key"}},
		{"ci.spec.policy.protectedMetadataKeys", []string{"public", "private", "unsafe"}},
		{"ci.status", []string{"conditions", "keyType", "boundUsers", "observedGeneration"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			var r result
			if err := eventually(readyTimeout, func() error {
				if r = kc.run("", "explain", tc.path); r.err != nil {
					return fmt.Errorf("%s", r)
				}
				return nil
			}); err != nil {
				t.Fatalf("kubectl explain %s: %v", tc.path, err)
			}
			if !strings.Contains(r.stdout, "ClerkInstance") {
				t.Errorf("kubectl explain %s does not show the kind:\n%s", tc.path, r.stdout)
			}
			got := explainFields(r.stdout)
			for _, f := range tc.fields {
				if desc, ok := got[f]; !ok || len(strings.Fields(desc)) < 4 {
					t.Errorf("kubectl explain %s: %s is missing or not documented (%q):\n%s", tc.path, f, desc, r.stdout)
				}
			}
			if len(got) != len(tc.fields) {
				t.Errorf("kubectl explain %s lists %v, want %v", tc.path, got, tc.fields)
			}
		})
	}
}

// TestClerkInstanceNameDefaultIsReserved: "default" names the manager's own key (metrics label,
// webhook path), so no ClerkInstance may take it.
func TestClerkInstanceNameDefaultIsReserved(t *testing.T) {
	deleteInstanceLater(t, "default")
	r := applyInstance("default", minimalSpec)
	if r.exitCode == 0 {
		t.Fatalf("a ClerkInstance named default was accepted: %s", r)
	}
	if !strings.Contains(r.stderr, "the name default is reserved") {
		t.Errorf("stderr does not say why: %s", r)
	}
}
