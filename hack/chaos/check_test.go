package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

// These tests check the checks: each feeds them the state a broken manager would leave (a
// fake-state snapshot, the objects, the calls) and asserts that the harness reports it. They
// start no process.

func raw(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }

func meta(s string) map[string]any {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		panic(err)
	}
	return m
}

// readyObject is a ClerkUser converged for its generation and bound to userID.
func readyObject(name, userID string, spec clerkv1alpha1.ClerkUserSpec) clerkv1alpha1.ClerkUser {
	return clerkv1alpha1.ClerkUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: chaosNamespace, Generation: 3},
		Spec:       spec,
		Status: clerkv1alpha1.ClerkUserStatus{ObservedGeneration: 3, UserID: userID,
			Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Synced", ObservedGeneration: 3}}},
	}
}

// world is a consistent state: a seeded user adopted by ID, a user kubeclerk created, one with
// an MFA reset just applied, and the application's keys on all of them.
type world struct {
	snap    Snapshot
	exp     *Expect
	removal map[string]int
}

func newWorld() *world {
	seeded := &FakeUser{ID: "user_seed1", ExternalID: new("seed-ext-1"), FirstName: new("Ada"), Banned: true,
		EmailAddresses:  []FakeEmail{{EmailAddress: "seed-1@chaos.example.com"}},
		PublicMetadata:  meta(`{"role":"admin","seed_keep":"s-1","app_counter":7}`),
		PrivateMetadata: meta(`{"big":9007199254740993}`), UnsafeMetadata: meta(`{}`)}
	created := &FakeUser{ID: "user_new1", Username: new("chaosuser00002"),
		EmailAddresses: []FakeEmail{{EmailAddress: "u00002@chaos.example.com"}},
		PublicMetadata: meta(`{"role":"viewer","tier":2}`), PrivateMetadata: meta(`{"app_counter":9}`),
		UnsafeMetadata: meta(`{"theme":"dark"}`), Locked: true}
	reset := &FakeUser{ID: "user_seed3", ExternalID: new("seed-ext-3"), PublicMetadata: meta(`{"role":"member"}`),
		MFADisabledAt: new(int64(100))}
	w := &world{
		snap: Snapshot{Users: []*FakeUser{seeded, created, reset}, Objects: []clerkv1alpha1.ClerkUser{
			readyObject("cu-00001", "user_seed1", clerkv1alpha1.ClerkUserSpec{UserID: "user_seed1", FirstName: new("Ada"),
				Banned: new(true), PublicMetadata: raw(`{"role":"admin"}`), PrivateMetadata: raw(`{"big":9007199254740993}`),
				MetadataPolicy: clerkv1alpha1.MetadataPolicyMerge}),
			readyObject("cu-00002", "user_new1", clerkv1alpha1.ClerkUserSpec{EmailAddress: "u00002@chaos.example.com",
				Username: "chaosuser00002", Locked: new(true), CreationPolicy: clerkv1alpha1.CreationPolicyAdoptOrCreate,
				MetadataPolicy: clerkv1alpha1.MetadataPolicyReplace,
				PublicMetadata: raw(`{"role":"viewer","tier":2}`), UnsafeMetadata: raw(`{"theme":"dark"}`)}),
			readyObject("cu-00003", "user_seed3", clerkv1alpha1.ClerkUserSpec{ExternalID: "seed-ext-3",
				PublicMetadata: raw(`{"role":"member"}`), MFA: &clerkv1alpha1.MFASpec{ResetToken: "T-1"}}),
		}},
		exp: &Expect{
			Seeded: map[string]bool{"user_seed1": true, "user_seed3": true},
			Kept: map[string]map[string]map[string]any{
				"user_seed1": {kindPublic: {"seed_keep": "s-1", "app_counter": json.Number("7")}},
				"user_new1":  {kindPrivate: {"app_counter": json.Number("9")}},
			},
			Removed: map[string]map[string][]string{"cu-00001": {kindPublic: {"tier"}}},
			MFA:     map[string]MFAExpect{"cu-00003": {HadMFA: true, TokenChanged: true}},
			Changed: map[string][]string{"cu-00001": {"firstName"}, "cu-00003": {"mfa.resetToken"}},
		},
		removal: map[string]int{"user_seed3": 1},
	}
	w.snap.Objects[2].Status.LastMFAResetToken = "T-1"
	return w
}

