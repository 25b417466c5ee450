package clerkfake

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	svix "github.com/svix/svix-webhooks/go"
)

// testWebhookSecret is a Svix signing secret ("whsec_" + base64 of 24 bytes).
var testWebhookSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("kubeclerk-fake-secret-24"))

// delivery is one webhook request as the receiver saw it.
type delivery struct {
	header http.Header
	body   []byte
	at     time.Time
}

// event decodes the delivery's envelope.
func (d delivery) event(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(d.body, &m); err != nil {
		t.Fatalf("webhook body is not JSON: %v: %s", err, d.body)
	}
	return m
}

// receiver is an httptest webhook endpoint that records every request.
type receiver struct {
	t      *testing.T
	ts     *httptest.Server
	mu     sync.Mutex
	got    []delivery
	status func(n int) int // answer to the n-th request (1-based); nil = 204
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	t.Helper()
	rc := &receiver{t: t, status: status}
	rc.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, delivery{header: r.Header.Clone(), body: b, at: time.Now()})
		n := len(rc.got)
		rc.mu.Unlock()
		code := http.StatusNoContent
		if rc.status != nil {
			code = rc.status(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.ts.Close)
	return rc
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

// waitN waits until at least n deliveries arrived and returns them.
func (rc *receiver) waitN(n int) []delivery {
	rc.t.Helper()
	eventually(rc.t, 10*time.Second, func() bool { return len(rc.deliveries()) >= n }, "webhook deliveries: want "+strconv.Itoa(n))
	return rc.deliveries()
}

// hookFixture is a fixture whose server sends webhooks to a receiver.
type hookFixture struct {
	*fixture
	rc   *receiver
	seen int // deliveries checked so far
}

// newHookFixture starts a receiver and a server sending webhooks to it,
// with short retry delays unless opts sets them.
func newHookFixture(t *testing.T, opts Options, status func(n int) int) *hookFixture {
	t.Helper()
	rc := newReceiver(t, status)
	opts.WebhookURL, opts.WebhookSecret = rc.ts.URL+"/webhooks/clerk/default", testWebhookSecret
	if opts.WebhookRetryDelays == nil {
		opts.WebhookRetryDelays = []time.Duration{5 * time.Millisecond, 10 * time.Millisecond}
	}
	f := newFixture(t, opts)
	t.Cleanup(func() { _ = f.srv.Close() })
	return &hookFixture{fixture: f, rc: rc}
}

// settle waits until no delivery is pending.
func (h *hookFixture) settle() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), 10*time.Second)
	defer cancel()
	if err := h.srv.WaitWebhooks(ctx); err != nil {
		h.t.Fatalf("WaitWebhooks: %v (stats %+v)", err, h.srv.Stats().Webhooks)
	}
}

// expect waits for the deliveries of the last change and checks that they
// are exactly the events typ for ids, in order. For user.created and
// user.updated, data must equal GET /v1/users/{id}.
func (h *hookFixture) expect(typ string, ids ...string) []map[string]any {
	h.t.Helper()
	h.settle()
	got := h.rc.deliveries()
	if len(got) != h.seen+len(ids) {
		types := make([]string, 0, len(got))
		for _, d := range got[min(h.seen, len(got)):] {
			types = append(types, str(d.event(h.t), "type"))
		}
		h.t.Fatalf("want %d new %s event(s), got %d: %v", len(ids), typ, len(got)-h.seen, types)
	}
	out := make([]map[string]any, 0, len(ids))
	for i, id := range ids {
		ev := got[h.seen+i].event(h.t)
		h.checkEnvelope(ev, typ)
		data, _ := ev["data"].(map[string]any)
		if typ == EventUserDeleted {
			want := map[string]any{"deleted": true, "id": id, "object": "user"}
			if diff := cmp.Diff(want, data); diff != "" {
				h.t.Errorf("user.deleted data (-want +got):\n%s", diff)
			}
		} else {
			cur := h.do("GET", "/users/"+id, nil).ok(h.t)
			if diff := cmp.Diff(cur, data); diff != "" {
				h.t.Errorf("%s data differs from GET /v1/users/%s (-get +event):\n%s", typ, id, diff)
			}
		}
		out = append(out, ev)
	}
	h.seen += len(ids)
	return out
}

