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

// ptObj decodes a JSON object the way the Clerk client does (numbers as float64).
func ptObj(t *testing.T, raw string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
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
