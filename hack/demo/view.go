package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/instance"
)

// readyTrue is the status of a true Ready condition.
const readyTrue = string(metav1.ConditionTrue)

// Ready reasons the demo looks for: a ClerkUser refused by its ClerkInstance, a connected ClerkInstance.
const (
	reasonNotAllowed = "NotAllowed"
	reasonConnected  = instance.ReasonConnected
)

// clerkState is what the fake Clerk holds for one user, as GET /v1/users/{id} returns it,
// decoded by the Clerk client's own type.
type clerkState = clerk.User

// parseClerkUser decodes a Clerk User JSON object.
func parseClerkUser(raw []byte) (*clerkState, error) {
	var s clerkState
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("decode Clerk user: %w", err)
	}
	return &s, nil
}

// userView is one ClerkUser object and, once it is bound, its Clerk user.
type userView struct {
	Name       string
	Generation int64
	Observe    bool
	// Ready, Reason and Message are the Ready condition ("" while there is none).
	Ready, Reason, Message string
	// Stalled is the status of the Stalled condition ("" while there is none).
	Stalled string
	// ReadyGeneration is the observedGeneration of the Ready condition.
	ReadyGeneration int64
	UserID          string
	Pending         []string
	// Clerk is the bound user as the fake holds it; nil before binding or once it is gone.
	Clerk *clerkState
	// Mismatches are the spec fields the fake does not hold yet (Manage only).
	Mismatches []string
}

// converged reports whether the object is Ready for its current generation and Clerk holds what it declares.
func (v userView) converged() bool {
	return v.Ready == readyTrue && v.ReadyGeneration == v.Generation && len(v.Mismatches) == 0 &&
		(v.Clerk != nil || v.Observe)
}

// refused reports whether the object is refused by its ClerkInstance (NotAllowed) for its current generation.
func (v userView) refused() bool {
	return v.Ready == string(metav1.ConditionFalse) && v.Reason == reasonNotAllowed && v.ReadyGeneration == v.Generation
}

// newUserView builds the view of obj, with u the fake's copy of its user (nil when unbound or gone).
func newUserView(obj *clerkv1alpha1.ClerkUser, u *clerkState) userView {
	return newUserViewOf(obj, &obj.Spec, u)
}

// newUserViewOf is newUserView comparing Clerk with spec, obj's spec as kubeclerk applies it (with
// the private metadata of spec.privateMetadataFrom merged in).
func newUserViewOf(obj *clerkv1alpha1.ClerkUser, spec *clerkv1alpha1.ClerkUserSpec, u *clerkState) userView {
	v := userView{
		Name:       obj.Name,
		Generation: obj.Generation,
		Observe:    obj.Spec.ManagementPolicy == clerkv1alpha1.ManagementPolicyObserve,
		UserID:     obj.Status.UserID,
		Pending:    obj.Status.PendingChanges,
		Clerk:      u,
	}
	if c := apimeta.FindStatusCondition(obj.Status.Conditions, "Ready"); c != nil {
		v.Ready, v.Reason, v.Message, v.ReadyGeneration = string(c.Status), c.Reason, c.Message, c.ObservedGeneration
	}
	if c := apimeta.FindStatusCondition(obj.Status.Conditions, "Stalled"); c != nil {
		v.Stalled = string(c.Status)
	}
	if u != nil && !v.Observe {
		v.Mismatches = mismatches(spec, u)
	}
	return v
}

// mismatches lists what spec declares and the Clerk user does not hold (the fields the demo shows).
func mismatches(spec *clerkv1alpha1.ClerkUserSpec, u *clerkState) []string {
	var out []string
	if spec.Banned != nil && *spec.Banned != u.Banned {
		out = append(out, fmt.Sprintf("banned is %t in Clerk, the spec says %t", u.Banned, *spec.Banned))
	}
	if spec.Locked != nil && *spec.Locked != u.Locked {
		out = append(out, fmt.Sprintf("locked is %t in Clerk, the spec says %t", u.Locked, *spec.Locked))
	}
	if spec.MFA != nil && spec.MFA.Disabled && u.TwoFactorEnabled {
		out = append(out, "MFA is on in Clerk, the spec says mfa.disabled")
	}
	if spec.FirstName != nil && *spec.FirstName != deref(u.FirstName) {
		out = append(out, fmt.Sprintf("first_name is %q in Clerk, the spec says %q", deref(u.FirstName), *spec.FirstName))
	}
	if spec.LastName != nil && *spec.LastName != deref(u.LastName) {
		out = append(out, fmt.Sprintf("last_name is %q in Clerk, the spec says %q", deref(u.LastName), *spec.LastName))
	}
	replace := spec.MetadataPolicy == clerkv1alpha1.MetadataPolicyReplace
	for _, m := range []struct {
		name  string
		spec  []byte
		clerk map[string]any
	}{
		{"public_metadata", rawJSON(spec.PublicMetadata), u.PublicMetadata},
		{"private_metadata", rawJSON(spec.PrivateMetadata), u.PrivateMetadata},
		{"unsafe_metadata", rawJSON(spec.UnsafeMetadata), u.UnsafeMetadata},
	} {
		if m.spec == nil {
			continue
		}
		var want map[string]any
		if err := json.Unmarshal(m.spec, &want); err != nil {
			continue // the CRD only admits objects
		}
		if replace {
			if !jsonEqual(want, m.clerk) {
				out = append(out, m.name+" differs in Clerk")
			}
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if got, ok := m.clerk[k]; !ok || !jsonEqual(want[k], got) {
				out = append(out, fmt.Sprintf("%s.%s differs in Clerk", m.name, k))
			}
		}
	}
	return out
}

