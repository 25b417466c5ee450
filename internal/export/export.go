// Package export turns existing Clerk users into ClerkUser objects: the logic behind
// `kubectl clerk export`. It is pure (no flags, no files, no Kubernetes client): [Convert] maps
// one user to the objects that declare it, [AssignNames] gives them stable, unique names,
// [ForEachUser] pages through a [Lister], [Run] ties them together and [Write] prints YAML.
//
// What an exported object declares is chosen so that, switched from managementPolicy Observe to
// Manage, it makes no Clerk call at all: it states exactly what the user holds now, and leaves
// unset (not managed) what cannot be stated faithfully or would be harmful to enforce:
//
//   - spec.userID names the user; emailAddress is not declared (it only finds or creates a user)
//     but written as a comment.
//   - externalID, username, firstName and lastName are declared when the user has them; an empty
//     name is not declared (declaring "" would clear names a user enters later).
//   - banned is declared as it is. locked is declared (true) only for a lock without an expiry
//     (an administrator's lock): a lockout Clerk sets after failed sign-ins expires on its own,
//     and declaring it would make it permanent, while declaring locked: false for everybody would
//     lift such lockouts as soon as Clerk sets them. Unlocked users leave locked unset.
//   - mfa is never declared.
//   - public and unsafe metadata are declared key by key (metadataPolicy Merge, the default, so
//     keys the application adds later stay its own). A top-level key is left out, with a note,
//     when its value could not be declared exactly: a null (declared, it means "delete"), a null
//     inside an object (a merge drops it, so it would never converge), or a number Kubernetes
//     cannot store exactly (an integer outside int64, a decimal float64 would round, 1e400).
//   - private metadata is left out by default (only its key names are noted); with
//     [PrivateMetadataInline] it is declared in spec.privateMetadata like public metadata; with
//     [PrivateMetadataSecret] it goes into a Secret labelled clerk.kubeclerk.dev/private-metadata
//     that spec.privateMetadataFrom names, for encrypting with SOPS or Sealed Secrets.
//   - with a ClerkInstance policy ([Options.Policy]), metadata keys it protects and an externalID
//     without an allowed prefix are left out (declaring them would be NotAllowed).
package export

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// PrivateMetadataMode says what happens to a user's private metadata.
type PrivateMetadataMode string

const (
	// PrivateMetadataOmit leaves private metadata out (not managed); a comment lists its keys.
	PrivateMetadataOmit PrivateMetadataMode = "omit"
	// PrivateMetadataInline declares it in spec.privateMetadata, in plain text.
	PrivateMetadataInline PrivateMetadataMode = "inline"
	// PrivateMetadataSecret puts it into a Secret named by spec.privateMetadataFrom.
	PrivateMetadataSecret PrivateMetadataMode = "secret"
)

// PrivateMetadataModes are the accepted values of [PrivateMetadataMode], default first.
var PrivateMetadataModes = []PrivateMetadataMode{PrivateMetadataOmit, PrivateMetadataInline, PrivateMetadataSecret}

// PrivateMetadataKey is the entry of an exported private-metadata Secret that holds the JSON object.
const PrivateMetadataKey = "metadata.json"

// PrivateMetadataSecretSuffix is appended to a ClerkUser's name to name its Secret.
const PrivateMetadataSecretSuffix = "-private-metadata"

// MaxNameLength is the longest name given to an exported ClerkUser: a DNS-1123 label, so that
// the name also fits label values and leaves room for PrivateMetadataSecretSuffix.
const MaxNameLength = 63

// Options say what to export and how.
type Options struct {
	// Namespace is metadata.namespace of every object; "" leaves it out.
	Namespace string
	// Instance is spec.instanceRef.name of every object; "" leaves instanceRef out.
	Instance string
	// EmailDomains keeps only users whose primary email address is in one of these domains
	// (exact, case-insensitive; see [NormalizeDomains]); empty keeps every user.
	EmailDomains []string
	// PrivateMetadata says what happens to private metadata; "" means PrivateMetadataOmit.
	PrivateMetadata PrivateMetadataMode
	// Policy is the ClerkInstance's policy when exporting for one; nil: no restrictions.
	Policy *clerkv1alpha1.ClerkInstancePolicy
}

