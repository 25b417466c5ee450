package clerkfake

import (
	"maps"
	"strconv"
	"strings"
	"sync"
)

// Stats counts the /v1 requests the server answered (GET /_fake/stats),
// and the webhook events it sent. Admin routes under /_fake and
// Server.User lookups are not counted.
type Stats struct {
	// Total is the number of /v1 requests, whatever their outcome.
	Total int64 `json:"total"`
	// RateLimited is the number of 429 answers: from the per-key and
	// per-user limits and from injected rate_429 faults.
	RateLimited int64 `json:"rate_limited"`
	// Dropped is the number of requests that were applied but whose
	// response was dropped (drop_response_rate). They are also counted in
	// Requests under the status the handler produced.
	Dropped int64 `json:"dropped"`
	// Requests maps "<METHOD> <route template>" (e.g.
	// "POST /v1/users/{user_id}/ban") to counts per HTTP status ("200", "404").
	// Paths that match no template are counted under "<METHOD> /v1/*".
	Requests map[string]map[string]int64 `json:"requests"`
	// Webhooks counts webhook events and deliveries; all zero when
	// webhooks are off.
	Webhooks WebhookStats `json:"webhooks"`
}

// Count returns the number of requests counted for route (for example
// "PATCH /v1/users/{user_id}/metadata"), over all statuses.
func (s Stats) Count(route string) int64 {
	var n int64
	for _, c := range s.Requests[route] {
		n += c
	}
	return n
}

// CountStatus returns the number of requests counted for route with the
// given HTTP status.
func (s Stats) CountStatus(route string, status int) int64 {
	return s.Requests[route][strconv.Itoa(status)]
}

// Sub returns the requests counted in s and not in before: s minus before, route by route and
// status by status. Zero counts are left out. Webhook counters are subtracted too, except the
// Pending gauge, which keeps the value of s.
func (s Stats) Sub(before Stats) Stats {
	d := Stats{
		Total:       s.Total - before.Total,
		RateLimited: s.RateLimited - before.RateLimited,
		Dropped:     s.Dropped - before.Dropped,
		Requests:    map[string]map[string]int64{},
		Webhooks:    s.Webhooks.sub(before.Webhooks),
	}
	for route, byStatus := range s.Requests {
		for status, n := range byStatus {
			if n -= before.Requests[route][status]; n != 0 {
				if d.Requests[route] == nil {
					d.Requests[route] = map[string]int64{}
				}
				d.Requests[route][status] = n
			}
		}
	}
	return d
}

// ByRoute returns the number of requests per route ("GET /v1/users/{user_id}"), all statuses.
func (s Stats) ByRoute() map[string]int64 {
	out := map[string]int64{}
	for route, byStatus := range s.Requests {
		for _, n := range byStatus {
			out[route] += n
		}
	}
	return out
}

// isRead reports whether a route ("<METHOD> <template>") only reads.
func isRead(route string) bool { return strings.HasPrefix(route, "GET ") }

// Reads returns the number of GET requests (lists, gets, counts), whatever their status.
func (s Stats) Reads() int64 {
	var n int64
	for route, c := range s.ByRoute() {
		if isRead(route) {
			n += c
		}
	}
	return n
}

// Writes returns the number of non-GET requests, whatever their status.
func (s Stats) Writes() int64 {
	var n int64
	for route, c := range s.ByRoute() {
		if !isRead(route) {
			n += c
		}
	}
	return n
}

// counters is the mutable state behind Stats.
type counters struct {
	mu          sync.Mutex
	total       int64
	rateLimited int64
	dropped     int64
	requests    map[string]map[string]int64
	webhooks    WebhookStats
	gen         uint64 // bumped by reset; webhook outcomes of older events are not counted
}

func newCounters() *counters { return &counters{requests: map[string]map[string]int64{}} }

// statusKeys avoids an allocation per request for common statuses.
var statusKeys = func() map[int]string {
	m := map[int]string{}
	for _, c := range []int{200, 400, 401, 402, 403, 404, 409, 422, 429, 500, 502, 503} {
		m[c] = strconv.Itoa(c)
	}
	return m
}()

func (c *counters) record(route string, status int, dropped bool) {
	key, ok := statusKeys[status]
	if !ok {
		key = strconv.Itoa(status)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	if status == 429 {
		c.rateLimited++
	}
	if dropped {
		c.dropped++
	}
	m := c.requests[route]
	if m == nil {
		m = map[string]int64{}
		c.requests[route] = m
	}
	m[key]++
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	req := make(map[string]map[string]int64, len(c.requests))
	for k, v := range c.requests {
		req[k] = maps.Clone(v)
	}
	return Stats{Total: c.total, RateLimited: c.rateLimited, Dropped: c.dropped, Requests: req, Webhooks: c.webhooks}
}

// generation returns the current counters generation, for countHook.
func (c *counters) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// countHook adds one to a webhook counter, unless the event belongs to a
// generation before the last reset.
func (c *counters) countHook(gen uint64, k hookCount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	w := &c.webhooks
	switch k {
	case hookQueued:
		w.Queued++
	case hookSent:
		w.Sent++
	case hookFailed:
		w.Failed++
	case hookDropped:
		w.Dropped++
	case hookQueueFull:
		w.QueueFull++
	case hookDuplicated:
		w.Duplicated++
	case hookRetried:
		w.Retries++
	}
}

func (c *counters) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total, c.rateLimited, c.dropped = 0, 0, 0
	c.requests = map[string]map[string]int64{}
	c.webhooks = WebhookStats{}
	c.gen++
}
