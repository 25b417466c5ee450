package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

const statusHelp = `List ClerkUser objects with their Ready condition, Clerk user ID and pending changes
(status.pendingChanges: what kubeclerk still has to do, or with managementPolicy Observe, what
Manage would do).

Usage:
  kubectl clerk status [-n NAMESPACE | -A] [flags]

Examples:
  kubectl clerk status -n support
  kubectl clerk status -A

Flags:
  -n, --namespace NS       namespace (default: the kubeconfig context's)
  -A, --all-namespaces     every namespace
` + kubeFlagsHelp

// maxPending is how many pending changes the table shows before "+N more".
const maxPending = 4

func (a *app) status(ctx context.Context, args []string) int {
	const cmd = "status"
	fs := newFlagSet(cmd)
	var ns string
	var all bool
	var kf kubeFlags
	fs.StringVar(&ns, "namespace", "", "")
	fs.StringVar(&ns, "n", "", "")
	fs.BoolVar(&all, "all-namespaces", false, "")
	fs.BoolVar(&all, "A", false, "")
	kf.bind(fs)
	pos, code, done := a.parse(fs, statusHelp, args)
	if done {
		return code
	}
	if len(pos) > 0 {
		return a.usageError(cmd, "unexpected argument %q", pos[0])
	}
	if all && ns != "" {
		return a.usageError(cmd, "-n and -A cannot be combined")
	}
	c, ctxNS, err := a.kube(kf)
	if err != nil {
		return a.fail(cmd, err)
	}
	var opts []client.ListOption
	if !all {
		ns = cmp.Or(ns, ctxNS, "default")
		opts = append(opts, client.InNamespace(ns))
	}
	var list clerkv1alpha1.ClerkUserList
	if err := c.List(ctx, &list, opts...); err != nil {
		return a.fail(cmd, kubeError(err))
	}
	if len(list.Items) == 0 {
		if all {
			a.printf(a.stderr, "No ClerkUsers found.\n")
		} else {
			a.printf(a.stderr, "No ClerkUsers found in %s namespace.\n", ns)
		}
		return exitOK
	}
	if err := writeStatusTable(a.stdout, list.Items, all, a.now()); err != nil {
		return a.fail(cmd, err)
	}
	return exitOK
}

// writeStatusTable prints the objects as kubectl get does, sorted by namespace and name.
func writeStatusTable(w io.Writer, items []clerkv1alpha1.ClerkUser, withNamespace bool, now time.Time) error {
	slices.SortFunc(items, func(a, b clerkv1alpha1.ClerkUser) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	header := []string{"NAME", "READY", "REASON", "USER-ID", "PENDING", "AGE"}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	_, _ = fmt.Fprintln(tw, strings.Join(header, "\t")) // tabwriter reports write errors on Flush
	for i := range items {
		o := &items[i]
		ready, reason := "Unknown", "<none>"
		if c := meta.FindStatusCondition(o.Status.Conditions, "Ready"); c != nil {
			ready, reason = string(c.Status), cmp.Or(c.Reason, "<none>")
			if c.ObservedGeneration != o.Generation {
				// The condition describes an older spec: the change is not reconciled yet.
				ready, reason = "Unknown", "Progressing"
			}
		}
		row := []string{o.Name, ready, reason, cmp.Or(o.Status.UserID, "<none>"), pending(o.Status.PendingChanges),
			age(o.CreationTimestamp.Time, now)}
		if withNamespace {
			row = append([]string{o.Namespace}, row...)
		}
		_, _ = fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// pending joins the pending changes, at most maxPending of them.
func pending(changes []string) string {
	switch {
	case len(changes) == 0:
		return "<none>"
	case len(changes) > maxPending:
		return strings.Join(changes[:maxPending], ",") + fmt.Sprintf(",+%d more", len(changes)-maxPending)
	}
	return strings.Join(changes, ",")
}

func age(created, now time.Time) string {
	if created.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(created))
}
