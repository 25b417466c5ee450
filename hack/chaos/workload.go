package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

const (
	chaosNamespace   = "chaos"
	managerNamespace = "kubeclerk-system"
)

// identity says how an object finds its Clerk user.
type identity int

const (
	byUserID      identity = iota // spec.userID of a seeded user
	adoptExternal                 // Adopt by externalID of a seeded user
	adoptEmail                    // AdoptOrCreate by emailAddress of a seeded user: adopts
	create                        // AdoptOrCreate with no matching user: creates
)

// mfaRole says what an object and its user do with second factors.
type mfaRole int

const (
	mfaNone          mfaRole = iota // no spec.mfa, no factor
	mfaKeep                         // no spec.mfa; the user has a factor, which must stay
	mfaDisabled                     // spec.mfa.disabled; the user starts with a factor
	mfaReset                        // spec.mfa.resetToken; the user enrolls again after each reset
	mfaResetNoFactor                // spec.mfa.resetToken on a user without a factor: recorded, no call
)

// object is one ClerkUser of the workload, as the harness last wrote it.
type object struct {
	name     string
	index    int
	identity identity
	mfa      mfaRole
	spec     clerkv1alpha1.ClerkUserSpec
	// generation is the metadata.generation of the harness's last write.
	generation int64
	// userID is the Clerk user the object was bound to at the last check.
	userID string
	phase  string // the phase that created it
}

// workload generates the ClerkUsers and their changes, and keeps Expect up to date.
type workload struct {
	r       *rand.Rand
	next    int
	objs    map[string]*object // live objects by name
	seed    []map[string]any
	exp     *Expect
	tokens  int
	orphans []int // indexes into exp.Deleted of Orphan deletions not adopted again
}

func newWorkload(seed uint64) *workload {
	return &workload{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), //nolint:gosec // a reproducible workload
		objs: map[string]*object{}, exp: &Expect{Seeded: map[string]bool{},
			Kept: map[string]map[string]map[string]any{}, Removed: map[string]map[string][]string{},
			MFA: map[string]MFAExpect{}, Changed: map[string][]string{}}}
}

// sorted returns the live objects in name order.
func (w *workload) sorted() []*object {
	out := make([]*object, 0, len(w.objs))
	for _, name := range slices.Sorted(maps.Keys(w.objs)) {
		out = append(out, w.objs[name])
	}
	return out
}

func (w *workload) pick(options ...string) string { return options[w.r.IntN(len(options))] }

func (w *workload) chance(p float64) bool { return w.r.Float64() < p }

// Metadata keys a spec may declare.
const (
	keyRole  = "role"
	keyTier  = "tier"
	keyTeams = "teams"
	keyPrefs = "prefs"
	keyCRM   = "crm"
	keyBig   = "big"
	keyTheme = "theme"
	keyRatio = "ratio"
)

// keyPool holds the keys a spec may declare, by kind.
var keyPool = map[string][]string{
	kindPublic:  {keyRole, keyTier, keyTeams, keyPrefs},
	kindPrivate: {keyCRM, keyBig},
	kindUnsafe:  {keyTheme, keyRatio},
}

// value returns a random value for a metadata key: strings, integers (some beyond 2^53),
// decimals, arrays and nested objects.
func (w *workload) value(key string) any {
	switch key {
	case keyRole:
		return w.pick("admin", "member", "viewer", "billing", "support")
	case keyTier:
		return json.Number(strconv.Itoa(1 + w.r.IntN(9)))
	case keyTeams:
		n := 1 + w.r.IntN(3)
		out := make([]any, n)
		for i := range out {
			out[i] = w.pick("red", "blue", "green", "ops", "sales")
		}
		return out
	case keyPrefs:
		m := map[string]any{"lang": w.pick("en", "de", "fr"), "tz": w.pick("UTC", "CET", "PST")}
		if w.chance(0.5) {
			m["beta"] = true
		}
		return m
	case keyCRM:
		return fmt.Sprintf("C-%d", w.r.IntN(100000))
	case keyBig:
		return json.Number(fmt.Sprintf("9007199254740%03d", w.r.IntN(1000)))
	case keyTheme:
		return w.pick("dark", "light", "auto")
	default: // ratio
		return json.Number(w.pick("0.1", "1.25", "3.14159", "2.5"))
	}
}

