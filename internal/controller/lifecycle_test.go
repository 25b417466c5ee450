package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

func rawJSON(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }

// TestAdoptByEachIdentifier: the user is found by userID, externalID, emailAddress or username,
// bound in status.userID, and brought to the spec with one read plus one call per endpoint,
// with the batched observer (the default) and with per-object reads.
func TestAdoptByEachIdentifier(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec func(id string) clerkv1alpha1.ClerkUserSpec
	}{
		{"userID", func(id string) clerkv1alpha1.ClerkUserSpec { return clerkv1alpha1.ClerkUserSpec{UserID: id} }},
		{"externalID", func(string) clerkv1alpha1.ClerkUserSpec { return clerkv1alpha1.ClerkUserSpec{ExternalID: "emp-1"} }},
		{"emailAddress", func(string) clerkv1alpha1.ClerkUserSpec {
			return clerkv1alpha1.ClerkUserSpec{EmailAddress: "ada@example.com"}
		}},
		{"username", func(string) clerkv1alpha1.ClerkUserSpec { return clerkv1alpha1.ClerkUserSpec{Username: "ada_l"} }},
	} {
		for _, observer := range []string{"batch", "perObject"} {
			t.Run(tc.name+"/"+observer, func(t *testing.T) {
				var opts []func(*harnessOptions)
				if observer == "perObject" {
					opts = append(opts, perObject)
				}
				h := newHarness(t, opts...)
				id := h.seed(clerk.CreateUserParams{ExternalID: new("emp-1"), EmailAddresses: []string{"ada@example.com"},
					Username: new("ada_l"), FirstName: new("Ada"), PublicMetadata: map[string]any{"app": "kept"}})
				before, reads0 := h.fake.Stats(), h.reads()

				spec := tc.spec(id)
				spec.LastName = new("Lovelace")
				spec.PublicMetadata = rawJSON(`{"role":"admin","teams":["billing"]}`)
				spec.Banned = new(true)
				h.apply("ada", spec)

				obj := h.waitSynced("ada")
				h.g.Expect(obj.Status.UserID).To(Equal(id))
				h.g.Expect(obj.Status.Observed.LastName).To(Equal("Lovelace"))
				h.g.Expect(obj.Status.Observed.Banned).To(BeTrue())
				h.g.Expect(obj.Status.OwnedMetadataKeys.Public).To(Equal([]string{"role", "teams"}))
				h.g.Expect(obj.Status.PendingChanges).To(BeEmpty())
				h.g.Expect(obj.Status.ObservedGeneration).To(Equal(obj.Generation))

				u := h.clerkUser(id)
				h.g.Expect(u["last_name"]).To(Equal("Lovelace"))
				h.g.Expect(u["banned"]).To(BeTrue())
				h.g.Expect(u["public_metadata"]).To(Equal(map[string]any{"app": "kept", "role": "admin", "teams": []any{"billing"}}))

				// Cost: one read, then one call per endpoint: PATCH user, PATCH metadata, ban.
				after := h.fake.Stats()
				delta := func(route string) int64 { return after.Count(route) - before.Count(route) }
				h.g.Expect(h.reads()-reads0).To(Equal(int64(1)), "reads: %v", after.Requests)
				h.g.Expect(delta("PATCH /v1/users/{user_id}")).To(Equal(int64(1)))
				h.g.Expect(delta("PATCH /v1/users/{user_id}/metadata")).To(Equal(int64(1)))
				h.g.Expect(delta("POST /v1/users/{user_id}/ban")).To(Equal(int64(1)))
				h.g.Expect(after.Total-before.Total).To(Equal(int64(4)), "total calls: %v", after.Requests)

				h.g.Eventually(func() []string { return h.events("ada") }).Should(ConsistOf("Updated", "MetadataUpdated", "Banned"))
			})
		}
	}
}

// TestInSyncCostsOneReadPerSync: with per-object observation an object already in sync costs
// exactly one read and no writes per sync period, and its own status updates do not start extra
// reconciles.
func TestInSyncCostsOneReadPerSync(t *testing.T) {
	const period = 500 * time.Millisecond
	h := newHarness(t, withSyncPeriod(period), perObject)
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"sync@example.com"}, FirstName: new("Sam")})
	h.apply("sam", clerkv1alpha1.ClerkUserSpec{UserID: id, FirstName: new("Sam")})
	first := h.waitSynced("sam").Status.LastSyncTime

	reads0, writes0, lists0 := h.calls("GET /v1/users/{user_id}"), h.writes(), h.calls("GET /v1/users")
	start := time.Now()
	// Let at least four sync periods pass.
	h.g.Eventually(func() int64 { return h.calls("GET /v1/users/{user_id}") - reads0 }).Should(BeNumerically(">=", 4))
	elapsed := time.Since(start)
	reads := h.calls("GET /v1/users/{user_id}") - reads0
	h.g.Expect(h.writes()).To(Equal(writes0), "no writes while in sync")
	h.g.Expect(h.calls("GET /v1/users")).To(Equal(lists0), "a bound user is read by ID, not looked up")
	// One read per period (the period is jittered by up to +10%): never more.
	h.g.Expect(reads).To(BeNumerically("<=", int64(elapsed/period)+1), "reads %d in %s", reads, elapsed)
	h.g.Expect(h.get("sam").Status.LastSyncTime.After(first.Time)).To(BeTrue())
	h.g.Expect(h.events("sam")).To(BeEmpty(), "no events when nothing changed")
}

