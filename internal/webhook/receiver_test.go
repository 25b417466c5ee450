package webhook

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var testSecrets = map[string]string{
	"default":   secretDefault,
	"acme-prod": secretAcme,
	"broken":    SecretPrefix + "dGVzdA==", // 4 bytes: unusable
}

// TestUserUpdatedDelivered: a valid user.updated is answered 204 with no body and delivered with
// the decoded user, its metadata numbers exact and its timestamps int64.
func TestUserUpdatedDelivered(t *testing.T) {
	h := newHarness(t, testSecrets)
	meta := `{"big":1098765432109876543,"huge":1e400,"dec":0.1,"nested":{"n":[1,2.50]},"s":"x"}`
	body := eventJSON(TypeUserUpdated, userJSON("user_2abc", 1751234567890, meta))
	rec := h.do(http.MethodPost, Path+"acme-prod", signed(t, secretAcme, "msg_2xyz", h.clock(), body), body)
	if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Fatalf("status %d body %q, want 204 and no body", rec.Code, rec.Body)
	}
	events := h.delivered()
	if len(events) != 1 {
		t.Fatalf("%d events delivered, want 1", len(events))
	}
	e := events[0]
	if e.Instance != "acme-prod" || e.ID != "msg_2xyz" || e.Type != TypeUserUpdated || e.UserID != "user_2abc" ||
		!e.Timestamp.Equal(time.UnixMilli(1751234567999)) {
		t.Fatalf("event %+v", e)
	}
	u := e.User
	if u == nil || u.ID != "user_2abc" || u.UpdatedAt != 1751234567890 || u.CreatedAt != 1751234500000 ||
		u.PrimaryEmailAddress() != "alice@acme.com" || u.ExternalID == nil || *u.ExternalID != "emp-1" || !u.PasswordEnabled {
		t.Fatalf("user %+v", u)
	}
	want := map[string]any{"big": json.Number("1098765432109876543"), "huge": json.Number("1e400"), "dec": json.Number("0.1"),
		"nested": map[string]any{"n": []any{json.Number("1"), json.Number("2.50")}}, "s": "x"}
	if d := cmp.Diff(want, u.PublicMetadata); d != "" {
		t.Fatalf("public metadata (-want +got):\n%s", d)
	}
	out, err := json.Marshal(u.PublicMetadata)
	if err != nil || !strings.Contains(string(out), `"big":1098765432109876543`) {
		t.Fatalf("re-encoded metadata %s, %v", out, err)
	}
	if got := h.gathered(); !maps.Equal(got, map[string]float64{series("acme-prod", TypeUserUpdated, ResultAccepted): 1}) {
		t.Fatalf("metrics %v", got)
	}
}

// TestUserCreatedAndDeleted: user.created carries the user; user.deleted only the ID; without an
// envelope timestamp the event's time is the signed one.
func TestUserCreatedAndDeleted(t *testing.T) {
	h := newHarness(t, testSecrets)
	if rec := h.post("default", secretDefault, eventJSON(TypeUserCreated, userJSON("user_new", 1, "{}"))); rec.Code != http.StatusNoContent {
		t.Fatalf("created: status %d", rec.Code)
	}
	deleted := []byte(`{"data":{"deleted":true,"id":"user_new","object":"user"},"object":"event","type":"user.deleted"}`)
	if rec := h.post("default", secretDefault, deleted); rec.Code != http.StatusNoContent {
		t.Fatalf("deleted: status %d", rec.Code)
	}
	// deleted may be absent: only a contradicting false is refused.
	if rec := h.post("default", secretDefault, []byte(`{"type":"user.deleted","data":{"id":"user_x"}}`)); rec.Code != http.StatusNoContent {
		t.Fatalf("deleted without flag: status %d", rec.Code)
	}
	events := h.delivered()
	if len(events) != 3 {
		t.Fatalf("%d events, want 3", len(events))
	}
	if e := events[0]; e.Type != TypeUserCreated || e.UserID != "user_new" || e.User == nil || e.Instance != "default" {
		t.Fatalf("created event %+v", e)
	}
	if e := events[1]; e.Type != TypeUserDeleted || e.UserID != "user_new" || e.User != nil || !e.Timestamp.Equal(start) {
		t.Fatalf("deleted event %+v", e)
	}
	want := map[string]float64{
		series("default", TypeUserCreated, ResultAccepted): 1,
		series("default", TypeUserDeleted, ResultAccepted): 2,
	}
	if got := h.gathered(); !maps.Equal(got, want) {
		t.Fatalf("metrics %v, want %v", got, want)
	}
}