// newValue returns a value for key that differs from old.
func (w *workload) newValue(key string, old any) any {
	for range 20 {
		if v := w.value(key); !jsonEqual(v, old) {
			return v
		}
	}
	return fmt.Sprintf("changed-%d", w.r.IntN(1<<30))
}

func seedUserID(i int) string { return fmt.Sprintf("user_chaos%05d", i) }

// initial generates n objects and the users the fake starts with.
func (w *workload) initial(n int) {
	for range n {
		w.newObject(phaseInitial, true)
	}
}

// newObject generates the next object; seeded allows objects whose user the fake is seeded with.
func (w *workload) newObject(phase string, seeded bool) *object {
	i := w.next
	w.next++
	o := &object{name: fmt.Sprintf("cu-%05d", i), index: i, phase: phase, identity: create}
	if seeded {
		switch p := w.r.Float64(); {
		case p < 0.3:
			o.identity = byUserID
		case p < 0.4:
			o.identity = adoptExternal
		case p < 0.5:
			o.identity = adoptEmail
		}
	}
	s := &o.spec
	s.ManagementPolicy = clerkv1alpha1.ManagementPolicyManage
	s.MetadataPolicy = clerkv1alpha1.MetadataPolicyMerge
	if w.chance(0.2) {
		s.MetadataPolicy = clerkv1alpha1.MetadataPolicyReplace
	}
	s.DeletionPolicy = clerkv1alpha1.DeletionPolicyOrphan
	switch p := w.r.Float64(); {
	case p < 0.3:
		s.DeletionPolicy = clerkv1alpha1.DeletionPolicyBan
	case p < 0.6:
		s.DeletionPolicy = clerkv1alpha1.DeletionPolicyDelete
	}
	s.CreationPolicy = clerkv1alpha1.CreationPolicyAdoptOrCreate
	switch o.identity {
	case byUserID:
		s.CreationPolicy = clerkv1alpha1.CreationPolicyAdopt
		s.UserID = seedUserID(i)
	case adoptExternal:
		s.CreationPolicy = clerkv1alpha1.CreationPolicyAdopt
		s.ExternalID = fmt.Sprintf("seed-ext-%05d", i)
	case adoptEmail:
		s.EmailAddress = fmt.Sprintf("seed-%05d@chaos.example.com", i)
	default:
		// Clerk needs an email address, phone number, web3 wallet or username to create a user.
		switch w.r.IntN(5) {
		case 0:
			s.EmailAddress, s.Username = fmt.Sprintf("u%05d@chaos.example.com", i), fmt.Sprintf("chaosuser%05d", i)
		case 1:
			s.EmailAddress = fmt.Sprintf("u%05d@chaos.example.com", i)
		case 2:
			s.Username = fmt.Sprintf("chaosuser%05d", i)
		case 3:
			s.ExternalID, s.EmailAddress = fmt.Sprintf("ext-%05d", i), fmt.Sprintf("u%05d@chaos.example.com", i)
		default:
			s.ExternalID, s.Username = fmt.Sprintf("ext-%05d", i), fmt.Sprintf("chaosuser%05d", i)
		}
	}
	w.initialProfile(s, i)
	w.initialMetadata(s)
	if o.identity != create {
		switch p := w.r.Float64(); {
		case p < 0.3:
			o.mfa = mfaReset
		case p < 0.45:
			o.mfa = mfaDisabled
		case p < 0.6:
			o.mfa = mfaKeep
		}
	} else if w.chance(0.1) {
		o.mfa = mfaResetNoFactor
	}
	switch o.mfa {
	case mfaReset, mfaResetNoFactor:
		s.MFA = &clerkv1alpha1.MFASpec{ResetToken: w.token(phase)}
	case mfaDisabled:
		s.MFA = &clerkv1alpha1.MFASpec{Disabled: true}
	}
	if o.identity != create {
		w.seedFor(o)
	}
	w.exp.MFA[o.name] = MFAExpect{HadMFA: o.identity != create && o.mfa != mfaNone && o.mfa != mfaResetNoFactor,
		TokenChanged: s.MFA != nil && s.MFA.ResetToken != ""}
	w.exp.Changed[o.name] = []string{fieldCreate}
	w.objs[o.name] = o
	return o
}

