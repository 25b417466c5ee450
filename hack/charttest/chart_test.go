package charttest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// Objects of config/default the chart leaves out by design, and objects only the chart renders
// with its default values, each with the reason.
var (
	onlyKustomize = map[string]string{
		"Namespace//kubeclerk-system": "helm install --create-namespace creates the release namespace; a chart does not own it",
	}
	onlyChart = map[string]string{}
)

// Manager arguments only one side passes with the chart's default values, each with the reason
// (none today: the chart passes exactly config/default's).
var (
	argsOnlyKustomize = map[string]string{}
	argsOnlyChart     = map[string]string{}
)

func objectKey(o *unstructured.Unstructured) string {
	return o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
}

// TestChartMatchesConfigDefault renders config/default and the chart with its default values and
// compares what matters: the same objects (by kind, namespace and name), CRDs, RBAC rules and
// bindings, the metrics Service's ports and the manager Deployment's arguments, security
// contexts, probes, ports and volumes. The image (a placeholder in config/manager) and the
// resources (the chart's are sized from make bench) differ by design.
func TestChartMatchesConfigDefault(t *testing.T) {
	kust := renderKustomize(t, "config/default")
	chart := renderChart(t)

	kustByKey := map[string]*unstructured.Unstructured{}
	for _, o := range kust {
		kustByKey[objectKey(o)] = o
	}
	chartByKey := map[string]*unstructured.Unstructured{}
	for _, o := range chart {
		if _, dup := chartByKey[objectKey(o)]; dup {
			t.Errorf("the chart renders %s twice", objectKey(o))
		}
		chartByKey[objectKey(o)] = o
	}
	for key := range kustByKey {
		if _, ok := chartByKey[key]; !ok && onlyKustomize[key] == "" {
			t.Errorf("config/default has %s, the chart does not (add it to the chart, or to onlyKustomize with the reason)", key)
		}
	}
	for key := range chartByKey {
		if _, ok := kustByKey[key]; !ok && onlyChart[key] == "" {
			t.Errorf("the chart renders %s, config/default does not (add it to config/, or to onlyChart with the reason)", key)
		}
	}

	for key, k := range kustByKey {
		c, ok := chartByKey[key]
		if !ok {
			continue
		}
		switch k.GetKind() {
		case "CustomResourceDefinition":
			if d := cmp.Diff(k.Object, c.Object); d != "" {
				t.Errorf("%s differs (-config/default +chart):\n%s", key, d)
			}
		case "ClusterRole", "Role":
			var kr, cr rbacv1.ClusterRole // a Role's rules decode the same
			into(t, k, &kr)
			into(t, c, &cr)
			if d := cmp.Diff(ruleSet(kr.Rules), ruleSet(cr.Rules)); d != "" {
				t.Errorf("%s grants other rules (-config/default +chart):\n%s", key, d)
			}
			if !slices.Equal(sortedKeys(kr.AggregationRule), sortedKeys(cr.AggregationRule)) {
				t.Errorf("%s: aggregation rules differ", key)
			}
		case "ClusterRoleBinding", "RoleBinding":
			var kb, cb rbacv1.ClusterRoleBinding
			into(t, k, &kb)
			into(t, c, &cb)
			if d := cmp.Diff(kb.RoleRef, cb.RoleRef); d != "" {
				t.Errorf("%s: roleRef differs (-config/default +chart):\n%s", key, d)
			}
			if d := cmp.Diff(kb.Subjects, cb.Subjects); d != "" {
				t.Errorf("%s: subjects differ (-config/default +chart):\n%s", key, d)
			}
		case "Service":
			var ks, cs corev1.Service
			into(t, k, &ks)
			into(t, c, &cs)
			if d := cmp.Diff(ks.Spec.Ports, cs.Spec.Ports); d != "" {
				t.Errorf("%s: ports differ (-config/default +chart):\n%s", key, d)
			}
			checkSelects(t, key, ks.Spec.Selector, cs.Spec.Selector)
		case "Deployment":
			var kd, cd appsv1.Deployment
			into(t, k, &kd)
			into(t, c, &cd)
			compareDeployments(t, key, &kd, &cd)
		}
	}
}

