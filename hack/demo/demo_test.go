package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

func TestListenPreferredFallsBackWhenTaken(t *testing.T) {
	var lc net.ListenConfig
	taken, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = taken.Close() }()
	addr := taken.Addr().String()

	ln, moved, err := listenPreferred(t.Context(), addr, true)
	if err != nil {
		t.Fatalf("with fallback: %v", err)
	}
	defer func() { _ = ln.Close() }()
	if !moved || ln.Addr().String() == addr || !strings.HasPrefix(ln.Addr().String(), "127.0.0.1:") {
		t.Errorf("got %s moved=%t, want another 127.0.0.1 port than %s", ln.Addr(), moved, addr)
	}

	if _, _, err := listenPreferred(t.Context(), addr, false); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("without fallback: got %v, want EADDRINUSE", err)
	}

	free, err := freeLocalAddr(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ln2, moved, err := listenPreferred(t.Context(), free, true)
	if err != nil || moved || ln2.Addr().String() != free {
		t.Fatalf("free address: got %v moved=%t err=%v, want %s", ln2, moved, err, free)
	}
	_ = ln2.Close()
}

func TestRouteTemplate(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/users":                   "/v1/users",
		"/v1/users/count":             "/v1/users/count",
		"/v1/users/user_abc":          "/v1/users/{user_id}",
		"/v1/users/user_abc/ban":      "/v1/users/{user_id}/ban",
		"/v1/users/user_abc/mfa":      "/v1/users/{user_id}/mfa",
		"/v1/users/user_abc/metadata": "/v1/users/{user_id}/metadata",
	} {
		if got := routeTemplate(in); got != want {
			t.Errorf("routeTemplate(%q) = %q, want %q", in, got, want)
		}
	}
}

func js(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }

func TestMismatches(t *testing.T) {
	spec := &clerkv1alpha1.ClerkUserSpec{
		Banned: new(true), Locked: new(false), MFA: &clerkv1alpha1.MFASpec{Disabled: true},
		FirstName:      new("Alice"),
		PublicMetadata: js(`{"role":"admin","teams":["billing"]}`),
	}
	u := &clerkState{Banned: false, Locked: true, TwoFactorEnabled: true, FirstName: new("Al"),
		PublicMetadata: map[string]any{"role": "admin", "teams": []any{"support"}, "theme": "dark"}}
	got := mismatches(spec, u)
	want := []string{
		"banned is false in Clerk, the spec says true",
		"locked is true in Clerk, the spec says false",
		"MFA is on in Clerk, the spec says mfa.disabled",
		`first_name is "Al" in Clerk, the spec says "Alice"`,
		"public_metadata.teams differs in Clerk",
	}
	if !slices.Equal(got, want) {
		t.Errorf("mismatches:\n got %q\nwant %q", got, want)
	}

	// In sync: keys the spec does not declare (theme) do not count with Merge.
	u = &clerkState{Banned: true, FirstName: new("Alice"),
		PublicMetadata: map[string]any{"role": "admin", "teams": []any{"billing"}, "theme": "dark"}}
	if got := mismatches(spec, u); len(got) != 0 {
		t.Errorf("in sync, got %q", got)
	}
	// With Replace they do.
	spec.MetadataPolicy = clerkv1alpha1.MetadataPolicyReplace
	if got := mismatches(spec, u); !slices.Equal(got, []string{"public_metadata differs in Clerk"}) {
		t.Errorf("replace: got %q", got)
	}
}

func TestConverged(t *testing.T) {
	obj := &clerkv1alpha1.ClerkUser{ObjectMeta: metav1.ObjectMeta{Name: "a", Generation: 2},
		Spec: clerkv1alpha1.ClerkUserSpec{Banned: new(true)}}
	obj.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Synced", ObservedGeneration: 1}}
	u := &clerkState{ID: "user_1", Banned: true}
	if newUserView(obj, u).converged() {
		t.Error("Ready for an older generation counts as converged")
	}
	obj.Status.Conditions[0].ObservedGeneration = 2
	if !newUserView(obj, u).converged() {
		t.Error("Ready for the generation and in sync is not converged")
	}
	if newUserView(obj, &clerkState{ID: "user_1"}).converged() {
		t.Error("Ready while Clerk differs counts as converged")
	}
	if newUserView(obj, nil).converged() {
		t.Error("Ready without a Clerk user counts as converged")
	}
}

