package clerkfake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// exactNumbers are metadata numbers that a float64 would change: a 64-bit integer past 2^53,
// decimals, a value out of float64's range (Clerk's storage keeps such a value; the fake keeps
// its text), and a trailing zero that a float64 would drop. They sit at the top level and
// nested in objects and arrays.
const exactNumbers = `{"big":1098765432109876543,"neg":-0.1,"dec":0.1,"huge":1e400,"keep":1.0,` +
	`"nested":{"n":1098765432109876543,"a":[0.1,{"b":-0.1}]},"list":[1098765432109876543,[1e400,-0.1]]}`

// rawDo sends body verbatim and returns the status and body, without the OpenAPI check of
// fixture.do: kin-openapi decodes numbers as float64 and cannot take 1e400. hdr are
// "Key: value" pairs that replace the defaults.
func rawDo(t *testing.T, f *fixture, method, path, body string, hdr ...string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Clerk-API-Version", APIVersion)
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	res, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// exactJSON decodes JSON with numbers as json.Number, whose comparison is by text.
func exactJSON(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

// exactMeta returns the three metadata objects of a user body, numbers exact.
func exactMeta(t *testing.T, userBody []byte) map[string]any {
	t.Helper()
	u, _ := exactJSON(t, userBody).(map[string]any)
	return map[string]any{"public": u["public_metadata"], "private": u["private_metadata"], "unsafe": u["unsafe_metadata"]}
}

// rawOK is rawDo that asserts a 200 and returns the body.
func rawOK(t *testing.T, f *fixture, method, path, body string, hdr ...string) []byte {
	t.Helper()
	status, b := rawDo(t, f, method, path, body, hdr...)
	if status != http.StatusOK {
		t.Fatalf("%s %s: status %d, want 200; body %.300s", method, path, status, b)
	}
	return b
}

// TestMetadataExactNumbers: metadata numbers are stored and returned with their exact text by
// create, PATCH (deep merge), PUT (replace), GET, the user list and seeding, over HTTP.
func TestMetadataExactNumbers(t *testing.T) {
	f := newFixture(t, Options{})
	want := func(public, private, unsafe string) any {
		return exactMeta(t, []byte(`{"public_metadata":`+public+`,"private_metadata":`+private+`,"unsafe_metadata":`+unsafe+`}`))
	}
	check := func(t *testing.T, what string, body []byte, wantMeta any) {
		t.Helper()
		if diff := cmp.Diff(wantMeta, exactMeta(t, body)); diff != "" {
			t.Errorf("%s: metadata (-want +got):\n%s", what, diff)
		}
		// The text itself, not only the value: Clerk echoes what it stores.
		for _, lit := range []string{"1098765432109876543", "1e400", "-0.1"} {
			if !bytes.Contains(body, []byte(lit)) {
				t.Errorf("%s: body lacks the literal %s: %s", what, lit, body)
			}
		}
	}

	created := rawOK(t, f, "POST", "/users", `{"email_address":["exact@example.com"],`+
		`"public_metadata":`+exactNumbers+`,"private_metadata":`+exactNumbers+`,"unsafe_metadata":`+exactNumbers+`}`)
	id, _ := exactJSON(t, created).(map[string]any)["id"].(string)
	path := "/users/" + id
	stage := want(exactNumbers, exactNumbers, exactNumbers)
	t.Run("create", func(t *testing.T) {
		check(t, "POST /users", created, stage)
		check(t, "GET /users/{id}", rawOK(t, f, "GET", path, ""), stage)
		if !bytes.Contains(created, []byte(`"keep":1.0`)) {
			t.Errorf("1.0 was not kept as written: %s", created)
		}
	})

	t.Run("PATCH deep merge", func(t *testing.T) {
		body := rawOK(t, f, "PATCH", path+"/metadata", `{"public_metadata":`+
			`{"big":1098765432109876544,"nested":{"n":null,"m":0.30000000000000004,"a":[1e-400]},"list":[-0.1,1e400,1098765432109876543]}}`)
		stage = want(`{"big":1098765432109876544,"neg":-0.1,"dec":0.1,"huge":1e400,"keep":1.0,`+
			`"nested":{"m":0.30000000000000004,"a":[1e-400]},"list":[-0.1,1e400,1098765432109876543]}`, exactNumbers, exactNumbers)
		check(t, "PATCH", body, stage)
		check(t, "GET after PATCH", rawOK(t, f, "GET", path, ""), stage)
	})

	t.Run("PUT replace", func(t *testing.T) {
		body := rawOK(t, f, "PUT", path+"/metadata", `{"private_metadata":{"only":[1098765432109876543,0.1,{"x":-0.1}],"huge":1e400}}`)
		stage = want(`{"big":1098765432109876544,"neg":-0.1,"dec":0.1,"huge":1e400,"keep":1.0,`+
			`"nested":{"m":0.30000000000000004,"a":[1e-400]},"list":[-0.1,1e400,1098765432109876543]}`,
			`{"only":[1098765432109876543,0.1,{"x":-0.1}],"huge":1e400}`, exactNumbers)
		check(t, "PUT", body, stage)
		check(t, "GET after PUT", rawOK(t, f, "GET", path, ""), stage)
	})

	t.Run("PATCH /users/{id} of API versions before 2026-05-12 replaces", func(t *testing.T) {
		body := rawOK(t, f, "PATCH", path, `{"unsafe_metadata":{"v":[1098765432109876543,1e400,-0.1]}}`, "Clerk-API-Version: 2025-11-10")
		stage = want(`{"big":1098765432109876544,"neg":-0.1,"dec":0.1,"huge":1e400,"keep":1.0,`+
			`"nested":{"m":0.30000000000000004,"a":[1e-400]},"list":[-0.1,1e400,1098765432109876543]}`,
			`{"only":[1098765432109876543,0.1,{"x":-0.1}],"huge":1e400}`, `{"v":[1098765432109876543,1e400,-0.1]}`)
		check(t, "legacy PATCH", body, stage)
		check(t, "GET after legacy PATCH", rawOK(t, f, "GET", path, ""), stage)
	})

	t.Run("list", func(t *testing.T) {
		body := rawOK(t, f, "GET", "/users?user_id="+id, "")
		list, _ := exactJSON(t, body).([]any)
		if len(list) != 1 {
			t.Fatalf("GET /users?user_id= returned %d users: %s", len(list), body)
		}
		one, _ := json.Marshal(list[0])
		check(t, "GET /users", one, stage)
	})

	t.Run("seed", func(t *testing.T) {
		seed := []json.RawMessage{json.RawMessage(`{"id":"user_exactseed","username":"exactseed",` +
			`"public_metadata":` + exactNumbers + `,"private_metadata":` + exactNumbers + `,"unsafe_metadata":` + exactNumbers + `}`)}
		if err := f.srv.Seed(seed); err != nil {
			t.Fatal(err)
		}
		check(t, "GET seeded user", rawOK(t, f, "GET", "/users/user_exactseed", ""),
			want(exactNumbers, exactNumbers, exactNumbers))
	})
}

// TestMetadataExactNumbersSpecValid: a body with 64-bit integers and decimals (all within
// float64's range) still matches Clerk's OpenAPI description.
func TestMetadataExactNumbersSpecValid(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.create(map[string]any{"email_address": []string{"spec@example.com"}})["id"].(string)
	r := f.do("PATCH", "/users/"+id+"/metadata", `{"public_metadata":{"big":1098765432109876543,"l":[-0.1,{"d":0.1}]}}`)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if !bytes.Contains(r.body, []byte(`"public_metadata":{"big":1098765432109876543,"l":[-0.1,{"d":0.1}]}`)) {
		t.Errorf("body %s does not hold the metadata exactly", r.body)
	}
}

// TestMetadataLimitExactNumbers: the 8 KB limit counts numbers in their exact text (a number
// of thousands of digits, which no float64 can hold, counts every digit).
func TestMetadataLimitExactNumbers(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.createEmail("limit-exact@example.com")
	path := "/users/" + id + "/metadata"
	// {"n":N} + {} + {} is 6 + len(N) + 4 bytes.
	digits := func(n int) string { return "1" + strings.Repeat("0", n-1) }
	atLimit := `{"public_metadata":{"n":` + digits(MetadataLimitBytes-10) + `}}`
	body := rawOK(t, f, "PUT", path, atLimit)
	if !bytes.Contains(body, []byte(digits(MetadataLimitBytes-10))) {
		t.Error("the stored number differs from the one sent")
	}
	status, body := rawDo(t, f, "PUT", path, `{"public_metadata":{"n":`+digits(MetadataLimitBytes-9)+`}}`)
	if status != http.StatusUnprocessableEntity || !bytes.Contains(body, []byte("form_param_exceeds_allowed_size")) {
		t.Errorf("one byte over: status %d, body %.200s; want 422 form_param_exceeds_allowed_size", status, body)
	}
}
