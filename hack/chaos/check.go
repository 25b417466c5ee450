package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

// Metadata kinds, as the keys of Expect maps and the prefixes of Clerk's field names.
const (
	kindPublic  = "public"
	kindPrivate = "private"
	kindUnsafe  = "unsafe"
)

var metaKinds = []string{kindPublic, kindPrivate, kindUnsafe}

// Spec fields and events, as Expect.Changed and the findings name them.
const (
	fieldFirstName  = "firstName"
	fieldLastName   = "lastName"
	fieldBanned     = "banned"
	fieldLocked     = "locked"
	fieldResetToken = "mfa.resetToken"
	fieldCreate     = "create"
	fieldDelete     = "delete"
)

// conditionReady is the condition that says whether a ClerkUser is in sync.
const conditionReady = "Ready"

// Checks, as Finding.Check names them.
const (
	checkReady     = "ready"     // not Ready=True/Synced for the latest generation, or a deletion not finished
	checkDuplicate = "duplicate" // more than one Clerk user for an identifier, or one user for two objects
	checkOrphan    = "orphan"    // a user kubeclerk created that no object holds (Orphan/Ban deletions aside)
	checkLost      = "lost"      // a spec change of this phase (or a deletion) that Clerk does not show
	checkWrong     = "wrong"     // any other value that differs from the spec, or a key the application lost
	checkMFA       = "mfa"       // an MFA reset not applied exactly once
	checkRate      = "rate"      // requests above the budget
	checkHotLoop   = "hotloop"   // too many calls per object during the outage
	checkBound     = "bound"     // convergence after faults cleared took longer than the bound
	checkLeaders   = "leaders"   // two replicas called Clerk at the same time
)

// Finding is one failed invariant.
type Finding struct {
	Check  string `json:"check"`
	Object string `json:"object,omitempty"`
	UserID string `json:"userID,omitempty"`
	Detail string `json:"detail"`
}

func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(f.Check)
	if f.Object != "" {
		b.WriteString(" " + f.Object)
	}
	if f.UserID != "" {
		b.WriteString(" (" + f.UserID + ")")
	}
	b.WriteString(": " + f.Detail)
	return b.String()
}

// Expect is what the harness knows beyond what the objects' specs say: which users the fake
// started with, the keys that other writers own, the keys and objects it removed, and what each
// MFA reset must have done. Together with the objects (Kubernetes API) and the users (the fake),
// it is all the checks read.
type Expect struct {
	// Seeded holds the IDs of the users the fake was seeded with: every other user was created
	// by kubeclerk.
	Seeded map[string]bool `json:"-"`
	// Kept maps a user ID to metadata keys that no object declares and that must survive with
	// these values: the simulated application's keys and keys the user was seeded with.
	Kept map[string]map[string]map[string]any `json:"-"`
	// Removed maps an object name to the metadata keys (by kind) removed from its spec with
	// metadataPolicy Merge: Clerk must not hold them unless the spec declares them again.
	Removed map[string]map[string][]string `json:"-"`
	// Deleted are the objects deleted so far.
	Deleted []DeletedObject `json:"-"`
	// MFA maps an object name to what its user's second factors must look like.
	MFA map[string]MFAExpect `json:"-"`
	// Changed maps an object name to the fields changed in this phase ("firstName",
	// "publicMetadata.role", "banned", "create", …): a mismatch there is a lost change.
	Changed map[string][]string `json:"-"`
}

// DeletedObject is a ClerkUser the harness deleted.
type DeletedObject struct {
	Name   string                       `json:"name"`
	UserID string                       `json:"userID"`
	Policy clerkv1alpha1.DeletionPolicy `json:"policy"`
	Phase  string                       `json:"phase"`
	// Identifiers are the object's externalID, emailAddress and username (those set).
	Identifiers []string `json:"identifiers,omitempty"`
	// Readopted names the object that adopted the user again (Orphan deletions only).
	Readopted string `json:"readopted,omitempty"`
}

// MFAExpect is what an object's user must show of its second factors at the end of a phase.
type MFAExpect struct {
	// HadMFA: the user had a second factor when the phase began (seeded with one, or enrolled
	// again by the user after the last reset).
	HadMFA bool `json:"hadMFA"`
	// TokenChanged: spec.mfa.resetToken got a new value in this phase.
	TokenChanged bool `json:"tokenChanged"`
}