func TestRenderTable(t *testing.T) {
	var b strings.Builder
	renderTable(&b, []userView{
		{Name: "alice", Generation: 1, Ready: "True", Reason: "Synced", ReadyGeneration: 1,
			Clerk: &clerkState{ID: "user_1", TwoFactorEnabled: true, TOTPEnabled: true,
				PublicMetadata: map[string]any{"role": "admin"}, PrivateMetadata: map[string]any{"crmID": "C-77"}}},
		{Name: "contractor-bob"},
		{Name: "ceo", Generation: 1, Ready: "True", Reason: "Observed", ReadyGeneration: 1, Observe: true,
			Pending: []string{"publicMetadata.role"}, Clerk: &clerkState{ID: "user_2", Banned: true}},
	})
	want := `  NAME            READY  REASON    CLERK USER  BANNED  LOCKED  MFA        METADATA
  alice           True   Synced    user_1      no      no      on (totp)  public {"role":"admin"} private keys [crmID]
  contractor-bob  -      -         -           -       -       -          -
  ceo             True   Observed  user_2      yes     no      off        public {}   (Observe: Manage would change publicMetadata.role)
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestCallCounts(t *testing.T) {
	before := callCounts{{"GET /v1/users", 200}: 3}
	after := callCounts{{"GET /v1/users", 200}: 5, {"POST /v1/users/{user_id}/ban", 200}: 1,
		{"POST /v1/users/{user_id}/ban", 429}: 2}
	d := after.sub(before)
	if got := callsLine(d); got != "GET /v1/users ×2, POST /v1/users/{user_id}/ban ×3 (1×200 2×429)" {
		t.Errorf("callsLine = %q", got)
	}
	if !d.hasWrites() || (callCounts{{"GET /v1/users", 200}: 1}).hasWrites() {
		t.Error("hasWrites")
	}
	if !(callCounts{{"GET /v1/users", 503}: 1}).hasWrites() {
		t.Error("a failed read is worth showing")
	}
	if after.total() != 8 || after.countRoute("POST /v1/users/{user_id}/ban") != 3 {
		t.Error("total or countRoute")
	}
	var b strings.Builder
	renderCalls(&b, after, callCounts{{"POST /v1/users/{user_id}/unban", 200}: 1})
	want := `  Clerk API calls made by kubeclerk: 8 (and 1 by other clients, such as your curl commands)
    GET   /v1/users                5
    POST  /v1/users/{user_id}/ban  3 (1×200 2×429)
`
	if b.String() != want {
		t.Errorf("renderCalls:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestChanges(t *testing.T) {
	before := userView{Name: "alice", Generation: 1, Ready: "True", Reason: "Synced",
		Clerk: &clerkState{ID: "user_1", Banned: true, TwoFactorEnabled: false,
			PublicMetadata: map[string]any{"role": "admin", "theme": "dark"}, PrivateMetadata: map[string]any{"crmID": "C-77"}}}
	after := userView{Name: "alice", Generation: 2, Ready: "False", Reason: "Progressing", Message: "Applying",
		Clerk: &clerkState{ID: "user_1", Banned: false, TwoFactorEnabled: true, TOTPEnabled: true,
			PublicMetadata: map[string]any{"role": "member", "app": 1, "theme": "dark"}, PrivateMetadata: map[string]any{}}}
	got := changes(before, after)
	want := []string{
		"spec changed (generation 2)",
		"Ready True/Synced → False/Progressing",
		"  Applying",
		"Clerk banned: yes → no",
		"Clerk MFA: off → on (totp)",
		"Clerk public_metadata.app: (none) → 1",
		`Clerk public_metadata.role: "admin" → "member"`,
		"Clerk private_metadata.crmID removed",
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes:\n got %q\nwant %q", got, want)
	}
	if got := changes(after, after); len(got) != 0 {
		t.Errorf("no change, got %q", got)
	}
	if got := changes(userView{Name: "bob"}, userView{Name: "bob", Clerk: &clerkState{ID: "user_9"}}); !slices.Equal(got,
		[]string{"bound to Clerk user user_9"}) {
		t.Errorf("binding: got %q", got)
	}
}

func TestShimScript(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	// A shim whose "demo binary" is echo: it shows the arguments the shim passes on.
	shim := filepath.Join(dir, "it's")
	if err := writeShim(shim, "/bin/echo", "/real/bin"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), shim, "--a=1", "b c").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), shimArg+" /real/bin --a=1 b c\n"; got != want {
		t.Errorf("shim ran %q, want %q", got, want)
	}
	if shellQuote("it's") != `'it'\''s'` {
		t.Errorf("shellQuote = %s", shellQuote("it's"))
	}
}

