package clerk_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// exactMetadataJSON holds numbers that a float64 changes: a 64-bit integer past 2^53, decimals,
// a value out of float64's range, and a trailing zero; nested in objects and arrays.
const exactMetadataJSON = `{"big":1098765432109876543,"dec":0.1,"neg":-0.1,"huge":1e400,"one":1.0,` +
	`"nested":{"n":1098765432109876543,"l":[0.1,{"d":-0.1}]},"list":[1098765432109876543,[1e400]]}`

// exactMetadata is exactMetadataJSON decoded as the client must decode it.
func exactMetadata() map[string]any {
	n := func(s string) json.Number { return json.Number(s) }
	return map[string]any{"big": n("1098765432109876543"), "dec": n("0.1"), "neg": n("-0.1"), "huge": n("1e400"), "one": n("1.0"),
		"nested": map[string]any{"n": n("1098765432109876543"), "l": []any{n("0.1"), map[string]any{"d": n("-0.1")}}},
		"list":   []any{n("1098765432109876543"), []any{n("1e400")}}}
}

// TestExactMetadataDecoding: metadata numbers decode as json.Number with their exact text (a
// float64 would round them, and 1e400 would fail the whole response); typed fields decode as
// before.
func TestExactMetadataDecoding(t *testing.T) {
	body := strings.Replace(userJSON, `"private_metadata": null`, `"private_metadata": `+exactMetadataJSON, 1)
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/users" {
			writeJSON(w, 200, "["+body+"]")
			return
		}
		writeJSON(w, 200, body)
	})
	c := newClient(t, rec.url())
	u, err := c.GetUser(t.Context(), "user_2dYS7stz9bgxQsSRvNqEAHhuxvW")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(exactMetadata(), u.PrivateMetadata); diff != "" {
		t.Errorf("PrivateMetadata (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"team": "support", "level": json.Number("3"), "tags": []any{"a", "b"}}, u.PublicMetadata); diff != "" {
		t.Errorf("PublicMetadata (-want +got):\n%s", diff)
	}
	if u.CreatedAt != 1730160000000 || u.LockoutExpiresInSeconds == nil || *u.LockoutExpiresInSeconds != 3600 || !u.Banned {
		t.Errorf("typed fields: CreatedAt %d, LockoutExpiresInSeconds %v, Banned %v", u.CreatedAt, u.LockoutExpiresInSeconds, u.Banned)
	}
	// Encoding the decoded metadata gives the same numbers back, character for character.
	b, err := json.Marshal(u.PrivateMetadata)
	if err != nil {
		t.Fatal(err)
	}
	for _, lit := range []string{`"big":1098765432109876543`, `"dec":0.1`, `"neg":-0.1`, `"huge":1e400`, `"one":1.0`, `[1098765432109876543,[1e400]]`} {
		if !bytes.Contains(b, []byte(lit)) {
			t.Errorf("re-encoded metadata %s lacks %s", b, lit)
		}
	}

	users, err := c.ListUsers(t.Context(), clerk.ListUsersParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 {
		t.Fatalf("ListUsers returned %d users", len(users))
	}
	if diff := cmp.Diff(exactMetadata(), users[0].PrivateMetadata); diff != "" {
		t.Errorf("ListUsers PrivateMetadata (-want +got):\n%s", diff)
	}
}

// TestExactMetadataRequestBodies: json.Number values are sent as their text.
func TestExactMetadataRequestBodies(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, userJSON) })
	c := newClient(t, rec.url())
	ctx := t.Context()
	if _, err := c.MergeMetadata(ctx, "user_1", clerk.MetadataParams{PublicMetadata: exactMetadata()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReplaceMetadata(ctx, "user_1", clerk.MetadataParams{PrivateMetadata: exactMetadata()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUser(ctx, clerk.CreateUserParams{Username: new("x"), UnsafeMetadata: exactMetadata()}); err != nil {
		t.Fatal(err)
	}
	compact := func(s string) string {
		var b bytes.Buffer
		if err := json.Compact(&b, []byte(s)); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	want, _ := json.Marshal(exactMetadata())
	for i, r := range rec.requests() {
		if !strings.Contains(compact(r.Body), string(want)) {
			t.Errorf("request %d (%s %s) body %s, want it to hold %s", i, r.Method, r.Path, r.Body, want)
		}
	}
}

// TestExactMetadataDecodeErrors: a 2xx body that is not valid JSON fails as with
// json.Unmarshal (a *json.SyntaxError), trailing data included.
func TestExactMetadataDecodeErrors(t *testing.T) {
	for name, body := range map[string]string{
		"truncated": `{"id":"user_1","public_metadata":{"n":1`,
		"trailing":  `{"id":"user_1"} {"id":"user_2"}`,
		"empty":     ``,
		"bad token": `{"id":"user_1","public_metadata":{"n":01}}`,
	} {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, body) })
			c := newClient(t, rec.url())
			u, err := c.GetUser(t.Context(), "user_1")
			var re *clerk.RequestError
			var se *json.SyntaxError
			if u != nil || !errors.As(err, &re) || !errors.As(err, &se) || !strings.Contains(err.Error(), "decode response body") {
				t.Errorf("GetUser() = %v, %v; want a *RequestError wrapping a *json.SyntaxError", u, err)
			}
		})
	}
	t.Run("type error", func(t *testing.T) {
		rec := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, `{"id":"user_1","created_at":"soon"}`) })
		c := newClient(t, rec.url())
		_, err := c.GetUser(t.Context(), "user_1")
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); !ok {
			t.Errorf("GetUser() error = %v, want a *json.UnmarshalTypeError", err)
		}
	})
}

