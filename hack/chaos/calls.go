package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Call is one request a manager replica sent to Clerk, as the recording proxy saw it.
type Call struct {
	At     time.Time `json:"at"`
	Slot   int       `json:"slot"`   // which replica (each has its own proxy port)
	Method string    `json:"method"` // GET, POST, …
	Route  string    `json:"route"`  // "POST /v1/users/{user_id}/ban"
	UserID string    `json:"userID,omitempty"`
	// Lookup holds the identifiers a GET /v1/users filter asked for, in identifiersOf's form.
	Lookup []string `json:"lookup,omitempty"`
	// Batch holds the user IDs of a GET /v1/users?user_id=… batch read.
	Batch []string `json:"batch,omitempty"`
	// Status is the HTTP status Clerk answered; 0 when Clerk applied the request and dropped
	// the connection instead of answering.
	Status int `json:"status"`
	// Lost: the replica got no response (Clerk, or the proxy for it, dropped the connection).
	Lost bool `json:"lost,omitempty"`
	// Body is the start of a write's request body (for the call log).
	Body string `json:"body,omitempty"`
}

// isWrite reports whether the call may change Clerk.
func (c Call) isWrite() bool { return c.Method != "GET" }

// applied reports whether Clerk carried the call out: it answered 2xx, or applied it and lost
// the response. Injected 429s and 5xx are answered before the handler runs.
func (c Call) applied() bool { return c.Status == 0 || c.Status >= 200 && c.Status < 300 }

// callsBetween returns the calls at or after from and before to.
func callsBetween(calls []Call, from, to time.Time) []Call {
	var out []Call
	for _, c := range calls {
		if !c.At.Before(from) && c.At.Before(to) {
			out = append(out, c)
		}
	}
	return out
}

// peakInWindow returns the most calls in any window of length w.
func peakInWindow(calls []Call, w time.Duration) int {
	times := make([]time.Time, len(calls))
	for i, c := range calls {
		times[i] = c.At
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	peak, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= w {
			lo++
		}
		peak = max(peak, hi-lo+1)
	}
	return peak
}

// RateCheck is the request rate against the manager's budget.
type RateCheck struct {
	// Peak1s is the most requests in any 1 s window; Peak10s in any 10 s window (Clerk's).
	Peak1s  int `json:"peak_1s"`
	Peak10s int `json:"peak_10s"`
	// Allowed1s and Allowed10s are what a token bucket of the budget allows in those windows:
	// burst + rate × (window + slack), slack covering the proxy's view of send times.
	Allowed1s  int `json:"allowed_1s"`
	Allowed10s int `json:"allowed_10s"`
}

// rateSlack is how much longer than a window the bucket may refill within it, as seen at the
// proxy: requests are stamped when they arrive, after the bucket let them go (up to a few hundred
// milliseconds later on a busy 2-core machine). A manager that ignores its budget, or two
// replicas spending theirs at once, exceed the allowance by far more.
const rateSlack = 200 * time.Millisecond

// CheckRate compares the peak request rate, 429s included, with the budget of a token bucket
// of rate budget and size burst.
func CheckRate(calls []Call, budget float64, burst int) (RateCheck, []Finding) {
	allowed := func(w time.Duration) int {
		return burst + int(math.Floor(budget*(w+rateSlack).Seconds()))
	}
	r := RateCheck{Peak1s: peakInWindow(calls, time.Second), Peak10s: peakInWindow(calls, 10*time.Second),
		Allowed1s: allowed(time.Second), Allowed10s: allowed(10 * time.Second)}
	var out []Finding
	if r.Peak1s > r.Allowed1s {
		out = append(out, Finding{Check: checkRate, Detail: fmt.Sprintf("%d requests in 1 s; the budget (%.0f/s, burst %d) allows %d",
			r.Peak1s, budget, burst, r.Allowed1s)})
	}
	if r.Peak10s > r.Allowed10s {
		out = append(out, Finding{Check: checkRate, Detail: fmt.Sprintf("%d requests in 10 s; the budget (%.0f/s, burst %d) allows %d",
			r.Peak10s, budget, burst, r.Allowed10s)})
	}
	return r, out
}

