// Command bench measures how fast kubeclerk converges N ClerkUsers against Clerk's rate limit,
// how many Clerk calls it spends doing so and in steady state, how quickly a new object gets
// Ready while N are managed, and how much memory the manager needs. It runs the same workload
// twice, with batched observation (the manager's default) and with per-object observation
// (--batch-observation=false), each against a fresh envtest control plane and a fresh
// cmd/fakeclerk, and reports both side by side.
//
//	make bench                 # N=1000
//	make bench N=10000 LATENCY=100ms
//
// Each run: seed N+NEW users in the fake (--seed, so seeding spends no rate limit), create N
// ClerkUsers bound by spec.userID that each need exactly one write, start bin/manager, and
// measure
//   - convergence: from the first Clerk call to the last ClerkUser Ready=True/Synced for its
//     generation, against the bound (writes needed ÷ the manager's request budget);
//   - Clerk calls per converged user by route, and 429s (GET /_fake/stats deltas);
//   - calls in steady state, per sync period, with nothing to do;
//   - calls in the first sync period after a manager restart;
//   - time to Ready of NEW new ClerkUsers created one at a time (p50, p99);
//   - manager heap (go_memstats_heap_alloc_bytes) and RSS (/proc VmRSS, peak VmHWM);
//   - drift (-drift K): K out-of-band changes through the fake's API (unbans, MFA enrolments,
//     metadata edits, one every 200 ms, each on its own user), timed from the fake's answer to the
//     first poll of the fake that shows the user back as declared (p50, p99), and the manager's
//     Clerk calls per correction by route (the fake's counts minus the bench's own requests);
//     twice on the same manager: with the fake's webhooks lost (fault webhook_drop_rate: 1; the
//     correction waits for the batched observer's change poll) and with them delivered to the
//     manager's --webhook-bind-address (-webhooks, the default). The other phases run with the
//     webhooks lost, so they measure what they did before.
//
// Output: a table on stdout, JSON in OUT/result.json, a plot in OUT/converge.svg, and each
// run's logs under OUT/<run>/.
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

	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// Run names.
const (
	runBatched   = "batched"
	runPerObject = "per-object"
)

type options struct {
	users         int
	latency       time.Duration
	keyType       string
	rps           float64
	burst         int
	syncPeriod    time.Duration
	steadyPeriods float64
	newObjects    int
	change        change
	runs          []string
	out           string
	crdDir        string
	managerBin    string
	fakeBin       string
	timeout       time.Duration
	createWorkers int
	managerArgs   []string
	replot        bool
	drift         int
	webhooks      bool
}

// key is the secret key shared by the fake and the manager; its prefix selects Clerk's limit.
func (o options) key() string { return "sk_" + o.keyType + "_kubeclerkbench" }

