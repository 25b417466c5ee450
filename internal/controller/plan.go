package controller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"reflect"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// MaxMetadataBytes is Clerk's limit on a user's metadata: the three objects together.
const MaxMetadataBytes = 8 * 1024

// StepKind is one Clerk call the plan may need. Steps run in the order of the constants, which
// is the safe order: access is restored before anything else is written, and access is taken
// away (lock, ban) only after every other change has landed.
type StepKind int

const (
	// StepUnban calls POST /users/{id}/unban.
	StepUnban StepKind = iota
	// StepUnlock calls POST /users/{id}/unlock.
	StepUnlock
	// StepUpdateProfile calls PATCH /users/{id} with every profile change at once.
	StepUpdateProfile
	// StepMetadata calls PATCH (Merge) or PUT (Replace) /users/{id}/metadata with every metadata change.
	StepMetadata
	// StepDisableMFA calls DELETE /users/{id}/mfa (mfa.disabled, a new mfa.resetToken, or both).
	StepDisableMFA
	// StepLock calls POST /users/{id}/lock.
	StepLock
	// StepBan calls POST /users/{id}/ban.
	StepBan
)

// Step is one Clerk call of a plan.
type Step struct {
	// Kind says which call.
	Kind StepKind
	// Changes are the human-readable names of what the call changes, e.g. "firstName" or
	// "publicMetadata.role"; they are what status.pendingChanges shows. Never values.
	Changes []string
	// Profile is the body of StepUpdateProfile.
	Profile clerk.UpdateUserParams
	// Metadata is the body of StepMetadata.
	Metadata clerk.MetadataParams
	// ReplaceMetadata makes StepMetadata a PUT (replace) instead of a PATCH (deep merge).
	ReplaceMetadata bool
}

// Plan is what it takes to bring one Clerk user to a ClerkUser's spec.
type Plan struct {
	// Steps are the Clerk calls, in execution order.
	Steps []Step
	// OwnedMetadataKeys is status.ownedMetadataKeys once the metadata step (if any) has landed.
	OwnedMetadataKeys *clerkv1alpha1.OwnedMetadataKeys
	// MFAResetToken is recorded in status.lastMFAResetToken once the plan's MFA step (if any)
	// has landed; "" means leave the status as it is.
	MFAResetToken string
	// PendingMFAReset is recorded in status before the MFA step runs when that step applies a
	// new reset token; nil when it does not.
	PendingMFAReset *clerkv1alpha1.PendingMFAReset
}

// PendingChanges lists the human-readable changes of the steps from index i on.
func (p Plan) PendingChanges(from int) []string {
	var out []string
	for _, s := range p.Steps[min(from, len(p.Steps)):] {
		out = append(out, s.Changes...)
	}
	return out
}

// InvalidSpecError is a spec that cannot be applied, found while planning. It is terminal
// until the spec changes.
type InvalidSpecError struct {
	// Field is the offending spec field, e.g. "spec.publicMetadata".
	Field string
	// Reason says what is wrong and what to do.
	Reason string
}

// Error implements error.
func (e *InvalidSpecError) Error() string { return e.Field + ": " + e.Reason }

// metadataField ties one of the three metadata objects of the spec to Clerk's.
type metadataField struct {
	name     string // spec field name, e.g. "publicMetadata"
	declared map[string]any
	isSet    bool // the spec declares the object at all
	clerk    map[string]any
	owned    []string
	setOut   func(p *clerk.MetadataParams, v map[string]any)
	setOwned func(o *clerkv1alpha1.OwnedMetadataKeys, keys []string)
}