// TestBatchedObservationCost: with the batched observer, a restart with N objects in sync costs
// at most ceil(N/100) reads (here a count and one listing of every user) and no writes, and a sync period with nothing to do costs one poll (a count
// and a list, every 90% of the period) whatever N is.
func TestBatchedObservationCost(t *testing.T) {
	const n = 250
	h := newHarness(t) // a long sync period: no periodic poll while the restart is measured
	for i := range n {
		id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{fmt.Sprintf("u%d@example.com", i)}})
		h.apply(fmt.Sprintf("u%d", i), clerkv1alpha1.ClerkUserSpec{UserID: id})
	}
	allReady := func(g Gomega) {
		var list clerkv1alpha1.ClerkUserList
		g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(h.ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(n))
		for _, o := range list.Items {
			c := meta.FindStatusCondition(o.Status.Conditions, ConditionReady)
			g.Expect(c).NotTo(BeNil(), o.Name)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), o.Name)
		}
	}
	h.g.Eventually(allReady).Should(Succeed())
	writes0 := h.writes()

	// Restart: every object is reconciled again; their reads share calls.
	h.stop()
	reads0 := h.reads()
	h.start()
	// The instance holds just the N users, so listing all of them (500 a page) is cheaper than
	// ceil(N/100) batches: a count and ceil(N/500) lists, which also give the watermark, and
	// one count of the users created before that watermark (the deletion check's baseline).
	const coldWant = 1 + (n+499)/500 + 1
	h.g.Eventually(func() int64 { return h.reads() - reads0 }).Should(BeNumerically(">=", coldWant))
	h.g.Eventually(allReady).Should(Succeed())
	coldReads := h.reads() - reads0
	h.g.Expect(coldReads).To(Equal(int64(coldWant)), "first poll (count, listing of every user, baseline count): %v",
		h.fake.Stats().Requests)
	h.g.Expect(h.writes()).To(Equal(writes0), "no writes after a restart in sync")

	// Steady state with a short sync period: a poll (a count and a list) every 90% of the period
	// and nothing else, within the target of ceil(N/100) reads per period.
	const period = 3 * time.Second
	h.stop()
	h.opts.syncPeriod = period
	h.start()
	h.g.Eventually(allReady).Should(Succeed())
	polls0 := h.calls("GET /v1/users/count")
	h.g.Eventually(func() int64 { return h.calls("GET /v1/users/count") - polls0 }).Should(BeNumerically(">=", 1))
	reads1, polls0, start := h.reads(), h.calls("GET /v1/users/count"), time.Now()
	h.g.Eventually(func() int64 { return h.calls("GET /v1/users/count") - polls0 }).Should(BeNumerically(">=", 3))
	elapsed := time.Since(start)
	periods := int64(elapsed/period) + 1
	h.g.Expect(h.writes()).To(Equal(writes0), "no writes in steady state")
	h.g.Expect(h.reads()-reads1).To(BeNumerically("<=", periods*(n+99)/100),
		"reads in %s (%d sync periods) of steady state with %d objects", elapsed, periods, n)
}

// TestWaitThenAdopt: with Adopt, a user who has not signed up yet is waited for.
func TestWaitThenAdopt(t *testing.T) {
	h := newHarness(t, withSyncPeriod(time.Second))
	h.apply("later", clerkv1alpha1.ClerkUserSpec{EmailAddress: "later@example.com", PublicMetadata: rawJSON(`{"role":"admin"}`)})
	obj := h.waitCondition("later", metav1.ConditionFalse, ReasonUserNotFound)
	// A rule declared before sign-up waits: Ready=False, neither Reconciling (no work under
	// way) nor Stalled (nothing to fix). kstatus reads Ready=False as InProgress; GitOps tools
	// are told to accept UserNotFound (README: Flux healthCheckExprs, the Argo CD health check).
	h.g.Expect(meta.FindStatusCondition(obj.Status.Conditions, ConditionReconciling)).To(BeNil())
	h.g.Expect(meta.FindStatusCondition(obj.Status.Conditions, ConditionStalled)).To(BeNil())
	h.g.Expect(h.calls("POST /v1/users")).To(BeZero(), "Adopt never creates")
	h.g.Expect(kstatus(t, obj)).To(Equal(status.InProgressStatus))

	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"later@example.com"}})
	obj = h.waitSynced("later")
	h.g.Expect(obj.Status.UserID).To(Equal(id))
	h.g.Expect(h.clerkUser(id)["public_metadata"]).To(Equal(map[string]any{"role": "admin"}))
	h.g.Expect(kstatus(t, obj)).To(Equal(status.CurrentStatus))
}

