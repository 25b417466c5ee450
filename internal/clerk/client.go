package clerk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// APIVersion is the Clerk Backend API version this client is written against. It is sent as the
// Clerk-API-Version header on every request and cannot be changed: a different version changes
// the semantics of the endpoints (e.g. metadata on PATCH /users/{id}).
const APIVersion = "2026-05-12"

// DefaultBaseURL is the base URL of Clerk's Backend API, used when [Options.BaseURL] is empty.
// Paths such as /users are appended to it.
const DefaultBaseURL = "https://api.clerk.com/v1"

// DefaultTimeout is the per-request timeout used when [Options.Timeout] is zero.
const DefaultTimeout = 10 * time.Second

// Version is the kubeclerk version reported in the User-Agent header
// ("kubeclerk/<Version> (+https://github.com/kubeclerk/kubeclerk)"). It is meant to be set at
// build time with -ldflags "-X github.com/kubeclerk/kubeclerk/internal/clerk.Version=v1.2.3";
// it is read when [New] builds a Client.
var Version = "dev"

const (
	// maxSuccessBody caps how much of a 2xx body is read; a 500-user page is a few MB.
	maxSuccessBody = 64 << 20
	// maxErrorBody caps how much of a non-2xx body is read.
	maxErrorBody = 64 << 10
	// maxBodySnippet is how much of a non-JSON error body is kept in APIError.Body.
	maxBodySnippet = 512
)

// Options configures a [Client]. Only SecretKey is required.
//
// Formatting an Options value (String, GoString, %v, %+v, %#v, slog) never reveals SecretKey,
// and SecretKey is not marshalled to JSON.
type Options struct {
	// BaseURL is the API root including the version prefix, e.g. DefaultBaseURL or
	// "http://127.0.0.1:8089/v1" for the fake server. Empty means DefaultBaseURL. It must be an
	// absolute http or https URL without query, fragment or user info; a trailing slash is ignored.
	BaseURL string

	// SecretKey is the instance secret key (sk_test_… or sk_live_…), sent as
	// "Authorization: Bearer <SecretKey>". Required. It must consist of printable ASCII
	// characters without spaces.
	SecretKey string `json:"-"`

	// HTTPClient sends the requests. Nil means a client with Timeout set and redirects not
	// followed (a redirect is returned as an *APIError). A caller-supplied client is used as is;
	// Timeout still bounds each request through its context.
	HTTPClient *http.Client

	// Timeout bounds each request, from sending it to reading the whole response (not the
	// time spent waiting for the rate limiter). Zero means DefaultTimeout; negative is an error.
	Timeout time.Duration

	// RequestsPerSecond is the client-side budget for the secret key. Zero means half of Clerk's
	// published limit for the key type: 5/s for sk_test_ keys (Clerk: 100 per 10 s) and 50/s
	// for sk_live_ keys (Clerk: 1000 per 10 s); keys with any other prefix get the sk_test_
	// default. Negative or NaN is an error; +Inf disables client-side limiting.
	//
	// The budget belongs to the key, not the Client: every Client built with the same key in this
	// process shares one token bucket, and the most recent call to New sets its rate and burst.
	RequestsPerSecond float64

	// Burst is the token bucket size. Zero means one second's worth of RequestsPerSecond
	// (rounded up, at least 1). Negative is an error.
	Burst int

	// UserAgent overrides the User-Agent header. Empty means
	// "kubeclerk/<Version> (+https://github.com/kubeclerk/kubeclerk)".
	UserAgent string

	// Observer, when set, is told of every request and of the time spent waiting for the
	// budget (metrics).
	Observer RequestObserver `json:"-"`
}

// RequestObserver is told what a Client does; it must be safe for concurrent use.
type RequestObserver interface {
	// Waited reports how long a request waited for the key's budget (token bucket and 429 pauses).
	Waited(d time.Duration)
	// Done reports one request sent: operation is its route template, e.g.
	// "GET /users/{user_id}"; code its HTTP status, or "error" when no response came.
	Done(operation, code string, d time.Duration)
}

// Operation is the route template of a request path relative to the base URL, e.g.
// "POST /users/{user_id}/ban" for method POST and path /users/user_123/ban: the user ID is
// replaced, so that it can label metrics without one series per user.
func Operation(method, path string) string {
	parts := strings.Split(path, "/")
	if len(parts) >= 3 && parts[1] == "users" && parts[2] != "count" && parts[2] != "" {
		parts[2] = "{user_id}"
	}
	return method + " " + strings.Join(parts, "/")
}

// redacted replaces secrets in formatted output.
const redacted = "[REDACTED]"

// optionsView has the fields of Options and none of its methods, so that fmt can format a copy
// with the key replaced.
type optionsView Options

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s, …) prints the options
// with SecretKey replaced by "[REDACTED]" (or "" when it is empty).
func (o Options) Format(f fmt.State, verb rune) {
	v := optionsView(o)
	if v.SecretKey != "" {
		v.SecretKey = redacted
	}
	s := fmt.Sprintf(fmt.FormatString(f, verb), v)
	if verb == 'v' && f.Flag('#') {
		s = strings.Replace(s, "clerk.optionsView", "clerk.Options", 1)
	}
	_, _ = io.WriteString(f, s)
}

