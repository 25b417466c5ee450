package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The drift phase: K out-of-band changes made through the fake's API (as someone in the Clerk
// Dashboard would), one every driftInterval, each on a different managed user, each undoing a
// property its ClerkUser declares. Each is timed from the moment the fake applied it (its answer
// arrived) to the first poll of the fake that shows the user back in the declared state, and
// the manager's Clerk calls are counted from the fake's per-route counters minus the bench's own
// requests (the changes and the polls). The phase runs twice on the same manager: with the
// fake's webhooks lost (fault webhook_drop_rate: 1, so the correction comes from the batched
// observer's change poll or expiry) and with them delivered.

// driftKind is one kind of out-of-band change.
type driftKind string

const (
	driftBan      driftKind = "ban"      // flip the ban: unban a user declared banned (ban one declared not banned)
	driftMFA      driftKind = "mfa"      // enrol a TOTP second factor on a user declared mfa.disabled
	driftMetadata driftKind = "metadata" // overwrite publicMetadata.role, a key the ClerkUser declares
)

// driftKinds are mixed in this order: change j is of kind driftKinds[j%3].
var driftKinds = []driftKind{driftBan, driftMFA, driftMetadata}

// Declared state every ClerkUser holds when the drift phase is on (besides -change's write).
const (
	driftRole      = "member"   // spec.publicMetadata.role; seeded users already hold it with -change ban
	driftIntruder  = "intruder" // the role the out-of-band metadata edit sets
	driftTOTP      = "JBSWY3DPEHPK3PXP"
	driftInterval  = 200 * time.Millisecond
	driftPollEvery = 50 * time.Millisecond
	driftSettle    = time.Second
	maxIDsPerList  = 100 // the fake's (and Clerk's) limit on user_id filter values
)

// Routes the bench itself uses in the drift phase.
const (
	routeList     = "GET /v1/users"
	routeBan      = "POST /v1/users/{user_id}/ban"
	routeUnban    = "POST /v1/users/{user_id}/unban"
	routeUpdate   = "PATCH /v1/users/{user_id}"
	routeMetadata = "PATCH /v1/users/{user_id}/metadata"
)

// DriftResult is what one half of the drift phase measured.
type DriftResult struct {
	Webhooks      bool           `json:"webhooks"`
	Changes       int            `json:"changes"`
	ChangesByKind map[string]int `json:"changes_by_kind"`
	Corrected     int            `json:"corrected"`
	// Time to correction: from the fake's answer to the out-of-band change to the first poll
	// (every PollIntervalMS, sampling the fake's state when it answers) showing it undone.
	P50Seconds     float64 `json:"time_to_correction_p50_seconds"`
	P99Seconds     float64 `json:"time_to_correction_p99_seconds"`
	MaxSeconds     float64 `json:"time_to_correction_max_seconds"`
	PollIntervalMS int64   `json:"poll_interval_ms"`
	// WindowSeconds is from the first change to the end of counting (last correction + 1 s).
	WindowSeconds float64 `json:"window_seconds"`
	// The manager's Clerk calls in the window: the fake's counters minus the bench's requests.
	ManagerCalls              int64              `json:"manager_calls"`
	ManagerCallsByRoute       map[string]int64   `json:"manager_calls_by_route"`
	CallsPerCorrection        float64            `json:"calls_per_correction"`
	CallsPerCorrectionByRoute map[string]float64 `json:"calls_per_correction_by_route"`
	BenchCallsByRoute         map[string]int64   `json:"bench_calls_by_route"`
	RateLimited               int64              `json:"rate_limited"`
	// The fake's webhook counters over the window.
	WebhooksQueued  int64    `json:"webhooks_queued"`
	WebhooksSent    int64    `json:"webhooks_sent"`
	WebhooksDropped int64    `json:"webhooks_dropped"`
	WebhooksFailed  int64    `json:"webhooks_failed"`
	WebhookRetries  int64    `json:"webhook_retries"`
	Warnings        []string `json:"warnings,omitempty"`
	// Samples are the changes one by one, in the order made.
	Samples []DriftSample `json:"samples,omitempty"`
}