func (w *world) user(id string) *FakeUser {
	for _, u := range w.snap.Users {
		if u.ID == id {
			return u
		}
	}
	panic("no user " + id)
}

func (w *world) check() []Finding { return CheckState(w.snap, w.exp, w.removal) }

// wantFindings asserts that fs holds exactly the checks in want (check → count), and that
// each finding of a check mentions the words given.
func wantFindings(t *testing.T, fs []Finding, want map[string]int, words ...string) {
	t.Helper()
	got := map[string]int{}
	for _, f := range fs {
		got[f.Check]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("findings by check = %v, want %v:\n%s", got, want, findingsText(fs))
	}
	text := findingsText(fs)
	for _, w := range words {
		if !strings.Contains(text, w) {
			t.Errorf("findings do not mention %q:\n%s", w, text)
		}
	}
}

func findingsText(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}

func TestConsistentStatePasses(t *testing.T) {
	wantFindings(t, newWorld().check(), map[string]int{})
}

// A manager that skips the lookup before a create makes a second user for an object whose
// create response was lost: a duplicate of the identifier, and an orphan.
func TestBrokenManagerSkipsLookupBeforeCreate(t *testing.T) {
	w := newWorld()
	w.snap.Users = append(w.snap.Users, &FakeUser{ID: "user_dup", Username: new("chaosuser00002"),
		EmailAddresses: []FakeEmail{{EmailAddress: "u00002@chaos.example.com"}}})
	wantFindings(t, w.check(), map[string]int{checkDuplicate: 2, checkOrphan: 1},
		"2 Clerk users hold email:u00002@chaos.example.com: user_new1, user_dup", "user_dup")
}

// A manager that records a reset token without calling Clerk leaves the second factor.
func TestBrokenManagerRecordsResetWithoutCallingClerk(t *testing.T) {
	w := newWorld()
	u := w.user("user_seed3")
	u.TwoFactorEnabled, u.TOTPEnabled = true, true
	w.removal = map[string]int{}
	wantFindings(t, w.check(), map[string]int{checkMFA: 2},
		"0 DELETE …/mfa calls applied, want 1", "still has a second factor")
}

// A manager that calls DisableMfa again after a lost response or a restart removes MFA twice;
// one that applies an old token again removes the factor the user enrolled since.
func TestBrokenManagerResetsTwice(t *testing.T) {
	w := newWorld()
	w.removal["user_seed3"] = 2
	wantFindings(t, w.check(), map[string]int{checkMFA: 1}, "2 DELETE …/mfa calls applied, want 1")

	w = newWorld()
	w.exp.MFA["cu-00003"] = MFAExpect{HadMFA: true} // the token did not change in this phase
	w.exp.Changed = map[string][]string{}
	wantFindings(t, w.check(), map[string]int{checkMFA: 2}, "want 0", "was removed again")
}

func TestResetTokenNotRecorded(t *testing.T) {
	w := newWorld()
	w.snap.Objects[2].Status.LastMFAResetToken = "T-0"
	wantFindings(t, w.check(), map[string]int{checkMFA: 1}, `status.lastMFAResetToken "T-0"`)
}

// A user without a factor: the token is recorded without a call.
func TestResetTokenWithoutFactor(t *testing.T) {
	w := newWorld()
	w.exp.MFA["cu-00003"] = MFAExpect{TokenChanged: true}
	w.removal = map[string]int{}
	wantFindings(t, w.check(), map[string]int{})
	w.removal = map[string]int{"user_seed3": 1}
	wantFindings(t, w.check(), map[string]int{checkMFA: 1}, "want 0")
}

