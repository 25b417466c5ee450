package clerk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalidID is wrapped by the error a method returns, without sending a request, when an ID
// it would put into a URL path does not match ^[a-z]+_[A-Za-z0-9]+$ (e.g. "user_2xK9…").
// The error names the bad value quoted and truncated. [IsRejected] reports true for it.
var ErrInvalidID = errors.New("clerk: invalid ID")

// ErrInvalidParams is wrapped by the error a method returns, without sending a request, when its
// parameters break a documented limit (e.g. more than 100 values for a list filter, a limit
// outside 1..500). [IsRejected] reports true for it.
var ErrInvalidParams = errors.New("clerk: invalid parameters")

// errDeadlineTooSoon is the cause of a LimiterError when the caller's deadline would pass
// before the request could be sent.
var errDeadlineTooSoon = fmt.Errorf("rate limit wait would exceed the context deadline: %w", context.DeadlineExceeded)

// ErrorDetail is one entry of the "errors" array of Clerk's error body (ClerkError).
type ErrorDetail struct {
	// Code is Clerk's machine-readable code, e.g. "resource_not_found", "form_identifier_exists".
	Code string `json:"code"`
	// Message is the short human-readable message.
	Message string `json:"message"`
	// LongMessage is the detailed human-readable message.
	LongMessage string `json:"long_message"`
	// Meta holds extra data, e.g. {"param_name": "username"}; nil when absent.
	Meta map[string]any `json:"meta,omitempty"`
}

// APIError is returned for every HTTP response whose status is not 2xx, whatever its body.
//
// Errors, TraceID and RetryAfter are filled from Clerk's JSON body and headers when present;
// when the body is not Clerk's error JSON (e.g. an HTML page from a proxy), StatusCode,
// RetryAfter and a header trace ID are still kept and Body holds the start of the body.
// Nothing in an APIError contains the secret key.
type APIError struct {
	// StatusCode is the HTTP status code.
	StatusCode int
	// Errors are Clerk's error entries; empty when the body was not Clerk's error JSON.
	Errors []ErrorDetail
	// TraceID is the body's "clerk_trace_id", else the Clerk-Trace-Id header; "" if neither.
	TraceID string
	// RetryAfter is the Retry-After header (integer seconds or an HTTP date, relative to when
	// the response arrived); 0 when absent, unparsable or in the past.
	RetryAfter time.Duration
	// Method is the HTTP method, e.g. "POST".
	Method string
	// Path is the request path relative to the base URL without the query, e.g. "/users/user_x/ban".
	Path string
	// Body is the first 512 bytes (cut at a UTF-8 boundary) of a body that was not Clerk's error
	// JSON; "" otherwise.
	Body string
}

// Error formats the error as
// "clerk: <METHOD> <path>: <status> <code>: <message>[; <code>: <message>…] (trace <id>)",
// using each entry's long message when it has one, or the status text when there are no entries.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "clerk: %s %s: %d", e.Method, e.Path, e.StatusCode)
	if len(e.Errors) == 0 {
		if t := http.StatusText(e.StatusCode); t != "" {
			b.WriteString(" " + t)
		}
	}
	for i, d := range e.Errors {
		if i > 0 {
			b.WriteString(";")
		}
		msg := d.LongMessage
		if msg == "" {
			msg = d.Message
		}
		switch {
		case d.Code != "" && msg != "":
			fmt.Fprintf(&b, " %s: %s", d.Code, msg)
		case d.Code != "":
			b.WriteString(" " + d.Code)
		case msg != "":
			b.WriteString(" " + msg)
		}
	}
	if e.TraceID != "" {
		fmt.Fprintf(&b, " (trace %s)", e.TraceID)
	}
	return b.String()
}

// HasCode reports whether one of the error entries has the given Clerk code.
func (e *APIError) HasCode(code string) bool {
	return slices.ContainsFunc(e.Errors, func(d ErrorDetail) bool { return d.Code == code })
}

// clerkErrors is the wire form of Clerk's error body.
type clerkErrors struct {
	Errors       []ErrorDetail `json:"errors"`
	ClerkTraceID string        `json:"clerk_trace_id"`
}

// newAPIError builds the error for a non-2xx response. data is the (possibly truncated) body;
// any occurrence of key in the body's text is replaced, in case a proxy echoes request headers.
func newAPIError(method, path string, resp *http.Response, data []byte, key string, now time.Time) *APIError {
	e := &APIError{
		StatusCode: resp.StatusCode,
		Method:     method,
		Path:       path,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
		TraceID:    resp.Header.Get("Clerk-Trace-Id"),
	}
	var ce clerkErrors
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "{") && json.Unmarshal(data, &ce) == nil && ce.Errors != nil {
		e.Errors = ce.Errors
		for i := range e.Errors {
			e.Errors[i].Message = scrub(e.Errors[i].Message, key)
			e.Errors[i].LongMessage = scrub(e.Errors[i].LongMessage, key)
		}
		if ce.ClerkTraceID != "" {
			e.TraceID = ce.ClerkTraceID
		}
	} else {
		e.Body = truncateUTF8(scrub(string(data), key), maxBodySnippet)
		// A JSON body without "errors" may still carry a trace ID.
		if ce.ClerkTraceID != "" {
			e.TraceID = ce.ClerkTraceID
		}
	}
	e.TraceID = scrub(e.TraceID, key)
	return e
}