// String returns the options as %v prints them, with SecretKey redacted.
func (o Options) String() string { return fmt.Sprintf("%v", o) }

// GoString returns the options as %#v prints them, with SecretKey redacted.
func (o Options) GoString() string { return fmt.Sprintf("%#v", o) }

// LogValue implements slog.LogValuer; SecretKey is redacted.
func (o Options) LogValue() slog.Value {
	key := ""
	if o.SecretKey != "" {
		key = redacted
	}
	return slog.GroupValue(
		slog.String("baseURL", o.BaseURL),
		slog.String("secretKey", key),
		slog.Duration("timeout", o.Timeout),
		slog.Float64("requestsPerSecond", o.RequestsPerSecond),
		slog.Int("burst", o.Burst),
		slog.String("userAgent", o.UserAgent),
	)
}

// secretKey returns a function that returns key. The key lives only in the closure: fmt and
// other reflection-based printers show a func value as an address, so even printing a Client
// value (not a pointer, whose methods fmt cannot call) or a bad-verb fallback cannot reveal it.
func secretKey(key string) func() string { return func() string { return key } }

// Client calls Clerk's Backend API with one secret key. It is safe for concurrent use; build it
// once with [New] and share it. Its methods make at most one HTTP request each and never retry.
//
// Formatting a Client (String, GoString, any fmt verb, slog) never reveals the secret key.
type Client struct {
	baseURL   string        // without trailing slash
	key       func() string // the secret key; see secretKey
	hc        *http.Client
	timeout   time.Duration
	userAgent string
	observer  RequestObserver
	bucket    *keyBucket
}

