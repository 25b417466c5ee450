package instance

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

// want is one expected violation: its rule, the ClerkUser field, and texts of its message.
type want struct {
	rule, field string
	msg         []string
}

// checkViolations compares err with the expected violations, in order, and checks what every
// message must say: the instance, the rule and the field.
func checkViolations(t *testing.T, err error, instance string, wants []want) {
	t.Helper()
	if len(wants) == 0 {
		if err != nil {
			t.Fatalf("want no violation, got %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want %d violations, got nil", len(wants))
	}
	var vs Violations
	if !errors.As(err, &vs) {
		t.Fatalf("error %T %v is not Violations", err, err)
	}
	type rf struct{ Rule, Field string }
	var got, exp []rf
	for _, v := range vs {
		got = append(got, rf{v.Rule, v.Field})
	}
	for _, w := range wants {
		exp = append(exp, rf{w.rule, w.field})
	}
	if diff := cmp.Diff(exp, got); diff != "" {
		t.Fatalf("violations (-want +got):\n%s\nerror: %v", diff, err)
	}
	prefix := "ClerkInstance " + instance + " "
	if instance == "" {
		prefix = "the ClerkInstance "
	}
	for i, v := range vs {
		msg := v.Error()
		if !strings.HasPrefix(msg, prefix) {
			t.Errorf("message %q does not start with %q", msg, prefix)
		}
		for _, s := range append([]string{"(" + v.Rule, v.Field}, wants[i].msg...) {
			if !strings.Contains(msg, s) {
				t.Errorf("message %q does not contain %q", msg, s)
			}
		}
		if !strings.Contains(msg, "; ") {
			t.Errorf("message %q does not say what to do", msg)
		}
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("joined error %q does not contain %q", err, msg)
		}
		if _, ok := errors.AsType[*NotAllowedError](err); !ok {
			t.Errorf("errors.As finds no *NotAllowedError in %v", err)
		}
	}
}

