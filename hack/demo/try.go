package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// countRoute returns the number of calls to route, over all statuses.
func (c callCounts) countRoute(route string) int64 {
	var n int64
	for k, v := range c {
		if k.Route == route {
			n += v
		}
	}
	return n
}

// demoTOTPSecret is a base32 TOTP secret for turning MFA on behind kubeclerk's back.
const demoTOTPSecret = "JBSWY3DPEHPK3PXP"

// tryText tells the user what to try, with the real paths, names and user IDs.
func (d *demo) tryText(s *snapshot) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	// The suggestions use the samples of --namespace, the current namespace of the kubeconfig.
	pick := func(ok func(o *clerkv1alpha1.ClerkUser, v userView) bool) (*clerkv1alpha1.ClerkUser, userView, bool) {
		for _, v := range s.views {
			if o := s.objs[v.Name]; o.Namespace == d.o.namespace && ok(o, v) {
				return o, v, true
			}
		}
		return nil, userView{}, false
	}
	manage := func(_ *clerkv1alpha1.ClerkUser, v userView) bool { return !v.Observe && v.Clerk != nil }

	p("\nkubeclerk is running. Try it from another terminal, in this directory:\n\n")
	p("  export KUBECONFIG=%s KUBECACHEDIR=%s PATH=%s:$PATH\n", d.kubeconfig, d.path("kube-cache"), d.dir)
	p("  kubectl get cu                   # READY and REASON of each ClerkUser (-o yaml shows status.observed)\n")
	p("  kubectl get cu -w                # and watch them change\n")
	if o, _, ok := pick(func(_ *clerkv1alpha1.ClerkUser, v userView) bool { return v.Observe }); ok {
		p("  kubectl describe cu %-12s # managementPolicy Observe: the Ready message says what Manage would change\n", o.Name)
	}
	if d.tenant != nil {
		p("  kubectl get ci                   # ClerkInstances: READY, REASON, bound USERS\n")
		for _, ns := range d.tenant.Namespaces {
			p("  kubectl -n %-21s # the tenant's ClerkUsers, bound to a ClerkInstance\n", ns+" get cu")
		}
		for _, u := range d.tenant.Users {
			if u.Refusal != nil && u.Fix != nil {
				p("  %s\n      # fix %s, refused by ClerkInstance %s (NotAllowed): it becomes Ready\n", u.fixCommand(), u.key(), u.Instance)
			}
		}
		p("  # (kubectl apply -k %s here would point %s back at Clerk's API with the samples' placeholder key)\n",
			d.o.tenant, strings.Join(d.tenant.Instances, ", "))
	}

	p("\nChange a spec and watch kubeclerk converge (changes are reported below):\n")
	if o, _, ok := pick(func(o *clerkv1alpha1.ClerkUser, v userView) bool {
		return manage(o, v) && hasKey(o.Spec.PublicMetadata, "role")
	}); ok {
		p("  kubectl patch cu %s --type merge -p '{\"spec\":{\"publicMetadata\":{\"role\":\"owner\"}}}'\n", o.Name)
	} else if o, _, ok := pick(manage); ok {
		p("  kubectl patch cu %s --type merge -p '{\"spec\":{\"firstName\":\"Changed\"}}'\n", o.Name)
	}
	edit := "ci-bot"
	if o, _, ok := pick(manage); ok {
		edit = o.Name
	}
	p("  kubectl edit cu %-16s # or edit %s/*.yaml, then: kubectl apply -k %s\n", edit, d.o.samples, d.o.samples)
	if o, _, ok := pick(func(o *clerkv1alpha1.ClerkUser, v userView) bool {
		return manage(o, v) && o.Spec.DeletionPolicy == clerkv1alpha1.DeletionPolicyDelete
	}); ok {
		p("  kubectl delete cu %-14s # deletionPolicy Delete: the Clerk user is deleted too\n", o.Name)
	}

	if d.webhookAddr != "" {
		p("\nChange users in the fake Clerk behind kubeclerk's back: the fake Clerk sends kubeclerk a signed webhook "+
			"(user.updated) for each change,\nso kubeclerk puts them back within about a second (polling, every %s, is the "+
			"safety net):\n", d.o.syncPeriod)
	} else {
		p("\nChange users in the fake Clerk behind kubeclerk's back; kubeclerk puts them back within the sync period (%s):\n",
			d.o.syncPeriod)
	}
	p("  export CLERK=%s AUTH='Authorization: Bearer %s'\n", d.fake.apiURL(), clerkfake.DefaultSecretKey)
	if o, v, ok := pick(func(o *clerkv1alpha1.ClerkUser, v userView) bool {
		return manage(o, v) && o.Spec.Banned != nil && *o.Spec.Banned
	}); ok {
		p("  curl -s -X POST -H \"$AUTH\" $CLERK/users/%s/unban >/dev/null    # unban %s\n", v.UserID, o.Name)
	}
	if o, v, ok := pick(func(o *clerkv1alpha1.ClerkUser, v userView) bool {
		return manage(o, v) && o.Spec.Locked != nil && !*o.Spec.Locked
	}); ok {
		p("  curl -s -X POST -H \"$AUTH\" $CLERK/users/%s/lock >/dev/null     # lock %s\n", v.UserID, o.Name)
	}
	if o, v, ok := pick(func(o *clerkv1alpha1.ClerkUser, v userView) bool {
		return manage(o, v) && o.Spec.MFA != nil && o.Spec.MFA.Disabled
	}); ok {
		p("  curl -s -X PATCH -H \"$AUTH\" -H 'Content-Type: application/json' -d '{\"totp_secret\":\"%s\"}' \\\n"+
			"       $CLERK/users/%s >/dev/null                          # turn MFA on for %s\n", demoTOTPSecret, v.UserID, o.Name)
	}
	if o, v, ok := pick(func(o *clerkv1alpha1.ClerkUser, v userView) bool {
		return manage(o, v) && o.Spec.MetadataPolicy != clerkv1alpha1.MetadataPolicyReplace &&
			firstKey(o.Spec.PublicMetadata) != ""
	}); ok {
		k := firstKey(o.Spec.PublicMetadata)
		p("  curl -s -X PATCH -H \"$AUTH\" -H 'Content-Type: application/json' -d '{\"public_metadata\":{\"%s\":\"edited\",\"app_key\":1}}' \\\n"+
			"       $CLERK/users/%s/metadata >/dev/null                 # %s: %s is put back, app_key (not declared) stays\n",
			k, v.UserID, o.Name, k)
	}
	p("  curl -s %s/_fake/stats                # every call the fake Clerk answered\n", strings.TrimSuffix(d.fake.apiURL(), "/v1"))

	p("\nLogs: %s (tail -f it to see every Clerk call), %s, %s\n", rel(d.path("clerk-requests.log")),
		rel(d.manager.log), rel(d.path("kube-apiserver.log")))
	p("Press Ctrl-C to stop everything; %s is removed.\n\n", rel(d.dir))
	return b.String()
}

// hasKey reports whether the JSON object j has key k.
func hasKey(j *apiextensionsv1.JSON, k string) bool {
	m := jsonObject(j)
	_, ok := m[k]
	return ok
}

// firstKey is the first key of the JSON object j in sorted order, "" if none.
func firstKey(j *apiextensionsv1.JSON) string {
	keys := slices.Sorted(maps.Keys(jsonObject(j)))
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

// jsonObject decodes the JSON object j; nil when j is nil or not an object.
func jsonObject(j *apiextensionsv1.JSON) map[string]any {
	if j == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(j.Raw, &m); err != nil {
		return nil
	}
	return m
}