// TestRejections: every bad request is refused with its status and a fixed body, delivers
// nothing, counts once as rejected with type "unknown", and never echoes a signature or secret.
func TestRejections(t *testing.T) {
	valid := eventJSON(TypeUserUpdated, userJSON("user_1", 5, "{}"))
	sign := func(t *testing.T, secret string, ts time.Time, body []byte) http.Header {
		return signed(t, secret, "msg_1", ts, body)
	}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		header func(t *testing.T, now time.Time) http.Header
		body   []byte
		code   int
		label  string // instance label
	}{
		{name: "unsigned", header: func(*testing.T, time.Time) http.Header { return http.Header{} },
			code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "no signature header", header: func(t *testing.T, now time.Time) http.Header {
			h := sign(t, secretAcme, now, valid)
			h.Del(HeaderSignature)
			return h
		}, code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "no id header", header: func(t *testing.T, now time.Time) http.Header {
			h := sign(t, secretAcme, now, valid)
			h.Del(HeaderID)
			return h
		}, code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "unbranded headers only", header: func(t *testing.T, now time.Time) http.Header {
			h := sign(t, secretAcme, now, valid)
			out := http.Header{}
			out.Set("webhook-id", h.Get(HeaderID))
			out.Set("webhook-timestamp", h.Get(HeaderTimestamp))
			out.Set("webhook-signature", h.Get(HeaderSignature))
			return out
		}, code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "wrong signature", header: func(t *testing.T, now time.Time) http.Header {
			h := sign(t, secretAcme, now, valid)
			h.Set(HeaderSignature, "v1,"+strings.Repeat("A", 43)+"=")
			return h
		}, code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "tampered body", header: func(t *testing.T, now time.Time) http.Header {
			return sign(t, secretAcme, now, eventJSON(TypeUserUpdated, userJSON("user_2", 5, "{}")))
		}, code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "signed with another secret", header: func(t *testing.T, now time.Time) http.Header {
			return sign(t, secretOther, now, valid)
		}, code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "signed for another instance", header: func(t *testing.T, now time.Time) http.Header {
			return sign(t, secretDefault, now, valid)
		}, code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "valid signature under another version", header: func(t *testing.T, now time.Time) http.Header {
			h := sign(t, secretAcme, now, valid)
			h.Set(HeaderSignature, "v2,"+strings.TrimPrefix(h.Get(HeaderSignature), "v1,"))
			return h
		}, code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "signature for another timestamp", header: func(t *testing.T, now time.Time) http.Header {
			h := sign(t, secretAcme, now, valid)
			h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
			return h
		}, code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "stale timestamp", header: func(t *testing.T, now time.Time) http.Header {
			return sign(t, secretAcme, now.Add(-Tolerance-time.Second), valid)
		}, code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "future timestamp", header: func(t *testing.T, now time.Time) http.Header {
			return sign(t, secretAcme, now.Add(Tolerance+time.Second), valid)
		}, code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "non-numeric timestamp", header: func(t *testing.T, now time.Time) http.Header {
			h := sign(t, secretAcme, now, valid)
			h.Set(HeaderTimestamp, now.Format(time.RFC3339))
			return h
		}, code: http.StatusUnauthorized, label: "acme-prod"},
		{name: "oversized body", body: []byte(`{"type":"user.updated","data":{"id":"u","pad":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}}`),
			code: http.StatusRequestEntityTooLarge, label: "acme-prod"},
		{name: "malformed JSON", body: []byte(`{"type":"user.updated","data":{`), code: http.StatusBadRequest, label: "acme-prod"},
		{name: "trailing data", body: append(append([]byte{}, valid...), []byte(`{}`)...), code: http.StatusBadRequest, label: "acme-prod"},
		{name: "not an object", body: []byte(`[]`), code: http.StatusBadRequest, label: "acme-prod"},
		{name: "missing type", body: []byte(`{"data":{"id":"user_1"}}`), code: http.StatusBadRequest, label: "acme-prod"},
		{name: "missing data", body: []byte(`{"type":"user.updated"}`), code: http.StatusBadRequest, label: "acme-prod"},
		{name: "null data", body: []byte(`{"type":"user.created","data":null}`), code: http.StatusBadRequest, label: "acme-prod"},
		{name: "data without id", body: []byte(`{"type":"user.updated","data":{"object":"user"}}`), code: http.StatusBadRequest, label: "acme-prod"},
		{name: "deleted without id", body: []byte(`{"type":"user.deleted","data":{"deleted":true}}`), code: http.StatusBadRequest, label: "acme-prod"},
		{name: "deleted false", body: []byte(`{"type":"user.deleted","data":{"id":"user_1","deleted":false}}`),
			code: http.StatusBadRequest, label: "acme-prod"},
		{name: "updated_at not a number", body: []byte(`{"type":"user.updated","data":{"id":"user_1","updated_at":"x"}}`),
			code: http.StatusBadRequest, label: "acme-prod"},
		{name: "event timestamp not an integer", body: []byte(`{"type":"user.updated","timestamp":1.5,"data":{"id":"user_1"}}`),
			code: http.StatusBadRequest, label: "acme-prod"},
		{name: "unknown instance", path: Path + "nobody", code: http.StatusUnauthorized, label: ""},
		{name: "instance with unusable secret", path: Path + "broken", code: http.StatusUnauthorized, label: ""},
		{name: "bad instance name", path: Path + "Acme_Prod", code: http.StatusNotFound, label: ""},
		{name: "no instance", path: Path, code: http.StatusNotFound, label: ""},
		{name: "nested path", path: Path + "acme-prod/x", code: http.StatusNotFound, label: ""},
		{name: "overlong instance name", path: Path + strings.Repeat("a", 254), code: http.StatusNotFound, label: ""},
		{name: "other prefix", path: "/webhooks/clerkx/acme-prod", code: http.StatusNotFound, label: ""},
		{name: "GET", method: http.MethodGet, code: http.StatusMethodNotAllowed, label: "acme-prod"},
		{name: "PUT", method: http.MethodPut, code: http.StatusMethodNotAllowed, label: "acme-prod"},
		{name: "GET unknown instance", method: http.MethodGet, path: Path + "nobody", code: http.StatusMethodNotAllowed, label: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testSecrets)
			method, path, body := tc.method, tc.path, tc.body
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = Path + "acme-prod"
			}
			if body == nil {
				body = valid
			}
			var header http.Header
			if tc.header != nil {
				header = tc.header(t, h.clock())
			} else {
				header = signed(t, secretAcme, "msg_1", h.clock(), body)
			}
			rec := h.do(method, path, header, body)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d (body %q)", rec.Code, tc.code, rec.Body)
			}
			if n := len(h.delivered()); n != 0 {
				t.Fatalf("%d events delivered", n)
			}
			text := rec.Body.String()
			if len(text) > 40 {
				t.Fatalf("error body %q tells too much", text)
			}
			for _, s := range []string{secretAcme, strings.TrimPrefix(secretAcme, SecretPrefix), "v1,", "user_1"} {
				if strings.Contains(text, s) {
					t.Fatalf("error body %q contains %q", text, s)
				}
			}
			if tc.code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != http.MethodPost {
				t.Fatalf("Allow %q", rec.Header().Get("Allow"))
			}
			want := map[string]float64{series(tc.label, TypeUnknown, ResultRejected): 1}
			if got := h.gathered(); !maps.Equal(got, want) {
				t.Fatalf("metrics %v, want %v", got, want)
			}
			if n := h.r.replay.len(); n != 0 {
				t.Fatalf("replay cache holds %d IDs", n)
			}
		})
	}
}

