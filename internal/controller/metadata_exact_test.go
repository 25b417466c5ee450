package controller

import (
	"encoding/json"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// ptExactClient starts a fake Clerk API and returns a client for it, with its own key (and so
// its own rate bucket) and no client-side limit.
func ptExactClient(t *testing.T) (*clerk.Client, *clerkfake.Server) {
	t.Helper()
	key := "sk_test_exact" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, t.Name())
	fake := clerkfake.New(clerkfake.Options{SecretKey: key})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	c, err := clerk.New(clerk.Options{BaseURL: srv.URL + "/v1", SecretKey: key, RequestsPerSecond: math.Inf(1), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c, fake
}

// ptStoredMetadata returns the fake's stored metadata of a user as raw JSON text.
func ptStoredMetadata(t *testing.T, fake *clerkfake.Server, id string) string {
	t.Helper()
	raw, ok := fake.User(id)
	if !ok {
		t.Fatalf("user %s not stored", id)
	}
	var m struct {
		Public  json.RawMessage `json:"public_metadata"`
		Private json.RawMessage `json:"private_metadata"`
		Unsafe  json.RawMessage `json:"unsafe_metadata"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return string(m.Public) + " " + string(m.Private) + " " + string(m.Unsafe)
}

// TestExactMetadataConvergesThroughFake: numbers no float64 keeps, declared in a spec, are
// written to the fake Clerk API by one metadata call (Merge and Replace), read back exactly, and
// then planned as in sync: no write loop, no rounding.
func TestExactMetadataConvergesThroughFake(t *testing.T) {
	const declared = `{"id":1098765432109876543,"d":0.1,"neg":-0.1,"n":{"l":[1e400,1098765432109876543],"keep":1.0}}`
	tests := []struct {
		name     string
		policy   clerkv1alpha1.MetadataPolicy
		existing string // Clerk's public metadata before
		stored   string // Clerk's public metadata after, as stored (keys sorted)
	}{
		{name: "Merge", policy: clerkv1alpha1.MetadataPolicyMerge,
			existing: `{"id":1098765432109876544,"d":0.10000000000000001,"neg":-0.1,"n":{"l":[1e400,1098765432109876544],"keep":1,"x":2},"app":1}`,
			stored:   `{"app":1,"d":0.1,"id":1098765432109876543,"n":{"keep":1,"l":[1e400,1098765432109876543]},"neg":-0.1}`},
		{name: "Replace", policy: clerkv1alpha1.MetadataPolicyReplace,
			existing: `{"id":1098765432109876544,"d":0.1,"neg":-0.1,"n":{"l":[1e400,1098765432109876543],"keep":1.0},"app":1}`,
			stored:   `{"d":0.1,"id":1098765432109876543,"n":{"keep":1.0,"l":[1e400,1098765432109876543]},"neg":-0.1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fake := ptExactClient(t)
			ctx := t.Context()
			u, err := c.CreateUser(ctx, clerk.CreateUserParams{Username: new("exact"), SkipPasswordRequirement: true,
				PublicMetadata: ptObj(t, tt.existing)})
			if err != nil {
				t.Fatal(err)
			}
			spec := clerkv1alpha1.ClerkUserSpec{UserID: u.ID, MetadataPolicy: tt.policy, PublicMetadata: ptJSON(declared)}
			p := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{}, u)
			if diff := cmp.Diff([]StepKind{StepMetadata}, ptKinds(p)); diff != "" {
				t.Fatalf("step kinds mismatch (-want +got):\n%s", diff)
			}
			s := p.Steps[0]
			write := c.MergeMetadata
			if s.ReplaceMetadata {
				write = c.ReplaceMetadata
			}
			if _, err := write(ctx, u.ID, s.Metadata); err != nil {
				t.Fatal(err)
			}
			if got, want := ptStoredMetadata(t, fake, u.ID), tt.stored+" {} {}"; got != want {
				t.Errorf("stored metadata\n got %s\nwant %s", got, want)
			}
			read, err := c.GetUser(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			again := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{OwnedMetadataKeys: p.OwnedMetadataKeys}, read)
			if len(again.Steps) != 0 {
				t.Errorf("plan() after the write has steps %+v: the spec would be written again on every sync", again.Steps)
			}
		})
	}
}

// TestCreateParamsExactThroughFake: a user created from createParams holds the declared
// metadata exactly, and the next plan has nothing to write.
func TestCreateParamsExactThroughFake(t *testing.T) {
	for _, policy := range []clerkv1alpha1.MetadataPolicy{clerkv1alpha1.MetadataPolicyMerge, clerkv1alpha1.MetadataPolicyReplace} {
		t.Run(string(policy), func(t *testing.T) {
			c, fake := ptExactClient(t)
			spec := clerkv1alpha1.ClerkUserSpec{CreationPolicy: clerkv1alpha1.CreationPolicyAdoptOrCreate, MetadataPolicy: policy,
				ExternalID: "emp-1", EmailAddress: "exact@example.com", FirstName: new("Ada"), LastName: new(""),
				PublicMetadata:  ptJSON(`{"id":1098765432109876543,"gone":null,"n":{"d":0.1,"x":null}}`),
				PrivateMetadata: ptJSON(`{"l":[-0.1,1e400,null]}`)}
			params, err := createParams(&spec)
			if err != nil {
				t.Fatal(err)
			}
			u, err := c.CreateUser(t.Context(), params)
			if err != nil {
				t.Fatal(err)
			}
			want := `{"id":1098765432109876543,"n":{"d":0.1}} {"l":[-0.1,1e400,null]} {}`
			if policy == clerkv1alpha1.MetadataPolicyReplace {
				want = `{"gone":null,"id":1098765432109876543,"n":{"d":0.1,"x":null}} {"l":[-0.1,1e400,null]} {}`
			}
			if got := ptStoredMetadata(t, fake, u.ID); got != want {
				t.Errorf("stored metadata\n got %s\nwant %s", got, want)
			}
			spec.UserID = u.ID
			if p := mustPlan(t, spec, clerkv1alpha1.ClerkUserStatus{}, u); len(p.Steps) != 0 {
				t.Errorf("plan() of the created user has steps %+v, want none", p.Steps)
			}
		})
	}
}
