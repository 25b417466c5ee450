package instance

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

// NotAllowedError is one rule of a ClerkInstance that a ClerkUser breaks. Its message names the
// instance, the rule and the ClerkUser field and says what to do, e.g.
//
//	ClerkInstance acme-prod does not allow spec.userID (policy.allowUserID: false); find the user by spec.externalID, spec.emailAddress or spec.username instead
//
// It never contains a secret or a metadata value.
type NotAllowedError struct {
	// Instance is the ClerkInstance's name; empty reads "the ClerkInstance". Callers of
	// CheckBoundUser, which does not know the name, may set it.
	Instance string
	// Rule is the ClerkInstance field that refuses, e.g. "policy.allowUserID".
	Rule string
	// Field is the ClerkUser field that is refused, e.g. "spec.userID".
	Field string
	// Detail is the message after the instance's name: what is refused, by which rule, and what to do.
	Detail string
}

// Error returns "ClerkInstance <name> <Detail>".
func (e *NotAllowedError) Error() string {
	if e.Instance == "" {
		return "the ClerkInstance " + e.Detail
	}
	return "ClerkInstance " + e.Instance + " " + e.Detail
}

// Violations are all the rules a ClerkUser breaks, in a fixed order (the order of the fields of
// ClerkInstancePolicy). errors.As finds each *NotAllowedError in it.
type Violations []*NotAllowedError

// Error returns the single message, or "N policy violations: (1) …; (2) …".
func (v Violations) Error() string {
	if len(v) == 1 {
		return v[0].Error()
	}
	parts := make([]string, len(v))
	for i, e := range v {
		parts[i] = fmt.Sprintf("(%d) %s", i+1, e.Error())
	}
	return fmt.Sprintf("%d policy violations: %s", len(v), strings.Join(parts, "; "))
}

// Unwrap returns each violation, for errors.As and errors.Is.
func (v Violations) Unwrap() []error {
	out := make([]error, len(v))
	for i, e := range v {
		out[i] = e
	}
	return out
}

// MetadataKeys lists the top-level keys a ClerkUser declares in each metadata object. A nil list
// means the object is not declared; an empty, non-nil list means it is declared as {} (which
// with metadataPolicy Replace clears Clerk's object). Private keys include those coming from
// privateMetadataFrom.
type MetadataKeys struct {
	Public  []string
	Private []string
	Unsafe  []string
}

// ClerkUserView is what the policy checks need from a ClerkUser, so that this package does not
// depend on how ClerkUserSpec spells it. [ViewFromSpec] fills it from a ClerkUserSpec.
type ClerkUserView struct {
	// Instance is the name of the ClerkInstance the ClerkUser refers to (spec.instanceRef.name);
	// it is used in messages only.
	Instance string

	UserID       string
	ExternalID   string
	EmailAddress string
	Username     string

	// CreationPolicy "" counts as Adopt.
	CreationPolicy v1alpha1.CreationPolicy
	// DeletionPolicy "" counts as Orphan.
	DeletionPolicy v1alpha1.DeletionPolicy
	// MetadataPolicy "" counts as Merge.
	MetadataPolicy v1alpha1.MetadataPolicy

	// Metadata are the declared top-level metadata keys per object.
	Metadata MetadataKeys

	// PrivateMetadataSecret names the Secret of spec.privateMetadataFrom, whose keys are in
	// Metadata.Private too; messages then point at it as well.
	PrivateMetadataSecret string
}

