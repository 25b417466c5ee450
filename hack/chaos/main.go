// Command chaos checks that kubeclerk keeps its promises while Clerk, the manager and the
// control plane fail. It starts an envtest control plane, cmd/fakeclerk behind a recording
// proxy, and two bin/manager replicas with leader election, kept running the way a Deployment
// keeps its pods. It applies N ClerkUsers that exercise every kind of write (adoption by ID and
// by identifier, creates whose responses get lost, profile and metadata changes with Merge and
// Replace while a simulated application writes keys of its own, ban/unban, lock/unlock,
// mfa.disabled and MFA reset tokens, deletions with each policy), then runs phases: each changes
// a third of the specs, deletes and creates a few objects, and runs one fault while that
// converges:
//
//	throttle   10% of requests answered 429 with Retry-After
//	errors     5% 500s and 5% 503s, half of the 503s with an HTML body
//	lost       10% of responses on every write route dropped after the write was applied
//	outage     every Clerk call fails for 60 s
//	failover   the leader SIGKILLed at 50% of the rollout
//	restarts   a random replica SIGKILLed every 5-20 s
//	apiserver  kube-apiserver restarted at 30% of the rollout
//	all        all of the above at half rates
//
// After each phase, with faults cleared, it waits for convergence and checks, from the fake's
// state and the Kubernetes API alone: every ClerkUser Ready for its latest generation within a
// bound; Clerk holds what each spec declares and the application's keys survived; no duplicate
// users, no orphans; each reset token removed MFA exactly once; the peak request rate within the
// budget; no hot loop during the outage. The proxy sees every request of the replicas (the
// application and the checks talk to the fake directly).
//
//	make chaos          # N=500, every phase (about 20 minutes on 2 cores)
//	make chaos-short    # N=80, the all phase (under 5 minutes)
//
// Output: a table per phase on stdout, OUT/result.json, and logs under OUT/. The exit status
// is 1 when an invariant failed, 2 for bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// key is the secret key of the fake and the manager: a live key, Clerk's production limit.
const key = "sk_live_kubeclerkchaos"

// clerkLimitPer10s is Clerk's limit for a live key, which the fake enforces.
const clerkLimitPer10s = 1000

type options struct {
	users           int
	phases          []string
	out             string
	crdDir          string
	managerBin      string
	fakeBin         string
	latency         time.Duration
	syncPeriod      time.Duration
	appRate         float64
	outage          time.Duration
	faultCap        time.Duration
	convergeTimeout time.Duration
	rps             float64
	burst           int
	seed            uint64
	managerArgs     []string
}

// budget is the manager's client-side rate: --clerk-requests-per-second, or its default for a
// live key (half of Clerk's limit).
func (o options) budget() float64 {
	if o.rps > 0 {
		return o.rps
	}
	return float64(clerkLimitPer10s) / 10 / 2
}

// burstOrDefault is the manager's burst: --clerk-burst, or its default of one second's worth.
func (o options) burstOrDefault() int {
	if o.burst > 0 {
		return o.burst
	}
	return max(1, int(o.budget()+0.999))
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.IntVar(&o.users, "n", 500, "number of ClerkUsers")
	phases := fs.String("phases", strings.Join(allPhases, ","), "phases to run after the initial one, in order: "+
		strings.Join(allPhases, ", "))
	fs.StringVar(&o.out, "out", "bin/chaos", "output directory")
	fs.StringVar(&o.crdDir, "crd-dir", "config/crd/bases", "directory of the CRDs")
	fs.StringVar(&o.managerBin, "manager", "bin/manager", "manager binary")
	fs.StringVar(&o.fakeBin, "fakeclerk", "bin/fakeclerk", "fake Clerk API binary")
	fs.DurationVar(&o.latency, "latency", 50*time.Millisecond, "latency the fake adds to every response")
	fs.DurationVar(&o.syncPeriod, "sync-period", 2*time.Minute, "manager --sync-period")
	fs.Float64Var(&o.appRate, "app-rate", 2, "metadata writes per second of the simulated application")
	fs.DurationVar(&o.outage, "outage", time.Minute, "length of the outage phase (the all phase has half)")
	fs.DurationVar(&o.faultCap, "fault-cap", 3*time.Minute, "longest a fault window waits for the rollout to converge")
	fs.DurationVar(&o.convergeTimeout, "converge-timeout", 10*time.Minute, "longest wait for convergence after faults cleared")
	fs.Float64Var(&o.rps, "rps", 0, "manager --clerk-requests-per-second; 0 = the manager's default (50/s for a live key)")
	fs.IntVar(&o.burst, "burst", 0, "manager --clerk-burst; 0 = the manager's default")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the workload")
	fs.Var((*stringList)(&o.managerArgs), "manager-arg", "extra manager flag (repeatable)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.users < 10 {
		return o, errors.New("-n must be at least 10")
	}
	if o.appRate <= 0 {
		return o, errors.New("-app-rate must be positive")
	}
	for p := range strings.SplitSeq(*phases, ",") {
		switch p = strings.TrimSpace(p); {
		case p == "" || p == phaseInitial:
		case slices.Contains(allPhases, p):
			o.phases = append(o.phases, p)
		default:
			return o, fmt.Errorf("-phases: unknown phase %q (want %s)", p, strings.Join(allPhases, ", "))
		}
	}
	return o, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	res, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	if !res.Pass {
		fmt.Fprintln(os.Stderr, "chaos: invariants failed; see the findings above and", filepath.Join(o.out, "result.json"))
		os.Exit(1)
	}
}