// New validates opts and returns a Client. It returns an error (which never contains the key)
// when SecretKey is empty or malformed, BaseURL is not a usable absolute http(s) URL, or Timeout,
// RequestsPerSecond or Burst is negative.
//
// New registers the key's token bucket in a process-wide registry keyed by a SHA-256 of the key
// (the key itself is not stored there). If a bucket for this key exists, New sets its rate and
// burst to this call's values: with several Clients per key, the latest New wins.
func New(opts Options) (*Client, error) {
	if opts.SecretKey == "" {
		return nil, errors.New("clerk: Options.SecretKey is empty")
	}
	for i := range len(opts.SecretKey) {
		if b := opts.SecretKey[i]; b <= ' ' || b >= 0x7f {
			return nil, fmt.Errorf("clerk: Options.SecretKey contains a space, control or non-ASCII character at byte %d", i)
		}
	}
	base, err := parseBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("clerk: Options.Timeout %v is negative", opts.Timeout)
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	limit, burst, err := rateFor(opts.SecretKey, opts.RequestsPerSecond, opts.Burst)
	if err != nil {
		return nil, err
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{
			Timeout: timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "kubeclerk/" + Version + " (+https://github.com/kubeclerk/kubeclerk)"
	}
	return &Client{
		baseURL:   base,
		key:       secretKey(opts.SecretKey),
		hc:        hc,
		timeout:   timeout,
		userAgent: ua,
		observer:  opts.Observer,
		bucket:    bucketFor(opts.SecretKey, limit, burst),
	}, nil
}

func parseBaseURL(raw string) (string, error) {
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL; rebuild the message without it (it may hold credentials).
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return "", fmt.Errorf("clerk: Options.BaseURL is not a valid URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("clerk: Options.BaseURL %q must use http or https", u.Redacted())
	case u.Host == "":
		return "", fmt.Errorf("clerk: Options.BaseURL %q has no host", u.Redacted())
	case u.User != nil:
		return "", fmt.Errorf("clerk: Options.BaseURL %q must not contain user info", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("clerk: Options.BaseURL %q must not have a query or fragment", u.Redacted())
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// rateFor resolves the rate and burst for a key from the options.
func rateFor(key string, rps float64, burst int) (rate.Limit, int, error) {
	switch {
	case math.IsNaN(rps) || rps < 0:
		return 0, 0, fmt.Errorf("clerk: Options.RequestsPerSecond %v must be a non-negative number", rps)
	case burst < 0:
		return 0, 0, fmt.Errorf("clerk: Options.Burst %d is negative", burst)
	}
	if rps == 0 {
		rps = DefaultRequestsPerSecond(key)
	}
	if burst == 0 {
		switch {
		case math.IsInf(rps, 1) || rps >= math.MaxInt32:
			burst = math.MaxInt32
		default:
			burst = max(1, int(math.Ceil(rps)))
		}
	}
	if math.IsInf(rps, 1) {
		return rate.Inf, burst, nil
	}
	return rate.Limit(rps), burst, nil
}

// DefaultRequestsPerSecond is the client-side rate used for a key when
// [Options.RequestsPerSecond] is zero: half of Clerk's published per-instance limit, i.e. 50/s
// for "sk_live_" keys and 5/s for "sk_test_" keys and any other prefix. The key is only
// inspected for its prefix.
func DefaultRequestsPerSecond(key string) float64 {
	if strings.HasPrefix(key, "sk_live_") {
		return 1000.0 / 10 / 2
	}
	return 100.0 / 10 / 2
}

// keyKind names the key's environment for formatted output without revealing the key.
func keyKind(key string) string {
	switch {
	case key == "":
		return ""
	case strings.HasPrefix(key, "sk_live_"):
		return "sk_live_" + redacted
	case strings.HasPrefix(key, "sk_test_"):
		return "sk_test_" + redacted
	default:
		return redacted
	}
}

// String describes the client (base URL, key type, rate) without revealing the secret key.
func (c *Client) String() string {
	if c == nil {
		return "clerk.Client(nil)"
	}
	return fmt.Sprintf("clerk.Client{BaseURL:%q, SecretKey:%q, RequestsPerSecond:%v, Burst:%d, Timeout:%v}",
		c.baseURL, keyKind(c.key()), float64(c.bucket.limiter.Limit()), c.bucket.limiter.Burst(), c.timeout)
}

// GoString is the same as String; it never reveals the secret key.
func (c *Client) GoString() string { return c.String() }

// Format implements fmt.Formatter: every verb prints String, which never reveals the secret key.
func (c *Client) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue implements slog.LogValuer without revealing the secret key.
func (c *Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

// BaseURL returns the API root the client sends requests to (without a trailing slash).
func (c *Client) BaseURL() string { return c.baseURL }

// Limiter returns the token bucket shared by every Client with this client's secret key, for
// metrics and tests. Changing its rate affects all of them (and a later New call overrides it).
// Pauses after a 429 are tracked separately; see [Client.PausedUntil].
func (c *Client) Limiter() *rate.Limiter { return c.bucket.limiter }

// PausedUntil returns the time until which requests with this client's secret key are held back
// because Clerk answered 429 with a Retry-After; the zero time or a past time means not paused.
func (c *Client) PausedUntil() time.Time { return c.bucket.pausedUntilTime() }

// do sends one request. path is relative to the base URL and already validated; query may be
// nil; body, when non-nil, is sent as JSON; out, when non-nil, receives the decoded 2xx body.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	waitStart := time.Now()
	err := c.bucket.wait(ctx, method, path)
	if c.observer != nil {
		c.observer.Waited(time.Since(waitStart))
	}
	if err != nil {
		return err
	}
	if c.observer != nil {
		start, code := time.Now(), "error"
		defer func() { c.observer.Done(Operation(method, path), code, time.Since(start)) }()
		return c.send(ctx, method, path, query, body, out, &code)
	}
	var code string
	return c.send(ctx, method, path, query, body, out, &code)
}

// send is do after the budget allowed the request; *code is set to the response's status.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body, out any, code *string) error {

	var payload io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("clerk: %s %s: encode request body: %w", method, path, err)
		}
		payload = bytes.NewReader(b)
	}

	u := c.baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, u, payload)
	if err != nil {
		return &RequestError{Method: method, Path: path, Err: stripURLError(err)}
	}
	req.Header.Set("Authorization", "Bearer "+c.key())
	req.Header.Set("Clerk-API-Version", APIVersion)
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return &RequestError{Method: method, Path: path, Err: stripURLError(err)}
	}
	defer func() { _ = resp.Body.Close() }()
	*code = strconv.Itoa(resp.StatusCode)

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		apiErr := newAPIError(method, path, resp, data, c.key(), time.Now())
		if resp.StatusCode == http.StatusTooManyRequests {
			c.bucket.pause(apiErr.RetryAfter)
		}
		return apiErr
	}

	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSuccessBody+1))
	if err != nil {
		return &RequestError{Method: method, Path: path, StatusCode: resp.StatusCode, Err: fmt.Errorf("read response body: %w", stripURLError(err))}
	}
	if len(data) > maxSuccessBody {
		return &RequestError{Method: method, Path: path, StatusCode: resp.StatusCode, Err: fmt.Errorf("response body exceeds %d bytes", maxSuccessBody)}
	}
	if out == nil {
		return nil
	}
	if err := decodeBody(data, out); err != nil {
		return &RequestError{Method: method, Path: path, StatusCode: resp.StatusCode, Err: fmt.Errorf("decode response body: %w", err)}
	}
	return nil
}

// decodeBody decodes a 2xx body into out like json.Unmarshal (same errors, nothing decoded from
// a body that is not valid JSON), except that a number decoded into an interface value, i.e.
// inside metadata, becomes a json.Number that keeps its exact text: a float64 would round 64-bit
// integers and decimals (1098765432109876543 reads as 1098765432109876544), and fail the whole
// response on a number out of its range such as 1e400. A json.Number encodes as its text, so
// metadata read from Clerk is written back exactly. Typed fields (int64 timestamps, bools)
// decode as with json.Unmarshal.
func decodeBody(data []byte, out any) error {
	if !json.Valid(data) {
		return json.Unmarshal(data, out) // the *json.SyntaxError json.Unmarshal gives
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(out)
}

// stripURLError removes the *url.Error wrapper added by net/http, whose message repeats the
// full URL including query values; the route is reported by RequestError instead.
func stripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}
