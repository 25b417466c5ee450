package crd_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// applyModes are the two ways users apply manifests; both must be refused or accepted alike.
var applyModes = []struct {
	name string
	args []string
}{
	{"client-side", nil},
	{"server-side", []string{"--server-side"}},
}

// manifest renders a ClerkUser with the given spec (JSON, which is YAML too); no spec when spec is "".
func manifest(name, spec string) string {
	m := "apiVersion: clerk.kubeclerk.dev/v1alpha1\nkind: ClerkUser\nmetadata:\n  name: " + name + "\n"
	if spec != "" {
		m += "spec: " + spec + "\n"
	}
	return m
}

var nonDNS = regexp.MustCompile(`[^a-z0-9]+`)

// objectName derives a valid, unique object name from a test case name.
func objectName(i int, caseName string) string {
	s := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(caseName), "-"), "-")
	if len(s) > 40 {
		s = strings.TrimRight(s[:40], "-")
	}
	return fmt.Sprintf("c%03d-%s", i, s)
}

func apply(ns, name, spec string, modeArgs []string) result {
	args := append([]string{"apply", "-n", ns, "-f", "-"}, modeArgs...)
	return kc.run(manifest(name, spec), args...)
}

func mustApply(t *testing.T, ns, name, spec string, modeArgs []string) {
	t.Helper()
	if r := apply(ns, name, spec, modeArgs); r.err != nil || r.exitCode != 0 {
		t.Fatalf("expected %s to be accepted: %s", manifest(name, spec), r)
	}
}

// getSpec reads the spec of a ClerkUser back; ok is false when the object does not exist.
func getSpec(t *testing.T, ns, name string) (spec map[string]any, ok bool) {
	t.Helper()
	r := kc.run("", "get", "clerkusers", name, "-n", ns, "-o", "json", "--ignore-not-found")
	if r.err != nil {
		t.Fatalf("read %s: %s", name, r)
	}
	if strings.TrimSpace(r.stdout) == "" {
		return nil, false
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &obj); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
	s, _ := obj["spec"].(map[string]any)
	return s, true
}

type invalidCase struct {
	name string
	// before are specs applied first, in order; each must be accepted.
	before []string
	// spec is the spec that must be refused ("" = no spec at all).
	spec string
	// want are texts stderr must contain: the field path, and what is wrong.
	want []string
	// wantAny, when set, are texts of which stderr must contain at least one.
	wantAny []string
}