// Snapshot is the state the checks read: every user of the fake and every ClerkUser.
type Snapshot struct {
	Users   []*FakeUser
	Objects []clerkv1alpha1.ClerkUser
}

// CheckState runs the state invariants: readiness, Clerk values against the specs, the
// application's keys, duplicates, orphans, deletions and MFA resets. removals counts, per user
// ID, the DELETE /v1/users/{id}/mfa calls of this phase that Clerk applied.
func CheckState(s Snapshot, exp *Expect, removals map[string]int) []Finding {
	var out []Finding
	out = append(out, CheckReady(s.Objects)...)
	users := map[string]*FakeUser{}
	for _, u := range s.Users {
		users[u.ID] = u
	}
	for i := range s.Objects {
		o := &s.Objects[i]
		if !o.DeletionTimestamp.IsZero() {
			continue // reported by CheckReady
		}
		out = append(out, checkObject(o, users, exp, removals)...)
	}
	out = append(out, CheckDuplicates(s.Users, s.Objects, exp.Deleted)...)
	out = append(out, CheckOrphans(s.Users, s.Objects, exp)...)
	out = append(out, CheckDeleted(users, s.Objects, exp)...)
	return out
}

// converged reports whether cu is Ready=True with reason Synced for its current generation.
func converged(cu *clerkv1alpha1.ClerkUser) bool {
	if cu.Status.ObservedGeneration != cu.Generation || !cu.DeletionTimestamp.IsZero() {
		return false
	}
	for _, c := range cu.Status.Conditions {
		if c.Type == conditionReady {
			return c.Status == metav1.ConditionTrue && c.Reason == "Synced" && c.ObservedGeneration == cu.Generation
		}
	}
	return false
}

// CheckReady reports every object that is not Ready for its latest generation, or whose
// deletion has not finished.
func CheckReady(objs []clerkv1alpha1.ClerkUser) []Finding {
	var out []Finding
	for i := range objs {
		o := &objs[i]
		if converged(o) {
			continue
		}
		detail := fmt.Sprintf("generation %d, status.observedGeneration %d", o.Generation, o.Status.ObservedGeneration)
		if !o.DeletionTimestamp.IsZero() {
			detail = "deletion not finished (finalizers " + strings.Join(o.Finalizers, ",") + ")"
		}
		for _, c := range o.Status.Conditions {
			if c.Type == conditionReady {
				detail += fmt.Sprintf("; Ready=%s reason %s (observedGeneration %d): %s", c.Status, c.Reason, c.ObservedGeneration, c.Message)
			}
		}
		out = append(out, Finding{Check: checkReady, Object: o.Name, UserID: o.Status.UserID, Detail: detail})
	}
	return out
}

// mismatch is one value in Clerk that differs from what it must be.
type mismatch struct {
	field     string
	want, got string
}

// checkObject compares the user an object is bound to with its spec and with Expect.
func checkObject(o *clerkv1alpha1.ClerkUser, users map[string]*FakeUser, exp *Expect, removals map[string]int) []Finding {
	id := o.Status.UserID
	if id == "" {
		id = o.Spec.UserID
	}
	u := users[id]
	if u == nil {
		return []Finding{{Check: classify(o.Name, fieldCreate, exp), Object: o.Name, UserID: id,
			Detail: "status.userID names no Clerk user"}}
	}
	var out []Finding
	for _, m := range compareUser(o, u, exp) {
		out = append(out, Finding{Check: classify(o.Name, m.field, exp), Object: o.Name, UserID: u.ID,
			Detail: fmt.Sprintf("%s: spec wants %s, Clerk holds %s", m.field, m.want, m.got)})
	}
	out = append(out, checkMFAReset(o, u, exp.MFA[o.Name], removals[u.ID])...)
	return out
}

// classify says whether a mismatch of field is a lost change (the field changed in this phase)
// or a wrong value.
func classify(object, field string, exp *Expect) string {
	for _, c := range exp.Changed[object] {
		if c == field || strings.HasPrefix(field, c+".") || strings.HasPrefix(c, field+".") {
			return checkLost
		}
	}
	return checkWrong
}

