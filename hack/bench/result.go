package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// Config is what a benchmark ran with.
type Config struct {
	Users             int     `json:"users"`
	LatencyMS         int64   `json:"latency_ms"`
	KeyType           string  `json:"key_type"`
	ClerkLimitPer10s  int     `json:"clerk_rate_limit_per_10s"`
	BudgetRPS         float64 `json:"budget_requests_per_second"`
	SyncPeriodSeconds float64 `json:"sync_period_seconds"`
	SteadyPeriods     float64 `json:"steady_periods"`
	NewObjects        int     `json:"new_objects"`
	Change            string  `json:"change"`
	CPUs              int     `json:"cpus"`
	Date              string  `json:"date"`
	Command           string  `json:"command"`
	Warning           string  `json:"warning,omitempty"`
	// FullReadIntervalSeconds is the batched run's --full-read-interval: one full re-read of
	// every managed user inside the steady-state window; 0 when the manager has no such flag.
	FullReadIntervalSeconds float64 `json:"full_read_interval_seconds,omitempty"`
	// Drift is the number of out-of-band changes of the drift phase (-drift), made one every
	// DriftIntervalMS; Webhooks says whether the phase ran with webhooks too.
	Drift           int   `json:"drift,omitempty"`
	DriftIntervalMS int64 `json:"drift_interval_ms,omitempty"`
	Webhooks        bool  `json:"webhooks,omitempty"`
}

// RunResult is what one run (batched or per-object observation) measured.
type RunResult struct {
	Mode         string   `json:"mode"`
	ManagerFlags []string `json:"manager_flags"`
	Users        int      `json:"users"`
	WritesNeeded int      `json:"writes_needed"`
	Converged    int      `json:"converged"`

	// Convergence: from the first Clerk call to the last ClerkUser Ready; the bound is
	// WritesNeeded ÷ the budget in requests per second.
	StartupSeconds           float64      `json:"startup_seconds"`
	ConvergeSeconds          float64      `json:"converge_seconds"`
	ConvergeFromStartSeconds float64      `json:"converge_from_start_seconds"`
	BoundSeconds             float64      `json:"bound_seconds"`
	RatioToBound             float64      `json:"ratio_to_bound"`
	Curve                    [][2]float64 `json:"converge_curve"`

	// Clerk calls until convergence.
	Calls               int64              `json:"calls"`
	CallsPerUser        float64            `json:"calls_per_user"`
	ExtraCallsPerUser   float64            `json:"extra_calls_per_user"`
	CallsByRoute        map[string]int64   `json:"calls_by_route"`
	CallsPerUserByRoute map[string]float64 `json:"calls_per_user_by_route"`
	RateLimited         int64              `json:"rate_limited"`

	// Steady state, per sync period, over SteadyWindowSeconds.
	SteadyWindowSeconds    float64          `json:"steady_window_seconds"`
	SteadyStateReads       float64          `json:"steady_state_reads"`
	SteadyStateWrites      float64          `json:"steady_state_writes"`
	SteadyStateByRoute     map[string]int64 `json:"steady_state_calls_by_route"`
	SteadyStateRateLimited int64            `json:"steady_state_rate_limited"`

	// The first sync period after a manager restart.
	RestartWindowSeconds float64          `json:"restart_window_seconds"`
	RestartReads         int64            `json:"restart_reads"`
	RestartWrites        int64            `json:"restart_writes"`
	RestartByRoute       map[string]int64 `json:"restart_calls_by_route"`

	// New ClerkUsers created one at a time while Users are managed.
	NewObjectSamples         int     `json:"new_object_samples"`
	NewObjectReadyP50Seconds float64 `json:"new_object_ready_p50_seconds"`
	NewObjectReadyP99Seconds float64 `json:"new_object_ready_p99_seconds"`
	NewObjectReadyMaxSeconds float64 `json:"new_object_ready_max_seconds"`

	// Manager memory: heap from go_memstats_heap_alloc_bytes, RSS from /proc (RSSMiB is the
	// peak, VmHWM, of both manager processes).
	HeapMiB          float64 `json:"heap_mib"`
	HeapRestartedMiB float64 `json:"heap_restarted_mib"`
	RSSMiB           float64 `json:"rss_mib"`
	RSSConvergedMiB  float64 `json:"rss_converged_mib"`
	RSSSteadyMiB     float64 `json:"rss_steady_mib"`
	RSSRestartedMiB  float64 `json:"rss_restarted_mib"`

	// TotalCallsInRun counts the Clerk calls of every phase but the drift phase.
	TotalCallsInRun int64    `json:"total_calls_in_run"`
	Warnings        []string `json:"warnings,omitempty"`

	// The drift phase: out-of-band changes corrected without webhooks (the fake loses them) and
	// with them.
	DriftPolling  *DriftResult `json:"drift_without_webhooks,omitempty"`
	DriftWebhooks *DriftResult `json:"drift_with_webhooks,omitempty"`
}

