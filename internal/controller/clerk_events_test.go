package controller

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/metrics"
)

// TestClerkEvents: a verified user.updated about a managed user corrects the drift at once (the
// harness's sync period is a minute), with the write as the only Clerk call: the event's state
// is the observation. A late or repeated event changes nothing. user.created reconciles an
// object waiting for that sign-up; user.deleted makes its object find out. An event for a user
// no object manages costs no call.
func TestClerkEvents(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"ev@example.com"}})
	h.apply("ev", clerkv1alpha1.ClerkUserSpec{UserID: id, Banned: new(false), DeletionPolicy: clerkv1alpha1.DeletionPolicyOrphan})
	h.waitSynced("ev")

	banned, err := h.api.BanUser(ctx, id) // out of band, as the Dashboard would
	h.g.Expect(err).NotTo(HaveOccurred())
	reads, writes := h.reads(), h.writes()
	h.reconciler.ClerkEvent(ctx, metrics.DefaultInstance, EventUserUpdated, id, banned)
	h.g.Eventually(func() any { return h.clerkUser(id)["banned"] }).Should(BeFalse())
	h.g.Expect(h.writes()-writes).To(Equal(int64(1)), "one unban")
	h.g.Expect(h.reads()-reads).To(BeZero(), "the event's state was the observation")

	// The same event again, or an older one: nothing.
	h.reconciler.ClerkEvent(ctx, metrics.DefaultInstance, EventUserUpdated, id, banned)
	h.g.Consistently(h.writes).Should(Equal(writes + 1))

	// An event for a user nobody manages: no call.
	other := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"nobody-ev@example.com"}})
	u, err := h.api.GetUser(ctx, other)
	h.g.Expect(err).NotTo(HaveOccurred())
	reads, writes = h.reads(), h.writes()
	h.reconciler.ClerkEvent(ctx, metrics.DefaultInstance, EventUserUpdated, other, u)
	h.g.Consistently(func() int64 { return h.reads() + h.writes() }).Should(Equal(reads + writes))

	// A rule declared before sign-up applies at the user.created event.
	h.apply("early", clerkv1alpha1.ClerkUserSpec{EmailAddress: "early-ev@example.com", Banned: new(true)})
	h.waitCondition("early", metav1.ConditionFalse, ReasonUserNotFound)
	newID := h.seed(clerk.CreateUserParams{EmailAddresses: []string{"early-ev@example.com"}})
	created, err := h.api.GetUser(ctx, newID)
	h.g.Expect(err).NotTo(HaveOccurred())
	h.reconciler.ClerkEvent(ctx, metrics.DefaultInstance, EventUserCreated, newID, created)
	h.g.Expect(h.waitSynced("early").Status.UserID).To(Equal(newID))
	h.g.Expect(h.clerkUser(newID)["banned"]).To(BeTrue())

	// user.deleted: the object learns at once that its user is gone.
	h.g.Expect(h.api.DeleteUser(ctx, id)).To(Succeed())
	h.reconciler.ClerkEvent(ctx, metrics.DefaultInstance, EventUserDeleted, id, nil)
	h.waitCondition("ev", metav1.ConditionFalse, ReasonUserDeleted)
}