// DriftSample is one out-of-band change: when the fake answered it (RFC 3339, ns) and how long
// until a poll showed it corrected (-1: never, or the change failed).
type DriftSample struct {
	UserID  string  `json:"user_id"`
	Kind    string  `json:"kind"`
	Applied string  `json:"applied,omitempty"`
	Seconds float64 `json:"seconds"`
}

// driftSamples lists the changes one by one.
func driftSamples(ids []string, applied, corrected []time.Time) []DriftSample {
	out := make([]DriftSample, len(ids))
	for j, id := range ids {
		out[j] = DriftSample{UserID: id, Kind: string(driftKinds[j%len(driftKinds)]), Seconds: -1}
		if !applied[j].IsZero() {
			out[j].Applied = applied[j].UTC().Format(time.RFC3339Nano)
			if !corrected[j].IsZero() {
				out[j].Seconds = round(corrected[j].Sub(applied[j]).Seconds(), 3)
			}
		}
	}
	return out
}

// driftUser is the part of a Clerk User the drift phase checks.
type driftUser struct {
	ID               string         `json:"id"`
	Banned           bool           `json:"banned"`
	TwoFactorEnabled bool           `json:"two_factor_enabled"`
	PublicMetadata   map[string]any `json:"public_metadata"`
}

// declaredState reports whether u is as its ClerkUser declares in the drift phase: the ban as
// declared, no second factor, publicMetadata.role = driftRole.
func declaredState(u driftUser, banned bool) bool {
	return u.Banned == banned && !u.TwoFactorEnabled && u.PublicMetadata["role"] == driftRole
}

// driftUsers picks the k users of one half: half 0 takes users 0..k-1, half 1 the next k,
// wrapping around n.
func driftUsers(n, k, half int) []int {
	out := make([]int, k)
	for j := range out {
		out[j] = (half*k + j) % n
	}
	return out
}

// driftSecret returns a fresh Svix signing secret, whsec_ and 32 random bytes in base64.
func driftSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
}

// writeSecretFile writes secret into dir for --clerk-webhook-secret-file.
func writeSecretFile(dir, secret string) (string, error) {
	p := filepath.Join(dir, "webhook-secret")
	return p, os.WriteFile(p, []byte(secret+"\n"), 0o600)
}

// subtractCalls returns the manager's calls per route: the fake's counts minus the bench's own,
// leaving out routes at zero. A negative difference (the bench counted a request the fake did
// not, e.g. one that failed in transport) is clamped to zero.
func subtractCalls(fake, own map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for route, n := range fake {
		if n -= own[route]; n > 0 {
			out[route] = n
		}
	}
	return out
}

// sumCalls adds up calls over routes.
func sumCalls(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// durationsOf returns the defined latencies (corrected changes only).
func durationsOf(applied, corrected []time.Time) []time.Duration {
	var out []time.Duration
	for j := range applied {
		if !applied[j].IsZero() && !corrected[j].IsZero() {
			out = append(out, corrected[j].Sub(applied[j]))
		}
	}
	return out
}

// benchClerk is the bench's own client of the fake's /v1 API; it counts its requests per route so
// that they can be told apart from the manager's.
type benchClerk struct {
	base, key string
	hc        *http.Client
	mu        sync.Mutex
	calls     map[string]int64
}

func newBenchClerk(fakeURL, key string) *benchClerk {
	return &benchClerk{base: fakeURL, key: key, hc: &http.Client{Timeout: 30 * time.Second}, calls: map[string]int64{}}
}

// counts returns a copy of the requests made so far, per route.
func (b *benchClerk) counts() map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.calls)
}

// do sends one request and returns the status and body. Every request that got an answer is
// counted under route, as the fake counts it.
func (b *benchClerk) do(ctx context.Context, method, path, route string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+b.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b.mu.Lock()
	b.calls[route]++
	b.mu.Unlock()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// drift makes the out-of-band change of kind k on user id, undoing what its ClerkUser declares.
func (b *benchClerk) drift(ctx context.Context, id string, k driftKind, declaredBanned bool) error {
	var (
		status int
		body   []byte
		err    error
	)
	p := "/v1/users/" + url.PathEscape(id)
	switch k {
	case driftBan:
		if declaredBanned {
			status, body, err = b.do(ctx, http.MethodPost, p+"/unban", routeUnban, nil)
		} else {
			status, body, err = b.do(ctx, http.MethodPost, p+"/ban", routeBan, nil)
		}
	case driftMFA:
		status, body, err = b.do(ctx, http.MethodPatch, p, routeUpdate, map[string]any{"totp_secret": driftTOTP})
	case driftMetadata:
		status, body, err = b.do(ctx, http.MethodPatch, p+"/metadata", routeMetadata,
			map[string]any{"public_metadata": map[string]any{"role": driftIntruder}})
	default:
		return fmt.Errorf("unknown drift kind %q", k)
	}
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s drift on %s: %d %s", k, id, status, bytes.TrimSpace(body))
	}
	return nil
}

