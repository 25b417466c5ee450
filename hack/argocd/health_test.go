package argocd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// customizations is kubeclerk's resource_customizations directory, in Argo CD's layout.
var customizations = filepath.Join("..", "..", "config", "argocd", "resource_customizations")

// wantChecks are the health checks kubeclerk ships: one per kind.
var wantChecks = []string{"clerk.kubeclerk.dev/ClerkInstance", "clerk.kubeclerk.dev/ClerkUser"}

// healthTests is a health_test.yaml, as Argo CD's util/lua/health_test.go reads it.
type healthTests struct {
	Tests []healthTest `json:"tests"`
}

type healthTest struct {
	HealthStatus HealthStatus `json:"healthStatus"`
	InputPath    string       `json:"inputPath"`
}

// loadChecks returns kubeclerk's health checks, and fails unless they are the ones it ships.
func loadChecks(t *testing.T) []Check {
	t.Helper()
	checks, err := LoadChecks(customizations)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, 0, len(checks))
	for _, c := range checks {
		got = append(got, c.Group+"/"+c.Kind)
	}
	if !slices.Equal(got, wantChecks) {
		t.Fatalf("health checks in %s: %v, want %v", customizations, got, wantChecks)
	}
	return checks
}

// readHealthTests reads the health_test.yaml next to a check. Unlike Argo CD it is strict, so a
// misspelt field fails instead of leaving a case without expectation.
func readHealthTests(t *testing.T, c Check) []healthTest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(c.Dir, "health_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ht healthTests
	if err := yaml.UnmarshalStrict(data, &ht); err != nil {
		t.Fatalf("%s/health_test.yaml: %v", c.Dir, err)
	}
	if len(ht.Tests) == 0 {
		t.Fatalf("%s/health_test.yaml has no tests", c.Dir)
	}
	return ht.Tests
}

// readObject reads a testdata manifest as the Kubernetes client decodes objects (integers are
// int64, as the Argo CD controller sees them), and checks that it is of the check's kind.
func readObject(t *testing.T, c Check, path string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if gk := u.GroupVersionKind().GroupKind(); gk != (schema.GroupKind{Group: c.Group, Kind: c.Kind}) {
		t.Fatalf("%s holds a %s, want a %s/%s", path, gk, c.Group, c.Kind)
	}
	return u
}

// TestHealthChecks runs every case of every health_test.yaml, as Argo CD's own test does, both
// as an argocd-cm customization (no Lua standard library) and as a check bundled with Argo CD
// (standard library open), and checks that every testdata file is a case.
func TestHealthChecks(t *testing.T) {
	for _, c := range loadChecks(t) {
		t.Run(c.Kind, func(t *testing.T) {
			tests := readHealthTests(t, c)
			used := map[string]bool{}
			for _, tc := range tests {
				if used[tc.InputPath] {
					t.Errorf("%s is used by two cases", tc.InputPath)
				}
				used[tc.InputPath] = true
				obj := readObject(t, c, filepath.Join(c.Dir, tc.InputPath))
				for _, openLibs := range []bool{false, true} {
					got, err := Health(c.Script, obj.Object, openLibs)
					if err != nil {
						t.Errorf("%s (openLibs=%t): %v", tc.InputPath, openLibs, err)
						continue
					}
					if got != tc.HealthStatus {
						t.Errorf("%s (openLibs=%t):\n got %s %q\nwant %s %q", tc.InputPath, openLibs,
							got.Status, got.Message, tc.HealthStatus.Status, tc.HealthStatus.Message)
					}
				}
			}
			files, err := filepath.Glob(filepath.Join(c.Dir, "testdata", "*.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if rel := "testdata/" + filepath.Base(f); !used[rel] {
					t.Errorf("%s is not a case of health_test.yaml", rel)
				}
			}
		})
	}
}

