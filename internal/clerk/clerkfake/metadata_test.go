package clerkfake

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func decodeObj(t *testing.T, s string) map[string]any {
	t.Helper()
	v, err := decodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	m, _ := v.(map[string]any)
	return m
}

func TestDeepMerge(t *testing.T) {
	cases := []struct{ name, base, patch, want string }{
		{"add key", `{"a":1}`, `{"b":2}`, `{"a":1,"b":2}`},
		{"replace scalar", `{"a":1}`, `{"a":"x"}`, `{"a":"x"}`},
		{"null deletes top-level key", `{"a":1,"b":2}`, `{"a":null}`, `{"b":2}`},
		{"null deletes nested key", `{"a":{"b":{"c":1,"d":2}}}`, `{"a":{"b":{"c":null}}}`, `{"a":{"b":{"d":2}}}`},
		{"nested objects merge", `{"a":{"x":1,"y":{"z":1}}}`, `{"a":{"y":{"w":2}}}`, `{"a":{"x":1,"y":{"w":2,"z":1}}}`},
		{"arrays replace", `{"a":[1,2,3]}`, `{"a":[4]}`, `{"a":[4]}`},
		{"object replaces scalar", `{"a":1}`, `{"a":{"b":1}}`, `{"a":{"b":1}}`},
		{"scalar replaces object", `{"a":{"b":1}}`, `{"a":true}`, `{"a":true}`},
		{"null inside a new object is dropped", `{}`, `{"a":{"b":null,"c":1}}`, `{"a":{"c":1}}`},
		{"deleting a missing key is a no-op", `{"a":1}`, `{"zz":null}`, `{"a":1}`},
		{"nil base", `null`, `{"a":1}`, `{"a":1}`},
		{"big numbers kept", `{}`, `{"n":12345678901234567890}`, `{"n":12345678901234567890}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := decodeObj(t, tc.base)
			before := mustJSON(t, base)
			got := mustJSON(t, deepMerge(base, decodeObj(t, tc.patch)))
			if got != mustJSON(t, decodeObj(t, tc.want)) {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			if mustJSON(t, base) != before {
				t.Errorf("base was modified")
			}
		})
	}
}

func TestMetadataEndpoints(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.create(map[string]any{"username": "meta", "public_metadata": map[string]any{"role": "admin", "nested": map[string]any{"a": 1, "b": map[string]any{"c": 2, "d": 3}}, "tags": []string{"x", "y"}},
		"private_metadata": map[string]any{"crm": "C-1"}, "unsafe_metadata": map[string]any{"theme": "dark"}})["id"].(string)
	path := "/users/" + id + "/metadata"
	meta := func(u map[string]any) string {
		return mustJSON(t, map[string]any{"public": u["public_metadata"], "private": u["private_metadata"], "unsafe": u["unsafe_metadata"]})
	}

	u := f.do("PATCH", path, map[string]any{"public_metadata": map[string]any{"nested": map[string]any{"b": map[string]any{"c": nil, "e": 5}}, "tags": []string{"z"}, "role": nil, "new": true}}).ok(t)
	want := `{"private":{"crm":"C-1"},"public":{"nested":{"a":1,"b":{"d":3,"e":5}},"new":true,"tags":["z"]},"unsafe":{"theme":"dark"}}`
	if got := meta(u); got != want {
		t.Errorf("PATCH deep merge:\n got %s\nwant %s", got, want)
	}
	u = f.do("PATCH", path, map[string]any{"private_metadata": nil}).ok(t)
	if got := mustJSON(t, u["private_metadata"]); got != `{}` {
		t.Errorf("PATCH top-level null: %s, want {}", got)
	}
	u = f.do("PUT", path, map[string]any{"public_metadata": map[string]any{"only": 1}, "unsafe_metadata": map[string]any{}}).ok(t)
	want = `{"private":{},"public":{"only":1},"unsafe":{}}`
	if got := meta(u); got != want {
		t.Errorf("PUT replace:\n got %s\nwant %s", got, want)
	}
	u = f.do("PUT", path, map[string]any{"private_metadata": nil}).ok(t)
	if u["private_metadata"] != nil || mustJSON(t, u["public_metadata"]) != `{"only":1}` {
		t.Errorf("PUT null: private %v public %v", u["private_metadata"], u["public_metadata"])
	}
	// public_metadata is not nullable in the User schema: null clears it.
	f.do("PUT", path, map[string]any{"public_metadata": map[string]any{"gone": 1}}).ok(t)
	if u := f.do("PUT", path, map[string]any{"public_metadata": nil}).ok(t); mustJSON(t, u["public_metadata"]) != `{}` {
		t.Errorf("PUT public null: %v", u["public_metadata"])
	}
	f.do("PUT", path, map[string]any{"public_metadata": map[string]any{"only": 1}}).ok(t)
	// A merge into a null field starts from {}.
	u = f.do("PATCH", path, map[string]any{"private_metadata": map[string]any{"k": "v"}}).ok(t)
	if mustJSON(t, u["private_metadata"]) != `{"k":"v"}` {
		t.Errorf("merge into null: %v", u["private_metadata"])
	}
	// Body-less calls change nothing.
	for _, b := range []any{nil, "null", "{}"} {
		if got := meta(f.do("PATCH", path, b).ok(t)); got != meta(u) {
			t.Errorf("empty PATCH changed metadata: %s", got)
		}
	}

	t.Run("errors", func(t *testing.T) {
		e := f.do("PATCH", path, map[string]any{"public_metadata": map[string]any{}, "first_name": "x"}).clerkErr(t, 422, "form_param_unknown")
		if paramName(e) != "first_name" {
			t.Errorf("param %q", paramName(e))
		}
		f.do("PUT", path, map[string]any{"public_metadata": "text"}).clerkErr(t, 422, "form_param_value_invalid")
		f.do("PATCH", path, map[string]any{"unsafe_metadata": []int{1}}).clerkErr(t, 422, "form_param_value_invalid")
		f.do("PATCH", "/users/user_missing/metadata", map[string]any{}).clerkErr(t, 404, "resource_not_found")
		f.do("PUT", "/users/user_missing/metadata", map[string]any{}).clerkErr(t, 404, "resource_not_found")
	})
}

// TestMetadataLimit checks the 8 KB total: exactly at the limit is fine,
// one byte over is 422, and the rejected write changes nothing.
func TestMetadataLimit(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.createEmail("limit@example.com")
	path := "/users/" + id + "/metadata"
	// public {"k":"…"} + private {} + unsafe {} == limit when len(value) == limit-8-2-2.
	fill := strings.Repeat("a", MetadataLimitBytes-8-4)
	u := f.do("PUT", path, map[string]any{"public_metadata": map[string]any{"k": fill}}).ok(t)
	if n := metadataSize(u["public_metadata"], u["private_metadata"], u["unsafe_metadata"]); n != MetadataLimitBytes {
		t.Fatalf("setup: size %d, want exactly %d", n, MetadataLimitBytes)
	}
	before, _ := f.srv.User(id)
	e := f.do("PATCH", path, map[string]any{"unsafe_metadata": map[string]any{"x": 1}}).clerkErr(t, 422, "form_param_exceeds_allowed_size")
	if paramName(e) != "unsafe_metadata" {
		t.Errorf("param %q", paramName(e))
	}
	f.do("PUT", path, map[string]any{"private_metadata": map[string]any{"x": 1}}).clerkErr(t, 422, "form_param_exceeds_allowed_size")
	after, _ := f.srv.User(id)
	if diff := cmp.Diff(string(before), string(after)); diff != "" {
		t.Errorf("rejected write changed the user:\n%s", diff)
	}
	// Shrinking one field makes room in another.
	f.do("PUT", path, map[string]any{"public_metadata": map[string]any{}, "private_metadata": map[string]any{"x": 1}}).ok(t)

	var m map[string]any
	_ = json.Unmarshal(after, &m)
	if str(m["public_metadata"].(map[string]any), "k") != fill {
		t.Error("stored value differs")
	}
}
