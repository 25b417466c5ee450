package controller

import (
	"context"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// These scenarios change the world behind kubeclerk's cache (an out-of-band edit, a call that
// landed before a restart) and check that Ready never claims what Clerk does not hold. The
// harness's sync period is a minute, so no periodic poll or resync hides a stale cache.

const totpSecret = "JBSWY3DPEHPK3PXP"

// TestNewGenerationPlansAgainstAFreshRead: an out-of-band unban, then an edit of firstName
// within the sync period: the edit's reconcile bans again, and Ready for the new generation is
// never reported while Clerk shows the user unbanned.
func TestNewGenerationPlansAgainstAFreshRead(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"fresh@example.com"}})
	h.apply("fresh", clerkv1alpha1.ClerkUserSpec{UserID: id, Banned: new(true), FirstName: new("A")})
	h.waitSynced("fresh")
	_, err := h.api.UnbanUser(ctx, id)
	h.g.Expect(err).NotTo(HaveOccurred())

	h.update("fresh", func(s *clerkv1alpha1.ClerkUserSpec) { s.FirstName = new("B") })
	obj := h.waitSynced("fresh")
	h.g.Expect(h.clerkUser(id)["banned"]).To(BeTrue(), "Ready for the new generation while Clerk shows the user unbanned")
	h.g.Expect(h.clerkUser(id)["first_name"]).To(Equal("B"))
	h.g.Expect(obj.Status.Observed.Banned).To(BeTrue())
}

// TestResetTokenAfterReEnrolment: the report. Token T1 converged; the person enrolled
// TOTP again; the helpdesk sets T2: kubeclerk removes the factor again before recording T2.
func TestResetTokenAfterReEnrolment(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"t2@example.com"}, TOTPSecret: new(totpSecret)})
	h.apply("t2", clerkv1alpha1.ClerkUserSpec{UserID: id, MFA: &clerkv1alpha1.MFASpec{ResetToken: "T1"}})
	h.g.Expect(h.waitSynced("t2").Status.LastMFAResetToken).To(Equal("T1"))
	mfa0 := h.calls("DELETE /v1/users/{user_id}/mfa")

	_, err := h.api.UpdateUser(ctx, id, clerk.UpdateUserParams{TOTPSecret: clerk.Set(totpSecret)})
	h.g.Expect(err).NotTo(HaveOccurred())
	h.update("t2", func(s *clerkv1alpha1.ClerkUserSpec) { s.MFA.ResetToken = "T2" })
	obj := h.waitSynced("t2")
	h.g.Expect(obj.Status.LastMFAResetToken).To(Equal("T2"))
	h.g.Expect(obj.Status.PendingMFAReset).To(BeNil())
	h.g.Expect(h.clerkUser(id)["two_factor_enabled"]).To(BeFalse(), "T2 recorded while Clerk still holds a second factor")
	h.g.Expect(h.calls("DELETE /v1/users/{user_id}/mfa") - mfa0).To(Equal(int64(1)))
}