// TestUnknownUserIDStalls: spec.userID naming no user is a typo, not a rule waiting for sign-up
// (Clerk assigns IDs): Stalled with UserNotFound, so kstatus and GitOps tools show it failed.
func TestUnknownUserIDStalls(t *testing.T) {
	h := newHarness(t)
	h.apply("typo", clerkv1alpha1.ClerkUserSpec{UserID: "user_doesnotexist", Banned: new(true)})
	obj := h.waitCondition("typo", metav1.ConditionFalse, ReasonUserNotFound)
	h.g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, ConditionStalled)).To(BeTrue())
	h.g.Expect(meta.FindStatusCondition(obj.Status.Conditions, ConditionReady).Message).To(ContainSubstring("spec.userID"))
	h.g.Expect(kstatus(t, obj)).To(Equal(status.FailedStatus))
	h.g.Expect(h.writes()).To(BeZero())
}

// TestCreate: AdoptOrCreate creates the user with one POST carrying identifiers, profile and
// metadata; lock follows as its own call.
func TestCreate(t *testing.T) {
	h := newHarness(t)
	h.apply("bob", clerkv1alpha1.ClerkUserSpec{EmailAddress: "bob@example.com", ExternalID: "ctr-7",
		FirstName: new("Bob"), PrivateMetadata: rawJSON(`{"crm":"C-1"}`), Locked: new(true),
		CreationPolicy: clerkv1alpha1.CreationPolicyAdoptOrCreate})
	obj := h.waitSynced("bob")
	u := h.clerkUser(obj.Status.UserID)
	h.g.Expect(u["external_id"]).To(Equal("ctr-7"))
	h.g.Expect(u["first_name"]).To(Equal("Bob"))
	h.g.Expect(u["private_metadata"]).To(Equal(map[string]any{"crm": "C-1"}))
	h.g.Expect(u["locked"]).To(BeTrue())
	h.g.Expect(h.calls("POST /v1/users")).To(Equal(int64(1)))
	h.g.Expect(h.calls("POST /v1/users/{user_id}/lock")).To(Equal(int64(1)))
	h.g.Expect(h.calls("PATCH /v1/users/{user_id}/metadata")).To(BeZero(), "metadata went with the create")
	h.g.Expect(obj.Status.Observed.PrimaryEmailAddress).To(Equal("bob@example.com"))
	h.g.Eventually(func() []string { return h.events("bob") }).Should(ConsistOf("Created", "Locked"))
}

// TestCreateLostResponse: Clerk applied the create but the answer was lost; the next reconcile
// finds the user by its identifiers instead of creating a duplicate.
func TestCreateLostResponse(t *testing.T) {
	h := newHarness(t)
	h.g.Expect(h.fake.SetFaults(clerkfake.Faults{DropResponseRate: 1, Routes: []string{"POST /v1/users"}})).To(Succeed())
	h.apply("lost", clerkv1alpha1.ClerkUserSpec{EmailAddress: "lost@example.com",
		CreationPolicy: clerkv1alpha1.CreationPolicyAdoptOrCreate})
	// The lookup that follows the lost create is a GET, which the fault leaves alone.
	obj := h.waitSynced("lost")
	h.g.Expect(h.fake.UserCount()).To(Equal(1), "no duplicate user")
	h.g.Expect(h.fake.Stats().Dropped).To(Equal(int64(1)), "the create's response was lost")
	h.g.Expect(h.calls("POST /v1/users")).To(Equal(int64(1)), "the create was not repeated")
	h.g.Expect(obj.Status.Observed.PrimaryEmailAddress).To(Equal("lost@example.com"))
}