// plan computes the Clerk calls that bring observed to spec. It is a pure function: no context,
// client or clock. observed must be non-nil.
func plan(spec *clerkv1alpha1.ClerkUserSpec, status *clerkv1alpha1.ClerkUserStatus, observed *clerk.User) (Plan, error) {
	var p Plan

	if spec.Banned != nil && !*spec.Banned && observed.Banned {
		p.Steps = append(p.Steps, Step{Kind: StepUnban, Changes: []string{"unban"}})
	}
	if spec.Locked != nil && !*spec.Locked && observed.Locked {
		p.Steps = append(p.Steps, Step{Kind: StepUnlock, Changes: []string{"unlock"}})
	}
	if s, ok := planProfile(spec, observed); ok {
		p.Steps = append(p.Steps, s)
	}

	fields, err := metadataFields(spec, status, observed)
	if err != nil {
		return Plan{}, err
	}
	s, owned, ok, err := planMetadata(spec.MetadataPolicy, fields)
	if err != nil {
		return Plan{}, err
	}
	p.OwnedMetadataKeys = owned
	if ok {
		p.Steps = append(p.Steps, s)
	}

	s, token, pending, ok := planMFA(spec.MFA, status, observed)
	p.MFAResetToken, p.PendingMFAReset = token, pending
	if ok {
		p.Steps = append(p.Steps, s)
	}

	if spec.Locked != nil && *spec.Locked && !observed.Locked {
		p.Steps = append(p.Steps, Step{Kind: StepLock, Changes: []string{"lock"}})
	}
	if spec.Banned != nil && *spec.Banned && !observed.Banned {
		p.Steps = append(p.Steps, Step{Kind: StepBan, Changes: []string{"ban"}})
	}
	return p, nil
}

// planProfile returns the PATCH /users/{id} step for externalID, username, firstName and lastName.
func planProfile(spec *clerkv1alpha1.ClerkUserSpec, observed *clerk.User) (Step, bool) {
	s := Step{Kind: StepUpdateProfile}
	if spec.ExternalID != "" && deref(observed.ExternalID) != spec.ExternalID {
		s.Profile.ExternalID = clerk.Set(spec.ExternalID)
		s.Changes = append(s.Changes, "externalID")
	}
	if spec.Username != "" && deref(observed.Username) != spec.Username {
		s.Profile.Username = clerk.Set(spec.Username)
		s.Changes = append(s.Changes, "username")
	}
	if f, ok := nameField(spec.FirstName, observed.FirstName); ok {
		s.Profile.FirstName = f
		s.Changes = append(s.Changes, "firstName")
	}
	if f, ok := nameField(spec.LastName, observed.LastName); ok {
		s.Profile.LastName = f
		s.Changes = append(s.Changes, "lastName")
	}
	return s, len(s.Changes) > 0
}

// nameField compares a declared name (nil: not managed; "": cleared) with Clerk's.
func nameField(declared, observed *string) (clerk.Field[string], bool) {
	switch {
	case declared == nil:
		return clerk.Field[string]{}, false
	case *declared == "":
		if deref(observed) == "" {
			return clerk.Field[string]{}, false
		}
		return clerk.Null[string](), true
	case deref(observed) != *declared:
		return clerk.Set(*declared), true
	}
	return clerk.Field[string]{}, false
}

// metadataFields decodes the declared metadata of spec next to Clerk's and the owned keys.
func metadataFields(spec *clerkv1alpha1.ClerkUserSpec, status *clerkv1alpha1.ClerkUserStatus, observed *clerk.User) ([]metadataField, error) {
	owned := status.OwnedMetadataKeys
	if owned == nil {
		owned = &clerkv1alpha1.OwnedMetadataKeys{}
	}
	fields := []metadataField{
		{name: "publicMetadata", clerk: observed.PublicMetadata, owned: owned.Public,
			setOut:   func(p *clerk.MetadataParams, v map[string]any) { p.PublicMetadata = v },
			setOwned: func(o *clerkv1alpha1.OwnedMetadataKeys, k []string) { o.Public = k }},
		{name: "privateMetadata", clerk: observed.PrivateMetadata, owned: owned.Private,
			setOut:   func(p *clerk.MetadataParams, v map[string]any) { p.PrivateMetadata = v },
			setOwned: func(o *clerkv1alpha1.OwnedMetadataKeys, k []string) { o.Private = k }},
		{name: "unsafeMetadata", clerk: observed.UnsafeMetadata, owned: owned.Unsafe,
			setOut:   func(p *clerk.MetadataParams, v map[string]any) { p.UnsafeMetadata = v },
			setOwned: func(o *clerkv1alpha1.OwnedMetadataKeys, k []string) { o.Unsafe = k }},
	}
	for i, raw := range []*[]byte{rawOf(spec.PublicMetadata), rawOf(spec.PrivateMetadata), rawOf(spec.UnsafeMetadata)} {
		if raw == nil {
			continue
		}
		m, err := decodeObject(*raw)
		if err != nil {
			return nil, &InvalidSpecError{Field: "spec." + fields[i].name, Reason: err.Error()}
		}
		fields[i].declared, fields[i].isSet = m, true
	}
	return fields, nil
}

