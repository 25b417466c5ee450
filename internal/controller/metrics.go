package controller

import (
	"context"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/metrics"
)

// instanceLabel is the metrics label of the instance this reconciler serves.
func (r *ClerkUserReconciler) instanceLabel() string {
	if r.instanceName == "" {
		return metrics.DefaultInstance
	}
	return r.instanceName
}

// countDrift counts the landed steps as drift corrections when the object was already in sync
// for this generation (and this privateMetadataFrom value): then nothing in the declared state
// changed, and each write undid a change made outside kubeclerk.
func (r *ClerkUserReconciler) countDrift(orig *clerkv1alpha1.ClerkUser, d desiredState, landed []Step) {
	if r.Metrics == nil || !wasInSync(orig, d) {
		return
	}
	for _, f := range driftFields(landed) {
		r.Metrics.DriftCorrected(r.instanceLabel(), f)
	}
}

// wasInSync reports whether the object's status said Synced for its current generation and the
// current privateMetadataFrom value.
func wasInSync(obj *clerkv1alpha1.ClerkUser, d desiredState) bool {
	c := meta.FindStatusCondition(obj.Status.Conditions, ConditionReady)
	return c != nil && c.Status == "True" && c.Reason == ReasonSynced && c.ObservedGeneration == obj.Generation &&
		obj.Status.PrivateMetadataFromHash == d.privateHash
}

// driftFields names the spec fields the steps restored, once each: banned, locked, mfa,
// externalID, username, firstName, lastName, publicMetadata, privateMetadata, unsafeMetadata.
// A reset token is a one-shot request, never drift.
func driftFields(steps []Step) []string {
	var out []string
	add := func(f string) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	for _, s := range steps {
		for _, c := range s.Changes {
			switch c {
			case "ban", "unban":
				add("banned")
			case "lock", "unlock":
				add("locked")
			case "disableMFA":
				add("mfa")
			case "resetMFA":
			default:
				field, _, _ := strings.Cut(c, ".")
				add(field)
			}
		}
	}
	return out
}

// userCounts counts the ClerkUsers in the cache by instance, Ready and reason, for
// kubeclerk_clerkusers.
func (r *ClerkUserReconciler) userCounts(ctx context.Context) ([]metrics.UserCount, error) {
	var list clerkv1alpha1.ClerkUserList
	if err := r.List(ctx, &list); err != nil {
		return nil, err
	}
	type key struct {
		instance, reason string
		ready            bool
	}
	counts := map[key]int{}
	for i := range list.Items {
		o := &list.Items[i]
		k := key{instance: instanceOf(o), reason: "Unknown"}
		if k.instance == "" {
			k.instance = metrics.DefaultInstance
		}
		if c := meta.FindStatusCondition(o.Status.Conditions, ConditionReady); c != nil {
			k.ready, k.reason = c.Status == "True", c.Reason
		}
		counts[k]++
	}
	out := make([]metrics.UserCount, 0, len(counts))
	for k, n := range counts {
		out = append(out, metrics.UserCount{Instance: k.instance, Ready: k.ready, Reason: k.reason, Count: n})
	}
	return out, nil
}