// TestDriftCorrected: an out-of-band change is found at the next sync and undone.
func TestDriftCorrected(t *testing.T) {
	h := newHarness(t, withSyncPeriod(time.Second))
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"drift@example.com"}})
	h.apply("drift", clerkv1alpha1.ClerkUserSpec{UserID: id, FirstName: new("Dee"), Banned: new(false),
		PublicMetadata: rawJSON(`{"role":"viewer","prefs":{"theme":"dark"}}`)})
	h.waitSynced("drift")

	ctx := context.Background()
	_, err := h.api.UpdateUser(ctx, id, clerk.UpdateUserParams{FirstName: clerk.Set("Mallory")})
	h.g.Expect(err).NotTo(HaveOccurred())
	_, err = h.api.BanUser(ctx, id)
	h.g.Expect(err).NotTo(HaveOccurred())
	_, err = h.api.MergeMetadata(ctx, id, clerk.MetadataParams{PublicMetadata: map[string]any{
		"role": "admin", "prefs": map[string]any{"font": "big"}, "app": "own"}})
	h.g.Expect(err).NotTo(HaveOccurred())

	h.g.Eventually(func(g Gomega) {
		u := h.clerkUser(id)
		g.Expect(u["first_name"]).To(Equal("Dee"))
		g.Expect(u["banned"]).To(BeFalse())
		// Owned keys are set exactly, nested keys included; the app's own key stays.
		g.Expect(u["public_metadata"]).To(Equal(map[string]any{"role": "viewer", "prefs": map[string]any{"theme": "dark"}, "app": "own"}))
	}).Should(Succeed())
}

// TestMetadataOwnership: a key removed from the spec is deleted in Clerk; keys never declared
// stay; Replace replaces the whole object with PUT.
func TestMetadataOwnership(t *testing.T) {
	h := newHarness(t)
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"meta@example.com"},
		PublicMetadata: map[string]any{"app": "own"}, UnsafeMetadata: map[string]any{"ui": "x"}})
	h.apply("meta", clerkv1alpha1.ClerkUserSpec{UserID: id, PublicMetadata: rawJSON(`{"role":"admin","tier":"gold"}`)})
	h.waitSynced("meta")

	h.update("meta", func(s *clerkv1alpha1.ClerkUserSpec) { s.PublicMetadata = rawJSON(`{"role":"admin"}`) })
	h.g.Eventually(func() any { return h.clerkUser(id)["public_metadata"] }).
		Should(Equal(map[string]any{"role": "admin", "app": "own"}))
	obj := h.waitSynced("meta")
	h.g.Expect(obj.Status.OwnedMetadataKeys.Public).To(Equal([]string{"role"}))

	puts := h.calls("PUT /v1/users/{user_id}/metadata")
	h.update("meta", func(s *clerkv1alpha1.ClerkUserSpec) {
		s.MetadataPolicy = clerkv1alpha1.MetadataPolicyReplace
		s.PublicMetadata = rawJSON(`{"only":"this"}`)
	})
	h.g.Eventually(func() any { return h.clerkUser(id)["public_metadata"] }).Should(Equal(map[string]any{"only": "this"}))
	h.g.Expect(h.clerkUser(id)["unsafe_metadata"]).To(Equal(map[string]any{"ui": "x"}), "undeclared object left alone")
	h.g.Expect(h.calls("PUT /v1/users/{user_id}/metadata") - puts).To(Equal(int64(1)))
}

// TestObservePlan: Observe writes nothing and shows what Manage would do; switching to Manage applies it.
func TestObservePlan(t *testing.T) {
	h := newHarness(t)
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"ceo@example.com"}})
	writes0 := h.writes()
	h.apply("ceo", clerkv1alpha1.ClerkUserSpec{EmailAddress: "ceo@example.com", Banned: new(true), FirstName: new("C"),
		PublicMetadata: rawJSON(`{"role":"admin"}`), ManagementPolicy: clerkv1alpha1.ManagementPolicyObserve,
		DeletionPolicy: clerkv1alpha1.DeletionPolicyDelete})
	obj := h.waitCondition("ceo", metav1.ConditionTrue, ReasonObserved)
	h.g.Expect(obj.Status.UserID).To(Equal(id))
	h.g.Expect(obj.Status.PendingChanges).To(Equal([]string{"firstName", "publicMetadata.role", "ban"}))
	h.g.Expect(obj.Finalizers).To(BeEmpty(), "Observe never writes, not even on deletion")
	h.g.Expect(kstatus(t, obj)).To(Equal(status.CurrentStatus))
	h.g.Expect(h.writes()).To(Equal(writes0))

	h.update("ceo", func(s *clerkv1alpha1.ClerkUserSpec) { s.ManagementPolicy = clerkv1alpha1.ManagementPolicyManage })
	obj = h.waitSynced("ceo")
	h.g.Expect(obj.Status.PendingChanges).To(BeEmpty())
	h.g.Expect(h.clerkUser(id)["banned"]).To(BeTrue())
	h.g.Expect(obj.Finalizers).To(ContainElement(clerkv1alpha1.Finalizer))
}