func rawJSON(j *apiextensionsv1.JSON) []byte {
	if j == nil {
		return nil
	}
	return j.Raw
}

// jsonEqual compares two decoded JSON values, whatever their Go types.
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// mfaText is the MFA column: off, or on with the factors.
func mfaText(c *clerkState) string {
	if !c.TwoFactorEnabled {
		return "off"
	}
	var f []string
	if c.TOTPEnabled {
		f = append(f, "totp")
	}
	if c.BackupCodeEnabled {
		f = append(f, "backup codes")
	}
	if len(f) == 0 {
		return "on"
	}
	return "on (" + strings.Join(f, ", ") + ")"
}

// metadataText is the METADATA column: public metadata in full, the keys of private metadata.
func metadataText(c *clerkState) string {
	pub, _ := json.Marshal(c.PublicMetadata) // map keys come out sorted
	if c.PublicMetadata == nil {
		pub = []byte("{}")
	}
	s := "public " + string(pub)
	if len(c.PrivateMetadata) > 0 {
		s += " private keys [" + strings.Join(slices.Sorted(maps.Keys(c.PrivateMetadata)), ",") + "]"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// renderTable writes the progress table: each ClerkUser's READY/REASON and what Clerk holds for it.
func renderTable(w *strings.Builder, views []userView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "  NAME\tREADY\tREASON\tCLERK USER\tBANNED\tLOCKED\tMFA\tMETADATA")
	for _, v := range views {
		ready, reason := dash(v.Ready), dash(v.Reason)
		if v.Ready != "" && v.ReadyGeneration != v.Generation {
			reason += " (old generation)"
		}
		if v.Clerk == nil {
			user := "-"
			if v.UserID != "" {
				user = "gone from Clerk"
			}
			_, _ = fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t-\t-\t-\t-\n", v.Name, ready, reason, user)
			continue
		}
		meta := metadataText(v.Clerk)
		if v.Observe && len(v.Pending) > 0 {
			meta += "   (Observe: Manage would change " + strings.Join(v.Pending, ", ") + ")"
		}
		_, _ = fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, ready, reason, v.Clerk.ID,
			yesNo(v.Clerk.Banned), yesNo(v.Clerk.Locked), mfaText(v.Clerk), meta)
	}
	_ = tw.Flush()
}

// instanceView is one ClerkInstance's status.
type instanceView struct {
	Name       string
	Generation int64
	// Ready, Reason and Message are the Ready condition ("" while there is none).
	Ready, Reason, Message string
	// ReadyGeneration is the observedGeneration of the Ready condition.
	ReadyGeneration int64
	KeyType         string
	BoundUsers      int32
}

func newInstanceView(obj *clerkv1alpha1.ClerkInstance) instanceView {
	v := instanceView{Name: obj.Name, Generation: obj.Generation, KeyType: obj.Status.KeyType, BoundUsers: obj.Status.BoundUsers}
	if c := apimeta.FindStatusCondition(obj.Status.Conditions, "Ready"); c != nil {
		v.Ready, v.Reason, v.Message, v.ReadyGeneration = string(c.Status), c.Reason, c.Message, c.ObservedGeneration
	}
	return v
}

// connected reports whether the instance is Ready (Connected) for its current generation.
func (v instanceView) connected() bool {
	return v.Ready == readyTrue && v.Reason == reasonConnected && v.ReadyGeneration == v.Generation
}

