package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// Result is bin/chaos/result.json.
type Result struct {
	Config Config         `json:"config"`
	Phases []*PhaseResult `json:"phases"`
	Pass   bool           `json:"pass"`
	// WallSeconds is the time from the start of the control plane to the end of the last check.
	WallSeconds float64  `json:"wall_seconds"`
	Events      []string `json:"replica_events,omitempty"`
}

// Config is what the run used.
type Config struct {
	Users            int      `json:"users"`
	Phases           []string `json:"phases"`
	Replicas         int      `json:"replicas"`
	KeyType          string   `json:"key_type"`
	ClerkLimitPer10s int      `json:"clerk_rate_limit_per_10s"`
	BudgetRPS        float64  `json:"budget_requests_per_second"`
	Burst            int      `json:"burst"`
	LatencyMS        int64    `json:"latency_ms"`
	SyncPeriod       string   `json:"sync_period"`
	AppWritesPerSec  float64  `json:"app_writes_per_second"`
	Outage           string   `json:"outage"`
	Seed             uint64   `json:"seed"`
	ManagerFlags     []string `json:"manager_flags"`
	CPUs             int      `json:"cpus"`
	Date             string   `json:"date"`
	Command          string   `json:"command"`
}

// RolloutCounts is what a phase's rollout did.
type RolloutCounts struct {
	Changed int `json:"changed"`
	Created int `json:"created"`
	Deleted int `json:"deleted"`
}

// PhaseResult is what one phase measured and found.
type PhaseResult struct {
	Name    string        `json:"name"`
	Faults  string        `json:"faults"`
	Objects int           `json:"objects"`
	Rollout RolloutCounts `json:"rollout"`

	// FaultSeconds is how long faults ran from the start of the rollout; RolloutSeconds the
	// time from the start of the rollout to convergence; ConvergeSeconds from the moment faults
	// cleared to convergence, against BoundSeconds.
	FaultSeconds    float64 `json:"fault_seconds"`
	RolloutSeconds  float64 `json:"rollout_seconds"`
	ConvergeSeconds float64 `json:"converge_after_clear_seconds"`
	BoundSeconds    float64 `json:"bound_seconds"`
	BoundFormula    string  `json:"bound_formula"`

	// Clerk calls of the manager replicas from the start of the rollout to convergence.
	Calls            int            `json:"calls"`
	Writes           int            `json:"writes"`
	NeededWrites     int            `json:"needed_writes"`
	ExtraCalls       int            `json:"extra_calls"`
	ExtraWrites      int            `json:"extra_writes"`
	CallsByRoute     map[string]int `json:"calls_by_route"`
	RateLimited      int            `json:"rate_limited_429"`
	ServerErrors     int            `json:"server_errors_5xx"`
	DroppedResponses int            `json:"dropped_responses"`
	Rate             RateCheck      `json:"rate"`
	HotLoop          *HotLoopCheck  `json:"outage,omitempty"`

	Kills                int     `json:"replica_kills"`
	Exits                int     `json:"replica_exits"`
	APIServerDownSeconds float64 `json:"apiserver_down_seconds,omitempty"`
	AppWrites            int     `json:"app_writes"`
	AppFailures          int     `json:"app_failed_writes"`

	// Stall notes a leader that made no Clerk call for 20 s while objects were not converged.
	Stall    string         `json:"stall,omitempty"`
	Counts   map[string]int `json:"findings_by_check"`
	Findings []Finding      `json:"findings,omitempty"`
	// FindingsOmitted is how many findings beyond the first maxFindings were left out.
	FindingsOmitted int  `json:"findings_omitted,omitempty"`
	Pass            bool `json:"pass"`
}

// maxFindings is how many findings a phase keeps in result.json.
const maxFindings = 100