func TestCheckSpec(t *testing.T) {
	const inst = "acme-prod"
	view := func(mod func(*ClerkUserView)) ClerkUserView {
		v := ClerkUserView{Instance: inst, ExternalID: "emp-1042"}
		if mod != nil {
			mod(&v)
		}
		return v
	}
	email := func(addr string) ClerkUserView { return view(func(v *ClerkUserView) { v.EmailAddress = addr }) }
	// The helpers set the list even when it is empty (a set, empty list); "unset" cases use a
	// policy without the field.
	domains := func(d ...string) *v1alpha1.ClerkInstancePolicy {
		return &v1alpha1.ClerkInstancePolicy{EmailDomains: append([]string{}, d...)}
	}
	prefixes := func(p ...string) *v1alpha1.ClerkInstancePolicy {
		return &v1alpha1.ClerkInstancePolicy{ExternalIDPrefixes: append([]string{}, p...)}
	}
	deletion := func(p ...v1alpha1.DeletionPolicy) *v1alpha1.ClerkInstancePolicy {
		return &v1alpha1.ClerkInstancePolicy{AllowedDeletionPolicies: append([]v1alpha1.DeletionPolicy{}, p...)}
	}
	unset := &v1alpha1.ClerkInstancePolicy{AllowUserID: new(true)}
	protected := func(k v1alpha1.ProtectedMetadataKeys) *v1alpha1.ClerkInstancePolicy {
		return &v1alpha1.ClerkInstancePolicy{ProtectedMetadataKeys: &k}
	}
	metadata := func(policy v1alpha1.MetadataPolicy, keys MetadataKeys) ClerkUserView {
		return view(func(v *ClerkUserView) { v.MetadataPolicy, v.Metadata = policy, keys })
	}
	everything := view(func(v *ClerkUserView) {
		v.UserID, v.EmailAddress, v.Username = "user_2xK9", "alice@example.org", "alice"
		v.CreationPolicy, v.DeletionPolicy, v.MetadataPolicy = v1alpha1.CreationPolicyAdoptOrCreate, v1alpha1.DeletionPolicyDelete, v1alpha1.MetadataPolicyReplace
		v.Metadata = MetadataKeys{Public: []string{"role", "teams"}, Private: []string{"crmID"}, Unsafe: []string{}}
	})

	userID := want{"policy.allowUserID", "spec.userID", []string{"policy.allowUserID: false", "find the user by spec.externalID, spec.emailAddress or spec.username"}}
	create := want{"policy.allowCreate", "spec.creationPolicy", []string{"AdoptOrCreate", "policy.allowCreate: false", "creationPolicy Adopt"}}
	emailAt := func(domain string) want {
		return want{"policy.emailDomains", "spec.emailAddress", []string{"at " + domain + " (policy.emailDomains: [", "subdomains must be listed"}}
	}
	notAddress := want{"policy.emailDomains", "spec.emailAddress", []string{"not of the form name@domain"}}
	prefix := func(id string) want {
		return want{"policy.externalIDPrefixes", "spec.externalID", []string{`spec.externalID "` + id + `"`, "starts with one of those prefixes"}}
	}

	for _, tc := range []struct {
		name   string
		policy *v1alpha1.ClerkInstancePolicy
		view   ClerkUserView
		want   []want
	}{
		{name: "nil policy allows everything", policy: nil, view: everything},
		{name: "empty policy allows everything", policy: &v1alpha1.ClerkInstancePolicy{}, view: everything},
		{name: "empty protected keys allow everything", policy: protected(v1alpha1.ProtectedMetadataKeys{Public: []string{}}), view: everything},

		// allowUserID
		{name: "allowUserID false refuses userID", policy: &v1alpha1.ClerkInstancePolicy{AllowUserID: new(false)},
			view: view(func(v *ClerkUserView) { v.UserID = "user_2xK9" }), want: []want{userID}},
		{name: "allowUserID false without userID", policy: &v1alpha1.ClerkInstancePolicy{AllowUserID: new(false)}, view: view(nil)},
		{name: "allowUserID true", policy: &v1alpha1.ClerkInstancePolicy{AllowUserID: new(true)},
			view: view(func(v *ClerkUserView) { v.UserID = "user_2xK9" })},
		{name: "allowUserID unset", policy: &v1alpha1.ClerkInstancePolicy{AllowCreate: new(false)},
			view: view(func(v *ClerkUserView) { v.UserID = "user_2xK9" })},

		// allowCreate
		{name: "allowCreate false refuses AdoptOrCreate", policy: &v1alpha1.ClerkInstancePolicy{AllowCreate: new(false)},
			view: view(func(v *ClerkUserView) { v.CreationPolicy = v1alpha1.CreationPolicyAdoptOrCreate }), want: []want{create}},
		{name: "allowCreate false allows Adopt", policy: &v1alpha1.ClerkInstancePolicy{AllowCreate: new(false)},
			view: view(func(v *ClerkUserView) { v.CreationPolicy = v1alpha1.CreationPolicyAdopt })},
		{name: "allowCreate false allows the default", policy: &v1alpha1.ClerkInstancePolicy{AllowCreate: new(false)}, view: view(nil)},
		{name: "allowCreate true", policy: &v1alpha1.ClerkInstancePolicy{AllowCreate: new(true)},
			view: view(func(v *ClerkUserView) { v.CreationPolicy = v1alpha1.CreationPolicyAdoptOrCreate })},

		// allowedDeletionPolicies
		{name: "deletion policy not listed", policy: deletion(v1alpha1.DeletionPolicyOrphan, v1alpha1.DeletionPolicyBan),
			view: view(func(v *ClerkUserView) { v.DeletionPolicy = v1alpha1.DeletionPolicyDelete }),
			want: []want{{"policy.allowedDeletionPolicies", "spec.deletionPolicy", []string{"spec.deletionPolicy Delete (policy.allowedDeletionPolicies: [Orphan, Ban])", "set spec.deletionPolicy to one of them"}}}},
		{name: "deletion policy listed", policy: deletion(v1alpha1.DeletionPolicyOrphan, v1alpha1.DeletionPolicyBan),
			view: view(func(v *ClerkUserView) { v.DeletionPolicy = v1alpha1.DeletionPolicyBan })},
		{name: "default deletion policy counts as Orphan (listed)", policy: deletion(v1alpha1.DeletionPolicyOrphan), view: view(nil)},
		{name: "default deletion policy counts as Orphan (not listed)", policy: deletion(v1alpha1.DeletionPolicyBan, v1alpha1.DeletionPolicyDelete), view: view(nil),
			want: []want{{"policy.allowedDeletionPolicies", "spec.deletionPolicy", []string{"spec.deletionPolicy Orphan (the default)"}}}},
		{name: "empty deletion policy list allows none", policy: deletion(),
			view: view(func(v *ClerkUserView) { v.DeletionPolicy = v1alpha1.DeletionPolicyOrphan }),
			want: []want{{"policy.allowedDeletionPolicies", "spec.deletionPolicy", []string{"is empty", "must list at least one"}}}},
		{name: "unset deletion policy list allows all", policy: unset,
			view: view(func(v *ClerkUserView) { v.DeletionPolicy = v1alpha1.DeletionPolicyDelete })},

		// emailDomains
		{name: "email in the domain", policy: domains("acme.com"), view: email("alice@acme.com")},
		{name: "email in the second domain", policy: domains("acme.com", "acme.io"), view: email("alice@acme.io")},
		{name: "uppercase email domain", policy: domains("acme.com"), view: email("ALICE@ACME.COM")},
		{name: "mixed case email domain", policy: domains("acme.com"), view: email("alice@Acme.Com")},
		{name: "uppercase listed domain", policy: domains("ACME.com"), view: email("alice@acme.com")},
		{name: "listed domain with a trailing dot", policy: domains("acme.com."), view: email("alice@acme.com")},
		{name: "email with a trailing dot", policy: domains("acme.com"), view: email("alice@acme.com."), want: []want{emailAt("acme.com.")}},
		{name: "subdomain does not match", policy: domains("acme.com"), view: email("user@sub.acme.com"), want: []want{emailAt("sub.acme.com")}},
		{name: "parent domain does not match", policy: domains("sub.acme.com"), view: email("user@acme.com"), want: []want{emailAt("acme.com")}},
		{name: "suffix trick", policy: domains("acme.com"), view: email("user@evil-acme.com"), want: []want{emailAt("evil-acme.com")}},
		{name: "suffix trick without dash", policy: domains("acme.com"), view: email("user@notacme.com"), want: []want{emailAt("notacme.com")}},
		{name: "prefix trick", policy: domains("acme.com"), view: email("user@acme.com.evil.org"), want: []want{emailAt("acme.com.evil.org")}},
		{name: "other TLD", policy: domains("acme.com"), view: email("user@acme.co"), want: []want{emailAt("acme.co")}},
		{name: "domain in the local part", policy: domains("acme.com"), view: email("acme.com@evil.org"), want: []want{emailAt("evil.org")}},
		{name: "Kelvin sign is not k", policy: domains("kubeclerk.dev"), view: email("alice@\u212Aubeclerk.dev"), want: []want{emailAt("\u212Aubeclerk.dev")}},
		{name: "fullwidth letter is not ASCII", policy: domains("acme.com"), view: email("alice@\uFF41cme.com"), want: []want{emailAt("\uFF41cme.com")}},
		{name: "two at signs", policy: domains("acme.com"), view: email("alice@evil.org@acme.com"), want: []want{notAddress}},
		{name: "no local part", policy: domains("acme.com"), view: email("@acme.com"), want: []want{notAddress}},
		{name: "no at sign", policy: domains("acme.com"), view: email("acme.com"), want: []want{notAddress}},
		{name: "empty domain list allows no address", policy: domains(), view: email("alice@acme.com"), want: []want{emailAt("acme.com")}},
		{name: "unset domain list allows every address", policy: unset, view: email("alice@anything.example")},
		{name: "no emailAddress with Adopt is checked once found", policy: domains("acme.com"), view: view(nil)},
		{name: "AdoptOrCreate needs an emailAddress", policy: domains("acme.com"),
			view: view(func(v *ClerkUserView) { v.CreationPolicy = v1alpha1.CreationPolicyAdoptOrCreate }),
			want: []want{{"policy.emailDomains", "spec.emailAddress", []string{"AdoptOrCreate without spec.emailAddress", "set spec.emailAddress"}}}},
		{name: "AdoptOrCreate with an allowed emailAddress", policy: domains("acme.com"),
			view: view(func(v *ClerkUserView) {
				v.CreationPolicy, v.EmailAddress = v1alpha1.CreationPolicyAdoptOrCreate, "alice@acme.com"
			})},

		// externalIDPrefixes
		{name: "externalID with the prefix", policy: prefixes("emp-"), view: view(nil)},
		{name: "externalID with the second prefix", policy: prefixes("emp-", "svc-"), view: view(func(v *ClerkUserView) { v.ExternalID = "svc-9" })},
		{name: "externalID equal to the prefix", policy: prefixes("emp-"), view: view(func(v *ClerkUserView) { v.ExternalID = "emp-" })},
		{name: "externalID prefix is case-sensitive", policy: prefixes("emp-"), view: view(func(v *ClerkUserView) { v.ExternalID = "EMP-1" }), want: []want{prefix("EMP-1")}},
		{name: "prefix in the middle", policy: prefixes("emp-"), view: view(func(v *ClerkUserView) { v.ExternalID = "xemp-1" }), want: []want{prefix("xemp-1")}},
		{name: "no externalID", policy: prefixes("emp-"), view: view(func(v *ClerkUserView) { v.ExternalID, v.Username = "", "alice" })},
		{name: "empty prefix list allows no externalID", policy: prefixes(), view: view(nil), want: []want{prefix("emp-1042")}},
		{name: "empty prefix is ignored", policy: prefixes(""), view: view(nil), want: []want{prefix("emp-1042")}},
		{name: "unset prefix list", policy: unset, view: view(func(v *ClerkUserView) { v.ExternalID = "anything" })},

		// protectedMetadataKeys
		{name: "protected public key declared", policy: protected(v1alpha1.ProtectedMetadataKeys{Public: []string{"role", "level"}}),
			view: metadata("", MetadataKeys{Public: []string{"role", "teams"}}),
			want: []want{{"policy.protectedMetadataKeys.public", "spec.publicMetadata", []string{
				"spec.publicMetadata to declare role (policy.protectedMetadataKeys.public: [role, level])", "remove this key from spec.publicMetadata"}}}},
		{name: "several protected keys declared", policy: protected(v1alpha1.ProtectedMetadataKeys{Public: []string{"role", "level"}}),
			view: metadata(v1alpha1.MetadataPolicyMerge, MetadataKeys{Public: []string{"level", "role"}}),
			want: []want{{"policy.protectedMetadataKeys.public", "spec.publicMetadata", []string{"declare level, role", "remove these keys"}}}},
		{name: "unprotected keys", policy: protected(v1alpha1.ProtectedMetadataKeys{Public: []string{"role"}}),
			view: metadata("", MetadataKeys{Public: []string{"teams"}, Private: []string{"role"}, Unsafe: []string{"role"}})},
		{name: "protected keys are case-sensitive", policy: protected(v1alpha1.ProtectedMetadataKeys{Public: []string{"role"}}),
			view: metadata("", MetadataKeys{Public: []string{"Role"}})},
		{name: "protected private and unsafe keys", policy: protected(v1alpha1.ProtectedMetadataKeys{Private: []string{"crmID"}, Unsafe: []string{"plan"}}),
			view: metadata("", MetadataKeys{Public: []string{"crmID", "plan"}, Private: []string{"crmID"}, Unsafe: []string{"plan"}}),
			want: []want{
				{"policy.protectedMetadataKeys.private", "spec.privateMetadata", []string{"declare crmID"}},
				{"policy.protectedMetadataKeys.unsafe", "spec.unsafeMetadata", []string{"declare plan"}},
			}},
		{name: "Replace of an object with protected keys", policy: protected(v1alpha1.ProtectedMetadataKeys{Public: []string{"role"}}),
			view: metadata(v1alpha1.MetadataPolicyReplace, MetadataKeys{Public: []string{"teams"}}),
			want: []want{{"policy.protectedMetadataKeys.public", "spec.metadataPolicy", []string{"Replace with spec.publicMetadata", "use metadataPolicy Merge"}}}},
		{name: "Replace with an empty object", policy: protected(v1alpha1.ProtectedMetadataKeys{Public: []string{"role"}}),
			view: metadata(v1alpha1.MetadataPolicyReplace, MetadataKeys{Public: []string{}}),
			want: []want{{"policy.protectedMetadataKeys.public", "spec.metadataPolicy", []string{"Replace with spec.publicMetadata"}}}},
		{name: "Replace of another object", policy: protected(v1alpha1.ProtectedMetadataKeys{Public: []string{"role"}}),
			view: metadata(v1alpha1.MetadataPolicyReplace, MetadataKeys{Private: []string{"role"}, Unsafe: []string{}})},
		{name: "Merge with an empty object", policy: protected(v1alpha1.ProtectedMetadataKeys{Public: []string{"role"}}),
			view: metadata(v1alpha1.MetadataPolicyMerge, MetadataKeys{Public: []string{}})},
		{name: "Replace declaring a protected key", policy: protected(v1alpha1.ProtectedMetadataKeys{Public: []string{"role"}}),
			view: metadata(v1alpha1.MetadataPolicyReplace, MetadataKeys{Public: []string{"role"}}),
			want: []want{
				{"policy.protectedMetadataKeys.public", "spec.publicMetadata", []string{"declare role"}},
				{"policy.protectedMetadataKeys.public", "spec.metadataPolicy", []string{"Replace"}},
			}},

		// Every rule at once: all violations, in the order of the policy's fields.
		{name: "every rule broken", view: everything, policy: &v1alpha1.ClerkInstancePolicy{
			AllowUserID: new(false), AllowCreate: new(false),
			AllowedDeletionPolicies: []v1alpha1.DeletionPolicy{v1alpha1.DeletionPolicyOrphan},
			EmailDomains:            []string{"acme.com"}, ExternalIDPrefixes: []string{"svc-"},
			ProtectedMetadataKeys: &v1alpha1.ProtectedMetadataKeys{Public: []string{"role"}, Unsafe: []string{"x"}},
		}, want: []want{
			userID, create,
			{"policy.allowedDeletionPolicies", "spec.deletionPolicy", []string{"Delete"}},
			emailAt("example.org"), prefix("emp-1042"),
			{"policy.protectedMetadataKeys.public", "spec.publicMetadata", []string{"declare role"}},
			{"policy.protectedMetadataKeys.public", "spec.metadataPolicy", nil},
			{"policy.protectedMetadataKeys.unsafe", "spec.metadataPolicy", []string{"Replace with spec.unsafeMetadata"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkViolations(t, CheckSpec(tc.policy, tc.view), inst, tc.want)
		})
	}
}

func TestCheckSpecMessages(t *testing.T) {
	policy := &v1alpha1.ClerkInstancePolicy{AllowUserID: new(false), AllowCreate: new(false)}
	one := CheckSpec(policy, ClerkUserView{Instance: "acme-prod", UserID: "user_2xK9"})
	const wantOne = "ClerkInstance acme-prod does not allow spec.userID (policy.allowUserID: false); " +
		"remove it and find the user by spec.externalID, spec.emailAddress or spec.username instead"
	if one == nil || one.Error() != wantOne {
		t.Errorf("one violation:\n%v\nwant\n%s", one, wantOne)
	}

	two := CheckSpec(policy, ClerkUserView{Instance: "acme-prod", UserID: "user_2xK9", Username: "al", CreationPolicy: v1alpha1.CreationPolicyAdoptOrCreate})
	const wantTwo = "2 policy violations: (1) " + wantOne + "; (2) ClerkInstance acme-prod does not allow spec.creationPolicy AdoptOrCreate " +
		"(policy.allowCreate: false); use creationPolicy Adopt to manage a user that already exists in Clerk"
	if two == nil || two.Error() != wantTwo {
		t.Errorf("two violations:\n%v\nwant\n%s", two, wantTwo)
	}

	// Without the instance's name the message still reads well.
	anon := CheckSpec(policy, ClerkUserView{UserID: "user_2xK9"})
	checkViolations(t, anon, "", []want{{"policy.allowUserID", "spec.userID", nil}})

	// A nil error is a nil interface, not a typed nil.
	if err := CheckSpec(policy, ClerkUserView{ExternalID: "emp-1"}); err != nil {
		t.Errorf("CheckSpec = %#v, want nil", err)
	}
}

func TestCheckBoundUser(t *testing.T) {
	domains := func(d ...string) *v1alpha1.ClerkInstancePolicy {
		return &v1alpha1.ClerkInstancePolicy{EmailDomains: append([]string{}, d...)}
	}
	const rule = "policy.emailDomains"
	for _, tc := range []struct {
		name    string
		policy  *v1alpha1.ClerkInstancePolicy
		primary string
		wantErr string
	}{
		{name: "nil policy", policy: nil, primary: ""},
		{name: "unset domains, no primary email", policy: &v1alpha1.ClerkInstancePolicy{AllowCreate: new(false)}, primary: ""},
		{name: "unset domains, any primary email", policy: &v1alpha1.ClerkInstancePolicy{AllowUserID: new(false)}, primary: "alice@example.org"},
		{name: "primary email in the domain", policy: domains("acme.com"), primary: "alice@acme.com"},
		{name: "primary email in the second domain", policy: domains("acme.io", "acme.com"), primary: "alice@acme.com"},
		{name: "uppercase primary email", policy: domains("acme.com"), primary: "Alice@ACME.COM"},
		{name: "no primary email", policy: domains("acme.com"), primary: "", wantErr: "without a primary email address (policy.emailDomains: [acme.com])"},
		{name: "other domain", policy: domains("acme.com"), primary: "alice@example.org", wantErr: "primary email address is at example.org (policy.emailDomains: [acme.com])"},
		{name: "subdomain", policy: domains("acme.com"), primary: "user@sub.acme.com", wantErr: "is at sub.acme.com"},
		{name: "suffix trick", policy: domains("acme.com"), primary: "user@evil-acme.com", wantErr: "is at evil-acme.com"},
		{name: "prefix trick", policy: domains("acme.com"), primary: "user@acme.com.evil.org", wantErr: "is at acme.com.evil.org"},
		{name: "trailing dot", policy: domains("acme.com"), primary: "user@acme.com.", wantErr: "is at acme.com."},
		{name: "Kelvin sign", policy: domains("kubeclerk.dev"), primary: "a@\u212Aubeclerk.dev", wantErr: "is at \u212Aubeclerk.dev"},
		{name: "not an address", policy: domains("acme.com"), primary: "acme.com", wantErr: "not of the form name@domain"},
		{name: "two at signs", policy: domains("acme.com"), primary: "a@evil.org@acme.com", wantErr: "not of the form name@domain"},
		{name: "empty domain list allows no user", policy: domains(), primary: "alice@acme.com", wantErr: "is at acme.com (policy.emailDomains: [])"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckBoundUser(tc.policy, tc.primary)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckBoundUser = %v, want nil", err)
				}
				return
			}
			na, ok := errors.AsType[*NotAllowedError](err)
			if !ok {
				t.Fatalf("CheckBoundUser = %v, want a *NotAllowedError", err)
			}
			if na.Rule != rule {
				t.Errorf("rule %q, want %q", na.Rule, rule)
			}
			for _, w := range []string{"the ClerkInstance does not allow a Clerk user", tc.wantErr, "; bind a user"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			na.Instance = "acme-prod"
			if !strings.HasPrefix(err.Error(), "ClerkInstance acme-prod does not allow") {
				t.Errorf("with Instance set: %q", err)
			}
		})
	}
}

