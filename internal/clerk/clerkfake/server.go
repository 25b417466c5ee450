// Package clerkfake is an in-memory stand-in for Clerk's Backend API users
// endpoints (https://api.clerk.com/v1, API version 2026-05-12), for unit
// tests, envtest suites, demos and benchmarks.
//
// It follows bapi/2026-05-12.yml (paths, bodies, bare-array list, status
// codes, ClerkErrors bodies) and the behaviour Clerk documents outside the
// spec: Bearer secret-key auth, 422 form_param_unknown for unknown body
// fields, identifier uniqueness, deep-merge and replace metadata with an 8 KB
// limit, per-key and per-user rate limits answered with 429 and Retry-After.
// On top of that it offers fault injection, added latency and request
// counters for tests, under /_fake (no auth):
//
//	GET    /_fake/stats   → 200, Stats as JSON
//	POST   /_fake/reset   → 204; drops all users, counters and rate-limit state (faults stay)
//	GET    /_fake/faults  → 200, the current Faults
//	POST   /_fake/faults  → 200 echoing the Faults set; 400 for unknown fields or invalid values
//	DELETE /_fake/faults  → 204; clears Faults
//
// A /v1 request goes through these steps, each of which may answer it:
// latency (Options.Latency plus Faults.LatencyMS), authentication (401),
// API version (400), injected status faults (429/500/502/503), the per-key
// limit (429), routing (404, also for the removed POST
// /v1/users/{user_id}/totp), the per-user write limit (429), the handler,
// and finally an injected dropped response. Every /v1 request is counted
// once in Stats.
//
// With Options.WebhookURL and Options.WebhookSecret set, the fake sends
// webhooks like Clerk (through Svix): every change of a user, whether made
// through /v1, Seed or Reset (POST /_fake/reset), produces one signed
// user.created, user.updated or user.deleted event, delivered
// asynchronously with retries; see Options.WebhookURL and Faults for the
// webhook faults. Close stops the sender.
package clerkfake

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultSecretKey is the key accepted when Options.SecretKey is empty.
const DefaultSecretKey = "sk_test_fake"

// APIVersion is the Clerk-API-Version the fake implements and assumes when a
// request names none.
const APIVersion = "2026-05-12"

// knownVersions are Clerk's published API versions.
var knownVersions = []string{"2021-02-05", "2024-10-01", "2025-04-10", "2025-11-10", "2026-05-12"}

// Options configures a Server. The zero value is usable: key sk_test_fake,
// no rate limits, no latency, locks that never expire.
type Options struct {
	// SecretKey is the only key accepted as "Authorization: Bearer <key>";
	// empty means DefaultSecretKey.
	SecretKey string
	// RateLimit is the number of /v1 requests allowed per key in any 10 s
	// window; 0 turns the limit off; a negative value selects Clerk's
	// default for the key type (100 for sk_test_, 1000 for sk_live_).
	RateLimit int
	// PerUserRateLimit is the number of writes allowed per user in any 10 s
	// window on PATCH /v1/users/{user_id} and PATCH|PUT
	// /v1/users/{user_id}/metadata; 0 turns the limit off.
	PerUserRateLimit int
	// Latency is added to every /v1 response.
	Latency time.Duration
	// LockoutSeconds is the lockout_expires_in_seconds that POST
	// /v1/users/{user_id}/lock sets; nil means null (the lock never
	// expires). A finite lock counts down and lifts itself.
	LockoutSeconds *int64
	// Now is the clock for timestamps, rate limits, lockouts and TOTP
	// checks; nil means time.Now. Webhook scheduling and svix-timestamp
	// use the real clock; the event envelope's timestamp uses Now.
	Now func() time.Time

	// WebhookURL and WebhookSecret (a Svix signing secret, "whsec_" and
	// base64) turn webhooks on; both or neither must be set, and New
	// panics on an invalid pair (see ValidateWebhookConfig). Every change
	// of a user then POSTs one event in Clerk's envelope,
	//
	//	{"data": <User JSON after the change, as GET /v1/users/{user_id} returns it>,
	//	 "object": "event", "type": "user.updated", "timestamp": <ms>,
	//	 "instance_id": "ins_fake",
	//	 "event_attributes": {"http_request": {"client_ip": "…", "user_agent": "…"}}}
	//
	// (for user.deleted, data is {"deleted": true, "id": "user_…",
	// "object": "user"}), signed like Svix: svix-id (msg_…),
	// svix-timestamp (Unix seconds of the attempt) and svix-signature
	// ("v1,<base64 HMAC-SHA256 of id.timestamp.body>"). A request that
	// changes nothing (ban of a banned user) sends nothing.
	//
	// Delivery never slows the API: one sender goroutine takes events
	// from a bounded queue (WebhookQueueSize deliveries pending at most;
	// more are dropped and counted) and retries non-2xx answers,
	// connection errors and timeouts after WebhookRetryDelays. Like Svix,
	// order is not guaranteed once retries or delays are involved;
	// without them events leave in the order of the changes.
	WebhookURL    string
	WebhookSecret string
	// WebhookRetryDelays are the pauses before the retries of a failed
	// delivery; it makes len+1 attempts. nil means
	// DefaultWebhookRetryDelays (100 ms, 500 ms, 2 s); an empty non-nil
	// slice means a single attempt.
	WebhookRetryDelays []time.Duration
	// WebhookTimeout bounds each attempt; 0 means DefaultWebhookTimeout.
	WebhookTimeout time.Duration
	// WebhookQueueSize caps the pending deliveries; 0 means
	// DefaultWebhookQueueSize.
	WebhookQueueSize int
	// WebhookClient sends the deliveries; nil means a plain http.Client.
	WebhookClient *http.Client
}

