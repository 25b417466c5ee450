package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// The helpers of the pure tests carry a "pt" prefix so that they cannot collide with the
// helpers of the envtest suite in the same package.

// ptJSON is a declared metadata object as the API server hands it to the reconciler.
func ptJSON(raw string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(raw)} }

// ptObj decodes a JSON object the way the Clerk client does (numbers as json.Number, exact).
func ptObj(t *testing.T, raw string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("bad test JSON %s: %v", raw, err)
	}
	return m
}

// ptUser is a plain, unbanned, unlocked Clerk user without MFA or metadata, changed by mutate.
func ptUser(mutate ...func(u *clerk.User)) *clerk.User {
	u := &clerk.User{ID: "user_1", Object: "user"}
	for _, m := range mutate {
		m(u)
	}
	return u
}

// ptFieldCmp compares clerk.Field values through their public API: absent, null or value.
var ptFieldCmp = cmp.Comparer(func(a, b clerk.Field[string]) bool {
	av, aok := a.Value()
	bv, bok := b.Value()
	return a.IsZero() == b.IsZero() && a.IsNull() == b.IsNull() && aok == bok && av == bv
})

func ptKinds(p Plan) []StepKind {
	out := make([]StepKind, 0, len(p.Steps))
	for _, s := range p.Steps {
		out = append(out, s.Kind)
	}
	return out
}

func mustPlan(t *testing.T, spec clerkv1alpha1.ClerkUserSpec, status clerkv1alpha1.ClerkUserStatus, u *clerk.User) Plan {
	t.Helper()
	p, err := plan(&spec, &status, u)
	if err != nil {
		t.Fatalf("plan() error = %v", err)
	}
	return p
}

