package export

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// user builds a Clerk user from its JSON, as the client decodes it (numbers as json.Number).
func user(t *testing.T, js string) *clerk.User {
	t.Helper()
	var u clerk.User
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&u); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	return &u
}

func withEmail(id, email string) string {
	return fmt.Sprintf(`"primary_email_address_id":"idn_%s","email_addresses":[{"id":"idn_%s","email_address":%q}]`, id, id, email)
}

func TestSanitize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"Alice_Liddell", "alice-liddell"},
		{"first.last@example.com", "first-last-example-com"},
		{"Zoë Ångström", "zoe-angstrom"},
		{"Straße", "strasse"},
		{"Łukasz Żółć", "lukasz-zolc"},
		{"山田", ""},
		{"山田 taro", "taro"},
		{"__x__", "x"},
		{"a--b..c", "a-b-c"},
		{"-", ""},
		{"", ""},
		{"user_2xK9AbC", "user-2xk9abc"},
		{"emp-1042", "emp-1042"},
		{strings.Repeat("a", 100), strings.Repeat("a", 63)},
		{strings.Repeat("a", 62) + "-b", strings.Repeat("a", 62)}, // no trailing '-' after the cut
		{"ÉCOLE", "ecole"},
		{"a\u2028b\nc", "a-b-c"},
	} {
		got := Sanitize(tc.in)
		if got != tc.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got != "" && !dnsLabelRE.MatchString(got) {
			t.Errorf("Sanitize(%q) = %q is not a DNS-1123 label", tc.in, got)
		}
	}
}

func TestBaseName(t *testing.T) {
	for _, tc := range []struct{ name, js, want string }{
		{"username first", `{"id":"user_1","username":"Alice","external_id":"emp-1",` + withEmail("1", "a@example.com") + `}`, "alice"},
		{"email local part and domain", `{"id":"user_1","external_id":"emp-1",` + withEmail("1", "first.last@Example.COM") + `}`, "first-last-example-com"},
		{"external ID", `{"id":"user_1","external_id":"EMP/1042"}`, "emp-1042"},
		{"user ID", `{"id":"user_2xK9"}`, "user-2xk9"},
		{"username without a usable character", `{"id":"user_1","username":"山田",` + withEmail("1", "yamada@example.jp") + `}`, "yamada-example-jp"},
		{"only unusable identifiers", `{"id":"user_Ab1","username":"山田","external_id":"田中"}`, "user-ab1"},
		{"email that is not primary is ignored", `{"id":"user_1","email_addresses":[{"id":"idn_x","email_address":"x@example.com"}]}`, "user-1"},
		{"long username", `{"id":"user_1","username":"` + strings.Repeat("ab", 40) + `"}`, strings.Repeat("ab", 31) + "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := BaseName(user(t, tc.js)); got != tc.want {
				t.Errorf("BaseName = %q, want %q", got, tc.want)
			}
		})
	}
}