// A manager that writes metadata with PUT (or read-modify-write) under Merge loses the
// application's keys and the seeded ones.
func TestBrokenManagerClobbersApplicationKeys(t *testing.T) {
	w := newWorld()
	w.user("user_seed1").PublicMetadata = meta(`{"role":"admin"}`)
	w.user("user_new1").PrivateMetadata = meta(`{}`)
	wantFindings(t, w.check(), map[string]int{checkWrong: 3},
		"kept:publicMetadata.app_counter", "kept:publicMetadata.seed_keep", "kept:privateMetadata.app_counter")
}

func TestLostChangeAndWrongValue(t *testing.T) {
	w := newWorld()
	w.user("user_seed1").FirstName = new("Old")                         // changed in this phase: lost
	w.user("user_seed1").Banned = false                                 // not changed in this phase: wrong
	w.user("user_new1").UnsafeMetadata = meta(`{"theme":"dark","x":1}`) // Replace is exact
	wantFindings(t, w.check(), map[string]int{checkLost: 1, checkWrong: 2},
		`firstName: spec wants "Ada", Clerk holds "Old"`, "banned: spec wants true", "unsafeMetadata")
}

func TestMetadataValuesCompareExactly(t *testing.T) {
	w := newWorld()
	w.user("user_seed1").PrivateMetadata = meta(`{"big":9007199254740992}`) // float64 rounding of 2^53+1
	wantFindings(t, w.check(), map[string]int{checkWrong: 1}, "privateMetadata.big")

	w = newWorld()
	w.user("user_seed1").PublicMetadata["tier"] = json.Number("3") // removed from the spec, left in Clerk
	wantFindings(t, w.check(), map[string]int{checkWrong: 1}, "absent (removed from the spec)")
}

func TestNotReady(t *testing.T) {
	w := newWorld()
	w.snap.Objects[0].Generation = 4
	w.snap.Objects[1].Status.Conditions[0].Status = metav1.ConditionFalse
	w.snap.Objects[1].Status.Conditions[0].Reason = "ClerkUnavailable"
	now := metav1.Now()
	w.snap.Objects[2].DeletionTimestamp = &now
	w.snap.Objects[2].Finalizers = []string{clerkv1alpha1.Finalizer}
	wantFindings(t, w.check(), map[string]int{checkReady: 3}, "generation 4", "ClerkUnavailable", "deletion not finished")
}

func TestDeletionPolicies(t *testing.T) {
	w := newWorld()
	w.snap.Users = append(w.snap.Users, &FakeUser{ID: "user_gone"}, &FakeUser{ID: "user_banned"}, &FakeUser{ID: "user_orphan"})
	w.exp.Deleted = []DeletedObject{
		{Name: "cu-00010", UserID: "user_gone", Policy: clerkv1alpha1.DeletionPolicyDelete},
		{Name: "cu-00011", UserID: "user_banned", Policy: clerkv1alpha1.DeletionPolicyBan},
		{Name: "cu-00012", UserID: "user_orphan", Policy: clerkv1alpha1.DeletionPolicyOrphan},
		{Name: "cu-00013", UserID: "user_missing", Policy: clerkv1alpha1.DeletionPolicyOrphan},
	}
	// user_gone was created by kubeclerk and survived its Delete: a lost change and an orphan.
	wantFindings(t, w.check(), map[string]int{checkLost: 3, checkOrphan: 1},
		"still exists", "not banned", "user_missing")
}

func TestTwoObjectsOneUser(t *testing.T) {
	w := newWorld()
	o := readyObject("cu-00009", "user_new1", clerkv1alpha1.ClerkUserSpec{Username: "chaosuser00002"})
	w.snap.Objects = append(w.snap.Objects, o)
	wantFindings(t, w.check(), map[string]int{checkDuplicate: 1}, "bound to the same Clerk user as cu-00002")
}

func TestStatusNamesNoUser(t *testing.T) {
	w := newWorld()
	w.snap.Objects[1].Status.UserID = "user_nobody"
	// The real user is held by no object any more: an orphan too.
	wantFindings(t, w.check(), map[string]int{checkWrong: 1, checkOrphan: 1}, "names no Clerk user")
}