// renderInstances writes one line per ClerkInstance: its Ready condition, key type and bound users.
func renderInstances(w *strings.Builder, views []instanceView) {
	for _, v := range views {
		fmt.Fprintf(w, "  ClerkInstance %s: Ready %s/%s", v.Name, dash(v.Ready), dash(v.Reason))
		if v.KeyType != "" {
			fmt.Fprintf(w, ", %s key", v.KeyType)
		}
		fmt.Fprintf(w, ", %d ClerkUsers bound", v.BoundUsers)
		if v.Ready != readyTrue && v.Message != "" {
			fmt.Fprintf(w, ": %s", v.Message)
		}
		fmt.Fprintln(w)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// callKey identifies a kind of Clerk call: "POST /v1/users/{user_id}/ban".
type callKey struct {
	Route  string
	Status int
}

// callCounts counts Clerk calls by route and status.
type callCounts map[callKey]int64

func (c callCounts) total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// sub returns c minus prev (only positive differences).
func (c callCounts) sub(prev callCounts) callCounts {
	out := callCounts{}
	for k, v := range c {
		if d := v - prev[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// hasWrites reports whether any call is not a read, or failed.
func (c callCounts) hasWrites() bool {
	for k := range c {
		if !strings.HasPrefix(k.Route, "GET ") || k.Status >= 300 {
			return true
		}
	}
	return false
}

// routes returns the routes in c, sorted by path then method.
func (c callCounts) routes() []string {
	set := map[string]bool{}
	for k := range c {
		set[k.Route] = true
	}
	return slices.SortedFunc(maps.Keys(set), func(a, b string) int {
		ma, pa, _ := strings.Cut(a, " ")
		mb, pb, _ := strings.Cut(b, " ")
		if pa != pb {
			return strings.Compare(pa, pb)
		}
		return strings.Compare(ma, mb)
	})
}

// statusText is "3" for all-200 calls, or "5: 4×200 1×429" with the statuses.
func (c callCounts) statusText(route string) string {
	var statuses []int
	var n int64
	for k, v := range c {
		if k.Route == route {
			statuses = append(statuses, k.Status)
			n += v
		}
	}
	slices.Sort(statuses)
	if len(statuses) == 1 && statuses[0] < 300 {
		return fmt.Sprint(n)
	}
	parts := make([]string, 0, len(statuses))
	for _, s := range statuses {
		parts = append(parts, fmt.Sprintf("%d×%d", c[callKey{route, s}], s))
	}
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, " "))
}

// renderCalls writes the Clerk calls kubeclerk made, one route per line.
func renderCalls(w *strings.Builder, kubeclerk, others callCounts) {
	fmt.Fprintf(w, "  Clerk API calls made by kubeclerk: %d", kubeclerk.total())
	if n := others.total(); n > 0 {
		fmt.Fprintf(w, " (and %d by other clients, such as your curl commands)", n)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range kubeclerk.routes() {
		method, path, _ := strings.Cut(r, " ")
		_, _ = fmt.Fprintf(tw, "    %s\t%s\t%s\n", method, path, kubeclerk.statusText(r))
	}
	_ = tw.Flush()
}

// callsLine is a one-line summary of calls: "POST /v1/users/{user_id}/ban ×1, GET /v1/users ×2".
func callsLine(c callCounts) string {
	routes := c.routes()
	parts := make([]string, 0, len(routes))
	for _, r := range routes {
		parts = append(parts, r+" ×"+c.statusText(r))
	}
	return strings.Join(parts, ", ")
}

// changes lists, one line each, what differs from before to after for the same object.
func changes(before, after userView) []string {
	var out []string
	if after.Generation != before.Generation {
		out = append(out, fmt.Sprintf("spec changed (generation %d)", after.Generation))
	}
	if before.Ready != after.Ready || before.Reason != after.Reason {
		out = append(out, fmt.Sprintf("Ready %s/%s → %s/%s", dash(before.Ready), dash(before.Reason),
			dash(after.Ready), dash(after.Reason)))
		if after.Ready != readyTrue && after.Message != "" {
			out = append(out, "  "+after.Message)
		}
	}
	b, a := before.Clerk, after.Clerk
	switch {
	case b == nil && a != nil:
		out = append(out, "bound to Clerk user "+a.ID)
	case b != nil && a == nil:
		out = append(out, "Clerk user "+b.ID+" is gone")
	case b != nil && a != nil:
		field := func(name, x, y string) {
			if x != y {
				out = append(out, fmt.Sprintf("Clerk %s: %s → %s", name, x, y))
			}
		}
		field("banned", yesNo(b.Banned), yesNo(a.Banned))
		field("locked", yesNo(b.Locked), yesNo(a.Locked))
		field("MFA", mfaText(b), mfaText(a))
		field("first_name", fmt.Sprintf("%q", deref(b.FirstName)), fmt.Sprintf("%q", deref(a.FirstName)))
		field("last_name", fmt.Sprintf("%q", deref(b.LastName)), fmt.Sprintf("%q", deref(a.LastName)))
		out = append(out, metadataChanges("public_metadata", b.PublicMetadata, a.PublicMetadata, true)...)
		out = append(out, metadataChanges("private_metadata", b.PrivateMetadata, a.PrivateMetadata, false)...)
		out = append(out, metadataChanges("unsafe_metadata", b.UnsafeMetadata, a.UnsafeMetadata, true)...)
	}
	return out
}

// metadataChanges lists the top-level keys that differ between two metadata objects, with their
// values when showValues (private metadata shows only which keys changed).
func metadataChanges(name string, before, after map[string]any, showValues bool) []string {
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		x, inBefore := before[k]
		y, inAfter := after[k]
		if inBefore && inAfter && jsonEqual(x, y) {
			continue
		}
		if !showValues {
			what := "changed"
			switch {
			case !inBefore:
				what = "set"
			case !inAfter:
				what = "removed"
			}
			out = append(out, fmt.Sprintf("Clerk %s.%s %s", name, k, what))
			continue
		}
		out = append(out, fmt.Sprintf("Clerk %s.%s: %s → %s", name, k, jsonText(x, inBefore), jsonText(y, inAfter)))
	}
	return out
}

// jsonText is v as compact JSON, or "(none)" when it is absent.
func jsonText(v any, present bool) string {
	if !present {
		return "(none)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