// TestExactMetadataThroughFake: metadata written through the client to the fake and read back
// keeps every number exactly: create, merge (nested), replace, and writing back what was read.
func TestExactMetadataThroughFake(t *testing.T) {
	env := newFake(t, clerkfake.Options{})
	ctx := t.Context()
	u := env.mustCreate(t, clerk.CreateUserParams{Username: new("exact"), PublicMetadata: exactMetadata(),
		PrivateMetadata: exactMetadata(), UnsafeMetadata: exactMetadata()})
	for name, m := range map[string]map[string]any{"public": u.PublicMetadata, "private": u.PrivateMetadata, "unsafe": u.UnsafeMetadata} {
		if diff := cmp.Diff(exactMetadata(), m); diff != "" {
			t.Errorf("created %s metadata (-want +got):\n%s", name, diff)
		}
	}

	merged, err := env.c.MergeMetadata(ctx, u.ID, clerk.MetadataParams{PublicMetadata: map[string]any{
		"big": json.Number("1098765432109876544"), "nested": map[string]any{"n": nil, "m": json.Number("0.30000000000000004")}}})
	if err != nil {
		t.Fatal(err)
	}
	want := exactMetadata()
	want["big"] = json.Number("1098765432109876544")
	want["nested"] = map[string]any{"m": json.Number("0.30000000000000004"), "l": []any{json.Number("0.1"), map[string]any{"d": json.Number("-0.1")}}}
	if diff := cmp.Diff(want, merged.PublicMetadata); diff != "" {
		t.Errorf("merged public metadata (-want +got):\n%s", diff)
	}

	replaced, err := env.c.ReplaceMetadata(ctx, u.ID, clerk.MetadataParams{PrivateMetadata: map[string]any{"only": []any{json.Number("-0.1"), json.Number("1e400")}}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"only": []any{json.Number("-0.1"), json.Number("1e400")}}, replaced.PrivateMetadata); diff != "" {
		t.Errorf("replaced private metadata (-want +got):\n%s", diff)
	}

	// What was read is written back unchanged: the stored text does not move.
	got, err := env.c.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := env.fake.User(u.ID)
	if _, err := env.c.ReplaceMetadata(ctx, u.ID, clerk.MetadataParams{PublicMetadata: got.PublicMetadata,
		PrivateMetadata: got.PrivateMetadata, UnsafeMetadata: got.UnsafeMetadata}); err != nil {
		t.Fatal(err)
	}
	after, _ := env.fake.User(u.ID)
	meta := func(raw json.RawMessage) string {
		var m struct {
			Public  json.RawMessage `json:"public_metadata"`
			Private json.RawMessage `json:"private_metadata"`
			Unsafe  json.RawMessage `json:"unsafe_metadata"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return string(m.Public) + string(m.Private) + string(m.Unsafe)
	}
	if diff := cmp.Diff(meta(before), meta(after)); diff != "" {
		t.Errorf("writing back what was read changed the stored metadata (-before +after):\n%s", diff)
	}
	if !strings.Contains(meta(after), `"huge":1e400`) || !strings.Contains(meta(after), `"big":1098765432109876544`) {
		t.Errorf("stored metadata %s lost the exact text", meta(after))
	}
}
