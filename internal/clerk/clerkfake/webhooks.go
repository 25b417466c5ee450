package clerkfake

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	svix "github.com/svix/svix-webhooks/go"
)

// Webhook event types the fake sends (Clerk's user.* events).
const (
	EventUserCreated = "user.created"
	EventUserUpdated = "user.updated"
	EventUserDeleted = "user.deleted"
)

// InstanceID is the instance_id of every webhook event (and the iid of
// the fake's image URLs).
const InstanceID = "ins_fake"

// Webhook delivery defaults (Options.Webhook*). Svix retries for days; the
// fake keeps Svix's shape (a first attempt, then retries after growing
// pauses) on a test-friendly time scale.
const (
	DefaultWebhookQueueSize = 10000
	DefaultWebhookTimeout   = 5 * time.Second
)

// DefaultWebhookRetryDelays are the pauses before the retries of a failed
// delivery when Options.WebhookRetryDelays is nil: four attempts in all.
var DefaultWebhookRetryDelays = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}

// webhookSecretPrefix starts every Svix signing secret.
const webhookSecretPrefix = "whsec_"

// webhookUserAgent is sent with every delivery, in the style of Svix's sender.
const webhookUserAgent = "Svix-Webhooks/1.44.0 (clerkfake)"

// ValidateWebhookConfig checks a webhook endpoint and signing secret as
// Options.WebhookURL and Options.WebhookSecret take them: both or neither;
// an absolute http or https URL; a secret "whsec_" followed by the
// standard base64 encoding of a non-empty key.
func ValidateWebhookConfig(endpoint, secret string) error {
	if endpoint == "" && secret == "" {
		return nil
	}
	if endpoint == "" || secret == "" {
		return errors.New("webhook URL and webhook secret must be set together")
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhook URL %q is not an absolute http or https URL", endpoint)
	}
	key, ok := strings.CutPrefix(secret, webhookSecretPrefix)
	if !ok {
		return fmt.Errorf("webhook secret must start with %q (a Svix signing secret)", webhookSecretPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return fmt.Errorf("webhook secret: the part after %q is not valid base64: %w", webhookSecretPrefix, err)
	}
	if len(raw) == 0 {
		return fmt.Errorf("webhook secret: the key after %q is empty", webhookSecretPrefix)
	}
	return nil
}

// WebhookStats counts webhook events and deliveries (Stats.Webhooks).
// Every event that is not dropped is delivered once, or twice when
// duplicated; each delivery ends as sent or failed, so Queued + Duplicated
// = Sent + Failed + Pending for the events since the last Reset.
type WebhookStats struct {
	// Queued is the number of events accepted for delivery.
	Queued int64 `json:"queued"`
	// Sent is the number of deliveries answered with a 2xx status; a
	// duplicated event counts twice.
	Sent int64 `json:"sent"`
	// Failed is the number of deliveries given up after the last attempt.
	Failed int64 `json:"failed"`
	// Dropped is the number of events never sent: webhook_drop_rate, a
	// full queue, or a change after Close.
	Dropped int64 `json:"dropped"`
	// QueueFull is the part of Dropped due to a full queue.
	QueueFull int64 `json:"queue_full"`
	// Duplicated is the number of extra deliveries of an event
	// (webhook_duplicate_rate): the same message, same svix-id.
	Duplicated int64 `json:"duplicated"`
	// Retries is the number of attempts after a failed attempt (non-2xx
	// status, connection error or timeout).
	Retries int64 `json:"retries"`
	// Pending is the number of deliveries not finished yet: queued,
	// delayed, waiting for a retry or in flight. It is a gauge: Reset does
	// not clear it and Stats.Sub keeps the newer value.
	Pending int64 `json:"pending"`
}

func (w WebhookStats) sub(before WebhookStats) WebhookStats {
	return WebhookStats{
		Queued:     w.Queued - before.Queued,
		Sent:       w.Sent - before.Sent,
		Failed:     w.Failed - before.Failed,
		Dropped:    w.Dropped - before.Dropped,
		QueueFull:  w.QueueFull - before.QueueFull,
		Duplicated: w.Duplicated - before.Duplicated,
		Retries:    w.Retries - before.Retries,
		Pending:    w.Pending,
	}
}

// hookCount names one webhook counter.
type hookCount int

const (
	hookQueued hookCount = iota
	hookSent
	hookFailed
	hookDropped
	hookQueueFull
	hookDuplicated
	hookRetried
)

// webhookEnvelope is Clerk's event envelope.
type webhookEnvelope struct {
	Data            json.RawMessage `json:"data"`
	Object          string          `json:"object"`
	Type            string          `json:"type"`
	Timestamp       int64           `json:"timestamp"`
	InstanceID      string          `json:"instance_id"`
	EventAttributes eventAttributes `json:"event_attributes"`
}

type eventAttributes struct {
	HTTPRequest httpRequestAttributes `json:"http_request"`
}

type httpRequestAttributes struct {
	ClientIP  string `json:"client_ip"`
	UserAgent string `json:"user_agent"`
}

// deletedUserData is the data of a user.deleted event.
type deletedUserData struct {
	Deleted bool   `json:"deleted"`
	ID      string `json:"id"`
	Object  string `json:"object"`
}

func requestAttributes(r *http.Request) httpRequestAttributes {
	if r == nil {
		return httpRequestAttributes{}
	}
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	return httpRequestAttributes{ClientIP: ip, UserAgent: r.UserAgent()}
}

// emitUser sends a user.created or user.updated event whose data is the
// User JSON after the change. r is the request that made the change (nil
// for Seed and Reset). Callers hold st.mu, so events enter the queue in
// the order of the changes. Without webhooks it does nothing.
func (s *Server) emitUser(typ string, userJSON []byte, now time.Time, r *http.Request) {
	if s.hooks == nil {
		return
	}
	s.emit(typ, userJSON, now, r)
}

// emitDeleted sends a user.deleted event. Callers hold st.mu.
func (s *Server) emitDeleted(id string, now time.Time, r *http.Request) {
	if s.hooks == nil {
		return
	}
	data, err := json.Marshal(deletedUserData{Deleted: true, ID: id, Object: "user"})
	if err != nil {
		panic("clerkfake: encode deleted user: " + err.Error())
	}
	s.emit(EventUserDeleted, data, now, r)
}

func (s *Server) emit(typ string, data []byte, now time.Time, r *http.Request) {
	body, err := json.Marshal(webhookEnvelope{
		Data: data, Object: "event", Type: typ, Timestamp: now.UnixMilli(), InstanceID: InstanceID,
		EventAttributes: eventAttributes{HTTPRequest: requestAttributes(r)},
	})
	if err != nil {
		panic("clerkfake: encode webhook event: " + err.Error()) // only plain JSON values
	}
	s.hooks.enqueue(body, s.faults.Load())
}

// WaitWebhooks blocks until no webhook delivery is pending (queued,
// delayed, waiting for a retry or in flight), the sender is closed, or ctx
// is done. Without webhooks it returns nil at once.
func (s *Server) WaitWebhooks(ctx context.Context) error {
	if s.hooks == nil {
		return nil
	}
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for s.hooks.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.hooks.done: // closed: nothing will be delivered any more
			return nil
		case <-t.C:
		}
	}
	return nil
}

