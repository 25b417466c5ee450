package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// webhookLimit is how soon demo-check wants an out-of-band change corrected when webhooks are
// wired: well under the default sync period (10 s), so that polling alone would rarely make it.
const webhookLimit = 5 * time.Second

// webhookPath is the manager's webhook route for its own key (internal/webhook.Path + "default").
const webhookPath = "/webhooks/clerk/default"

// newWebhookSecret returns a Svix signing secret as the Clerk Dashboard shows one: "whsec_" and
// the standard base64 of 24 random bytes read from r.
func newWebhookSecret(r io.Reader) (string, error) {
	key := make([]byte, 24)
	if _, err := io.ReadFull(r, key); err != nil {
		return "", fmt.Errorf("generate a webhook signing secret: %w", err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key), nil
}

// setupWebhooks picks the manager's webhook address, generates the signing secrets (the manager's
// own, written to a file for --clerk-webhook-secret-file, and the tenant ClerkInstance's) and
// returns the URL the fake Clerk sends its events to.
func (d *demo) setupWebhooks(ctx context.Context) (string, error) {
	addr, err := freeLocalAddr(ctx)
	if err != nil {
		return "", fmt.Errorf("a port for the manager's webhooks: %w", err)
	}
	secret, err := newWebhookSecret(rand.Reader)
	if err != nil {
		return "", err
	}
	if d.instanceWebhookSecret, err = newWebhookSecret(rand.Reader); err != nil {
		return "", err
	}
	file := d.path("clerk-webhook-secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		return "", err
	}
	d.webhookAddr, d.webhookSecret, d.webhookSecretFile = addr, secret, file
	return d.webhookURL(), nil
}

// webhookURL is where the fake Clerk sends its events: the manager's route for its own key.
func (d *demo) webhookURL() string { return "http://" + d.webhookAddr + webhookPath }

// webhookEvents is what the manager's metrics say of the webhooks it received:
// kubeclerk_webhook_events_total summed by result.
type webhookEvents struct {
	accepted, rejected float64
	// seen is whether the metric was there at all (the manager registers it with webhooks on).
	seen bool
}

// parseWebhookEvents reads kubeclerk_webhook_events_total from the Prometheus text exposition of
// the manager's /metrics, summed over instances and types, by result.
func parseWebhookEvents(r io.Reader) (webhookEvents, error) {
	var w webhookEvents
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok || name != "kubeclerk_webhook_events_total" {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok || len(strings.Fields(value)) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			continue
		}
		w.seen = true
		switch labelValue(labels, "result") {
		case "accepted":
			w.accepted += v
		case "rejected":
			w.rejected += v
		}
	}
	return w, sc.Err()
}

// webhookText is the metrics line on webhooks, for the budget lines.
func webhookText(w webhookEvents, url string, sent clerkfake.WebhookStats) string {
	if url == "" {
		return "Clerk webhooks: off (--webhooks=false); out-of-band changes are corrected by polling only\n"
	}
	return fmt.Sprintf("Clerk webhooks (%s): %.0f events accepted, %.0f rejected "+
		"(kubeclerk_webhook_events_total by result); the fake Clerk sent %d, gave up on %d after retries "+
		"(such as the seed users', sent before the manager listened)\n",
		url, w.accepted, w.rejected, sent.Sent, sent.Failed)
}

// scrapeMetrics returns the manager's /metrics text.
func (d *demo) scrapeMetrics(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// webhookEventsNow returns the manager's webhook counters; the zero value when they cannot be read.
func (d *demo) webhookEventsNow(ctx context.Context) webhookEvents {
	if d.metricsAddr == "" {
		return webhookEvents{}
	}
	b, err := d.scrapeMetrics(ctx)
	if err != nil {
		return webhookEvents{}
	}
	w, _ := parseWebhookEvents(strings.NewReader(string(b)))
	return w
}

// correction says how an out-of-band change was corrected after took, for the drift line, and,
// when webhooks are wired (wired) but did not correct it within webhookLimit, why that fails
// demo-check. accepted is how many webhook events the manager accepted meanwhile.
func correction(took time.Duration, wired bool, accepted float64, syncPeriod time.Duration) (how string, err error) {
	if !wired {
		return fmt.Sprintf("polling, no webhooks: within the sync period of %s", syncPeriod), nil
	}
	switch {
	case accepted < 1:
		return "polling", fmt.Errorf("webhooks are wired, yet the manager accepted no webhook event after the change "+
			"(kubeclerk_webhook_events_total{result=\"accepted\"} did not grow), so it was corrected after %s by polling "+
			"(sync period %s); see the manager's log for rejected webhooks", shortDuration(took), syncPeriod)
	case took >= webhookLimit:
		return "polling", fmt.Errorf("webhooks are wired and the manager accepted %.0f webhook events, yet the change was "+
			"corrected only after %s, not within %s: the webhook did not trigger the correction, polling did (sync period %s)",
			accepted, shortDuration(took), webhookLimit, syncPeriod)
	}
	return "webhook", nil
}

// shortDuration shows d in seconds: to the hundredth under a second (0.43s), to the tenth above.
func shortDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return d.Round(100 * time.Millisecond).String()
}
