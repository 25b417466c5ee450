package clerkfake

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Faults configures fault injection (POST /_fake/faults). Rates are
// probabilities per request (per event for the webhook faults), from 0 to
// 1. Zero values inject nothing.
type Faults struct {
	// Rate429 answers 429 too_many_requests with Retry-After: RetryAfterSeconds.
	Rate429 float64 `json:"rate_429"`
	// Rate500 answers 500 internal_clerk_error.
	Rate500 float64 `json:"rate_500"`
	// Rate502 answers 502 with an HTML body and no ClerkErrors JSON, like a
	// proxy in front of Clerk (an extension beyond the documented contract).
	Rate502 float64 `json:"rate_502"`
	// Rate503 answers 503 maintenance_mode.
	Rate503 float64 `json:"rate_503"`
	// RetryAfterSeconds is the Retry-After of injected 429s; 0 means 1.
	RetryAfterSeconds int `json:"retry_after_seconds"`
	// LatencyMS is added to every affected /v1 request, on top of Options.Latency.
	LatencyMS int `json:"latency_ms"`
	// DropResponseRate applies the request, then closes the connection
	// without an answer (a lost response).
	DropResponseRate float64 `json:"drop_response_rate"`
	// Routes limits the faults to these route templates, e.g.
	// "POST /v1/users" or "PATCH /v1/users/{user_id}/metadata"; empty means all /v1 routes.
	// It does not concern the webhook faults.
	Routes []string `json:"routes,omitempty"`

	// The webhook faults apply to every webhook event made while they are
	// set (Options.WebhookURL), whatever the route of the change.

	// WebhookDropRate loses events: they are never sent.
	WebhookDropRate float64 `json:"webhook_drop_rate,omitempty"`
	// WebhookDelayMS holds every event this long before its first attempt;
	// other events (made before, or after the fault is cleared) do not wait.
	WebhookDelayMS int `json:"webhook_delay_ms,omitempty"`
	// WebhookDuplicateRate delivers events twice: the same message with the
	// same svix-id, each delivery with its own retries.
	WebhookDuplicateRate float64 `json:"webhook_duplicate_rate,omitempty"`
}

// validate checks rates and route templates.
func (f Faults) validate() error {
	rates := []struct {
		name string
		v    float64
	}{
		{"rate_429", f.Rate429}, {"rate_500", f.Rate500}, {"rate_502", f.Rate502}, {"rate_503", f.Rate503},
		{"drop_response_rate", f.DropResponseRate},
		{"webhook_drop_rate", f.WebhookDropRate}, {"webhook_duplicate_rate", f.WebhookDuplicateRate},
	}
	for _, r := range rates {
		if !(r.v >= 0 && r.v <= 1) { // also rejects NaN
			return fmt.Errorf("%s must be between 0 and 1, got %v", r.name, r.v)
		}
	}
	if sum := f.Rate429 + f.Rate500 + f.Rate502 + f.Rate503; sum > 1+1e-9 {
		return fmt.Errorf("rate_429+rate_500+rate_502+rate_503 must not exceed 1, got %v", sum)
	}
	if f.RetryAfterSeconds < 0 {
		return fmt.Errorf("retry_after_seconds must not be negative, got %d", f.RetryAfterSeconds)
	}
	if f.LatencyMS < 0 {
		return fmt.Errorf("latency_ms must not be negative, got %d", f.LatencyMS)
	}
	if f.WebhookDelayMS < 0 {
		return fmt.Errorf("webhook_delay_ms must not be negative, got %d", f.WebhookDelayMS)
	}
	for _, r := range f.Routes {
		if !slices.Contains(routeNames, r) {
			return fmt.Errorf("unknown route %q: use a \"METHOD /v1/...\" template such as %q", r, "POST /v1/users/{user_id}/ban")
		}
	}
	return nil
}

// appliesTo reports whether the faults cover the route name.
func (f *Faults) appliesTo(route string) bool {
	if f == nil {
		return false
	}
	return len(f.Routes) == 0 || slices.Contains(f.Routes, route)
}

func (f *Faults) latency() time.Duration {
	return time.Duration(f.LatencyMS) * time.Millisecond
}

// faultKind is the outcome of one fault draw.
type faultKind int

const (
	faultNone faultKind = iota
	fault429
	fault500
	fault502
	fault503
)

// draw picks at most one status fault for a request.
func (f *Faults) draw() faultKind {
	sum := f.Rate429 + f.Rate500 + f.Rate502 + f.Rate503
	if sum == 0 {
		return faultNone
	}
	x := rand.Float64()
	switch {
	case x < f.Rate429:
		return fault429
	case x < f.Rate429+f.Rate500:
		return fault500
	case x < f.Rate429+f.Rate500+f.Rate502:
		return fault502
	case x < sum:
		return fault503
	}
	return faultNone
}

// drop decides whether to drop the response of a request.
func (f *Faults) drop() bool {
	return f.DropResponseRate > 0 && rand.Float64() < f.DropResponseRate
}

// badGatewayBody is the non-JSON body of an injected 502, as a load
// balancer would send it.
const badGatewayBody = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