// ViewFromSpec builds the view of a ClerkUserSpec for the ClerkInstance named instance. It reads
// the top-level keys of each declared metadata object; an error means a metadata field is not a
// JSON object (which the CRD refuses). Keys from privateMetadataFrom are not in the spec: the
// caller merges them into spec.privateMetadata first.
func ViewFromSpec(instance string, spec *v1alpha1.ClerkUserSpec) (ClerkUserView, error) {
	v := ClerkUserView{
		Instance:       instance,
		UserID:         spec.UserID,
		ExternalID:     spec.ExternalID,
		EmailAddress:   spec.EmailAddress,
		Username:       spec.Username,
		CreationPolicy: spec.CreationPolicy,
		DeletionPolicy: spec.DeletionPolicy,
		MetadataPolicy: spec.MetadataPolicy,
	}
	if spec.PrivateMetadataFrom != nil {
		v.PrivateMetadataSecret = spec.PrivateMetadataFrom.SecretKeyRef.Name
	}
	var err error
	if spec.PublicMetadata != nil {
		if v.Metadata.Public, err = topLevelKeys("spec.publicMetadata", spec.PublicMetadata.Raw); err != nil {
			return ClerkUserView{}, err
		}
	}
	if spec.PrivateMetadata != nil {
		if v.Metadata.Private, err = topLevelKeys("spec.privateMetadata", spec.PrivateMetadata.Raw); err != nil {
			return ClerkUserView{}, err
		}
	}
	if spec.UnsafeMetadata != nil {
		if v.Metadata.Unsafe, err = topLevelKeys("spec.unsafeMetadata", spec.UnsafeMetadata.Raw); err != nil {
			return ClerkUserView{}, err
		}
	}
	return v, nil
}

// topLevelKeys returns the sorted keys of a JSON object: nil when it is not declared (absent or
// null), non-nil (maybe empty) when it is.
func topLevelKeys(field string, raw []byte) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		// The value is not included: metadata values never appear in messages.
		return nil, fmt.Errorf("%s is not a JSON object", field)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// CheckSpec checks a ClerkUser against the policy of the ClerkInstance it refers to, before any
// Clerk call. A nil policy, and each unset policy field, allows everything. It returns nil or a
// [Violations] holding every broken rule (all of them, so that one edit can fix the object), in
// this order:
//
//   - policy.allowUserID false: spec.userID must be empty.
//   - policy.allowCreate false: creationPolicy must not be AdoptOrCreate.
//   - policy.allowedDeletionPolicies: deletionPolicy ("" = Orphan) must be listed. A set but empty
//     list (which the CRD refuses) allows none.
//   - policy.emailDomains: spec.emailAddress, when set, must be name@domain with exactly one '@'
//     and a domain equal to a listed one, compared case-insensitively (ASCII only, so that
//     Unicode look-alikes such as the Kelvin sign do not match 'k'). Subdomains do not match (list
//     sub.acme.com on its own), nor does a trailing dot on the address. A listed domain may carry
//     a trailing dot (the CRD refuses one). With AdoptOrCreate, spec.emailAddress is required:
//     a user created without one would have no primary email in the domains. A set but empty
//     list allows no address.
//   - policy.externalIDPrefixes: spec.externalID, when set, must start with a listed prefix
//     (case-sensitive). Empty prefixes (which the CRD refuses) are ignored; a set but empty list
//     allows no externalID.
//   - policy.protectedMetadataKeys: no declared top-level key may be protected (exact,
//     case-sensitive match); with metadataPolicy Replace, a metadata object that has protected
//     keys may not be declared at all, since replacing it would overwrite them.
//
// A user found by an identifier other than spec.emailAddress is checked once found, with
// [CheckBoundUser].
func CheckSpec(policy *v1alpha1.ClerkInstancePolicy, spec ClerkUserView) error {
	if policy == nil {
		return nil
	}
	c := &checker{spec: spec}
	if policy.AllowUserID != nil && !*policy.AllowUserID && spec.UserID != "" {
		c.add("policy.allowUserID", "spec.userID",
			"does not allow spec.userID (policy.allowUserID: false); remove it and find the user by spec.externalID, spec.emailAddress or spec.username instead")
	}
	if policy.AllowCreate != nil && !*policy.AllowCreate && spec.CreationPolicy == v1alpha1.CreationPolicyAdoptOrCreate {
		c.add("policy.allowCreate", "spec.creationPolicy",
			"does not allow spec.creationPolicy AdoptOrCreate (policy.allowCreate: false); use creationPolicy Adopt to manage a user that already exists in Clerk")
	}
	c.deletionPolicy(policy.AllowedDeletionPolicies)
	c.emailAddress(policy.EmailDomains)
	c.externalID(policy.ExternalIDPrefixes)
	c.metadata(policy.ProtectedMetadataKeys)
	if len(c.out) == 0 {
		return nil
	}
	return c.out
}