// initialProfile declares names (one in twenty cleared) and the flags, each unset for some.
func (w *workload) initialProfile(s *clerkv1alpha1.ClerkUserSpec, i int) {
	if w.chance(0.85) {
		s.FirstName = new(fmt.Sprintf("First%05d", i))
		if w.chance(0.05) {
			s.FirstName = new("")
		}
	}
	if w.chance(0.7) {
		s.LastName = new(fmt.Sprintf("Last%05d", i))
	}
	if p := w.r.Float64(); p >= 0.5 {
		s.Banned = new(p >= 0.8)
	}
	if p := w.r.Float64(); p >= 0.6 {
		s.Locked = new(p >= 0.85)
	}
}

func (w *workload) token(phase string) string {
	w.tokens++
	return fmt.Sprintf("T-%s-%d", phase, w.tokens)
}

// initialMetadata declares metadata: Merge owns some keys of each object, Replace declares
// public and unsafe metadata whole (private is left to the application).
func (w *workload) initialMetadata(s *clerkv1alpha1.ClerkUserSpec) {
	if s.MetadataPolicy == clerkv1alpha1.MetadataPolicyReplace {
		SetSpecMetadata(s, kindPublic, map[string]any{keyRole: w.value(keyRole), keyTier: w.value(keyTier)})
		SetSpecMetadata(s, kindUnsafe, map[string]any{keyTheme: w.value(keyTheme)})
		return
	}
	pub := map[string]any{}
	for _, k := range keyPool[kindPublic] {
		if w.chance(0.5) {
			pub[k] = w.value(k)
		}
	}
	if len(pub) == 0 {
		pub[keyRole] = w.value(keyRole)
	}
	SetSpecMetadata(s, kindPublic, pub)
	if w.chance(0.5) {
		m := map[string]any{keyCRM: w.value(keyCRM)}
		if w.chance(0.5) {
			m[keyBig] = w.value(keyBig)
		}
		SetSpecMetadata(s, kindPrivate, m)
	}
	if w.chance(0.3) {
		SetSpecMetadata(s, kindUnsafe, map[string]any{w.pick(keyPool[kindUnsafe]...): w.value(keyRatio)})
	}
}

// seedFor adds the seeded user of o: a profile, flags and metadata that differ from the spec,
// keys of its own that must survive (seed_*), and a TOTP factor for the MFA roles that need one.
func (w *workload) seedFor(o *object) {
	i := o.index
	id := seedUserID(i)
	u := map[string]any{
		"id":              id,
		"external_id":     fmt.Sprintf("seed-ext-%05d", i),
		"first_name":      "Seed",
		"last_name":       fmt.Sprintf("User %d", i),
		"email_addresses": []map[string]any{{"email_address": fmt.Sprintf("seed-%05d@chaos.example.com", i)}},
		fieldBanned:       w.chance(0.25),
		fieldLocked:       w.chance(0.2),
		"public_metadata": map[string]any{keyRole: "legacy", "seed_keep": fmt.Sprintf("s-%d", i)},
		"private_metadata": map[string]any{"seed_note": json.Number(strconv.Itoa(i)),
			keyCRM: "C-old"},
		"unsafe_metadata": map[string]any{},
	}
	if o.mfa == mfaReset || o.mfa == mfaDisabled || o.mfa == mfaKeep {
		u["totp_secret"] = totpSecret
	}
	w.seed = append(w.seed, u)
	w.exp.Seeded[id] = true
	kept := map[string]map[string]any{kindPrivate: {"seed_note": json.Number(strconv.Itoa(i))}}
	if o.spec.MetadataPolicy != clerkv1alpha1.MetadataPolicyReplace {
		kept[kindPublic] = map[string]any{"seed_keep": fmt.Sprintf("s-%d", i)}
	}
	w.exp.Kept[id] = kept
}

// rollout is the set of changes of one phase.
type rollout struct {
	changed []*object // spec changed
	created []*object
	deleted []*object
}

