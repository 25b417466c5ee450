package main

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

func TestStatsSub(t *testing.T) {
	before := Stats{Total: 10, RateLimited: 1, Requests: map[string]map[string]int64{
		"GET /v1/users/{user_id}":      {"200": 8, "429": 1},
		"POST /v1/users/{user_id}/ban": {"200": 1},
	}}
	after := Stats{Total: 25, RateLimited: 3, Requests: map[string]map[string]int64{
		"GET /v1/users/{user_id}":      {"200": 8, "429": 3},
		"POST /v1/users/{user_id}/ban": {"200": 11},
		"GET /v1/users":                {"200": 2},
	}}
	d := after.Sub(before)
	want := Stats{Total: 15, RateLimited: 2, Requests: map[string]map[string]int64{
		"GET /v1/users/{user_id}":      {"429": 2},
		"POST /v1/users/{user_id}/ban": {"200": 10},
		"GET /v1/users":                {"200": 2},
	}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Sub (-want +got):\n%s", diff)
	}
	wantRoutes := map[string]int64{"GET /v1/users/{user_id}": 2, "POST /v1/users/{user_id}/ban": 10, "GET /v1/users": 2}
	if diff := cmp.Diff(wantRoutes, d.ByRoute()); diff != "" {
		t.Errorf("ByRoute (-want +got):\n%s", diff)
	}
	if d.Reads() != 4 || d.Writes() != 10 {
		t.Errorf("Reads %d Writes %d, want 4 and 10", d.Reads(), d.Writes())
	}
}

func TestStatsDecodesFakeBody(t *testing.T) {
	body := `{"total":3,"rate_limited":1,"dropped":0,"requests":{"PATCH /v1/users/{user_id}/metadata":{"200":2,"429":1}}}`
	var s Stats
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	if s.Writes() != 3 || s.Reads() != 0 || s.RateLimited != 1 {
		t.Errorf("decoded %+v", s)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Millisecond // unsorted on purpose
	}
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"median of even is the lower", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 20 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 99, 20 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p100", hundred, 100, 100 * time.Millisecond},
		{"p0 is the min", hundred, 0, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.samples, tc.p); got != tc.want {
				t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
	s := ms(3, 1, 2)
	percentile(s, 50)
	if s[0] != 3*time.Millisecond {
		t.Error("percentile sorted its argument in place")
	}
}

func TestBoundAndBudget(t *testing.T) {
	if got := boundSeconds(1000, 50); got != 20 {
		t.Errorf("bound(1000, 50/s) = %v, want 20", got)
	}
	if got := boundSeconds(1000, 0); got != 0 {
		t.Errorf("bound with no rate = %v, want 0", got)
	}
	if ratio(1, 0) != 0 || ratio(22, 20) != 1.1 {
		t.Error("ratio")
	}
	for key, want := range map[string]float64{"sk_live_abc": 50, "sk_test_abc": 5, "other": 5} {
		if got := defaultBudget(key); got != want {
			t.Errorf("defaultBudget(%s) = %v, want %v", key, got, want)
		}
	}
}

func TestAutoSyncPeriod(t *testing.T) {
	for _, tc := range []struct {
		users int
		rps   float64
		want  time.Duration
	}{
		{100, 50, 30 * time.Second},
		{1000, 50, 30 * time.Second},
		{1001, 50, 40 * time.Second},
		{10000, 50, 300 * time.Second},
		{1000, 5, 300 * time.Second},
		{1000, 0, 30 * time.Second},
	} {
		if got := autoSyncPeriod(tc.users, tc.rps); got != tc.want {
			t.Errorf("autoSyncPeriod(%d, %v) = %v, want %v", tc.users, tc.rps, got, tc.want)
		}
	}
}

func TestConvergenceCurve(t *testing.T) {
	if convergenceCurve(nil, 10) != nil {
		t.Error("no samples should give no curve")
	}
	got := convergenceCurve([]float64{3, 1, 2}, 10)
	if diff := cmp.Diff([][2]float64{{1, 1}, {2, 2}, {3, 3}}, got); diff != "" {
		t.Errorf("curve (-want +got):\n%s", diff)
	}
	secs := make([]float64, 1000)
	for i := range secs {
		secs[i] = float64(i) / 10
	}
	got = convergenceCurve(secs, 100)
	if len(got) > 100 || len(got) < 50 {
		t.Errorf("downsampled to %d points, want at most 100 and not far fewer", len(got))
	}
	if got[0] != [2]float64{0, 1} || got[len(got)-1] != [2]float64{99.9, 1000} {
		t.Errorf("curve from %v to %v, want from the first to the last user", got[0], got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i][0] < got[i-1][0] || got[i][1] <= got[i-1][1] {
			t.Fatalf("curve not monotonic at %d: %v then %v", i, got[i-1], got[i])
		}
	}
}

func TestRenderSVG(t *testing.T) {
	svg := renderSVG(`N=10 <&> "x"`, "seconds", "users", []series{
		{Name: "batched", Color: "#1f77b4", Points: [][2]float64{{0, 0}, {1, 5}, {2, 10}}},
		{Name: "rate limit", Color: "#555", Dashed: true, Points: [][2]float64{{0, 0}, {2.5, 10}}},
	})
	dec := xml.NewDecoder(strings.NewReader(svg))
	polylines, texts := 0, []string{}
	inText := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, svg)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Local == "polyline" {
				polylines++
			}
			inText = el.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, string(el))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if polylines != 2 {
		t.Errorf("%d polylines, want one per series", polylines)
	}
	joined := strings.Join(texts, "|")
	for _, want := range []string{`N=10 <&> "x"`, "batched", "rate limit", "seconds", "users"} {
		if !strings.Contains(joined, want) {
			t.Errorf("SVG text lacks %q: %s", want, joined)
		}
	}
	if !strings.Contains(svg, "stroke-dasharray") {
		t.Error("dashed series is not dashed")
	}
	// Empty input still gives a valid picture.
	if err := xml.Unmarshal([]byte(renderSVG("t", "x", "y", nil)), new(struct{})); err != nil {
		t.Errorf("empty plot: %v", err)
	}
}