// Validate checks the options.
func (o Options) Validate() error {
	if o.PrivateMetadata != "" && !slices.Contains(PrivateMetadataModes, o.PrivateMetadata) {
		return fmt.Errorf("unknown private metadata mode %q: use omit, inline or secret", o.PrivateMetadata)
	}
	if o.Namespace != "" && !dnsLabel.MatchString(o.Namespace) {
		return fmt.Errorf("namespace %q is not a valid Kubernetes namespace name (lowercase letters, digits and '-', at most 63)", o.Namespace)
	}
	if o.Instance != "" && !dnsSubdomain.MatchString(o.Instance) {
		return fmt.Errorf("instance %q is not a valid ClerkInstance name", o.Instance)
	}
	for _, d := range o.EmailDomains {
		if d == "" || strings.Contains(d, "@") {
			return fmt.Errorf("email domain %q: write the part after '@', e.g. example.com", d)
		}
	}
	return nil
}

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	userIDRE     = regexp.MustCompile(`^user_[A-Za-z0-9]+$`)
)

// NormalizeDomains splits comma-separated values, trims spaces and a leading '@', lowercases
// and removes duplicates and empty entries.
func NormalizeDomains(values []string) []string {
	var out []string
	for _, v := range values {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
			if d != "" && !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	}
	return out
}

// EmailDomain returns the lowercased domain of the user's primary email address, or "".
func EmailDomain(u *clerk.User) string {
	e := u.PrimaryEmailAddress()
	i := strings.LastIndexByte(e, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(e[i+1:])
}

// MatchesDomains reports whether the user's primary email address is in one of domains
// (lowercase, as [NormalizeDomains] returns them); every user matches an empty list. A user
// without a primary email address matches no domain.
func MatchesDomains(u *clerk.User, domains []string) bool {
	if len(domains) == 0 {
		return true
	}
	d := EmailDomain(u)
	return d != "" && slices.Contains(domains, d)
}

// Entry is one exported user: its ClerkUser, maybe a private-metadata Secret, and notes on what
// was not declared and why (written as comments).
type Entry struct {
	// UserID is the Clerk user ID.
	UserID string
	// CreatedAt is the user's created_at (Unix ms): entries are ordered by it, then by UserID.
	CreatedAt int64
	// Email is the primary email address, "" when none (written as a comment).
	Email string
	// BaseName is the name derived from the user's identifiers, before deduplication.
	BaseName string
	// Object is the ClerkUser; its name is set by AssignNames.
	Object *clerkv1alpha1.ClerkUser
	// Secret holds private metadata with PrivateMetadataSecret; nil otherwise.
	Secret *corev1.Secret
	// Notes say what was left out and why.
	Notes []string
}

// Convert returns the entry that declares u as it is now (see the package documentation). It
// returns an error for a user that cannot be declared at all (an ID not of the form user_…).
func Convert(u *clerk.User, o Options) (Entry, error) {
	if !userIDRE.MatchString(u.ID) || len(u.ID) > 64 {
		return Entry{}, fmt.Errorf("user ID %q is not of the form user_… (at most 64 characters); skipped", u.ID)
	}
	e := Entry{UserID: u.ID, CreatedAt: u.CreatedAt, Email: u.PrimaryEmailAddress(), BaseName: BaseName(u)}
	obj := &clerkv1alpha1.ClerkUser{
		TypeMeta:   metav1.TypeMeta{APIVersion: clerkv1alpha1.GroupVersion.String(), Kind: "ClerkUser"},
		ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace},
		Spec: clerkv1alpha1.ClerkUserSpec{
			UserID:           u.ID,
			ManagementPolicy: clerkv1alpha1.ManagementPolicyObserve,
			Banned:           new(u.Banned),
		},
	}
	e.Object = obj
	s := &obj.Spec
	if o.Instance != "" {
		s.InstanceRef = &clerkv1alpha1.InstanceReference{Name: o.Instance}
	}
	var policy clerkv1alpha1.ClerkInstancePolicy
	if o.Policy != nil {
		policy = *o.Policy
	}

	if v := deref(u.ExternalID); v != "" {
		switch {
		case utf8.RuneCountInString(v) > 256:
			e.note("externalID not declared: longer than the 256 characters a ClerkUser accepts")
		case len(policy.ExternalIDPrefixes) > 0 && !slices.ContainsFunc(policy.ExternalIDPrefixes, func(p string) bool { return strings.HasPrefix(v, p) }):
			e.note("externalID not declared: it does not start with a prefix the ClerkInstance's policy.externalIDPrefixes allows")
		default:
			s.ExternalID = v
		}
	}
	if v := deref(u.Username); v != "" {
		if utf8.RuneCountInString(v) > 64 {
			e.note("username not declared: longer than the 64 characters a ClerkUser accepts")
		} else {
			s.Username = v
		}
	}
	s.FirstName = e.name("firstName", u.FirstName)
	s.LastName = e.name("lastName", u.LastName)

	switch {
	case u.Locked && u.LockoutExpiresInSeconds == nil:
		s.Locked = new(true)
	case u.Locked:
		// No time left in the note: the export stays the same from one run to the next.
		e.note("locked not declared: a lockout that expires by itself (as Clerk sets after failed sign-ins); declaring it would make it permanent")
	}

	var protected clerkv1alpha1.ProtectedMetadataKeys
	if policy.ProtectedMetadataKeys != nil {
		protected = *policy.ProtectedMetadataKeys
	}
	s.PublicMetadata = e.metadata("publicMetadata", u.PublicMetadata, protected.Public, true)
	s.UnsafeMetadata = e.metadata("unsafeMetadata", u.UnsafeMetadata, protected.Unsafe, true)
	switch o.PrivateMetadata {
	case PrivateMetadataInline:
		s.PrivateMetadata = e.metadata("privateMetadata", u.PrivateMetadata, protected.Private, true)
	case PrivateMetadataSecret:
		// The Secret's value is JSON the controller reads with exact numbers: only nulls and
		// protected keys are left out.
		if m := e.metadata("privateMetadata", u.PrivateMetadata, protected.Private, false); m != nil {
			e.Secret = &corev1.Secret{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
				ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace,
					Labels: map[string]string{clerkv1alpha1.PrivateMetadataSecretLabel: "true"}},
				Type:       corev1.SecretTypeOpaque,
				StringData: map[string]string{PrivateMetadataKey: string(m.Raw)},
			}
			s.PrivateMetadataFrom = &clerkv1alpha1.PrivateMetadataSource{
				SecretKeyRef: clerkv1alpha1.LocalSecretKeyReference{Key: PrivateMetadataKey}}
		}
	default:
		if keys := sortedKeys(u.PrivateMetadata); len(keys) > 0 {
			e.note("privateMetadata not exported (keys " + strings.Join(quoted(keys), ", ") +
				"): use --private-metadata=secret (or inline) to declare it")
		}
	}
	return e, nil
}