var started = time.Now()

func logf(format string, args ...any) {
	now := time.Now()
	fmt.Fprintf(os.Stderr, "chaos %s %6.1fs: "+format+"\n",
		append([]any{now.UTC().Format("15:04:05.000"), now.Sub(started).Seconds()}, args...)...)
}

// harness holds everything a run started.
type harness struct {
	o     options
	cp    *controlPlane
	c     client.Client
	w     *watcher
	fake  *fakeAPI
	px    *proxy
	fl    *fleet
	app   *app
	wl    *workload
	flags []string
	// before holds the users as the last check saw them.
	before map[string]*FakeUser
	// Counters at the end of the last phase.
	kills, exits, appWrites, appFailures int
	// stops end what start began, last first.
	stops []func()
	// dumped is how many recorded calls are in OUT/calls.jsonl.
	dumped int
	// stalls notes, per phase, a leader that made no Clerk call while objects waited.
	stalls map[string]string
}

func run(ctx context.Context, o options) (*Result, error) {
	// controller-runtime's own logs (the watcher's informer) report nothing the harness does
	// not: a watch broken by the apiserver restart, or ended at the stop.
	log.SetLogger(logr.Discard())
	for _, bin := range []string{o.managerBin, o.fakeBin} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%s: %w (run 'make build' first)", bin, err)
		}
	}
	if err := os.RemoveAll(o.out); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	t0 := time.Now()
	h := &harness{o: o, wl: newWorkload(o.seed), stalls: map[string]string{}}
	h.wl.initial(o.users)
	seedPath := filepath.Join(o.out, "seed.json")
	b, err := json.Marshal(h.wl.seed)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(seedPath, b, 0o600); err != nil {
		return nil, err
	}
	defer h.stop()
	if err := h.start(ctx, seedPath); err != nil {
		return nil, err
	}

	res := &Result{Config: Config{Users: o.users, Phases: append([]string{phaseInitial}, o.phases...), Replicas: 2,
		KeyType: "sk_live_", ClerkLimitPer10s: clerkLimitPer10s, BudgetRPS: o.budget(), Burst: o.burstOrDefault(),
		LatencyMS: o.latency.Milliseconds(), SyncPeriod: o.syncPeriod.String(), AppWritesPerSec: o.appRate,
		Outage: o.outage.String(), Seed: o.seed, ManagerFlags: h.flags, CPUs: runtime.NumCPU(),
		Date: time.Now().UTC().Format(time.RFC3339), Command: strings.Join(os.Args, " ")}}
	defs := phaseDefs(o)
	for _, name := range res.Config.Phases {
		p, err := h.runPhase(ctx, defs[name])
		if err != nil {
			return nil, fmt.Errorf("phase %s: %w", name, err)
		}
		res.Phases = append(res.Phases, p)
		logf("[%s] %s: converged %.1fs after faults cleared (bound %.1fs), %d calls, %d findings", name,
			map[bool]string{true: "PASS", false: "FAIL"}[p.Pass], p.ConvergeSeconds, p.BoundSeconds, p.Calls, len(p.Findings)+p.FindingsOmitted)
	}
	res.Pass = true
	for _, p := range res.Phases {
		res.Pass = res.Pass && p.Pass
	}
	res.WallSeconds = round(time.Since(t0).Seconds(), 1)
	h.fl.mu.Lock()
	res.Events = slices.Clone(h.fl.events)
	h.fl.mu.Unlock()
	out, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	jsonPath := filepath.Join(o.out, "result.json")
	if err := os.WriteFile(jsonPath, append(out, '\n'), 0o644); err != nil {
		return nil, err
	}
	printTable(os.Stdout, res)
	fmt.Printf("\nN=%d, %d phases in %.0fs. JSON: %s   logs: %s/\n", o.users, len(res.Phases), res.WallSeconds, jsonPath, o.out)
	return res, nil
}