func invalidCases() []invalidCase {
	cases := []invalidCase{
		// No identifier at all.
		{name: "no identifier: empty spec", spec: `{}`,
			want: []string{"spec: Invalid value", "set at least one of spec.userID, spec.externalID, spec.emailAddress or spec.username"}},
		{name: "no identifier: profile and access state only", spec: `{"firstName":"Alice","banned":true,"publicMetadata":{"role":"admin"}}`,
			want: []string{"spec: Invalid value", "set at least one of spec.userID"}},
		{name: "no identifier: no spec", spec: "",
			want: []string{"spec: Required value"}},
		{name: "no identifier: identifiers are empty strings", spec: `{"externalID":"","username":""}`,
			want: []string{"spec.externalID", "spec.username"}},

		// userID changed after it was set.
		{name: "userID changed", before: []string{`{"userID":"user_aaa111"}`}, spec: `{"userID":"user_bbb222"}`,
			want: []string{"spec.userID", "immutable"}},
		{name: "userID changed with other identifiers kept", before: []string{`{"userID":"user_aaa111","externalID":"emp-1"}`},
			spec: `{"userID":"user_bbb222","externalID":"emp-1"}`, want: []string{"spec.userID", "immutable"}},
		{name: "userID changed with another field", before: []string{`{"userID":"user_aaa111","firstName":"A"}`},
			spec: `{"userID":"user_bbb222","firstName":"B"}`, want: []string{"spec.userID", "immutable"}},
		{name: "userID removed, externalID kept", before: []string{`{"userID":"user_aaa111","externalID":"emp-1"}`},
			spec: `{"externalID":"emp-1"}`, want: []string{"spec.userID", "immutable"}},
		{name: "userID removed, emailAddress added", before: []string{`{"userID":"user_aaa111"}`},
			spec: `{"emailAddress":"a@example.com"}`, want: []string{"spec.userID", "immutable"}},
		{name: "userID removed, no identifier left", before: []string{`{"userID":"user_aaa111","firstName":"A"}`},
			spec: `{"firstName":"A"}`, want: []string{"spec.userID", "immutable"}},
		{name: "userID set after creation to a bad value", before: []string{`{"externalID":"emp-1"}`},
			spec: `{"externalID":"emp-1","userID":"emp-1"}`, want: []string{"spec.userID", "user_"}},

		// instanceRef changed or removed after it was set.
		{name: "instanceRef changed", before: []string{`{"externalID":"emp-1","instanceRef":{"name":"a"}}`},
			spec: `{"externalID":"emp-1","instanceRef":{"name":"b"}}`, want: []string{"spec.instanceRef", "immutable"}},
		{name: "instanceRef removed", before: []string{`{"externalID":"emp-1","instanceRef":{"name":"a"}}`},
			spec: `{"externalID":"emp-1"}`, want: []string{"spec.instanceRef", "immutable"}},
		{name: "instanceRef without a name", spec: `{"externalID":"emp-1","instanceRef":{}}`,
			want: []string{"spec.instanceRef.name"}},

		// AdoptOrCreate without a findable identifier.
		{name: "AdoptOrCreate with only userID", spec: `{"userID":"user_aaa111","creationPolicy":"AdoptOrCreate"}`,
			want: []string{"spec.creationPolicy", "AdoptOrCreate needs spec.externalID, spec.emailAddress or spec.username"}},
		{name: "AdoptOrCreate with only userID and a profile",
			spec: `{"userID":"user_aaa111","firstName":"A","creationPolicy":"AdoptOrCreate"}`,
			want: []string{"spec.creationPolicy", "AdoptOrCreate needs"}},
		{name: "AdoptOrCreate set later on an object with only userID", before: []string{`{"userID":"user_aaa111"}`},
			spec: `{"userID":"user_aaa111","creationPolicy":"AdoptOrCreate"}`, want: []string{"spec.creationPolicy", "AdoptOrCreate needs"}},
		{name: "AdoptOrCreate after the other identifiers were removed",
			before: []string{`{"userID":"user_aaa111","username":"al","creationPolicy":"AdoptOrCreate"}`},
			spec:   `{"userID":"user_aaa111","creationPolicy":"AdoptOrCreate"}`, want: []string{"spec.creationPolicy", "AdoptOrCreate needs"}},
	}

	// userID not of the form user_…
	for _, bad := range []string{"usr_2xK9", "2xK9abc", "User_2xK9", "user_", "user_2x-K9", "user_2x K9", "user_2xK9\n", " user_2xK9", "",
		"user_" + strings.Repeat("a", 60)} {
		cases = append(cases, invalidCase{name: fmt.Sprintf("userID %q", bad),
			spec: fmt.Sprintf(`{"userID":%q,"externalID":"emp-1"}`, bad), want: []string{"spec.userID"}})
	}

	// Metadata that is not a JSON object.
	for _, f := range []string{"publicMetadata", "privateMetadata", "unsafeMetadata"} {
		for _, v := range []struct{ kind, json string }{
			{"string", `"admin"`}, {"empty string", `""`}, {"array", `["admin"]`}, {"array of objects", `[{"role":"admin"}]`},
			{"number", `42`}, {"float", `1.5`}, {"boolean", `true`},
		} {
			cases = append(cases, invalidCase{name: f + " is a " + v.kind,
				spec: fmt.Sprintf(`{"externalID":"emp-1",%q:%s}`, f, v.json), want: []string{"spec." + f},
				// Client-side apply reaches the schema validation; server-side apply stops earlier,
				// when the apply configuration is converted to the schema's type.
				wantAny: []string{"must be of type object", "expected map"}})
		}
	}

	// Unknown enum values.
	for _, e := range []struct {
		field string
		bad   []string
	}{
		{"metadataPolicy", []string{"Patch", "merge", "MERGE", ""}},
		{"creationPolicy", []string{"Create", "adopt", "OrCreate", ""}},
		{"deletionPolicy", []string{"Retain", "orphan", "Delete ", ""}},
		{"managementPolicy", []string{"Ignore", "observe", "ReadOnly", ""}},
	} {
		for _, bad := range e.bad {
			cases = append(cases, invalidCase{name: fmt.Sprintf("%s %q", e.field, bad),
				spec: fmt.Sprintf(`{"externalID":"emp-1",%q:%q}`, e.field, bad), want: []string{"spec." + e.field, "Unsupported value"}})
		}
	}
	return cases
}

