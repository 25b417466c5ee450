package argocd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// fluxKustomization is the Flux Kustomization whose healthCheckExprs the README recommends.
var fluxKustomization = filepath.Join("..", "..", "config", "flux", "kustomization-clerkusers.yaml")

// gitOpsStatus is how kstatus and Flux see a testdata object of the health checks.
type gitOpsStatus struct {
	// kstatus is what sigs.k8s.io/cli-utils kstatus computes (status.Compute): what kubectl-style
	// tools and Flux without healthCheckExprs wait for.
	kstatus status.Status
	// flux is what Flux's kustomize-controller computes with the healthCheckExprs of
	// fluxKustomization (wait: true passes on Current, fails on Failed, waits otherwise).
	flux status.Status
}

// wantGitOps holds, for every testdata object (<kind>/<file name>), its kstatus and Flux status,
// as the README's "Argo CD, Flux and kstatus" section documents them.
var wantGitOps = map[string]gitOpsStatus{
	"ClerkUser/synced":         {status.CurrentStatus, status.CurrentStatus},
	"ClerkUser/observed":       {status.CurrentStatus, status.CurrentStatus},
	"ClerkUser/user-not-found": {status.InProgressStatus, status.CurrentStatus}, // Ready=False: kstatus cannot tell it is the steady state

	"ClerkUser/progressing":           {status.InProgressStatus, status.InProgressStatus},
	"ClerkUser/clerk-unavailable":     {status.InProgressStatus, status.InProgressStatus},
	"ClerkUser/rate-limited":          {status.InProgressStatus, status.InProgressStatus},
	"ClerkUser/authentication-failed": {status.InProgressStatus, status.InProgressStatus},
	"ClerkUser/instance-not-ready":    {status.InProgressStatus, status.InProgressStatus},
	"ClerkUser/unknown-reason":        {status.InProgressStatus, status.InProgressStatus},

	"ClerkUser/invalid-spec":   {status.FailedStatus, status.FailedStatus},
	"ClerkUser/clerk-rejected": {status.FailedStatus, status.FailedStatus},
	"ClerkUser/ambiguous-user": {status.FailedStatus, status.FailedStatus},
	"ClerkUser/conflict":       {status.FailedStatus, status.FailedStatus},
	"ClerkUser/user-deleted":   {status.FailedStatus, status.FailedStatus},
	"ClerkUser/not-allowed":    {status.FailedStatus, status.FailedStatus},

	// kstatus takes an object without status for Current (it cannot know a controller will
	// write one); Flux's expressions cannot be evaluated until status exists, so it waits.
	"ClerkUser/no-status":                        {status.CurrentStatus, status.UnknownStatus},
	"ClerkUser/stale-generation":                 {status.InProgressStatus, status.InProgressStatus},
	"ClerkUser/stale-status-observed-generation": {status.InProgressStatus, status.InProgressStatus},
	"ClerkUser/stale-stalled":                    {status.InProgressStatus, status.InProgressStatus},

	// Flux waits for deletions with kstatus (WaitForSetTermination), not with the expressions.
	"ClerkUser/deleting":                   {status.TerminatingStatus, status.InProgressStatus},
	"ClerkUser/deleting-throttled":         {status.TerminatingStatus, status.InProgressStatus},
	"ClerkUser/deleting-clerk-unavailable": {status.TerminatingStatus, status.InProgressStatus},

	// ClerkInstance needs no expressions: Flux uses kstatus.
	"ClerkInstance/connected":                        {status.CurrentStatus, status.CurrentStatus},
	"ClerkInstance/secret-not-found":                 {status.InProgressStatus, status.InProgressStatus},
	"ClerkInstance/secret-key-missing":               {status.InProgressStatus, status.InProgressStatus},
	"ClerkInstance/clerk-unavailable":                {status.InProgressStatus, status.InProgressStatus},
	"ClerkInstance/unknown-reason":                   {status.InProgressStatus, status.InProgressStatus},
	"ClerkInstance/secret-malformed":                 {status.FailedStatus, status.FailedStatus},
	"ClerkInstance/authentication-failed":            {status.FailedStatus, status.FailedStatus},
	"ClerkInstance/invalid-spec":                     {status.FailedStatus, status.FailedStatus},
	"ClerkInstance/no-status":                        {status.CurrentStatus, status.CurrentStatus},
	"ClerkInstance/stale-generation":                 {status.InProgressStatus, status.InProgressStatus},
	"ClerkInstance/stale-status-observed-generation": {status.InProgressStatus, status.InProgressStatus},
	"ClerkInstance/stale-stalled":                    {status.InProgressStatus, status.InProgressStatus},
	"ClerkInstance/deleting":                         {status.TerminatingStatus, status.TerminatingStatus},
}