func (e *Entry) note(s string) { e.Notes = append(e.Notes, s) }

// name returns a profile name to declare: nil (not managed) when the user has none.
func (e *Entry) name(field string, v *string) *string {
	switch {
	case v == nil || *v == "":
		return nil
	case utf8.RuneCountInString(*v) > 256:
		e.note(field + " not declared: longer than the 256 characters a ClerkUser accepts")
		return nil
	}
	return new(*v)
}

// metadata returns the declarable part of one metadata object, nil when nothing is left.
// kube says whether the value is stored in a Kubernetes object, whose numbers are int64 or
// float64.
func (e *Entry) metadata(field string, m map[string]any, protected []string, kube bool) *apiextensionsv1.JSON {
	out := map[string]any{}
	for _, k := range sortedKeys(m) {
		v := m[k]
		why := ""
		switch {
		case slices.Contains(protected, k):
			why = "protected by the ClerkInstance's policy.protectedMetadataKeys"
		case v == nil:
			why = "its value is null, which a ClerkUser declares to delete the key"
		case hasNullInObject(v):
			why = "it holds a null inside an object, which a merge drops: it would never be in sync"
		case kube && !kubeExact(v):
			why = "it holds a number Kubernetes cannot store exactly (an integer beyond 64 bits, or a decimal a float64 rounds)"
		}
		if why != "" {
			e.note(fmt.Sprintf("%s.%s not declared: %s", field, strconv.Quote(k), why))
			continue
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	raw, err := json.Marshal(out) // json.Number keeps its text; keys sorted
	if err != nil {
		e.note(fmt.Sprintf("%s not declared: %v", field, err))
		return nil
	}
	return &apiextensionsv1.JSON{Raw: raw}
}

// hasNullInObject reports whether v holds a null member of an object, at any depth outside
// arrays (which are replaced as a whole, nulls and all).
func hasNullInObject(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for _, x := range m {
		if x == nil || hasNullInObject(x) {
			return true
		}
	}
	return false
}

// kubeExact reports whether every number in v keeps its value through a Kubernetes object:
// the API server stores an integer that fits int64 as such and any other number as a float64.
func kubeExact(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		for _, y := range x {
			if !kubeExact(y) {
				return false
			}
		}
	case []any:
		for _, y := range x {
			if !kubeExact(y) {
				return false
			}
		}
	case json.Number:
		return numberExact(string(x))
	}
	return true
}

// numberExact reports whether the JSON number s has the same value as the number Kubernetes
// would write back for it (an int64, or the shortest text of the nearest float64).
func numberExact(s string) bool {
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil { // out of range
		return false
	}
	want, ok := new(big.Rat).SetString(s)
	if !ok {
		return false
	}
	got, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	return ok && want.Cmp(got) == 0
}

// BaseName derives a name from the first identifier of the user that gives a non-empty one:
// username, primary email address (local part and domain), external ID, user ID. It is a
// lowercase DNS-1123 label of at most MaxNameLength characters (see [Sanitize]).
func BaseName(u *clerk.User) string {
	for _, c := range []string{deref(u.Username), u.PrimaryEmailAddress(), deref(u.ExternalID), u.ID} {
		if s := Sanitize(c); s != "" {
			return s
		}
	}
	return "user"
}

// latin folds common accented Latin letters to ASCII.
var latin = func() map[rune]string {
	m := map[rune]string{'ß': "ss", 'æ': "ae", 'œ': "oe", 'ø': "o", 'ł': "l", 'đ': "d", 'ð': "d", 'þ': "th", 'ı': "i"}
	for base, letters := range map[string]string{
		"a": "àáâãäåāăą", "c": "çćĉċč", "d": "ď", "e": "èéêëēĕėęě", "g": "ĝğġģ", "h": "ĥħ",
		"i": "ìíîïĩīĭįİ", "j": "ĵ", "k": "ķ", "l": "ĺļľŀ", "n": "ñńņňŉ", "o": "òóôõöōŏő",
		"r": "ŕŗř", "s": "śŝşšș", "t": "ţťŧț", "u": "ùúûüũūŭůűų", "w": "ŵ", "y": "ýÿŷ", "z": "źżž",
	} {
		for _, r := range letters {
			m[r] = base
		}
	}
	return m
}()

// Sanitize turns an identifier into a DNS-1123 label: lowercased, common accented Latin
// letters folded to ASCII, every run of other characters replaced by one '-', no '-' at either
// end, at most MaxNameLength characters. It returns "" when nothing is left.
func Sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case latin[r] != "":
			b.WriteString(latin[r])
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	return truncate(b.String(), MaxNameLength)
}