// newRollout changes a third of the live objects, deletes perPolicy objects of each deletion
// policy and creates as many, one of them adopting the user of an earlier Orphan deletion. It
// resets Changed and the MFA expectations from before (the users as the last check saw them).
func (w *workload) newRollout(phase string, perPolicy int, before map[string]*FakeUser) rollout {
	var ro rollout
	w.exp.Changed = map[string][]string{}
	live := w.sorted()
	for _, o := range live {
		w.exp.MFA[o.name] = MFAExpect{HadMFA: before[o.userID] != nil && before[o.userID].HasMFA()}
	}
	w.r.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	taken := map[string]bool{}
	for _, policy := range []clerkv1alpha1.DeletionPolicy{clerkv1alpha1.DeletionPolicyOrphan,
		clerkv1alpha1.DeletionPolicyBan, clerkv1alpha1.DeletionPolicyDelete} {
		n := 0
		for _, o := range live {
			if n == perPolicy {
				break
			}
			if o.spec.DeletionPolicy == policy && o.userID != "" && !taken[o.name] {
				taken[o.name] = true
				ro.deleted = append(ro.deleted, o)
				n++
			}
		}
	}
	for _, o := range ro.deleted {
		w.deleteObject(o, phase, before[o.userID])
	}
	for _, o := range live {
		if len(ro.changed) >= len(w.objs)/3 {
			break
		}
		if !taken[o.name] {
			w.mutate(o, phase)
			ro.changed = append(ro.changed, o)
		}
	}
	for range len(ro.deleted) {
		ro.created = append(ro.created, w.createLater(phase, before))
	}
	return ro
}

// deleteObject records the deletion of o.
func (w *workload) deleteObject(o *object, phase string, u *FakeUser) {
	d := DeletedObject{Name: o.name, UserID: o.userID, Policy: o.spec.DeletionPolicy, Phase: phase,
		Identifiers: identifiersOf(&o.spec)}
	if u != nil {
		d.Identifiers = identifiersOfUser(u)
	}
	w.exp.Deleted = append(w.exp.Deleted, d)
	if d.Policy == clerkv1alpha1.DeletionPolicyOrphan {
		w.orphans = append(w.orphans, len(w.exp.Deleted)-1)
	}
	if d.Policy == clerkv1alpha1.DeletionPolicyDelete {
		delete(w.exp.Kept, o.userID)
	}
	delete(w.objs, o.name)
	delete(w.exp.MFA, o.name)
	delete(w.exp.Removed, o.name)
	w.exp.Changed[o.name] = []string{fieldDelete}
}

// createLater makes a new object in a later phase: it adopts the user of an earlier Orphan
// deletion when there is one (by that user's externalID), else it creates a user.
func (w *workload) createLater(phase string, before map[string]*FakeUser) *object {
	for len(w.orphans) > 0 {
		di := w.orphans[0]
		w.orphans = w.orphans[1:]
		d := &w.exp.Deleted[di]
		u := before[d.UserID]
		if u == nil || deref(u.ExternalID) == "" {
			continue
		}
		o := w.newObject(phase, false)
		s := &o.spec
		s.EmailAddress, s.Username, s.ExternalID = "", "", *u.ExternalID
		s.MetadataPolicy = clerkv1alpha1.MetadataPolicyMerge
		s.MFA = nil
		o.mfa = mfaNone
		if u.HasMFA() {
			o.mfa = mfaKeep
		}
		if _, isSet := SpecMetadata(s, kindPublic); !isSet {
			SetSpecMetadata(s, kindPublic, map[string]any{keyRole: w.value(keyRole)})
		}
		w.exp.MFA[o.name] = MFAExpect{HadMFA: u.HasMFA()}
		d.Readopted = o.name
		o.userID = u.ID
		return o
	}
	return w.newObject(phase, false)
}

// mutate changes one to three things of o's spec and records them in Changed. An object with a
// reset token always gets a new one, so that every phase resets many users' MFA under its fault.
func (w *workload) mutate(o *object, phase string) {
	s := &o.spec
	options := []string{fieldFirstName, fieldLastName, "metadata", "metadata", fieldBanned, fieldLocked}
	w.r.Shuffle(len(options), func(i, j int) { options[i], options[j] = options[j], options[i] })
	if o.mfa == mfaReset || o.mfa == mfaResetNoFactor {
		options = append([]string{fieldResetToken}, options...)
	}
	n := 1 + w.r.IntN(3)
	done := map[string]bool{}
	var changed []string
	for _, opt := range options {
		if len(done) == n {
			break
		}
		if done[opt] {
			continue
		}
		done[opt] = true
		switch opt {
		case fieldFirstName:
			s.FirstName = new(fmt.Sprintf("F-%s-%d", phase, w.r.IntN(1<<20)))
			changed = append(changed, opt)
		case fieldLastName:
			s.LastName = new(fmt.Sprintf("L-%s-%d", phase, w.r.IntN(1<<20)))
			changed = append(changed, opt)
		case fieldBanned:
			s.Banned = new(s.Banned == nil || !*s.Banned)
			changed = append(changed, opt)
		case fieldLocked:
			s.Locked = new(s.Locked == nil || !*s.Locked)
			changed = append(changed, opt)
		case fieldResetToken:
			s.MFA = &clerkv1alpha1.MFASpec{ResetToken: w.token(phase)}
			changed = append(changed, opt)
			e := w.exp.MFA[o.name]
			e.TokenChanged = true
			w.exp.MFA[o.name] = e
		default:
			changed = append(changed, w.mutateMetadata(o))
		}
	}
	w.exp.Changed[o.name] = changed
}