func (h *hookFixture) checkEnvelope(ev map[string]any, typ string) {
	h.t.Helper()
	if str(ev, "type") != typ || str(ev, "object") != "event" || str(ev, "instance_id") != InstanceID {
		h.t.Errorf("envelope type %v object %v instance_id %v, want %s event %s", ev["type"], ev["object"], ev["instance_id"], typ, InstanceID)
	}
	if num(ev, "timestamp") != h.clock.Now().UnixMilli() {
		h.t.Errorf("timestamp %v, want the fake clock's %d", ev["timestamp"], h.clock.Now().UnixMilli())
	}
	attrs, _ := ev["event_attributes"].(map[string]any)
	req, _ := attrs["http_request"].(map[string]any)
	if _, ok := req["client_ip"].(string); !ok {
		h.t.Errorf("event_attributes.http_request.client_ip missing: %v", ev["event_attributes"])
	}
	if _, ok := req["user_agent"].(string); !ok {
		h.t.Errorf("event_attributes.http_request.user_agent missing: %v", ev["event_attributes"])
	}
	if len(ev) != 6 {
		h.t.Errorf("envelope has fields %v, want data, object, type, timestamp, instance_id, event_attributes", keys(ev))
	}
}

func keys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

func TestWebhookEveryChange(t *testing.T) {
	h := newHookFixture(t, Options{}, nil)
	f := h.fixture

	u := f.create(map[string]any{"email_address": []string{"hook@example.com"}, "password": "correct-horse-battery",
		"web3_wallet": []string{"0x0123456789abcdef0123456789abcdef01234567"}})
	id := str(u, "id")
	ev := h.expect(EventUserCreated, id)[0]
	attrs := ev["event_attributes"].(map[string]any)["http_request"].(map[string]any)
	if attrs["client_ip"] != "127.0.0.1" || !strings.HasPrefix(str(attrs, "user_agent"), "Go-http-client/") {
		t.Errorf("event_attributes of an API change: %v", attrs)
	}

	steps := []struct {
		method, path string
		body         any
	}{
		{"PATCH", "", map[string]any{"first_name": "Hook"}},
		{"PATCH", "/metadata", map[string]any{"public_metadata": map[string]any{"team": "a"}}},
		{"PUT", "/metadata", map[string]any{"private_metadata": map[string]any{"k": 1}}},
		{"POST", "/ban", nil},
		{"POST", "/unban", nil},
		{"POST", "/lock", nil},
		{"POST", "/unlock", nil},
		{"PATCH", "", map[string]any{"totp_secret": "JBSWY3DPEHPK3PXP"}}, // TOTP enrolment
		{"DELETE", "/totp", nil},
		{"PATCH", "", map[string]any{"backup_codes": []string{"bk-1"}}},
		{"POST", "/verify_totp", map[string]any{"code": "bk-1"}}, // consumes the last backup code
		{"PATCH", "", map[string]any{"totp_secret": "JBSWY3DPEHPK3PXP", "backup_codes": []string{"bk-2", "bk-3"}}},
		{"DELETE", "/backup_code", nil},
		{"DELETE", "/mfa", nil}, // DisableMfa
		{"POST", "/remove_password", nil},
		{"DELETE", "/web3_wallets/" + str(u["web3_wallets"].([]any)[0].(map[string]any), "id"), nil},
		{"DELETE", "/profile_image", nil}, // no image yet: no change, no event (checked below)
	}
	for i, s := range steps {
		r := f.do(s.method, "/users/"+id+s.path, s.body)
		if r.status != 200 {
			t.Fatalf("step %d %s %s: %d %s", i, s.method, s.path, r.status, r.body)
		}
		if i == len(steps)-1 {
			h.expect(EventUserUpdated)
			continue
		}
		h.expect(EventUserUpdated, id)
	}

	// Changes that change nothing send nothing.
	f.do("POST", "/users/"+id+"/unban", nil).ok(t)
	f.do("PATCH", "/users/"+id+"/metadata", map[string]any{}).ok(t)
	f.do("POST", "/users/"+id+"/verify_totp", map[string]any{"code": "000000"}) // TOTP is off: 400
	h.expect(EventUserUpdated)

	body, ct := multipartBody(t, "file", []byte("\x89PNG fake image"))
	f.do("POST", "/users/"+id+"/profile_image", body, "Content-Type: "+ct).ok(t)
	h.expect(EventUserUpdated, id)
	f.do("DELETE", "/users/"+id+"/profile_image", nil).ok(t)
	h.expect(EventUserUpdated, id)

	// Legacy API versions accept metadata on PATCH /users/{user_id}.
	f.do("PATCH", "/users/"+id, map[string]any{"unsafe_metadata": map[string]any{"x": true}}, "Clerk-API-Version: 2025-04-10").ok(t)
	h.expect(EventUserUpdated, id)

	// Seeded users (Go API, also behind cmd/fakeclerk --seed) are created.
	if err := f.srv.Seed([]json.RawMessage{json.RawMessage(`{"id":"user_seeded","username":"seeded",
		"passkeys":[{"id":"idn_pk"}],"external_accounts":[{"id":"eac_ext"}]}`)}); err != nil {
		t.Fatal(err)
	}
	ev = h.expect(EventUserCreated, "user_seeded")[0]
	if attrs := ev["event_attributes"].(map[string]any)["http_request"].(map[string]any); attrs["client_ip"] != "" {
		t.Errorf("seed event_attributes %v", attrs)
	}
	f.do("DELETE", "/users/user_seeded/passkeys/idn_pk", nil).ok(t)
	h.expect(EventUserUpdated, "user_seeded")
	f.do("DELETE", "/users/user_seeded/external_accounts/eac_ext", nil).ok(t)
	h.expect(EventUserUpdated, "user_seeded")

	// Bulk ban: one event per changed user, in request order.
	f.do("POST", "/users/ban", map[string]any{"user_ids": []string{"user_seeded", "user_missing", id}}).list(t)
	h.expect(EventUserUpdated, "user_seeded", id)

	// Requests refused by faults change nothing and send nothing; a dropped
	// response still applied the change.
	_ = f.srv.SetFaults(Faults{Rate500: 1})
	f.do("POST", "/users/"+id+"/unban", nil).clerkErr(t, 500, "internal_clerk_error")
	h.expect(EventUserUpdated)
	_ = f.srv.SetFaults(Faults{DropResponseRate: 1})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", f.base+"/users/"+id+"/unban", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	if res, err := f.ts.Client().Do(req); err == nil {
		_ = res.Body.Close()
		t.Error("dropped response answered")
	}
	f.srv.ClearFaults()
	h.expect(EventUserUpdated, id)

	f.do("DELETE", "/users/"+id, nil).ok(t)
	h.expect(EventUserDeleted, id)

	st := f.srv.Stats().Webhooks
	want := WebhookStats{Queued: int64(h.seen), Sent: int64(h.seen)}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("webhook stats (-want +got):\n%s", diff)
	}

	// POST /_fake/reset deletes the remaining users, each with an event,
	// and clears the webhook counters.
	second := str(f.create(map[string]any{"username": "second_user"}), "id")
	h.expect(EventUserCreated, second)
	if code, _ := f.admin("POST", "/_fake/reset", ""); code != http.StatusNoContent {
		t.Fatalf("reset: %d", code)
	}
	h.expect(EventUserDeleted, "user_seeded", second)
	if st := f.srv.Stats().Webhooks; st != (WebhookStats{}) {
		t.Errorf("webhook stats after reset: %+v", st)
	}
}