// CheckLeaders reports calls of two replicas less than gap apart: only the leader may call
// Clerk, and a new leader takes over only after the old one's lease expired.
func CheckLeaders(calls []Call, gap time.Duration) []Finding {
	sorted := slices.Clone(calls)
	slices.SortFunc(sorted, func(a, b Call) int { return a.At.Compare(b.At) })
	var out []Finding
	for i := 1; i < len(sorted); i++ {
		a, b := sorted[i-1], sorted[i]
		if a.Slot != b.Slot && b.At.Sub(a.At) < gap {
			out = append(out, Finding{Check: checkLeaders, Detail: fmt.Sprintf(
				"replica %d called %s at %s and replica %d called %s %s later", a.Slot, a.Route,
				a.At.Format("15:04:05.000"), b.Slot, b.Route, b.At.Sub(a.At).Round(time.Millisecond))})
			if len(out) >= 5 {
				break
			}
		}
	}
	return out
}

// MFARemovals counts, per user ID, the DELETE /v1/users/{id}/mfa calls that Clerk applied.
func MFARemovals(calls []Call) map[string]int {
	out := map[string]int{}
	for _, c := range calls {
		if c.Route == "DELETE /v1/users/{user_id}/mfa" && c.applied() {
			out[c.UserID]++
		}
	}
	return out
}

// objectIndex maps Clerk user IDs and identifiers to object names, so that calls can be
// charged to the objects they serve.
type objectIndex struct {
	byUser  map[string]string
	byIdent map[string]string
}

// CallsPerObject charges calls to objects: a call on one user to that user's object, a lookup
// to the object declaring the identifier, a batch read 1/k to each of its k users' objects.
// Calls serving no object (change polls, counts, listings) are returned as background.
func CallsPerObject(calls []Call, idx objectIndex) (perObject map[string]float64, background int) {
	perObject = map[string]float64{}
	for _, c := range calls {
		switch {
		case c.UserID != "":
			perObject[idx.nameOf(c.UserID, "")]++
		case len(c.Lookup) > 0:
			perObject[idx.nameOf("", c.Lookup[0])]++
		case len(c.Batch) > 0:
			for _, id := range c.Batch {
				perObject[idx.nameOf(id, "")] += 1 / float64(len(c.Batch))
			}
		default:
			background++
		}
	}
	return perObject, background
}

func (x objectIndex) nameOf(userID, ident string) string {
	if n, ok := x.byUser[userID]; ok {
		return n
	}
	if n, ok := x.byIdent[ident]; ok {
		return n
	}
	if userID != "" {
		return "user " + userID
	}
	return "lookup " + ident
}

// HotLoopCheck is what the manager spent while every Clerk call failed.
type HotLoopCheck struct {
	WindowSeconds float64 `json:"window_seconds"`
	// LeaderTerms is how many leaders (replica processes that led) the window saw.
	LeaderTerms   int     `json:"leader_terms"`
	Calls         int     `json:"calls"`
	BudgetShare   float64 `json:"budget_share"`
	MaxPerObject  float64 `json:"max_per_object"`
	MaxObject     string  `json:"max_object,omitempty"`
	PerObjectMax  float64 `json:"per_object_allowed"`
	MeanPerObject float64 `json:"mean_per_object"`
	// FirstThird and LastThird count the calls in the first and last third of the window;
	// with one leader throughout, backoff makes the last at most half the first.
	FirstThird int `json:"first_third"`
	LastThird  int `json:"last_third"`
}

// backoffBase and backoffMax are the manager's retries of a failed reconcile: a per-object
// exponential backoff from 5 ms, doubling, capped at 30 s (internal/controller
// retryRateLimiter). In controller-runtime v0.25 the priority queue has no overall retry bucket:
// the per-object backoff and the Clerk budget are the only limits.
const (
	backoffBase = 5 * time.Millisecond
	backoffMax  = 30 * time.Second
)

// term is the time one replica process led.
type term struct{ from, to time.Time }

// attemptsBound is how many times one object may be tried in d: the first attempt and the
// retries of the backoff that fall within d (5 ms, 10 ms, … apart, then 30 s apart once the gap
// reaches the cap), plus the first attempt of a new leader and one already under way.
func attemptsBound(d time.Duration) float64 {
	n := 1
	for at, gap := backoffBase, backoffBase; at <= d; at += gap {
		n++
		gap = min(2*gap, backoffMax)
	}
	return float64(n + 2)
}