// planMetadata returns the one metadata step (if any) and the owned keys once it has landed.
func planMetadata(policy clerkv1alpha1.MetadataPolicy, fields []metadataField) (Step, *clerkv1alpha1.OwnedMetadataKeys, bool, error) {
	s := Step{Kind: StepMetadata, ReplaceMetadata: policy == clerkv1alpha1.MetadataPolicyReplace}
	var owned *clerkv1alpha1.OwnedMetadataKeys
	var declared []string
	total := 0
	for _, f := range fields {
		if f.isSet {
			declared = append(declared, "spec."+f.name)
		}
		var after map[string]any
		if s.ReplaceMetadata {
			after = f.clerk
			if f.isSet {
				after = f.declared
				if !jsonEqual(f.clerk, f.declared) {
					f.setOut(&s.Metadata, nonNil(f.declared))
					s.Changes = append(s.Changes, f.name)
				}
			}
		} else {
			patch, keys := mergePatch(f)
			if len(patch) > 0 {
				f.setOut(&s.Metadata, patch)
				for _, k := range sortedKeys(patch) {
					s.Changes = append(s.Changes, f.name+"."+k)
				}
			}
			after = applyMergePatch(f.clerk, patch)
			if len(keys) > 0 {
				if owned == nil {
					owned = &clerkv1alpha1.OwnedMetadataKeys{}
				}
				f.setOwned(owned, keys)
			}
		}
		total += encodedSize(after)
	}
	// The limit guards what this plan would write: metadata it leaves alone is Clerk's to judge.
	if len(s.Changes) > 0 && total > MaxMetadataBytes {
		return Step{}, nil, false, metadataTooLarge(declared, total)
	}
	return s, owned, len(s.Changes) > 0, nil
}

// encodedSize is the size of m as Clerk counts it against MaxMetadataBytes: its compact JSON,
// numbers in their exact text, a nil object as {}.
func encodedSize(m map[string]any) int {
	b, _ := json.Marshal(nonNil(m))
	return len(b)
}

// metadataTooLarge is the InvalidSpecError for metadata of total bytes, over MaxMetadataBytes;
// declared are the metadata fields the spec declares.
func metadataTooLarge(declared []string, total int) error {
	field := strings.Join(declared, ", ")
	if field == "" {
		field = "spec.publicMetadata, spec.privateMetadata, spec.unsafeMetadata"
	}
	return &InvalidSpecError{Field: field,
		Reason: fmt.Sprintf("the user's metadata would take %d bytes, over Clerk's limit of %d; declare smaller objects", total, MaxMetadataBytes)}
}

// createParams is the body of the POST /users that creates the user spec declares
// (creationPolicy AdoptOrCreate): the identifiers, the profile and the metadata in one call,
// no password (skip_password_requirement). An empty firstName or lastName is not sent: a new
// user has none. Metadata is decoded like plan does (decodeObject: numbers keep their exact
// text), and is sent as the plan would leave it once written, so that planning against the
// created user finds nothing to do:
//   - Merge (the default): declared nulls mean "absent", at the top level and nested inside
//     objects (the deep merge drops them; see withoutNulls); a new user has nothing to delete,
//     so they are left out.
//   - Replace: the declared object exactly, nulls included, as the PUT of a Replace plan sends it.
//
// A declared object that is not a JSON object, or metadata over Clerk's 8 KB limit (the three
// objects together, an undeclared one counting as {}), is an *InvalidSpecError naming the
// fields, as plan reports it.
func createParams(spec *clerkv1alpha1.ClerkUserSpec) (clerk.CreateUserParams, error) {
	p := clerk.CreateUserParams{SkipPasswordRequirement: true}
	if spec.ExternalID != "" {
		p.ExternalID = new(spec.ExternalID)
	}
	if spec.EmailAddress != "" {
		p.EmailAddresses = []string{spec.EmailAddress}
	}
	if spec.Username != "" {
		p.Username = new(spec.Username)
	}
	if spec.FirstName != nil && *spec.FirstName != "" {
		p.FirstName = new(*spec.FirstName)
	}
	if spec.LastName != nil && *spec.LastName != "" {
		p.LastName = new(*spec.LastName)
	}
	var declared []string
	total := 0
	for _, m := range []struct {
		field string
		raw   *[]byte
		out   *map[string]any
	}{
		{"spec.publicMetadata", rawOf(spec.PublicMetadata), &p.PublicMetadata},
		{"spec.privateMetadata", rawOf(spec.PrivateMetadata), &p.PrivateMetadata},
		{"spec.unsafeMetadata", rawOf(spec.UnsafeMetadata), &p.UnsafeMetadata},
	} {
		if m.raw != nil {
			obj, err := decodeObject(*m.raw)
			if err != nil {
				return clerk.CreateUserParams{}, &InvalidSpecError{Field: m.field, Reason: err.Error()}
			}
			if spec.MetadataPolicy != clerkv1alpha1.MetadataPolicyReplace {
				obj = withoutNulls(obj).(map[string]any)
			}
			*m.out = obj
			declared = append(declared, m.field)
		}
		total += encodedSize(*m.out)
	}
	if total > MaxMetadataBytes {
		return clerk.CreateUserParams{}, metadataTooLarge(declared, total)
	}
	return p, nil
}

