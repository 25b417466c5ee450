package controller

import (
	"context"
	"runtime"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
	"github.com/kubeclerk/kubeclerk/internal/metrics"
)

// metricValue returns the value of the series of name with exactly labels (a counter, gauge, or
// a histogram's sample count), or -1 when there is no such series.
func metricValue(reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	families, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return value(m)
		}
	}
	return -1
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestMetrics: after a scenario (an adopt with a first write, an out-of-band ban undone, a 429),
// the manager's registry holds the values the contract names: requests by operation and code
// matching the fake's own counts, the latency histogram, 429s and the wait they caused, one
// drift correction for the field restored (a spec change is not drift), objects by reason, and
// build info.
func TestMetrics(t *testing.T) {
	h := newHarness(t, withMetrics, perObject, withSyncPeriod(time.Second))
	reg := h.registry
	ctx := context.Background()
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"m@example.com"}})
	h.apply("m", clerkv1alpha1.ClerkUserSpec{UserID: id, Banned: new(false), FirstName: new("M")})
	h.waitSynced("m")
	def := metrics.DefaultInstance
	patch := map[string]string{"instance": def, "operation": "PATCH /users/{user_id}", "code": "200"}
	h.g.Expect(metricValue(reg, metrics.ClerkRequestsTotal, patch)).To(Equal(float64(1)), "the firstName write")
	// A spec change's write is not drift.
	h.g.Expect(metricValue(reg, metrics.DriftCorrectionsTotal, map[string]string{"instance": def, "field": "firstName"})).
		To(Equal(float64(-1)), "the spec's own change counted as drift")

	// Out of band: a ban. kubeclerk undoes it: one drift correction of "banned".
	_, err := h.api.BanUser(ctx, id)
	h.g.Expect(err).NotTo(HaveOccurred())
	h.g.Eventually(func() float64 {
		return metricValue(reg, metrics.DriftCorrectionsTotal, map[string]string{"instance": def, "field": "banned"})
	}).Should(Equal(float64(1)))
	h.g.Expect(h.clerkUser(id)["banned"]).To(BeFalse())
	unbans := map[string]string{"instance": def, "operation": "POST /users/{user_id}/unban", "code": "200"}
	h.g.Expect(metricValue(reg, metrics.ClerkRequestsTotal, unbans)).To(Equal(float64(h.calls("POST /v1/users/{user_id}/unban"))))
	gets := metricValue(reg, metrics.ClerkRequestsTotal, map[string]string{"instance": def, "operation": "GET /users/{user_id}", "code": "200"})
	h.g.Expect(gets).To(BeNumerically(">=", 2))
	h.g.Expect(gets).To(BeNumerically("<=", float64(h.calls("GET /v1/users/{user_id}"))))
	h.g.Expect(metricValue(reg, metrics.ClerkRequestDurationSeconds, map[string]string{"instance": def, "operation": "GET /users/{user_id}"})).
		To(BeNumerically(">=", gets))

	// Objects by Ready and reason.
	h.g.Eventually(func() float64 {
		return metricValue(reg, metrics.ClerkUsers, map[string]string{"instance": def, "ready": "true", "reason": ReasonSynced})
	}).Should(Equal(float64(1)))
	h.apply("nobody", clerkv1alpha1.ClerkUserSpec{EmailAddress: "nobody@example.com"})
	h.waitCondition("nobody", metav1.ConditionFalse, ReasonUserNotFound)
	h.g.Expect(metricValue(reg, metrics.ClerkUsers, map[string]string{"instance": def, "ready": "false", "reason": ReasonUserNotFound})).To(Equal(float64(1)))

	// A 429: counted, and the pause it causes is counted as budget wait.
	h.g.Expect(h.fake.SetFaults(clerkfake.Faults{Rate429: 1, RetryAfterSeconds: 1, Routes: []string{"GET /v1/users/{user_id}"}})).To(Succeed())
	h.g.Eventually(func() float64 {
		return metricValue(reg, metrics.ClerkRateLimitedTotal, map[string]string{"instance": def})
	}).
		Should(BeNumerically(">=", 1))
	h.fake.ClearFaults()
	limited := metricValue(reg, metrics.ClerkRateLimitedTotal, map[string]string{"instance": def})
	h.g.Expect(metricValue(reg, metrics.ClerkRequestsTotal, map[string]string{"instance": def, "operation": "GET /users/{user_id}", "code": "429"})).
		To(Equal(limited))
	h.g.Eventually(func() float64 {
		return metricValue(reg, metrics.ClerkRateLimitWaitSeconds, map[string]string{"instance": def})
	}).Should(BeNumerically(">", 0))

	// A ClerkInstance's requests and budget carry its name, and go when it goes.
	b := h.otherClerk()
	inst := "m-" + h.ns
	h.createInstance(inst, b, map[string]string{}, &clerkv1alpha1.ClerkInstancePolicy{})
	probe := map[string]string{"instance": inst, "operation": "GET /users/count", "code": "200"}
	h.g.Expect(metricValue(reg, metrics.ClerkRequestsTotal, probe)).To(Equal(float64(b.fake.Stats().Count("GET /v1/users/count"))))
	h.g.Expect(metricValue(reg, metrics.ClerkBudgetRequestsPerSecond, map[string]string{"instance": inst})).To(Equal(float64(5)), "sk_test_ default")
	h.g.Expect(k8sClient.Delete(ctx, &clerkv1alpha1.ClerkInstance{ObjectMeta: metav1.ObjectMeta{Name: inst}})).To(Succeed())
	h.g.Eventually(func() float64 { return metricValue(reg, metrics.ClerkRequestsTotal, probe) }).Should(Equal(float64(-1)))

	h.g.Expect(metricValue(reg, metrics.BuildInfo, map[string]string{"version": "v-test", "commit": "c-test", "go_version": goVersion()})).To(Equal(float64(1)))
}

// TestDriftFields: each step names the spec field it restores, once.
func TestDriftFields(t *testing.T) {
	got := driftFields([]Step{
		{Kind: StepUnban, Changes: []string{"unban"}},
		{Kind: StepUpdateProfile, Changes: []string{"firstName", "externalID"}},
		{Kind: StepMetadata, Changes: []string{"publicMetadata.role", "publicMetadata.tier", "privateMetadata"}},
		{Kind: StepDisableMFA, Changes: []string{"disableMFA"}},
		{Kind: StepDisableMFA, Changes: []string{"resetMFA"}},
		{Kind: StepLock, Changes: []string{"lock"}},
	})
	want := []string{"banned", "firstName", "externalID", "publicMetadata", "privateMetadata", "mfa", "locked"}
	if len(got) != len(want) {
		t.Fatalf("driftFields = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("driftFields = %v, want %v", got, want)
		}
	}
}

func goVersion() string { return runtime.Version() }