// TestResetTokenRestartAfterTheCall: the DisableMfa of T2 landed, the manager died before the
// status patch, and the person enrolled a new factor before the manager came back. The new
// manager records T2 from Clerk's mfa_disabled_at and leaves the new factor alone.
func TestResetTokenRestartAfterTheCall(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"crash@example.com"}, TOTPSecret: new(totpSecret)})
	h.apply("crash", clerkv1alpha1.ClerkUserSpec{UserID: id, MFA: &clerkv1alpha1.MFASpec{ResetToken: "T1"}})
	h.waitSynced("crash")
	_, err := h.api.UpdateUser(ctx, id, clerk.UpdateUserParams{TOTPSecret: clerk.Set(totpSecret)})
	h.g.Expect(err).NotTo(HaveOccurred())
	before, err := h.api.GetUser(ctx, id)
	h.g.Expect(err).NotTo(HaveOccurred())
	h.stop()

	// What the dead manager left: T2 in the spec, the reset marked under way, the call landed.
	h.update("crash", func(s *clerkv1alpha1.ClerkUserSpec) { s.MFA.ResetToken = "T2" })
	obj := h.get("crash")
	obj.Status.PendingMFAReset = &clerkv1alpha1.PendingMFAReset{Token: "T2", UserUpdatedAt: before.UpdatedAt}
	h.g.Expect(k8sClient.Status().Update(ctx, obj)).To(Succeed())
	h.g.Eventually(func() bool { return time.Now().UnixMilli() > before.UpdatedAt }).Should(BeTrue(),
		"the clock must move on past the planned observation")
	h.g.Expect(h.api.DisableMFA(ctx, id)).To(Succeed())
	// Enrolled again after the call.
	h.g.Eventually(func() bool {
		u, _ := h.api.GetUser(ctx, id)
		return u != nil && u.MFADisabledAt != nil && time.Now().UnixMilli() > *u.MFADisabledAt
	}).Should(BeTrue())
	_, err = h.api.UpdateUser(ctx, id, clerk.UpdateUserParams{TOTPSecret: clerk.Set(totpSecret)})
	h.g.Expect(err).NotTo(HaveOccurred())
	mfa0 := h.calls("DELETE /v1/users/{user_id}/mfa")

	h.start()
	obj = h.waitSynced("crash")
	h.g.Expect(obj.Status.LastMFAResetToken).To(Equal("T2"))
	h.g.Expect(obj.Status.PendingMFAReset).To(BeNil())
	h.g.Expect(h.calls("DELETE /v1/users/{user_id}/mfa")-mfa0).To(BeZero(), "the reset ran twice")
	h.g.Expect(h.clerkUser(id)["two_factor_enabled"]).To(BeTrue(), "a factor enrolled after the reset was removed")
}

// TestLockoutExpiryIsEnforcedAgain: Clerk lockouts end without changing updated_at; the
// observation is trusted no longer than the lockout it reports, and locked: true is enforced
// again well within the sync period.
func TestLockoutExpiryIsEnforcedAgain(t *testing.T) {
	h := newHarness(t, func(o *harnessOptions) { o.fake.LockoutSeconds = new(int64(2)) })
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"lock@example.com"}})
	h.apply("lock", clerkv1alpha1.ClerkUserSpec{UserID: id, Locked: new(true)})
	h.waitSynced("lock")
	h.g.Expect(h.calls("POST /v1/users/{user_id}/lock")).To(Equal(int64(1)))
	// The first lockout expires after 2 s; kubeclerk locks again.
	h.g.Eventually(func() int64 { return h.calls("POST /v1/users/{user_id}/lock") }).Should(BeNumerically(">=", 2))
	h.g.Expect(h.clerkUser(id)["locked"]).To(BeTrue())
}

// TestExactLookups: an externalID that begins with "+" finds only the user whose external_id is
// exactly that, never the user whose external_id is the same digits.
func TestExactLookups(t *testing.T) {
	h := newHarness(t)
	digits := h.seed(clerk.CreateUserParams{ExternalID: new("15551234567"), EmailAddresses: []string{"digits@example.com"}})
	h.apply("plus", clerkv1alpha1.ClerkUserSpec{ExternalID: "+15551234567"})
	h.waitCondition("plus", metav1.ConditionFalse, ReasonUserNotFound)

	minus := h.seed(clerk.CreateUserParams{ExternalID: new("42"), EmailAddresses: []string{"fortytwo@example.com"}})
	h.apply("create", clerkv1alpha1.ClerkUserSpec{ExternalID: "-42", EmailAddress: "minus42@example.com",
		CreationPolicy: clerkv1alpha1.CreationPolicyAdoptOrCreate})
	obj := h.waitSynced("create")
	h.g.Expect(obj.Status.UserID).NotTo(Or(Equal(digits), Equal(minus)))
	h.g.Expect(h.clerkUser(obj.Status.UserID)["external_id"]).To(Equal("-42"))
	h.g.Expect(h.get("plus").Status.UserID).To(BeEmpty())
}

// TestObserveNeverBlocksManage: an older Observe object on the same user does not stall a Manage
// object; both report.
func TestObserveNeverBlocksManage(t *testing.T) {
	h := newHarness(t)
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"watch@example.com"}})
	h.apply("watcher", clerkv1alpha1.ClerkUserSpec{UserID: id, ManagementPolicy: clerkv1alpha1.ManagementPolicyObserve})
	h.waitCondition("watcher", metav1.ConditionTrue, ReasonObserved)
	h.apply("owner", clerkv1alpha1.ClerkUserSpec{UserID: id, FirstName: new("Owner")})
	h.waitSynced("owner")
	h.g.Expect(h.clerkUser(id)["first_name"]).To(Equal("Owner"))
	h.waitCondition("watcher", metav1.ConditionTrue, ReasonObserved)
}