// truncate cuts a sanitized name to n bytes without a trailing '-'.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.TrimRight(s, "-")
}

// Sort orders entries by creation time, then user ID: the order of Clerk's created_at paging,
// and a stable one.
func Sort(entries []Entry) {
	slices.SortStableFunc(entries, func(a, b Entry) int {
		if a.CreatedAt != b.CreatedAt {
			if a.CreatedAt < b.CreatedAt {
				return -1
			}
			return 1
		}
		return strings.Compare(a.UserID, b.UserID)
	})
}

// AssignNames sorts entries (see [Sort]) and names their objects. The oldest user with a base
// name keeps it; a younger one with the same base name gets "-" and the end of its user ID
// (lowercased, 6 characters, more while the name is still taken), so that names stay the same
// when users are added to Clerk later. A private-metadata Secret is named after its ClerkUser.
func AssignNames(entries []Entry) {
	Sort(entries)
	taken := map[string]bool{}
	first := map[string]int{} // base name → index of the entry that keeps it
	for i, e := range entries {
		if _, ok := first[e.BaseName]; !ok {
			first[e.BaseName] = i
			taken[e.BaseName] = true
		}
	}
	for i := range entries {
		e := &entries[i]
		name := e.BaseName
		if first[name] != i {
			name = suffixed(e.BaseName, e.UserID, taken)
			taken[name] = true
		}
		e.Object.Name = name
		if e.Secret != nil {
			e.Secret.Name = name + PrivateMetadataSecretSuffix
			e.Object.Spec.PrivateMetadataFrom.SecretKeyRef.Name = e.Secret.Name
		}
	}
}

// suffixed returns base with a suffix from the user ID that is not taken.
func suffixed(base, userID string, taken map[string]bool) string {
	tail := strings.ToLower(strings.TrimPrefix(userID, "user_"))
	for n := 6; ; n++ {
		var suffix string
		if n <= len(tail) {
			suffix = tail[len(tail)-n:]
		} else {
			// IDs that differ only in case: add a counter.
			suffix = tail + "-" + strconv.Itoa(n-len(tail))
		}
		name := truncate(base, MaxNameLength-1-len(suffix)) + "-" + suffix
		if len(suffix) >= MaxNameLength-1 {
			name = truncate(suffix, MaxNameLength)
		}
		if !taken[name] {
			return name
		}
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func quoted(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strconv.Quote(k)
	}
	return out
}

// formatTime formats a Clerk timestamp (Unix ms) for comments.
func formatTime(ms int64) string {
	if ms <= 0 {
		return "unknown"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}
