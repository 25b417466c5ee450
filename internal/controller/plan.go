package controller

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
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

	s, token, ok := planMFA(spec.MFA, status.LastMFAResetToken, observed)
	p.MFAResetToken = token
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

// planMFA returns the DisableMFA step and the reset token to record. A new resetToken on a user
// with no second factor is recorded without a call: there is nothing to remove.
func planMFA(mfa *clerkv1alpha1.MFASpec, lastToken string, observed *clerk.User) (Step, string, bool) {
	if mfa == nil {
		return Step{}, "", false
	}
	hasMFA := observed.TwoFactorEnabled || observed.TOTPEnabled || observed.BackupCodeEnabled
	s := Step{Kind: StepDisableMFA}
	if mfa.Disabled && hasMFA {
		s.Changes = append(s.Changes, "disableMFA")
	}
	token := ""
	if mfa.ResetToken != "" && mfa.ResetToken != lastToken {
		token = mfa.ResetToken
		if hasMFA {
			s.Changes = append(s.Changes, "resetMFA")
		}
	}
	return s, token, len(s.Changes) > 0
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
			var err error
			if after, err = applyMergePatch(f.clerk, patch); err != nil {
				return Step{}, nil, false, &InvalidSpecError{Field: "spec." + f.name, Reason: err.Error()}
			}
			if len(keys) > 0 {
				if owned == nil {
					owned = &clerkv1alpha1.OwnedMetadataKeys{}
				}
				f.setOwned(owned, keys)
			}
		}
		b, _ := json.Marshal(nonNil(after))
		total += len(b)
	}
	// The limit guards what this plan would write: metadata it leaves alone is Clerk's to judge.
	if len(s.Changes) > 0 && total > MaxMetadataBytes {
		field := strings.Join(declared, ", ")
		if field == "" {
			field = "spec.publicMetadata, spec.privateMetadata, spec.unsafeMetadata"
		}
		return Step{}, nil, false, &InvalidSpecError{Field: field,
			Reason: fmt.Sprintf("the user's metadata would take %d bytes, over Clerk's limit of %d; declare smaller objects", total, MaxMetadataBytes)}
	}
	return s, owned, len(s.Changes) > 0, nil
}

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

// exactPatch returns the merge-patch value that turns have into want under Clerk's deep merge:
// nested keys of have that want lacks are sent as null.
func exactPatch(have, want any) any {
	hm, hok := have.(map[string]any)
	wm, wok := want.(map[string]any)
	if !hok || !wok {
		return want
	}
	hb, _ := json.Marshal(hm)
	wb, _ := json.Marshal(wm)
	pb, err := jsonpatch.CreateMergePatch(hb, wb)
	if err != nil {
		return want
	}
	var out any
	if json.Unmarshal(pb, &out) != nil {
		return want
	}
	return out
}

// applyMergePatch is Clerk's deep merge of patch into obj (RFC 7386), used to predict the result.
func applyMergePatch(obj, patch map[string]any) (map[string]any, error) {
	if len(patch) == 0 {
		return obj, nil
	}
	ob, _ := json.Marshal(nonNil(obj))
	pb, _ := json.Marshal(patch)
	out, err := jsonpatch.MergePatch(ob, pb)
	if err != nil {
		return nil, fmt.Errorf("merge metadata: %w", err)
	}
	return decodeObject(out)
}

// decodeObject decodes a JSON object; anything else is an error naming what was found.
func decodeObject(raw []byte) (map[string]any, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	switch m := v.(type) {
	case map[string]any:
		return m, nil
	case nil:
		return map[string]any{}, nil
	default:
		return nil, fmt.Errorf("must be a JSON object, not %T", v)
	}
}

// jsonEqual compares two decoded JSON values.
func jsonEqual(a, b any) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}

// normalize makes decoded JSON comparable: numbers as float64, nil maps as empty.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	if out == nil {
		if _, isMap := v.(map[string]any); isMap {
			return map[string]any{}
		}
	}
	return out
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