// budget is the manager's client-side rate: --clerk-requests-per-second, or its default.
func (o options) budget() float64 {
	if o.rps > 0 {
		return o.rps
	}
	return defaultBudget(o.key())
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.users, "n", 1000, "number of managed ClerkUsers (and seeded Clerk users), each needing one write")
	fs.DurationVar(&o.latency, "latency", 100*time.Millisecond, "latency the fake Clerk API adds to every response")
	fs.StringVar(&o.keyType, "key-type", "live",
		"secret key type: live (Clerk's production limit, 1000 requests per 10 s) or test (100 per 10 s)")
	fs.Float64Var(&o.rps, "rps", 0, "manager --clerk-requests-per-second; 0 = the manager's default (half of Clerk's limit)")
	fs.IntVar(&o.burst, "burst", 0, "manager --clerk-burst; 0 = the manager's default")
	fs.DurationVar(&o.syncPeriod, "sync-period", 0, "manager --sync-period; 0 = auto: the shortest period "+
		"at which per-object observation uses at most 2/3 of the budget, at least 30s")
	fs.Float64Var(&o.steadyPeriods, "steady-periods", 0,
		"length of the steady-state window, in sync periods; 0 = 2 for sync periods under 2m, else 1")
	fs.IntVar(&o.newObjects, "new", 20, "new ClerkUsers created one at a time to measure time to Ready")
	ch := fs.String("change", string(changeBan), "the one write each user needs: ban (POST …/ban) or metadata (PATCH …/metadata)")
	runs := fs.String("runs", runBatched+","+runPerObject, "runs to make, in order: batched, per-object")
	fs.StringVar(&o.out, "out", "bin/bench", "output directory")
	fs.StringVar(&o.crdDir, "crd-dir", "config/crd/bases", "directory of the ClerkUser CRD")
	fs.StringVar(&o.managerBin, "manager", "bin/manager", "manager binary")
	fs.StringVar(&o.fakeBin, "fakeclerk", "bin/fakeclerk", "fake Clerk API binary")
	fs.DurationVar(&o.timeout, "timeout", 0, "give up converging after this long; 0 = 5× the bound + 2m")
	fs.IntVar(&o.createWorkers, "create-workers", 8, "goroutines creating ClerkUsers")
	fs.Var((*stringList)(&o.managerArgs), "manager-arg", "extra manager flag (repeatable)")
	fs.IntVar(&o.drift, "drift", 50, "out-of-band changes (unbans, MFA enrolments, metadata edits) made after the "+
		"other phases, one every 200ms, each timed until the manager corrects it; done twice: with the fake's webhooks "+
		"lost and with them delivered (see -webhooks); 0 = no drift phase")
	fs.BoolVar(&o.webhooks, "webhooks", true, "serve Clerk webhooks in the manager (--webhook-bind-address) and "+
		"send them from the fake, to run the drift phase with webhooks too; they are lost (fault webhook_drop_rate: 1) "+
		"in every other phase")
	fs.BoolVar(&o.replot, "replot", false, "only redraw OUT/converge.svg and print the table from OUT/result.json")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.change = change(*ch)
	switch {
	case o.users < 1:
		return o, errors.New("-n must be at least 1")
	case o.keyType != "live" && o.keyType != "test":
		return o, fmt.Errorf("-key-type %q: want live or test", o.keyType)
	case o.change != changeBan && o.change != changeMetadata:
		return o, fmt.Errorf("-change %q: want ban or metadata", o.change)
	case o.steadyPeriods < 0:
		return o, errors.New("-steady-periods must not be negative")
	case o.drift < 0:
		return o, errors.New("-drift must not be negative")
	}
	if o.drift > o.users {
		driftSet := false
		fs.Visit(func(f *flag.Flag) { driftSet = driftSet || f.Name == "drift" })
		if driftSet {
			return o, fmt.Errorf("-drift %d: at most -n (%d), each change is on a different user", o.drift, o.users)
		}
		o.drift = o.users // the default, for a small -n
	}
	for r := range strings.SplitSeq(*runs, ",") {
		switch r = strings.TrimSpace(r); r {
		case runBatched, runPerObject:
			o.runs = append(o.runs, r)
		case "baseline":
			o.runs = append(o.runs, runPerObject)
		case "":
		default:
			return o, fmt.Errorf("-runs: unknown run %q (want batched, per-object)", r)
		}
	}
	if len(o.runs) == 0 {
		return o, errors.New("-runs: no run")
	}
	if o.syncPeriod <= 0 {
		o.syncPeriod = autoSyncPeriod(o.users, o.budget())
	}
	if o.steadyPeriods == 0 {
		o.steadyPeriods = 2
		if o.syncPeriod >= 2*time.Minute {
			o.steadyPeriods = 1
		}
	}
	if o.timeout <= 0 {
		o.timeout = time.Duration(5*boundSeconds(o.users, o.budget())*float64(time.Second)) + 2*time.Minute
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
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	run := run
	if o.replot {
		run = func(_ context.Context, o options) error { return replot(o) }
	}
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func run(ctx context.Context, o options) error {
	// Quiet controller-runtime's own logging (envtest, cache) unless something goes wrong.
	log.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	for _, bin := range []string{o.managerBin, o.fakeBin} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s: %w (run 'make build' first)", bin, err)
		}
	}
	help, _ := exec.CommandContext(ctx, o.managerBin, "--help").CombinedOutput()
	hasBatchFlag := strings.Contains(string(help), "batch-observation")
	if !hasBatchFlag {
		logf("WARNING: %s has no --batch-observation flag: every run uses the manager's only (per-object) observation", o.managerBin)
	}
	seed := filepath.Join(o.out, "seed.json")
	if o.webhooks && o.drift > 0 && !strings.Contains(string(help), "webhook-bind-address") {
		logf("WARNING: %s has no --webhook-bind-address flag: the drift phase runs without webhooks only", o.managerBin)
		o.webhooks = false
	}
	if err := writeSeed(seed, o.users+o.newObjects, o.change, o.drift > 0); err != nil {
		return fmt.Errorf("write seed: %w", err)
	}
	res := Result{Config: Config{
		Users: o.users, LatencyMS: o.latency.Milliseconds(), KeyType: "sk_" + o.keyType + "_",
		ClerkLimitPer10s: clerkLimitPer10s(o.key()), BudgetRPS: o.budget(), SyncPeriodSeconds: o.syncPeriod.Seconds(),
		SteadyPeriods: o.steadyPeriods, NewObjects: o.newObjects, Change: string(o.change), CPUs: runtime.NumCPU(),
		Date: time.Now().UTC().Format(time.RFC3339), Command: strings.Join(os.Args, " "),
		Drift: o.drift, DriftIntervalMS: driftInterval.Milliseconds(), Webhooks: o.webhooks && o.drift > 0,
	}}
	if !hasBatchFlag {
		res.Config.Warning = "manager has no --batch-observation flag; every run used its per-object observation"
	}
	runs := map[string]*RunResult{}
	for _, name := range o.runs {
		var extra []string
		if hasBatchFlag {
			extra = []string{fmt.Sprintf("--batch-observation=%t", name == runBatched)}
		}
		if name == runBatched && strings.Contains(string(help), "full-read-interval") {
			// One full re-read of every managed user falls inside the steady-state window (it
			// starts after convergence, well within one window of the start), so the steady
			// state counts it, amortized over the window rather than the default six periods.
			extra = append(extra, "--full-read-interval="+steadyWindow(o).String())
			res.Config.FullReadIntervalSeconds = steadyWindow(o).Seconds()
		}
		logf("run %s: N=%d, %s key, budget %.0f req/s, latency %s, sync period %s",
			name, o.users, res.Config.KeyType, o.budget(), o.latency, o.syncPeriod)
		r, err := runOne(ctx, o, name, seed, extra)
		if err != nil {
			return fmt.Errorf("run %s: %w", name, err)
		}
		runs[name] = r
	}
	if r := runs[runBatched]; r != nil {
		res.RunResult = *r
		res.Baseline = runs[runPerObject]
	} else {
		res.RunResult = *runs[runPerObject]
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	jsonPath := filepath.Join(o.out, "result.json")
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return err
	}
	svgPath := filepath.Join(o.out, "converge.svg")
	if err := os.WriteFile(svgPath, []byte(plot(res, o)), 0o644); err != nil {
		return err
	}
	printTable(os.Stdout, res, o)
	fmt.Printf("\nJSON: %s   plot: %s   logs: %s/<run>/\n", jsonPath, svgPath, o.out)
	return nil
}