func TestInvalidObjectsAreRefused(t *testing.T) {
	cases := invalidCases()
	for _, mode := range applyModes {
		t.Run(mode.name, func(t *testing.T) {
			ns := newNamespace(t, "invalid-"+mode.name)
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					name := objectName(i, tc.name)
					for _, spec := range tc.before {
						mustApply(t, ns, name, spec, mode.args)
					}
					before, existed := getSpec(t, ns, name)

					r := apply(ns, name, tc.spec, mode.args)
					if r.exitCode == 0 {
						t.Fatalf("expected kubectl apply to refuse %s but it exited 0: %s", manifest(name, tc.spec), r)
					}
					if r.exitCode < 0 {
						t.Fatalf("kubectl did not run: %s", r)
					}
					for _, w := range tc.want {
						if !strings.Contains(r.stderr, w) {
							t.Errorf("stderr does not contain %q: %s", w, r)
						}
					}
					if len(tc.wantAny) > 0 && !slices.ContainsFunc(tc.wantAny, func(w string) bool { return strings.Contains(r.stderr, w) }) {
						t.Errorf("stderr contains none of %q: %s", tc.wantAny, r)
					}

					// A refused apply changes nothing.
					after, exists := getSpec(t, ns, name)
					switch {
					case exists != existed:
						t.Errorf("the refused apply changed whether %s exists (before %v, after %v): %v", name, existed, exists, after)
					case !reflect.DeepEqual(before, after):
						t.Errorf("the refused apply changed the spec from %v to %v", before, after)
					}
				})
			}
		})
	}
}

type validCase struct {
	name string
	// steps are specs applied in order; each must be accepted.
	steps []string
	// want is a JSON object of spec fields the object must hold after the last step; "" means
	// the last step's spec.
	want string
	// absent are spec fields the object must not hold after the last step.
	absent []string
}

const (
	allPolicies = `{"emailAddress":"a@example.com","metadataPolicy":"Replace","creationPolicy":"AdoptOrCreate",` +
		`"deletionPolicy":"Delete","managementPolicy":"Observe"}`
	everyOtherField = `{"userID":"user_aaa111","firstName":"Alicia","lastName":"","banned":true,"locked":false,` +
		`"mfa":{"disabled":true,"resetToken":"T-1"},"publicMetadata":{"role":"admin"},` +
		`"metadataPolicy":"Replace","deletionPolicy":"Ban","managementPolicy":"Observe"}`
	nestedMetadata = `{"username":"al",` +
		`"publicMetadata":{"role":"admin","teams":["billing","support"],"limits":{"seats":3,"tier":{"name":"gold"}},"beta":true},` +
		`"privateMetadata":{"crmID":"C-77"},"unsafeMetadata":{}}`
)