// mutateMetadata changes a value, adds a key or removes one (Merge), or replaces public
// metadata (Replace), and returns the field changed.
func (w *workload) mutateMetadata(o *object) string {
	s := &o.spec
	if s.MetadataPolicy == clerkv1alpha1.MetadataPolicyReplace {
		m := map[string]any{keyRole: w.value(keyRole)}
		if w.chance(0.5) {
			m[keyTier] = w.value(keyTier)
		}
		if w.chance(0.5) {
			m[keyPrefs] = w.value(keyPrefs)
		}
		old, _ := SpecMetadata(s, kindPublic)
		if jsonEqual(old, m) {
			m[keyRole] = w.newValue(keyRole, m[keyRole])
		}
		SetSpecMetadata(s, kindPublic, m)
		return "publicMetadata"
	}
	kind := w.pick(metaKinds...)
	m, _ := SpecMetadata(s, kind)
	var undeclared []string
	for _, k := range keyPool[kind] {
		if _, ok := m[k]; !ok {
			undeclared = append(undeclared, k)
		}
	}
	op := w.r.IntN(3)
	switch {
	case len(m) > 0 && (op == 0 || len(undeclared) == 0 && op == 1):
		k := w.pick(slices.Sorted(maps.Keys(m))...)
		m[k] = w.newValue(k, m[k])
		SetSpecMetadata(s, kind, m)
		return kind + "Metadata." + k
	case len(m) > 0 && op == 2:
		k := w.pick(slices.Sorted(maps.Keys(m))...)
		delete(m, k)
		SetSpecMetadata(s, kind, m)
		if w.exp.Removed[o.name] == nil {
			w.exp.Removed[o.name] = map[string][]string{}
		}
		if !slices.Contains(w.exp.Removed[o.name][kind], k) {
			w.exp.Removed[o.name][kind] = append(w.exp.Removed[o.name][kind], k)
		}
		return kind + "Metadata." + k
	default:
		if len(undeclared) == 0 {
			return w.mutateMetadata(o)
		}
		k := w.pick(undeclared...)
		m[k] = w.value(k)
		SetSpecMetadata(s, kind, m)
		return kind + "Metadata." + k
	}
}

// clerkUser is the ClerkUser object of o.
func (o *object) clerkUser() *clerkv1alpha1.ClerkUser {
	return &clerkv1alpha1.ClerkUser{
		ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: chaosNamespace},
		Spec:       *o.spec.DeepCopy(),
	}
}

// neededWrites is the number of Clerk writes a perfect operator needs to bring u (nil: no
// user yet) to o's spec, given Expect: one per call of each kind the contract implies.
func neededWrites(o *object, u *FakeUser, exp *Expect) int {
	s := &o.spec
	if u == nil {
		n := 1 // POST /v1/users with identifiers, profile and metadata
		if s.Banned != nil && *s.Banned {
			n++
		}
		if s.Locked != nil && *s.Locked {
			n++
		}
		return n
	}
	n := 0
	fake := &clerkv1alpha1.ClerkUser{ObjectMeta: metav1.ObjectMeta{Name: o.name}, Spec: o.spec}
	profile, metadata := false, false
	for _, m := range compareUser(fake, u, &Expect{Removed: exp.Removed}) {
		switch m.field {
		case "externalID", "username", fieldFirstName, fieldLastName:
			profile = true
		case fieldBanned, fieldLocked, "mfa.disabled":
			n++
		default:
			if strings.Contains(m.field, "Metadata") {
				metadata = true
			}
		}
	}
	if profile {
		n++
	}
	if metadata {
		n++
	}
	if s.MFA != nil && s.MFA.ResetToken != "" && exp.MFA[o.name].TokenChanged && u.HasMFA() && !s.MFA.Disabled {
		n++
	}
	return n
}