func scrub(s, key string) string {
	if key == "" || !strings.Contains(s, key) {
		return s
	}
	return strings.ReplaceAll(s, key, redacted)
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date. It returns 0 when
// the value is empty, unparsable or not in the future.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// RequestError is returned when a request got no usable response: the connection failed or
// timed out, the request was cancelled, or a 2xx body could not be read or decoded (the
// change may then have been applied). Its message names the route, never the query or the key.
type RequestError struct {
	// Method is the HTTP method.
	Method string
	// Path is the request path relative to the base URL, without the query.
	Path string
	// StatusCode is the 2xx status when the body could not be read or decoded; 0 otherwise.
	StatusCode int
	// Err is the cause, e.g. a *net.OpError, context.DeadlineExceeded or a *json.SyntaxError.
	Err error
}

// Error returns "clerk: <METHOD> <path>: <cause>".
func (e *RequestError) Error() string {
	return fmt.Sprintf("clerk: %s %s: %v", e.Method, e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *RequestError) Unwrap() error { return e.Err }

// Timeout reports whether the request timed out (per-request timeout, the caller's deadline,
// or a network timeout).
func (e *RequestError) Timeout() bool {
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// LimiterError is returned, without sending a request, when the client's own rate limiting
// held the request back until ctx was done, or would have held it back past ctx's deadline (in
// which case it returns at once). [IsRateLimited] reports true for the latter.
type LimiterError struct {
	// Method is the HTTP method.
	Method string
	// Path is the request path relative to the base URL, without the query.
	Path string
	// RetryAfter estimates how long until the request could be sent; 0 if unknown.
	RetryAfter time.Duration
	// Err is ctx.Err(), or an error wrapping context.DeadlineExceeded when the deadline was too
	// near to wait.
	Err error
}

// Error returns "clerk: <METHOD> <path>: waiting for rate limiter: <cause>".
func (e *LimiterError) Error() string {
	return fmt.Sprintf("clerk: %s %s: waiting for rate limiter: %v", e.Method, e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *LimiterError) Unwrap() error { return e.Err }

func asAPIError(err error) (*APIError, bool) {
	var e *APIError
	ok := errors.As(err, &e) && e != nil
	return e, ok
}

// IsNotFound reports whether err is (or wraps) an *APIError with status 404.
func IsNotFound(err error) bool {
	e, ok := asAPIError(err)
	return ok && e.StatusCode == http.StatusNotFound
}

// IsRejected reports whether Clerk refused the request in a way that retrying the same request
// will not fix: an *APIError with a 4xx status other than 401, 404, 408 and 429 (e.g. 400, 402,
// 409, 422, and a 403 about the instance or the request rather than the key, such as
// feature_not_enabled or user_quota_exceeded), or an argument error wrapping [ErrInvalidID] or
// [ErrInvalidParams].
func IsRejected(err error) bool {
	if errors.Is(err, ErrInvalidID) || errors.Is(err, ErrInvalidParams) {
		return true
	}
	e, ok := asAPIError(err)
	if !ok || e.StatusCode < 400 || e.StatusCode > 499 || IsAuthentication(err) {
		return false
	}
	switch e.StatusCode {
	case http.StatusUnauthorized, http.StatusNotFound, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return true
}

// IsAuthentication reports whether Clerk refused the secret key itself: an *APIError with status
// 401, or 403 with code authorization_invalid (or a 403 without any Clerk error code, as a proxy
// in front of Clerk sends). Other 403s (feature_not_enabled, user_quota_exceeded, quota_exceeded)
// are about the instance, not the key: [IsRejected].
func IsAuthentication(err error) bool {
	e, ok := asAPIError(err)
	if !ok {
		return false
	}
	switch e.StatusCode {
	case http.StatusUnauthorized:
		return true
	case http.StatusForbidden:
		return len(e.Errors) == 0 || e.HasCode("authorization_invalid")
	}
	return false
}

// IsRateLimited reports whether err is (or wraps) an *APIError with status 429, or a
// *LimiterError caused by a deadline too near to wait for the client's own rate limit (not by
// cancellation). [RetryAfter] then says how long to wait.
func IsRateLimited(err error) bool {
	if e, ok := asAPIError(err); ok {
		return e.StatusCode == http.StatusTooManyRequests
	}
	var le *LimiterError
	return errors.As(err, &le) && !errors.Is(le.Err, context.Canceled)
}

// IsUnavailable reports whether the failure is likely transient on Clerk's side or the network:
// an *APIError with a 5xx status or 408, or a *RequestError (network error, timeout including an
// expired deadline, unreadable or malformed 2xx body) that was not caused by cancelling the
// caller's context.
func IsUnavailable(err error) bool {
	if e, ok := asAPIError(err); ok {
		return e.StatusCode >= 500 && e.StatusCode <= 599 || e.StatusCode == http.StatusRequestTimeout
	}
	var re *RequestError
	return errors.As(err, &re) && !errors.Is(re.Err, context.Canceled)
}

// RetryAfter returns how long to wait before retrying, and true, when err is (or wraps) an
// *APIError with a positive RetryAfter (from the Retry-After header, on any status) or a
// *LimiterError with a positive estimate. Otherwise it returns 0, false.
func RetryAfter(err error) (time.Duration, bool) {
	if e, ok := asAPIError(err); ok {
		return e.RetryAfter, e.RetryAfter > 0
	}
	var le *LimiterError
	if errors.As(err, &le) && le.RetryAfter > 0 {
		return le.RetryAfter, true
	}
	return 0, false
}

// TraceID returns Clerk's trace ID from err when it is (or wraps) an *APIError, else "".
// Include it in messages so that Clerk support can find the request.
func TraceID(err error) string {
	if e, ok := asAPIError(err); ok {
		return e.TraceID
	}
	return ""
}