func TestWebhookSignature(t *testing.T) {
	h := newHookFixture(t, Options{}, nil)
	h.createEmail("sig@example.com")
	d := h.rc.waitN(1)[0]

	id, ts, sig := d.header.Get("svix-id"), d.header.Get("svix-timestamp"), d.header.Get("svix-signature")
	if !strings.HasPrefix(id, "msg_") || len(id) < 20 {
		t.Errorf("svix-id %q", id)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		t.Errorf("svix-timestamp %q is not the current Unix time", ts)
	}
	if ct := d.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	// The svix library accepts it.
	wh, err := svix.NewWebhook(testWebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(d.body, d.header); err != nil {
		t.Errorf("svix Verify: %v", err)
	}
	// Computed by hand: v1,base64(HMAC-SHA256(key, "id.timestamp.body")).
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(testWebhookSecret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(d.body)))
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); sig != want {
		t.Errorf("svix-signature %q, want %q", sig, want)
	}
	// Another secret, a changed body or a changed id fail.
	other, _ := svix.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString([]byte("another-secret-of-24-byt")))
	if err := other.Verify(d.body, d.header); err == nil {
		t.Error("verified with another secret")
	}
	if err := wh.Verify(append([]byte(" "), d.body...), d.header); err == nil {
		t.Error("verified a changed body")
	}
	hdr := d.header.Clone()
	hdr.Set("svix-id", "msg_other")
	if err := wh.Verify(d.body, hdr); err == nil {
		t.Error("verified a changed svix-id")
	}
}