// entries converts users with the given IDs, creation times and usernames.
func named(t *testing.T, users ...[3]string) []Entry {
	t.Helper()
	out := make([]Entry, 0, len(users))
	for _, u := range users {
		e, err := Convert(user(t, fmt.Sprintf(`{"id":%q,"created_at":%s,"username":%q}`, u[0], u[1], u[2])), Options{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func names(entries []Entry) map[string]string {
	m := map[string]string{}
	for _, e := range entries {
		m[e.UserID] = e.Object.Name
	}
	return m
}

func TestAssignNamesCollisions(t *testing.T) {
	entries := named(t,
		[3]string{"user_NEWEST9", "300", "Alice"},
		[3]string{"user_OLDEST1", "100", "alice"},
		[3]string{"user_middle5", "200", "ALICE"},
		[3]string{"user_bob", "150", "bob"},
	)
	AssignNames(entries)
	want := map[string]string{
		"user_OLDEST1": "alice", // the oldest keeps the name
		"user_middle5": "alice-iddle5",
		"user_NEWEST9": "alice-ewest9",
		"user_bob":     "bob",
	}
	if diff := cmp.Diff(want, names(entries)); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if got := []string{entries[0].UserID, entries[1].UserID, entries[2].UserID, entries[3].UserID}; !slices.Equal(got,
		[]string{"user_OLDEST1", "user_bob", "user_middle5", "user_NEWEST9"}) {
		t.Errorf("order = %v, want by created_at", got)
	}
}

func TestAssignNamesCornerCases(t *testing.T) {
	long := strings.Repeat("x", 70)
	entries := named(t,
		// IDs that differ only in case give the same lowercased tail: a longer one, then a counter.
		[3]string{"user_abcdef", "1", "same"},
		[3]string{"user_ABCDEF", "2", "same"},
		[3]string{"user_AbCdEf", "3", "same"},
		// A suffixed name never takes a name another user has as its own.
		[3]string{"user_zz1234", "4", "carol"},
		[3]string{"user_yy1234", "5", "carol"},
		[3]string{"user_other", "6", "carol-zz1234"}, // younger, but its own name is its own
		// Long names are cut to leave room for the suffix.
		[3]string{"user_long1aaaaaa", "7", long},
		[3]string{"user_long2bbbbbb", "8", long},
	)
	AssignNames(entries)
	got := names(entries)
	seen := map[string]string{}
	for id, n := range got {
		if !dnsLabelRE.MatchString(n) {
			t.Errorf("%s: name %q is not a DNS-1123 label of at most 63 characters", id, n)
		}
		if other, dup := seen[n]; dup {
			t.Errorf("%s and %s are both named %q", id, other, n)
		}
		seen[n] = id
	}
	for id, want := range map[string]string{
		"user_abcdef":      "same",
		"user_ABCDEF":      "same-abcdef",
		"user_AbCdEf":      "same-abcdef-1",
		"user_zz1234":      "carol",
		"user_yy1234":      "carol-yy1234",
		"user_other":       "carol-zz1234",
		"user_long1aaaaaa": strings.Repeat("x", 63),
		"user_long2bbbbbb": strings.Repeat("x", 56) + "-bbbbbb",
	} {
		if got[id] != want {
			t.Errorf("%s named %q, want %q", id, got[id], want)
		}
	}
}

func TestAssignNamesStable(t *testing.T) {
	users := make([][3]string, 0, 200)
	for i := range 200 {
		users = append(users, [3]string{fmt.Sprintf("user_%03dX%d", i, i%7), fmt.Sprint(i / 3), fmt.Sprintf("n%d", i%13)})
	}
	ref := named(t, users...)
	AssignNames(ref)
	for range 5 {
		rand.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
		e := named(t, users...)
		AssignNames(e)
		if diff := cmp.Diff(names(ref), names(e)); diff != "" {
			t.Fatalf("names depend on input order:\n%s", diff)
		}
		for i := range e {
			if e[i].UserID != ref[i].UserID {
				t.Fatalf("order depends on input order at %d: %s vs %s", i, e[i].UserID, ref[i].UserID)
			}
		}
	}
}

func raw(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }

func TestConvertDeclares(t *testing.T) {
	u := user(t, `{"id":"user_2xK9","created_at":1700000000000,"external_id":"emp-1042","username":"alice",
		"first_name":"Alice","last_name":"Liddell",`+withEmail("a", "alice@example.com")+`,
		"banned":true,"locked":true,"lockout_expires_in_seconds":null,
		"two_factor_enabled":true,"totp_enabled":true,
		"public_metadata":{"role":"admin","teams":["billing"],"id":1098765432109876543,"d":0.1,"n":{"deep":{"x":[1,{"y":null}]}}},
		"unsafe_metadata":{"theme":"dark"},
		"private_metadata":{"crmID":"C-77"}}`)
	e, err := Convert(u, Options{Namespace: "support", Instance: "acme-prod"})
	if err != nil {
		t.Fatal(err)
	}
	want := clerkv1alpha1.ClerkUserSpec{
		InstanceRef:      &clerkv1alpha1.InstanceReference{Name: "acme-prod"},
		UserID:           "user_2xK9",
		ExternalID:       "emp-1042",
		Username:         "alice",
		FirstName:        new("Alice"),
		LastName:         new("Liddell"),
		PublicMetadata:   raw(`{"d":0.1,"id":1098765432109876543,"n":{"deep":{"x":[1,{"y":null}]}},"role":"admin","teams":["billing"]}`),
		UnsafeMetadata:   raw(`{"theme":"dark"}`),
		Banned:           new(true),
		Locked:           new(true), // an administrator's lock: no expiry
		ManagementPolicy: clerkv1alpha1.ManagementPolicyObserve,
		// Not declared: emailAddress (userID finds the user), mfa, privateMetadata (omitted by
		// default), metadataPolicy, creationPolicy and deletionPolicy (defaults).
	}
	if diff := cmp.Diff(want, e.Object.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if e.Object.Namespace != "support" || e.Object.Kind != "ClerkUser" || e.Object.APIVersion != "clerk.kubeclerk.dev/v1alpha1" {
		t.Errorf("object meta = %+v %+v", e.Object.TypeMeta, e.Object.ObjectMeta)
	}
	if e.Email != "alice@example.com" || e.Secret != nil {
		t.Errorf("email %q, secret %v", e.Email, e.Secret)
	}
	if want := []string{`privateMetadata not exported (keys "crmID"): use --private-metadata=secret (or inline) to declare it`}; !slices.Equal(e.Notes, want) {
		t.Errorf("notes = %q, want %q", e.Notes, want)
	}
}

func TestConvertLeavesOut(t *testing.T) {
	for _, tc := range []struct {
		name  string
		js    string
		opts  Options
		check func(t *testing.T, s clerkv1alpha1.ClerkUserSpec)
		notes []string
	}{{
		name: "unlocked, unbanned user without names: banned false, locked and names unset",
		js:   `{"id":"user_1","first_name":null,"last_name":"","locked":false}`,
		check: func(t *testing.T, s clerkv1alpha1.ClerkUserSpec) {
			if s.Banned == nil || *s.Banned || s.Locked != nil || s.FirstName != nil || s.LastName != nil {
				t.Errorf("banned %v locked %v first %v last %v", s.Banned, s.Locked, s.FirstName, s.LastName)
			}
			if s.PublicMetadata != nil || s.UnsafeMetadata != nil || s.PrivateMetadata != nil || s.MFA != nil {
				t.Errorf("metadata or mfa declared: %+v", s)
			}
		},
	}, {
		name: "temporary lockout is not declared",
		js:   `{"id":"user_1","locked":true,"lockout_expires_in_seconds":1800}`,
		check: func(t *testing.T, s clerkv1alpha1.ClerkUserSpec) {
			if s.Locked != nil {
				t.Errorf("locked = %v, want unset", *s.Locked)
			}
		},
		notes: []string{"locked not declared: a lockout that expires by itself (as Clerk sets after failed sign-ins); declaring it would make it permanent"},
	}, {
		name: "values a ClerkUser cannot hold exactly",
		js: `{"id":"user_1","public_metadata":{"gone":null,"holes":{"a":{"b":null}},"arr":[null,{"a":null}],
			"huge":12345678901234567890,"inf":1e400,"rounded":0.10000000000000000555,"ok":1.0,"e":1e2,"neg0":-0,"i":-9223372036854775808},
			"unsafe_metadata":{"only":null}}`,
		check: func(t *testing.T, s clerkv1alpha1.ClerkUserSpec) {
			if got := string(s.PublicMetadata.Raw); got != `{"arr":[null,{"a":null}],"e":1e2,"i":-9223372036854775808,"neg0":-0,"ok":1.0}` {
				t.Errorf("publicMetadata = %s", got)
			}
			if s.UnsafeMetadata != nil {
				t.Errorf("unsafeMetadata = %s, want unset", s.UnsafeMetadata.Raw)
			}
		},
		notes: []string{
			`publicMetadata."gone" not declared: its value is null, which a ClerkUser declares to delete the key`,
			`publicMetadata."holes" not declared: it holds a null inside an object, which a merge drops: it would never be in sync`,
			`publicMetadata."huge" not declared: it holds a number Kubernetes cannot store exactly (an integer beyond 64 bits, or a decimal a float64 rounds)`,
			`publicMetadata."inf" not declared: it holds a number Kubernetes cannot store exactly (an integer beyond 64 bits, or a decimal a float64 rounds)`,
			`publicMetadata."rounded" not declared: it holds a number Kubernetes cannot store exactly (an integer beyond 64 bits, or a decimal a float64 rounds)`,
			`unsafeMetadata."only" not declared: its value is null, which a ClerkUser declares to delete the key`,
		},
	}, {
		name: "private metadata inline",
		js:   `{"id":"user_1","private_metadata":{"crm":"C-1","big":12345678901234567890,"n":null}}`,
		opts: Options{PrivateMetadata: PrivateMetadataInline},
		check: func(t *testing.T, s clerkv1alpha1.ClerkUserSpec) {
			if s.PrivateMetadata == nil || string(s.PrivateMetadata.Raw) != `{"crm":"C-1"}` || s.PrivateMetadataFrom != nil {
				t.Errorf("privateMetadata = %v, from %v", s.PrivateMetadata, s.PrivateMetadataFrom)
			}
		},
		notes: []string{
			`privateMetadata."big" not declared: it holds a number Kubernetes cannot store exactly (an integer beyond 64 bits, or a decimal a float64 rounds)`,
			`privateMetadata."n" not declared: its value is null, which a ClerkUser declares to delete the key`,
		},
	}, {
		name: "protected keys and external ID prefixes of the instance's policy",
		js:   `{"id":"user_1","external_id":"ext-9","public_metadata":{"role":"admin","team":"a"},"unsafe_metadata":{"role":"x"}}`,
		opts: Options{Policy: &clerkv1alpha1.ClerkInstancePolicy{ExternalIDPrefixes: []string{"emp-"},
			ProtectedMetadataKeys: &clerkv1alpha1.ProtectedMetadataKeys{Public: []string{"role"}}}},
		check: func(t *testing.T, s clerkv1alpha1.ClerkUserSpec) {
			if s.ExternalID != "" || string(s.PublicMetadata.Raw) != `{"team":"a"}` || string(s.UnsafeMetadata.Raw) != `{"role":"x"}` {
				t.Errorf("externalID %q public %s unsafe %s", s.ExternalID, s.PublicMetadata.Raw, s.UnsafeMetadata.Raw)
			}
		},
		notes: []string{
			"externalID not declared: it does not start with a prefix the ClerkInstance's policy.externalIDPrefixes allows",
			`publicMetadata."role" not declared: protected by the ClerkInstance's policy.protectedMetadataKeys`,
		},
	}, {
		name: "values longer than a ClerkUser accepts",
		js: fmt.Sprintf(`{"id":"user_1","external_id":%q,"username":%q,"first_name":%q,"last_name":%q}`,
			strings.Repeat("e", 257), strings.Repeat("u", 65), strings.Repeat("ä", 257), strings.Repeat("ä", 256)),
		check: func(t *testing.T, s clerkv1alpha1.ClerkUserSpec) {
			if s.ExternalID != "" || s.Username != "" || s.FirstName != nil || s.LastName == nil {
				t.Errorf("spec = %+v", s)
			}
		},
		notes: []string{
			"externalID not declared: longer than the 256 characters a ClerkUser accepts",
			"username not declared: longer than the 64 characters a ClerkUser accepts",
			"firstName not declared: longer than the 256 characters a ClerkUser accepts",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Convert(user(t, tc.js), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, e.Object.Spec)
			if diff := cmp.Diff(tc.notes, e.Notes); diff != "" {
				t.Errorf("notes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConvertPrivateMetadataSecret(t *testing.T) {
	entries := make([]Entry, 0, 2)
	for _, js := range []string{
		`{"id":"user_1","created_at":1,"username":"alice","private_metadata":{"crmID":"C-77","score":12345678901234567890123,"n":null}}`,
		`{"id":"user_2","created_at":2,"username":"bob","private_metadata":{}}`,
	} {
		e, err := Convert(user(t, js), Options{Namespace: "support", PrivateMetadata: PrivateMetadataSecret})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	AssignNames(entries)
	alice, bob := entries[0], entries[1]
	s := alice.Secret
	if s == nil {
		t.Fatal("no Secret")
	}
	if s.Name != "alice-private-metadata" || s.Namespace != "support" || s.Labels[clerkv1alpha1.PrivateMetadataSecretLabel] != "true" {
		t.Errorf("Secret meta = %+v", s.ObjectMeta)
	}
	// A Secret keeps numbers exactly: only nulls are left out.
	if got := s.StringData[PrivateMetadataKey]; got != `{"crmID":"C-77","score":12345678901234567890123}` {
		t.Errorf("Secret value = %s", got)
	}
	from := alice.Object.Spec.PrivateMetadataFrom
	if from == nil || from.SecretKeyRef.Name != "alice-private-metadata" || from.SecretKeyRef.Key != PrivateMetadataKey {
		t.Errorf("privateMetadataFrom = %+v", from)
	}
	if alice.Object.Spec.PrivateMetadata != nil {
		t.Error("privateMetadata declared as well")
	}
	if bob.Secret != nil || bob.Object.Spec.PrivateMetadataFrom != nil {
		t.Error("a Secret for empty private metadata")
	}
}

func TestConvertRejectsOddIDs(t *testing.T) {
	for _, id := range []string{"", "usr_1", "user_", "user_a-b", "user_" + strings.Repeat("a", 60)} {
		if _, err := Convert(&clerk.User{ID: id}, Options{}); err == nil {
			t.Errorf("Convert(%q) succeeded", id)
		}
	}
}

func TestNumberExact(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-0": true, "1098765432109876543": true, "9223372036854775807": true, "-9223372036854775808": true,
		"9223372036854775808": false, "12345678901234567890123": false, "18446744073709551616": false,
		"0.1": true, "-2.5e-7": true, "1e2": true, "100.0": true, "1.5e300": true, "1E-5": true,
		"1e400": false, "-1e400": false, "0.10000000000000000555": false, "3.141592653589793238": false,
		"1e-400": false, // underflows to 0
	} {
		if got := numberExact(s); got != want {
			t.Errorf("numberExact(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestEmailDomains(t *testing.T) {
	got := NormalizeDomains([]string{" Example.COM ", "@acme.io,example.com", "", "sub.example.com"})
	if want := []string{"example.com", "acme.io", "sub.example.com"}; !slices.Equal(got, want) {
		t.Errorf("NormalizeDomains = %q, want %q", got, want)
	}
	domains := []string{"example.com"}
	for js, want := range map[string]bool{
		`{"id":"user_1",` + withEmail("1", "a@example.com") + `}`:      true,
		`{"id":"user_1",` + withEmail("1", "A@EXAMPLE.Com") + `}`:      true,
		`{"id":"user_1",` + withEmail("1", "a@sub.example.com") + `}`:  false, // exact, no subdomains
		`{"id":"user_1",` + withEmail("1", "a@example.com.evil") + `}`: false,
		`{"id":"user_1",` + withEmail("1", "a@notexample.com") + `}`:   false,
		`{"id":"user_1"}`: false, // no primary email address
		`{"id":"user_1","email_addresses":[{"id":"idn_2","email_address":"a@example.com"}],"primary_email_address_id":"idn_3"}`: false,
	} {
		if got := MatchesDomains(user(t, js), domains); got != want {
			t.Errorf("MatchesDomains(%s) = %v, want %v", js, got, want)
		}
	}
	if !MatchesDomains(user(t, `{"id":"user_1"}`), nil) {
		t.Error("no filter must match every user")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{PrivateMetadata: "plain"},
		{Namespace: "Support"},
		{Namespace: strings.Repeat("a", 64)},
		{Instance: "Acme"},
		{EmailDomains: []string{"a@example.com"}},
		{EmailDomains: []string{""}},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	for _, o := range []Options{{}, {Namespace: "support", Instance: "acme.prod", PrivateMetadata: PrivateMetadataSecret, EmailDomains: []string{"example.com"}}} {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