// compareUser lists the differences between a user and the object's spec: identifiers,
// profile, flags, metadata (declared keys, removed keys, keys others own) and mfa.disabled.
func compareUser(o *clerkv1alpha1.ClerkUser, u *FakeUser, exp *Expect) []mismatch {
	s := &o.Spec
	var out []mismatch
	add := func(field, want, got string) { out = append(out, mismatch{field, want, got}) }
	if s.UserID != "" && u.ID != s.UserID {
		add("userID", s.UserID, u.ID)
	}
	if s.ExternalID != "" && deref(u.ExternalID) != s.ExternalID {
		add("externalID", quote(s.ExternalID), quoteP(u.ExternalID))
	}
	if s.Username != "" && !strings.EqualFold(deref(u.Username), s.Username) {
		add("username", quote(s.Username), quoteP(u.Username))
	}
	if s.EmailAddress != "" && !u.HasEmail(s.EmailAddress) {
		add("emailAddress", quote(s.EmailAddress), fmt.Sprint(u.EmailAddresses))
	}
	if s.FirstName != nil && *s.FirstName != deref(u.FirstName) {
		add(fieldFirstName, quote(*s.FirstName), quoteP(u.FirstName))
	}
	if s.LastName != nil && *s.LastName != deref(u.LastName) {
		add(fieldLastName, quote(*s.LastName), quoteP(u.LastName))
	}
	if s.Banned != nil && *s.Banned != u.Banned {
		add(fieldBanned, fmt.Sprint(*s.Banned), fmt.Sprint(u.Banned))
	}
	if s.Locked != nil && *s.Locked != u.Locked {
		add(fieldLocked, fmt.Sprint(*s.Locked), fmt.Sprint(u.Locked))
	}
	if s.MFA != nil && s.MFA.Disabled && u.HasMFA() {
		add("mfa.disabled", "no second factor", "two_factor_enabled")
	}
	out = append(out, compareMetadata(o, u, exp)...)
	return out
}

// compareMetadata checks the three metadata objects. Merge: every declared key holds exactly
// the declared value, removed keys are gone. Replace: a declared object is exactly the spec's.
// Either way the keys others own (Expect.Kept) hold their values, except in an object that
// Replace declares (which it replaces as a whole).
func compareMetadata(o *clerkv1alpha1.ClerkUser, u *FakeUser, exp *Expect) []mismatch {
	var out []mismatch
	replace := o.Spec.MetadataPolicy == clerkv1alpha1.MetadataPolicyReplace
	for _, kind := range metaKinds {
		declared, isSet := SpecMetadata(&o.Spec, kind)
		have := u.Metadata(kind)
		field := kind + "Metadata"
		switch {
		case replace && isSet:
			if !jsonEqual(declared, have) {
				out = append(out, mismatch{field, jsonString(declared), jsonString(have)})
			}
		default:
			for _, k := range slices.Sorted(maps.Keys(declared)) {
				if v, ok := have[k]; !ok || !jsonEqual(declared[k], v) {
					out = append(out, mismatch{field + "." + k, jsonString(declared[k]), jsonOrAbsent(v, ok)})
				}
			}
			if !replace {
				for _, k := range exp.Removed[o.Name][kind] {
					if _, redeclared := declared[k]; redeclared {
						continue
					}
					if v, ok := have[k]; ok {
						out = append(out, mismatch{field + "." + k, "absent (removed from the spec)", jsonString(v)})
					}
				}
			}
		}
		if replace && isSet {
			continue
		}
		kept := exp.Kept[u.ID][kind]
		for _, k := range slices.Sorted(maps.Keys(kept)) {
			if _, mine := declared[k]; mine {
				continue
			}
			if v, ok := have[k]; !ok || !jsonEqual(kept[k], v) {
				out = append(out, mismatch{"kept:" + field + "." + k, jsonString(kept[k]) + " (written by the application)", jsonOrAbsent(v, ok)})
			}
		}
	}
	return out
}