func TestWebhookDropAndDuplicate(t *testing.T) {
	h := newHookFixture(t, Options{}, nil)
	if code, body := h.admin("POST", "/_fake/faults", `{"webhook_drop_rate":1}`); code != 200 {
		t.Fatalf("set faults: %d %s", code, body)
	}
	id := h.createEmail("drop@example.com")
	h.do("POST", "/users/"+id+"/ban", nil).ok(t)
	h.expect(EventUserCreated) // nothing
	if st := h.srv.Stats().Webhooks; st != (WebhookStats{Dropped: 2}) {
		t.Errorf("stats after drops: %+v", st)
	}
	// Webhook faults leave the API alone.
	h.do("GET", "/users/"+id, nil).ok(t)

	if code, body := h.admin("POST", "/_fake/faults", `{"webhook_duplicate_rate":1}`); code != 200 {
		t.Fatalf("set faults: %d %s", code, body)
	}
	h.do("POST", "/users/"+id+"/unban", nil).ok(t)
	h.settle()
	got := h.rc.deliveries()
	if len(got) != 2 {
		t.Fatalf("duplicate: %d deliveries, want 2", len(got))
	}
	if got[0].header.Get("svix-id") != got[1].header.Get("svix-id") || string(got[0].body) != string(got[1].body) {
		t.Errorf("duplicate differs: %s %s / %s %s", got[0].header.Get("svix-id"), got[0].body, got[1].header.Get("svix-id"), got[1].body)
	}
	if st := h.srv.Stats().Webhooks; st != (WebhookStats{Dropped: 2, Queued: 1, Duplicated: 1, Sent: 2}) {
		t.Errorf("stats after duplicate: %+v", st)
	}

	// Rates of 0 change nothing.
	_ = h.srv.SetFaults(Faults{WebhookDuplicateRate: 0, WebhookDropRate: 0})
	h.do("POST", "/users/"+id+"/ban", nil).ok(t)
	h.seen = 2
	h.expect(EventUserUpdated, id)
}

func TestWebhookDelay(t *testing.T) {
	h := newHookFixture(t, Options{}, nil)
	_ = h.srv.SetFaults(Faults{WebhookDelayMS: 400})
	begin := time.Now()
	slow := h.createEmail("slow@example.com")
	if took := time.Since(begin); took > 300*time.Millisecond {
		t.Errorf("the API waited for the webhook delay: %v", took)
	}
	// A delayed event holds up no other: one made after the fault is
	// cleared arrives first.
	h.srv.ClearFaults()
	fast := h.createEmail("fast@example.com")
	got := h.rc.waitN(2)
	first, second := got[0].event(t), got[1].event(t)
	if first["data"].(map[string]any)["id"] != fast || second["data"].(map[string]any)["id"] != slow {
		t.Errorf("order: %v then %v, want the undelayed %s first", first["data"].(map[string]any)["id"], second["data"].(map[string]any)["id"], fast)
	}
	if waited := got[1].at.Sub(begin); waited < 400*time.Millisecond {
		t.Errorf("delayed event arrived after %v, want >= 400ms", waited)
	}

	// Delays run side by side, not one after the other: serialized, the
	// last of five events delayed 500ms would arrive 2.5s after the first
	// was made.
	_ = h.srv.SetFaults(Faults{WebhookDelayMS: 500})
	var called, answered [5]time.Time
	for i := range 5 {
		called[i] = time.Now()
		h.createEmail("delayed" + strconv.Itoa(i) + "@example.com")
		answered[i] = time.Now()
	}
	got = h.rc.waitN(7)
	for i, d := range got[2:] {
		if w := d.at.Sub(called[i]); w < 500*time.Millisecond {
			t.Errorf("delayed event %d arrived after %v", i, w)
		}
		if w := d.at.Sub(answered[i]); w > 1500*time.Millisecond {
			t.Errorf("delayed event %d arrived %v after its change: delays were serialized", i, w)
		}
	}
}

