package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gathered returns the value of each series of reg as "name{label=value,...}" → value (a
// histogram's sample count).
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=" + l.GetValue()
			}
			key += "}"
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

// TestMetrics: every name is registered under the contract's name, requests feed the counters,
// histogram and 429 count, a gone instance's series go, and a nil *Metrics is a no-op.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New()
	if err := m.Register(reg, "v1", "abc"); err != nil {
		t.Fatal(err)
	}
	o := m.Client("acme")
	o.Waited(1500 * time.Millisecond)
	o.Done("GET /users/{user_id}", "200", 20*time.Millisecond)
	o.Done("GET /users/{user_id}", "429", time.Millisecond)
	m.DriftCorrected("acme", "banned")
	m.SetBudget("acme", 50)
	m.DeletionThrottled("acme")
	m.WebhookEvent("acme", "user.updated", "accepted")
	m.CountUsers(func(context.Context) ([]UserCount, error) {
		return []UserCount{{Instance: "acme", Ready: true, Reason: "Synced", Count: 3}}, nil
	})
	got := gathered(t, reg)
	for series, want := range map[string]float64{
		"kubeclerk_clerk_requests_total{code=200,instance=acme,operation=GET /users/{user_id}}":  1,
		"kubeclerk_clerk_requests_total{code=429,instance=acme,operation=GET /users/{user_id}}":  1,
		"kubeclerk_clerk_request_duration_seconds{instance=acme,operation=GET /users/{user_id}}": 2,
		"kubeclerk_clerk_rate_limited_total{instance=acme}":                                      1,
		"kubeclerk_clerk_rate_limit_wait_seconds_total{instance=acme}":                           1.5,
		"kubeclerk_drift_corrections_total{field=banned,instance=acme}":                          1,
		"kubeclerk_clerk_budget_requests_per_second{instance=acme}":                              50,
		"kubeclerk_deletions_throttled_total{instance=acme}":                                     1,
		"kubeclerk_webhook_events_total{instance=acme,result=accepted,type=user.updated}":        1,
		"kubeclerk_clerkusers{instance=acme,ready=true,reason=Synced}":                           3,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	found := false
	for k, v := range got {
		if strings.HasPrefix(k, BuildInfo+"{") && v == 1 {
			found = true
		}
	}
	if !found {
		t.Error("no kubeclerk_build_info 1")
	}
	for _, n := range Names() {
		seen := false
		for k := range got {
			if strings.HasPrefix(k, n+"{") {
				seen = true
			}
		}
		if !seen {
			t.Errorf("%s not gathered", n)
		}
	}

	// The objects that name a gone instance still exist and are counted; the rest goes.
	m.ForgetInstance("acme")
	for k := range gathered(t, reg) {
		if strings.Contains(k, "instance=acme") && !strings.HasPrefix(k, ClerkUsers+"{") {
			t.Errorf("series left after ForgetInstance: %s", k)
		}
	}

	m.CountUsers(func(context.Context) ([]UserCount, error) { return nil, errors.New("cache not synced") })
	if _, err := reg.Gather(); err == nil {
		t.Error("a failed count is not reported")
	}

	var none *Metrics
	none.DriftCorrected("x", "y")
	none.SetBudget("x", 1)
	none.ForgetInstance("x")
	none.DeletionThrottled("x")
	none.WebhookEvent("x", "user.updated", "accepted")
	none.CountUsers(nil)
	if none.Client("x") != nil {
		t.Error("nil Metrics gave an observer")
	}
}