// list reads users by ID (at most maxIDsPerList) in one request.
func (b *benchClerk) list(ctx context.Context, ids []string) ([]driftUser, error) {
	q := url.Values{"limit": {fmt.Sprint(maxIDsPerList)}}
	for _, id := range ids {
		q.Add("user_id", id)
	}
	status, body, err := b.do(ctx, http.MethodGet, "/v1/users?"+q.Encode(), routeList, nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("list users: %d %s", status, bytes.TrimSpace(body))
	}
	var us []driftUser
	if err := json.Unmarshal(body, &us); err != nil {
		return nil, fmt.Errorf("decode user list: %w", err)
	}
	return us, nil
}

// setWebhookDelivery turns the fake's webhook delivery on (no faults) or off (every event lost).
func setWebhookDelivery(ctx context.Context, fakeURL string, on bool) error {
	method, body := http.MethodPost, `{"webhook_drop_rate":1}`
	if on {
		method, body = http.MethodDelete, ""
	}
	req, err := http.NewRequestWithContext(ctx, method, fakeURL+"/_fake/faults", bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s /_fake/faults: %s: %s", method, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// driftTracker records, per change, when the fake applied it and when a poll first showed it
// corrected.
type driftTracker struct {
	mu        sync.Mutex
	ids       []string
	applied   []time.Time
	corrected []time.Time
	failed    []bool
	index     map[string]int
}

func newDriftTracker(ids []string) *driftTracker {
	t := &driftTracker{ids: ids, applied: make([]time.Time, len(ids)), corrected: make([]time.Time, len(ids)),
		failed: make([]bool, len(ids)), index: map[string]int{}}
	for j, id := range ids {
		t.index[id] = j
	}
	return t
}

// pending returns the IDs applied and not yet corrected.
func (t *driftTracker) pending() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for j, id := range t.ids {
		if !t.applied[j].IsZero() && t.corrected[j].IsZero() {
			out = append(out, id)
		}
	}
	return out
}

// done reports whether every change is corrected or failed.
func (t *driftTracker) done() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for j := range t.ids {
		if !t.failed[j] && t.corrected[j].IsZero() {
			return false
		}
	}
	return true
}

// observe takes a poll sent at sent and answered at answered: a user in its declared state whose
// change was applied before the poll was sent is corrected, at answered at the latest (the fake
// samples its state after its latency, just before answering).
func (t *driftTracker) observe(us []driftUser, banned bool, sent, answered time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, u := range us {
		j, ok := t.index[u.ID]
		if !ok || t.applied[j].IsZero() || !sent.After(t.applied[j]) || !declaredState(u, banned) {
			continue
		}
		if t.corrected[j].IsZero() || answered.Before(t.corrected[j]) {
			t.corrected[j] = answered
		}
	}
}