// TestBanUnbanLockUnlock toggles the access state through the spec.
func TestBanUnbanLockUnlock(t *testing.T) {
	h := newHarness(t)
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"acc@example.com"}})
	h.apply("acc", clerkv1alpha1.ClerkUserSpec{UserID: id, Banned: new(true), Locked: new(true)})
	obj := h.waitSynced("acc")
	h.g.Expect(obj.Status.Observed.Banned).To(BeTrue())
	h.g.Expect(obj.Status.Observed.Locked).To(BeTrue())

	h.update("acc", func(s *clerkv1alpha1.ClerkUserSpec) { s.Banned, s.Locked = new(false), new(false) })
	h.g.Eventually(func(g Gomega) {
		u := h.clerkUser(id)
		g.Expect(u["banned"]).To(BeFalse())
		g.Expect(u["locked"]).To(BeFalse())
	}).Should(Succeed())
	for _, r := range []string{"ban", "unban", "lock", "unlock"} {
		h.g.Expect(h.calls("POST /v1/users/{user_id}/"+r)).To(Equal(int64(1)), r)
	}
	h.g.Eventually(func() []string { return h.events("acc") }).Should(ConsistOf("Banned", "Locked", "Unbanned", "Unlocked"))

	// Unset fields are never touched.
	h.update("acc", func(s *clerkv1alpha1.ClerkUserSpec) { s.Banned, s.Locked = nil, nil })
	_, err := h.api.BanUser(context.Background(), id)
	h.g.Expect(err).NotTo(HaveOccurred())
	h.waitSynced("acc")
	h.g.Expect(h.clerkUser(id)["banned"]).To(BeTrue())
}

// TestMFA: mfa.disabled removes MFA whenever Clerk reports it; a resetToken removes it once.
func TestMFA(t *testing.T) {
	h := newHarness(t, withSyncPeriod(time.Second))
	const secret = "JBSWY3DPEHPK3PXP"
	ctx := context.Background()

	t.Run("disabled", func(t *testing.T) {
		id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"svc@example.com"}, TOTPSecret: ptr.To(secret)})
		h.g.Expect(h.clerkUser(id)["two_factor_enabled"]).To(BeTrue())
		h.apply("svc", clerkv1alpha1.ClerkUserSpec{UserID: id, MFA: &clerkv1alpha1.MFASpec{Disabled: true}})
		obj := h.waitSynced("svc")
		h.g.Expect(obj.Status.Observed.TwoFactorEnabled).To(BeFalse())
		h.g.Expect(h.clerkUser(id)["two_factor_enabled"]).To(BeFalse())

		// Turned on again out of band: removed again at the next sync.
		_, err := h.api.UpdateUser(ctx, id, clerk.UpdateUserParams{TOTPSecret: clerk.Set(secret)})
		h.g.Expect(err).NotTo(HaveOccurred())
		h.g.Eventually(func() any { return h.clerkUser(id)["two_factor_enabled"] }).Should(BeFalse())
	})

	t.Run("resetToken", func(t *testing.T) {
		id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"reset@example.com"}, TOTPSecret: ptr.To(secret)})
		mfa0 := h.calls("DELETE /v1/users/{user_id}/mfa")
		h.apply("reset", clerkv1alpha1.ClerkUserSpec{UserID: id, MFA: &clerkv1alpha1.MFASpec{ResetToken: "TICKET-1"}})
		h.g.Eventually(func() string { return h.get("reset").Status.LastMFAResetToken }).Should(Equal("TICKET-1"))
		h.g.Expect(h.clerkUser(id)["two_factor_enabled"]).To(BeFalse())
		h.g.Expect(h.calls("DELETE /v1/users/{user_id}/mfa") - mfa0).To(Equal(int64(1)))

		// The user sets MFA up again: the same token does not remove it again.
		_, err := h.api.UpdateUser(ctx, id, clerk.UpdateUserParams{TOTPSecret: clerk.Set(secret)})
		h.g.Expect(err).NotTo(HaveOccurred())
		synced := h.get("reset").Status.LastSyncTime
		h.g.Eventually(func() bool { return h.get("reset").Status.LastSyncTime.After(synced.Time) }).Should(BeTrue())
		h.g.Expect(h.clerkUser(id)["two_factor_enabled"]).To(BeTrue())
		h.g.Expect(h.calls("DELETE /v1/users/{user_id}/mfa") - mfa0).To(Equal(int64(1)))

		// A new token removes it once more.
		h.update("reset", func(s *clerkv1alpha1.ClerkUserSpec) { s.MFA.ResetToken = "TICKET-2" })
		h.g.Eventually(func() string { return h.get("reset").Status.LastMFAResetToken }).Should(Equal("TICKET-2"))
		h.g.Expect(h.clerkUser(id)["two_factor_enabled"]).To(BeFalse())
		h.g.Expect(h.calls("DELETE /v1/users/{user_id}/mfa") - mfa0).To(Equal(int64(2)))
	})
}

