package clerk

import (
	"bytes"
	"encoding/json"
)

// fieldState is the state of a Field.
type fieldState uint8

const (
	fieldAbsent fieldState = iota
	fieldNull
	fieldValue
)

// Field is a tri-state value for request bodies, where Clerk distinguishes a field that is not
// sent (left unchanged), JSON null (cleared) and a value. The zero Field is absent; with the
// struct tag `json:",omitzero"` an absent Field is left out of the JSON object. Build the other
// states with [Set] and [Null].
type Field[T any] struct {
	state fieldState
	value T
}

// Set returns a Field holding v, marshalled as v's JSON. Note that Set("") sends an empty
// string, which is not the same as [Null] for every Clerk field.
func Set[T any](v T) Field[T] { return Field[T]{state: fieldValue, value: v} }

// Null returns a Field marshalled as JSON null.
func Null[T any]() Field[T] { return Field[T]{state: fieldNull} }

// IsZero reports whether the field is absent; encoding/json's omitzero option uses it to omit
// the field.
func (f Field[T]) IsZero() bool { return f.state == fieldAbsent }

// IsNull reports whether the field is an explicit JSON null.
func (f Field[T]) IsNull() bool { return f.state == fieldNull }

// Value returns the value and true when the field holds a value; otherwise the zero T and false.
func (f Field[T]) Value() (T, bool) { return f.value, f.state == fieldValue }

// MarshalJSON encodes a value as its JSON and an absent or null field as null (an absent field
// is normally omitted before this is called, through omitzero).
func (f Field[T]) MarshalJSON() ([]byte, error) {
	if f.state != fieldValue {
		return []byte("null"), nil
	}
	return json.Marshal(f.value)
}

// UnmarshalJSON sets the field to null for JSON null and to the decoded value otherwise. A
// field missing from the JSON object stays absent, because UnmarshalJSON is not called.
func (f *Field[T]) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		*f = Null[T]()
		return nil
	}
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*f = Set(v)
	return nil
}