func TestPlanProfile(t *testing.T) {
	tests := []struct {
		name string
		spec clerkv1alpha1.ClerkUserSpec
		user *clerk.User
		want Plan
	}{
		{
			name: "nothing managed: no step whatever Clerk holds",
			spec: clerkv1alpha1.ClerkUserSpec{UserID: "user_1"},
			user: ptUser(func(u *clerk.User) {
				u.ExternalID, u.Username, u.FirstName, u.LastName = new("e"), new("u"), new("F"), new("L")
			}),
			want: Plan{},
		},
		{
			name: "externalID equal: kept, no step",
			spec: clerkv1alpha1.ClerkUserSpec{ExternalID: "emp-1"},
			user: ptUser(func(u *clerk.User) { u.ExternalID = new("emp-1") }),
			want: Plan{},
		},
		{
			name: "externalID missing in Clerk: set",
			spec: clerkv1alpha1.ClerkUserSpec{ExternalID: "emp-1"},
			user: ptUser(),
			want: Plan{Steps: []Step{{Kind: StepUpdateProfile, Changes: []string{"externalID"},
				Profile: clerk.UpdateUserParams{ExternalID: clerk.Set("emp-1")}}}},
		},
		{
			name: "externalID differs: set",
			spec: clerkv1alpha1.ClerkUserSpec{ExternalID: "emp-1"},
			user: ptUser(func(u *clerk.User) { u.ExternalID = new("emp-0") }),
			want: Plan{Steps: []Step{{Kind: StepUpdateProfile, Changes: []string{"externalID"},
				Profile: clerk.UpdateUserParams{ExternalID: clerk.Set("emp-1")}}}},
		},
		{
			name: "username equal: kept, no step",
			spec: clerkv1alpha1.ClerkUserSpec{Username: "alice"},
			user: ptUser(func(u *clerk.User) { u.Username = new("alice") }),
			want: Plan{},
		},
		{
			name: "username differs: set",
			spec: clerkv1alpha1.ClerkUserSpec{Username: "alice"},
			user: ptUser(func(u *clerk.User) { u.Username = new("alice2") }),
			want: Plan{Steps: []Step{{Kind: StepUpdateProfile, Changes: []string{"username"},
				Profile: clerk.UpdateUserParams{Username: clerk.Set("alice")}}}},
		},
		{
			name: "firstName unset: not managed",
			spec: clerkv1alpha1.ClerkUserSpec{UserID: "user_1"},
			user: ptUser(func(u *clerk.User) { u.FirstName = new("Alice") }),
			want: Plan{},
		},
		{
			name: "firstName empty: cleared with JSON null",
			spec: clerkv1alpha1.ClerkUserSpec{FirstName: new("")},
			user: ptUser(func(u *clerk.User) { u.FirstName = new("Alice") }),
			want: Plan{Steps: []Step{{Kind: StepUpdateProfile, Changes: []string{"firstName"},
				Profile: clerk.UpdateUserParams{FirstName: clerk.Null[string]()}}}},
		},
		{
			name: "firstName empty and Clerk has none: no step",
			spec: clerkv1alpha1.ClerkUserSpec{FirstName: new("")},
			user: ptUser(),
			want: Plan{},
		},
		{
			name: "firstName empty and Clerk has empty string: no step",
			spec: clerkv1alpha1.ClerkUserSpec{FirstName: new("")},
			user: ptUser(func(u *clerk.User) { u.FirstName = new("") }),
			want: Plan{},
		},
		{
			name: "firstName missing in Clerk: set",
			spec: clerkv1alpha1.ClerkUserSpec{FirstName: new("Alice")},
			user: ptUser(),
			want: Plan{Steps: []Step{{Kind: StepUpdateProfile, Changes: []string{"firstName"},
				Profile: clerk.UpdateUserParams{FirstName: clerk.Set("Alice")}}}},
		},
		{
			name: "firstName equal: no step",
			spec: clerkv1alpha1.ClerkUserSpec{FirstName: new("Alice")},
			user: ptUser(func(u *clerk.User) { u.FirstName = new("Alice") }),
			want: Plan{},
		},
		{
			name: "lastName unset: not managed",
			spec: clerkv1alpha1.ClerkUserSpec{FirstName: new("Alice")},
			user: ptUser(func(u *clerk.User) { u.FirstName, u.LastName = new("Alice"), new("Liddell") }),
			want: Plan{},
		},
		{
			name: "lastName empty: cleared with JSON null",
			spec: clerkv1alpha1.ClerkUserSpec{LastName: new("")},
			user: ptUser(func(u *clerk.User) { u.LastName = new("Liddell") }),
			want: Plan{Steps: []Step{{Kind: StepUpdateProfile, Changes: []string{"lastName"},
				Profile: clerk.UpdateUserParams{LastName: clerk.Null[string]()}}}},
		},
		{
			name: "lastName differs: set",
			spec: clerkv1alpha1.ClerkUserSpec{LastName: new("Liddell")},
			user: ptUser(func(u *clerk.User) { u.LastName = new("Pleasance") }),
			want: Plan{Steps: []Step{{Kind: StepUpdateProfile, Changes: []string{"lastName"},
				Profile: clerk.UpdateUserParams{LastName: clerk.Set("Liddell")}}}},
		},
		{
			name: "every profile field differs: one PATCH carrying all of them",
			spec: clerkv1alpha1.ClerkUserSpec{ExternalID: "emp-1", Username: "alice",
				FirstName: new("Alice"), LastName: new("")},
			user: ptUser(func(u *clerk.User) { u.LastName = new("Liddell") }),
			want: Plan{Steps: []Step{{Kind: StepUpdateProfile,
				Changes: []string{"externalID", "username", "firstName", "lastName"},
				Profile: clerk.UpdateUserParams{ExternalID: clerk.Set("emp-1"), Username: clerk.Set("alice"),
					FirstName: clerk.Set("Alice"), LastName: clerk.Null[string]()}}}},
		},
		{
			name: "emailAddress is only a lookup key: a different primary address is not changed",
			spec: clerkv1alpha1.ClerkUserSpec{EmailAddress: "alice@example.com"},
			user: ptUser(func(u *clerk.User) {
				u.PrimaryEmailAddressID = new("idn_1")
				u.EmailAddresses = []clerk.EmailAddress{{ID: "idn_1", EmailAddress: "other@example.com"}}
			}),
			want: Plan{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustPlan(t, tt.spec, clerkv1alpha1.ClerkUserStatus{}, tt.user)
			if diff := cmp.Diff(tt.want, got, ptFieldCmp); diff != "" {
				t.Errorf("plan() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanAccessState(t *testing.T) {
	banned := func(u *clerk.User) { u.Banned = true }
	locked := func(u *clerk.User) { u.Locked = true; u.LockoutExpiresInSeconds = nil }
	tests := []struct {
		name string
		spec clerkv1alpha1.ClerkUserSpec
		user *clerk.User
		want []Step
	}{
		{name: "banned unset, Clerk banned: never touched", spec: clerkv1alpha1.ClerkUserSpec{}, user: ptUser(banned)},
		{name: "banned unset, Clerk not banned: never touched", spec: clerkv1alpha1.ClerkUserSpec{}, user: ptUser()},
		{name: "banned true, Clerk not banned: ban",
			spec: clerkv1alpha1.ClerkUserSpec{Banned: new(true)}, user: ptUser(),
			want: []Step{{Kind: StepBan, Changes: []string{"ban"}}}},
		{name: "banned true, Clerk banned: no step",
			spec: clerkv1alpha1.ClerkUserSpec{Banned: new(true)}, user: ptUser(banned)},
		{name: "banned false, Clerk banned: unban",
			spec: clerkv1alpha1.ClerkUserSpec{Banned: new(false)}, user: ptUser(banned),
			want: []Step{{Kind: StepUnban, Changes: []string{"unban"}}}},
		{name: "banned false, Clerk not banned: no step",
			spec: clerkv1alpha1.ClerkUserSpec{Banned: new(false)}, user: ptUser()},
		{name: "locked unset, Clerk locked after failed sign-ins: never touched",
			spec: clerkv1alpha1.ClerkUserSpec{}, user: ptUser(func(u *clerk.User) { u.Locked = true; u.LockoutExpiresInSeconds = new(int64(600)) })},
		{name: "locked true, Clerk not locked: lock",
			spec: clerkv1alpha1.ClerkUserSpec{Locked: new(true)}, user: ptUser(),
			want: []Step{{Kind: StepLock, Changes: []string{"lock"}}}},
		{name: "locked true, Clerk locked: no step",
			spec: clerkv1alpha1.ClerkUserSpec{Locked: new(true)}, user: ptUser(locked)},
		{name: "locked false, Clerk locked: unlock",
			spec: clerkv1alpha1.ClerkUserSpec{Locked: new(false)}, user: ptUser(locked),
			want: []Step{{Kind: StepUnlock, Changes: []string{"unlock"}}}},
		{name: "locked false lifts a lockout Clerk set after failed sign-ins",
			spec: clerkv1alpha1.ClerkUserSpec{Locked: new(false)},
			user: ptUser(func(u *clerk.User) { u.Locked = true; u.LockoutExpiresInSeconds = new(int64(600)) }),
			want: []Step{{Kind: StepUnlock, Changes: []string{"unlock"}}}},
		{name: "locked false, Clerk not locked: no step",
			spec: clerkv1alpha1.ClerkUserSpec{Locked: new(false)}, user: ptUser()},
		{name: "ban and lock together: lock before ban",
			spec: clerkv1alpha1.ClerkUserSpec{Banned: new(true), Locked: new(true)}, user: ptUser(),
			want: []Step{{Kind: StepLock, Changes: []string{"lock"}}, {Kind: StepBan, Changes: []string{"ban"}}}},
		{name: "unban and unlock together: unban first",
			spec: clerkv1alpha1.ClerkUserSpec{Banned: new(false), Locked: new(false)}, user: ptUser(banned, locked),
			want: []Step{{Kind: StepUnban, Changes: []string{"unban"}}, {Kind: StepUnlock, Changes: []string{"unlock"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustPlan(t, tt.spec, clerkv1alpha1.ClerkUserStatus{}, tt.user)
			if diff := cmp.Diff(tt.want, got.Steps, ptFieldCmp); diff != "" {
				t.Errorf("plan().Steps mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanMFA(t *testing.T) {
	mfaOn := func(u *clerk.User) { u.TwoFactorEnabled, u.TOTPEnabled = true, true }
	tests := []struct {
		name      string
		mfa       *clerkv1alpha1.MFASpec
		lastToken string
		user      *clerk.User
		want      []Step
		wantToken string
	}{
		{name: "mfa unset, MFA on: not managed", user: ptUser(mfaOn)},
		{name: "disabled, Clerk reports MFA on: DisableMFA",
			mfa: &clerkv1alpha1.MFASpec{Disabled: true}, user: ptUser(mfaOn),
			want: []Step{{Kind: StepDisableMFA, Changes: []string{"disableMFA"}}}},
		{name: "disabled, only two_factor_enabled reported: DisableMFA",
			mfa: &clerkv1alpha1.MFASpec{Disabled: true}, user: ptUser(func(u *clerk.User) { u.TwoFactorEnabled = true }),
			want: []Step{{Kind: StepDisableMFA, Changes: []string{"disableMFA"}}}},
		{name: "disabled, Clerk reports MFA off: no call",
			mfa: &clerkv1alpha1.MFASpec{Disabled: true}, user: ptUser()},
		{name: "disabled false, MFA on: left to the user",
			mfa: &clerkv1alpha1.MFASpec{}, user: ptUser(mfaOn)},
		{name: "new resetToken, MFA on: one DisableMFA, token recorded",
			mfa: &clerkv1alpha1.MFASpec{ResetToken: "T-1"}, user: ptUser(mfaOn),
			want:      []Step{{Kind: StepDisableMFA, Changes: []string{"resetMFA"}}},
			wantToken: "T-1"},
		{name: "changed resetToken, MFA on: one DisableMFA, new token recorded",
			mfa: &clerkv1alpha1.MFASpec{ResetToken: "T-2"}, lastToken: "T-1", user: ptUser(mfaOn),
			want:      []Step{{Kind: StepDisableMFA, Changes: []string{"resetMFA"}}},
			wantToken: "T-2"},
		{name: "resetToken already applied: no call, status left as it is",
			mfa: &clerkv1alpha1.MFASpec{ResetToken: "T-1"}, lastToken: "T-1", user: ptUser(mfaOn)},
		{name: "new resetToken on a user without MFA: recorded without a call",
			mfa: &clerkv1alpha1.MFASpec{ResetToken: "T-1"}, user: ptUser(), wantToken: "T-1"},
		{name: "disabled and new resetToken, MFA on: ONE DisableMFA step for both",
			mfa: &clerkv1alpha1.MFASpec{Disabled: true, ResetToken: "T-1"}, user: ptUser(mfaOn),
			want:      []Step{{Kind: StepDisableMFA, Changes: []string{"disableMFA", "resetMFA"}}},
			wantToken: "T-1"},
		{name: "disabled and applied resetToken, MFA on: DisableMFA, no token to record",
			mfa: &clerkv1alpha1.MFASpec{Disabled: true, ResetToken: "T-1"}, lastToken: "T-1", user: ptUser(mfaOn),
			want: []Step{{Kind: StepDisableMFA, Changes: []string{"disableMFA"}}}},
		{name: "disabled and new resetToken, MFA off: no call, token recorded",
			mfa: &clerkv1alpha1.MFASpec{Disabled: true, ResetToken: "T-1"}, user: ptUser(), wantToken: "T-1"},
		{name: "resetToken removed from spec: nothing to do",
			mfa: &clerkv1alpha1.MFASpec{}, lastToken: "T-1", user: ptUser(mfaOn)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustPlan(t, clerkv1alpha1.ClerkUserSpec{UserID: "user_1", MFA: tt.mfa},
				clerkv1alpha1.ClerkUserStatus{LastMFAResetToken: tt.lastToken}, tt.user)
			if diff := cmp.Diff(tt.want, got.Steps, ptFieldCmp); diff != "" {
				t.Errorf("plan().Steps mismatch (-want +got):\n%s", diff)
			}
			if got.MFAResetToken != tt.wantToken {
				t.Errorf("plan().MFAResetToken = %q, want %q", got.MFAResetToken, tt.wantToken)
			}
		})
	}
}

// TestPlanOrder checks the safe order: access is restored first (unban, unlock), then profile,
// metadata and MFA, and access is taken away (lock, ban) last.
func TestPlanOrder(t *testing.T) {
	tests := []struct {
		name        string
		spec        clerkv1alpha1.ClerkUserSpec
		user        *clerk.User
		wantKinds   []StepKind
		wantPending []string
	}{
		{
			name: "restoring access: unban, unlock, profile, metadata, MFA",
			spec: clerkv1alpha1.ClerkUserSpec{Banned: new(false), Locked: new(false), FirstName: new("Alice"),
				PublicMetadata: ptJSON(`{"role":"admin"}`), MFA: &clerkv1alpha1.MFASpec{Disabled: true}},
			user: ptUser(func(u *clerk.User) {
				u.Banned, u.Locked, u.TwoFactorEnabled = true, true, true
			}),
			wantKinds:   []StepKind{StepUnban, StepUnlock, StepUpdateProfile, StepMetadata, StepDisableMFA},
			wantPending: []string{"unban", "unlock", "firstName", "publicMetadata.role", "disableMFA"},
		},
		{
			name: "taking access away: profile, metadata, MFA, lock, ban",
			spec: clerkv1alpha1.ClerkUserSpec{Banned: new(true), Locked: new(true), LastName: new(""),
				PrivateMetadata: ptJSON(`{"crmID":"C-77"}`), MFA: &clerkv1alpha1.MFASpec{ResetToken: "T"}},
			user: ptUser(func(u *clerk.User) {
				u.LastName, u.BackupCodeEnabled, u.TwoFactorEnabled = new("L"), true, true
			}),
			wantKinds:   []StepKind{StepUpdateProfile, StepMetadata, StepDisableMFA, StepLock, StepBan},
			wantPending: []string{"lastName", "privateMetadata.crmID", "resetMFA", "lock", "ban"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustPlan(t, tt.spec, clerkv1alpha1.ClerkUserStatus{}, tt.user)
			if diff := cmp.Diff(tt.wantKinds, ptKinds(got)); diff != "" {
				t.Errorf("step kinds mismatch (-want +got):\n%s", diff)
			}
			if !slices.IsSorted(ptKinds(got)) {
				t.Errorf("steps out of the safe order: %v", ptKinds(got))
			}
			if diff := cmp.Diff(tt.wantPending, got.PendingChanges(0)); diff != "" {
				t.Errorf("PendingChanges(0) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanPendingChanges(t *testing.T) {
	p := Plan{Steps: []Step{
		{Kind: StepUnban, Changes: []string{"unban"}},
		{Kind: StepUpdateProfile, Changes: []string{"firstName", "lastName"}},
		{Kind: StepMetadata, Changes: []string{"publicMetadata.role", "privateMetadata.crmID"}},
		{Kind: StepBan, Changes: []string{"ban"}},
	}}
	tests := []struct {
		from int
		want []string
	}{
		{0, []string{"unban", "firstName", "lastName", "publicMetadata.role", "privateMetadata.crmID", "ban"}},
		{1, []string{"firstName", "lastName", "publicMetadata.role", "privateMetadata.crmID", "ban"}},
		{3, []string{"ban"}},
		{4, nil},
		{10, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("from %d", tt.from), func(t *testing.T) {
			if diff := cmp.Diff(tt.want, p.PendingChanges(tt.from)); diff != "" {
				t.Errorf("PendingChanges(%d) mismatch (-want +got):\n%s", tt.from, diff)
			}
		})
	}
	t.Run("empty plan", func(t *testing.T) {
		if got := (Plan{}).PendingChanges(0); got != nil {
			t.Errorf("PendingChanges(0) of an empty plan = %q, want nil", got)
		}
	})
}

// TestPlanInSync: a user that already matches the spec needs no call at all.
func TestPlanInSync(t *testing.T) {
	tests := []struct {
		name   string
		spec   clerkv1alpha1.ClerkUserSpec
		status clerkv1alpha1.ClerkUserStatus
		user   func(t *testing.T) *clerk.User
	}{
		{
			name: "everything declared, Merge",
			spec: clerkv1alpha1.ClerkUserSpec{
				UserID: "user_1", ExternalID: "emp-1042", EmailAddress: "alice@example.com", Username: "alice",
				FirstName: new("Alice"), LastName: new(""),
				PublicMetadata:  ptJSON(`{"role":"admin","teams":["billing"],"prefs":{"theme":"dark","n":2}}`),
				PrivateMetadata: ptJSON(`{"crmID":"C-77","gone":null}`),
				UnsafeMetadata:  ptJSON(`{}`),
				MetadataPolicy:  clerkv1alpha1.MetadataPolicyMerge,
				Banned:          new(false), Locked: new(false),
				MFA: &clerkv1alpha1.MFASpec{Disabled: true, ResetToken: "T-1"},
			},
			status: clerkv1alpha1.ClerkUserStatus{LastMFAResetToken: "T-1",
				OwnedMetadataKeys: &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"prefs", "role", "teams"}, Private: []string{"crmID", "gone"}}},
			user: func(t *testing.T) *clerk.User {
				return ptUser(func(u *clerk.User) {
					u.ExternalID, u.Username, u.FirstName = new("emp-1042"), new("alice"), new("Alice")
					u.PublicMetadata = ptObj(t, `{"teams":["billing"],"prefs":{"n":2,"theme":"dark"},"role":"admin","appKey":{"x":1}}`)
					u.PrivateMetadata = ptObj(t, `{"crmID":"C-77","appSecret":"s"}`)
					u.UnsafeMetadata = ptObj(t, `{"fromFrontend":true}`)
				})
			},
		},
		{
			name: "everything declared, Replace",
			spec: clerkv1alpha1.ClerkUserSpec{
				Username: "alice", FirstName: new("Alice"),
				PublicMetadata: ptJSON(`{"role":"admin","teams":["billing"]}`),
				UnsafeMetadata: ptJSON(`{}`),
				MetadataPolicy: clerkv1alpha1.MetadataPolicyReplace,
				Banned:         new(true), Locked: new(true),
			},
			user: func(t *testing.T) *clerk.User {
				return ptUser(func(u *clerk.User) {
					u.Username, u.FirstName, u.Banned, u.Locked = new("alice"), new("Alice"), true, true
					u.PublicMetadata = ptObj(t, `{"teams":["billing"],"role":"admin"}`)
					u.PrivateMetadata = ptObj(t, `{"undeclared":"left alone"}`)
					u.UnsafeMetadata = nil // Clerk's null is the empty object
				})
			},
		},
		{
			name: "numbers that decode to different Go types but are the same JSON",
			spec: clerkv1alpha1.ClerkUserSpec{Username: "alice", PublicMetadata: ptJSON(`{"n":1,"f":1.5}`)},
			user: func(t *testing.T) *clerk.User {
				return ptUser(func(u *clerk.User) {
					u.Username = new("alice")
					u.PublicMetadata = map[string]any{"n": 1, "f": float32(1.5)}
				})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustPlan(t, tt.spec, tt.status, tt.user(t))
			if len(got.Steps) != 0 {
				t.Errorf("plan() of an in-sync user has steps %+v, want none", got.Steps)
			}
			if pending := got.PendingChanges(0); pending != nil {
				t.Errorf("PendingChanges(0) = %q, want nil", pending)
			}
			if got.MFAResetToken != "" {
				t.Errorf("MFAResetToken = %q, want \"\"", got.MFAResetToken)
			}
		})
	}
}

// metadataOf returns the three metadata objects of u, in the order public, private, unsafe.
func metadataOf(u *clerk.User) [3]map[string]any {
	return [3]map[string]any{u.PublicMetadata, u.PrivateMetadata, u.UnsafeMetadata}
}

func paramsOf(p clerk.MetadataParams) [3]map[string]any {
	return [3]map[string]any{p.PublicMetadata, p.PrivateMetadata, p.UnsafeMetadata}
}

func declaredOf(spec clerkv1alpha1.ClerkUserSpec) [3]*apiextensionsv1.JSON {
	return [3]*apiextensionsv1.JSON{spec.PublicMetadata, spec.PrivateMetadata, spec.UnsafeMetadata}
}

func ownedOf(o *clerkv1alpha1.OwnedMetadataKeys) [3][]string {
	if o == nil {
		return [3][]string{}
	}
	return [3][]string{o.Public, o.Private, o.Unsafe}
}

var metadataNames = [3]string{"publicMetadata", "privateMetadata", "unsafeMetadata"}

// applyMetadataStep returns what Clerk holds after the metadata step s: PATCH is an RFC 7386
// deep merge (null deletes at any depth, arrays replace), PUT replaces each object sent.
func applyMetadataStep(t *testing.T, u *clerk.User, s Step) *clerk.User {
	t.Helper()
	next := *u
	out := [3]*map[string]any{&next.PublicMetadata, &next.PrivateMetadata, &next.UnsafeMetadata}
	for i, patch := range paramsOf(s.Metadata) {
		if patch == nil {
			continue // not sent: untouched
		}
		if s.ReplaceMetadata {
			b, _ := json.Marshal(patch)
			*out[i] = ptObj(t, string(b))
			continue
		}
		doc, err := json.Marshal(nonNil(metadataOf(u)[i]))
		if err != nil {
			t.Fatal(err)
		}
		pb, err := json.Marshal(patch)
		if err != nil {
			t.Fatal(err)
		}
		merged, err := jsonpatch.MergePatch(doc, pb)
		if err != nil {
			t.Fatalf("apply merge patch %s to %s: %v", pb, doc, err)
		}
		*out[i] = ptObj(t, string(merged))
	}
	return &next
}

// checkMergeResult asserts that after holds every declared key exactly (declared nulls absent),
// no owned key that is no longer declared, and every other key of before unchanged.
func checkMergeResult(t *testing.T, spec clerkv1alpha1.ClerkUserSpec, status clerkv1alpha1.ClerkUserStatus, before, after *clerk.User) {
	t.Helper()
	for i, raw := range declaredOf(spec) {
		name := metadataNames[i]
		var declared map[string]any
		if raw != nil {
			declared = ptObj(t, string(raw.Raw))
		}
		got, was := metadataOf(after)[i], metadataOf(before)[i]
		for k, want := range declared {
			have, present := got[k]
			switch {
			case want == nil && present:
				t.Errorf("%s.%s is declared null but Clerk still holds it after the patch", name, k)
			case want != nil && !present:
				t.Errorf("%s.%s is declared but missing after the patch", name, k)
			case want != nil:
				if diff := cmp.Diff(want, have); diff != "" {
					t.Errorf("%s.%s after the patch differs from the spec (-spec +clerk):\n%s", name, k, diff)
				}
			}
		}
		for _, k := range ownedOf(status.OwnedMetadataKeys)[i] {
			if _, declared := declared[k]; declared {
				continue
			}
			if _, present := got[k]; present {
				t.Errorf("%s.%s was owned and is no longer declared, but Clerk still holds it", name, k)
			}
		}
		for k, v := range was {
			if _, declared := declared[k]; declared || slices.Contains(ownedOf(status.OwnedMetadataKeys)[i], k) {
				continue
			}
			if diff := cmp.Diff(v, got[k]); diff != "" {
				t.Errorf("%s.%s is the application's key and must be left alone (-before +after):\n%s", name, k, diff)
			}
		}
		for k := range got {
			if _, declared := declared[k]; !declared {
				if _, existed := was[k]; !existed {
					t.Errorf("%s.%s appeared in Clerk but is neither declared nor was there before", name, k)
				}
			}
		}
	}
}

// TestPlanMetadataMerge covers metadataPolicy Merge. Each case gives the exact patch and also
// applies it to Clerk's metadata with a real RFC 7386 merge: the result must hold exactly the
// declared keys, and planning again on the result must find nothing to do.
func TestPlanMetadataMerge(t *testing.T) {
	tests := []struct {
		name   string
		spec   clerkv1alpha1.ClerkUserSpec
		owned  *clerkv1alpha1.OwnedMetadataKeys
		clerk  [3]string // observed public, private, unsafe metadata as JSON; "" is Clerk's null
		want   [3]string // the patch per object; "" means the object is not sent
		change []string
		owns   *clerkv1alpha1.OwnedMetadataKeys
		after  [3]string // Clerk's objects after the patch; "" is the empty object
	}{
		{
			name:   "new key: set",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"role":"admin"}`)},
			clerk:  [3]string{`{}`},
			want:   [3]string{`{"role":"admin"}`},
			change: []string{"publicMetadata.role"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role"}},
			after:  [3]string{`{"role":"admin"}`},
		},
		{
			name:   "Clerk's metadata is null: set",
			spec:   clerkv1alpha1.ClerkUserSpec{PrivateMetadata: ptJSON(`{"crmID":"C-77"}`)},
			want:   [3]string{"", `{"crmID":"C-77"}`},
			change: []string{"privateMetadata.crmID"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Private: []string{"crmID"}},
			after:  [3]string{"", `{"crmID":"C-77"}`},
		},
		{
			name:  "key equal: no step, key owned from now on",
			spec:  clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"role":"admin"}`)},
			clerk: [3]string{`{"role":"admin","app":1}`},
			owns:  &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role"}},
			after: [3]string{`{"role":"admin","app":1}`},
		},
		{
			name:   "scalar differs: set, the application's keys left alone",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"role":"admin"}`)},
			clerk:  [3]string{`{"role":"user","appKey":{"a":1},"appList":[1]}`},
			want:   [3]string{`{"role":"admin"}`},
			change: []string{"publicMetadata.role"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role"}},
			after:  [3]string{`{"role":"admin","appKey":{"a":1},"appList":[1]}`},
		},
		{
			name:   "type changes: scalar to object",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"role":{"name":"admin"}}`)},
			clerk:  [3]string{`{"role":"admin"}`},
			want:   [3]string{`{"role":{"name":"admin"}}`},
			change: []string{"publicMetadata.role"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role"}},
			after:  [3]string{`{"role":{"name":"admin"}}`},
		},
		{
			name:   "nested object: set exactly, Clerk's extra nested keys sent as null",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"prefs":{"theme":"light","lang":"en"}}`)},
			clerk:  [3]string{`{"prefs":{"theme":"dark","lang":"en","beta":true,"extra":{"a":1}}}`},
			want:   [3]string{`{"prefs":{"theme":"light","beta":null,"extra":null}}`},
			change: []string{"publicMetadata.prefs"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"prefs"}},
			after:  [3]string{`{"prefs":{"theme":"light","lang":"en"}}`},
		},
		{
			name:   "deeply nested object: only the difference, removals as null",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"a":{"b":{"c":1},"k":"v"}}`)},
			clerk:  [3]string{`{"a":{"b":{"c":1,"d":{"e":2}},"k":"v"}}`},
			want:   [3]string{`{"a":{"b":{"d":null}}}`},
			change: []string{"publicMetadata.a"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"a"}},
			after:  [3]string{`{"a":{"b":{"c":1},"k":"v"}}`},
		},
		{
			name:   "nested object declared empty: every nested key removed",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"prefs":{}}`)},
			clerk:  [3]string{`{"prefs":{"theme":"dark"}}`},
			want:   [3]string{`{"prefs":{"theme":null}}`},
			change: []string{"publicMetadata.prefs"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"prefs"}},
			after:  [3]string{`{"prefs":{}}`},
		},
		{
			name:   "arrays replace, they are not merged",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"teams":["billing"]}`)},
			clerk:  [3]string{`{"teams":["billing","ops"]}`},
			want:   [3]string{`{"teams":["billing"]}`},
			change: []string{"publicMetadata.teams"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"teams"}},
			after:  [3]string{`{"teams":["billing"]}`},
		},
		{
			name:   "array of objects inside an object replaces",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"cfg":{"list":[{"a":1}]}}`)},
			clerk:  [3]string{`{"cfg":{"list":[{"a":1,"b":2},{"c":3}]}}`},
			want:   [3]string{`{"cfg":{"list":[{"a":1}]}}`},
			change: []string{"publicMetadata.cfg"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"cfg"}},
			after:  [3]string{`{"cfg":{"list":[{"a":1}]}}`},
		},
		{
			name:   "object replaced by an array",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"x":[1,2]}`)},
			clerk:  [3]string{`{"x":{"a":1}}`},
			want:   [3]string{`{"x":[1,2]}`},
			change: []string{"publicMetadata.x"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"x"}},
			after:  [3]string{`{"x":[1,2]}`},
		},
		{
			name:   "array replaced by an object",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"x":{"a":1}}`)},
			clerk:  [3]string{`{"x":[1,2]}`},
			want:   [3]string{`{"x":{"a":1}}`},
			change: []string{"publicMetadata.x"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"x"}},
			after:  [3]string{`{"x":{"a":1}}`},
		},
		{
			name:   "declared null deletes the key",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"legacy":null}`)},
			clerk:  [3]string{`{"legacy":{"x":1},"app":2}`},
			want:   [3]string{`{"legacy":null}`},
			change: []string{"publicMetadata.legacy"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"legacy"}},
			after:  [3]string{`{"app":2}`},
		},
		{
			name:  "declared null, key already absent: no step",
			spec:  clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"legacy":null}`)},
			clerk: [3]string{`{"app":2}`},
			owns:  &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"legacy"}},
			after: [3]string{`{"app":2}`},
		},
		{
			name:   "owned key removed from the spec: deleted with null",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"role":"admin"}`)},
			owned:  &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"old", "role"}},
			clerk:  [3]string{`{"role":"admin","old":{"deep":1},"app":"y"}`},
			want:   [3]string{`{"old":null}`},
			change: []string{"publicMetadata.old"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role"}},
			after:  [3]string{`{"role":"admin","app":"y"}`},
		},
		{
			name:  "owned key removed from the spec and already gone from Clerk: no step",
			spec:  clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"role":"admin"}`)},
			owned: &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"old", "role"}},
			clerk: [3]string{`{"role":"admin"}`},
			owns:  &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role"}},
			after: [3]string{`{"role":"admin"}`},
		},
		{
			name:   "keys the application wrote itself are never deleted",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"role":"admin"}`), PrivateMetadata: ptJSON(`{}`)},
			owned:  &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role"}},
			clerk:  [3]string{`{"role":"user","onboarded":true}`, `{"stripeID":"cus_1"}`, `{"theme":"dark"}`},
			want:   [3]string{`{"role":"admin"}`},
			change: []string{"publicMetadata.role"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role"}},
			after:  [3]string{`{"role":"admin","onboarded":true}`, `{"stripeID":"cus_1"}`, `{"theme":"dark"}`},
		},
		{
			name:   "whole metadata field removed from the spec: its owned keys deleted",
			spec:   clerkv1alpha1.ClerkUserSpec{UserID: "user_1"},
			owned:  &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role", "teams"}, Unsafe: []string{"gone"}},
			clerk:  [3]string{`{"role":"admin","teams":["a"],"app":1}`, `{"x":1}`},
			want:   [3]string{`{"role":null,"teams":null}`},
			change: []string{"publicMetadata.role", "publicMetadata.teams"},
			owns:   nil,
			after:  [3]string{`{"app":1}`, `{"x":1}`},
		},
		{
			name:   "one field removed, another still declared",
			spec:   clerkv1alpha1.ClerkUserSpec{PrivateMetadata: ptJSON(`{"crmID":"C-77"}`)},
			owned:  &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role"}, Private: []string{"crmID"}},
			clerk:  [3]string{`{"role":"admin"}`, `{"crmID":"C-77"}`},
			want:   [3]string{`{"role":null}`},
			change: []string{"publicMetadata.role"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Private: []string{"crmID"}},
			after:  [3]string{`{}`, `{"crmID":"C-77"}`},
		},
		{
			name:   "object declared empty: every owned key deleted, nothing owned any more",
			spec:   clerkv1alpha1.ClerkUserSpec{UnsafeMetadata: ptJSON(`{}`)},
			owned:  &clerkv1alpha1.OwnedMetadataKeys{Unsafe: []string{"a", "b"}},
			clerk:  [3]string{"", "", `{"a":1,"b":2,"c":3}`},
			want:   [3]string{"", "", `{"a":null,"b":null}`},
			change: []string{"unsafeMetadata.a", "unsafeMetadata.b"},
			owns:   nil,
			after:  [3]string{"", "", `{"c":3}`},
		},
		{
			name: "changes to all three objects: one PATCH carrying all of them",
			spec: clerkv1alpha1.ClerkUserSpec{
				PublicMetadata:  ptJSON(`{"role":"admin","teams":["billing"]}`),
				PrivateMetadata: ptJSON(`{"crmID":"C-77"}`),
				UnsafeMetadata:  ptJSON(`{"tour":{"done":true}}`),
			},
			owned:  &clerkv1alpha1.OwnedMetadataKeys{Private: []string{"crmID", "legacy"}},
			clerk:  [3]string{`{"role":"user","teams":["billing"]}`, `{"legacy":1}`, `{"tour":{"done":false,"step":3}}`},
			want:   [3]string{`{"role":"admin"}`, `{"crmID":"C-77","legacy":null}`, `{"tour":{"done":true,"step":null}}`},
			change: []string{"publicMetadata.role", "privateMetadata.crmID", "privateMetadata.legacy", "unsafeMetadata.tour"},
			owns: &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role", "teams"}, Private: []string{"crmID"},
				Unsafe: []string{"tour"}},
			after: [3]string{`{"role":"admin","teams":["billing"]}`, `{"crmID":"C-77"}`, `{"tour":{"done":true}}`},
		},
		{
			name:   "default policy (empty) is Merge",
			spec:   clerkv1alpha1.ClerkUserSpec{MetadataPolicy: "", PublicMetadata: ptJSON(`{"b":2}`)},
			clerk:  [3]string{`{"a":1}`},
			want:   [3]string{`{"b":2}`},
			change: []string{"publicMetadata.b"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"b"}},
			after:  [3]string{`{"a":1,"b":2}`},
		},
		{
			name: "owned keys are exactly the declared keys, sorted",
			spec: clerkv1alpha1.ClerkUserSpec{MetadataPolicy: clerkv1alpha1.MetadataPolicyMerge,
				PublicMetadata: ptJSON(`{"z":1,"a":2,"m":null}`)},
			owned:  &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"q"}},
			clerk:  [3]string{`{"z":1,"a":2,"q":0,"app":true}`},
			want:   [3]string{`{"q":null}`},
			change: []string{"publicMetadata.q"},
			owns:   &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"a", "m", "z"}},
			after:  [3]string{`{"z":1,"a":2,"app":true}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := ptUser(func(u *clerk.User) {
				out := [3]*map[string]any{&u.PublicMetadata, &u.PrivateMetadata, &u.UnsafeMetadata}
				for i, raw := range tt.clerk {
					if raw != "" {
						*out[i] = ptObj(t, raw)
					}
				}
			})
			status := clerkv1alpha1.ClerkUserStatus{OwnedMetadataKeys: tt.owned}
			got := mustPlan(t, tt.spec, status, user)

			var wantSteps []Step
			if tt.change != nil {
				s := Step{Kind: StepMetadata, Changes: tt.change}
				out := [3]*map[string]any{&s.Metadata.PublicMetadata, &s.Metadata.PrivateMetadata, &s.Metadata.UnsafeMetadata}
				for i, raw := range tt.want {
					if raw != "" {
						*out[i] = ptObj(t, raw)
					}
				}
				wantSteps = []Step{s}
			}
			if diff := cmp.Diff(wantSteps, got.Steps, ptFieldCmp); diff != "" {
				t.Fatalf("plan().Steps mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.owns, got.OwnedMetadataKeys); diff != "" {
				t.Errorf("plan().OwnedMetadataKeys mismatch (-want +got):\n%s", diff)
			}

			after := user
			if len(got.Steps) == 1 {
				after = applyMetadataStep(t, user, got.Steps[0])
			}
			for i, raw := range tt.after {
				want := map[string]any{}
				if raw != "" {
					want = ptObj(t, raw)
				}
				if diff := cmp.Diff(want, nonNil(metadataOf(after)[i])); diff != "" {
					t.Errorf("%s after the patch mismatch (-want +got):\n%s", metadataNames[i], diff)
				}
			}
			checkMergeResult(t, tt.spec, status, user, after)

			// The patch converges: with the new owned keys, the patched user is in sync.
			again := mustPlan(t, tt.spec, clerkv1alpha1.ClerkUserStatus{OwnedMetadataKeys: got.OwnedMetadataKeys}, after)
			if len(again.Steps) != 0 {
				t.Errorf("plan() after applying the patch still has steps %+v", again.Steps)
			}
			if diff := cmp.Diff(got.OwnedMetadataKeys, again.OwnedMetadataKeys); diff != "" {
				t.Errorf("owned keys changed on the second plan (-first +second):\n%s", diff)
			}
		})
	}
}

// TestPlanMetadataNestedNull: a null nested inside a declared object means "absent", the only
// thing a deep-merge PATCH can make of it. A user whose object lacks that key is in sync.
func TestPlanMetadataNestedNull(t *testing.T) {
	spec := clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"prefs":{"theme":"dark","beta":null}}`)}
	t.Run("nested key present: removed", func(t *testing.T) {
		user := ptUser(func(u *clerk.User) { u.PublicMetadata = ptObj(t, `{"prefs":{"theme":"dark","beta":true}}`) })
		got := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{}, user)
		if diff := cmp.Diff([]StepKind{StepMetadata}, ptKinds(got)); diff != "" {
			t.Fatalf("step kinds mismatch (-want +got):\n%s", diff)
		}
		after := applyMetadataStep(t, user, got.Steps[0])
		if diff := cmp.Diff(ptObj(t, `{"prefs":{"theme":"dark"}}`), after.PublicMetadata); diff != "" {
			t.Errorf("publicMetadata after the patch mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("nested key absent: in sync", func(t *testing.T) {
		user := ptUser(func(u *clerk.User) { u.PublicMetadata = ptObj(t, `{"prefs":{"theme":"dark"}}`) })
		got := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{}, user)
		if len(got.Steps) != 0 {
			t.Errorf("plan() has steps %+v for a user already in sync; it would write on every sync", got.Steps)
		}
	})
	t.Run("Clerk stores the nested null: removed once, then in sync", func(t *testing.T) {
		user := ptUser(func(u *clerk.User) { u.PublicMetadata = ptObj(t, `{"prefs":{"theme":"dark","beta":null}}`) })
		got := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{}, user)
		if len(got.Steps) != 1 {
			t.Fatalf("plan() steps = %+v, want one metadata step", got.Steps)
		}
		after := applyMetadataStep(t, user, got.Steps[0])
		if diff := cmp.Diff(ptObj(t, `{"prefs":{"theme":"dark"}}`), after.PublicMetadata); diff != "" {
			t.Errorf("publicMetadata after the patch mismatch (-want +got):\n%s", diff)
		}
		again := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{OwnedMetadataKeys: got.OwnedMetadataKeys}, after)
		if len(again.Steps) != 0 {
			t.Errorf("plan() after applying the patch still has steps %+v", again.Steps)
		}
	})
	t.Run("key absent: set without the null member", func(t *testing.T) {
		user := ptUser()
		got := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{}, user)
		if len(got.Steps) != 1 {
			t.Fatalf("plan() steps = %+v, want one metadata step", got.Steps)
		}
		after := applyMetadataStep(t, user, got.Steps[0])
		if diff := cmp.Diff(ptObj(t, `{"prefs":{"theme":"dark"}}`), after.PublicMetadata); diff != "" {
			t.Errorf("publicMetadata after the patch mismatch (-want +got):\n%s", diff)
		}
		again := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{OwnedMetadataKeys: got.OwnedMetadataKeys}, after)
		if len(again.Steps) != 0 {
			t.Errorf("plan() after applying the patch still has steps %+v", again.Steps)
		}
	})
}

