package clerkfake

import (
	"encoding/json"
	"maps"
)

// MetadataLimitBytes is Clerk's documented metadata limit ("Metadata is
// limited to 8KB maximum"), applied to the compact JSON of public, private
// and unsafe metadata together.
const MetadataLimitBytes = 8 * 1024

// metadataFields are the three metadata fields, in the order errors name them.
var metadataFields = []string{"public_metadata", "private_metadata", "unsafe_metadata"}

// deepMerge applies patch to base the way PATCH /users/{id}/metadata does:
// nested objects merge recursively, a null value deletes the key at any
// depth, and every other value (arrays included) replaces the old one.
// base is not modified; the result is a new object.
func deepMerge(base, patch map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(patch))
	maps.Copy(out, base)
	for k, pv := range patch {
		if pv == nil {
			delete(out, k)
			continue
		}
		if pm, ok := pv.(map[string]any); ok {
			bm, _ := out[k].(map[string]any)
			out[k] = deepMerge(bm, pm)
			continue
		}
		out[k] = pv
	}
	return out
}

// metadataSize is the total compact JSON size of the three metadata values.
func metadataSize(public, private, unsafe any) int {
	n := 0
	for _, v := range []any{public, private, unsafe} {
		b, err := json.Marshal(v)
		if err == nil {
			n += len(b)
		}
	}
	return n
}

// emptyObject returns a fresh {} value.
func emptyObject() map[string]any { return map[string]any{} }