// TestConflictLoserWaitsForTerminatingWinner: while the older object is being deleted with a Ban
// still to do, the newer one does not take the user over; once the ban is done, it does.
func TestConflictLoserWaitsForTerminatingWinner(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"heir@example.com"}})
	h.apply("heir-1", clerkv1alpha1.ClerkUserSpec{UserID: id, DeletionPolicy: clerkv1alpha1.DeletionPolicyBan})
	h.waitSynced("heir-1")
	h.apply("heir-2", clerkv1alpha1.ClerkUserSpec{UserID: id, Banned: new(false), FirstName: new("Heir")})
	h.waitCondition("heir-2", metav1.ConditionFalse, ReasonConflict)

	h.g.Expect(h.fake.SetFaults(clerkfake.Faults{Rate503: 1, Routes: []string{"POST /v1/users/{user_id}/ban"}})).To(Succeed())
	h.g.Expect(k8sClient.Delete(ctx, h.get("heir-1"))).To(Succeed())
	h.g.Eventually(func() int64 { return h.fake.Stats().Requests["POST /v1/users/{user_id}/ban"]["503"] }).Should(BeNumerically(">=", 1))
	// A reconcile of the loser while the winner is Terminating.
	h.g.Expect(k8sClient.Patch(ctx, h.get("heir-2"), client.RawPatch(
		"application/merge-patch+json", []byte(`{"metadata":{"annotations":{"clerk.kubeclerk.dev/requested-at":"now"}}}`)))).To(Succeed())
	h.g.Consistently(func() string {
		c := meta.FindStatusCondition(h.get("heir-2").Status.Conditions, ConditionReady)
		return c.Reason
	}).Should(Equal(ReasonConflict))
	h.g.Expect(h.clerkUser(id)["first_name"]).To(BeNil(), "the loser wrote while the winner still had a Ban to do")

	h.fake.ClearFaults()
	h.g.Eventually(h.gone("heir-1")).Should(BeTrue())
	h.waitSynced("heir-2")
	// The winner's Ban landed, then the loser (banned: false) took over and unbanned.
	h.g.Expect(h.calls("POST /v1/users/{user_id}/ban")).To(BeNumerically(">=", 1))
	h.g.Expect(h.clerkUser(id)["first_name"]).To(Equal("Heir"))
}

// TestForbiddenFeatureIsRejected: a 403 about the instance (feature_not_enabled) is ClerkRejected
// with Clerk's message, not AuthenticationFailed.
func TestForbiddenFeatureIsRejected(t *testing.T) {
	h := newHarness(t, withWrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && len(r.URL.Path) > 5 && r.URL.Path[len(r.URL.Path)-5:] == "/lock" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"errors":[{"message":"not enabled","long_message":"This feature is not enabled on this instance","code":"feature_not_enabled"}],"clerk_trace_id":"tr403"}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	}))
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"nolock@example.com"}})
	h.apply("nolock", clerkv1alpha1.ClerkUserSpec{UserID: id, Locked: new(true)})
	obj := h.waitCondition("nolock", metav1.ConditionFalse, ReasonClerkRejected)
	h.g.Expect(meta.IsStatusConditionTrue(obj.Status.Conditions, ConditionStalled)).To(BeTrue())
	h.g.Expect(meta.FindStatusCondition(obj.Status.Conditions, ConditionReady).Message).To(And(ContainSubstring("not enabled"), ContainSubstring("tr403")))
}

