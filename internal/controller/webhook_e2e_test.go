package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
	"github.com/kubeclerk/kubeclerk/internal/metrics"
	"github.com/kubeclerk/kubeclerk/internal/webhook"
)

// TestWebhookCorrectsDriftAtOnce: Clerk's signed user.updated for a managed user, through the
// receiver, makes kubeclerk undo an out-of-band unban within seconds (the sync period is a
// minute), with the write as its only Clerk call; a forged event changes nothing.
func TestWebhookCorrectsDriftAtOnce(t *testing.T) {
	h := newHarness(t, withMetrics)
	ctx := context.Background()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	rcv := &webhook.Receiver{
		Secrets: func(name string) (string, bool) { return secret, name == webhook.DefaultInstance },
		Deliver: func(ctx context.Context, e webhook.Event) {
			h.reconciler.ClerkEvent(ctx, e.Instance, e.Type, e.UserID, e.User)
		},
		Metrics: h.metrics,
	}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)

	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"hook@example.com"}})
	h.apply("hook", clerkv1alpha1.ClerkUserSpec{UserID: id, Banned: new(true)})
	h.waitSynced("hook")
	unbanned, err := h.api.UnbanUser(ctx, id) // in the Clerk Dashboard, by mistake
	h.g.Expect(err).NotTo(HaveOccurred())
	var data map[string]any
	raw, ok := h.fake.User(id)
	h.g.Expect(ok).To(BeTrue())
	h.g.Expect(json.Unmarshal(raw, &data)).To(Succeed())
	h.g.Expect(unbanned.Banned).To(BeFalse())
	body, err := json.Marshal(map[string]any{"object": "event", "type": "user.updated", "data": data,
		"timestamp": time.Now().UnixMilli(), "instance_id": "ins_test"})
	h.g.Expect(err).NotTo(HaveOccurred())

	send := func(secret string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+webhook.Path+webhook.DefaultInstance, bytes.NewReader(body))
		h.g.Expect(err).NotTo(HaveOccurred())
		h.g.Expect(webhook.SetHeaders(req.Header, secret, "msg_"+time.Now().Format("150405.000000000"), time.Now(), body)).To(Succeed())
		resp, err := http.DefaultClient.Do(req)
		h.g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	reads, writes := h.reads(), h.writes()
	h.g.Expect(send("whsec_"+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).To(Equal(http.StatusUnauthorized), "a forged event")
	h.g.Consistently(h.writes, "1s").Should(Equal(writes))

	start := time.Now()
	h.g.Expect(send(secret)).To(Equal(http.StatusNoContent))
	h.g.Eventually(func() any { return h.clerkUser(id)["banned"] }).Should(BeTrue())
	t.Logf("corrected %s after the webhook", time.Since(start).Round(time.Millisecond))
	h.g.Expect(time.Since(start)).To(BeNumerically("<", 10*time.Second))
	h.g.Expect(h.writes() - writes).To(Equal(int64(1)))
	h.g.Expect(h.reads()-reads).To(BeZero(), "the event's state was the observation")
	h.g.Expect(metricValue(h.registry, metrics.WebhookEventsTotal,
		map[string]string{"instance": "default", "type": "user.updated", "result": "accepted"})).To(Equal(float64(1)))
}

// TestFakeWebhooksCorrectDriftAtOnce: end to end, as in production: the fake Clerk signs and
// sends user.updated for an out-of-band unban, the receiver verifies it, and kubeclerk bans again
// within seconds (the sync period is a minute) with one write. Duplicated deliveries and the
// events of kubeclerk's own writes cause nothing more.
func TestFakeWebhooksCorrectDriftAtOnce(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var rcv atomic.Pointer[webhook.Receiver]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := rcv.Load(); p != nil {
			p.ServeHTTP(w, r)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable) // not started yet: the fake retries
	}))
	t.Cleanup(srv.Close)
	h := newHarness(t, func(o *harnessOptions) {
		o.fake.WebhookURL = srv.URL + webhook.Path + webhook.DefaultInstance
		o.fake.WebhookSecret = secret
	})
	rcv.Store(&webhook.Receiver{
		Secrets: func(name string) (string, bool) { return secret, name == webhook.DefaultInstance },
		Deliver: func(ctx context.Context, e webhook.Event) {
			h.reconciler.ClerkEvent(ctx, e.Instance, e.Type, e.UserID, e.User)
		},
	})
	ctx := context.Background()
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"fakehook@example.com"}})
	h.apply("fakehook", clerkv1alpha1.ClerkUserSpec{UserID: id, Banned: new(true)})
	h.waitSynced("fakehook")
	h.g.Expect(h.fake.SetFaults(clerkfake.Faults{WebhookDuplicateRate: 1})).To(Succeed())
	h.g.Expect(h.fake.WaitWebhooks(ctx)).To(Succeed())

	bans := h.calls("POST /v1/users/{user_id}/ban")
	start := time.Now()
	_, err := h.api.UnbanUser(ctx, id)
	h.g.Expect(err).NotTo(HaveOccurred())
	h.g.Eventually(func() any { return h.clerkUser(id)["banned"] }).Should(BeTrue())
	t.Logf("corrected %s after the out-of-band unban", time.Since(start).Round(time.Millisecond))
	h.g.Expect(time.Since(start)).To(BeNumerically("<", 10*time.Second), "not the webhook: the sync period is a minute")
	h.g.Expect(h.fake.WaitWebhooks(ctx)).To(Succeed())
	h.g.Consistently(func() int64 { return h.calls("POST /v1/users/{user_id}/ban") }, "1s").Should(Equal(bans + 1))
}
