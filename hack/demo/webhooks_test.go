package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// TestNewWebhookSecret: whsec_ and the base64 of 24 bytes, which the fake Clerk takes.
func TestNewWebhookSecret(t *testing.T) {
	s, err := newWebhookSecret(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		t.Fatalf("%q does not start with whsec_", s)
	}
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 24 {
		t.Fatalf("%q: %d bytes, %v", s, len(raw), err)
	}
	if err := clerkfake.ValidateWebhookConfig("http://127.0.0.1:1"+webhookPath, s); err != nil {
		t.Fatal(err)
	}
	if other, _ := newWebhookSecret(rand.Reader); other == s {
		t.Error("two secrets alike")
	}
	if _, err := newWebhookSecret(bytes.NewReader(make([]byte, 10))); err == nil {
		t.Error("a short read gave a secret")
	}
}

// TestParseWebhookEvents: kubeclerk_webhook_events_total summed by result, other metrics ignored.
func TestParseWebhookEvents(t *testing.T) {
	text := `# HELP kubeclerk_webhook_events_total x
# TYPE kubeclerk_webhook_events_total counter
kubeclerk_webhook_events_total{instance="default",result="accepted",type="user.updated"} 5
kubeclerk_webhook_events_total{instance="default",result="accepted",type="user.created"} 2
kubeclerk_webhook_events_total{instance="acme-prod",result="accepted",type="other"} 1
kubeclerk_webhook_events_total{instance="",result="rejected",type="unknown"} 3
kubeclerk_webhook_events_total_created{instance="default",result="accepted",type="user.updated"} 1.7e+09
kubeclerk_clerk_requests_total{code="200",instance="default",operation="GET /users",result="accepted"} 30
`
	w, err := parseWebhookEvents(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if !w.seen || w.accepted != 8 || w.rejected != 3 {
		t.Fatalf("%+v, want 8 accepted, 3 rejected", w)
	}
	if w, _ := parseWebhookEvents(strings.NewReader("go_goroutines 3\n")); w.seen || w.accepted != 0 {
		t.Fatalf("without the metric: %+v", w)
	}
	line := webhookText(w, "http://127.0.0.1:9/webhooks/clerk/default", clerkfake.WebhookStats{Sent: 9, Failed: 1})
	want := "Clerk webhooks (http://127.0.0.1:9/webhooks/clerk/default): 8 events accepted, 3 rejected " +
		"(kubeclerk_webhook_events_total by result); the fake Clerk sent 9, gave up on 1 after retries " +
		"(such as the seed users', sent before the manager listened)\n"
	if line != want {
		t.Errorf("webhookText:\n%q\nwant\n%q", line, want)
	}
	if off := webhookText(webhookEvents{}, "", clerkfake.WebhookStats{}); !strings.Contains(off, "off") {
		t.Errorf("webhookText without webhooks: %q", off)
	}
}

// TestCorrection: with webhooks wired, demo-check wants an accepted event and a correction within
// webhookLimit; without them, any correction passes.
func TestCorrection(t *testing.T) {
	sync := 10 * time.Second
	for _, c := range []struct {
		took     time.Duration
		wired    bool
		accepted float64
		how      string
		errHas   string
	}{
		{400 * time.Millisecond, true, 2, "webhook", ""},
		{7 * time.Second, true, 2, "polling", "not within 5s"},
		{300 * time.Millisecond, true, 0, "polling", "accepted no webhook event"},
		{7 * time.Second, false, 0, "polling, no webhooks: within the sync period of 10s", ""},
	} {
		how, err := correction(c.took, c.wired, c.accepted, sync)
		if how != c.how {
			t.Errorf("%+v: how %q, want %q", c, how, c.how)
		}
		switch {
		case c.errHas == "" && err != nil:
			t.Errorf("%+v: %v", c, err)
		case c.errHas != "" && (err == nil || !strings.Contains(err.Error(), c.errHas)):
			t.Errorf("%+v: error %v, want one with %q", c, err, c.errHas)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		432 * time.Millisecond:  "0.43s",
		4 * time.Millisecond:    "0.00s",
		1260 * time.Millisecond: "1.3s",
		12 * time.Second:        "12s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