// runDrift runs one half of the drift phase on users.
func runDrift(ctx context.Context, o options, fakeURL string, bc *benchClerk, users []int, webhooks bool,
	p *process) (*DriftResult, error) {
	declaredBanned := o.change == changeBan
	if err := setWebhookDelivery(ctx, fakeURL, webhooks); err != nil {
		return nil, err
	}
	ids := make([]string, len(users))
	for j, i := range users {
		ids[j] = userID(i)
	}
	res := &DriftResult{Webhooks: webhooks, Changes: len(ids), ChangesByKind: map[string]int{},
		PollIntervalMS: driftPollEvery.Milliseconds()}
	for j := range ids {
		res.ChangesByKind[string(driftKinds[j%len(driftKinds)])]++
	}
	// Every sampled user must be in its declared state before it drifts.
	for start := 0; start < len(ids); start += maxIDsPerList {
		chunk := ids[start:min(start+maxIDsPerList, len(ids))]
		us, err := bc.list(ctx, chunk)
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			if !declaredState(u, declaredBanned) {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s was not in its declared state before the drift", u.ID))
			}
		}
	}

	tr := newDriftTracker(ids)
	own0 := bc.counts()
	before, err := fetchStats(ctx, fakeURL)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	deadline := start.Add(time.Duration(len(ids))*driftInterval + 2*o.syncPeriod + time.Minute)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	// The changes, one every driftInterval.
	wg.Go(func() {
		for j, id := range ids {
			if err := sleep(ctx, time.Until(start.Add(time.Duration(j)*driftInterval))); err != nil {
				return
			}
			wg.Go(func() {
				err := bc.drift(ctx, id, driftKinds[j%len(driftKinds)], declaredBanned)
				now := time.Now()
				tr.mu.Lock()
				if err != nil {
					tr.failed[j] = true
				} else {
					tr.applied[j] = now
				}
				tr.mu.Unlock()
				if err != nil {
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
				}
			})
		}
	})
	// The polls, one every driftPollEvery, each for every pending user, not waiting for the
	// previous one to answer.
	tick := time.NewTicker(driftPollEvery)
	var polls sync.WaitGroup
	allApplied := func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for j := range ids {
			if tr.applied[j].IsZero() && !tr.failed[j] {
				return false
			}
		}
		return true
	}
	timedOut := false
	for !allApplied() || !tr.done() {
		if time.Now().After(deadline) {
			timedOut = true
			break
		}
		if p.exited() {
			tick.Stop()
			polls.Wait()
			wg.Wait()
			return nil, p.exitError()
		}
		select {
		case <-ctx.Done():
			tick.Stop()
			polls.Wait()
			wg.Wait()
			return nil, ctx.Err()
		case <-tick.C:
		}
		pend := tr.pending()
		for s := 0; s < len(pend); s += maxIDsPerList {
			chunk := pend[s:min(s+maxIDsPerList, len(pend))]
			polls.Go(func() {
				sent := time.Now()
				us, err := bc.list(ctx, chunk)
				if err != nil {
					return // a 429 or a failed poll: the next one will tell
				}
				tr.observe(us, declaredBanned, sent, time.Now())
			})
		}
	}
	tick.Stop()
	polls.Wait()
	wg.Wait()
	// Count the calls that follow a correction closely (a read after the write) too.
	if err := sleep(ctx, driftSettle); err != nil {
		return nil, err
	}
	after, err := fetchStats(ctx, fakeURL)
	if err != nil {
		return nil, err
	}
	res.WindowSeconds = round(time.Since(start).Seconds(), 2)
	own := subtractCalls(bc.counts(), own0)
	d := after.Sub(before)
	res.BenchCallsByRoute = own
	res.ManagerCallsByRoute = subtractCalls(d.ByRoute(), own)
	res.ManagerCalls = sumCalls(res.ManagerCallsByRoute)
	res.RateLimited = d.RateLimited
	res.WebhooksQueued, res.WebhooksSent, res.WebhooksDropped = d.Webhooks.Queued, d.Webhooks.Sent, d.Webhooks.Dropped
	res.WebhooksFailed, res.WebhookRetries = d.Webhooks.Failed, d.Webhooks.Retries

	tr.mu.Lock()
	lat := durationsOf(tr.applied, tr.corrected)
	res.Samples = driftSamples(ids, tr.applied, tr.corrected)
	tr.mu.Unlock()
	res.Corrected = len(lat)
	res.P50Seconds = round(percentile(lat, 50).Seconds(), 3)
	res.P99Seconds = round(percentile(lat, 99).Seconds(), 3)
	res.MaxSeconds = round(percentile(lat, 100).Seconds(), 3)
	res.CallsPerCorrection = round(ratio(float64(res.ManagerCalls), float64(res.Corrected)), 3)
	res.CallsPerCorrectionByRoute = roundMap(perUser(res.ManagerCallsByRoute, res.Corrected), 3)
	if len(errs) > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d changes failed, first: %v", len(errs), errs[0]))
	}
	if timedOut {
		res.Warnings = append(res.Warnings, fmt.Sprintf("only %d of %d changes corrected by the deadline", res.Corrected, res.Changes))
	}
	return res, nil
}