// validCases are accepted; want "" means the object holds the last step's spec.
var validCases = []validCase{
	{name: "defaults", steps: []string{`{"externalID":"emp-1"}`},
		want: `{"externalID":"emp-1","metadataPolicy":"Merge","creationPolicy":"Adopt","deletionPolicy":"Orphan","managementPolicy":"Manage"}`,
		absent: []string{"userID", "emailAddress", "username", "firstName", "lastName", "banned", "locked", "mfa",
			"publicMetadata", "privateMetadata", "unsafeMetadata"}},
	{name: "explicit values are kept", steps: []string{allPolicies}},
	{name: "deletionPolicy Ban", steps: []string{`{"username":"al","deletionPolicy":"Ban"}`}},
	{name: "userID alone", steps: []string{`{"userID":"user_2xK9abcDEF"}`},
		want: `{"userID":"user_2xK9abcDEF","creationPolicy":"Adopt"}`},
	{name: "emailAddress alone", steps: []string{`{"emailAddress":"alice@example.com"}`}},
	{name: "username alone", steps: []string{`{"username":"alice"}`}},
	{name: "AdoptOrCreate with userID and username",
		steps: []string{`{"userID":"user_abc","username":"alice","creationPolicy":"AdoptOrCreate"}`}},
	{name: "change other fields while userID is set", steps: []string{`{"userID":"user_aaa111","firstName":"Alice"}`, everyOtherField}},
	{name: "add identifiers while userID is set", steps: []string{
		`{"userID":"user_aaa111"}`,
		`{"userID":"user_aaa111","externalID":"emp-1","username":"al","creationPolicy":"AdoptOrCreate"}`}},
	{name: "remove other identifiers while userID is kept",
		steps:  []string{`{"userID":"user_aaa111","externalID":"emp-1"}`, `{"userID":"user_aaa111"}`},
		absent: []string{"externalID"}},
	{name: "add userID to an object found by externalID",
		steps: []string{`{"externalID":"emp-1"}`, `{"externalID":"emp-1","userID":"user_2xK9"}`}},
	{name: "add userID to an AdoptOrCreate object", steps: []string{
		`{"emailAddress":"a@example.com","creationPolicy":"AdoptOrCreate"}`,
		`{"emailAddress":"a@example.com","creationPolicy":"AdoptOrCreate","userID":"user_2xK9"}`}},
	{name: "metadata objects are kept as declared", steps: []string{nestedMetadata}},
	{name: "metadata is removed from the spec", steps: []string{`{"username":"al","publicMetadata":{"role":"admin"}}`, `{"username":"al"}`},
		absent: []string{"publicMetadata"}},
	{name: "empty profile clears", steps: []string{`{"username":"al","firstName":"","lastName":""}`}},
}

func TestValidObjectsAreAccepted(t *testing.T) {
	for _, mode := range applyModes {
		t.Run(mode.name, func(t *testing.T) {
			ns := newNamespace(t, "valid-"+mode.name)
			for i, tc := range validCases {
				t.Run(tc.name, func(t *testing.T) {
					name := objectName(i, tc.name)
					for _, spec := range tc.steps {
						mustApply(t, ns, name, spec, mode.args)
					}
					got, ok := getSpec(t, ns, name)
					if !ok {
						t.Fatalf("%s does not exist after kubectl apply", name)
					}
					wantJSON := tc.want
					if wantJSON == "" {
						wantJSON = tc.steps[len(tc.steps)-1]
					}
					var want map[string]any
					if err := json.Unmarshal([]byte(wantJSON), &want); err != nil {
						t.Fatalf("bad test case: %v", err)
					}
					for k, v := range want {
						if !reflect.DeepEqual(got[k], v) {
							t.Errorf("spec.%s = %#v, want %#v (spec %v)", k, got[k], v, got)
						}
					}
					for _, k := range tc.absent {
						if v, ok := got[k]; ok {
							t.Errorf("spec.%s = %#v, want it unset", k, v)
						}
					}
				})
			}
		})
	}
}

// A field the status subresource owns cannot be written through the main resource.
func TestStatusIsASubresource(t *testing.T) {
	ns := newNamespace(t, "status")
	m := manifest("with-status", `{"userID":"user_aaa111"}`) + "status:\n  userID: user_zzz999\n  pendingChanges: [ban]\n"
	mustRun(t, m, "apply", "-n", ns, "-f", "-")
	obj := getObject(t, ns, "clerkusers", "with-status")
	if st, ok := field(obj, "status", "userID"); ok {
		t.Errorf("status.userID = %v was written through the main resource; status must be a subresource", st)
	}

	mustRun(t, "", "patch", "clerkuser", "with-status", "-n", ns, "--subresource=status", "--type=merge",
		"-p", `{"status":{"userID":"user_aaa111","observedGeneration":1}}`)
	obj = getObject(t, ns, "clerkusers", "with-status")
	if st, _ := field(obj, "status", "userID"); st != "user_aaa111" {
		t.Errorf("status.userID = %v after a patch of the status subresource, want user_aaa111", st)
	}
	gen, _ := field(obj, "metadata", "generation")
	if gen != float64(1) {
		t.Errorf("metadata.generation = %v after a status write, want 1", gen)
	}
}