// checker collects the violations of one ClerkUserView; each method checks one policy field.
type checker struct {
	spec ClerkUserView
	out  Violations
}

func (c *checker) add(rule, field, format string, args ...any) {
	c.out = append(c.out, &NotAllowedError{Instance: c.spec.Instance, Rule: rule, Field: field, Detail: fmt.Sprintf(format, args...)})
}

func (c *checker) deletionPolicy(allowed []v1alpha1.DeletionPolicy) {
	if allowed == nil {
		return
	}
	const rule, field = "policy.allowedDeletionPolicies", "spec.deletionPolicy"
	dp, note := c.spec.DeletionPolicy, ""
	if dp == "" {
		dp, note = v1alpha1.DeletionPolicyOrphan, " (the default)"
	}
	switch {
	case len(allowed) == 0:
		c.add(rule, field,
			"allows no spec.deletionPolicy at all (policy.allowedDeletionPolicies is empty); the ClerkInstance must list at least one, e.g. [Orphan]")
	case !slices.Contains(allowed, dp):
		c.add(rule, field, "does not allow spec.deletionPolicy %s%s (policy.allowedDeletionPolicies: [%s]); set spec.deletionPolicy to one of them",
			dp, note, joinDeletionPolicies(allowed))
	}
}

func (c *checker) emailAddress(domains []string) {
	if domains == nil {
		return
	}
	const rule, field = "policy.emailDomains", "spec.emailAddress"
	list := strings.Join(domains, ", ")
	if c.spec.EmailAddress == "" {
		if c.spec.CreationPolicy == v1alpha1.CreationPolicyAdoptOrCreate {
			c.add(rule, field, "does not allow creationPolicy AdoptOrCreate without spec.emailAddress (policy.emailDomains: [%s]): "+
				"a created user would have no primary email in those domains; set spec.emailAddress to an address at one of them", list)
		}
		return
	}
	domain, ok := emailDomain(c.spec.EmailAddress)
	switch {
	case !ok:
		c.add(rule, field, "does not allow spec.emailAddress %q, which is not of the form name@domain (policy.emailDomains: [%s]); "+
			"use an address at one of those domains", c.spec.EmailAddress, list)
	case !domainAllowed(domains, domain):
		c.add(rule, field, "does not allow spec.emailAddress at %s (policy.emailDomains: [%s]); "+
			"use an address at one of those domains (subdomains must be listed on their own)", domain, list)
	}
}

func (c *checker) externalID(prefixes []string) {
	id := c.spec.ExternalID
	if prefixes == nil || id == "" {
		return
	}
	if !slices.ContainsFunc(prefixes, func(p string) bool { return p != "" && strings.HasPrefix(id, p) }) {
		c.add("policy.externalIDPrefixes", "spec.externalID",
			"does not allow spec.externalID %q (policy.externalIDPrefixes: [%s]); use an externalID that starts with one of those prefixes",
			id, strings.Join(prefixes, ", "))
	}
}