// TestDeletionPolicies: Orphan leaves the user, Ban bans it, Delete deletes it; a user already
// gone counts as deleted, and the finalizer is only there while needed.
func TestDeletionPolicies(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	del := func(name string) {
		h.g.Expect(k8sClient.Delete(ctx, h.get(name))).To(Succeed())
		h.g.Eventually(h.gone(name)).Should(BeTrue(), "%s is not deleted (stuck finalizer?)", name)
	}

	orphan := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"orphan@example.com"}})
	h.apply("orphan", clerkv1alpha1.ClerkUserSpec{UserID: orphan})
	h.g.Expect(h.waitSynced("orphan").Finalizers).To(BeEmpty())
	del("orphan")
	h.g.Expect(h.clerkUser(orphan)["banned"]).To(BeFalse())

	ban := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"ban@example.com"}})
	h.apply("ban", clerkv1alpha1.ClerkUserSpec{UserID: ban, DeletionPolicy: clerkv1alpha1.DeletionPolicyBan})
	h.g.Expect(h.waitSynced("ban").Finalizers).To(ContainElement(clerkv1alpha1.Finalizer))
	del("ban")
	h.g.Expect(h.clerkUser(ban)["banned"]).To(BeTrue())

	gone := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"delete@example.com"}})
	h.apply("delete", clerkv1alpha1.ClerkUserSpec{UserID: gone, DeletionPolicy: clerkv1alpha1.DeletionPolicyDelete})
	h.waitSynced("delete")
	del("delete")
	_, exists := h.fake.User(gone)
	h.g.Expect(exists).To(BeFalse())

	already := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"already@example.com"}})
	h.apply("already", clerkv1alpha1.ClerkUserSpec{UserID: already, DeletionPolicy: clerkv1alpha1.DeletionPolicyDelete})
	h.waitSynced("already")
	h.g.Expect(h.api.DeleteUser(ctx, already)).To(Succeed())
	del("already")

	// Switching a policy back to Orphan drops the finalizer.
	keep := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"keep@example.com"}})
	h.apply("keep", clerkv1alpha1.ClerkUserSpec{UserID: keep, DeletionPolicy: clerkv1alpha1.DeletionPolicyDelete})
	h.g.Expect(h.waitSynced("keep").Finalizers).NotTo(BeEmpty())
	h.update("keep", func(s *clerkv1alpha1.ClerkUserSpec) { s.DeletionPolicy = clerkv1alpha1.DeletionPolicyOrphan })
	h.g.Eventually(func() []string { return h.get("keep").Finalizers }).Should(BeEmpty())
	h.g.Eventually(func() []string { return h.events("ban") }).Should(ContainElement("Banned"))
}

// TestUserDeletedOutOfBand: Adopt stalls with UserDeleted; AdoptOrCreate creates the user again.
func TestUserDeletedOutOfBand(t *testing.T) {
	h := newHarness(t, withSyncPeriod(time.Second))
	ctx := context.Background()
	a := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"adopt@example.com"}})
	h.apply("adopt", clerkv1alpha1.ClerkUserSpec{EmailAddress: "adopt@example.com"})
	h.waitSynced("adopt")
	b := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"create@example.com"}})
	h.apply("create", clerkv1alpha1.ClerkUserSpec{EmailAddress: "create@example.com", CreationPolicy: clerkv1alpha1.CreationPolicyAdoptOrCreate})
	h.waitSynced("create")

	h.g.Expect(h.api.DeleteUser(ctx, a)).To(Succeed())
	h.g.Expect(h.api.DeleteUser(ctx, b)).To(Succeed())

	obj := h.waitCondition("adopt", metav1.ConditionFalse, ReasonUserDeleted)
	h.g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, ConditionStalled)).To(BeTrue())
	h.g.Expect(kstatus(t, obj)).To(Equal(status.FailedStatus))

	h.g.Eventually(func() string { return h.get("create").Status.UserID }).ShouldNot(Or(Equal(b), BeEmpty()))
	obj = h.waitSynced("create")
	h.g.Expect(h.clerkUser(obj.Status.UserID)["email_addresses"]).NotTo(BeEmpty())
}