// replot redraws the plot and prints the table of an earlier run's result.json.
func replot(o options) error {
	b, err := os.ReadFile(filepath.Join(o.out, "result.json"))
	if err != nil {
		return err
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		return err
	}
	o.users, o.rps = res.Users, res.Config.BudgetRPS
	o.latency = time.Duration(res.Config.LatencyMS) * time.Millisecond
	o.syncPeriod = time.Duration(res.Config.SyncPeriodSeconds * float64(time.Second))
	svgPath := filepath.Join(o.out, "converge.svg")
	if err := os.WriteFile(svgPath, []byte(plot(res, o)), 0o644); err != nil {
		return err
	}
	printTable(os.Stdout, res, o)
	fmt.Printf("\nplot: %s\n", svgPath)
	return nil
}

// runOne runs the workload once against a fresh control plane, fake and manager.
func runOne(ctx context.Context, o options, name, seed string, modeArgs []string) (*RunResult, error) {
	dir := filepath.Join(o.out, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	logf("[%s] starting envtest", name)
	cp, err := startControlPlane(o.crdDir, dir)
	if err != nil {
		return nil, err
	}
	defer cp.stop()
	// Stop the watcher before the control plane: an open watch makes kube-apiserver wait.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()

	fakeAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	webhooks := o.webhooks && o.drift > 0
	fake, modeArgs, err := startFake(ctx, o, dir, fakeAddr, seed, webhooks, modeArgs)
	if fake != nil {
		defer fake.stop()
	}
	if err != nil {
		return nil, err
	}
	fakeURL := "http://" + fakeAddr

	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	cfg := *cp.env.Config
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := client.New(&cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	w, err := startWatcher(watchCtx, &cfg, scheme)
	if err != nil {
		return nil, err
	}
	t := time.Now()
	if err := createObjects(ctx, c, o.users, o.createWorkers, o.change, o.drift > 0, func(d int) {
		if d%5000 == 0 {
			logf("[%s] created %d ClerkUsers", name, d)
		}
	}); err != nil {
		return nil, err
	}
	logf("[%s] created %d ClerkUsers in %.1fs", name, o.users, time.Since(t).Seconds())

	m := &managerRunner{o: o, dir: dir, kubeconfig: cp.kubeconfig, fakeURL: fakeURL, modeArgs: modeArgs}
	r := &RunResult{Mode: name, Users: o.users, WritesNeeded: o.users,
		BoundSeconds: round(boundSeconds(o.users, o.budget()), 2)}

	// 1. Converge.
	before, err := fetchStats(ctx, fakeURL)
	if err != nil {
		return nil, err
	}
	proc, err := m.start(1)
	if err != nil {
		return nil, err
	}
	defer func() { m.proc.stop() }()
	r.ManagerFlags = m.args
	first, err := waitFirstCall(ctx, fakeURL, before.Total, proc)
	if err != nil {
		return nil, err
	}
	r.StartupSeconds = round(first.Sub(proc.started).Seconds(), 2)
	isWorkload := func(n string) bool { return strings.HasPrefix(n, "u-") }
	conv, err := m.converge(ctx, w, fakeURL, before, first, name)
	if err != nil {
		return nil, err
	}
	times := w.firstTimes(isWorkload)
	r.Converged = len(times)
	var last time.Time
	secs := make([]float64, 0, len(times))
	for _, ts := range times {
		last = maxTime(last, ts)
		secs = append(secs, ts.Sub(first).Seconds())
	}
	r.ConvergeSeconds = round(last.Sub(first).Seconds(), 2)
	r.ConvergeFromStartSeconds = round(last.Sub(proc.started).Seconds(), 2)
	r.RatioToBound = round(ratio(r.ConvergeSeconds, r.BoundSeconds), 3)
	r.Curve = convergenceCurve(secs, 400)
	d := conv.Sub(before)
	r.Calls = d.Total
	r.CallsByRoute = d.ByRoute()
	r.CallsPerUser = round(ratio(float64(d.Total), float64(r.Converged)), 4)
	r.CallsPerUserByRoute = roundMap(perUser(r.CallsByRoute, r.Converged), 4)
	r.ExtraCallsPerUser = round(ratio(float64(d.Total-int64(r.WritesNeeded)), float64(r.Converged)), 4)
	r.RateLimited = d.RateLimited
	if r.Converged < o.users {
		r.Warnings = append(r.Warnings, fmt.Sprintf("only %d of %d ClerkUsers converged within %s", r.Converged, o.users, o.timeout))
	}
	if mem, err := readMemory(proc.pid()); err == nil {
		r.RSSConvergedMiB = mib(mem.rss)
	}

	// 2. Steady state: nothing to do for steadyPeriods sync periods.
	settle := 5 * time.Second
	if err := sleep(ctx, settle); err != nil {
		return nil, err
	}
	window := steadyWindow(o)
	logf("[%s] steady state: counting Clerk calls for %s (%.3g sync periods)", name, window, o.steadyPeriods)
	s, err := countCalls(ctx, fakeURL, window, proc)
	if err != nil {
		return nil, err
	}
	r.SteadyWindowSeconds = window.Seconds()
	r.SteadyStateReads = round(float64(s.Reads())/o.steadyPeriods, 2)
	r.SteadyStateWrites = round(float64(s.Writes())/o.steadyPeriods, 2)
	r.SteadyStateByRoute = s.ByRoute()
	r.SteadyStateRateLimited = s.RateLimited
	if n := w.ready(); n != o.users {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d of %d ClerkUsers Ready at the end of the steady-state window", n, o.users))
	}
	if h, err := heapBytes(ctx, m.metricsAddr); err == nil {
		r.HeapMiB = mib(int64(h))
	}
	mem1, err := readMemory(proc.pid())
	if err == nil {
		r.RSSSteadyMiB = mib(mem1.rss)
	}

	// 3. Restart: stop the manager and count the calls of its successor's first sync period.
	logf("[%s] restarting the manager; counting Clerk calls for one sync period (%s)", name, o.syncPeriod)
	m.proc.stop()
	proc, err = m.start(2)
	if err != nil {
		return nil, err
	}
	s, err = countCalls(ctx, fakeURL, o.syncPeriod, proc)
	if err != nil {
		return nil, err
	}
	r.RestartWindowSeconds = o.syncPeriod.Seconds()
	r.RestartReads = s.Reads()
	r.RestartWrites = s.Writes()
	r.RestartByRoute = s.ByRoute()
	if n := w.ready(); n != o.users {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d of %d ClerkUsers Ready one sync period after the restart", n, o.users))
	}

	// 4. New objects, one at a time, while N are managed.
	logf("[%s] time to Ready of %d new ClerkUsers, one at a time", name, o.newObjects)
	lat, err := newObjectLatencies(ctx, c, w, o)
	if err != nil {
		return nil, err
	}
	r.NewObjectSamples = len(lat)
	r.NewObjectReadyP50Seconds = round(percentile(lat, 50).Seconds(), 3)
	r.NewObjectReadyP99Seconds = round(percentile(lat, 99).Seconds(), 3)
	r.NewObjectReadyMaxSeconds = round(percentile(lat, 100).Seconds(), 3)

	recordFinal(ctx, r, mem1, proc, m.metricsAddr, fakeURL, before)

	// 5. Drift: out-of-band changes, corrected without webhooks, then with them.
	if o.drift > 0 {
		if err := driftPhase(ctx, o, name, fakeURL, webhooks, proc, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// recordFinal records the manager's memory (the peak of both processes; mem1 is the first's) and
// the Clerk calls of the run so far.
func recordFinal(ctx context.Context, r *RunResult, mem1 memory, proc *process, metricsAddr, fakeURL string, before Stats) {
	mem2, err := readMemory(proc.pid())
	if err == nil {
		r.RSSRestartedMiB = mib(mem2.rss)
	}
	r.RSSMiB = max(mib(mem1.peak), mib(mem2.peak))
	if h, err := heapBytes(ctx, metricsAddr); err == nil {
		r.HeapRestartedMiB = mib(int64(h))
	}
	if last, err := fetchStats(ctx, fakeURL); err == nil {
		r.TotalCallsInRun = last.Sub(before).Total
	}
}

// startFake starts bin/fakeclerk on addr with the seed. With webhooks it sends them to the
// manager, whose flags it adds to managerArgs, but loses them until the drift phase.
func startFake(ctx context.Context, o options, dir, addr, seed string, webhooks bool,
	managerArgs []string) (*process, []string, error) {
	args := []string{"--addr", addr, "--secret-key", o.key(), "--seed", seed, "--latency", o.latency.String()}
	if webhooks {
		var err error
		if args, managerArgs, err = webhookArgs(dir, args, managerArgs); err != nil {
			return nil, nil, err
		}
	}
	fake, err := startProcess("fakeclerk", o.fakeBin, args, nil, filepath.Join(dir, "fakeclerk.log"))
	if err != nil {
		return nil, nil, err
	}
	if _, err := fake.waitForLine(ctx, "listening on", time.Minute); err != nil {
		return fake, nil, err
	}
	if webhooks {
		if err := setWebhookDelivery(ctx, "http://"+addr, false); err != nil {
			return fake, nil, err
		}
	}
	return fake, managerArgs, nil
}

// webhookArgs adds the webhook flags to the fake's and the manager's arguments: a fresh signing
// secret (in a file under dir for the manager) and a free address for the manager's receiver.
// The manager serves webhooks in every phase, but the fake loses them (webhook_drop_rate: 1)
// until the drift phase's second half, so that the other phases measure what they did without
// webhooks. (The seeded users' user.created events fail until the manager listens.)
func webhookArgs(dir string, fakeArgs, managerArgs []string) (fake, manager []string, err error) {
	secret, err := driftSecret()
	if err != nil {
		return nil, nil, err
	}
	file, err := writeSecretFile(dir, secret)
	if err != nil {
		return nil, nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	fake = append(slices.Clone(fakeArgs), "--webhook-url", "http://"+addr+"/webhooks/clerk/default", "--webhook-secret", secret)
	manager = append(slices.Clone(managerArgs), "--webhook-bind-address="+addr, "--clerk-webhook-secret-file="+file)
	return fake, manager, nil
}

// driftPhase runs the drift phase without webhooks and, if webhooks, with them, into r.
func driftPhase(ctx context.Context, o options, name, fakeURL string, webhooks bool, proc *process, r *RunResult) error {
	bc := newBenchClerk(fakeURL, o.key())
	halves := []bool{false}
	if webhooks {
		halves = append(halves, true)
	}
	for half, hooks := range halves {
		label := map[bool]string{false: "without webhooks", true: "with webhooks"}[hooks]
		logf("[%s] drift %s: %d out-of-band changes, one every %s", name, label, o.drift, driftInterval)
		d, err := runDrift(ctx, o, fakeURL, bc, driftUsers(o.users, o.drift, half), hooks, proc)
		if err != nil {
			return fmt.Errorf("drift %s: %w", label, err)
		}
		if hooks {
			r.DriftWebhooks = d
		} else {
			r.DriftPolling = d
		}
		logf("[%s] drift %s: %d of %d corrected, p50 %.3fs, p99 %.3fs, %.2f calls per correction",
			name, label, d.Corrected, d.Changes, d.P50Seconds, d.P99Seconds, d.CallsPerCorrection)
	}
	return nil
}

// managerRunner starts bin/manager with the run's flags.
type managerRunner struct {
	o           options
	dir         string
	kubeconfig  string
	fakeURL     string
	modeArgs    []string
	args        []string
	metricsAddr string
	proc        *process
}

func (m *managerRunner) start(n int) (*process, error) {
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	probe, err := freeAddr()
	if err != nil {
		return nil, err
	}
	m.metricsAddr = metrics
	args := []string{
		"--kubeconfig", m.kubeconfig,
		"--clerk-api-url", m.fakeURL + "/v1",
		"--sync-period", m.o.syncPeriod.String(),
		"--metrics-bind-address", metrics, "--metrics-secure=false",
		"--health-probe-bind-address", probe,
		"--zap-log-level=info",
	}
	if m.o.rps > 0 {
		args = append(args, fmt.Sprintf("--clerk-requests-per-second=%g", m.o.rps))
	}
	if m.o.burst > 0 {
		args = append(args, fmt.Sprintf("--clerk-burst=%d", m.o.burst))
	}
	args = append(args, m.modeArgs...)
	args = append(args, m.o.managerArgs...)
	// The record shows the flags that matter, not this run's ports and paths.
	m.args = slices.DeleteFunc(slices.Clone(args), func(a string) bool {
		return a == m.kubeconfig || a == metrics || a == probe || a == m.fakeURL+"/v1"
	})
	for i, a := range m.args {
		if k, _, ok := strings.Cut(a, "="); ok && (k == "--webhook-bind-address" || k == "--clerk-webhook-secret-file") {
			m.args[i] = k + "=…"
		}
	}
	p, err := startProcess("manager", m.o.managerBin, args, []string{"CLERK_SECRET_KEY=" + m.o.key()},
		filepath.Join(m.dir, fmt.Sprintf("manager-%d.log", n)))
	if err != nil {
		return nil, err
	}
	m.proc = p
	return p, nil
}

// converge waits until every workload ClerkUser is converged (or the timeout), drawing a
// progress bar, and returns the fake's counters at the moment it saw the last one converge.
func (m *managerRunner) converge(ctx context.Context, w *watcher, fakeURL string, before Stats, first time.Time,
	label string) (Stats, error) {
	bar := newProgress(os.Stderr)
	bound := time.Duration(boundSeconds(m.o.users, m.o.budget()) * float64(time.Second))
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(m.o.timeout)
	var cur Stats
	for {
		n := w.ready()
		if n >= m.o.users || time.Now().After(deadline) {
			s, err := fetchStats(ctx, fakeURL)
			if err != nil {
				return Stats{}, err
			}
			d := s.Sub(before)
			bar.update(progressLine(label, n, m.o.users, time.Since(first), bound, d.Total, d.RateLimited), true)
			return s, nil
		}
		if m.proc.exited() {
			return Stats{}, m.proc.exitError()
		}
		select {
		case <-ctx.Done():
			return Stats{}, ctx.Err()
		case <-w.changed:
			// Re-check at once when readiness changed, at most every 20 ms.
			if err := sleep(ctx, 20*time.Millisecond); err != nil {
				return Stats{}, err
			}
			continue
		case <-tick.C:
		}
		if s, err := fetchStats(ctx, fakeURL); err == nil {
			cur = s.Sub(before)
		}
		bar.update(progressLine(label, n, m.o.users, time.Since(first), bound, cur.Total, cur.RateLimited), false)
	}
}

// waitFirstCall polls the fake until it counted a request beyond total, and returns when.
func waitFirstCall(ctx context.Context, fakeURL string, total int64, p *process) (time.Time, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		s, err := fetchStats(ctx, fakeURL)
		if err != nil {
			return time.Time{}, err
		}
		if s.Total > total {
			return time.Now(), nil
		}
		if p.exited() {
			return time.Time{}, p.exitError()
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
	return time.Time{}, errors.New("the manager made no Clerk call within 5 minutes")
}

// countCalls returns the Clerk calls made during the next d.
func countCalls(ctx context.Context, fakeURL string, d time.Duration, p *process) (Stats, error) {
	a, err := fetchStats(ctx, fakeURL)
	if err != nil {
		return Stats{}, err
	}
	if err := sleep(ctx, d); err != nil {
		return Stats{}, err
	}
	if p.exited() {
		return Stats{}, p.exitError()
	}
	b, err := fetchStats(ctx, fakeURL)
	if err != nil {
		return Stats{}, err
	}
	return b.Sub(a), nil
}

// newObjectLatencies creates o.newObjects ClerkUsers one at a time and measures create → Ready.
func newObjectLatencies(ctx context.Context, c client.Client, w *watcher, o options) ([]time.Duration, error) {
	var out []time.Duration
	for j := range o.newObjects {
		name := fmt.Sprintf("new-%04d", j)
		start := time.Now()
		if err := c.Create(ctx, clerkUser(name, o.users+j, o.change, o.drift > 0)); err != nil {
			return nil, fmt.Errorf("create ClerkUser %s: %w", name, err)
		}
		deadline := start.Add(2 * time.Minute)
		for {
			if t, ok := w.firstReady(name); ok {
				out = append(out, t.Sub(start))
				break
			}
			if time.Now().After(deadline) {
				return out, fmt.Errorf("ClerkUser %s not Ready within 2m", name)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-w.changed:
			case <-time.After(10 * time.Millisecond):
			}
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func mib(b int64) float64 { return round(float64(b)/(1<<20), 1) }

func roundMap(m map[string]float64, d int) map[string]float64 {
	for k, v := range m {
		m[k] = round(v, d)
	}
	return m
}

// steadyWindow is how long the steady state is counted: steadyPeriods sync periods.
func steadyWindow(o options) time.Duration {
	return time.Duration(o.steadyPeriods * float64(o.syncPeriod))
}
