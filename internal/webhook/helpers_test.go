package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubeclerk/kubeclerk/internal/metrics"
)

// Secrets of the test instances; 24-byte keys like Clerk's.
var (
	secretDefault = SecretPrefix + base64.StdEncoding.EncodeToString([]byte("default-instance-key-24b"))
	secretAcme    = SecretPrefix + base64.StdEncoding.EncodeToString([]byte("acme-prod-instance-key-2"))
	secretOther   = SecretPrefix + base64.StdEncoding.EncodeToString([]byte("some-unrelated-signing-k"))
)

// start is the fake clock's initial time.
var start = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// harness is a Receiver with a fake clock, a registry and the delivered events.
type harness struct {
	t       *testing.T
	r       *Receiver
	reg     *prometheus.Registry
	mu      sync.Mutex
	now     time.Time
	events  []Event
	nextMsg int
}

func newHarness(t *testing.T, secrets map[string]string) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry(), now: start}
	m := metrics.New()
	if err := m.Register(h.reg, "v", "c"); err != nil {
		t.Fatal(err)
	}
	h.r = &Receiver{
		Secrets: func(instance string) (string, bool) {
			s, ok := secrets[instance]
			return s, ok
		},
		Deliver: func(ctx context.Context, e Event) {
			if ctx == nil {
				t.Error("nil context")
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			h.events = append(h.events, e)
		},
		Metrics: m,
		Now: func() time.Time {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.now
		},
	}
	return h
}

// advance moves the fake clock.
func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = h.now.Add(d)
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

// delivered returns the events delivered so far.
func (h *harness) delivered() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// do sends a request to the receiver and returns the recorded answer.
func (h *harness) do(method, path string, header http.Header, body []byte) *httptest.ResponseRecorder {
	h.t.Helper()
	req := httptest.NewRequestWithContext(context.Background(), method, path, bytes.NewReader(body))
	maps.Copy(req.Header, header)
	rec := httptest.NewRecorder()
	h.r.ServeHTTP(rec, req)
	return rec
}

// signed returns the headers of a delivery of body signed with secret, at ts, with ID id.
func signed(t *testing.T, secret, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	header := http.Header{}
	if err := SetHeaders(header, secret, id, ts, body); err != nil {
		t.Fatal(err)
	}
	return header
}

// post sends body to instance, signed with secret, at the clock's time, with a fresh ID.
func (h *harness) post(instance, secret string, body []byte) *httptest.ResponseRecorder {
	h.t.Helper()
	h.nextMsg++
	id := "msg_" + strconv.Itoa(h.nextMsg)
	return h.do(http.MethodPost, Path+instance, signed(h.t, secret, id, h.clock(), body), body)
}

// gathered returns each series of h's registry as "name{label=value,...}" → value, for
// kubeclerk_webhook_events_total only.
func (h *harness) gathered() map[string]float64 {
	h.t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != metrics.WebhookEventsTotal {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out["{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	return out
}

// series is the key gathered uses for one series.
func series(instance, typ, result string) string {
	return "{instance=" + instance + ",result=" + result + ",type=" + typ + "}"
}

// userJSON is a Clerk user object as Clerk sends it in user.created and user.updated.
func userJSON(id string, updatedAt int64, publicMetadata string) string {
	return `{"id":"` + id + `","object":"user","external_id":"emp-1","username":null,"first_name":"Alice",` +
		`"last_name":null,"primary_email_address_id":"idn_1","primary_phone_number_id":null,` +
		`"email_addresses":[{"id":"idn_1","object":"email_address","email_address":"alice@acme.com",` +
		`"verification":{"status":"verified","strategy":"admin"},"linked_to":[]}],` +
		`"public_metadata":` + publicMetadata + `,"private_metadata":{},"unsafe_metadata":{},` +
		`"banned":false,"locked":false,"lockout_expires_in_seconds":null,"two_factor_enabled":false,` +
		`"totp_enabled":false,"backup_code_enabled":false,"mfa_enabled_at":null,"mfa_disabled_at":null,` +
		`"password_enabled":true,"created_at":1751234500000,"updated_at":` + strconv.FormatInt(updatedAt, 10) + `,` +
		`"last_sign_in_at":null,"last_active_at":null}`
}

// eventJSON is Clerk's envelope around data.
func eventJSON(typ, data string) []byte {
	return []byte(`{"data":` + data + `,"object":"event","type":"` + typ + `","timestamp":1751234567999,` +
		`"instance_id":"ins_123","event_attributes":{"http_request":{"client_ip":"192.0.2.1","user_agent":"test"}}}`)
}

// newUnsizedRequest is a POST whose body length is not known in advance (as with chunked
// encoding), so only reading it can find it too large.
func newUnsizedRequest(t *testing.T, path string, header http.Header, body []byte) *http.Request {
	t.Helper()
	req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, path, io.MultiReader(bytes.NewReader(body)))
	req.ContentLength = -1
	maps.Copy(req.Header, header)
	return req
}

func httptestRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