// TestConflict: two objects for one Clerk user; the older keeps it, the newer stalls and writes nothing.
func TestConflict(t *testing.T) {
	h := newHarness(t)
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"dup@example.com"}})
	h.apply("first", clerkv1alpha1.ClerkUserSpec{UserID: id, FirstName: new("One")})
	h.waitSynced("first")
	writes := h.writes()
	h.apply("second", clerkv1alpha1.ClerkUserSpec{EmailAddress: "dup@example.com", FirstName: new("Two"),
		DeletionPolicy: clerkv1alpha1.DeletionPolicyDelete})
	obj := h.waitCondition("second", metav1.ConditionFalse, ReasonConflict)
	h.g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, ConditionStalled)).To(BeTrue())
	h.g.Expect(meta.FindStatusCondition(obj.Status.Conditions, ConditionReady).Message).To(ContainSubstring(h.ns + "/first"))
	h.g.Expect(h.writes()).To(Equal(writes), "the newer object writes nothing")
	h.g.Expect(h.clerkUser(id)["first_name"]).To(Equal("One"))

	// Deleting the loser (deletionPolicy Delete) must not delete the winner's user.
	h.g.Expect(k8sClient.Delete(context.Background(), obj)).To(Succeed())
	h.g.Eventually(h.gone("second")).Should(BeTrue())
	_, exists := h.fake.User(id)
	h.g.Expect(exists).To(BeTrue())

	// When the winner goes, a loser takes the user over at once, not a sync period later.
	h.apply("third", clerkv1alpha1.ClerkUserSpec{EmailAddress: "dup@example.com", FirstName: new("Three")})
	h.waitCondition("third", metav1.ConditionFalse, ReasonConflict)
	h.g.Expect(k8sClient.Delete(context.Background(), h.get("first"))).To(Succeed())
	h.g.Expect(h.waitSynced("third").Status.UserID).To(Equal(id))
	h.g.Expect(h.clerkUser(id)["first_name"]).To(Equal("Three"))
}

// TestAmbiguousUser: more than one match stalls with AmbiguousUser.
func TestAmbiguousUser(t *testing.T) {
	// Clerk keeps emails unique; this proxy answers a lookup with two users, as a
	// case-insensitive match of two addresses would.
	var dup []clerk.User
	var lookups atomic.Int64
	h := newHarness(t, withWrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/v1/users" && r.URL.Query().Get("email_address") == "twin@example.com" && dup != nil {
				lookups.Add(1)
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(dup)
				return
			}
			next.ServeHTTP(w, r)
		})
	}))
	a := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"twin@example.com"}})
	b := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"twin2@example.com"}})
	dup = []clerk.User{{ID: a, EmailAddresses: []clerk.EmailAddress{{EmailAddress: "twin@example.com"}}},
		{ID: b, EmailAddresses: []clerk.EmailAddress{{EmailAddress: "Twin@Example.com"}}}}
	writes := h.writes()
	h.apply("twin", clerkv1alpha1.ClerkUserSpec{EmailAddress: "twin@example.com", CreationPolicy: clerkv1alpha1.CreationPolicyAdoptOrCreate})
	obj := h.waitCondition("twin", metav1.ConditionFalse, ReasonAmbiguousUser)
	h.g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, ConditionStalled)).To(BeTrue())
	h.g.Expect(obj.Status.UserID).To(BeEmpty())
	h.g.Expect(h.writes()).To(Equal(writes), "nothing is created or changed")

	// Reconciles that find the same state add no Warning Event: one per state entered.
	seen := lookups.Load()
	for i := range 3 {
		h.g.Eventually(func() error {
			o := h.get("twin")
			o.Annotations = map[string]string{"clerk.kubeclerk.dev/requested-at": fmt.Sprint(i)}
			return k8sClient.Update(context.Background(), o)
		}).Should(Succeed())
		h.g.Eventually(lookups.Load).Should(BeNumerically(">", seen))
		seen = lookups.Load()
	}
	h.g.Expect(h.events("twin")).To(Equal([]string{ReasonAmbiguousUser}), "Warning Events")
}

// TestClerkRejects: a value Clerk refuses stalls the object without a retry storm; fixing the
// spec recovers it.
func TestClerkRejects(t *testing.T) {
	h := newHarness(t, withSyncPeriod(time.Second))
	h.seed(clerk.CreateUserParams{EmailAddresses: []string{"rej@example.com"}, Username: new("taken_name")})
	other := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"other@example.com"}})
	h.apply("rej", clerkv1alpha1.ClerkUserSpec{UserID: other, Username: "taken_name"})
	obj := h.waitCondition("rej", metav1.ConditionFalse, ReasonClerkRejected)
	h.g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, ConditionStalled)).To(BeTrue())
	h.g.Expect(meta.FindStatusCondition(obj.Status.Conditions, ConditionReconciling)).To(BeNil())
	h.g.Expect(kstatus(t, obj)).To(Equal(status.FailedStatus))
	patches := h.calls("PATCH /v1/users/{user_id}")
	h.g.Expect(patches).To(Equal(int64(1)))
	h.g.Consistently(func() int64 { return h.calls("PATCH /v1/users/{user_id}") }).Should(Equal(patches), "no retries until the spec changes")

	h.update("rej", func(s *clerkv1alpha1.ClerkUserSpec) { s.Username = "free_name" })
	h.waitSynced("rej")
}

