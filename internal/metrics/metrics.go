// Package metrics defines kubeclerk's Prometheus metrics, as named in the contract's "Metrics"
// table, and registers them with controller-runtime's registry, which the manager serves on its
// metrics endpoint next to controller-runtime's own.
//
// Label values are bounded: instance is "default" (the manager's own key) or a ClerkInstance
// name; operation a route template ("GET /users/{user_id}"); code an HTTP status or "error"; field
// a spec field ("banned", "publicMetadata", …); reason a condition reason. No user ID, email or
// metadata value is ever a label.
package metrics

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metric names (the contract's "Metrics" table).
const (
	ClerkRequestsTotal           = "kubeclerk_clerk_requests_total"
	ClerkRequestDurationSeconds  = "kubeclerk_clerk_request_duration_seconds"
	ClerkRateLimitWaitSeconds    = "kubeclerk_clerk_rate_limit_wait_seconds_total"
	ClerkRateLimitedTotal        = "kubeclerk_clerk_rate_limited_total"
	DriftCorrectionsTotal        = "kubeclerk_drift_corrections_total"
	ClerkUsers                   = "kubeclerk_clerkusers"
	WebhookEventsTotal           = "kubeclerk_webhook_events_total"
	BuildInfo                    = "kubeclerk_build_info"
	DeletionsThrottledTotal      = "kubeclerk_deletions_throttled_total"
	ClerkBudgetRequestsPerSecond = "kubeclerk_clerk_budget_requests_per_second"
)

// Names lists every metric kubeclerk defines; dashboards and alerts may query only these (and
// controller-runtime's).
func Names() []string {
	return []string{ClerkRequestsTotal, ClerkRequestDurationSeconds, ClerkRateLimitWaitSeconds,
		ClerkRateLimitedTotal, DriftCorrectionsTotal, ClerkUsers, WebhookEventsTotal, BuildInfo,
		DeletionsThrottledTotal, ClerkBudgetRequestsPerSecond}
}

// DefaultInstance is the instance label of the manager's own key.
const DefaultInstance = "default"

// Metrics holds kubeclerk's collectors.
type Metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	wait          *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	drift         *prometheus.CounterVec
	webhookEvents *prometheus.CounterVec
	buildInfo     *prometheus.GaugeVec
	deletionsHeld *prometheus.CounterVec
	budget        *prometheus.GaugeVec
	clerkUsers    *usersCollector
}

// New returns kubeclerk's metrics, not registered yet.
func New() *Metrics {
	return &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ClerkRequestsTotal,
			Help: "Requests sent to Clerk's Backend API, by instance, operation (route template) and HTTP status code (\"error\": no response)."},
			[]string{"instance", "operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: ClerkRequestDurationSeconds,
			Help:    "Latency of requests to Clerk's Backend API, from sending to the whole answer, by instance and operation.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}},
			[]string{"instance", "operation"}),
		wait: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ClerkRateLimitWaitSeconds,
			Help: "Seconds requests waited for the instance's client-side budget (token bucket and 429 pauses)."},
			[]string{"instance"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ClerkRateLimitedTotal,
			Help: "Requests Clerk answered with 429 Too Many Requests."},
			[]string{"instance"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{Name: DriftCorrectionsTotal,
			Help: "Clerk writes that undid a change made outside kubeclerk, by the spec field they restored."},
			[]string{"instance", "field"}),
		webhookEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: WebhookEventsTotal,
			Help: "Clerk webhook events received, by type and result (accepted or rejected)."},
			[]string{"instance", "type", "result"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: BuildInfo,
			Help: "Always 1; the labels say which kubeclerk build runs."},
			[]string{"version", "commit", "go_version"}),
		deletionsHeld: prometheus.NewCounterVec(prometheus.CounterOpts{Name: DeletionsThrottledTotal,
			Help: "Ban or Delete actions of deletion policies held back by the deletion brake (--max-deletions-per-minute)."},
			[]string{"instance"}),
		budget: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ClerkBudgetRequestsPerSecond,
			Help: "The client-side budget of the instance's key, in requests per second (compare with rate(" + ClerkRequestsTotal + "))."},
			[]string{"instance"}),
		clerkUsers: &usersCollector{desc: prometheus.NewDesc(ClerkUsers,
			"ClerkUser objects by instance, Ready status and reason.", []string{"instance", "ready", "reason"}, nil)},
	}
}

