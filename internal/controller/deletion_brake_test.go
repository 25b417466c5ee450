package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/metrics"
)

// TestDeletionBrakeUnit: the brake lets perMinute actions through at once, then holds the next
// with the time until the budget refills; nil and 0 never hold.
func TestDeletionBrakeUnit(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewDeletionBrake(3, logr.Discard())
	b.now = func() time.Time { return now }
	for i := range 3 {
		if err := b.allow("Ban"); err != nil {
			t.Fatalf("action %d held: %v", i, err)
		}
	}
	err := b.allow("Delete")
	var w *waitError
	if !errors.As(err, &w) || w.reason != ReasonDeletionThrottled || w.after < 19*time.Second || w.after > 21*time.Second {
		t.Fatalf("4th action: %v (after %v), want DeletionThrottled for about 20 s", err, w)
	}
	if !strings.Contains(w.message, "--max-deletions-per-minute") || !strings.Contains(w.message, "Delete") {
		t.Errorf("message: %s", w.message)
	}
	now = now.Add(20 * time.Second)
	if err := b.allow("Ban"); err != nil {
		t.Errorf("after the refill: %v", err)
	}
	if NewDeletionBrake(0, logr.Discard()) != nil {
		t.Error("0 should turn the brake off")
	}
	var none *DeletionBrake
	if err := none.allow("Ban"); err != nil {
		t.Errorf("nil brake: %v", err)
	}
}

// TestDeletionBrake: deleting many objects with deletionPolicy Ban at once bans no more than the
// brake allows; the others wait with DeletionThrottled (one Warning Event each, a metric), and
// switching them to Orphan releases them without a Clerk call.
func TestDeletionBrake(t *testing.T) {
	h := newHarness(t, withDeletionBrake(2), withMetrics)
	ctx := context.Background()
	names := []string{"d0", "d1", "d2", "d3", "d4"}
	for i, n := range names {
		id := h.seed(clerk.CreateUserParams{EmailAddresses: []string{fmt.Sprintf("brake%d@example.com", i)}})
		h.apply(n, clerkv1alpha1.ClerkUserSpec{UserID: id, DeletionPolicy: clerkv1alpha1.DeletionPolicyBan})
	}
	for _, n := range names {
		h.waitSynced(n)
	}
	for _, n := range names {
		h.g.Expect(k8sClient.Delete(ctx, h.get(n))).To(Succeed())
	}
	// Two bans go through; three objects wait.
	var held []string
	h.g.Eventually(func(g Gomega) {
		held = nil
		for _, n := range names {
			if h.gone(n)() {
				continue
			}
			c := meta.FindStatusCondition(h.get(n).Status.Conditions, ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(ReasonDeletionThrottled))
			g.Expect(c.Message).To(ContainSubstring("--max-deletions-per-minute"))
			held = append(held, n)
		}
		g.Expect(held).To(HaveLen(3))
	}).Should(Succeed())
	h.g.Consistently(func() int64 { return h.calls("POST /v1/users/{user_id}/ban") }).Should(Equal(int64(2)))
	for _, n := range held {
		h.g.Expect(h.events(n)).To(ConsistOf(ReasonDeletionThrottled), "one Warning Event for %s", n)
	}
	h.g.Expect(metricValue(h.registry, metrics.DeletionsThrottledTotal, map[string]string{"instance": metrics.DefaultInstance})).To(Equal(float64(3)))

	// Not intended: Orphan releases them, without a call.
	for _, n := range held {
		h.update(n, func(s *clerkv1alpha1.ClerkUserSpec) { s.DeletionPolicy = clerkv1alpha1.DeletionPolicyOrphan })
	}
	for _, n := range held {
		h.g.Eventually(h.gone(n)).Should(BeTrue())
	}
	h.g.Expect(h.calls("POST /v1/users/{user_id}/ban")).To(Equal(int64(2)))
}