// checkSelects checks that the chart's selector picks the pods config/default's picks: it has
// every label of it (the chart adds app.kubernetes.io/instance).
func checkSelects(t *testing.T, key string, kust, chart map[string]string) {
	t.Helper()
	for l, v := range kust {
		if chart[l] != v {
			t.Errorf("%s: the chart's selector has %s=%q, config/default's %s=%q", key, l, chart[l], l, v)
		}
	}
}

func compareDeployments(t *testing.T, key string, kd, cd *appsv1.Deployment) {
	t.Helper()
	if d := cmp.Diff(kd.Spec.Replicas, cd.Spec.Replicas); d != "" {
		t.Errorf("%s: replicas differ (-config/default +chart):\n%s", key, d)
	}
	checkSelects(t, key, kd.Spec.Selector.MatchLabels, cd.Spec.Selector.MatchLabels)
	checkSelects(t, key+" pod labels", kd.Spec.Template.Labels, cd.Spec.Template.Labels)
	kp, cp := kd.Spec.Template.Spec, cd.Spec.Template.Spec
	for _, c := range []struct {
		what      string
		kust, chr any
	}{
		{"pod annotations", kd.Spec.Template.Annotations, cd.Spec.Template.Annotations},
		{"pod securityContext", kp.SecurityContext, cp.SecurityContext},
		{"serviceAccountName", kp.ServiceAccountName, cp.ServiceAccountName},
		{"terminationGracePeriodSeconds", kp.TerminationGracePeriodSeconds, cp.TerminationGracePeriodSeconds},
		{"volumes", kp.Volumes, cp.Volumes},
		{"number of containers", len(kp.Containers), len(cp.Containers)},
	} {
		if d := cmp.Diff(c.kust, c.chr); d != "" {
			t.Errorf("%s: %s differ (-config/default +chart):\n%s", key, c.what, d)
		}
	}
	if len(kp.Containers) != 1 || len(cp.Containers) != 1 {
		return
	}
	k, c := kp.Containers[0], cp.Containers[0]
	for _, x := range []struct {
		what      string
		kust, chr any
	}{
		{"container name", k.Name, c.Name},
		{"command", k.Command, c.Command},
		{"container securityContext", k.SecurityContext, c.SecurityContext},
		{"livenessProbe", k.LivenessProbe, c.LivenessProbe},
		{"readinessProbe", k.ReadinessProbe, c.ReadinessProbe},
		{"startupProbe", k.StartupProbe, c.StartupProbe},
		{"ports", k.Ports, c.Ports},
		{"volumeMounts", k.VolumeMounts, c.VolumeMounts},
		{"env", k.Env, c.Env},
		{"envFrom", k.EnvFrom, c.EnvFrom},
	} {
		if d := cmp.Diff(x.kust, x.chr); d != "" {
			t.Errorf("%s: %s differ (-config/default +chart):\n%s", key, x.what, d)
		}
	}
	for _, a := range k.Args {
		if !slices.Contains(c.Args, a) && argsOnlyKustomize[a] == "" {
			t.Errorf("%s: config/default passes %s, the chart does not "+
				"(add a value for it, or list it in argsOnlyKustomize with the reason)", key, a)
		}
	}
	for _, a := range c.Args {
		if !slices.Contains(k.Args, a) && argsOnlyChart[a] == "" {
			t.Errorf("%s: the chart passes %s, config/default does not "+
				"(change the default value, or list it in argsOnlyChart with the reason)", key, a)
		}
	}
}