// TestPlanMetadataReplace covers metadataPolicy Replace: each declared object is PUT as a whole
// when it differs; objects not declared are left alone, and nothing is owned.
func TestPlanMetadataReplace(t *testing.T) {
	tests := []struct {
		name   string
		spec   clerkv1alpha1.ClerkUserSpec
		owned  *clerkv1alpha1.OwnedMetadataKeys
		clerk  [3]string
		want   [3]string // the PUT body per object; "" means not sent
		change []string
	}{
		{
			name:   "declared object differs: PUT it whole, the other objects not sent",
			spec:   clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"role":"admin"}`)},
			clerk:  [3]string{`{"role":"user","app":1}`, `{"secret":"x"}`, `{"u":1}`},
			want:   [3]string{`{"role":"admin"}`},
			change: []string{"publicMetadata"},
		},
		{
			name:  "declared object equal: no step",
			spec:  clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"role":"admin","n":{"a":[1]}}`)},
			clerk: [3]string{`{"n":{"a":[1]},"role":"admin"}`, `{"secret":"x"}`},
		},
		{
			name:   "declared empty object: PUT {} clears it",
			spec:   clerkv1alpha1.ClerkUserSpec{UnsafeMetadata: ptJSON(`{}`)},
			clerk:  [3]string{"", "", `{"a":1}`},
			want:   [3]string{"", "", `{}`},
			change: []string{"unsafeMetadata"},
		},
		{
			name:  "declared empty object, Clerk's is null: no step",
			spec:  clerkv1alpha1.ClerkUserSpec{UnsafeMetadata: ptJSON(`{}`)},
			clerk: [3]string{"", "", ""},
		},
		{
			name: "two declared, one differs: only that one is sent",
			spec: clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"a":1}`),
				PrivateMetadata: ptJSON(`{"b":[1,2]}`)},
			clerk:  [3]string{`{"a":1}`, `{"b":[2,1]}`},
			want:   [3]string{"", `{"b":[1,2]}`},
			change: []string{"privateMetadata"},
		},
		{
			name: "all three differ: one PUT",
			spec: clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"a":1}`),
				PrivateMetadata: ptJSON(`{"b":2}`), UnsafeMetadata: ptJSON(`{"c":{"d":null}}`)},
			clerk:  [3]string{`{"a":0}`, ``, `{"c":{"d":1,"e":2}}`},
			want:   [3]string{`{"a":1}`, `{"b":2}`, `{"c":{"d":null}}`},
			change: []string{"publicMetadata", "privateMetadata", "unsafeMetadata"},
		},
		{
			name:  "undeclared objects are left alone, even with keys owned under Merge before",
			spec:  clerkv1alpha1.ClerkUserSpec{UserID: "user_1"},
			owned: &clerkv1alpha1.OwnedMetadataKeys{Public: []string{"role"}},
			clerk: [3]string{`{"role":"admin"}`, `{"x":1}`, `{"y":2}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.MetadataPolicy = clerkv1alpha1.MetadataPolicyReplace
			user := ptUser(func(u *clerk.User) {
				out := [3]*map[string]any{&u.PublicMetadata, &u.PrivateMetadata, &u.UnsafeMetadata}
				for i, raw := range tt.clerk {
					if raw != "" {
						*out[i] = ptObj(t, raw)
					}
				}
			})
			got := mustPlan(t, tt.spec, clerkv1alpha1.ClerkUserStatus{OwnedMetadataKeys: tt.owned}, user)
			var wantSteps []Step
			if tt.change != nil {
				s := Step{Kind: StepMetadata, Changes: tt.change, ReplaceMetadata: true}
				out := [3]*map[string]any{&s.Metadata.PublicMetadata, &s.Metadata.PrivateMetadata, &s.Metadata.UnsafeMetadata}
				for i, raw := range tt.want {
					if raw != "" {
						*out[i] = ptObj(t, raw)
					}
				}
				wantSteps = []Step{s}
			}
			if diff := cmp.Diff(wantSteps, got.Steps, ptFieldCmp); diff != "" {
				t.Fatalf("plan().Steps mismatch (-want +got):\n%s", diff)
			}
			if got.OwnedMetadataKeys != nil {
				t.Errorf("plan().OwnedMetadataKeys = %+v, want nil with Replace", got.OwnedMetadataKeys)
			}
			if len(got.Steps) == 1 {
				after := applyMetadataStep(t, user, got.Steps[0])
				for i, raw := range declaredOf(tt.spec) {
					want := metadataOf(user)[i]
					if raw != nil {
						want = ptObj(t, string(raw.Raw))
					}
					if diff := cmp.Diff(nonNil(want), nonNil(metadataOf(after)[i])); diff != "" {
						t.Errorf("%s after the PUT mismatch (-want +got):\n%s", metadataNames[i], diff)
					}
				}
				if again := mustPlan(t, tt.spec, clerkv1alpha1.ClerkUserStatus{}, after); len(again.Steps) != 0 {
					t.Errorf("plan() after the PUT still has steps %+v", again.Steps)
				}
			}
		})
	}
}

func TestPlanInvalidSpec(t *testing.T) {
	big := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name      string
		spec      clerkv1alpha1.ClerkUserSpec
		clerk     [3]string
		wantField []string // fields the error must name
		notField  []string // fields the error must not name
		wantIn    string   // text the reason must contain
	}{
		{name: "publicMetadata is an array",
			spec:      clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`[1,2]`)},
			wantField: []string{"spec.publicMetadata"}, wantIn: "JSON object"},
		{name: "privateMetadata is a string",
			spec:      clerkv1alpha1.ClerkUserSpec{PrivateMetadata: ptJSON(`"x"`)},
			wantField: []string{"spec.privateMetadata"}, wantIn: "JSON object"},
		{name: "unsafeMetadata is a number",
			spec:      clerkv1alpha1.ClerkUserSpec{UnsafeMetadata: ptJSON(`42`)},
			wantField: []string{"spec.unsafeMetadata"}, wantIn: "JSON object"},
		{name: "publicMetadata is not JSON",
			spec:      clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{`)},
			wantField: []string{"spec.publicMetadata"}, wantIn: "JSON"},
		{name: "invalid with Replace too",
			spec:      clerkv1alpha1.ClerkUserSpec{MetadataPolicy: clerkv1alpha1.MetadataPolicyReplace, PrivateMetadata: ptJSON(`[]`)},
			wantField: []string{"spec.privateMetadata"}, wantIn: "JSON object"},
		{name: "one object over 8 KB (Merge)",
			spec:      clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"blob":"` + big(9000) + `"}`)},
			wantField: []string{"spec.publicMetadata"}, notField: []string{"spec.privateMetadata", "spec.unsafeMetadata"},
			wantIn: "8192"},
		{name: "one object over 8 KB (Replace)",
			spec: clerkv1alpha1.ClerkUserSpec{MetadataPolicy: clerkv1alpha1.MetadataPolicyReplace,
				PrivateMetadata: ptJSON(`{"blob":"` + big(9000) + `"}`)},
			wantField: []string{"spec.privateMetadata"}, notField: []string{"spec.publicMetadata", "spec.unsafeMetadata"},
			wantIn: "8192"},
		{name: "three objects together over 8 KB",
			spec: clerkv1alpha1.ClerkUserSpec{
				PublicMetadata:  ptJSON(`{"a":"` + big(3000) + `"}`),
				PrivateMetadata: ptJSON(`{"b":"` + big(3000) + `"}`),
				UnsafeMetadata:  ptJSON(`{"c":"` + big(3000) + `"}`)},
			wantField: []string{"spec.publicMetadata", "spec.privateMetadata", "spec.unsafeMetadata"}, wantIn: "8192"},
		{name: "declared keys and the application's keys together over 8 KB",
			spec:      clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"mine":"` + big(4000) + `"}`)},
			clerk:     [3]string{`{"app":"` + big(5000) + `"}`},
			wantField: []string{"spec.publicMetadata"}, wantIn: "8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := ptUser(func(u *clerk.User) {
				out := [3]*map[string]any{&u.PublicMetadata, &u.PrivateMetadata, &u.UnsafeMetadata}
				for i, raw := range tt.clerk {
					if raw != "" {
						*out[i] = ptObj(t, raw)
					}
				}
			})
			// Other changes in the same spec must not be planned either.
			tt.spec.Banned = new(true)
			got, err := plan(&tt.spec, &clerkv1alpha1.ClerkUserStatus{}, user)
			var invalid *InvalidSpecError
			if !errors.As(err, &invalid) {
				t.Fatalf("plan() error = %v (%T), want *InvalidSpecError", err, err)
			}
			for _, f := range tt.wantField {
				if !strings.Contains(invalid.Field, f) {
					t.Errorf("InvalidSpecError.Field = %q, want it to name %s", invalid.Field, f)
				}
			}
			for _, f := range tt.notField {
				if strings.Contains(invalid.Field, f) {
					t.Errorf("InvalidSpecError.Field = %q names %s, which the spec does not declare", invalid.Field, f)
				}
			}
			if !strings.Contains(invalid.Reason, tt.wantIn) {
				t.Errorf("InvalidSpecError.Reason = %q, want it to contain %q", invalid.Reason, tt.wantIn)
			}
			if !strings.HasPrefix(err.Error(), invalid.Field+": ") {
				t.Errorf("Error() = %q, want it to start with the field", err.Error())
			}
			if strings.Contains(invalid.Reason, big(100)) {
				t.Errorf("InvalidSpecError.Reason contains the metadata value")
			}
			if diff := cmp.Diff(Plan{}, got, ptFieldCmp); diff != "" {
				t.Errorf("plan() with an error returned a plan (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlanMetadataSizeWithinLimit: large metadata under 8 KB in total is planned normally, and
// the limit is about what the spec would write, not about what the application keeps.
func TestPlanMetadataSizeWithinLimit(t *testing.T) {
	big := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name  string
		spec  clerkv1alpha1.ClerkUserSpec
		clerk string
		want  []StepKind
	}{
		{name: "7 KB declared",
			spec: clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"blob":"` + big(7000) + `"}`)},
			want: []StepKind{StepMetadata}},
		{name: "no metadata declared: the application's metadata, however large, blocks nothing",
			spec:  clerkv1alpha1.ClerkUserSpec{Banned: new(true)},
			clerk: `{"html":"` + strings.Repeat("<b>", 2500) + `"}`,
			want:  []StepKind{StepBan}},
		{name: "declared keys in sync: no metadata write, nothing to check",
			spec:  clerkv1alpha1.ClerkUserSpec{Banned: new(true), PublicMetadata: ptJSON(`{"role":"admin"}`)},
			clerk: `{"role":"admin","html":"` + strings.Repeat("<b>", 2500) + `"}`,
			want:  []StepKind{StepBan}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := ptUser()
			if tt.clerk != "" {
				user.PublicMetadata = ptObj(t, tt.clerk)
			}
			got := mustPlan(t, tt.spec, clerkv1alpha1.ClerkUserStatus{}, user)
			if diff := cmp.Diff(tt.want, ptKinds(got)); diff != "" {
				t.Errorf("step kinds mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlanNoMetadataValuesInChanges: Step.Changes and PendingChanges name fields and keys only,
// never a metadata value (private metadata must not leak into status, events or logs).
func TestPlanNoMetadataValuesInChanges(t *testing.T) {
	const secret = "s3cr3t"
	specMeta := func(tag string) *apiextensionsv1.JSON {
		return ptJSON(fmt.Sprintf(`{"key%[1]s":"%[2]s-%[1]s-new","nested%[1]s":{"deep":"%[2]s-%[1]s-deep"},"list%[1]s":["%[2]s-%[1]s-item"],"del%[1]s":null}`, tag, secret))
	}
	clerkMeta := func(t *testing.T, tag string) map[string]any {
		return ptObj(t, fmt.Sprintf(`{"key%[1]s":"%[2]s-%[1]s-old","nested%[1]s":{"deep":"x","old":"%[2]s-%[1]s-nested-old"},"del%[1]s":"%[2]s-%[1]s-del","owned%[1]s":"%[2]s-%[1]s-owned","app%[1]s":"%[2]s-%[1]s-app"}`, tag, secret))
	}
	changeName := regexp.MustCompile(`^(publicMetadata|privateMetadata|unsafeMetadata)(\.(key|nested|list|del|owned)(Pub|Priv|Uns))?$`)
	for _, policy := range []clerkv1alpha1.MetadataPolicy{clerkv1alpha1.MetadataPolicyMerge, clerkv1alpha1.MetadataPolicyReplace} {
		t.Run(string(policy), func(t *testing.T) {
			spec := clerkv1alpha1.ClerkUserSpec{MetadataPolicy: policy, FirstName: new("Alice"),
				PublicMetadata: specMeta("Pub"), PrivateMetadata: specMeta("Priv"), UnsafeMetadata: specMeta("Uns")}
			status := clerkv1alpha1.ClerkUserStatus{OwnedMetadataKeys: &clerkv1alpha1.OwnedMetadataKeys{
				Public: []string{"ownedPub"}, Private: []string{"ownedPriv"}, Unsafe: []string{"ownedUns"}}}
			user := ptUser(func(u *clerk.User) {
				u.PublicMetadata, u.PrivateMetadata, u.UnsafeMetadata = clerkMeta(t, "Pub"), clerkMeta(t, "Priv"), clerkMeta(t, "Uns")
			})
			got := mustPlan(t, spec, status, user)
			var metaSteps int
			for _, s := range got.Steps {
				if s.Kind == StepMetadata {
					metaSteps++
				}
			}
			if metaSteps != 1 {
				t.Fatalf("plan() has %d metadata steps, want 1: %+v", metaSteps, got.Steps)
			}
			pending := got.PendingChanges(0)
			if len(pending) < 4 {
				t.Fatalf("PendingChanges(0) = %q, want the profile change and the metadata changes", pending)
			}
			for _, c := range pending {
				if strings.Contains(c, secret) {
					t.Errorf("PendingChanges holds a metadata value: %q", c)
				}
				if c != "firstName" && !changeName.MatchString(c) {
					t.Errorf("PendingChanges entry %q is not a field or field.key name", c)
				}
			}
			for _, s := range got.Steps {
				if joined := strings.Join(s.Changes, ", "); strings.Contains(joined, secret) {
					t.Errorf("Step %d Changes hold a metadata value: %q", s.Kind, joined)
				}
			}
		})
	}
}

// ptBigNumber is a JSON number of n digits: exact text in, exact size counted, and no float64
// can hold it (above about 309 digits it is out of float64's range).
func ptBigNumber(n int) string { return "9" + strings.Repeat("8", n-1) }

// TestPlanMetadataExactNumbers: metadata numbers are compared by exact value (never through
// float64) and written in the declared text, with both policies, nested in objects and arrays.
// Each case also applies the step (an independent RFC 7386 merge, or a PUT) and plans again:
// the declared text must be what Clerk then holds, and nothing is left to do.
func TestPlanMetadataExactNumbers(t *testing.T) {
	const (
		big    = `1098765432109876543`
		bigOff = `1098765432109876544` // the same float64 as big
	)
	tests := []struct {
		name     string
		policy   clerkv1alpha1.MetadataPolicy
		declared string // spec.publicMetadata
		clerk    string // Clerk's public_metadata
		want     string // the metadata step's public_metadata; "" means no step
	}{
		{name: "64-bit integer equal: no write", declared: `{"id":` + big + `}`, clerk: `{"id":` + big + `}`},
		{name: "64-bit integer off by one: write the declared text",
			declared: `{"id":` + big + `}`, clerk: `{"id":` + bigOff + `,"app":1}`, want: `{"id":` + big + `}`},
		{name: "0.1 equal: no write", declared: `{"d":0.1}`, clerk: `{"d":0.1}`},
		{name: "-0.1 equal: no write", declared: `{"d":-0.1}`, clerk: `{"d":-0.1}`},
		{name: "0.1 against a decimal with the same float64: write",
			declared: `{"d":0.1}`, clerk: `{"d":0.10000000000000001}`, want: `{"d":0.1}`},
		{name: "-0.1 against 0.1: write", declared: `{"d":-0.1}`, clerk: `{"d":0.1}`, want: `{"d":-0.1}`},
		{name: "same value in another notation: no write",
			declared: `{"a":1.0,"b":1e2,"c":-0,"d":0.5e1,"e":12.50,"f":1E-1}`,
			clerk:    `{"a":1,"b":100,"c":0,"d":5,"e":12.5,"f":0.1}`},
		{name: "out of float64's range, equal: no write", declared: `{"h":1e400}`, clerk: `{"h":10e399}`},
		{name: "out of float64's range, differs: write", declared: `{"h":1e400}`, clerk: `{"h":1e401}`, want: `{"h":1e400}`},
		{name: "nested in objects: only the differing member, exact",
			declared: `{"a":{"b":{"n":` + big + `,"d":0.1,"keep":"x"}}}`,
			clerk:    `{"a":{"b":{"n":` + bigOff + `,"d":0.1,"keep":"x"}}}`,
			want:     `{"a":{"b":{"n":` + big + `}}}`},
		{name: "nested in arrays: the array is written whole, exact",
			declared: `{"l":[` + big + `,{"d":-0.1},[0.1]]}`,
			clerk:    `{"l":[` + bigOff + `,{"d":-0.1},[0.1]]}`,
			want:     `{"l":[` + big + `,{"d":-0.1},[0.1]]}`},
		{name: "nested in arrays, same values in another notation: no write",
			declared: `{"l":[1.0,{"d":1e2}],"o":{"x":[` + big + `]}}`,
			clerk:    `{"l":[1,{"d":100}],"o":{"x":[` + big + `]}}`},
		{name: "Replace: 64-bit integer equal: no write", policy: clerkv1alpha1.MetadataPolicyReplace,
			declared: `{"id":` + big + `,"d":0.1}`, clerk: `{"d":0.1,"id":` + big + `}`},
		{name: "Replace: 64-bit integer off by one: PUT the declared object exactly", policy: clerkv1alpha1.MetadataPolicyReplace,
			declared: `{"id":` + big + `,"d":0.1}`, clerk: `{"id":` + bigOff + `,"d":0.1}`, want: `{"id":` + big + `,"d":0.1}`},
		{name: "Replace: same value in another notation: no write", policy: clerkv1alpha1.MetadataPolicyReplace,
			declared: `{"n":{"a":[1.0,1e2]}}`, clerk: `{"n":{"a":[1,100]}}`},
		{name: "Replace: nested decimal differs: PUT", policy: clerkv1alpha1.MetadataPolicyReplace,
			declared: `{"n":{"a":[0.1]}}`, clerk: `{"n":{"a":[0.10000000000000001]}}`, want: `{"n":{"a":[0.1]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := clerkv1alpha1.ClerkUserSpec{MetadataPolicy: tt.policy, PublicMetadata: ptJSON(tt.declared)}
			user := ptUser(func(u *clerk.User) { u.PublicMetadata = ptObj(t, tt.clerk) })
			got := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{}, user)
			var wantSteps []Step
			if tt.want != "" {
				s := Step{Kind: StepMetadata, ReplaceMetadata: tt.policy == clerkv1alpha1.MetadataPolicyReplace,
					Metadata: clerk.MetadataParams{PublicMetadata: ptObj(t, tt.want)}}
				if s.ReplaceMetadata {
					s.Changes = []string{"publicMetadata"}
				} else {
					s.Changes = []string{"publicMetadata." + sortedKeys(s.Metadata.PublicMetadata)[0]}
				}
				wantSteps = []Step{s}
			}
			// json.Number compares as text: the step must carry the declared text exactly.
			if diff := cmp.Diff(wantSteps, got.Steps, ptFieldCmp); diff != "" {
				t.Fatalf("plan().Steps mismatch (-want +got):\n%s", diff)
			}
			if len(got.Steps) == 0 {
				return
			}
			// The request body holds the declared numbers verbatim (keys in json.Marshal's order).
			wantBody, _ := json.Marshal(ptObj(t, tt.want))
			if b, err := json.Marshal(got.Steps[0].Metadata); err != nil || !strings.Contains(string(b), string(wantBody)) {
				t.Errorf("request body %s (err %v), want it to hold %s", b, err, wantBody)
			}
			after := applyMetadataStep(t, user, got.Steps[0])
			for k, v := range ptObj(t, tt.declared) {
				if diff := cmp.Diff(v, after.PublicMetadata[k]); diff != "" {
					t.Errorf("publicMetadata.%s after the write is not the declared text (-want +got):\n%s", k, diff)
				}
			}
			if again := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{OwnedMetadataKeys: got.OwnedMetadataKeys}, after); len(again.Steps) != 0 {
				t.Errorf("plan() after the write still has steps %+v", again.Steps)
			}
		})
	}
}