func (c *checker) metadata(p *v1alpha1.ProtectedMetadataKeys) {
	if p == nil {
		return
	}
	replace := c.spec.MetadataPolicy == v1alpha1.MetadataPolicyReplace
	for _, o := range []struct {
		name      string
		declared  []string
		protected []string
	}{
		{"public", c.spec.Metadata.Public, p.Public},
		{"private", c.spec.Metadata.Private, p.Private},
		{"unsafe", c.spec.Metadata.Unsafe, p.Unsafe},
	} {
		if len(o.protected) == 0 || o.declared == nil {
			continue
		}
		rule, field := "policy.protectedMetadataKeys."+o.name, "spec."+o.name+"Metadata"
		if o.name == "private" && c.spec.PrivateMetadataSecret != "" {
			field += " or Secret " + c.spec.PrivateMetadataSecret + " (spec.privateMetadataFrom)"
		}
		protected := strings.Join(o.protected, ", ")
		var hit []string
		for _, k := range o.declared {
			if slices.Contains(o.protected, k) && !slices.Contains(hit, k) {
				hit = append(hit, k)
			}
		}
		if len(hit) > 0 {
			c.add(rule, field, "does not allow %s to declare %s (%s: [%s]); remove %s from %s: the application manages %s",
				field, strings.Join(hit, ", "), rule, protected,
				plural(len(hit), "this key", "these keys"), field, plural(len(hit), "it", "them"))
		}
		if replace {
			c.add(rule, "spec.metadataPolicy", "does not allow spec.metadataPolicy Replace with %s (%s: [%s]): "+
				"replacing the whole object would overwrite the protected keys; use metadataPolicy Merge", field, rule, protected)
		}
	}
}

// CheckBoundUser checks the Clerk user a ClerkUser is bound to against policy.emailDomains, once
// it is found: its primary email address must be at one of the listed domains (same matching as
// [CheckSpec]), and a user without a primary email address is refused. The contract requires it
// for users found by spec.userID, spec.externalID or spec.username; a user found by
// spec.emailAddress passed CheckSpec, but Clerk finds a user by any of its addresses, so calling
// it for every bound user is the stricter choice. A nil policy or unset emailDomains allows
// every user. The returned *NotAllowedError has no Instance; the caller may set it.
func CheckBoundUser(policy *v1alpha1.ClerkInstancePolicy, primaryEmail string) error {
	if policy == nil || policy.EmailDomains == nil {
		return nil
	}
	list := strings.Join(policy.EmailDomains, ", ")
	const rule, field = "policy.emailDomains", "status.observed.primaryEmailAddress"
	if primaryEmail == "" {
		return &NotAllowedError{Rule: rule, Field: field, Detail: fmt.Sprintf(
			"does not allow a Clerk user without a primary email address (policy.emailDomains: [%s]); "+
				"bind a user whose primary email address is at one of those domains, or give this user one in Clerk", list)}
	}
	domain, ok := emailDomain(primaryEmail)
	if ok && domainAllowed(policy.EmailDomains, domain) {
		return nil
	}
	what := "at " + domain
	if !ok {
		what = "that is not of the form name@domain"
	}
	return &NotAllowedError{Rule: rule, Field: field, Detail: fmt.Sprintf(
		"does not allow a Clerk user whose primary email address is %s (policy.emailDomains: [%s]); "+
			"bind a user whose primary email address is at one of those domains", what, list)}
}

// emailDomain returns the part after the '@' of an address with exactly one '@' and non-empty
// parts, in ASCII lowercase.
func emailDomain(addr string) (string, bool) {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return "", false
	}
	return asciiLower(domain), true
}

// domainAllowed reports whether domain (ASCII lowercase) equals a listed domain; listed domains
// are compared in ASCII lowercase without one trailing dot.
func domainAllowed(list []string, domain string) bool {
	for _, d := range list {
		d = strings.TrimSuffix(asciiLower(d), ".")
		if d != "" && d == domain {
			return true
		}
	}
	return false
}

// asciiLower lowercases A-Z only. strings.ToLower and strings.EqualFold map some non-ASCII runes
// to ASCII letters (U+212A KELVIN SIGN to 'k'), which would let a different domain match.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

func joinDeletionPolicies(p []v1alpha1.DeletionPolicy) string {
	s := make([]string, len(p))
	for i, v := range p {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