// Close stops the webhook sender: deliveries in flight are aborted,
// pending ones are abandoned, and changes made afterwards send nothing
// (they count as dropped). The API keeps working. Close is idempotent and
// returns nil; without webhooks it does nothing.
func (s *Server) Close() error {
	if s.hooks != nil {
		s.hooks.close()
	}
	return nil
}

// hookMsg is one delivery of an event: a duplicated event has two.
type hookMsg struct {
	id      string // svix-id, msg_…
	body    []byte
	gen     uint64 // counters generation at enqueue; outcomes of older generations are not counted
	due     time.Time
	attempt int    // attempts made
	seq     uint64 // FIFO order among equal due times
}

// msgHeap orders deliveries by due time, then by seq.
type msgHeap []*hookMsg

func (h msgHeap) Len() int { return len(h) }
func (h msgHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h msgHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *msgHeap) Push(x any)   { *h = append(*h, x.(*hookMsg)) }
func (h *msgHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return m
}

// webhookSender delivers events from one goroutine: a bounded queue feeds
// a schedule ordered by due time (delays and retry backoff), so a delayed
// or retried event never holds up the others.
type webhookSender struct {
	endpoint string
	signer   *svix.Webhook
	client   *http.Client
	timeout  time.Duration
	delays   []time.Duration
	limit    int64
	stats    *counters

	queue   chan *hookMsg
	pending atomic.Int64
	closed  atomic.Bool
	seq     atomic.Uint64

	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// newWebhookSender starts the sender goroutine. opts passed
// ValidateWebhookConfig.
func newWebhookSender(opts Options, stats *counters) *webhookSender {
	signer, err := svix.NewWebhook(opts.WebhookSecret)
	if err != nil {
		panic("clerkfake: invalid Options.WebhookSecret: " + err.Error())
	}
	h := &webhookSender{
		endpoint: opts.WebhookURL,
		signer:   signer,
		client:   opts.WebhookClient,
		timeout:  opts.WebhookTimeout,
		delays:   slices.Clone(opts.WebhookRetryDelays),
		limit:    int64(opts.WebhookQueueSize),
		stats:    stats,
		done:     make(chan struct{}),
	}
	if h.client == nil {
		h.client = &http.Client{}
	}
	if h.timeout <= 0 {
		h.timeout = DefaultWebhookTimeout
	}
	if opts.WebhookRetryDelays == nil {
		h.delays = slices.Clone(DefaultWebhookRetryDelays)
	}
	if h.limit <= 0 {
		h.limit = DefaultWebhookQueueSize
	}
	h.queue = make(chan *hookMsg, h.limit)
	h.ctx, h.cancel = context.WithCancel(context.Background())
	go h.run()
	return h
}

func (h *webhookSender) nextSeq() uint64 { return h.seq.Add(1) }

// enqueue applies the webhook faults to a new event and queues its
// deliveries. It never blocks.
func (h *webhookSender) enqueue(body []byte, f *Faults) {
	gen := h.stats.generation()
	if h.closed.Load() {
		h.stats.countHook(gen, hookDropped)
		return
	}
	copies := int64(1)
	var delay time.Duration
	if f != nil {
		if f.WebhookDropRate > 0 && rand.Float64() < f.WebhookDropRate {
			h.stats.countHook(gen, hookDropped)
			return
		}
		if f.WebhookDuplicateRate > 0 && rand.Float64() < f.WebhookDuplicateRate {
			copies = 2
		}
		delay = time.Duration(f.WebhookDelayMS) * time.Millisecond
	}
	// The queue's capacity equals the limit on pending deliveries, so the
	// sends below cannot block.
	if h.pending.Add(copies) > h.limit {
		h.pending.Add(-copies)
		h.stats.countHook(gen, hookDropped)
		h.stats.countHook(gen, hookQueueFull)
		return
	}
	h.stats.countHook(gen, hookQueued)
	if copies == 2 {
		h.stats.countHook(gen, hookDuplicated)
	}
	id, due := newID("msg"), time.Now().Add(delay)
	for range copies {
		h.queue <- &hookMsg{id: id, body: body, gen: gen, due: due, seq: h.nextSeq()}
	}
}

func (h *webhookSender) close() {
	h.closeOnce.Do(func() {
		h.closed.Store(true)
		h.cancel()
		<-h.done
		h.pending.Store(0) // abandoned
	})
}

// run is the sender goroutine.
func (h *webhookSender) run() {
	defer close(h.done)
	var due msgHeap
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		h.drain(&due)
		if h.ctx.Err() != nil {
			return
		}
		now := time.Now()
		if due.Len() > 0 && !due[0].due.After(now) {
			h.deliver(heap.Pop(&due).(*hookMsg), &due)
			continue
		}
		var fire <-chan time.Time
		if due.Len() > 0 {
			timer.Reset(due[0].due.Sub(now))
			fire = timer.C
		}
		select {
		case m := <-h.queue:
			heap.Push(&due, m)
		case <-fire:
		case <-h.ctx.Done():
			return
		}
		timer.Stop()
	}
}

