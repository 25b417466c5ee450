package main

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// Stats is the body of the fake Clerk API's GET /_fake/stats.
type Stats = clerkfake.Stats

// perUser divides each route's count by users.
func perUser(byRoute map[string]int64, users int) map[string]float64 {
	out := make(map[string]float64, len(byRoute))
	for route, n := range byRoute {
		out[route] = ratio(float64(n), float64(users))
	}
	return out
}

// boundSeconds is the physical lower bound on the time to converge: the Clerk calls that must
// be made (at least one write per user that needs one) divided by the configured rate.
func boundSeconds(writesNeeded int, perSecond float64) float64 {
	if perSecond <= 0 {
		return 0
	}
	return float64(writesNeeded) / perSecond
}

// ratio returns a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// percentile returns the p-th percentile (0..100) of samples by the nearest-rank method: the
// smallest sample such that at least p% of the samples are less than or equal to it.
// It returns 0 for no samples.
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// defaultBudget is the manager's default client-side budget for a key: half of Clerk's
// published limit (sk_live_: 1000 per 10 s → 50/s; otherwise 100 per 10 s → 5/s).
func defaultBudget(key string) float64 {
	return float64(clerkLimitPer10s(key)) / 10 / 2
}

// clerkLimitPer10s is Clerk's per-instance rate limit for a secret key.
func clerkLimitPer10s(key string) int {
	if strings.HasPrefix(key, "sk_live_") {
		return 1000
	}
	return 100
}

// autoSyncPeriod is the shortest sync period at which per-object observation (one read per user
// per period) stays within two thirds of the budget, and at least 30 s, rounded up to 10 s.
// With it the baseline is not saturated by its own steady state, so both runs compare fairly.
func autoSyncPeriod(users int, perSecond float64) time.Duration {
	d := 30 * time.Second
	if perSecond > 0 {
		need := time.Duration(1.5 * float64(users) / perSecond * float64(time.Second))
		d = max(d, need)
	}
	return (d + 10*time.Second - 1) / (10 * time.Second) * (10 * time.Second)
}

// convergenceCurve turns convergence times (seconds from the first Clerk call) into a
// step curve of (seconds, converged users) points, at most maxPoints of them, ending with the
// last user.
func convergenceCurve(seconds []float64, maxPoints int) [][2]float64 {
	if len(seconds) == 0 {
		return nil
	}
	s := slices.Clone(seconds)
	slices.Sort(s)
	step := 1
	if maxPoints > 1 && len(s) > maxPoints {
		step = (len(s) + maxPoints - 2) / (maxPoints - 1)
	}
	var pts [][2]float64
	for i := 0; i < len(s); i += step {
		pts = append(pts, [2]float64{s[i], float64(i + 1)})
	}
	if last := [2]float64{s[len(s)-1], float64(len(s))}; pts[len(pts)-1] != last {
		pts = append(pts, last)
	}
	return pts
}

// round rounds x to d decimals.
func round(x float64, d int) float64 {
	p := math.Pow(10, float64(d))
	return math.Round(x*p) / p
}
