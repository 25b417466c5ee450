package charttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kubeclerk/kubeclerk/internal/controller"
	"github.com/kubeclerk/kubeclerk/internal/metrics"
)

const (
	rulesFile          = "config/prometheus/rules.yaml"
	dashboardFile      = "config/prometheus/kubeclerk-dashboard.json"
	chartDashboardFile = chartDir + "/dashboards/kubeclerk.json"
)

// controllerRuntimeMetrics are the metrics of controller-runtime, client-go and the Go and
// process collectors (all served by the manager next to kubeclerk's own) the dashboard and
// alerts may query, with their labels.
var controllerRuntimeMetrics = map[string][]string{
	"controller_runtime_reconcile_total": {"controller", "result"},
	"workqueue_depth":                    {"name", "controller", "priority"},
	"leader_election_master_status":      {"name"},
	"process_resident_memory_bytes":      nil,
	"go_memstats_heap_alloc_bytes":       nil,
}

// targetLabels are the labels Prometheus (through the ServiceMonitor) adds to every series.
var targetLabels = []string{"namespace", "pod", "job", "service", "endpoint", "container", "instance"}

// knownMetrics maps every metric name a query may use to its labels: kubeclerk's (from
// metrics.Names(), their labels read from a registry with one series of each) and
// controllerRuntimeMetrics. A histogram's _bucket, _sum and _count count as metrics.
func knownMetrics(t *testing.T) map[string][]string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New()
	if err := m.Register(reg, "v0.0.0", "abc"); err != nil {
		t.Fatal(err)
	}
	obs := m.Client("acme")
	obs.Done("GET /users/{user_id}", "429", 10*time.Millisecond)
	obs.Waited(time.Second)
	m.SetBudget("acme", 50)
	m.DriftCorrected("acme", "banned")
	m.DeletionThrottled("acme")
	m.WebhookEvent("acme", "user.updated", "accepted")
	m.CountUsers(func(context.Context) ([]metrics.UserCount, error) {
		return []metrics.UserCount{{Instance: "acme", Reason: "Synced", Ready: true, Count: 1}}, nil
	})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string][]string{}
	for _, f := range families {
		var ls []string
		if len(f.GetMetric()) > 0 {
			for _, lp := range f.GetMetric()[0].GetLabel() {
				ls = append(ls, lp.GetName())
			}
		}
		labels[f.GetName()] = ls
		if f.GetType() == dto.MetricType_HISTOGRAM {
			labels[f.GetName()+"_bucket"] = append(slices.Clone(ls), "le")
			labels[f.GetName()+"_sum"] = ls
			labels[f.GetName()+"_count"] = ls
		}
	}
	known := map[string][]string{}
	for _, n := range metrics.Names() {
		ls, ok := labels[n]
		if !ok {
			t.Errorf("metric %s of metrics.Names() has no series here: make knownMetrics produce one, so its labels are checked", n)
			continue
		}
		known[n] = ls
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if ls, ok := labels[n+suffix]; ok {
				known[n+suffix] = ls
			}
		}
	}
	maps.Copy(known, controllerRuntimeMetrics)
	return known
}

// reasons are the condition reasons kubeclerk_clerkusers may carry.
var reasons = []string{
	controller.ReasonSynced, controller.ReasonObserved, controller.ReasonProgressing, controller.ReasonUserNotFound,
	controller.ReasonUserDeleted, controller.ReasonAmbiguousUser, controller.ReasonConflict, controller.ReasonInvalidSpec,
	controller.ReasonClerkRejected, controller.ReasonClerkUnavailable, controller.ReasonRateLimited,
	controller.ReasonAuthenticationFailed, controller.ReasonDeleting, controller.ReasonNotAllowed,
	controller.ReasonInstanceNotReady, controller.ReasonDeletionThrottled,
}

// grafanaVarRE matches Grafana's interval variables, which stand where PromQL wants a duration.
var grafanaVarRE = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)