func calls(start time.Time, n int, every time.Duration, c Call) []Call {
	out := make([]Call, n)
	for i := range out {
		c.At = start.Add(time.Duration(i) * every)
		out[i] = c
	}
	return out
}

func TestCheckRate(t *testing.T) {
	t0 := time.Now()
	// 50/s with a burst of 50 at the start: within a bucket of 50/s, burst 50.
	ok := append(calls(t0, 50, 0, Call{Route: "GET /v1/users"}), calls(t0, 500, 20*time.Millisecond, Call{Route: "GET /v1/users"})...)
	if r, fs := CheckRate(ok, 50, 50); len(fs) != 0 {
		t.Fatalf("CheckRate(%+v) = %v", r, fs)
	}
	// A manager that ignores its budget: 200/s for 3 s, 429s included.
	bad := calls(t0, 600, 5*time.Millisecond, Call{Route: "POST /v1/users/{user_id}/ban", Status: 429})
	r, fs := CheckRate(bad, 50, 50)
	wantFindings(t, fs, map[string]int{checkRate: 2}, "200 requests in 1 s", "600 requests in 10 s")
	if r.Peak1s != 200 || r.Allowed1s != 110 {
		t.Errorf("peak %d allowed %d, want 200 and 110", r.Peak1s, r.Allowed1s)
	}
	// 65/s sustained for 10 s: fine for one second, not for Clerk's 10 s window.
	_, fs = CheckRate(calls(t0, 650, time.Second/65, Call{}), 50, 50)
	wantFindings(t, fs, map[string]int{checkRate: 1}, "requests in 10 s")
}

func TestCheckHotLoop(t *testing.T) {
	t0 := time.Now()
	t1 := t0.Add(time.Minute)
	one := []term{{t0.Add(-time.Hour), t1.Add(time.Hour)}}
	idx := objectIndex{byUser: map[string]string{"user_1": "cu-00001", "user_2": "cu-00002"},
		byIdent: map[string]string{"email:a@b.c": "cu-00003"}}
	// Backoff: attempts 5 ms, 10 ms, 20 ms, … apart for 60 s, and a batch read.
	var ok []Call
	for d := backoffBase; d < time.Minute; d *= 2 {
		ok = append(ok, Call{At: t0.Add(d), UserID: "user_1"}, Call{At: t0.Add(d), Lookup: []string{"email:a@b.c"}})
	}
	ok = append(ok, Call{At: t0, Batch: []string{"user_1", "user_2"}})
	h, fs := CheckHotLoop(ok, t0, t1, one, idx, 3, 50)
	if len(fs) != 0 {
		t.Fatalf("CheckHotLoop(backoff) = %+v, %v", h, fs)
	}
	if h.MaxPerObject != 14.5 || h.PerObjectMax != 16 {
		t.Errorf("max per object %v (allowed %v), want 14.5 (16)", h.MaxPerObject, h.PerObjectMax)
	}
	// A long outage: the backoff reaches its 30 s cap after 13 retries (41 s), then retries
	// every 30 s: 34 attempts allowed in 10 minutes, and a manager that keeps to the cap passes.
	t10 := t0.Add(10 * time.Minute)
	var capped []Call
	for at, gap := time.Duration(0), backoffBase; at <= 10*time.Minute; at, gap = at+gap, min(2*gap, backoffMax) {
		capped = append(capped, Call{At: t0.Add(at), UserID: "user_1"})
	}
	h, fs = CheckHotLoop(capped, t0, t10, one, idx, 3, 50)
	if len(fs) != 0 || h.MaxPerObject != 32 || h.PerObjectMax != 34 {
		t.Fatalf("CheckHotLoop(capped backoff over 10 min) = %+v, %v; want 32 calls of 34 allowed", h, fs)
	}
	// Retrying every 15 s instead is over the bound in a long outage, and does not decay.
	_, fs = CheckHotLoop(calls(t0, 41, 15*time.Second, Call{UserID: "user_1"}), t0, t10, one, idx, 3, 50)
	wantFindings(t, fs, map[string]int{checkHotLoop: 2}, "cu-00001: 41.0 Clerk calls", "do not back off")
	// A manager that requeues a failing object every 100 ms.
	loop := calls(t0, 600, 100*time.Millisecond, Call{UserID: "user_2"})
	_, fs = CheckHotLoop(loop, t0, t1, one, idx, 3, 50)
	wantFindings(t, fs, map[string]int{checkHotLoop: 2}, "cu-00002", "600.0 Clerk calls", "do not back off")
	// Every object retried every 10 s: few calls per object, but no decay.
	spread := make([]Call, 0, 3000)
	for i := range 3000 {
		spread = append(spread, Call{At: t0.Add(time.Duration(i) * 20 * time.Millisecond), UserID: fmt.Sprintf("user_%d", 10+i%500)})
	}
	h, fs = CheckHotLoop(spread, t0, t1, one, idx, 500, 50)
	wantFindings(t, fs, map[string]int{checkHotLoop: 1}, "1000 Clerk calls in the last third")
	if h.BudgetShare != 1 {
		t.Errorf("budget share %v, want 1", h.BudgetShare)
	}
	// A new leader mid-outage tries every object again: its term adds to the bound.
	two := []term{{t0.Add(-time.Hour), t0.Add(30 * time.Second)}, {t0.Add(45 * time.Second), t1.Add(time.Hour)}}
	var restart []Call
	for _, start := range []time.Time{t0, t0.Add(45 * time.Second)} {
		for d := backoffBase; d < 15*time.Second; d *= 2 {
			restart = append(restart, Call{At: start.Add(d), UserID: "user_1"})
		}
	}
	if h, fs := CheckHotLoop(restart, t0, t1, two, idx, 3, 50); len(fs) != 0 {
		t.Fatalf("CheckHotLoop(two leaders) = %+v, %v", h, fs)
	}
}