// TestAnswersSameForUnknownAndWrongSignature: an unknown instance cannot be told from a known one
// by its answer.
func TestAnswersSameForUnknownAndWrongSignature(t *testing.T) {
	h := newHarness(t, testSecrets)
	body := eventJSON(TypeUserUpdated, userJSON("user_1", 5, "{}"))
	unknown := h.do(http.MethodPost, Path+"nobody", signed(t, secretOther, "msg_1", h.clock(), body), body)
	wrong := h.do(http.MethodPost, Path+"acme-prod", signed(t, secretOther, "msg_1", h.clock(), body), body)
	if unknown.Code != wrong.Code || unknown.Body.String() != wrong.Body.String() ||
		!maps.EqualFunc(unknown.Header(), wrong.Header(), func(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }) {
		t.Fatalf("unknown instance %d %q %v; wrong signature %d %q %v", unknown.Code, unknown.Body, unknown.Header(),
			wrong.Code, wrong.Body, wrong.Header())
	}
}

// TestOversizedBodyWithoutLength: a body over the limit sent without Content-Length (chunked) is
// refused too, and a smaller limit applies.
func TestOversizedBodyWithoutLength(t *testing.T) {
	h := newHarness(t, testSecrets)
	h.r.MaxBodyBytes = 1024
	body := eventJSON(TypeUserUpdated, userJSON("user_1", 5, `{"pad":"`+strings.Repeat("x", 1024)+`"}`))
	header := signed(t, secretAcme, "msg_1", h.clock(), body)
	rec := h.do(http.MethodPost, Path+"acme-prod", header, body) // Content-Length set: refused before reading
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", rec.Code)
	}
	req := newUnsizedRequest(t, Path+"acme-prod", header, body)
	rec = httptestRecorder()
	h.r.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("unsized: status %d", rec.Code)
	}
	small := eventJSON(TypeUserDeleted, `{"id":"user_1","deleted":true}`)
	if rec := h.post("acme-prod", secretAcme, small); rec.Code != http.StatusNoContent {
		t.Fatalf("small body: status %d", rec.Code)
	}
}