// TestKstatusAndFlux computes the kstatus and Flux status of every testdata object and checks
// them against wantGitOps, so that the README's account of kstatus and Flux stays true.
func TestKstatusAndFlux(t *testing.T) {
	flux := loadFluxHealthChecks(t)
	if _, ok := flux[schema.GroupKind{Group: "clerk.kubeclerk.dev", Kind: "ClerkUser"}]; !ok {
		t.Fatalf("%s has no healthCheckExprs for ClerkUser", fluxKustomization)
	}
	seen := map[string]bool{}
	for _, c := range loadChecks(t) {
		files, err := filepath.Glob(filepath.Join(c.Dir, "testdata", "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			name := c.Kind + "/" + strings.TrimSuffix(filepath.Base(f), ".yaml")
			seen[name] = true
			want, ok := wantGitOps[name]
			if !ok {
				t.Errorf("%s: no kstatus and Flux status in wantGitOps", name)
				continue
			}
			obj := readObject(t, c, f)
			res, err := status.Compute(obj)
			if err != nil {
				t.Fatalf("%s: kstatus: %v", name, err)
			}
			if res.Status != want.kstatus {
				t.Errorf("%s: kstatus %s (%s), want %s", name, res.Status, res.Message, want.kstatus)
			}
			if got := flux.status(t, obj); got != want.flux {
				t.Errorf("%s: Flux %s, want %s", name, got, want.flux)
			}
		}
	}
	for name := range wantGitOps {
		if !seen[name] {
			t.Errorf("wantGitOps holds %s, which is no testdata object", name)
		}
	}
}

// fluxHealthChecks are the CEL health check expressions of a Flux Kustomization, by group and kind.
type fluxHealthChecks map[schema.GroupKind]fluxExprs

type fluxExprs struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	InProgress string `json:"inProgress"`
	Failed     string `json:"failed"`
	Current    string `json:"current"`
}

func loadFluxHealthChecks(t *testing.T) fluxHealthChecks {
	t.Helper()
	data, err := os.ReadFile(fluxKustomization)
	if err != nil {
		t.Fatal(err)
	}
	var ks struct {
		Spec struct {
			Wait             bool        `json:"wait"`
			HealthCheckExprs []fluxExprs `json:"healthCheckExprs"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &ks); err != nil {
		t.Fatalf("%s: %v", fluxKustomization, err)
	}
	if !ks.Spec.Wait {
		t.Errorf("%s does not set wait: true", fluxKustomization)
	}
	checks := fluxHealthChecks{}
	for _, e := range ks.Spec.HealthCheckExprs {
		gv, err := schema.ParseGroupVersion(e.APIVersion)
		if err != nil {
			t.Fatalf("%s: %v", fluxKustomization, err)
		}
		if e.Current == "" {
			t.Errorf("%s: %s has no current expression, which Flux requires", fluxKustomization, e.Kind)
		}
		for _, expr := range []string{e.InProgress, e.Failed, e.Current} {
			if _, err := parseFluxExpr(expr); expr != "" && err != nil {
				t.Errorf("%s: %v", fluxKustomization, err)
			}
		}
		checks[schema.GroupKind{Group: gv.Group, Kind: e.Kind}] = e
	}
	return checks
}

// status computes the status Flux's kustomize-controller gives obj: the healthCheckExprs of
// its kind as fluxcd/pkg runtime/cel evaluates them (StatusEvaluator.Evaluate), else kstatus.
// An expression that cannot be evaluated makes the status Unknown, which Flux waits on.
func (f fluxHealthChecks) status(t *testing.T, obj *unstructured.Unstructured) status.Status {
	t.Helper()
	e, ok := f[obj.GroupVersionKind().GroupKind()]
	if !ok {
		res, err := status.Compute(obj)
		if err != nil {
			t.Fatal(err)
		}
		return res.Status
	}
	observed, found, err := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	if err == nil && found && observed != obj.GetGeneration() {
		return status.InProgressStatus
	}
	for _, step := range []struct {
		expr   string
		status status.Status
	}{{e.InProgress, status.InProgressStatus}, {e.Failed, status.FailedStatus}, {e.Current, status.CurrentStatus}} {
		if step.expr == "" {
			continue
		}
		ok, err := evalFluxExpr(step.expr, obj.Object)
		if err != nil {
			return status.UnknownStatus
		}
		if ok {
			return step.status
		}
	}
	return status.InProgressStatus
}

// parseFluxExpr parses a CEL expression in the environment of fluxcd/pkg runtime/cel
// (NewExpression without WithCompile): parsed, not type-checked; the object's top-level fields
// are its variables.
func parseFluxExpr(expr string) (cel.Program, error) {
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
	if err != nil {
		return nil, err
	}
	ast, issues := env.Parse(expr)
	if issues != nil && issues.Err() != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, issues.Err())
	}
	return env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
}

// evalFluxExpr evaluates a CEL expression on obj as Flux does (Expression.EvaluateBoolean).
func evalFluxExpr(expr string, obj map[string]any) (bool, error) {
	prog, err := parseFluxExpr(expr)
	if err != nil {
		return false, err
	}
	val, _, err := prog.ContextEval(context.Background(), obj)
	if err != nil {
		return false, err
	}
	b, ok := val.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%s is a %s, not a bool", expr, val.Type())
	}
	return bool(b), nil
}