// checkMFAReset checks spec.mfa.resetToken: recorded in status, and applied exactly once. A
// user that had a second factor when the token changed loses it with exactly one DELETE
// /v1/users/{id}/mfa; a user whose token did not change keeps the factor it enrolled since the
// last reset, and gets no such call; a user without a factor gets none either.
func checkMFAReset(o *clerkv1alpha1.ClerkUser, u *FakeUser, e MFAExpect, removals int) []Finding {
	var out []Finding
	bad := func(format string, args ...any) {
		out = append(out, Finding{Check: checkMFA, Object: o.Name, UserID: u.ID, Detail: fmt.Sprintf(format, args...)})
	}
	if o.Spec.MFA == nil || o.Spec.MFA.Disabled {
		if o.Spec.MFA == nil && e.HadMFA && !u.HasMFA() {
			bad("no spec.mfa, yet the user's second factor was removed (%d DELETE …/mfa calls in this phase)", removals)
		}
		return out
	}
	token := o.Spec.MFA.ResetToken
	if token == "" {
		return out
	}
	if o.Status.LastMFAResetToken != token {
		bad("status.lastMFAResetToken %q, spec.mfa.resetToken %q", o.Status.LastMFAResetToken, token)
	}
	want := 0
	if e.HadMFA && e.TokenChanged {
		want = 1
	}
	if removals != want {
		bad("reset token %q (changed in this phase: %t, user had a second factor: %t): %d DELETE …/mfa calls applied, want %d",
			token, e.TokenChanged, e.HadMFA, removals, want)
	}
	switch wantMFA := e.HadMFA && !e.TokenChanged; {
	case wantMFA && !u.HasMFA():
		bad("the user's second factor, enrolled after reset token %q was applied, was removed again", token)
	case !wantMFA && u.HasMFA():
		bad("reset token %q recorded, but the user still has a second factor", token)
	}
	return out
}

// identifiersOf returns the identifiers an object declares, as "kind:value" (lower-cased
// where Clerk compares without case).
func identifiersOf(s *clerkv1alpha1.ClerkUserSpec) []string {
	var ids []string
	if s.ExternalID != "" {
		ids = append(ids, "externalID:"+s.ExternalID)
	}
	if s.EmailAddress != "" {
		ids = append(ids, "email:"+strings.ToLower(s.EmailAddress))
	}
	if s.Username != "" {
		ids = append(ids, "username:"+strings.ToLower(s.Username))
	}
	return ids
}

// identifiersOfUser returns every identifier a user holds, in identifiersOf's form.
func identifiersOfUser(u *FakeUser) []string {
	var ids []string
	if deref(u.ExternalID) != "" {
		ids = append(ids, "externalID:"+*u.ExternalID)
	}
	for _, e := range u.EmailAddresses {
		ids = append(ids, "email:"+strings.ToLower(e.EmailAddress))
	}
	if deref(u.Username) != "" {
		ids = append(ids, "username:"+strings.ToLower(*u.Username))
	}
	return ids
}

// CheckDuplicates reports an identifier declared by an object (live, or deleted while keeping
// its user) that more than one Clerk user holds, and two live objects bound to one user.
func CheckDuplicates(users []*FakeUser, objs []clerkv1alpha1.ClerkUser, deleted []DeletedObject) []Finding {
	holders := map[string][]string{}
	for _, u := range users {
		for _, id := range identifiersOfUser(u) {
			holders[id] = append(holders[id], u.ID)
		}
	}
	declared := map[string]string{} // identifier → first object declaring it
	for i := range objs {
		for _, id := range identifiersOf(&objs[i].Spec) {
			if _, ok := declared[id]; !ok {
				declared[id] = objs[i].Name
			}
		}
	}
	for _, d := range deleted {
		if d.Policy == clerkv1alpha1.DeletionPolicyDelete {
			continue
		}
		for _, id := range d.Identifiers {
			if _, ok := declared[id]; !ok {
				declared[id] = d.Name
			}
		}
	}
	var out []Finding
	for _, id := range slices.Sorted(maps.Keys(declared)) {
		if h := holders[id]; len(h) > 1 {
			out = append(out, Finding{Check: checkDuplicate, Object: declared[id],
				Detail: fmt.Sprintf("%d Clerk users hold %s: %s", len(h), id, strings.Join(h, ", "))})
		}
	}
	bound := map[string]string{}
	for i := range objs {
		o := &objs[i]
		if o.Status.UserID == "" {
			continue
		}
		if other, ok := bound[o.Status.UserID]; ok {
			out = append(out, Finding{Check: checkDuplicate, Object: o.Name, UserID: o.Status.UserID,
				Detail: "bound to the same Clerk user as " + other})
			continue
		}
		bound[o.Status.UserID] = o.Name
	}
	return out
}