// TestTimestampBoundaries: exactly Tolerance away, either way, is accepted.
func TestTimestampBoundaries(t *testing.T) {
	h := newHarness(t, testSecrets)
	for i, ts := range []time.Time{h.clock().Add(-Tolerance), h.clock().Add(Tolerance)} {
		body := eventJSON(TypeUserUpdated, userJSON("user_1", 5, "{}"))
		rec := h.do(http.MethodPost, Path+"default", signed(t, secretDefault, "msg_b"+strconv.Itoa(i), ts, body), body)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("timestamp %v: status %d", ts.Sub(h.clock()), rec.Code)
		}
	}
	if n := len(h.delivered()); n != 2 {
		t.Fatalf("%d delivered", n)
	}
}

// TestSeveralSignatures: one valid entry among invalid ones, of either version, is enough; that
// is how Svix signs during a secret rotation.
func TestSeveralSignatures(t *testing.T) {
	h := newHarness(t, testSecrets)
	body := eventJSON(TypeUserUpdated, userJSON("user_1", 5, "{}"))
	header := signed(t, secretAcme, "msg_multi", h.clock(), body)
	old, err := Sign(secretOther, "msg_multi", h.clock(), body)
	if err != nil {
		t.Fatal(err)
	}
	header.Set(HeaderSignature, strings.Join([]string{old, "v1a,xyz", "garbage", "v2," + strings.Repeat("B", 44),
		header.Get(HeaderSignature), "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="}, " "))
	if rec := h.do(http.MethodPost, Path+"acme-prod", header, body); rec.Code != http.StatusNoContent {
		t.Fatalf("status %d", rec.Code)
	}
	header.Set(HeaderSignature, strings.Join([]string{old, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="}, " "))
	header.Set(HeaderID, "msg_multi2")
	if rec := h.do(http.MethodPost, Path+"acme-prod", header, body); rec.Code != http.StatusUnauthorized {
		t.Fatalf("no valid entry: status %d", rec.Code)
	}
	if n := len(h.delivered()); n != 1 {
		t.Fatalf("%d delivered", n)
	}
}

// TestReplays: a seen svix-id is acknowledged but not delivered again, whether the same request
// or a new attempt; the same ID at another instance is another message; a request re-sent to
// another instance fails its signature; after the window the ID is forgotten.
func TestReplays(t *testing.T) {
	h := newHarness(t, testSecrets)
	body := eventJSON(TypeUserUpdated, userJSON("user_1", 5, "{}"))
	first := signed(t, secretAcme, "msg_r", h.clock(), body)
	for i := range 2 {
		if rec := h.do(http.MethodPost, Path+"acme-prod", first, body); rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
			t.Fatalf("attempt %d: status %d", i, rec.Code)
		}
	}
	// Svix's next attempt: same ID, new timestamp and signature.
	h.advance(4 * time.Minute)
	retry := signed(t, secretAcme, "msg_r", h.clock(), body)
	if rec := h.do(http.MethodPost, Path+"acme-prod", retry, body); rec.Code != http.StatusNoContent {
		t.Fatalf("retry: status %d", rec.Code)
	}
	// The captured first request re-sent to another instance.
	if rec := h.do(http.MethodPost, Path+"default", first, body); rec.Code != http.StatusUnauthorized {
		t.Fatalf("to another instance: status %d", rec.Code)
	}
	// The same ID, signed by another instance's secret, is that instance's message.
	if rec := h.do(http.MethodPost, Path+"default", signed(t, secretDefault, "msg_r", h.clock(), body), body); rec.Code != http.StatusNoContent {
		t.Fatalf("same ID at default: status %d", rec.Code)
	}
	if n := len(h.delivered()); n != 2 {
		t.Fatalf("%d delivered, want 2", n)
	}
	// Past the first attempt's window but within the retry's: the retry re-sent is still seen.
	h.advance(2 * time.Minute)
	if rec := h.do(http.MethodPost, Path+"acme-prod", retry, body); rec.Code != http.StatusNoContent {
		t.Fatalf("retry replayed: status %d", rec.Code)
	}
	if n := len(h.delivered()); n != 2 {
		t.Fatalf("%d delivered after the retry's replay, want 2", n)
	}
	// After every window: the old requests are stale; a new attempt is delivered again.
	h.advance(Tolerance)
	if rec := h.do(http.MethodPost, Path+"acme-prod", retry, body); rec.Code != http.StatusUnauthorized {
		t.Fatalf("stale replay: status %d", rec.Code)
	}
	late := signed(t, secretAcme, "msg_r", h.clock(), body)
	if rec := h.do(http.MethodPost, Path+"acme-prod", late, body); rec.Code != http.StatusNoContent {
		t.Fatalf("late attempt: status %d", rec.Code)
	}
	if n := len(h.delivered()); n != 3 {
		t.Fatalf("%d delivered, want 3", n)
	}
	want := map[string]float64{
		series("acme-prod", TypeUserUpdated, ResultAccepted): 2,
		series("acme-prod", TypeUserUpdated, ResultRejected): 3,
		series("acme-prod", TypeUnknown, ResultRejected):     1,
		series("default", TypeUnknown, ResultRejected):       1,
		series("default", TypeUserUpdated, ResultAccepted):   1,
	}
	if got := h.gathered(); !maps.Equal(got, want) {
		t.Fatalf("metrics %v, want %v", got, want)
	}
}

// TestOtherTypesIgnored: verified events of other types are acknowledged, counted as "other",
// not delivered and not remembered; unverified ones are still refused.
func TestOtherTypesIgnored(t *testing.T) {
	h := newHarness(t, testSecrets)
	for _, typ := range []string{"session.created", "organization.updated", "email.created", "user.something"} {
		if rec := h.post("default", secretDefault, eventJSON(typ, `{"id":"sess_1"}`)); rec.Code != http.StatusNoContent {
			t.Fatalf("%s: status %d", typ, rec.Code)
		}
	}
	if rec := h.post("default", secretOther, eventJSON("session.created", `{}`)); rec.Code != http.StatusUnauthorized {
		t.Fatalf("unsigned other type: status %d", rec.Code)
	}
	if n := len(h.delivered()); n != 0 {
		t.Fatalf("%d delivered", n)
	}
	if n := h.r.replay.len(); n != 0 {
		t.Fatalf("replay cache holds %d IDs", n)
	}
	want := map[string]float64{
		series("default", TypeOther, ResultAccepted):   4,
		series("default", TypeUnknown, ResultRejected): 1,
	}
	if got := h.gathered(); !maps.Equal(got, want) {
		t.Fatalf("metrics %v, want %v", got, want)
	}
}

// TestOutOfOrder: events are delivered as they arrive; an older update after a newer one and an
// update after the deletion are delivered too (the consumer orders them by UpdatedAt).
func TestOutOfOrder(t *testing.T) {
	h := newHarness(t, testSecrets)
	for _, body := range [][]byte{
		eventJSON(TypeUserDeleted, `{"id":"user_1","deleted":true}`),
		eventJSON(TypeUserUpdated, userJSON("user_1", 300, "{}")),
		eventJSON(TypeUserUpdated, userJSON("user_1", 200, "{}")),
		eventJSON(TypeUserCreated, userJSON("user_1", 100, "{}")),
	} {
		if rec := h.post("default", secretDefault, body); rec.Code != http.StatusNoContent {
			t.Fatalf("status %d", rec.Code)
		}
	}
	events := h.delivered()
	got := make([]string, 0, len(events))
	for _, e := range events {
		s := e.Type
		if e.User != nil {
			s += "@" + strconv.FormatInt(e.User.UpdatedAt, 10)
		}
		got = append(got, s)
	}
	want := []string{"user.deleted", "user.updated@300", "user.updated@200", "user.created@100"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("delivered (-want +got):\n%s", d)
	}
}

// TestFloodBounded: distinct valid events keep the replay cache within its bound. Spread over
// time (2,000 over 2,000 s), expired IDs make room and all are delivered; in one burst of 10,000,
// IDs beyond the bound are answered 503 with Retry-After, not delivered and not remembered, until
// the window passes.
func TestFloodBounded(t *testing.T) {
	const limit = 1000
	h := newHarness(t, testSecrets)
	h.r.MaxReplayIDs = limit
	delivered := 0
	h.r.Deliver = func(context.Context, Event) { delivered++ } // sequential; keeps the test fast
	body := eventJSON(TypeUserDeleted, `{"id":"user_1","deleted":true}`)
	header := func(i int) http.Header { return signed(t, secretAcme, "msg_f"+strconv.Itoa(i), h.clock(), body) }

	// At most 301 IDs are in the window at once.
	const spread = 2_000
	for i := range spread {
		if rec := h.do(http.MethodPost, Path+"acme-prod", header(i), body); rec.Code != http.StatusNoContent {
			t.Fatalf("spread %d: status %d", i, rec.Code)
		}
		if n := h.r.replay.len(); n > 302 {
			t.Fatalf("spread %d: %d IDs kept, want at most 302", i, n)
		}
		h.advance(time.Second)
	}
	if delivered != spread {
		t.Fatalf("spread: %d delivered", delivered)
	}

	// 10,000 at once.
	h.advance(Tolerance + time.Second)
	accepted, busy := 0, 0
	for i := spread; i < spread+10_000; i++ {
		rec := h.do(http.MethodPost, Path+"acme-prod", header(i), body)
		switch rec.Code {
		case http.StatusNoContent:
			accepted++
		case http.StatusServiceUnavailable:
			busy++
			if ra := rec.Header().Get("Retry-After"); ra != "300" {
				t.Fatalf("burst %d: Retry-After %q, want 300", i, ra)
			}
		default:
			t.Fatalf("burst %d: status %d", i, rec.Code)
		}
		if n := h.r.replay.len(); n > limit {
			t.Fatalf("burst %d: %d IDs kept, over %d", i, n, limit)
		}
	}
	if accepted != limit || busy != 9_000 || delivered != spread+limit {
		t.Fatalf("burst: %d accepted, %d busy, %d delivered", accepted, busy, delivered)
	}
	// A refused message is delivered when Svix tries again after the window.
	h.advance(Tolerance + time.Second)
	if rec := h.do(http.MethodPost, Path+"acme-prod", header(spread+9_999), body); rec.Code != http.StatusNoContent {
		t.Fatalf("after the window: status %d", rec.Code)
	}
	if n := h.r.replay.len(); n != 1 {
		t.Fatalf("after the window: %d IDs kept, want 1", n)
	}
	want := map[string]float64{
		series("acme-prod", TypeUserDeleted, ResultAccepted): spread + limit + 1,
		series("acme-prod", TypeUserDeleted, ResultRejected): 9_000,
	}
	if got := h.gathered(); !maps.Equal(got, want) {
		t.Fatalf("metrics %v, want %v", got, want)
	}
}

// TestConcurrentDuplicates: many goroutines sending the same messages; each is delivered once.
func TestConcurrentDuplicates(t *testing.T) {
	h := newHarness(t, testSecrets)
	const messages, senders = 50, 8
	bodies := make([][]byte, messages)
	headers := make([]http.Header, messages)
	for i := range messages {
		bodies[i] = eventJSON(TypeUserUpdated, userJSON("user_"+strconv.Itoa(i), 5, "{}"))
		headers[i] = signed(t, secretAcme, "msg_c"+strconv.Itoa(i), h.clock(), bodies[i])
	}
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for i := range messages {
				if rec := h.do(http.MethodPost, Path+"acme-prod", headers[i], bodies[i]); rec.Code != http.StatusNoContent {
					t.Errorf("status %d", rec.Code)
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for _, e := range h.delivered() {
		seen[e.ID]++
	}
	if len(seen) != messages {
		t.Fatalf("%d distinct messages delivered, want %d", len(seen), messages)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s delivered %d times", id, n)
		}
	}
}

// TestZeroReceiver: without secrets, deliverer, metrics or clock every signed request is refused
// and nothing panics.
func TestZeroReceiver(t *testing.T) {
	var r Receiver
	body := eventJSON(TypeUserUpdated, userJSON("user_1", 5, "{}"))
	req := newUnsizedRequest(t, Path+"default", signed(t, secretDefault, "msg_1", time.Now(), body), body)
	rec := httptestRecorder()
	r.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d", rec.Code)
	}
	// Secrets but no Deliver: verified events are acknowledged and dropped.
	r2 := Receiver{Secrets: func(string) (string, bool) { return secretDefault, true }}
	req = newUnsizedRequest(t, Path+"default", signed(t, secretDefault, "msg_1", time.Now(), body), body)
	rec = httptestRecorder()
	r2.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("without Deliver: status %d", rec.Code)
	}
}