// Server is the fake Clerk Backend API. It implements http.Handler and
// serves /v1/... and /_fake/...; it is safe for concurrent use.
type Server struct {
	key        string
	rateLimit  int
	userLimit  int
	latency    time.Duration
	lockoutSec *int64
	now        func() time.Time

	st      *store
	limits  *limiter
	stats   *counters
	faults  atomic.Pointer[Faults]
	handler http.Handler
	hooks   *webhookSender // nil when webhooks are off
}

// New returns a Server configured by opts. With webhooks on it starts the
// sender goroutine, which Close stops; without them the Server holds no
// goroutine and needs no Close.
func New(opts Options) *Server {
	if err := ValidateWebhookConfig(opts.WebhookURL, opts.WebhookSecret); err != nil {
		panic("clerkfake: invalid webhook options: " + err.Error())
	}
	s := &Server{
		key:       opts.SecretKey,
		rateLimit: opts.RateLimit,
		userLimit: opts.PerUserRateLimit,
		latency:   opts.Latency,
		now:       opts.Now,
		st:        newStore(),
		limits:    newLimiter(),
		stats:     newCounters(),
	}
	if s.key == "" {
		s.key = DefaultSecretKey
	}
	if s.rateLimit < 0 {
		s.rateLimit = DefaultRateLimitForKey(s.key)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.LockoutSeconds != nil {
		s.lockoutSec = new(*opts.LockoutSeconds)
	}
	if opts.WebhookURL != "" {
		s.hooks = newWebhookSender(opts, s.stats)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_fake/stats", s.handleStats)
	mux.HandleFunc("POST /_fake/reset", s.handleReset)
	mux.HandleFunc("GET /_fake/faults", s.handleGetFaults)
	mux.HandleFunc("POST /_fake/faults", s.handleSetFaults)
	mux.HandleFunc("DELETE /_fake/faults", s.handleClearFaults)
	mux.HandleFunc("/_fake/", func(w http.ResponseWriter, r *http.Request) {
		writeAdminError(w, http.StatusNotFound, "unknown admin route "+r.Method+" "+r.URL.Path)
	})
	mux.HandleFunc("/v1/", s.serveAPI)
	mux.HandleFunc("/v1", s.serveAPI)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeReply(w, fail(errRouteNotFound()), newTraceID())
	})
	s.handler = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Reset drops all users, request counters and rate-limit state. Faults stay
// as they are (ClearFaults removes them). With webhooks on, every dropped
// user gets a user.deleted event (oldest user first); the webhook counters
// are cleared after those events are queued, so they, like deliveries
// still pending, are not counted afterwards.
func (s *Server) Reset() { s.reset(nil) }

func (s *Server) reset(r *http.Request) {
	s.st.mu.Lock()
	if s.hooks != nil {
		users := slices.Collect(maps.Values(s.st.users))
		slices.SortFunc(users, func(a, b *user) int { return cmp.Compare(a.seq, b.seq) })
		now := s.now()
		for _, u := range users {
			s.emitDeleted(u.data.ID, now, r)
		}
	}
	s.st.clear()
	s.st.mu.Unlock()
	s.stats.reset()
	s.limits.reset()
}

// SetFaults replaces the fault-injection settings. It rejects rates outside
// [0,1], status-fault rates summing to more than 1, negative durations and
// unknown route templates.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	f.Routes = append([]string(nil), f.Routes...)
	s.faults.Store(&f)
	return nil
}