// checkQuery parses expr and checks that it queries only known metrics, with their labels.
func checkQuery(t *testing.T, where, expr string, known map[string][]string) {
	t.Helper()
	q, err := ParsePromQL(grafanaVarRE.ReplaceAllString(expr, "5m"))
	if err != nil {
		t.Errorf("%s: %v\n%s", where, err, expr)
		return
	}
	if len(q.Metrics()) == 0 && !strings.Contains(expr, "vector(") && !strings.Contains(expr, "time()") {
		t.Errorf("%s queries no metric: %s", where, expr)
	}
	allowed := slices.Clone(targetLabels)
	for _, s := range q.Selectors {
		ls, ok := known[s.Metric]
		if !ok {
			t.Errorf("%s queries %q, which is neither in metrics.Names() nor in controllerRuntimeMetrics", where, s.Metric)
			continue
		}
		allowed = append(allowed, ls...)
		for _, m := range s.Matchers {
			if m.Label != "__name__" && !slices.Contains(ls, m.Label) && !slices.Contains(targetLabels, m.Label) {
				t.Errorf("%s: %s has no label %q (it has %v)", where, s.Metric, m.Label, ls)
			}
			if m.Label == "reason" && (m.Op == "=" || m.Op == "=~") {
				for r := range strings.SplitSeq(m.Value, "|") {
					if !slices.Contains(reasons, r) {
						t.Errorf("%s: reason %q is not a condition reason of kubeclerk", where, r)
					}
				}
			}
			if m.Label == "ready" && m.Op == "=" && m.Value != "true" && m.Value != "false" {
				t.Errorf("%s: ready=%q; it is true or false", where, m.Value)
			}
		}
	}
	for _, l := range q.GroupingLabels {
		if !slices.Contains(allowed, l) {
			t.Errorf("%s groups or matches by %q, a label of none of the metrics it queries", where, l)
		}
	}
}

type alertRule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type ruleGroup struct {
	Name  string      `json:"name"`
	Rules []alertRule `json:"rules"`
}

// alertRules returns the rules of a PrometheusRule object.
func alertRules(t *testing.T, o *unstructured.Unstructured) []alertRule {
	t.Helper()
	var spec struct {
		Groups []ruleGroup `json:"groups"`
	}
	data, err := json.Marshal(o.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	var out []alertRule
	for _, g := range spec.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

var promDurationRE = regexp.MustCompile(`^(0|([0-9]+(ms|s|m|h|d|w|y))+)$`)

// TestAlertRules checks config/prometheus/rules.yaml: every expression parses and queries only
// known metrics and labels, every alert has a unique name, a duration, a severity, a summary, a
// description and a runbook link; and the chart renders the same rules with its default values.
func TestAlertRules(t *testing.T) {
	known := knownMetrics(t)
	objs := decodeObjects(t, readFile(t, rulesFile))
	if len(objs) != 1 || objs[0].GetKind() != "PrometheusRule" {
		t.Fatalf("%s: want one PrometheusRule", rulesFile)
	}
	rules := alertRules(t, objs[0])
	want := []string{"KubeclerkAuthenticationFailed", "KubeclerkBudgetNearLimit", "KubeclerkClerkRateLimited",
		"KubeclerkStalledObjects", "KubeclerkDriftCorrectionsSpiking", "KubeclerkDeletionsThrottled"}
	names := make([]string, 0, len(rules))
	for _, r := range rules {
		names = append(names, r.Alert)
		where := rulesFile + " " + r.Alert
		if r.Alert == "" {
			t.Errorf("%s: a rule without alert (recording rules belong elsewhere): %+v", rulesFile, r)
		}
		checkQuery(t, where, r.Expr, known)
		if !promDurationRE.MatchString(r.For) {
			t.Errorf("%s: for %q is not a duration", where, r.For)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
			t.Errorf("%s: severity %q", where, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: no %s annotation", where, a)
			}
		}
		for a, v := range r.Annotations {
			if strings.Count(v, "{{") != strings.Count(v, "}}") {
				t.Errorf("%s: annotation %s has unbalanced {{ }}: %s", where, a, v)
			}
		}
	}
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("alerts (-want +got):\n%s", d)
	}

	// The chart's PrometheusRule, with its default thresholds, is the same.
	chart := renderChart(t, "--set", "prometheusRule.enabled=true")
	pr := mustFind(t, chart, "PrometheusRule", releaseName+"-alerts")
	var wantSpec, gotSpec any
	wantSpec, gotSpec = objs[0].Object["spec"], pr.Object["spec"]
	if d := cmp.Diff(wantSpec, gotSpec); d != "" {
		t.Errorf("the chart's rules differ from %s (-config +chart):\n%s", rulesFile, d)
	}
}

// TestConfigPrometheus builds config/prometheus: the ServiceMonitor keeps kubeclerk's instance
// label, the rules are there, and the dashboard ConfigMap is labelled for Grafana's sidecar and
// holds the dashboard.
func TestConfigPrometheus(t *testing.T) {
	objs := renderKustomize(t, "config/prometheus")
	sm := mustFind(t, objs, "ServiceMonitor", "controller-manager-metrics-monitor")
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(endpoints) != 1 || endpoints[0].(map[string]any)["honorLabels"] != true {
		t.Errorf("ServiceMonitor endpoints %v: want one, with honorLabels: true", endpoints)
	}
	mustFind(t, objs, "PrometheusRule", "alerts")
	cm := mustFind(t, objs, "ConfigMap", "grafana-dashboard")
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v", cm.GetLabels())
	}
	data, _, _ := unstructured.NestedString(cm.Object, "data", "kubeclerk.json")
	if data != string(readFile(t, dashboardFile)) {
		t.Errorf("the dashboard ConfigMap does not hold %s", dashboardFile)
	}
}

type grafanaPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDashboard struct {
	UID        string         `json:"uid"`
	Title      string         `json:"title"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

var (
	labelValuesRE = regexp.MustCompile(`^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)
	dashVarRE     = regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)`)
)

// TestGrafanaDashboard checks the dashboard: the chart's copy is the same file, it is valid
// JSON, and every query (panels and variables) parses, queries only known metrics and labels,
// and uses only the dashboard's variables; panel IDs are unique and panels fit the 24-column grid.
func TestGrafanaDashboard(t *testing.T) {
	data := readFile(t, dashboardFile)
	if !bytes.Equal(data, readFile(t, chartDashboardFile)) {
		t.Fatalf("%s differs from %s: cp %s %s", chartDashboardFile, dashboardFile, dashboardFile, chartDashboardFile)
	}
	var dash grafanaDashboard
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("%s: no uid or title", dashboardFile)
	}
	known := knownMetrics(t)

	vars := make([]string, 0, 3+len(dash.Templating.List))
	vars = append(vars, "__rate_interval", "__interval", "__range")
	for _, v := range dash.Templating.List {
		vars = append(vars, v.Name)
	}
	checkVars := func(where, s string) {
		for _, m := range dashVarRE.FindAllStringSubmatch(s, -1) {
			if !slices.Contains(vars, m[1]) {
				t.Errorf("%s uses $%s, which is no variable of the dashboard", where, m[1])
			}
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var query string
		if err := json.Unmarshal(v.Query, &query); err != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				t.Errorf("variable %s: query %s", v.Name, v.Query)
				continue
			}
			query = obj.Query
		}
		where := fmt.Sprintf("variable %s", v.Name)
		checkVars(where, query)
		m := labelValuesRE.FindStringSubmatch(query)
		if m == nil {
			t.Errorf("%s: query %q; the test understands label_values(selector, label)", where, query)
			continue
		}
		checkQuery(t, where, m[1], known)
		if q, err := ParsePromQL(m[1]); err == nil {
			for _, metric := range q.Metrics() {
				if !slices.Contains(known[metric], m[2]) && !slices.Contains(targetLabels, m[2]) {
					t.Errorf("%s: %s has no label %s", where, metric, m[2])
				}
			}
		}
	}

	ids := map[int]bool{}
	var queries int
	var walk func([]grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			if ids[p.ID] {
				t.Errorf("panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.X < 0 || p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
				t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				where := fmt.Sprintf("panel %q %s", p.Title, tg.RefID)
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("%s: missing or repeated refId", where)
				}
				refs[tg.RefID] = true
				checkVars(where, tg.Expr)
				checkQuery(t, where, tg.Expr, known)
				queries++
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	if queries < 10 {
		t.Errorf("only %d queries in the dashboard", queries)
	}

	// Every kubeclerk metric is on the dashboard.
	for _, n := range metrics.Names() {
		if !bytes.Contains(data, []byte(n)) {
			t.Errorf("the dashboard shows nothing of %s", n)
		}
	}
}

// TestValuesSchemaIsJSON keeps values.schema.json parseable and in step with values.yaml: every
// top-level value has a schema property.
func TestValuesSchemaIsJSON(t *testing.T) {
	var schema struct {
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(readFile(t, chartDir+"/values.schema.json"), &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(readFile(t, chartDir+"/values.yaml"), &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	for k := range values {
		if _, ok := schema.Properties[k]; !ok {
			t.Errorf("values.yaml has %s, values.schema.json does not", k)
		}
	}
	for k := range schema.Properties {
		if _, ok := values[k]; !ok {
			t.Errorf("values.schema.json has %s, values.yaml does not", k)
		}
	}
}
