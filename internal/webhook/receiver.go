package webhook

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubeclerk/kubeclerk/internal/metrics"
)

// Path is the prefix the receiver serves; the instance follows it: POST /webhooks/clerk/{instance}.
// Register the receiver for this prefix, e.g. mux.Handle(webhook.Path, r).
const Path = "/webhooks/clerk/"

// DefaultInstance is the instance of the manager's own key.
const DefaultInstance = metrics.DefaultInstance

// Tolerance is how far svix-timestamp may be from the receiver's clock, either way.
const Tolerance = 5 * time.Minute

// DefaultMaxBodyBytes is the body size limit when Receiver.MaxBodyBytes is 0. Clerk's user
// events are a few KiB (metadata is limited to 8 KiB per object).
const DefaultMaxBodyBytes = 256 << 10

// DefaultMaxReplayIDs is the replay cache size when Receiver.MaxReplayIDs is 0: enough for 333
// user events a second, sustained over the 5-minute window, over all instances. With Svix's
// 31-byte message IDs a full cache takes about 15 MiB (60 MiB with 256-byte IDs, the longest
// accepted).
const DefaultMaxReplayIDs = 100_000

// Result label values of kubeclerk_webhook_events_total.
const (
	ResultAccepted = "accepted"
	ResultRejected = "rejected"
)

// Receiver is the http.Handler for Clerk's webhooks. Set its fields before the first request and
// do not change or copy it afterwards. The zero value rejects every request (no secrets).
type Receiver struct {
	// Secrets returns the signing secret ("whsec_…") of an instance ("default" or a ClerkInstance
	// name), and false when the instance is unknown or has no webhook secret. It is called on
	// every request, so a rotated secret applies at once; it must be fast and safe for concurrent
	// use. A secret that is not valid base64 of at least MinSecretBytes bytes counts as none.
	Secrets func(instance string) (secret string, ok bool)
	// Deliver receives each verified user event once (see the package doc for "once"). It is
	// called synchronously, before the 204 answer, so it must not block: update a cache, enqueue
	// work, return. ctx is the request's context, canceled when the request ends: do not keep it.
	// Nil drops events (they are still verified and counted).
	Deliver func(ctx context.Context, e Event)
	// Metrics counts requests in kubeclerk_webhook_events_total; nil counts nothing.
	Metrics *metrics.Metrics
	// Now is the clock for the timestamp check and the replay cache; nil means time.Now.
	Now func() time.Time
	// MaxBodyBytes limits the body; a larger one is answered 413. 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxReplayIDs limits the replay cache, over all instances. 0 means DefaultMaxReplayIDs.
	MaxReplayIDs int
	// Log receives rejections (at most about one a second, so a flood cannot flood the log) and,
	// at V(1), accepted events. Nothing secret is logged: no secret, signature or body.
	Log logr.Logger

	once      sync.Once
	replay    *replayCache
	logLimit  *rate.Limiter
	dummyKey  []byte // verifies requests for unknown instances, so they take as long as others
	maxBody   int64
	clockFunc func() time.Time
}

func (r *Receiver) init() {
	r.once.Do(func() {
		r.maxBody = r.MaxBodyBytes
		if r.maxBody <= 0 {
			r.maxBody = DefaultMaxBodyBytes
		}
		maxIDs := r.MaxReplayIDs
		if maxIDs <= 0 {
			maxIDs = DefaultMaxReplayIDs
		}
		r.replay = newReplayCache(maxIDs)
		r.logLimit = rate.NewLimiter(1, 5)
		r.dummyKey = make([]byte, 24)
		_, _ = rand.Read(r.dummyKey)
		r.clockFunc = r.Now
		if r.clockFunc == nil {
			r.clockFunc = time.Now
		}
	})
}

// reply is how a request was answered.
type reply struct {
	code     int
	message  string // the whole response body; tells an attacker nothing
	result   string
	typ      string // type label
	reason   string // for the log only
	instance string // metrics label: the instance when known, else ""
	name     string // for the log only: the instance named by the path, known or not
}

// Response bodies: plain text; a 401 never says which check failed.
const (
	msgUnauthorized = "invalid signature"
	msgNotFound     = "not found"
)

// ServeHTTP handles POST {Path}{instance}. Answers: 204 for a verified event (delivered, ignored
// as another type, or a duplicate delivery); 404 for a path that names no valid instance; 405 for
// another method; 401 for a missing, malformed or wrong signature, a timestamp off by more than
// Tolerance, or an unknown instance; 413 for a body over the limit; 400 for a verified body that
// is not a valid event; 503 (with Retry-After) when the replay cache is full.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.init()
	rep, e := r.handle(req, w)
	if rep.result == ResultAccepted && e != nil && r.Deliver != nil {
		r.Deliver(req.Context(), *e)
	}
	r.Metrics.WebhookEvent(rep.instance, rep.typ, rep.result)
	switch {
	case rep.result == ResultAccepted && e != nil:
		r.Log.V(1).Info("Received a webhook event", "instance", e.Instance, "type", e.Type, "svixID", e.ID, "userID", e.UserID)
	case rep.result == ResultRejected && rep.code == http.StatusNoContent:
		r.Log.V(1).Info("Ignored a duplicate webhook delivery", "instance", rep.name, "type", rep.typ, "reason", rep.reason)
	case rep.result == ResultRejected && r.logLimit.Allow():
		r.Log.Info("Rejected a webhook request", "instance", rep.name, "status", rep.code, "reason", rep.reason)
	}
	if rep.code == http.StatusNoContent {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Error(w, rep.message, rep.code)
}

