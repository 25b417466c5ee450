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
	ban := clerkUser("u-0000001", 1, changeBan)
	if ban.Spec.UserID != "user_bench0000001" || ban.Spec.Banned == nil || !*ban.Spec.Banned || ban.Spec.PublicMetadata != nil {
		t.Errorf("ban object: %+v", ban.Spec)
	}
	md := clerkUser("u-0000001", 1, changeMetadata)
	if md.Spec.Banned != nil || md.Spec.PublicMetadata == nil || string(md.Spec.PublicMetadata.Raw) != `{"role":"member"}` {
		t.Errorf("metadata object: %+v", md.Spec)
	}
	u := seedUser(1)
	if u["id"] != "user_bench0000001" || u["banned"] != nil {
		t.Errorf("seed user %v", u)
	}
	if pm := u["public_metadata"].(map[string]any); pm["role"] != nil {
		t.Errorf("seed user already has the managed key: %v", pm)
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
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%v) accepted", bad)
		}
	}
}