// ClearFaults removes all fault injection.
func (s *Server) ClearFaults() { s.faults.Store(nil) }

// Stats returns a snapshot of the request and webhook counters (as GET
// /_fake/stats).
func (s *Server) Stats() Stats {
	st := s.stats.snapshot()
	if s.hooks != nil {
		st.Webhooks.Pending = s.hooks.pending.Load()
	}
	return st
}

// User returns the current User JSON of id, exactly as GET /v1/users/{id}
// would, without counting a request. ok is false when no such user exists.
func (s *Server) User(id string) (json.RawMessage, bool) {
	s.st.mu.RLock()
	defer s.st.mu.RUnlock()
	u := s.st.users[id]
	if u == nil {
		return nil, false
	}
	return append(json.RawMessage(nil), u.render(s.nowMS())...), true
}

// UserCount returns the number of stored users.
func (s *Server) UserCount() int {
	s.st.mu.RLock()
	defer s.st.mu.RUnlock()
	return len(s.st.users)
}

func (s *Server) nowMS() int64 { return s.now().UnixMilli() }

// call is one /v1 request being handled.
type call struct {
	r       *http.Request
	params  map[string]string
	version string
	now     time.Time
}

func (c *call) userID() string { return c.params["user_id"] }

func newTraceID() string {
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}

// serveAPI runs a /v1 request through the pipeline: latency, auth, API
// version, injected faults, per-key limit, per-user limit, handler, and
// possibly a dropped response. Every request is counted once.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	rt, params, name := match(r.Method, r.URL.EscapedPath())
	faults := s.faults.Load()
	if !faults.appliesTo(name) {
		faults = nil
	}
	delay := s.latency
	if faults != nil {
		delay += faults.latency()
	}
	if delay > 0 {
		// Stop waiting when the client gives up, but still handle the
		// request: the server did the work, the client lost the answer.
		wait(r.Context(), delay)
	}

	trace := newTraceID()
	rp, dropped := s.handleAPI(r, rt, params, faults)
	s.stats.record(name, rp.status, dropped)
	if dropped {
		dropConnection(w)
		return
	}
	s.writeReply(w, rp, trace)
}

func (s *Server) handleAPI(r *http.Request, rt *route, params map[string]string, faults *Faults) (reply, bool) {
	if e := s.authenticate(r); e != nil {
		return fail(e), false
	}
	version, e := apiVersion(r)
	if e != nil {
		return fail(e), false
	}
	if faults != nil {
		switch faults.draw() {
		case fault429:
			return fail(errRateLimited(faults.RetryAfterSeconds)), false
		case fault500:
			return fail(errInternal()), false
		case fault502:
			return reply{status: http.StatusBadGateway, body: []byte(badGatewayBody), contentType: "text/html"}, false
		case fault503:
			return fail(errMaintenance()), false
		}
	}
	now := s.now()
	if ra := s.limits.allowKey(s.key, s.rateLimit, now); ra > 0 {
		return fail(errRateLimited(ra)), false
	}
	if rt == nil {
		return fail(errRouteNotFound()), false
	}
	if rt.perUser {
		if ra := s.limits.allowUser(params["user_id"], s.userLimit, now); ra > 0 {
			return fail(errRateLimited(ra)), false
		}
	}
	rp := rt.handle(s, &call{r: r, params: params, version: version, now: now})
	return rp, faults != nil && faults.drop()
}