func TestCheckLeaders(t *testing.T) {
	t0 := time.Now()
	handover := []Call{{At: t0, Slot: 0}, {At: t0.Add(16 * time.Second), Slot: 1}, {At: t0.Add(17 * time.Second), Slot: 1}}
	if fs := CheckLeaders(handover, time.Second); len(fs) != 0 {
		t.Fatalf("CheckLeaders(handover) = %v", fs)
	}
	split := []Call{{At: t0, Slot: 0, Route: "GET /v1/users"}, {At: t0.Add(100 * time.Millisecond), Slot: 1, Route: "GET /v1/users"}}
	wantFindings(t, CheckLeaders(split, time.Second), map[string]int{checkLeaders: 1}, "replica 0", "replica 1")
}

func TestMFARemovals(t *testing.T) {
	cs := []Call{
		{Route: "DELETE /v1/users/{user_id}/mfa", UserID: "u1", Status: 200},
		{Route: "DELETE /v1/users/{user_id}/mfa", UserID: "u1", Status: 0, Lost: true}, // applied, response dropped
		{Route: "DELETE /v1/users/{user_id}/mfa", UserID: "u1", Status: 503},           // refused before the handler
		{Route: "DELETE /v1/users/{user_id}/mfa", UserID: "u2", Status: 429},
		{Route: "DELETE /v1/users/{user_id}", UserID: "u2", Status: 200},
	}
	if got := MFARemovals(cs); fmt.Sprint(got) != "map[u1:2]" {
		t.Errorf("MFARemovals = %v, want map[u1:2]", got)
	}
}