func TestNiceStep(t *testing.T) {
	for span, want := range map[float64]float64{21: 5, 42: 10, 400: 50, 1050: 200, 0.5: 0.1} {
		if got := niceStep(span, 8); got != want && (span != 0.5 || got < 0.05 || got > 0.1) {
			t.Errorf("niceStep(%v) = %v, want %v", span, got, want)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	status := "Name:\tmanager\nVmPeak:\t 1300000 kB\nVmHWM:\t   61440 kB\nVmRSS:\t   40960 kB\nThreads:\t12\n"
	m := parseProcStatus(status)
	if m.rss != 40*1<<20 || m.peak != 60*1<<20 {
		t.Errorf("parsed %+v", m)
	}
	if mib(m.peak) != 60 {
		t.Errorf("mib = %v", mib(m.peak))
	}
}

func TestParseMetric(t *testing.T) {
	text := "# HELP go_memstats_heap_alloc_bytes x\n# TYPE go_memstats_heap_alloc_bytes gauge\n" +
		"go_memstats_heap_alloc_bytes_total 1\ngo_memstats_heap_alloc_bytes 1.2345e+07\nother 2\n"
	v, ok := parseMetric(text, "go_memstats_heap_alloc_bytes")
	if !ok || v != 12345000 {
		t.Errorf("parseMetric = %v, %v", v, ok)
	}
	if _, ok := parseMetric(text, "missing"); ok {
		t.Error("found a missing metric")
	}
}

func TestProgressLine(t *testing.T) {
	got := progressLine("batched", 500, 1000, 10*time.Second, 20*time.Second, 1005, 0)
	for _, want := range []string{"batched", " 500/1000", "50%", "10.0s", "bound 20.0s", "calls 1005", "429s 0", "[===============>"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress line %q lacks %q", got, want)
		}
	}
	if full := progressLine("x", 10, 10, 0, 0, 0, 0); !strings.Contains(full, "["+strings.Repeat("=", 30)+"]") {
		t.Errorf("full bar: %q", full)
	}
}

func TestConverged(t *testing.T) {
	cu := func(gen, observed, condGen int64, status metav1.ConditionStatus, reason string) *clerkv1alpha1.ClerkUser {
		c := &clerkv1alpha1.ClerkUser{ObjectMeta: metav1.ObjectMeta{Generation: gen}}
		c.Status.ObservedGeneration = observed
		c.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: status, Reason: reason, ObservedGeneration: condGen}}
		return c
	}
	for _, tc := range []struct {
		name string
		cu   *clerkv1alpha1.ClerkUser
		want bool
	}{
		{"synced", cu(2, 2, 2, metav1.ConditionTrue, "Synced"), true},
		{"older generation", cu(3, 2, 2, metav1.ConditionTrue, "Synced"), false},
		{"condition of an older generation", cu(2, 2, 1, metav1.ConditionTrue, "Synced"), false},
		{"observed, not managed", cu(1, 1, 1, metav1.ConditionTrue, "Observed"), false},
		{"progressing", cu(1, 1, 1, metav1.ConditionFalse, "Progressing"), false},
		{"no conditions", &clerkv1alpha1.ClerkUser{}, false},
	} {
		if got := converged(tc.cu); got != tc.want {
			t.Errorf("%s: converged = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWatcherCountsTransitions(t *testing.T) {
	w := newWatcher()
	ready := &clerkv1alpha1.ClerkUser{ObjectMeta: metav1.ObjectMeta{Name: "u-1", Generation: 1}}
	ready.Status.ObservedGeneration = 1
	ready.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Synced", ObservedGeneration: 1}}
	notReady := &clerkv1alpha1.ClerkUser{ObjectMeta: metav1.ObjectMeta{Name: "u-1", Generation: 2}}

	w.observe(ready)
	w.observe(ready)
	if w.ready() != 1 {
		t.Fatalf("ready = %d after the same object twice", w.ready())
	}
	first, ok := w.firstReady("u-1")
	if !ok {
		t.Fatal("first time not recorded")
	}
	w.observe(notReady)
	if w.ready() != 0 {
		t.Fatalf("ready = %d after a new generation", w.ready())
	}
	w.observe(ready)
	if again, _ := w.firstReady("u-1"); !again.Equal(first) {
		t.Error("first time moved")
	}
	w.forget(ready)
	if w.ready() != 0 {
		t.Errorf("ready = %d after delete", w.ready())
	}
}

func TestClerkUserNeedsOneWrite(t *testing.T) {
	ban := clerkUser("u-0000001", 1, changeBan, false)
	if ban.Spec.UserID != "user_bench0000001" || ban.Spec.Banned == nil || !*ban.Spec.Banned || ban.Spec.PublicMetadata != nil ||
		ban.Spec.MFA != nil {
		t.Errorf("ban object: %+v", ban.Spec)
	}
	md := clerkUser("u-0000001", 1, changeMetadata, false)
	if md.Spec.Banned != nil || md.Spec.PublicMetadata == nil || string(md.Spec.PublicMetadata.Raw) != `{"role":"member"}` {
		t.Errorf("metadata object: %+v", md.Spec)
	}
	u := seedUser(1, changeBan, false)
	if u["id"] != "user_bench0000001" || u["banned"] != nil {
		t.Errorf("seed user %v", u)
	}
	if pm := u["public_metadata"].(map[string]any); pm["role"] != nil {
		t.Errorf("seed user already has the managed key: %v", pm)
	}
}

// With the drift phase on, the ClerkUsers also declare what the drift undoes, and the seeded
// users already hold it, so that convergence still needs exactly the one write of -change.
func TestClerkUserWithDrift(t *testing.T) {
	ban := clerkUser("u-0000001", 1, changeBan, true)
	if ban.Spec.Banned == nil || !*ban.Spec.Banned || ban.Spec.PublicMetadata == nil ||
		string(ban.Spec.PublicMetadata.Raw) != `{"role":"member"}` || ban.Spec.MFA == nil || !ban.Spec.MFA.Disabled {
		t.Errorf("ban object: %+v", ban.Spec)
	}
	if pm := seedUser(1, changeBan, true)["public_metadata"].(map[string]any); pm["role"] != driftRole || pm["app"] != "kept" {
		t.Errorf("seed user for ban should hold the declared role: %v", pm)
	}
	md := clerkUser("u-0000001", 1, changeMetadata, true)
	if md.Spec.Banned == nil || *md.Spec.Banned || string(md.Spec.PublicMetadata.Raw) != `{"role":"member"}` ||
		md.Spec.MFA == nil || !md.Spec.MFA.Disabled {
		t.Errorf("metadata object: %+v", md.Spec)
	}
	if pm := seedUser(1, changeMetadata, true)["public_metadata"].(map[string]any); pm["role"] != nil {
		t.Errorf("seed user for metadata already has the managed key: %v", pm)
	}
}

func TestDeclaredState(t *testing.T) {
	ok := driftUser{ID: "u", Banned: true, PublicMetadata: map[string]any{"role": "member", "app": "kept"}}
	if !declaredState(ok, true) {
		t.Error("declared state not recognised")
	}
	for name, u := range map[string]driftUser{
		"unbanned": {Banned: false, PublicMetadata: map[string]any{"role": "member"}},
		"mfa":      {Banned: true, TwoFactorEnabled: true, PublicMetadata: map[string]any{"role": "member"}},
		"role":     {Banned: true, PublicMetadata: map[string]any{"role": driftIntruder}},
		"no role":  {Banned: true},
	} {
		if declaredState(u, true) {
			t.Errorf("%s: taken for corrected", name)
		}
	}
	if !declaredState(driftUser{PublicMetadata: map[string]any{"role": "member"}}, false) {
		t.Error("declared banned: false not recognised")
	}
}

func TestDriftUsers(t *testing.T) {
	if diff := cmp.Diff([]int{0, 1, 2}, driftUsers(10, 3, 0)); diff != "" {
		t.Errorf("half 0 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{3, 4, 5}, driftUsers(10, 3, 1)); diff != "" {
		t.Errorf("half 1 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{3, 0, 1}, driftUsers(4, 3, 1)); diff != "" {
		t.Errorf("half 1 wrapping (-want +got):\n%s", diff)
	}
}

// The manager's calls are the fake's counts minus the bench's own requests, route by route; a
// correction costs the write only when the webhook carries the user.
func TestCallsPerCorrection(t *testing.T) {
	fake := map[string]int64{
		routeList:                        40, // bench polls, plus one change poll of the manager
		routeUnban:                       2,  // the bench's drift
		routeBan:                         2,  // the manager's corrections
		routeMetadata:                    3,  // 1 drift + 2 corrections
		routeUpdate:                      1,  // drift (MFA enrolment)
		"DELETE /v1/users/{user_id}/mfa": 1,  // correction
		"GET /v1/users/{user_id}":        0,
	}
	own := map[string]int64{routeList: 39, routeUnban: 2, routeMetadata: 1, routeUpdate: 1, "GET /v1/users/count": 1}
	got := subtractCalls(fake, own)
	want := map[string]int64{routeList: 1, routeBan: 2, routeMetadata: 2, "DELETE /v1/users/{user_id}/mfa": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("subtractCalls (-want +got):\n%s", diff)
	}
	if n := sumCalls(got); n != 6 {
		t.Errorf("sumCalls = %d, want 6", n)
	}
	per := perUser(got, 5)
	if per[routeBan] != 0.4 || ratio(float64(sumCalls(got)), 5) != 1.2 {
		t.Errorf("per correction: %v", per)
	}
}

func TestDriftTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := newDriftTracker([]string{"a", "b", "c"})
	tr.applied[0] = t0
	tr.applied[1] = t0.Add(time.Second)
	tr.failed[2] = true
	if diff := cmp.Diff([]string{"a", "b"}, tr.pending()); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
	good := func(id string) driftUser {
		return driftUser{ID: id, Banned: true, PublicMetadata: map[string]any{"role": "member"}}
	}
	// A poll sent before b's change was applied proves nothing about b.
	tr.observe([]driftUser{good("a"), good("b"), good("zzz")}, true, t0.Add(500*time.Millisecond), t0.Add(600*time.Millisecond))
	if tr.corrected[0] != t0.Add(600*time.Millisecond) || !tr.corrected[1].IsZero() {
		t.Errorf("corrected %v", tr.corrected)
	}
	// An earlier answer wins; a user still drifted is not corrected.
	tr.observe([]driftUser{good("a")}, true, t0.Add(100*time.Millisecond), t0.Add(550*time.Millisecond))
	tr.observe([]driftUser{{ID: "b", Banned: false}}, true, t0.Add(2*time.Second), t0.Add(2100*time.Millisecond))
	if tr.corrected[0] != t0.Add(550*time.Millisecond) || !tr.corrected[1].IsZero() || tr.done() {
		t.Errorf("corrected %v, done %v", tr.corrected, tr.done())
	}
	tr.observe([]driftUser{good("b")}, true, t0.Add(3*time.Second), t0.Add(3100*time.Millisecond))
	if !tr.done() {
		t.Error("not done with a and b corrected and c failed")
	}
	lat := durationsOf(tr.applied, tr.corrected)
	if diff := cmp.Diff([]time.Duration{550 * time.Millisecond, 2100 * time.Millisecond}, lat); diff != "" {
		t.Errorf("latencies (-want +got):\n%s", diff)
	}
}

func TestDriftTable(t *testing.T) {
	d := func(hooks bool, p99 float64) *DriftResult {
		return &DriftResult{Webhooks: hooks, Changes: 3, Corrected: 3, P99Seconds: p99, PollIntervalMS: 50,
			ChangesByKind:             map[string]int{"ban": 1, "mfa": 1, "metadata": 1},
			ManagerCallsByRoute:       map[string]int64{routeBan: 1},
			CallsPerCorrectionByRoute: map[string]float64{routeBan: 1.0 / 3}}
	}
	res := Result{Config: Config{DriftIntervalMS: 200}, RunResult: RunResult{Mode: runBatched,
		DriftPolling: d(false, 27.5), DriftWebhooks: d(true, 0.75)}}
	var w strings.Builder
	writeDriftTable(&w, res, []*RunResult{&res.RunResult})
	for _, want := range []string{"batched, no webhooks", "batched+webhooks", "27.500", "0.750", "3/3", routeBan, "one every 200ms"} {
		if !strings.Contains(w.String(), want) {
			t.Errorf("drift table lacks %q:\n%s", want, w.String())
		}
	}
	var none strings.Builder
	writeDriftTable(&none, Result{}, []*RunResult{{Mode: runBatched}})
	if none.Len() != 0 {
		t.Errorf("drift table without a drift phase: %q", none.String())
	}
}

func TestDriftSecret(t *testing.T) {
	s, err := driftSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := clerkfake.ValidateWebhookConfig("http://127.0.0.1:1/webhooks/clerk/default", s); err != nil {
		t.Errorf("secret %q: %v", s, err)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.users != 1000 || o.latency != 100*time.Millisecond || o.key() != "sk_live_kubeclerkbench" ||
		o.budget() != 50 || o.syncPeriod != 30*time.Second || o.steadyPeriods != 2 || o.change != changeBan {
		t.Errorf("defaults: %+v", o)
	}
	if diff := cmp.Diff([]string{runBatched, runPerObject}, o.runs); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	if o.drift != 50 || !o.webhooks {
		t.Errorf("drift defaults: %d changes, webhooks %v", o.drift, o.webhooks)
	}
	if o, err := parseFlags([]string{"-n", "10"}); err != nil || o.drift != 10 {
		t.Errorf("-n 10: drift %d, %v; want the default clamped to 10", o.drift, err)
	}
	if o, err := parseFlags([]string{"-drift", "0", "-webhooks=false"}); err != nil || o.drift != 0 || o.webhooks {
		t.Errorf("-drift 0 -webhooks=false: %d, %v, %v", o.drift, o.webhooks, err)
	}
	if o.timeout != 5*20*time.Second+2*time.Minute {
		t.Errorf("timeout %v", o.timeout)
	}
	o, err = parseFlags([]string{"-n", "10000", "-rps", "100", "-runs", "baseline", "-sync-period", "45s"})
	if err != nil {
		t.Fatal(err)
	}
	if o.budget() != 100 || o.syncPeriod != 45*time.Second || o.steadyPeriods != 2 || len(o.runs) != 1 || o.runs[0] != runPerObject {
		t.Errorf("parsed %+v", o)
	}
	if o, _ := parseFlags([]string{"-n", "10000"}); o.syncPeriod != 5*time.Minute || o.steadyPeriods != 1 {
		t.Errorf("N=10000: sync period %v, %v steady periods; want 5m0s and 1", o.syncPeriod, o.steadyPeriods)
	}
	for _, bad := range [][]string{
		{"-n", "0"}, {"-key-type", "prod"}, {"-change", "lock"}, {"-runs", "fast"}, {"-runs", ""}, {"-steady-periods", "-1"},
		{"-drift", "-1"}, {"-n", "10", "-drift", "11"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%v) accepted", bad)
		}
	}
}