// TestPlanJSONEqual covers the comparison behind every metadata decision.
func TestPlanJSONEqual(t *testing.T) {
	num := func(s string) json.Number { return json.Number(s) }
	tests := []struct {
		name string
		a, b any
		want bool
	}{
		{"equal 64-bit integers", num("1098765432109876543"), num("1098765432109876543"), true},
		{"64-bit integers one apart", num("1098765432109876543"), num("1098765432109876544"), false},
		{"1.0 and 1", num("1.0"), num("1"), true},
		{"1e2 and 100", num("1e2"), num("100"), true},
		{"1E+2 and 100.00", num("1E+2"), num("100.00"), true},
		{"0.1 and 1e-1", num("0.1"), num("1e-1"), true},
		{"0.1 and 0.10000000000000001", num("0.1"), num("0.10000000000000001"), false},
		{"-0.1 and 0.1", num("-0.1"), num("0.1"), false},
		{"-0 and 0.0", num("-0"), num("0.0"), true},
		{"0 and 0e999999999999999999999", num("0"), num("0e999999999999999999999"), true},
		{"1e999999999999999999999 and 10e999999999999999999998", num("1e999999999999999999999"), num("10e999999999999999999998"), true},
		{"1e400 and 1e401", num("1e400"), num("1e401"), false},
		{"json.Number and float64", num("1.5"), 1.5, true},
		{"json.Number and int", num("3"), 3, true},
		{"json.Number and the float64 that rounds it", num("1098765432109876543"), float64(1098765432109876543), false},
		{"number and string", num("1"), "1", false},
		{"number and null", num("0"), nil, false},
		{"null and nil map", nil, map[string]any(nil), false},
		{"nil map and empty object", map[string]any(nil), map[string]any{}, true},
		{"objects, member order irrelevant", map[string]any{"a": num("1"), "b": []any{num("2.0")}}, map[string]any{"b": []any{num("2")}, "a": num("1.00")}, true},
		{"object with a member more", map[string]any{"a": nil}, map[string]any{}, false},
		{"arrays, order matters", []any{num("1"), num("2")}, []any{num("2"), num("1")}, false},
		{"typed slice and array", []string{"x"}, []any{"x"}, true},
		{"typed map and object", map[string]int{"n": 1}, map[string]any{"n": num("1.0")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jsonEqual(tt.a, tt.b); got != tt.want {
				t.Errorf("jsonEqual(%#v, %#v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
			if got := jsonEqual(tt.b, tt.a); got != tt.want {
				t.Errorf("jsonEqual(%#v, %#v) = %v, want %v (not symmetric)", tt.b, tt.a, got, tt.want)
			}
		})
	}
}

// TestPlanCanonicalNumber pins the canonical form that numbers are compared by.
func TestPlanCanonicalNumber(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0", "0"}, {"-0", "0"}, {"0.000", "0"}, {"0e-5", "0"},
		{"1", "1e0"}, {"1.0", "1e0"}, {"10", "1e1"}, {"100", "1e2"}, {"1e2", "1e2"}, {"1E+2", "1e2"},
		{"0.1", "1e-1"}, {"-0.1", "-1e-1"}, {"0.0012", "12e-4"}, {"12.50", "125e-1"},
		{"1098765432109876543", "1098765432109876543e0"}, {"1098765432109876500", "10987654321098765e2"},
		{"1e400", "1e400"}, {"-2.5E-400", "-25e-401"},
		{"1e99999999999999999999", "1e99999999999999999999"},
		// Not JSON numbers: returned as they are.
		{"", ""}, {"abc", "abc"}, {"1e", "1e"}, {"1.", "1."}, {".5", ".5"}, {"1e+-2", "1e+-2"}, {"--1", "--1"}, {"NaN", "NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := canonicalNumber(tt.in); got != tt.want {
				t.Errorf("canonicalNumber(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestPlanMergePatchExact checks exactPatch and applyMergePatch, which replace
// gopkg.in/evanphx/json-patch.v4 (whose CreateMergePatch compares numbers as float64), on
// values holding numbers no float64 keeps.
func TestPlanMergePatchExact(t *testing.T) {
	tests := []struct {
		name             string
		have, want       string // objects
		patch, afterward string
	}{
		{name: "member differs by one unit in the 19th digit",
			have: `{"n":1098765432109876544,"d":0.1}`, want: `{"n":1098765432109876543,"d":0.1}`,
			patch: `{"n":1098765432109876543}`, afterward: `{"n":1098765432109876543,"d":0.1}`},
		{name: "nested: removed members as null, kept members untouched",
			have:  `{"a":{"x":1e400,"y":-0.1,"z":{"q":1098765432109876544}}}`,
			want:  `{"a":{"y":-0.1,"z":{"q":1098765432109876543}}}`,
			patch: `{"a":{"x":null,"z":{"q":1098765432109876543}}}`, afterward: `{"a":{"y":-0.1,"z":{"q":1098765432109876543}}}`},
		{name: "array replaced whole",
			have: `{"l":[1,2,{"a":0.1}]}`, want: `{"l":[1,2,{"a":0.10000000000000001}]}`,
			patch: `{"l":[1,2,{"a":0.10000000000000001}]}`, afterward: `{"l":[1,2,{"a":0.10000000000000001}]}`},
		{name: "same values in other notations: empty patch",
			have: `{"a":{"b":1.0,"c":[1e2]}}`, want: `{"a":{"b":1,"c":[100]}}`,
			patch: `{}`, afterward: `{"a":{"b":1.0,"c":[1e2]}}`},
		{name: "scalar to object",
			have: `{"a":0.1}`, want: `{"a":{"b":1098765432109876543}}`,
			patch: `{"a":{"b":1098765432109876543}}`, afterward: `{"a":{"b":1098765432109876543}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			have := ptObj(t, tt.have)
			haveBefore, _ := json.Marshal(have)
			patch, _ := exactPatch(have, ptObj(t, tt.want)).(map[string]any)
			if diff := cmp.Diff(ptObj(t, tt.patch), patch); diff != "" {
				t.Errorf("exactPatch() mismatch (-want +got):\n%s", diff)
			}
			got := applyMergePatch(have, patch)
			if diff := cmp.Diff(ptObj(t, tt.afterward), nonNil(got)); diff != "" {
				t.Errorf("applyMergePatch() mismatch (-want +got):\n%s", diff)
			}
			if b, _ := json.Marshal(have); string(b) != string(haveBefore) {
				t.Errorf("applyMergePatch() modified its argument: %s, was %s", b, haveBefore)
			}
			// The RFC 7386 implementation of json-patch v4 (which keeps number text) agrees.
			pb, _ := json.Marshal(patch)
			ref, err := jsonpatch.MergePatch([]byte(tt.have), pb)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(ptObj(t, string(ref)), nonNil(got)); diff != "" {
				t.Errorf("applyMergePatch() differs from jsonpatch.MergePatch (-jsonpatch +ours):\n%s", diff)
			}
		})
	}
	t.Run("RFC 7386 examples", func(t *testing.T) {
		for _, c := range []struct{ target, patch, want string }{
			{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
			{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
			{`{"a":"b"}`, `{"a":null}`, `{}`},
			{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
			{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
			{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
			{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
			{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
			{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
			{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		} {
			if diff := cmp.Diff(ptObj(t, c.want), applyMergePatch(ptObj(t, c.target), ptObj(t, c.patch))); diff != "" {
				t.Errorf("merge %s into %s (-want +got):\n%s", c.patch, c.target, diff)
			}
		}
	})
}

// TestPlanMetadataSizeExact: the 8 KB limit is computed on the exact encoding, numbers in their
// declared text (a number of thousands of digits, which no float64 holds, counts every digit).
func TestPlanMetadataSizeExact(t *testing.T) {
	// {"n":N} with private and unsafe metadata counted as {} each: 6 + len(N) + 4 bytes.
	atLimit := ptBigNumber(MaxMetadataBytes - 10)
	for _, policy := range []clerkv1alpha1.MetadataPolicy{clerkv1alpha1.MetadataPolicyMerge, clerkv1alpha1.MetadataPolicyReplace} {
		t.Run(string(policy)+": exactly at the limit", func(t *testing.T) {
			spec := clerkv1alpha1.ClerkUserSpec{MetadataPolicy: policy, PublicMetadata: ptJSON(`{"n":` + atLimit + `}`)}
			got := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{}, ptUser())
			if diff := cmp.Diff([]StepKind{StepMetadata}, ptKinds(got)); diff != "" {
				t.Fatalf("step kinds mismatch (-want +got):\n%s", diff)
			}
			if n, _ := got.Steps[0].Metadata.PublicMetadata["n"].(json.Number); string(n) != atLimit {
				t.Errorf("the step carries %d characters for n, want the declared %d digits", len(n), len(atLimit))
			}
		})
		t.Run(string(policy)+": one byte over", func(t *testing.T) {
			spec := clerkv1alpha1.ClerkUserSpec{MetadataPolicy: policy, PublicMetadata: ptJSON(`{"n":` + atLimit + `1}`)}
			_, err := plan(&spec, &clerkv1alpha1.ClerkUserStatus{}, ptUser())
			var invalid *InvalidSpecError
			if !errors.As(err, &invalid) {
				t.Fatalf("plan() error = %v, want *InvalidSpecError", err)
			}
			if want := fmt.Sprintf("take %d bytes", MaxMetadataBytes+1); !strings.Contains(invalid.Reason, want) || invalid.Field != "spec.publicMetadata" {
				t.Errorf("InvalidSpecError = %v, want spec.publicMetadata and %q", invalid, want)
			}
		})
	}
}

func ptCreateSpec(mutate func(s *clerkv1alpha1.ClerkUserSpec)) clerkv1alpha1.ClerkUserSpec {
	s := clerkv1alpha1.ClerkUserSpec{CreationPolicy: clerkv1alpha1.CreationPolicyAdoptOrCreate}
	mutate(&s)
	return s
}

// TestCreateParams covers the POST /users body built from a spec.
func TestCreateParams(t *testing.T) {
	tests := []struct {
		name string
		spec clerkv1alpha1.ClerkUserSpec
		want clerk.CreateUserParams
	}{
		{name: "identifiers and profile",
			spec: ptCreateSpec(func(s *clerkv1alpha1.ClerkUserSpec) {
				s.ExternalID, s.EmailAddress, s.Username = "emp-1042", "alice@example.com", "alice"
				s.FirstName, s.LastName = new("Alice"), new("Liddell")
			}),
			want: clerk.CreateUserParams{ExternalID: new("emp-1042"), EmailAddresses: []string{"alice@example.com"},
				Username: new("alice"), FirstName: new("Alice"), LastName: new("Liddell"), SkipPasswordRequirement: true}},
		{name: "only an email: nothing else sent",
			spec: ptCreateSpec(func(s *clerkv1alpha1.ClerkUserSpec) { s.EmailAddress = "a@example.com" }),
			want: clerk.CreateUserParams{EmailAddresses: []string{"a@example.com"}, SkipPasswordRequirement: true}},
		{name: "empty first and last name are not sent",
			spec: ptCreateSpec(func(s *clerkv1alpha1.ClerkUserSpec) {
				s.Username, s.FirstName, s.LastName = "alice", new(""), new("")
			}),
			want: clerk.CreateUserParams{Username: new("alice"), SkipPasswordRequirement: true}},
		{name: "metadata: declared objects sent, undeclared left out, {} sent as {}",
			spec: ptCreateSpec(func(s *clerkv1alpha1.ClerkUserSpec) {
				s.Username = "alice"
				s.PublicMetadata, s.UnsafeMetadata = ptJSON(`{"role":"admin","teams":["billing"]}`), ptJSON(`{}`)
			}),
			want: clerk.CreateUserParams{Username: new("alice"), SkipPasswordRequirement: true,
				PublicMetadata: map[string]any{"role": "admin", "teams": []any{"billing"}}, UnsafeMetadata: map[string]any{}}},
		{name: "metadata numbers keep their exact text",
			spec: ptCreateSpec(func(s *clerkv1alpha1.ClerkUserSpec) {
				s.Username = "alice"
				s.PrivateMetadata = ptJSON(`{"id":1098765432109876543,"d":0.1,"neg":-0.1,"h":1e400,"n":{"l":[1.0,1098765432109876543]}}`)
			}),
			want: clerk.CreateUserParams{Username: new("alice"), SkipPasswordRequirement: true,
				PrivateMetadata: map[string]any{"id": json.Number("1098765432109876543"), "d": json.Number("0.1"),
					"neg": json.Number("-0.1"), "h": json.Number("1e400"),
					"n": map[string]any{"l": []any{json.Number("1.0"), json.Number("1098765432109876543")}}}}},
		{name: "Merge: top-level and nested nulls dropped, nulls in arrays kept",
			spec: ptCreateSpec(func(s *clerkv1alpha1.ClerkUserSpec) {
				s.Username = "alice"
				s.PublicMetadata = ptJSON(`{"gone":null,"prefs":{"theme":"dark","beta":null,"deep":{"x":null}},"l":[null,{"a":null}]}`)
			}),
			want: clerk.CreateUserParams{Username: new("alice"), SkipPasswordRequirement: true,
				PublicMetadata: map[string]any{"prefs": map[string]any{"theme": "dark", "deep": map[string]any{}},
					"l": []any{nil, map[string]any{"a": nil}}}}},
		{name: "Merge: only nulls declared: {} sent",
			spec: ptCreateSpec(func(s *clerkv1alpha1.ClerkUserSpec) {
				s.Username, s.MetadataPolicy = "alice", clerkv1alpha1.MetadataPolicyMerge
				s.PublicMetadata = ptJSON(`{"gone":null}`)
			}),
			want: clerk.CreateUserParams{Username: new("alice"), SkipPasswordRequirement: true, PublicMetadata: map[string]any{}}},
		{name: "Replace: the declared object exactly, nulls included, as its PUT would send it",
			spec: ptCreateSpec(func(s *clerkv1alpha1.ClerkUserSpec) {
				s.Username, s.MetadataPolicy = "alice", clerkv1alpha1.MetadataPolicyReplace
				s.PublicMetadata = ptJSON(`{"gone":null,"prefs":{"beta":null}}`)
			}),
			want: clerk.CreateUserParams{Username: new("alice"), SkipPasswordRequirement: true,
				PublicMetadata: map[string]any{"gone": nil, "prefs": map[string]any{"beta": nil}}}},
		{name: "metadata declared as JSON null: {}",
			spec: ptCreateSpec(func(s *clerkv1alpha1.ClerkUserSpec) { s.Username, s.PublicMetadata = "alice", ptJSON(`null`) }),
			want: clerk.CreateUserParams{Username: new("alice"), SkipPasswordRequirement: true, PublicMetadata: map[string]any{}}},
		{name: "Merge: dropped nulls do not count against the 8 KB limit",
			spec: ptCreateSpec(func(s *clerkv1alpha1.ClerkUserSpec) {
				// {"blob":"…","g":{}} plus {} and {}: exactly 8192 bytes once the nulls are dropped.
				s.Username = "alice"
				s.PublicMetadata = ptJSON(`{"blob":"` + strings.Repeat("x", MaxMetadataBytes-22) + `","gone":null,"g":{"x":null}}`)
			}),
			want: clerk.CreateUserParams{Username: new("alice"), SkipPasswordRequirement: true,
				PublicMetadata: map[string]any{"blob": strings.Repeat("x", MaxMetadataBytes-22), "g": map[string]any{}}}},
		{name: "metadata exactly at the 8 KB limit",
			spec: ptCreateSpec(func(s *clerkv1alpha1.ClerkUserSpec) {
				s.Username, s.PublicMetadata = "alice", ptJSON(`{"n":`+ptBigNumber(MaxMetadataBytes-10)+`}`)
			}),
			want: clerk.CreateUserParams{Username: new("alice"), SkipPasswordRequirement: true,
				PublicMetadata: map[string]any{"n": json.Number(ptBigNumber(MaxMetadataBytes - 10))}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := *tt.spec.DeepCopy()
			got, err := createParams(&spec)
			if err != nil {
				t.Fatalf("createParams() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("createParams() mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.spec, spec); diff != "" {
				t.Errorf("createParams() modified the spec (-before +after):\n%s", diff)
			}
			// The params do not alias the spec.
			for _, p := range []*string{got.ExternalID, got.Username, got.FirstName, got.LastName} {
				if p != nil {
					*p = "changed"
				}
			}
			if diff := cmp.Diff(tt.spec, spec); diff != "" {
				t.Errorf("changing the params changed the spec (-before +after):\n%s", diff)
			}
		})
	}
}

// TestCreateParamsInvalidSpec: bad metadata and metadata over Clerk's limit are InvalidSpec
// errors naming the fields, as plan reports them, and never carry the values.
func TestCreateParamsInvalidSpec(t *testing.T) {
	big := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name      string
		spec      clerkv1alpha1.ClerkUserSpec
		wantField string
		wantIn    string
	}{
		{name: "publicMetadata is an array", spec: clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`[1,2]`)},
			wantField: "spec.publicMetadata", wantIn: "must be a JSON object, not an array"},
		{name: "privateMetadata is a string", spec: clerkv1alpha1.ClerkUserSpec{PrivateMetadata: ptJSON(`"x"`)},
			wantField: "spec.privateMetadata", wantIn: "must be a JSON object, not a string"},
		{name: "unsafeMetadata is a number", spec: clerkv1alpha1.ClerkUserSpec{UnsafeMetadata: ptJSON(`42`)},
			wantField: "spec.unsafeMetadata", wantIn: "must be a JSON object, not a number"},
		{name: "unsafeMetadata is a boolean", spec: clerkv1alpha1.ClerkUserSpec{UnsafeMetadata: ptJSON(`true`)},
			wantField: "spec.unsafeMetadata", wantIn: "must be a JSON object, not a boolean"},
		{name: "not JSON", spec: clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{`)},
			wantField: "spec.publicMetadata", wantIn: "not valid JSON"},
		{name: "trailing data", spec: clerkv1alpha1.ClerkUserSpec{PrivateMetadata: ptJSON(`{} {}`)},
			wantField: "spec.privateMetadata", wantIn: "not valid JSON"},
		{name: "the second object is the bad one", spec: clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{}`), PrivateMetadata: ptJSON(`[]`)},
			wantField: "spec.privateMetadata", wantIn: "JSON object"},
		{name: "one object over 8 KB", spec: clerkv1alpha1.ClerkUserSpec{PublicMetadata: ptJSON(`{"blob":"` + big(9000) + `"}`)},
			wantField: "spec.publicMetadata", wantIn: "over Clerk's limit of 8192"},
		{name: "three objects together over 8 KB", spec: clerkv1alpha1.ClerkUserSpec{
			PublicMetadata:  ptJSON(`{"a":"` + big(3000) + `"}`),
			PrivateMetadata: ptJSON(`{"b":"` + big(3000) + `"}`),
			UnsafeMetadata:  ptJSON(`{"c":"` + big(3000) + `"}`)},
			wantField: "spec.publicMetadata, spec.privateMetadata, spec.unsafeMetadata", wantIn: "9024 bytes"},
		{name: "one byte over, counted on the exact number text",
			spec:      clerkv1alpha1.ClerkUserSpec{UnsafeMetadata: ptJSON(`{"n":` + ptBigNumber(MaxMetadataBytes-9) + `}`)},
			wantField: "spec.unsafeMetadata", wantIn: "8193 bytes"},
		{name: "Replace: null members count (the Merge twin of this spec is at the limit)",
			spec: clerkv1alpha1.ClerkUserSpec{MetadataPolicy: clerkv1alpha1.MetadataPolicyReplace,
				PublicMetadata: ptJSON(`{"blob":"` + big(MaxMetadataBytes-22) + `","gone":null,"g":{"x":null}}`)},
			wantField: "spec.publicMetadata", wantIn: "8212 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Username, tt.spec.CreationPolicy = "alice", clerkv1alpha1.CreationPolicyAdoptOrCreate
			got, err := createParams(&tt.spec)
			var invalid *InvalidSpecError
			if !errors.As(err, &invalid) {
				t.Fatalf("createParams() error = %v (%T), want *InvalidSpecError", err, err)
			}
			if invalid.Field != tt.wantField {
				t.Errorf("InvalidSpecError.Field = %q, want %q", invalid.Field, tt.wantField)
			}
			if !strings.Contains(invalid.Reason, tt.wantIn) {
				t.Errorf("InvalidSpecError.Reason = %q, want it to contain %q", invalid.Reason, tt.wantIn)
			}
			if strings.Contains(invalid.Reason, big(100)) || strings.Contains(invalid.Reason, "9888") {
				t.Errorf("InvalidSpecError.Reason contains a metadata value: %q", invalid.Reason)
			}
			if diff := cmp.Diff(clerk.CreateUserParams{}, got); diff != "" {
				t.Errorf("createParams() with an error returned params (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCreateParamsAgreeWithPlan: a user created from createParams (its metadata as Clerk
// stores it on create, through an exact JSON round trip) is in sync with the spec: plan finds
// no metadata to write, so creating never costs a second metadata call. And what plan rejects
// as too large, createParams rejects too.
func TestCreateParamsAgreeWithPlan(t *testing.T) {
	specs := map[string]clerkv1alpha1.ClerkUserSpec{
		"Merge with nulls and exact numbers": {PublicMetadata: ptJSON(`{"gone":null,"prefs":{"theme":"dark","beta":null},"id":1098765432109876543}`),
			PrivateMetadata: ptJSON(`{"d":0.1,"l":[-0.1,null,1e400]}`), UnsafeMetadata: ptJSON(`{}`)},
		"Replace with nulls and exact numbers": {MetadataPolicy: clerkv1alpha1.MetadataPolicyReplace,
			PublicMetadata: ptJSON(`{"gone":null,"prefs":{"beta":null},"id":1098765432109876543}`), PrivateMetadata: ptJSON(`{"d":0.1}`)},
		"Merge, declared null objects": {PublicMetadata: ptJSON(`null`), PrivateMetadata: ptJSON(`{"x":null}`)},
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			spec.Username, spec.CreationPolicy = "alice", clerkv1alpha1.CreationPolicyAdoptOrCreate
			p, err := createParams(&spec)
			if err != nil {
				t.Fatal(err)
			}
			body, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(body), `"skip_password_requirement":true`) {
				t.Errorf("body %s does not skip the password requirement", body)
			}
			// Clerk stores each object sent, and {} for one not sent.
			var sent struct {
				Public  json.RawMessage `json:"public_metadata"`
				Private json.RawMessage `json:"private_metadata"`
				Unsafe  json.RawMessage `json:"unsafe_metadata"`
			}
			if err := json.Unmarshal(body, &sent); err != nil {
				t.Fatal(err)
			}
			stored := func(raw json.RawMessage) map[string]any {
				if raw == nil {
					return map[string]any{}
				}
				return ptObj(t, string(raw))
			}
			user := ptUser(func(u *clerk.User) {
				u.Username = new("alice")
				u.PublicMetadata, u.PrivateMetadata, u.UnsafeMetadata = stored(sent.Public), stored(sent.Private), stored(sent.Unsafe)
			})
			got := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{}, user)
			if len(got.Steps) != 0 {
				t.Errorf("plan() of the created user has steps %+v, want none", got.Steps)
			}
		})
	}
	t.Run("same size verdict as plan", func(t *testing.T) {
		for _, n := range []int{MaxMetadataBytes - 10, MaxMetadataBytes - 9} {
			spec := clerkv1alpha1.ClerkUserSpec{Username: "alice", PrivateMetadata: ptJSON(`{"n":` + ptBigNumber(n) + `}`)}
			_, perr := plan(&spec, &clerkv1alpha1.ClerkUserStatus{}, ptUser())
			_, cerr := createParams(&spec)
			if fmt.Sprint(perr) != fmt.Sprint(cerr) {
				t.Errorf("number of %d digits: plan() error = %v, createParams() error = %v", n, perr, cerr)
			}
		}
	})
}