// ruleSet expands RBAC rules into one string per (API group, resource, verb) or
// (non-resource URL, verb), sorted, so that rules compare as sets however they are grouped.
func ruleSet(rules []rbacv1.PolicyRule) []string {
	set := map[string]bool{}
	for _, r := range rules {
		for _, v := range r.Verbs {
			for _, u := range r.NonResourceURLs {
				set["url "+u+" "+v] = true
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					names := r.ResourceNames
					if len(names) == 0 {
						names = []string{"*"}
					}
					for _, n := range names {
						set[fmt.Sprintf("%s/%s/%s %s", g, res, n, v)] = true
					}
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func sortedKeys(a *rbacv1.AggregationRule) []string {
	if a == nil {
		return nil
	}
	var out []string
	for _, s := range a.ClusterRoleSelectors {
		for k, v := range s.MatchLabels {
			out = append(out, k+"="+v)
		}
	}
	slices.Sort(out)
	return out
}

// TestChartCRDsAreCopies checks that charts/kubeclerk/crds holds exactly the generated CRDs of
// config/crd/bases, byte for byte (cp config/crd/bases/*.yaml charts/kubeclerk/crds/ after
// make manifests).
func TestChartCRDsAreCopies(t *testing.T) {
	root := repoRoot(t)
	names := func(dir string) []string {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".yaml") {
				out = append(out, e.Name())
			}
		}
		return out
	}
	gen, chart := names("config/crd/bases"), names(chartDir+"/crds")
	if !slices.Equal(gen, chart) {
		t.Fatalf("config/crd/bases has %q, %s/crds %q: run cp config/crd/bases/*.yaml %s/crds/", gen, chartDir, chart, chartDir)
	}
	for _, n := range gen {
		if !bytes.Equal(readFile(t, "config/crd/bases/"+n), readFile(t, chartDir+"/crds/"+n)) {
			t.Errorf("%s/crds/%s differs from config/crd/bases/%s: run cp config/crd/bases/*.yaml %s/crds/", chartDir, n, n, chartDir)
		}
	}
}

// nonDefaultValues turns on everything optional and sets every manager flag.
const nonDefaultValues = `
replicaCount: 2
leaderElection: {enabled: false}
image: {repository: registry.example.com/kubeclerk, tag: v9.9.9}
secretKey: {existingSecret: acme-key, key: key, mountPath: /etc/acme}
clerk: {apiURL: "http://fakeclerk:8089/v1", requestsPerSecond: 12.5, burst: 20}
syncPeriod: 5m
fullReadInterval: 1h
batchObservation: false
maxConcurrentReconciles: 8
maxDeletionsPerMinute: 0
clusterResourceNamespace: clerk-keys
privateMetadataFrom: {enabled: false}
healthProbe: {port: 9081}
metrics:
  port: 9443
  certSecret: metrics-server-cert
  certName: cert.pem
  certKey: key.pem
  enableHTTP2: true
  readerServiceAccounts: [{name: prometheus, namespace: monitoring}]
pprofBindAddress: 127.0.0.1:6060
webhooks: {enabled: true, port: 9444, secret: {existingSecret: acme-webhook, key: whsec, mountPath: /etc/whsec}}
logging: {development: false, encoder: json, level: info, stacktraceLevel: panic, timeEncoding: iso8601}
extraArgs: [--zap-log-level=debug]
extraEnv: [{name: GOMEMLIMIT, value: 200MiB}]
podAnnotations: {example.com/a: b}
podLabels: {example.com/team: platform}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: ops, effect: NoSchedule}]
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector: {matchLabels: {app.kubernetes.io/name: kubeclerk}}
priorityClassName: system-cluster-critical
podDisruptionBudget: {enabled: true}
networkPolicy: {enabled: true}
serviceAccount: {annotations: {example.com/role: kubeclerk}}
serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}, interval: 30s}
prometheusRule: {enabled: true, labels: {release: kube-prometheus-stack}, additionalAlertLabels: {team: platform}}
grafanaDashboard: {enabled: true, namespace: monitoring, annotations: {grafana_folder: kubeclerk}}
`

func writeValues(t *testing.T, values string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHelmLint runs helm lint, plain and --strict, with the default and the non-default values.
func TestHelmLint(t *testing.T) {
	values := writeValues(t, nonDefaultValues)
	for _, args := range [][]string{
		{"lint", chartDir},
		{"lint", "--strict", chartDir},
		{"lint", "--strict", chartDir, "-f", values},
		{"lint", "--strict", chartDir, "--set", "secretKey.existingSecret=,metrics.enabled=false,rbac.clerkUserRoles=false"},
		// --set gives numbers with a fraction as strings; the schema takes them.
		{"lint", "--strict", chartDir, "--set", "clerk.requestsPerSecond=12.5",
			"--set", "prometheusRule.enabled=true,prometheusRule.budgetUseThreshold=0.75"},
	} {
		if out, err := runErr(t, "helm", args...); err != nil {
			t.Error(err)
		} else if !bytes.Contains(out, []byte("0 chart(s) failed")) {
			t.Errorf("helm %s:\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestChartNonDefaultValues renders the chart with everything optional on and every flag set,
// and checks that every object is valid for its type and that the values land where they
// should.
func TestChartNonDefaultValues(t *testing.T) {
	objs := renderChart(t, "-f", writeValues(t, nonDefaultValues))
	const fullname = "kubeclerk"

	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		if o.GetAPIVersion() == "" || o.GetName() == "" {
			t.Errorf("an object without apiVersion or name: %v", o.Object)
		}
		var typed any
		clusterScoped := false
		switch o.GetKind() {
		case "CustomResourceDefinition":
			typed, clusterScoped = &apiextensionsv1.CustomResourceDefinition{}, true
		case "ClusterRole":
			typed, clusterScoped = &rbacv1.ClusterRole{}, true
		case "ClusterRoleBinding":
			typed, clusterScoped = &rbacv1.ClusterRoleBinding{}, true
		case "Role":
			typed = &rbacv1.Role{}
		case "RoleBinding":
			typed = &rbacv1.RoleBinding{}
		case "ServiceAccount":
			typed = &corev1.ServiceAccount{}
		case "Service":
			typed = &corev1.Service{}
		case "ConfigMap":
			typed = &corev1.ConfigMap{}
		case "Deployment":
			typed = &appsv1.Deployment{}
		case "NetworkPolicy":
			typed = &networkingv1.NetworkPolicy{}
		case "PodDisruptionBudget":
			typed = &policyv1.PodDisruptionBudget{}
		case "ServiceMonitor", "PrometheusRule":
			if o.GetAPIVersion() != "monitoring.coreos.com/v1" {
				t.Errorf("%s: apiVersion %s", objectKey(o), o.GetAPIVersion())
			}
		default:
			t.Errorf("unexpected kind %s", objectKey(o))
			continue
		}
		if typed != nil {
			into(t, o, typed)
		}
		if clusterScoped != (o.GetNamespace() == "") {
			t.Errorf("%s: namespace %q for a kind that is cluster-scoped=%v", objectKey(o), o.GetNamespace(), clusterScoped)
		}
	}
	for _, k := range []string{"ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget"} {
		if kinds[k] != 1 {
			t.Errorf("%d %s objects, want 1", kinds[k], k)
		}
	}
	var whs corev1.Service
	into(t, mustFind(t, objs, "Service", fullname+"-webhooks"), &whs)
	if p := whs.Spec.Ports; len(p) != 1 || p[0].Port != 9444 || p[0].TargetPort.String() != "webhooks" {
		t.Errorf("webhook Service ports %+v", p)
	}

	var d appsv1.Deployment
	into(t, mustFind(t, objs, "Deployment", fullname+"-controller-manager"), &d)
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	wantArgs := []string{
		"--metrics-bind-address=:9443", "--leader-elect", "--health-probe-bind-address=:9081",
		"--clerk-secret-key-file=/etc/acme/key", "--clerk-api-url=http://fakeclerk:8089/v1",
		"--clerk-requests-per-second=12.5", "--clerk-burst=20", "--sync-period=5m", "--full-read-interval=1h",
		"--batch-observation=false", "--max-concurrent-reconciles=8", "--max-deletions-per-minute=0",
		"--cluster-resource-namespace=clerk-keys", "--private-metadata-from=false",
		"--metrics-cert-path=/tmp/k8s-metrics-server/metrics-certs", "--metrics-cert-name=cert.pem",
		"--metrics-cert-key=key.pem", "--enable-http2", "--pprof-bind-address=127.0.0.1:6060",
		"--webhook-bind-address=:9444", "--clerk-webhook-secret-file=/etc/whsec/whsec", "--zap-devel=false", "--zap-encoder=json",
		"--zap-log-level=info", "--zap-stacktrace-level=panic", "--zap-time-encoding=iso8601",
		"--zap-log-level=debug",
	}
	if d := cmp.Diff(wantArgs, c.Args); d != "" {
		t.Errorf("manager args (-want +got):\n%s", d)
	}
	if c.Image != "registry.example.com/kubeclerk:v9.9.9" {
		t.Errorf("image %s", c.Image)
	}
	if got := c.ReadinessProbe.HTTPGet.Port.IntValue(); got != 9081 {
		t.Errorf("readiness probe port %d, want 9081", got)
	}
	mounts := make([]string, 0, len(c.VolumeMounts))
	for _, m := range c.VolumeMounts {
		mounts = append(mounts, m.Name+":"+m.MountPath)
	}
	if d := cmp.Diff([]string{"clerk-secret-key:/etc/acme", "metrics-certs:/tmp/k8s-metrics-server/metrics-certs",
		"clerk-webhook-secret:/etc/whsec"}, mounts); d != "" {
		t.Errorf("volume mounts (-want +got):\n%s", d)
	}

	// privateMetadataFrom off: no cluster-wide Secrets rule; the Secrets Role and the lease's
	// Role go to the resource namespace.
	var cr rbacv1.ClusterRole
	into(t, mustFind(t, objs, "ClusterRole", fullname+"-manager-role"), &cr)
	for _, r := range ruleSet(cr.Rules) {
		if strings.HasPrefix(r, "/secrets/") {
			t.Errorf("privateMetadataFrom.enabled=false still grants %s cluster-wide", r)
		}
	}
	for _, name := range []string{fullname + "-manager-role", fullname + "-leader-election-role"} {
		if r := mustFind(t, objs, "Role", name); r.GetNamespace() != "clerk-keys" {
			t.Errorf("Role %s in namespace %s, want clerk-keys", name, r.GetNamespace())
		}
	}
	var secrets rbacv1.Role
	into(t, mustFind(t, objs, "Role", fullname+"-manager-role"), &secrets)
	if d := cmp.Diff([]string{"/secrets/* get", "/secrets/* list", "/secrets/* watch"}, ruleSet(secrets.Rules)); d != "" {
		t.Errorf("the Secrets Role (-want +got):\n%s", d)
	}
	var reader rbacv1.ClusterRoleBinding
	into(t, mustFind(t, objs, "ClusterRoleBinding", fullname+"-metrics-reader-rolebinding"), &reader)
	if len(reader.Subjects) != 1 || reader.Subjects[0].Name != "prometheus" || reader.Subjects[0].Namespace != "monitoring" {
		t.Errorf("metrics reader subjects %+v", reader.Subjects)
	}

	sm := mustFind(t, objs, "ServiceMonitor", fullname+"-controller-manager-metrics-monitor")
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(endpoints) != 1 || endpoints[0].(map[string]any)["honorLabels"] != true {
		t.Errorf("ServiceMonitor endpoints %v: want one, with honorLabels: true", endpoints)
	}
	if sm.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %v", sm.GetLabels())
	}

	pr := mustFind(t, objs, "PrometheusRule", fullname+"-alerts")
	for _, r := range alertRules(t, pr) {
		if r.Labels["team"] != "platform" || r.Labels["severity"] == "" {
			t.Errorf("alert %s labels %v: want severity and the additional team=platform", r.Alert, r.Labels)
		}
	}

	var cm corev1.ConfigMap
	into(t, mustFind(t, objs, "ConfigMap", fullname+"-grafana-dashboard"), &cm)
	if cm.Namespace != "monitoring" || cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "kubeclerk" {
		t.Errorf("dashboard ConfigMap %s/%s labels %v annotations %v", cm.Namespace, cm.Name, cm.Labels, cm.Annotations)
	}
	dashboard := readFile(t, chartDir+"/dashboards/kubeclerk.json")
	if strings.TrimSpace(cm.Data["kubeclerk.json"]) != strings.TrimSpace(string(dashboard)) {
		t.Errorf("the dashboard ConfigMap does not hold %s/dashboards/kubeclerk.json", chartDir)
	}
	if !json.Valid([]byte(cm.Data["kubeclerk.json"])) {
		t.Errorf("the dashboard ConfigMap holds invalid JSON")
	}
}

// TestChartWithoutKey renders the chart without a key of the manager's own: no flag, no volume.
func TestChartWithoutKey(t *testing.T) {
	objs := renderChart(t, "--set", "secretKey.existingSecret=")
	var d appsv1.Deployment
	into(t, mustFind(t, objs, "Deployment", "kubeclerk-controller-manager"), &d)
	spec := d.Spec.Template.Spec
	if len(spec.Volumes) != 0 || len(spec.Containers[0].VolumeMounts) != 0 {
		t.Errorf("volumes %v, mounts %v: want none", spec.Volumes, spec.Containers[0].VolumeMounts)
	}
	for _, a := range spec.Containers[0].Args {
		if strings.HasPrefix(a, "--clerk-secret-key-file") {
			t.Errorf("arg %s without a key", a)
		}
	}
}

// chartNotSet lists the manager's flags the chart has no value for, with the reason.
var chartNotSet = map[string]string{
	"version": "prints the version and exits",
}

var chartFlagRE = regexp.MustCompile(`- --([a-z0-9-]+)`)

// TestChartSetsEveryManagerFlag checks that templates/_helpers.tpl passes each flag the manager
// defines (cmd/manager/main.go and controller-runtime's --zap-* flags) from a value, and no flag
// the manager does not have.
func TestChartSetsEveryManagerFlag(t *testing.T) {
	flags := managerFlags(t)
	tpl := string(readFile(t, chartDir+"/templates/_helpers.tpl"))
	inChart := map[string]bool{}
	for _, m := range chartFlagRE.FindAllStringSubmatch(tpl, -1) {
		inChart[m[1]] = true
	}
	for _, f := range flags {
		if !inChart[f] && chartNotSet[f] == "" {
			t.Errorf("the manager has --%s and the chart sets it from no value: add a value (values.yaml, "+
				"values.schema.json) and pass it in templates/_helpers.tpl", f)
		}
	}
	for f := range inChart {
		if !slices.Contains(flags, f) {
			t.Errorf("the chart passes --%s, which the manager does not have", f)
		}
	}
}

// managerFlags lists the flags cmd/manager defines: the flag.XxxVar and flag.Xxx calls of
// main.go, and zap.Options.BindFlags's.
func managerFlags(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, filepath.Join(repoRoot(t), "cmd/manager/main.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	ast.Inspect(file, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "flag" {
			return true
		}
		idx := 0
		if strings.HasSuffix(sel.Sel.Name, "Var") {
			idx = 1
		}
		if len(call.Args) <= idx {
			return true
		}
		if lit, ok := call.Args[idx].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			name, err := strconv.Unquote(lit.Value)
			if err == nil {
				flags = append(flags, name)
			}
		}
		return true
	})
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in cmd/manager/main.go: %v", len(flags), flags)
	}
	fs := flag.NewFlagSet("zap", flag.ContinueOnError)
	(&zap.Options{}).BindFlags(fs)
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
	return flags
}