// authenticate checks "Authorization: Bearer <secret key>".
func (s *Server) authenticate(r *http.Request) *apiError {
	h := r.Header.Get("Authorization")
	if h == "" {
		return errAuthMissing()
	}
	scheme, key, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" || strings.Contains(key, " ") {
		return errAuthFormat()
	}
	if key != s.key {
		return errKeyInvalid()
	}
	return nil
}

// apiVersion reads Clerk-API-Version or __clerk_api_version (not both).
func apiVersion(r *http.Request) (string, *apiError) {
	h := r.Header.Get("Clerk-API-Version")
	q := r.URL.Query().Get("__clerk_api_version")
	if h != "" && q != "" {
		return "", errBadRequest("Send the API version either in the Clerk-API-Version header or in the __clerk_api_version query parameter, not both.",
			paramMeta("Clerk-API-Version"))
	}
	v := h
	if v == "" {
		v = q
	}
	if v == "" {
		return APIVersion, nil
	}
	if slices.Contains(knownVersions, v) {
		return v, nil
	}
	return "", errBadRequest("Invalid API version "+v+". Known versions: "+strings.Join(knownVersions, ", ")+".",
		paramMeta("Clerk-API-Version"))
}

func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// writeReply writes a computed reply with Clerk's headers.
func (s *Server) writeReply(w http.ResponseWriter, rp reply, trace string) {
	body := rp.body
	ct := rp.contentType
	if rp.err != nil {
		er := rp.err.reply(trace)
		body, ct, rp.retryAfter = er.body, er.contentType, er.retryAfter
	}
	h := w.Header()
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	if rp.status != http.StatusBadGateway {
		h.Set("Clerk-Trace-Id", trace)
	}
	if rp.retryAfter != "" {
		h.Set("Retry-After", rp.retryAfter)
	}
	w.WriteHeader(rp.status)
	_, _ = w.Write(body)
}

// dropConnection closes the client connection without writing a response.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// HTTP/2 or a wrapped writer: let net/http abort the stream.
	panic(http.ErrAbortHandler)
}

// Admin routes.

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeAdminError(w http.ResponseWriter, status int, msg string) {
	writeAdminJSON(w, status, map[string]string{"error": msg})
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeAdminJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) handleReset(w http.ResponseWriter, r *http.Request) {
	s.reset(r)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleGetFaults(w http.ResponseWriter, _ *http.Request) {
	f := s.faults.Load()
	if f == nil {
		f = &Faults{}
	}
	writeAdminJSON(w, http.StatusOK, f)
}

func (s *Server) handleSetFaults(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	var f Faults
	if err := dec.Decode(&f); err != nil {
		writeAdminError(w, http.StatusBadRequest, "invalid faults: "+err.Error())
		return
	}
	if dec.More() {
		writeAdminError(w, http.StatusBadRequest, "invalid faults: trailing data after the JSON object")
		return
	}
	if err := s.SetFaults(f); err != nil {
		writeAdminError(w, http.StatusBadRequest, "invalid faults: "+err.Error())
		return
	}
	writeAdminJSON(w, http.StatusOK, f)
}

func (s *Server) handleClearFaults(w http.ResponseWriter, _ *http.Request) {
	s.ClearFaults()
	w.WriteHeader(http.StatusNoContent)
}

// SeedFile reads a JSON file holding an array of (partial) Clerk User
// objects and seeds them (see Seed). Errors name the file and, for a bad
// user, the entry index.
func (s *Server) SeedFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read seed file: %w", err)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return fmt.Errorf("seed file %s: want a JSON array of User objects", path)
		}
		return fmt.Errorf("seed file %s: invalid JSON: %w", path, err)
	}
	if err := s.Seed(entries); err != nil {
		return fmt.Errorf("seed file %s: %w", path, err)
	}
	return nil
}