func TestViewFromSpec(t *testing.T) {
	js := func(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }
	spec := &v1alpha1.ClerkUserSpec{
		UserID: "user_2xK9", ExternalID: "emp-1", EmailAddress: "a@acme.com", Username: "al",
		PublicMetadata:  js(`{"teams":["billing"],"role":{"nested":"x"}}`),
		PrivateMetadata: js(`{}`),
		CreationPolicy:  v1alpha1.CreationPolicyAdoptOrCreate, DeletionPolicy: v1alpha1.DeletionPolicyBan,
		MetadataPolicy: v1alpha1.MetadataPolicyReplace,
	}
	got, err := ViewFromSpec("acme-prod", spec)
	if err != nil {
		t.Fatal(err)
	}
	want := ClerkUserView{
		Instance: "acme-prod", UserID: "user_2xK9", ExternalID: "emp-1", EmailAddress: "a@acme.com", Username: "al",
		CreationPolicy: v1alpha1.CreationPolicyAdoptOrCreate, DeletionPolicy: v1alpha1.DeletionPolicyBan,
		MetadataPolicy: v1alpha1.MetadataPolicyReplace,
		Metadata:       MetadataKeys{Public: []string{"role", "teams"}, Private: []string{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("view (-want +got):\n%s", diff)
	}
	// Declared {} is not the same as undeclared.
	if got.Metadata.Private == nil || got.Metadata.Unsafe != nil {
		t.Errorf("private %#v (want empty, non-nil), unsafe %#v (want nil)", got.Metadata.Private, got.Metadata.Unsafe)
	}

	// A JSON null counts as not declared.
	got, err = ViewFromSpec("x", &v1alpha1.ClerkUserSpec{Username: "al", UnsafeMetadata: js(`null`)})
	if err != nil || got.Metadata.Unsafe != nil {
		t.Errorf("null metadata: %#v, %v; want not declared", got.Metadata.Unsafe, err)
	}

	// Not an object: an error naming the field, without the value.
	for _, raw := range []string{`["s3cretValue"]`, `"s3cretValue"`, `{"a":`} {
		_, err = ViewFromSpec("x", &v1alpha1.ClerkUserSpec{Username: "al", PrivateMetadata: js(raw)})
		if err == nil || !strings.Contains(err.Error(), "spec.privateMetadata is not a JSON object") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ViewFromSpec with privateMetadata %s: %v", raw, err)
		}
	}
}