func TestWebhookRetries(t *testing.T) {
	// 500, then 204: one retry, same message.
	h := newHookFixture(t, Options{}, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	h.createEmail("retry@example.com")
	h.settle()
	got := h.rc.deliveries()
	if len(got) != 2 || got[0].header.Get("svix-id") != got[1].header.Get("svix-id") || string(got[0].body) != string(got[1].body) {
		t.Fatalf("retry: %d deliveries", len(got))
	}
	if st := h.srv.Stats().Webhooks; st != (WebhookStats{Queued: 1, Sent: 1, Retries: 1}) {
		t.Errorf("stats: %+v", st)
	}
	wh, _ := svix.NewWebhook(testWebhookSecret)
	for _, d := range got {
		if err := wh.Verify(d.body, d.header); err != nil {
			t.Errorf("attempt not signed: %v", err)
		}
	}

	// Always 503: three attempts (two retries), then give up.
	h = newHookFixture(t, Options{}, func(int) int { return http.StatusServiceUnavailable })
	h.createEmail("fail@example.com")
	h.settle()
	if n := len(h.rc.deliveries()); n != 3 {
		t.Errorf("attempts %d, want 3", n)
	}
	if st := h.srv.Stats().Webhooks; st != (WebhookStats{Queued: 1, Failed: 1, Retries: 2}) {
		t.Errorf("stats: %+v", st)
	}

	// No retries at all with an empty schedule; connection errors count as failures.
	rc := newReceiver(t, nil)
	url := rc.ts.URL
	rc.ts.Close()
	f := newFixture(t, Options{WebhookURL: url, WebhookSecret: testWebhookSecret, WebhookRetryDelays: []time.Duration{}})
	t.Cleanup(func() { _ = f.srv.Close() })
	f.createEmail("down@example.com")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.srv.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.srv.Stats().Webhooks; st != (WebhookStats{Queued: 1, Failed: 1}) {
		t.Errorf("stats: %+v", st)
	}
}

func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // lets net/http notice the client going away
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	f := newFixture(t, Options{WebhookURL: slow.URL, WebhookSecret: testWebhookSecret,
		WebhookTimeout: 50 * time.Millisecond, WebhookRetryDelays: []time.Duration{time.Millisecond}})
	t.Cleanup(func() { _ = f.srv.Close() })
	f.createEmail("timeout@example.com")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.srv.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.srv.Stats().Webhooks; st != (WebhookStats{Queued: 1, Failed: 1, Retries: 1}) {
		t.Errorf("stats: %+v", st)
	}
}

func TestWebhookQueueFull(t *testing.T) {
	release := make(chan struct{})
	h := newHookFixture(t, Options{WebhookQueueSize: 2}, func(n int) int {
		if n == 1 {
			<-release // the first delivery holds the sender
		}
		return http.StatusNoContent
	})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	h.createEmail("q1@example.com") // in flight
	h.createEmail("q2@example.com") // queued
	h.createEmail("q3@example.com") // queue full: dropped
	st := h.srv.Stats().Webhooks
	if st.Queued != 2 || st.Dropped != 1 || st.QueueFull != 1 || st.Pending != 2 {
		t.Errorf("stats with a full queue: %+v", st)
	}
	unblock()
	h.settle()
	if n := len(h.rc.deliveries()); n != 2 {
		t.Errorf("%d deliveries, want 2", n)
	}
	if st := h.srv.Stats().Webhooks; st != (WebhookStats{Queued: 2, Sent: 2, Dropped: 1, QueueFull: 1}) {
		t.Errorf("stats: %+v", st)
	}
	// The queue has room again.
	h.createEmail("q4@example.com")
	h.seen = 2
	h.expect(EventUserCreated, str(h.do("GET", "/users?email_address=q4@example.com", nil).list(t)[0], "id"))
}

