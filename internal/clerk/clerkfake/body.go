package clerkfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"time"
)

// maxBodyBytes caps JSON request bodies.
const maxBodyBytes = 1 << 20

// body is a decoded JSON request body: the top-level fields, still raw.
type body map[string]json.RawMessage

// readBody reads a JSON object body and rejects fields that are not in
// allowed (422 form_param_unknown, one error per unknown field, like
// Clerk's additionalProperties: false). An empty body, `null` and `{}` all
// decode to an empty body, as Clerk accepts for body-less calls.
func readBody(r *http.Request, allowed ...string) (body, *apiError) {
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errBodyInvalid("The request body is too large.")
		}
		return nil, errBodyInvalid("The request body could not be read.")
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return body{}, nil
	}
	if raw[0] != '{' {
		return nil, errBodyInvalid("The request body is invalid. Please consult the API documentation for more information.")
	}
	var b body
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, errBodyInvalid("The request body is invalid. Please consult the API documentation for more information.")
	}
	var unknown []string
	for k := range b {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		e := &apiError{status: http.StatusUnprocessableEntity}
		for _, k := range unknown {
			e.errs = append(e.errs, errParamUnknown(k))
		}
		return nil, e
	}
	return b, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// field presence: ok=false means absent; val=nil with ok=true means JSON null.

func (b body) str(k string) (val *string, ok bool, e *apiError) {
	raw, ok := b[k]
	if !ok {
		return nil, false, nil
	}
	if isNull(raw) {
		return nil, true, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, true, errParamType(k, "string")
	}
	return &s, true, nil
}

// boolean decodes a boolean; val is nil when the field is absent or null
// (no caller needs to tell the two apart).
func (b body) boolean(k string) (val *bool, e *apiError) {
	raw, ok := b[k]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var v bool
	if json.Unmarshal(raw, &v) != nil {
		return nil, errParamType(k, "boolean")
	}
	return &v, nil
}

func (b body) integer(k string) (val *int64, ok bool, e *apiError) {
	raw, ok := b[k]
	if !ok {
		return nil, false, nil
	}
	if isNull(raw) {
		return nil, true, nil
	}
	var v int64
	if json.Unmarshal(raw, &v) != nil {
		return nil, true, errParamType(k, "integer")
	}
	return &v, true, nil
}

// strings decodes a string array; null counts as absent (the arrays in
// Clerk's request schemas are not nullable).
func (b body) strings(k string) (val []string, ok bool, e *apiError) {
	raw, ok := b[k]
	if !ok || isNull(raw) {
		return nil, false, nil
	}
	var v []string
	if json.Unmarshal(raw, &v) != nil {
		return nil, true, errParamType(k, "array of strings")
	}
	return v, true, nil
}

// object decodes a free-form JSON object (metadata). val is nil for JSON
// null. Non-object values are 422 form_param_value_invalid, as Clerk says
// for "metadata that is not a key-value object".
func (b body) object(k string) (val map[string]any, ok bool, e *apiError) {
	raw, ok := b[k]
	if !ok {
		return nil, false, nil
	}
	if isNull(raw) {
		return nil, true, nil
	}
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, true, errParamValue(k, k+" must be a valid JSON object.")
	}
	m, isObj := v.(map[string]any)
	if !isObj {
		return nil, true, errParamValue(k, k+" must be a valid JSON object.")
	}
	return m, true, nil
}

// timestamp decodes an RFC 3339 string into Unix milliseconds.
func (b body) timestamp(k string) (val *int64, ok bool, e *apiError) {
	s, ok, e := b.str(k)
	if e != nil || s == nil {
		return nil, ok, e
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return nil, true, newAPIError(http.StatusUnprocessableEntity, "form_param_invalid_time", "is invalid",
			k+" must be a valid RFC 3339 date-time, e.g. 2012-10-20T07:15:20.902Z.", paramMeta(k))
	}
	ms := t.UnixMilli()
	return &ms, true, nil
}

// decodeJSON decodes a JSON value keeping numbers exact (json.Number).
func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

// fieldReader decodes body fields one after another and keeps the first
// error, so a handler can read a whole body and then check once: a body
// with several bad fields is rejected for the first one read. Absent and
// null fields read as nil.
type fieldReader struct {
	b   body
	err *apiError
}

func (r *fieldReader) keep(e *apiError) {
	if r.err == nil {
		r.err = e
	}
}

func (r *fieldReader) str(k string) *string {
	v, _ := r.optStr(k)
	return v
}

// optStr is str that also reports whether the field was present (null included).
func (r *fieldReader) optStr(k string) (*string, bool) {
	v, ok, e := r.b.str(k)
	r.keep(e)
	return v, ok
}

func (r *fieldReader) boolean(k string) *bool {
	v, e := r.b.boolean(k)
	r.keep(e)
	return v
}

func (r *fieldReader) strings(k string) []string {
	v, _, e := r.b.strings(k)
	r.keep(e)
	return v
}

func (r *fieldReader) integer(k string) (*int64, bool) {
	v, ok, e := r.b.integer(k)
	r.keep(e)
	return v, ok
}

func (r *fieldReader) timestamp(k string) (*int64, bool) {
	v, ok, e := r.b.timestamp(k)
	r.keep(e)
	return v, ok
}

func (r *fieldReader) object(k string) (map[string]any, bool) {
	v, ok, e := r.b.object(k)
	r.keep(e)
	return v, ok
}