// TestCreateAdoptsTheUserHoldingTheIdentifier: a create answered 422 form_identifier_exists (the
// person signed up with the email since the lookup by externalID) looks the user up again and
// adopts it instead of stalling.
func TestCreateAdoptsTheUserHoldingTheIdentifier(t *testing.T) {
	h := newHarness(t)
	signedUp := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"self@example.com"}})
	users := h.fake.UserCount()
	h.apply("self", clerkv1alpha1.ClerkUserSpec{ExternalID: "emp-77", EmailAddress: "self@example.com",
		CreationPolicy: clerkv1alpha1.CreationPolicyAdoptOrCreate})
	obj := h.waitSynced("self")
	h.g.Expect(obj.Status.UserID).To(Equal(signedUp))
	h.g.Expect(h.clerkUser(signedUp)["external_id"]).To(Equal("emp-77"))
	h.g.Expect(h.fake.UserCount()).To(Equal(users), "no duplicate user")
	h.g.Expect(h.fake.Stats().Requests["POST /v1/users"]["422"]).To(Equal(int64(1)))
}

// TestDeletionFindsAnUnrecordedUser: an Adopt object with deletionPolicy Delete whose user signed
// up after its last check is deleted: the finalizer finds the user by its identifiers.
func TestDeletionFindsAnUnrecordedUser(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.apply("late", clerkv1alpha1.ClerkUserSpec{EmailAddress: "late@example.com", DeletionPolicy: clerkv1alpha1.DeletionPolicyDelete})
	obj := h.waitCondition("late", metav1.ConditionFalse, ReasonUserNotFound)
	h.g.Expect(obj.Status.UserID).To(BeEmpty())
	late := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"late@example.com"}})
	h.g.Expect(k8sClient.Delete(ctx, obj)).To(Succeed())
	h.g.Eventually(h.gone("late")).Should(BeTrue())
	_, exists := h.fake.User(late)
	h.g.Expect(exists).To(BeFalse(), "the user was left behind")
}

// TestResetTokenLostResponse: found by make chaos. The DisableMfa of a reset token lands but its
// response is lost; the retry must not plan against the cached user from before the call (which
// still shows the second factor) and call DisableMfa again: exactly one call per token.
func TestResetTokenLostResponse(t *testing.T) {
	h := newHarness(t)
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"lostmfa@example.com"}, TOTPSecret: new(totpSecret)})
	h.g.Expect(h.fake.SetFaults(clerkfake.Faults{DropResponseRate: 1, Routes: []string{"DELETE /v1/users/{user_id}/mfa"}})).To(Succeed())
	h.apply("lostmfa", clerkv1alpha1.ClerkUserSpec{UserID: id, MFA: &clerkv1alpha1.MFASpec{ResetToken: "T1"}})
	h.g.Eventually(func() int64 { return h.calls("DELETE /v1/users/{user_id}/mfa") }).Should(BeNumerically(">=", 1))
	h.fake.ClearFaults()
	obj := h.waitSynced("lostmfa")
	h.g.Expect(obj.Status.LastMFAResetToken).To(Equal("T1"))
	h.g.Expect(h.calls("DELETE /v1/users/{user_id}/mfa")).To(Equal(int64(1)), "the reset token removed MFA more than once")
}

// TestResetTokenLostResponseAfterAnEarlierStep: found by make chaos. A profile update lands, then
// the DisableMfa of a reset token lands with its response lost: the retry must not plan against
// the profile update's answer (from before the DisableMfa) and call DisableMfa again.
func TestResetTokenLostResponseAfterAnEarlierStep(t *testing.T) {
	h := newHarness(t)
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"lostmfa2@example.com"}, TOTPSecret: new(totpSecret)})
	h.g.Expect(h.fake.SetFaults(clerkfake.Faults{DropResponseRate: 1, Routes: []string{"DELETE /v1/users/{user_id}/mfa"}})).To(Succeed())
	h.apply("lostmfa2", clerkv1alpha1.ClerkUserSpec{UserID: id, FirstName: new("Before"), MFA: &clerkv1alpha1.MFASpec{ResetToken: "T1"}})
	h.g.Eventually(func() int64 { return h.calls("DELETE /v1/users/{user_id}/mfa") }).Should(BeNumerically(">=", 1))
	h.fake.ClearFaults()
	obj := h.waitSynced("lostmfa2")
	h.g.Expect(obj.Status.LastMFAResetToken).To(Equal("T1"))
	h.g.Expect(h.clerkUser(id)["first_name"]).To(Equal("Before"))
	h.g.Expect(h.calls("DELETE /v1/users/{user_id}/mfa")).To(Equal(int64(1)), "the reset token removed MFA more than once")
}