// CheckHotLoop checks the calls made while every Clerk call failed, from from to to, for a
// manager that retries with exponential backoff:
//   - per object (each call charged as CallsPerObject does), at most attemptsBound of the time
//     each leader term overlaps the window, summed over the terms (a new leader tries every
//     object once at start, then backs off again);
//   - when one leader led throughout a window of at least decayWindow, the last third of the
//     window has at most half the calls of the first: backoff decays, a loop that retries at a
//     fixed interval does not. (Backoff from 5 ms stays under a few seconds for the first ten
//     attempts; with objects that began failing at different times a shorter window need not
//     show the decay.)
func CheckHotLoop(calls []Call, from, to time.Time, terms []term, idx objectIndex, objects int, budget float64) (HotLoopCheck, []Finding) {
	w := to.Sub(from)
	per, _ := CallsPerObject(calls, idx)
	h := HotLoopCheck{WindowSeconds: round(w.Seconds(), 1), Calls: len(calls)}
	single := false
	for _, t := range terms {
		a, b := maxTime(t.from, from), minTime(t.to, to)
		if b.After(a) {
			h.LeaderTerms++
			h.PerObjectMax += attemptsBound(b.Sub(a))
			single = !t.from.After(from) && !t.to.Before(to)
		}
	}
	if h.LeaderTerms == 0 {
		h.PerObjectMax = attemptsBound(w)
	}
	single = single && h.LeaderTerms == 1
	for _, name := range slices.Sorted(maps.Keys(per)) {
		if per[name] > h.MaxPerObject {
			h.MaxPerObject, h.MaxObject = per[name], name
		}
	}
	if objects > 0 {
		h.MeanPerObject = round(float64(len(calls))/float64(objects), 2)
	}
	if budget > 0 && w > 0 {
		h.BudgetShare = round(float64(len(calls))/(budget*w.Seconds()), 3)
	}
	h.MaxPerObject = round(h.MaxPerObject, 2)
	for _, c := range calls {
		switch {
		case c.At.Before(from.Add(w / 3)):
			h.FirstThird++
		case !c.At.Before(to.Add(-w / 3)):
			h.LastThird++
		}
	}
	var out []Finding
	if h.MaxPerObject > h.PerObjectMax {
		out = append(out, Finding{Check: checkHotLoop, Object: h.MaxObject, Detail: fmt.Sprintf(
			"%.1f Clerk calls during the %s outage (%d leader terms); exponential backoff from %s allows %.0f",
			h.MaxPerObject, w.Round(time.Second), h.LeaderTerms, backoffBase, h.PerObjectMax)})
	}
	if single && w >= decayWindow && h.LastThird > backgroundSlack && 2*h.LastThird > h.FirstThird {
		out = append(out, Finding{Check: checkHotLoop, Detail: fmt.Sprintf(
			"%d Clerk calls in the last third of the %s outage, %d in the first: retries do not back off",
			h.LastThird, w.Round(time.Second), h.FirstThird)})
	}
	return h, out
}

// decayWindow is the shortest outage in which CheckHotLoop expects the calls to decay.
const decayWindow = 45 * time.Second

// backgroundSlack is how many calls the observer's polls, counts and listings may make in a
// third of an outage without counting as a loop.
const backgroundSlack = 10

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// byRoute counts calls per route.
func byRoute(calls []Call) map[string]int {
	out := map[string]int{}
	for _, c := range calls {
		out[c.Route]++
	}
	return out
}

// countStatus counts calls answered with status.
func countStatus(calls []Call, status int) int {
	n := 0
	for _, c := range calls {
		if c.Status == status {
			n++
		}
	}
	return n
}

// countLost counts calls whose response was lost.
func countLost(calls []Call) int {
	n := 0
	for _, c := range calls {
		if c.Lost {
			n++
		}
	}
	return n
}

// countWrites counts calls that may change Clerk.
func countWrites(calls []Call) int {
	n := 0
	for _, c := range calls {
		if c.isWrite() {
			n++
		}
	}
	return n
}

// routeOf parses a /v1 request path into its route template and the user it names.
func routeOf(method, path string) (route, userID string) {
	rest, ok := strings.CutPrefix(path, "/v1/users")
	if !ok {
		return method + " " + path, ""
	}
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	switch {
	case rest == "" || rest == "/":
		return method + " /v1/users", ""
	case len(segs) == 1 && (segs[0] == "count" || (method == "POST" && (segs[0] == "ban" || segs[0] == "unban"))):
		return method + " /v1/users/" + segs[0], ""
	}
	userID = segs[0]
	segs[0] = "{user_id}"
	if len(segs) == 3 {
		segs[2] = "{id}"
	}
	return method + " /v1/users/" + strings.Join(segs, "/"), userID
}

func round(x float64, d int) float64 {
	p := math.Pow(10, float64(d))
	return math.Round(x*p) / p
}
