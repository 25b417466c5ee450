package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

// RequestedAtAnnotation asks for a sync: any change of its value triggers a reconcile.
const RequestedAtAnnotation = "clerk.kubeclerk.dev/requested-at"

const reconcileHelp = `Ask kubeclerk to sync ClerkUsers now: sets the annotation
clerk.kubeclerk.dev/requested-at to the current time (RFC 3339), which triggers a reconcile that
reads the user from Clerk again. Nothing else of the object changes.

Usage:
  kubectl clerk reconcile NAME... [-n NAMESPACE] [flags]

Examples:
  kubectl clerk reconcile alice -n support
  kubectl clerk reconcile alice bob -n support

Flags:
  -n, --namespace NS       namespace (default: the kubeconfig context's)
` + kubeFlagsHelp

func (a *app) reconcile(ctx context.Context, args []string) int {
	const cmd = "reconcile"
	fs := newFlagSet(cmd)
	var ns string
	var kf kubeFlags
	fs.StringVar(&ns, "namespace", "", "")
	fs.StringVar(&ns, "n", "", "")
	kf.bind(fs)
	names, code, done := a.parse(fs, reconcileHelp, args)
	if done {
		return code
	}
	if len(names) == 0 {
		return a.usageError(cmd, "name the ClerkUser to reconcile: kubectl clerk reconcile NAME")
	}
	c, ctxNS, err := a.kube(kf)
	if err != nil {
		return a.fail(cmd, err)
	}
	ns = cmp.Or(ns, ctxNS, "default")
	now := a.now().UTC().Format(time.RFC3339)
	failed := false
	for _, name := range names {
		if err := requestReconcile(ctx, c, ns, name, now); err != nil {
			a.printf(a.stderr, "%s %s: %v\n", program, cmd, err)
			failed = true
			continue
		}
		a.printf(a.stdout, "clerkuser.clerk.kubeclerk.dev/%s reconcile requested (%s=%s)\n", name, RequestedAtAnnotation, now)
	}
	if failed {
		return exitError
	}
	return exitOK
}

// requestReconcile sets the annotation with a merge patch, which fails when the object does
// not exist (it never creates one).
func requestReconcile(ctx context.Context, c client.Client, ns, name, at string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{RequestedAtAnnotation: at}}})
	if err != nil {
		return err
	}
	obj := &clerkv1alpha1.ClerkUser{}
	obj.Namespace, obj.Name = ns, name
	if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("ClerkUser %q not found in namespace %s", name, ns)
		}
		return kubeError(err)
	}
	return nil
}