// handle checks the request and returns the answer and, for an accepted user event, the event.
// Checks run cheapest first and nothing of the body is parsed before its signature is verified.
func (r *Receiver) handle(req *http.Request, w http.ResponseWriter) (reply, *Event) {
	instance, ok := instanceFromPath(req.URL.Path)
	if !ok {
		return reply{code: http.StatusNotFound, message: msgNotFound, result: ResultRejected, typ: TypeUnknown,
			reason: "path names no valid instance"}, nil
	}
	var key []byte
	label := ""
	if r.Secrets != nil {
		if secret, found := r.Secrets(instance); found {
			var err error
			if key, err = parseSecret(secret); err == nil {
				label = instance
			} else if r.logLimit.Allow() {
				r.Log.Error(err, "Ignoring the invalid webhook secret of an instance", "instance", instance)
			}
		}
	}
	reject := func(code int, message, reason string) (reply, *Event) {
		return reply{code: code, message: message, result: ResultRejected, typ: TypeUnknown, reason: reason,
			instance: label, name: instance}, nil
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return reject(http.StatusMethodNotAllowed, "method not allowed", "method "+quoteMethod(req.Method))
	}
	hdr, ok := readHeaders(req.Header)
	if !ok {
		return reject(http.StatusUnauthorized, msgUnauthorized, "missing or malformed svix headers")
	}
	now := r.clockFunc()
	if d := now.Sub(hdr.timestamp); d > Tolerance || d < -Tolerance {
		return reject(http.StatusUnauthorized, msgUnauthorized, "timestamp outside tolerance")
	}
	body, status := r.readBody(req, w)
	if status != 0 {
		if status == http.StatusRequestEntityTooLarge {
			return reject(status, "request body too large", "body over the limit")
		}
		return reject(status, "bad request", "body not readable")
	}
	if key == nil {
		// Unknown instance: same work and same answer as a wrong signature, so the answer does not
		// tell which instances exist.
		verify(r.dummyKey, hdr, body)
		return reject(http.StatusUnauthorized, msgUnauthorized, "unknown instance or no valid secret")
	}
	if !verify(key, hdr, body) {
		return reject(http.StatusUnauthorized, msgUnauthorized, "no matching signature")
	}
	e, err := parseEvent(body, hdr.timestamp)
	if err != nil {
		return reject(http.StatusBadRequest, "invalid event", "verified body is not a valid event: "+err.Error())
	}
	rep := reply{code: http.StatusNoContent, result: ResultAccepted, typ: typeLabel(e.Type), instance: label, name: instance}
	if rep.typ == TypeOther {
		// Ignored, so a replay is harmless: not remembered, leaving room for user events.
		return rep, nil
	}
	switch v, retry := r.replay.check(instance, hdr.id, hdr.timestamp, now); v {
	case replaySeen:
		// A duplicate delivery (or a replay within the window): acknowledged so Svix stops
		// retrying, never processed twice.
		rep.result, rep.reason = ResultRejected, "duplicate svix-id"
		return rep, nil
	case replayFull:
		secs := max(1, int64(math.Ceil(retry.Seconds())))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		rep.code, rep.message, rep.result, rep.reason = http.StatusServiceUnavailable, "busy", ResultRejected, "replay cache full"
		return rep, nil
	}
	e.Instance, e.ID = instance, hdr.id
	return rep, &e
}

// readBody reads the whole body, at most maxBody bytes; status is non-zero when it cannot.
func (r *Receiver) readBody(req *http.Request, w http.ResponseWriter) (body []byte, status int) {
	if req.ContentLength > r.maxBody {
		return nil, http.StatusRequestEntityTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.maxBody))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return nil, http.StatusRequestEntityTooLarge
		}
		return nil, http.StatusBadRequest
	}
	return body, 0
}

// instanceFromPath returns the instance of a path {Path}{instance}: "default" or a DNS-1123
// subdomain (a ClerkInstance name), nothing after it.
func instanceFromPath(p string) (string, bool) {
	name, ok := strings.CutPrefix(p, Path)
	if !ok || name == "" {
		return "", false
	}
	if name == DefaultInstance {
		return name, true
	}
	return name, len(validation.IsDNS1123Subdomain(name)) == 0
}

// quoteMethod quotes a method for the log, cut to a sane length (the client chooses it).
func quoteMethod(s string) string {
	if len(s) > 16 {
		s = s[:16]
	}
	return strconv.Quote(s)
}