// drain moves every queued delivery into the schedule.
func (h *webhookSender) drain(due *msgHeap) {
	for {
		select {
		case m := <-h.queue:
			heap.Push(due, m)
		default:
			return
		}
	}
}

// deliver makes one attempt and schedules a retry or finishes the delivery.
func (h *webhookSender) deliver(m *hookMsg, due *msgHeap) {
	ok := h.post(m)
	if h.ctx.Err() != nil {
		return // closed while sending: abandoned, not counted
	}
	m.attempt++
	switch {
	case ok:
		h.stats.countHook(m.gen, hookSent)
	case m.attempt <= len(h.delays):
		h.stats.countHook(m.gen, hookRetried)
		m.due = time.Now().Add(h.delays[m.attempt-1])
		m.seq = h.nextSeq()
		heap.Push(due, m)
		return
	default:
		h.stats.countHook(m.gen, hookFailed)
	}
	h.pending.Add(-1)
}

// post sends one signed attempt and reports whether it got a 2xx answer.
// Each attempt is signed afresh with its own svix-timestamp, as Svix does.
func (h *webhookSender) post(m *hookMsg) bool {
	ctx, cancel := context.WithTimeout(h.ctx, h.timeout)
	defer cancel()
	now := time.Now()
	sig, err := h.signer.Sign(m.id, now, m.body)
	if err != nil {
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.endpoint, bytes.NewReader(m.body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", webhookUserAgent)
	req.Header.Set("svix-id", m.id)
	req.Header.Set("svix-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("svix-signature", sig)
	res, err := h.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	return res.StatusCode >= 200 && res.StatusCode < 300
}