// TestClerkUnavailableThenBack: 5xx answers are retried with backoff until Clerk recovers.
func TestClerkUnavailableThenBack(t *testing.T) {
	h := newHarness(t)
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"flaky@example.com"}})
	h.g.Expect(h.fake.SetFaults(clerkfake.Faults{Rate503: 1})).To(Succeed())
	h.apply("flaky", clerkv1alpha1.ClerkUserSpec{UserID: id, FirstName: new("F")})
	obj := h.waitCondition("flaky", metav1.ConditionFalse, ReasonClerkUnavailable)
	h.g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, ConditionReconciling)).To(BeTrue())
	h.g.Expect(kstatus(t, obj)).To(Equal(status.InProgressStatus))
	reads0 := h.reads()
	h.g.Eventually(func() int64 { return h.reads() - reads0 }).Should(BeNumerically(">=", 2), "retried")
	h.fake.ClearFaults()
	obj = h.waitSynced("flaky")
	h.g.Expect(h.clerkUser(id)["first_name"]).To(Equal("F"))
	h.g.Expect(meta.FindStatusCondition(obj.Status.Conditions, ConditionReconciling)).To(BeNil())
}

// TestRateLimited: a 429 waits for Retry-After without counting as a failure, then recovers.
func TestRateLimited(t *testing.T) {
	h := newHarness(t)
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"busy@example.com"}})
	h.g.Expect(h.fake.SetFaults(clerkfake.Faults{Rate429: 1, RetryAfterSeconds: 1})).To(Succeed())
	h.apply("busy", clerkv1alpha1.ClerkUserSpec{UserID: id, LastName: new("B")})
	obj := h.waitCondition("busy", metav1.ConditionFalse, ReasonRateLimited)
	h.g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, ConditionReconciling)).To(BeTrue())
	h.g.Expect(meta.FindStatusCondition(obj.Status.Conditions, ConditionStalled)).To(BeNil())
	limited := h.fake.Stats().RateLimited
	// While limited, attempts are paced by Retry-After (1 s), not a hot loop.
	h.g.Consistently(func() int64 { return h.fake.Stats().RateLimited - limited }, 2500*time.Millisecond).Should(BeNumerically("<=", 3))
	h.fake.ClearFaults()
	h.waitSynced("busy")
	h.g.Expect(h.clerkUser(id)["last_name"]).To(Equal("B"))
}

// TestStatusNeverHoldsMetadataValues: status, conditions and events name keys, never values.
func TestStatusNeverHoldsMetadataValues(t *testing.T) {
	h := newHarness(t)
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"secret@example.com"}})
	h.apply("secret", clerkv1alpha1.ClerkUserSpec{UserID: id, PrivateMetadata: rawJSON(`{"apiToken":"s3cr3t-value"}`),
		ManagementPolicy: clerkv1alpha1.ManagementPolicyObserve})
	obj := h.waitCondition("secret", metav1.ConditionTrue, ReasonObserved)
	b, err := json.Marshal(obj.Status)
	h.g.Expect(err).NotTo(HaveOccurred())
	h.g.Expect(string(b)).To(ContainSubstring("privateMetadata.apiToken"))
	h.g.Expect(string(b)).NotTo(ContainSubstring("s3cr3t-value"))

	h.update("secret", func(s *clerkv1alpha1.ClerkUserSpec) { s.ManagementPolicy = clerkv1alpha1.ManagementPolicyManage })
	h.waitSynced("secret")
	h.g.Eventually(func() []string { return h.events("secret") }).Should(ContainElement("MetadataUpdated"))
	var list unstructured.UnstructuredList
	list.SetAPIVersion("events.k8s.io/v1")
	list.SetKind("EventList")
	h.g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(h.ns))).To(Succeed())
	for _, e := range list.Items {
		b, _ := json.Marshal(e.Object)
		h.g.Expect(strings.Contains(string(b), "s3cr3t-value")).To(BeFalse(), "event leaks a metadata value: %s", b)
	}
}

// kstatus computes the kstatus of a ClerkUser as kubectl, Flux and Argo CD would.
func kstatus(t *testing.T, obj *clerkv1alpha1.ClerkUser) status.Status {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(clerkv1alpha1.GroupVersion.String())
	u.SetKind("ClerkUser")
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}