// Metadata values are decoded JSON: map[string]any, []any, string, bool, nil and json.Number.
// Numbers are never converted to float64, which would round 64-bit integers such as
// 1098765432109876543 and decimals, and fail on values out of its range such as 1e400: a
// declared value would then be written again on every sync, or written rounded. Numbers are
// compared by their exact value, not their text (1.0 == 1, 1e2 == 100, -0 == 0; see
// canonicalNumber): a number may come back in another notation than the declared one (written
// by another tool, or normalized by a store), and only a different value is worth a write.
// Written numbers carry the declared text.
//
// The merge patches are computed on decoded values (mergePatch, exactPatch, applyMergePatch)
// rather than with gopkg.in/evanphx/json-patch.v4: its CreateMergePatch decodes into float64, so
// that 1098765432109876543 and 1098765432109876544 compare equal and no patch is produced (its
// MergePatch keeps number text, but would cost an encode and a decode per object).

// mergePatch returns the deep-merge patch that makes Clerk's object hold every declared key
// exactly and drops owned keys no longer declared, with the keys owned afterwards.
func mergePatch(f metadataField) (map[string]any, []string) {
	patch := map[string]any{}
	for k, want := range f.declared {
		have, present := f.clerk[k]
		switch {
		case want == nil:
			// A declared null means the key must be absent.
			if present {
				patch[k] = nil
			}
		case !present:
			patch[k] = want
		case !jsonEqual(have, withoutNulls(want)):
			// Nested nulls mean "absent": that is all a deep merge can make of them, so
			// compare and diff against what the merge leaves, or the key never converges.
			patch[k] = exactPatch(have, withoutNulls(want))
		}
	}
	for _, k := range f.owned {
		if _, declared := f.declared[k]; declared {
			continue
		}
		if _, present := f.clerk[k]; present {
			patch[k] = nil
		}
	}
	keys := sortedKeys(f.declared)
	return patch, keys
}

// withoutNulls returns v without the null members of its objects, at any depth outside arrays
// (which replace as a whole): what a deep merge of v leaves in Clerk.
func withoutNulls(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(m))
	for k, x := range m {
		if x != nil {
			out[k] = withoutNulls(x)
		}
	}
	return out
}

// exactPatch returns the merge-patch value that turns have into want under Clerk's deep merge
// (RFC 7386): when both are objects, only the members that differ (compared with jsonEqual,
// recursively for objects on both sides), and the members of have that want lacks as null;
// otherwise want itself. want must hold no null member (see withoutNulls).
func exactPatch(have, want any) any {
	hm, hok := have.(map[string]any)
	wm, wok := want.(map[string]any)
	if !hok || !wok {
		return want
	}
	patch := map[string]any{}
	for k, w := range wm {
		h, present := hm[k]
		switch {
		case !present:
			patch[k] = w
		case !jsonEqual(h, w):
			patch[k] = exactPatch(h, w)
		}
	}
	for k := range hm {
		if _, kept := wm[k]; !kept {
			patch[k] = nil
		}
	}
	return patch
}

// applyMergePatch is Clerk's deep merge of patch into obj (RFC 7386), used to predict the result.
// Neither argument is modified; the result may share unchanged values with obj and patch.
func applyMergePatch(obj, patch map[string]any) map[string]any {
	if len(patch) == 0 {
		return obj
	}
	return mergeValue(obj, patch).(map[string]any)
}