// TestHealthCasesCatchMutations breaks each mapping of the health checks in turn and checks
// that some health_test.yaml case fails, so that no mapping goes untested.
func TestHealthCasesCatchMutations(t *testing.T) {
	common := []struct{ name, from, to string }{
		{"Stalled is not Degraded", `hs.status = "Degraded"`, `hs.status = "Progressing"`},
		{"Ready=True is not Healthy", "if ready.status == \"True\" then\n  hs.status = \"Healthy\"",
			"if ready.status == \"True\" then\n  hs.status = \"Suspended\""},
		{"stale Ready counts", `ready == nil or number(ready.observedGeneration) < generation`, `ready == nil`},
		{"stale status.observedGeneration counts", `number(obj.status.observedGeneration) < generation`, `false`},
		{"deletion is ignored", `obj.metadata.deletionTimestamp ~= nil`, `false`},
		{"messages lose their reason", `return reason .. ": " .. c.message`, `return c.message`},
		{"waiting says no generation", `"Waiting for kubeclerk to observe generation " .. generation`, `"Waiting for kubeclerk"`},
		{"unknown Ready=False is Healthy", "hs.status = \"Progressing\"\nhs.message = describe(ready)\nreturn hs\n",
			"hs.status = \"Healthy\"\nhs.message = describe(ready)\nreturn hs\n"},
	}
	// A ClerkInstance always records its generation in status.observedGeneration, so there
	// Reconciling=True and the fallback for an unknown Ready=False agree: no mutation of its
	// Reconciling branch can be caught.
	perKind := map[string][]struct{ name, from, to string }{
		"ClerkUser": {
			{"Reconciling is ignored", `c.type == "Reconciling"`, `c.type == "Reconciling-"`},
			{"deletion hides its reason", `    hs.message = ready.message`, `    hs.message = "Deleting"`},
			{"UserNotFound is not Healthy", `ready.reason == "UserNotFound"`, `false`},
			{"UserNotFound is Suspended", "if ready.reason == \"UserNotFound\" then\n  hs.status = \"Healthy\"",
				"if ready.reason == \"UserNotFound\" then\n  hs.status = \"Suspended\""},
		},
	}
	for _, c := range loadChecks(t) {
		tests := readHealthTests(t, c)
		for _, m := range append(slices.Clone(common), perKind[c.Kind]...) {
			t.Run(c.Kind+"/"+m.name, func(t *testing.T) {
				if strings.Count(c.Script, m.from) != 1 {
					t.Fatalf("the mutation does not apply: %q occurs %d times in %s/health.lua", m.from, strings.Count(c.Script, m.from), c.Kind)
				}
				mutant := strings.Replace(c.Script, m.from, m.to, 1)
				for _, tc := range tests {
					obj := readObject(t, c, filepath.Join(c.Dir, tc.InputPath))
					if got, err := Health(mutant, obj.Object, false); err != nil || got != tc.HealthStatus {
						return // caught
					}
				}
				t.Errorf("no case of %s/health_test.yaml fails when %s", c.Kind, m.name)
			})
		}
	}
}

// TestHealthHarness checks that Health treats scripts as Argo CD does.
func TestHealthHarness(t *testing.T) {
	obj := map[string]any{"metadata": map[string]any{"name": "x", "generation": int64(3)}, "spec": map[string]any{"n": 1.5}}
	for _, tc := range []struct {
		name     string
		script   string
		openLibs bool
		want     HealthStatus
		wantErr  string
	}{
		{name: "result", script: `return {status = "Healthy", message = obj.metadata.name .. " " .. obj.metadata.generation}`,
			want: HealthStatus{Status: StatusHealthy, Message: "x 3"}},
		{name: "float", script: `return {status = "Progressing", message = "" .. obj.spec.n}`,
			want: HealthStatus{Status: StatusProgressing, Message: "1.5"}},
		{name: "no message", script: `return {status = "Suspended"}`, want: HealthStatus{Status: StatusSuspended}},
		{name: "invalid status", script: `return {status = "Fine"}`, want: HealthStatus{Status: StatusUnknown, Message: invalidHealthStatus}},
		{name: "nil", script: `return nil`},
		{name: "empty table", script: `return {}`},
		{name: "not a table", script: `return "Healthy"`, wantErr: "expect table output"},
		{name: "message not a string", script: `return {status = "Healthy", message = 1}`, wantErr: "not a string"},
		{name: "runtime error", script: `return obj.status.conditions`, wantErr: "attempt to index"},
		{name: "string library closed", script: `return {status = string.upper("healthy")}`, wantErr: "string"},
		{name: "string library open", script: `return {status = "H" .. string.sub("xealthy", 2)}`, openLibs: true,
			want: HealthStatus{Status: StatusHealthy}},
		{name: "table library", script: `local t = {"a", "b"}; return {status = "Healthy", message = table.concat(t, ",")}`,
			want: HealthStatus{Status: StatusHealthy, Message: "a,b"}},
		{name: "endless loop", script: `while true do end`, wantErr: "context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Health(tc.script, obj, tc.openLibs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