// Result is bin/bench/result.json: the batched run's numbers at the top level and the same keys
// for per-object observation under "baseline".
type Result struct {
	Config Config `json:"config"`
	RunResult
	Baseline *RunResult `json:"baseline,omitempty"`
}

// row is one line of the table: a label and a value per run; gain is baseline ÷ batched for
// numbers where less is better.
type row struct {
	label string
	val   func(r *RunResult) float64
	fmt   string
	gain  bool
}

// Number formats of the table.
const (
	f0 = "%.0f"
	f1 = "%.1f"
	f3 = "%.3f"
)

// printTable writes the results as a table, runs side by side.
func printTable(out io.Writer, res Result, o options) {
	runs := []*RunResult{&res.RunResult}
	if res.Baseline != nil {
		runs = append(runs, res.Baseline)
	}
	var w strings.Builder
	c := res.Config
	fmt.Fprintf(&w, "\nkubeclerk bench: N=%d ClerkUsers, each needing one %s; %s key (Clerk: %d requests/10 s), "+
		"manager budget %.0f req/s, Clerk latency %dms, sync period %s, %d CPUs\n",
		c.Users, c.Change, c.KeyType, c.ClerkLimitPer10s, c.BudgetRPS, c.LatencyMS, o.syncPeriod, c.CPUs)
	if c.Warning != "" {
		fmt.Fprintf(&w, "WARNING: %s\n", c.Warning)
	}
	w.WriteString("\n")
	tw := tabwriter.NewWriter(&w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var head strings.Builder
	head.WriteString("\t")
	for _, r := range runs {
		head.WriteString(r.Mode + "\t")
	}
	if len(runs) == 2 {
		head.WriteString("gain\t")
	}
	_, _ = fmt.Fprintln(tw, head.String())

	routes := map[string]bool{}
	for _, r := range runs {
		for k := range r.CallsByRoute {
			routes[k] = true
		}
	}
	rows := []row{
		{"time to converge (s)", func(r *RunResult) float64 { return r.ConvergeSeconds }, f1, true},
		{"  bound: writes ÷ budget (s)", func(r *RunResult) float64 { return r.BoundSeconds }, f1, false},
		{"  ratio to bound", func(r *RunResult) float64 { return r.RatioToBound }, f3, false},
		{"  manager start → first call (s)", func(r *RunResult) float64 { return r.StartupSeconds }, f1, false},
		{"Clerk calls per converged user", func(r *RunResult) float64 { return r.CallsPerUser }, f3, true},
	}
	for _, route := range slices.Sorted(maps.Keys(routes)) {
		rows = append(rows, row{"  " + route, func(r *RunResult) float64 { return r.CallsPerUserByRoute[route] }, f3, false})
	}
	rows = append(rows,
		row{"  beyond the writes needed", func(r *RunResult) float64 { return r.ExtraCallsPerUser }, f3, false},
		row{"429 responses", func(r *RunResult) float64 { return float64(r.RateLimited) }, f0, false},
		row{"steady state, per sync period: reads", func(r *RunResult) float64 { return r.SteadyStateReads }, f1, true},
		row{"  writes", func(r *RunResult) float64 { return r.SteadyStateWrites }, f1, false},
		row{"first sync period after restart: reads", func(r *RunResult) float64 { return float64(r.RestartReads) }, f0, true},
		row{"  writes", func(r *RunResult) float64 { return float64(r.RestartWrites) }, f0, false},
		row{"new ClerkUser to Ready p50 (s)", func(r *RunResult) float64 { return r.NewObjectReadyP50Seconds }, f3, true},
		row{"  p99 (s)", func(r *RunResult) float64 { return r.NewObjectReadyP99Seconds }, f3, true},
		row{"manager heap after steady state (MiB)", func(r *RunResult) float64 { return r.HeapMiB }, f1, false},
		row{"manager RSS, peak (MiB)", func(r *RunResult) float64 { return r.RSSMiB }, f1, false},
	)
	for _, rw := range rows {
		var line strings.Builder
		line.WriteString(rw.label + "\t")
		for _, r := range runs {
			line.WriteString(fmt.Sprintf(rw.fmt, rw.val(r)) + "\t")
		}
		if len(runs) == 2 {
			if a, b := rw.val(runs[0]), rw.val(runs[1]); rw.gain && a > 0 {
				fmt.Fprintf(&line, "%.1f×", b/a)
			}
			line.WriteString("\t")
		}
		_, _ = fmt.Fprintln(tw, line.String())
	}
	_ = tw.Flush()
	for _, r := range runs {
		for _, warn := range r.Warnings {
			fmt.Fprintf(&w, "WARNING (%s): %s\n", r.Mode, warn)
		}
	}
	writeDriftTable(&w, res, runs)
	_, _ = io.WriteString(out, w.String())
}

// driftColumn is one column of the drift table: a run's half with or without webhooks.
type driftColumn struct {
	name string
	d    *DriftResult
}

// driftColumns returns the drift halves of runs, without webhooks first, side by side.
func driftColumns(runs []*RunResult) []driftColumn {
	var cols []driftColumn
	for _, r := range runs {
		if r.DriftPolling != nil {
			cols = append(cols, driftColumn{r.Mode + ", no webhooks", r.DriftPolling})
		}
		if r.DriftWebhooks != nil {
			cols = append(cols, driftColumn{r.Mode + "+webhooks", r.DriftWebhooks})
		}
	}
	return cols
}

// writeDriftTable writes the drift phase's results, with and without webhooks side by side.
func writeDriftTable(w *strings.Builder, res Result, runs []*RunResult) {
	cols := driftColumns(runs)
	if len(cols) == 0 {
		return
	}
	kinds := cols[0].d.ChangesByKind
	fmt.Fprintf(w, "\ndrift: %d out-of-band changes (%d unban/ban, %d MFA enrolment, %d metadata edit), one every %dms, "+
		"each timed from the fake's answer until a poll (every %dms) shows it undone; Clerk calls are the manager's "+
		"(the fake's counts minus the bench's own)\n\n",
		cols[0].d.Changes, kinds[string(driftBan)], kinds[string(driftMFA)], kinds[string(driftMetadata)],
		res.Config.DriftIntervalMS, cols[0].d.PollIntervalMS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var head strings.Builder
	head.WriteString("\t")
	for _, c := range cols {
		head.WriteString(c.name + "\t")
	}
	_, _ = fmt.Fprintln(tw, head.String())
	routes := map[string]bool{}
	for _, c := range cols {
		for k := range c.d.ManagerCallsByRoute {
			routes[k] = true
		}
	}
	type drow struct {
		label string
		val   func(d *DriftResult) string
	}
	num := func(f string, v func(d *DriftResult) float64) func(d *DriftResult) string {
		return func(d *DriftResult) string { return fmt.Sprintf(f, v(d)) }
	}
	rows := []drow{
		{"corrected", func(d *DriftResult) string { return fmt.Sprintf("%d/%d", d.Corrected, d.Changes) }},
		{"time to correction p50 (s)", num(f3, func(d *DriftResult) float64 { return d.P50Seconds })},
		{"  p99 (s)", num(f3, func(d *DriftResult) float64 { return d.P99Seconds })},
		{"  max (s)", num(f3, func(d *DriftResult) float64 { return d.MaxSeconds })},
		{"Clerk calls per correction", num(f3, func(d *DriftResult) float64 { return d.CallsPerCorrection })},
	}
	for _, route := range slices.Sorted(maps.Keys(routes)) {
		rows = append(rows, drow{"  " + route, num(f3, func(d *DriftResult) float64 { return d.CallsPerCorrectionByRoute[route] })})
	}
	rows = append(rows,
		drow{"429 responses", num(f0, func(d *DriftResult) float64 { return float64(d.RateLimited) })},
		drow{"window (s)", num(f1, func(d *DriftResult) float64 { return d.WindowSeconds })},
		drow{"webhooks sent / dropped", func(d *DriftResult) string {
			return fmt.Sprintf("%d / %d", d.WebhooksSent, d.WebhooksDropped)
		}},
		drow{"  failed / retries", func(d *DriftResult) string {
			return fmt.Sprintf("%d / %d", d.WebhooksFailed, d.WebhookRetries)
		}},
	)
	for _, rw := range rows {
		var line strings.Builder
		line.WriteString(rw.label + "\t")
		for _, c := range cols {
			line.WriteString(rw.val(c.d) + "\t")
		}
		_, _ = fmt.Fprintln(tw, line.String())
	}
	_ = tw.Flush()
	for _, c := range cols {
		for _, warn := range c.d.Warnings {
			fmt.Fprintf(w, "WARNING (drift, %s): %s\n", c.name, warn)
		}
	}
}

// plot draws converged users over time for each run against the rate-limit line.
func plot(res Result, o options) string {
	colors := map[string]string{runBatched: "#1f77b4", runPerObject: "#ff7f0e"}
	var all []series
	for _, r := range []*RunResult{&res.RunResult, res.Baseline} {
		if r == nil {
			continue
		}
		name := r.Mode + " observation"
		if r.Mode == runPerObject {
			name = "per-object observation (baseline)"
		}
		all = append(all, series{Name: fmt.Sprintf("%s: %.1fs, %.2f× bound", name, r.ConvergeSeconds, r.RatioToBound),
			Color: colors[r.Mode], Points: append([][2]float64{{0, 0}}, r.Curve...)})
	}
	bound := res.BoundSeconds
	all = append(all, series{Name: fmt.Sprintf("rate-limit bound: %.0f requests/s budget (%.1fs for N)", o.budget(), bound),
		Color: "#555555", Dashed: true, Points: [][2]float64{{0, 0}, {bound, float64(res.Users)}}})
	title := fmt.Sprintf("kubeclerk: converged ClerkUsers, N=%d, Clerk latency %s, %s key",
		res.Users, o.latency, strings.TrimSuffix(res.Config.KeyType, "_"))
	return renderSVG(title, "seconds since the first Clerk call", "ClerkUsers Ready (Synced)", all)
}