func TestRouteOf(t *testing.T) {
	for _, tc := range []struct{ method, path, route, user string }{
		{"GET", "/v1/users", "GET /v1/users", ""},
		{"GET", "/v1/users/count", "GET /v1/users/count", ""},
		{"POST", "/v1/users/ban", "POST /v1/users/ban", ""},
		{"GET", "/v1/users/user_1", "GET /v1/users/{user_id}", "user_1"},
		{"DELETE", "/v1/users/user_1/mfa", "DELETE /v1/users/{user_id}/mfa", "user_1"},
		{"PATCH", "/v1/users/user_1/metadata", "PATCH /v1/users/{user_id}/metadata", "user_1"},
		{"DELETE", "/v1/users/user_1/passkeys/pk_1", "DELETE /v1/users/{user_id}/passkeys/{id}", "user_1"},
	} {
		route, user := routeOf(tc.method, tc.path)
		if route != tc.route || user != tc.user {
			t.Errorf("routeOf(%s %s) = %q, %q; want %q, %q", tc.method, tc.path, route, user, tc.route, tc.user)
		}
	}
}

func TestNeededWrites(t *testing.T) {
	exp := &Expect{Removed: map[string]map[string][]string{}, MFA: map[string]MFAExpect{"o": {HadMFA: true, TokenChanged: true}}}
	o := &object{name: "o", spec: clerkv1alpha1.ClerkUserSpec{FirstName: new("A"), LastName: new("B"), Banned: new(true),
		Locked: new(false), PublicMetadata: raw(`{"role":"x"}`), MFA: &clerkv1alpha1.MFASpec{ResetToken: "T"}}}
	if n := neededWrites(o, nil, exp); n != 2 {
		t.Errorf("create: %d writes, want 2 (create, ban)", n)
	}
	u := &FakeUser{ID: "u", Locked: true, TwoFactorEnabled: true, PublicMetadata: meta(`{"role":"y"}`)}
	// profile (one PATCH for both names), unlock, metadata, MFA reset, ban.
	if n := neededWrites(o, u, exp); n != 5 {
		t.Errorf("update: %d writes, want 5", n)
	}
	done := &FakeUser{ID: "u", FirstName: new("A"), LastName: new("B"), Banned: true, PublicMetadata: meta(`{"role":"x"}`)}
	if n := neededWrites(o, done, exp); n != 0 {
		t.Errorf("in sync: %d writes, want 0", n)
	}
}

// The workload is reproducible, its creates are valid for Clerk, and a rollout touches a third
// of the objects, records what it changed and keeps Expect consistent.
func TestWorkload(t *testing.T) {
	a, b := newWorkload(7), newWorkload(7)
	a.initial(300)
	b.initial(300)
	if jsonString(a.seed) != jsonString(b.seed) {
		t.Fatal("the same seed made different workloads")
	}
	for _, o := range a.sorted() {
		s := o.spec
		if s.CreationPolicy == clerkv1alpha1.CreationPolicyAdoptOrCreate && s.EmailAddress == "" && s.Username == "" {
			t.Errorf("%s: AdoptOrCreate without email or username: Clerk refuses to create it", o.name)
		}
		if s.UserID == "" && len(identifiersOf(&s)) == 0 {
			t.Errorf("%s: no identifier", o.name)
		}
		o.userID = s.UserID
		if o.userID == "" {
			o.userID = "user_x" + o.name
		}
	}
	before := map[string]*FakeUser{}
	for _, o := range a.sorted() {
		before[o.userID] = &FakeUser{ID: o.userID, ExternalID: new("ext-" + o.name), TwoFactorEnabled: o.mfa == mfaReset}
	}
	ro := a.newRollout("throttle", 2, before)
	if len(ro.changed) != (300-6)/3 || len(ro.deleted) != 6 || len(ro.created) != 6 {
		t.Fatalf("rollout: %d changed, %d deleted, %d created", len(ro.changed), len(ro.deleted), len(ro.created))
	}
	if ro.created[0].spec.ExternalID != deref(before[ro.deleted[0].userID].ExternalID) {
		t.Errorf("the first new object does not adopt the orphaned user: %+v", ro.created[0].spec)
	}
	for _, o := range ro.changed {
		if len(a.exp.Changed[o.name]) == 0 {
			t.Errorf("%s changed without a record of what", o.name)
		}
	}
	if len(a.objs) != 300 || len(a.exp.Deleted) != 6 {
		t.Errorf("%d objects, %d deleted", len(a.objs), len(a.exp.Deleted))
	}
}