func (p *PhaseResult) setFindings(fs []Finding) {
	p.Counts = map[string]int{}
	for _, f := range fs {
		p.Counts[f.Check]++
	}
	p.Pass = len(fs) == 0
	if len(fs) > maxFindings {
		p.FindingsOmitted = len(fs) - maxFindings
		fs = fs[:maxFindings]
	}
	p.Findings = fs
}

// printTable writes one row per phase, then the findings.
func printTable(w io.Writer, r *Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintln(tw, "phase\tobjects\tfaults s\trollout s\tconverge s\tbound s\tcalls\twrites\tneeded\textra calls\t429s\t"+
		"5xx\tlost resp\tpeak/s\tpeak/10s\tdup\torphans\tlost chg\twrong\tother\tresult\t")
	for _, p := range r.Phases {
		other := 0
		for k, n := range p.Counts {
			if k != checkDuplicate && k != checkOrphan && k != checkLost && k != checkWrong {
				other += n
			}
		}
		result := "PASS"
		if !p.Pass {
			result = "FAIL"
		}
		_, _ = fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n",
			p.Name, p.Objects, p.FaultSeconds, p.RolloutSeconds, p.ConvergeSeconds, p.BoundSeconds, p.Calls, p.Writes, p.NeededWrites,
			p.ExtraCalls, p.RateLimited, p.ServerErrors, p.DroppedResponses, p.Rate.Peak1s, p.Rate.Peak10s,
			p.Counts[checkDuplicate], p.Counts[checkOrphan], p.Counts[checkLost], p.Counts[checkWrong], other, result)
	}
	_ = tw.Flush()
	_, _ = fmt.Fprintln(w, "\nfaults s: how long faults ran from the start of the rollout; rollout s: start of the rollout to "+
		"convergence;\nconverge s: faults cleared to convergence, against bound s; needed: the writes a perfect operator makes; "+
		"extra calls: calls - needed;\nlost resp: responses dropped after the write was applied; peak: requests (429s included) "+
		"in the busiest 1 s and 10 s;\ndup, orphans, lost chg (spec changes or deletions Clerk does not show), wrong (other values, "+
		"keys of the application); other: not ready, mfa, rate, hot loop, bound, leaders.")
	c := r.Config
	if len(r.Phases) > 0 {
		rc := r.Phases[0].Rate
		_, _ = fmt.Fprintf(w, "\nbudget %.0f req/s, burst %d: a token bucket sends at most %d requests in any 1 s and %d in any 10 s; "+
			"allowed at the proxy, which stamps arrivals: %d and %d (Clerk's limit: %d per 10 s)\n", c.BudgetRPS, c.Burst,
			c.Burst+int(c.BudgetRPS), c.Burst+int(10*c.BudgetRPS), rc.Allowed1s, rc.Allowed10s, c.ClerkLimitPer10s)
	}
	for _, p := range r.Phases {
		if p.HotLoop != nil {
			h := p.HotLoop
			_, _ = fmt.Fprintf(w, "%s: during the %.0fs outage (leader terms: %d) %d calls, %.0f%% of the budget, %d in the first "+
				"third and %d in the last; %.2f per object on average, at most %.1f for one object (allowed %.0f)\n",
				p.Name, h.WindowSeconds, h.LeaderTerms, h.Calls, 100*h.BudgetShare, h.FirstThird, h.LastThird,
				h.MeanPerObject, h.MaxPerObject, h.PerObjectMax)
		}
	}
	for _, p := range r.Phases {
		if p.Pass {
			continue
		}
		_, _ = fmt.Fprintf(w, "\n%s: %d findings (%s)\n", p.Name, len(p.Findings)+p.FindingsOmitted, countsString(p.Counts))
		for i, f := range p.Findings {
			if i == 20 {
				_, _ = fmt.Fprintf(w, "  … %d more in result.json\n", len(p.Findings)-20+p.FindingsOmitted)
				break
			}
			_, _ = fmt.Fprintf(w, "  %s\n", f)
		}
	}
}

func countsString(m map[string]int) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