// mergeValue is RFC 7386 MergePatch(target, patch): an object patch merges member by member
// into target (a target that is not an object counts as {}), a null member deletes, any other
// patch (arrays included) replaces target.
func mergeValue(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, _ := target.(map[string]any)
	out := make(map[string]any, len(tm)+len(pm))
	maps.Copy(out, tm)
	for k, v := range pm {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = mergeValue(out[k], v)
	}
	return out
}

// decodeObject decodes a JSON object with numbers as json.Number (exact text); JSON null is the
// empty object; anything else is an error naming what was found.
func decodeObject(raw []byte) (map[string]any, error) {
	if !json.Valid(raw) {
		// json.Unmarshal reports what is wrong and where (a *json.SyntaxError).
		var v any
		err := json.Unmarshal(raw, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	switch m := v.(type) {
	case map[string]any:
		return m, nil
	case nil:
		return map[string]any{}, nil
	default:
		return nil, fmt.Errorf("must be a JSON object, not %s", jsonKind(v))
	}
}

// jsonKind names the JSON type of a decoded value, for messages (never the value itself).
func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// jsonEqual reports whether two decoded JSON values are the same JSON: objects with the same
// members (a nil map is the empty object), arrays with the same elements in order, equal
// strings and booleans, and numbers of the same exact value (see canonicalNumber). Values of
// other Go types (a float64 from code or another decoder, a typed slice) are compared as their
// JSON encoding decoded with exact numbers.
func jsonEqual(a, b any) bool {
	a, b = plainJSON(a), plainJSON(b)
	switch av := a.(type) {
	case nil:
		return b == nil
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for k, x := range av {
			if y, present := bv[k]; !present || !jsonEqual(x, y) {
				return false
			}
		}
		return true
	case []any:
		bv, ok := b.([]any)
		return ok && slices.EqualFunc(av, bv, jsonEqual)
	case string:
		bv, ok := b.(string)
		return ok && av == bv
	case bool:
		bv, ok := b.(bool)
		return ok && av == bv
	case json.Number:
		bv, ok := b.(json.Number)
		return ok && canonicalNumber(string(av)) == canonicalNumber(string(bv))
	}
	return reflect.DeepEqual(a, b) // not JSON (e.g. NaN): only identical values are equal
}

// plainJSON returns v when it is a decoded JSON value (nil, map[string]any, []any, string, bool,
// json.Number), and otherwise v encoded and decoded again with exact numbers, or v itself when
// it cannot be encoded.
func plainJSON(v any) any {
	switch v.(type) {
	case nil, map[string]any, []any, string, bool, json.Number:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if dec.Decode(&out) != nil {
		return v
	}
	return out
}

// canonicalNumber returns the canonical decimal form of the JSON number s, equal for equal
// values whatever their notation: sign, significant digits without leading or trailing zeros,
// "e" and the power of ten, e.g. "1e0" for 1, 1.0, 1.00 and 0.1e1, "1e2" for 100 and 1E+2,
// "-1e-1" for -0.1, and "0" for every zero (-0 included). The exponent is a big.Int, so even
// 1e99999999999999999999 is exact and cheap (math/big.Rat would build the power of ten). Text
// that is not a JSON number is returned unchanged; it cannot look like a canonical form, so it
// equals only itself.
func canonicalNumber(s string) string {
	t, neg := strings.CutPrefix(s, "-")
	mant, expText, hasExp := t, "", false
	if i := strings.IndexAny(t, "eE"); i >= 0 {
		mant, expText, hasExp = t[:i], t[i+1:], true
	}
	intPart, frac, hasFrac := strings.Cut(mant, ".")
	if !allDigits(intPart) || hasFrac && !allDigits(frac) {
		return s
	}
	exp := new(big.Int)
	if hasExp {
		digits := strings.TrimLeft(expText, "+-")
		if len(expText)-len(digits) > 1 || !allDigits(digits) {
			return s
		}
		exp.SetString(expText, 10)
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return "0"
	}
	sig := strings.TrimRight(digits, "0")
	exp.Add(exp, big.NewInt(int64(len(digits)-len(sig)-len(frac))))
	sign := ""
	if neg {
		sign = "-"
	}
	return sign + sig + "e" + exp.String()
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// rawOf returns the raw JSON of a declared metadata object, or nil when it is not declared.
func rawOf(j *apiextensionsv1.JSON) *[]byte {
	if j == nil {
		return nil
	}
	return &j.Raw
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