func TestWebhookStatsJSON(t *testing.T) {
	h := newHookFixture(t, Options{}, nil)
	before := h.srv.Stats()
	h.createEmail("json@example.com")
	h.settle()
	_, body := h.admin("GET", "/_fake/stats", "")
	var st struct {
		Webhooks map[string]int64 `json:"webhooks"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("stats JSON %s: %v", body, err)
	}
	want := map[string]int64{"queued": 1, "sent": 1, "failed": 0, "dropped": 0, "queue_full": 0, "duplicated": 0, "retries": 0, "pending": 0}
	if diff := cmp.Diff(want, st.Webhooks); diff != "" {
		t.Errorf("GET /_fake/stats webhooks (-want +got):\n%s", diff)
	}
	if d := h.srv.Stats().Sub(before).Webhooks; d != (WebhookStats{Queued: 1, Sent: 1}) {
		t.Errorf("Sub: %+v", d)
	}
}

func TestWebhookFaultValidation(t *testing.T) {
	f := newFixture(t, Options{})
	for _, body := range []string{
		`{"webhook_drop_rate":1.5}`,
		`{"webhook_duplicate_rate":-1}`,
		`{"webhook_delay_ms":-5}`,
		`{"webhook_delay_ms":"soon"}`,
	} {
		if code, resp := f.admin("POST", "/_fake/faults", body); code != 400 || !strings.Contains(resp, "invalid faults") {
			t.Errorf("%s: %d %s", body, code, resp)
		}
	}
	full := `{"webhook_drop_rate":0.1,"webhook_delay_ms":20,"webhook_duplicate_rate":0.2,"routes":["POST /v1/users"]}`
	if code, resp := f.admin("POST", "/_fake/faults", full); code != 200 {
		t.Fatalf("webhook faults refused: %d %s", code, resp)
	}
	_, got := f.admin("GET", "/_fake/faults", "")
	var fl Faults
	if err := json.Unmarshal([]byte(got), &fl); err != nil || fl.WebhookDropRate != 0.1 || fl.WebhookDelayMS != 20 || fl.WebhookDuplicateRate != 0.2 {
		t.Errorf("GET /_fake/faults: %s", got)
	}
	// Webhook faults leave the API alone, also without webhooks.
	f.do("POST", "/users", map[string]any{"username": "unaffected"}).ok(t)
}

func TestWebhookConfigValidation(t *testing.T) {
	for _, c := range []struct{ url, secret, want string }{
		{"", "", ""},
		{"http://127.0.0.1:1/hooks", testWebhookSecret, ""},
		{"https://example.com/hooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ""},
		{"http://x", "", "set together"},
		{"", testWebhookSecret, "set together"},
		{"ftp://x/y", testWebhookSecret, "http or https"},
		{"/relative", testWebhookSecret, "http or https"},
		{"http://x", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `start with "whsec_"`},
		{"http://x", "whsec_not base64!", "not valid base64"},
		{"http://x", "whsec_", "empty"},
	} {
		err := ValidateWebhookConfig(c.url, c.secret)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("ValidateWebhookConfig(%q, %q) = %v, want %q", c.url, c.secret, err, c.want)
		}
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "whsec_") {
			t.Errorf("New with a bad secret: recover() = %v", r)
		}
	}()
	New(Options{WebhookURL: "http://127.0.0.1:1", WebhookSecret: "secret"})
}

func TestWebhooksOffAndClose(t *testing.T) {
	srv := New(Options{})
	if srv.hooks != nil {
		t.Fatal("a sender without webhooks")
	}
	if err := srv.Close(); err != nil || srv.WaitWebhooks(t.Context()) != nil {
		t.Error("Close/WaitWebhooks without webhooks")
	}
	// Faults for webhooks are accepted but nothing is sent or counted.
	_ = srv.SetFaults(Faults{WebhookDuplicateRate: 1})
	if err := srv.Seed([]json.RawMessage{json.RawMessage(`{"username":"off_user"}`)}); err != nil {
		t.Fatal(err)
	}
	srv.Reset()
	if st := srv.Stats().Webhooks; st != (WebhookStats{}) {
		t.Errorf("stats without webhooks: %+v", st)
	}

	h := newHookFixture(t, Options{}, nil)
	h.createEmail("before-close@example.com")
	h.settle()
	if err := h.srv.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.srv.hooks.done:
	default:
		t.Error("the sender goroutine still runs after Close")
	}
	_ = h.srv.Close() // idempotent
	h.createEmail("after-close@example.com")
	if err := h.srv.WaitWebhooks(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.rc.deliveries()); n != 1 {
		t.Errorf("%d deliveries, want only the one before Close", n)
	}
	if st := h.srv.Stats().Webhooks; st != (WebhookStats{Queued: 1, Sent: 1, Dropped: 1}) {
		t.Errorf("stats after Close: %+v", st)
	}
}

// TestWebhookCloseAbortsInFlight checks that Close does not wait for a
// receiver that never answers.
func TestWebhookCloseAbortsInFlight(t *testing.T) {
	arrived := make(chan struct{}, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // lets net/http notice the client going away
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(hang.Close)
	f := newFixture(t, Options{WebhookURL: hang.URL, WebhookSecret: testWebhookSecret, WebhookTimeout: time.Minute})
	f.createEmail("hang@example.com")
	<-arrived
	begin := time.Now()
	_ = f.srv.Close()
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Close took %v", took)
	}
	if st := f.srv.Stats().Webhooks; st.Pending != 0 || st.Sent != 0 || st.Failed != 0 {
		t.Errorf("stats after Close: %+v", st)
	}
}