// CheckOrphans reports every user kubeclerk created (not seeded) that no live object is bound
// to, except the users of objects deleted with deletionPolicy Orphan or Ban.
func CheckOrphans(users []*FakeUser, objs []clerkv1alpha1.ClerkUser, exp *Expect) []Finding {
	held := map[string]bool{}
	for i := range objs {
		held[objs[i].Status.UserID] = true
		held[objs[i].Spec.UserID] = true
	}
	for _, d := range exp.Deleted {
		if d.Policy != clerkv1alpha1.DeletionPolicyDelete {
			held[d.UserID] = true
		}
	}
	var out []Finding
	for _, u := range users {
		if exp.Seeded[u.ID] || held[u.ID] {
			continue
		}
		out = append(out, Finding{Check: checkOrphan, UserID: u.ID,
			Detail: fmt.Sprintf("created by kubeclerk, held by no object; identifiers %v", identifiersOfUser(u))})
	}
	return out
}

// CheckDeleted checks what the deletion policies did: Ban leaves a banned user, Delete no user,
// Orphan the user; and every deleted object is gone from the API.
func CheckDeleted(users map[string]*FakeUser, objs []clerkv1alpha1.ClerkUser, exp *Expect) []Finding {
	live := map[string]bool{}
	for i := range objs {
		live[objs[i].Name] = true
	}
	var out []Finding
	for _, d := range exp.Deleted {
		if live[d.Name] {
			continue // CheckReady reports a deletion that has not finished
		}
		u := users[d.UserID]
		lost := func(detail string) {
			out = append(out, Finding{Check: checkLost, Object: d.Name, UserID: d.UserID,
				Detail: fmt.Sprintf("deleted in phase %s with deletionPolicy %s: %s", d.Phase, d.Policy, detail)})
		}
		switch d.Policy {
		case clerkv1alpha1.DeletionPolicyDelete:
			if u != nil {
				lost("the Clerk user still exists")
			}
		case clerkv1alpha1.DeletionPolicyBan:
			switch {
			case u == nil:
				lost("the Clerk user is gone")
			case !u.Banned:
				lost("the Clerk user is not banned")
			}
		default:
			if u == nil {
				lost("the Clerk user is gone")
			}
		}
	}
	return out
}

// SpecMetadata decodes the spec's metadata object of kind; isSet is false when the spec does
// not declare it. Numbers stay json.Number.
func SpecMetadata(s *clerkv1alpha1.ClerkUserSpec, kind string) (m map[string]any, isSet bool) {
	var j *apiextensionsv1.JSON
	switch kind {
	case kindPublic:
		j = s.PublicMetadata
	case kindPrivate:
		j = s.PrivateMetadata
	case kindUnsafe:
		j = s.UnsafeMetadata
	}
	if j == nil || len(j.Raw) == 0 {
		return map[string]any{}, false
	}
	dec := json.NewDecoder(bytes.NewReader(j.Raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return map[string]any{}, true
	}
	return m, true
}

// SetSpecMetadata sets the spec's metadata object of kind; nil removes it.
func SetSpecMetadata(s *clerkv1alpha1.ClerkUserSpec, kind string, m map[string]any) {
	var j *apiextensionsv1.JSON
	if m != nil {
		b, err := json.Marshal(m)
		if err != nil {
			panic(err) // only plain JSON values are built
		}
		j = &apiextensionsv1.JSON{Raw: b}
	}
	switch kind {
	case kindPublic:
		s.PublicMetadata = j
	case kindPrivate:
		s.PrivateMetadata = j
	case kindUnsafe:
		s.UnsafeMetadata = j
	}
}

// jsonEqual compares two JSON values exactly: maps by key, numbers by their text.
func jsonEqual(a, b any) bool { return jsonString(a) == jsonString(b) }

// jsonString is the canonical JSON text of v (sorted keys; json.Number as sent).
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

func jsonOrAbsent(v any, ok bool) string {
	if !ok {
		return "nothing"
	}
	return jsonString(v)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func quoteP(s *string) string {
	if s == nil {
		return "null"
	}
	return quote(*s)
}
