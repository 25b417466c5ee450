package clerkfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// clerkError is one entry of a ClerkErrors body (spec schema ClerkError).
type clerkError struct {
	Message     string         `json:"message"`
	LongMessage string         `json:"long_message"`
	Code        string         `json:"code"`
	Meta        map[string]any `json:"meta"`
}

// apiError is a Clerk error answer: an HTTP status and one or more ClerkError entries.
type apiError struct {
	status     int
	errs       []clerkError
	retryAfter int // seconds; only sent with 429
}

func (e *apiError) Error() string {
	if len(e.errs) == 0 {
		return strconv.Itoa(e.status)
	}
	return fmt.Sprintf("%d %s: %s", e.status, e.errs[0].Code, e.errs[0].LongMessage)
}

func newAPIError(status int, code, msg, long string, meta map[string]any) *apiError {
	if meta == nil {
		meta = map[string]any{}
	}
	return &apiError{status: status, errs: []clerkError{{Message: msg, LongMessage: long, Code: code, Meta: meta}}}
}

func paramMeta(param string) map[string]any { return map[string]any{"param_name": param} }

// Error constructors, named after Clerk's documented error codes
// (clerk-docs docs/guides/development/errors/backend-api.mdx).

func errUserNotFound(id string) *apiError {
	return newAPIError(http.StatusNotFound, "resource_not_found", "not found", "No user was found with id "+id, nil)
}

func errResourceNotFound(long string) *apiError {
	return newAPIError(http.StatusNotFound, "resource_not_found", "not found", long, nil)
}

func errRouteNotFound() *apiError {
	return errResourceNotFound("The requested resource was not found.")
}

func errAuthMissing() *apiError {
	return newAPIError(http.StatusUnauthorized, "authentication_invalid", "Request not authenticated",
		"Authorization header missing. You must provide a valid Secret Key as 'Authorization: Bearer <YOUR_API_KEY>'.", nil)
}

func errAuthFormat() *apiError {
	return newAPIError(http.StatusUnauthorized, "authorization_header_format_invalid", "Invalid Authorization header format",
		"Invalid Authorization header format. Must be 'Bearer <YOUR_API_KEY>'", nil)
}

func errKeyInvalid() *apiError {
	return newAPIError(http.StatusUnauthorized, "clerk_key_invalid", "Secret Key is invalid",
		"The provided Secret Key is invalid. Make sure that your Secret Key is correct.", nil)
}

func errBadRequest(long string, meta map[string]any) *apiError {
	return newAPIError(http.StatusBadRequest, "bad_request", "Bad request", long, meta)
}

func errBodyInvalid(long string) *apiError {
	return newAPIError(http.StatusBadRequest, "request_body_invalid", "Request body invalid", long, nil)
}

func errQueryValue(param, value string) *apiError {
	return newAPIError(http.StatusBadRequest, "invalid_query_parameter_value", "Invalid query parameter value",
		fmt.Sprintf("%s does not match one of the allowed values for parameter %s", value, param), paramMeta(param))
}

func errParamUnknown(param string) clerkError {
	return clerkError{Message: "is unknown", LongMessage: param + " is not a valid parameter for this request.",
		Code: "form_param_unknown", Meta: paramMeta(param)}
}

func errParamType(param, typ string) *apiError {
	return newAPIError(http.StatusUnprocessableEntity, "form_param_type_invalid", "is invalid",
		fmt.Sprintf("`%s` must be a `%s`.", param, typ), paramMeta(param))
}

func errParamFormat(param, long string) *apiError {
	return newAPIError(http.StatusUnprocessableEntity, "form_param_format_invalid", "is invalid", long, paramMeta(param))
}

func errParamValue(param, long string) *apiError {
	return newAPIError(http.StatusUnprocessableEntity, "form_param_value_invalid", "is invalid", long, paramMeta(param))
}

func errParamMissing(param string) *apiError {
	return newAPIError(http.StatusUnprocessableEntity, "form_param_missing", "missing data", param+" must be included.", paramMeta(param))
}

func errIdentifierExists(param, what string) *apiError {
	return newAPIError(http.StatusUnprocessableEntity, "form_identifier_exists", "That "+what+" is taken. Please try another.",
		"That "+what+" is taken. Please try another.", paramMeta(param))
}

func errParamTooLarge(param string, size, limit int) *apiError {
	return newAPIError(http.StatusUnprocessableEntity, "form_param_exceeds_allowed_size", "is too large",
		fmt.Sprintf("Metadata must not exceed %d bytes in total (got %d bytes).", limit, size), paramMeta(param))
}

func errArrayTooLong(param string, max int) *apiError {
	return newAPIError(http.StatusUnprocessableEntity, "form_param_array_size_exceeded", "too many items",
		fmt.Sprintf("%s should not exceed %d items.", param, max), paramMeta(param))
}

func errRateLimited(retryAfter int) *apiError {
	e := newAPIError(http.StatusTooManyRequests, "too_many_requests", "Too many requests",
		"Too many requests, retry later.", nil)
	e.retryAfter = retryAfter
	return e
}

func errInternal() *apiError {
	return newAPIError(http.StatusInternalServerError, "internal_clerk_error", "Oops, an unexpected error occurred",
		"There was an internal error on our servers. We've been notified and are working on fixing it.", nil)
}

func errMaintenance() *apiError {
	return newAPIError(http.StatusServiceUnavailable, "maintenance_mode", "System under maintenance",
		"We are currently undergoing maintenance and only essential operations are permitted. We will be back shortly.", nil)
}

// errorBody is the ClerkErrors schema.
type errorBody struct {
	Errors       []clerkError `json:"errors"`
	ClerkTraceID string       `json:"clerk_trace_id,omitempty"`
}

func (e *apiError) reply(traceID string) reply {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	b := []byte(`{"errors":[]}`)
	if enc.Encode(errorBody{Errors: e.errs, ClerkTraceID: traceID}) == nil { // only plain values: cannot fail
		b = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	rp := reply{status: e.status, body: b, contentType: "application/json"}
	if e.status == http.StatusTooManyRequests {
		ra := max(e.retryAfter, 1)
		rp.retryAfter = strconv.Itoa(ra)
	}
	return rp
}

// reply is a fully computed HTTP answer. Handlers return replies instead of
// writing to the ResponseWriter so that the server can count, delay or drop
// them uniformly.
type reply struct {
	status      int
	body        []byte
	contentType string
	retryAfter  string
	err         *apiError // set when the reply is an error; body is rendered later with the trace ID
}

func okJSON(body []byte) reply {
	return reply{status: http.StatusOK, body: body, contentType: "application/json"}
}

func okValue(v any) reply {
	b, err := json.Marshal(v)
	if err != nil {
		return fail(errInternal())
	}
	return okJSON(b)
}

func fail(e *apiError) reply { return reply{status: e.status, err: e} }