// Register registers the metrics with reg (controller-runtime's registry when nil) and sets
// build info. It may be called once.
func (m *Metrics) Register(reg prometheus.Registerer, version, commit string) error {
	if reg == nil {
		reg = crmetrics.Registry
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.wait, m.rateLimited, m.drift,
		m.webhookEvents, m.buildInfo, m.deletionsHeld, m.budget, m.clerkUsers} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	m.buildInfo.WithLabelValues(version, commit, runtime.Version()).Set(1)
	return nil
}

// Client returns the clerk.RequestObserver of instance name.
func (m *Metrics) Client(instance string) *ClientObserver {
	if m == nil {
		return nil
	}
	return &ClientObserver{m: m, instance: instance}
}

// SetBudget records the budget of instance's key.
func (m *Metrics) SetBudget(instance string, perSecond float64) {
	if m == nil {
		return
	}
	m.budget.WithLabelValues(instance).Set(perSecond)
}

// ForgetInstance drops the series of an instance that is gone.
func (m *Metrics) ForgetInstance(instance string) {
	if m == nil {
		return
	}
	labels := prometheus.Labels{"instance": instance}
	m.requests.DeletePartialMatch(labels)
	m.duration.DeletePartialMatch(labels)
	m.wait.DeletePartialMatch(labels)
	m.rateLimited.DeletePartialMatch(labels)
	m.drift.DeletePartialMatch(labels)
	m.webhookEvents.DeletePartialMatch(labels)
	m.deletionsHeld.DeletePartialMatch(labels)
	m.budget.DeletePartialMatch(labels)
}

// DriftCorrected counts a write to field that undid an out-of-band change.
func (m *Metrics) DriftCorrected(instance, field string) {
	if m == nil {
		return
	}
	m.drift.WithLabelValues(instance, field).Inc()
}

// DeletionThrottled counts a deletion-policy action the brake held back.
func (m *Metrics) DeletionThrottled(instance string) {
	if m == nil {
		return
	}
	m.deletionsHeld.WithLabelValues(instance).Inc()
}

// WebhookEvent counts a webhook event of type typ with result "accepted" or "rejected".
func (m *Metrics) WebhookEvent(instance, typ, result string) {
	if m == nil {
		return
	}
	m.webhookEvents.WithLabelValues(instance, typ, result).Inc()
}

// UserCount is the number of ClerkUsers with one (instance, ready, reason).
type UserCount struct {
	Instance, Reason string
	Ready            bool
	Count            int
}

// CountUsers sets how kubeclerk_clerkusers is computed at each scrape (from the informer cache).
func (m *Metrics) CountUsers(f func(ctx context.Context) ([]UserCount, error)) {
	if m == nil {
		return
	}
	m.clerkUsers.mu.Lock()
	defer m.clerkUsers.mu.Unlock()
	m.clerkUsers.count = f
}

// ClientObserver records one instance's Clerk requests (clerk.RequestObserver).
type ClientObserver struct {
	m        *Metrics
	instance string
}

// Waited implements clerk.RequestObserver.
func (o *ClientObserver) Waited(d time.Duration) {
	if d > 0 {
		o.m.wait.WithLabelValues(o.instance).Add(d.Seconds())
	}
}

// Done implements clerk.RequestObserver.
func (o *ClientObserver) Done(operation, code string, d time.Duration) {
	o.m.requests.WithLabelValues(o.instance, operation, code).Inc()
	o.m.duration.WithLabelValues(o.instance, operation).Observe(d.Seconds())
	if code == "429" {
		o.m.rateLimited.WithLabelValues(o.instance).Inc()
	}
}

// usersCollector computes kubeclerk_clerkusers at scrape time.
type usersCollector struct {
	desc  *prometheus.Desc
	mu    sync.Mutex
	count func(ctx context.Context) ([]UserCount, error)
}

func (c *usersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *usersCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	f := c.count
	c.mu.Unlock()
	if f == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := f(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n.Count),
			n.Instance, strconv.FormatBool(n.Ready), n.Reason)
	}
}