// TestSeedMatchesSamples checks that the demo's seed users load into the fake and that every
// sample which adopts a user finds exactly one in the seed, so that make demo converges.
func TestSeedMatchesSamples(t *testing.T) {
	srv := clerkfake.New(clerkfake.Options{})
	if err := srv.SeedFile("clerk-users.json"); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("clerk-users.json")
	if err != nil {
		t.Fatal(err)
	}
	var seed []struct {
		ExternalID string `json:"external_id"`
		Username   string `json:"username"`
		Emails     []struct {
			EmailAddress string `json:"email_address"`
		} `json:"email_addresses"`
		TOTPSecret string `json:"totp_secret"`
	}
	if err := yaml.Unmarshal(raw, &seed); err != nil {
		t.Fatal(err)
	}
	samples, err := filepath.Glob("../../config/samples/clerk_v1alpha1_clerkuser_*.yaml")
	if err != nil || len(samples) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	tenant, err := filepath.Glob("../../config/samples/tenant/clerk_v1alpha1_clerkuser_*.yaml")
	if err != nil || len(tenant) == 0 {
		t.Fatalf("no tenant samples: %v", err)
	}
	samples = append(samples, tenant...)
	for _, f := range samples {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cu clerkv1alpha1.ClerkUser
		if err := yaml.Unmarshal(b, &cu); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		s := cu.Spec
		matches := 0
		mfa := false
		for _, u := range seed {
			var hit bool
			switch {
			case s.ExternalID != "":
				hit = u.ExternalID == s.ExternalID
			case s.EmailAddress != "":
				hit = slices.ContainsFunc(u.Emails, func(e struct {
					EmailAddress string `json:"email_address"`
				}) bool {
					return strings.EqualFold(e.EmailAddress, s.EmailAddress)
				})
			case s.Username != "":
				hit = u.Username == s.Username
			}
			if hit {
				matches++
				mfa = u.TOTPSecret != ""
			}
		}
		switch {
		case s.CreationPolicy == clerkv1alpha1.CreationPolicyAdoptOrCreate:
			if matches != 0 {
				t.Errorf("%s: kubeclerk should create this user, but the seed has it", cu.Name)
			}
		case matches != 1:
			t.Errorf("%s: %d seed users match, want 1", cu.Name, matches)
		case s.MFA != nil && s.MFA.Disabled && !mfa:
			t.Errorf("%s: the seed user has no MFA, so the demo cannot show kubeclerk removing it", cu.Name)
		}
	}
}

// TestBudget: the budget line is computed from the manager's metrics text, per instance.
func TestBudget(t *testing.T) {
	text := `# HELP kubeclerk_clerk_requests_total x
# TYPE kubeclerk_clerk_requests_total counter
kubeclerk_clerk_requests_total{code="200",instance="default",operation="GET /users"} 30
kubeclerk_clerk_requests_total{code="429",instance="default",operation="GET /users/{user_id}"} 2
kubeclerk_clerk_requests_total{code="200",instance="acme-prod",operation="GET /users/count"} 1
kubeclerk_clerk_rate_limited_total{instance="default"} 2
kubeclerk_clerk_budget_requests_per_second{instance="default"} 50
kubeclerk_clerk_budget_requests_per_second{instance="acme-prod"} 5
go_goroutines 12
`
	use, err := parseBudget(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if d := use["default"]; d == nil || d.requests != 32 || d.limited != 2 || d.perSecond != 50 {
		t.Fatalf("default: %+v", d)
	}
	got := budgetText(use, 16*time.Second)
	for _, want := range []string{
		"Clerk budget (acme-prod): 1 calls in 16s, 0.06/s on average = 1.2% of the 5/s budget; 0 answered 429",
		"Clerk budget (default): 32 calls in 16s, 2.00/s on average = 4.0% of the 50/s budget; 2 answered 429",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("budgetText:\n%s\nwant a line %q", got, want)
		}
	}
}