// start brings up the control plane, the fake and its proxy, the watcher, the manager
// replicas and the application.
func (h *harness) start(ctx context.Context, seedPath string) error {
	o := h.o
	logf("starting envtest")
	cp, err := startControlPlane(o.crdDir, o.out)
	if err != nil {
		return err
	}
	h.cp = cp
	scheme, err := newScheme()
	if err != nil {
		return err
	}
	if h.c, err = client.New(cp.cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if err := ensureNamespaces(ctx, h.c, chaosNamespace, managerNamespace); err != nil {
		return err
	}
	// The watch ends before the control plane: an open watch makes kube-apiserver wait.
	watchCtx, stopWatch := context.WithCancel(ctx)
	h.stops = append(h.stops, stopWatch)
	if h.w, err = startWatcher(watchCtx, cp.cfg, scheme, chaosNamespace); err != nil {
		return err
	}

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	fake, err := startProcess("fakeclerk", o.fakeBin, []string{"--addr", addr, "--secret-key", key, "--seed", seedPath,
		"--rate-limit", fmt.Sprint(clerkLimitPer10s), "--latency", o.latency.String()}, nil, filepath.Join(o.out, "fakeclerk.log"), "")
	if err != nil {
		return err
	}
	h.stops = append(h.stops, fake.stop)
	if err := fake.waitForLine(ctx, "listening on", time.Minute); err != nil {
		return err
	}
	h.fake = newFakeAPI("http://"+addr, key)
	if h.before, err = h.usersByID(ctx); err != nil {
		return err
	}
	if h.px, err = startProxy("http://"+addr, 2); err != nil {
		return err
	}

	h.flags = []string{"--leader-elect", "--sync-period", o.syncPeriod.String(), "--cluster-resource-namespace", managerNamespace,
		"--metrics-bind-address", "0", "--zap-log-level=info"}
	if o.rps > 0 {
		h.flags = append(h.flags, fmt.Sprintf("--clerk-requests-per-second=%g", o.rps))
	}
	if o.burst > 0 {
		h.flags = append(h.flags, fmt.Sprintf("--clerk-burst=%d", o.burst))
	}
	h.flags = append(h.flags, o.managerArgs...)
	args := func(slot int) []string {
		probe, err := freeAddr()
		if err != nil {
			probe = "0"
		}
		return append([]string{"--kubeconfig", cp.kubeconfig, "--clerk-api-url", h.px.url(slot),
			"--health-probe-bind-address", probe}, h.flags...)
	}
	help, _ := exec.CommandContext(ctx, o.managerBin, "--help").CombinedOutput()
	h.fl = startFleet(ctx, 2, o.managerBin, o.out, []string{"CLERK_SECRET_KEY=" + key}, args,
		strings.Contains(string(help), "pprof-bind-address"))
	slot, err := h.fl.waitLeader(ctx, 2*time.Minute)
	if err != nil {
		return err
	}
	logf("replica %d leads", slot)
	h.app = newApp(h.fake, o.appRate, h.wl.exp, o.seed)
	appCtx, stopApp := context.WithCancel(ctx)
	h.stops = append(h.stops, stopApp)
	go h.app.loop(appCtx)
	return nil
}

func (h *harness) usersByID(ctx context.Context) (map[string]*FakeUser, error) {
	users, err := h.fake.listUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]*FakeUser{}
	for _, u := range users {
		out[u.ID] = u
	}
	return out, nil
}

// stop ends everything start began, the replicas before the control plane.
func (h *harness) stop() {
	if h.fl != nil {
		h.fl.stop()
	}
	for _, stop := range slices.Backward(h.stops) {
		stop()
	}
	if h.px != nil {
		h.px.close()
	}
	if h.cp != nil {
		h.cp.stop()
	}
}
