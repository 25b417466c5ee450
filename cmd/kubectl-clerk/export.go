package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/export"
	"github.com/kubeclerk/kubeclerk/internal/instance"
)

const exportHelp = `Print existing Clerk users as ClerkUser YAML on stdout, one document each, to bootstrap a
GitOps repository. Every object has managementPolicy: Observe and spec.userID, and declares what
the user holds now: externalID, username, firstName, lastName, banned, an administrator's lock,
and public and unsafe metadata keys. Applied as they are they change nothing in Clerk; their
status.pendingChanges then stays empty, also after switching them to managementPolicy: Manage.

Left out (not managed), with a comment saying why: mfa; emailAddress (written as a comment);
a lockout Clerk set after failed sign-ins (it expires by itself); metadata values a ClerkUser
cannot state exactly; private metadata unless --private-metadata says otherwise.

Users are read 500 at a time, oldest first; nothing is written to Clerk. Nothing is printed
until every page has been read: on an error stdout stays empty and the exit code is 1.

The Clerk API URL and secret key come from --clerk-api-url and CLERK_SECRET_KEY (or
--clerk-secret-key-file), or, with --instance, from a ClerkInstance and its Secret, read
through the kubeconfig.

Usage:
  kubectl clerk export [flags]

Examples:
  # Every user of the instance whose key is in CLERK_SECRET_KEY, for namespace support
  CLERK_SECRET_KEY=sk_live_... kubectl clerk export -n support > clerkusers.yaml

  # The users of ClerkInstance acme-prod with an acme.com address, private metadata in Secrets
  kubectl clerk export --instance acme-prod --email-domain acme.com -n acme \
      --private-metadata=secret > acme.yaml

Flags:
      --instance NAME                 take the API URL and key from this ClerkInstance and set
                                      spec.instanceRef.name on every object
      --cluster-resource-namespace NS where the ClerkInstance's Secret lives (default kubeclerk-system)
      --email-domain DOMAIN           only users whose primary email address is in DOMAIN (exact,
                                      case-insensitive; repeat or comma-separate for several)
  -n, --namespace NS                  metadata.namespace of every object (default: none)
      --private-metadata MODE         omit (default): leave private metadata out, list its keys
                                      in a comment; secret: put it into a Secret per user
                                      (labelled clerk.kubeclerk.dev/private-metadata: "true")
                                      named by spec.privateMetadataFrom; inline: declare it in
                                      spec.privateMetadata, in plain text
      --clerk-api-url URL             Clerk Backend API base URL (default https://api.clerk.com/v1)
      --clerk-secret-key-file PATH    file holding the instance secret key (default: the
                                      CLERK_SECRET_KEY environment variable)
` + kubeFlagsHelp

// clerkSource is where the export reads from.
type clerkSource struct {
	key    string
	rps    float64
	burst  int
	src    export.Source
	policy *clerkv1alpha1.ClerkInstancePolicy
}

func (a *app) export(ctx context.Context, args []string) int {
	const cmd = "export"
	fs := newFlagSet(cmd)
	var (
		inst, ns, mode, apiURL, keyFile, resourceNS string
		domains                                     stringList
		kf                                          kubeFlags
	)
	fs.StringVar(&inst, "instance", "", "")
	fs.StringVar(&resourceNS, "cluster-resource-namespace", "kubeclerk-system", "")
	fs.Var(&domains, "email-domain", "")
	fs.StringVar(&ns, "namespace", "", "")
	fs.StringVar(&ns, "n", "", "")
	fs.StringVar(&mode, "private-metadata", string(export.PrivateMetadataOmit), "")
	fs.StringVar(&apiURL, "clerk-api-url", clerk.DefaultBaseURL, "")
	fs.StringVar(&keyFile, "clerk-secret-key-file", "", "")
	kf.bind(fs)
	pos, code, done := a.parse(fs, exportHelp, args)
	if done {
		return code
	}
	if len(pos) > 0 {
		return a.usageError(cmd, "unexpected argument %q", pos[0])
	}
	opts := export.Options{Namespace: ns, Instance: inst, EmailDomains: export.NormalizeDomains(domains),
		PrivateMetadata: export.PrivateMetadataMode(mode)}
	if len(domains) > 0 && len(opts.EmailDomains) == 0 {
		return a.usageError(cmd, "--email-domain is empty")
	}
	if err := opts.Validate(); err != nil {
		return a.usageError(cmd, "%v", err)
	}

	var src clerkSource
	if inst != "" {
		for _, f := range []string{"clerk-api-url", "clerk-secret-key-file"} {
			if isSet(fs, f) {
				return a.usageError(cmd, "--%s cannot be combined with --instance, which takes the URL and key from the ClerkInstance", f)
			}
		}
		var err error
		if src, err = a.instanceSource(ctx, kf, inst, resourceNS); err != nil {
			return a.fail(cmd, err)
		}
		opts.Policy = src.policy
		if p := src.policy; p != nil && p.AllowUserID != nil && !*p.AllowUserID {
			a.printf(a.stderr, "%s %s: warning: ClerkInstance %s does not allow spec.userID (spec.policy.allowUserID: false); "+
				"the exported objects, which name users by userID, will be Stalled with reason NotAllowed\n", program, cmd, inst)
		}
	} else {
		if isSet(fs, "kubeconfig") || isSet(fs, "context") || isSet(fs, "cluster-resource-namespace") {
			return a.usageError(cmd, "--kubeconfig, --context and --cluster-resource-namespace are used only with --instance")
		}
		key, from, err := a.ownKey(keyFile)
		if err != nil {
			return a.usageError(cmd, "%v", err)
		}
		if err := checkAPIURL(apiURL); err != nil {
			return a.usageError(cmd, "%v", err)
		}
		src = clerkSource{key: key, src: export.Source{URL: apiURL, URLFrom: "--clerk-api-url", KeyFrom: from}}
	}

	c, err := clerk.New(clerk.Options{BaseURL: src.src.URL, SecretKey: src.key, RequestsPerSecond: src.rps,
		Burst: src.burst, UserAgent: userAgent()})
	if err != nil {
		return a.usageError(cmd, "%v", err)
	}
	res, err := export.Run(ctx, c, opts, export.Paging{})
	if err != nil {
		a.printf(a.stderr, "%s %s: %s\nNothing was written to stdout.\n", program, cmd, export.Explain(err, src.src))
		return exitError
	}
	// Encode everything before the first byte goes out.
	var buf bytes.Buffer
	if err := export.Write(&buf, res.Entries); err != nil {
		return a.fail(cmd, err)
	}
	if _, err := buf.WriteTo(a.stdout); err != nil {
		return a.fail(cmd, fmt.Errorf("write stdout: %w", err))
	}
	for _, e := range res.Skipped {
		a.printf(a.stderr, "%s %s: warning: %v\n", program, cmd, e)
	}
	summary := fmt.Sprintf("exported %d of %d Clerk users from %s", len(res.Entries), res.Read, c.BaseURL())
	if res.Filtered > 0 {
		summary += fmt.Sprintf(" (%d outside --email-domain %s)", res.Filtered, strings.Join(opts.EmailDomains, ","))
	}
	a.printf(a.stderr, "%s %s: %s\n", program, cmd, summary)
	return exitOK
}

// ownKey reads the secret key from the file, else CLERK_SECRET_KEY, and says where it came from.
func (a *app) ownKey(file string) (key, from string, err error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", "", fmt.Errorf("read --clerk-secret-key-file: %w", err)
		}
		key, from = strings.TrimSpace(string(b)), "--clerk-secret-key-file "+file
		if key == "" {
			return "", "", fmt.Errorf("--clerk-secret-key-file %s is empty; put the instance secret key (sk_live_… or sk_test_…) in it",
				file)
		}
	} else {
		key, from = strings.TrimSpace(a.getenv("CLERK_SECRET_KEY")), "CLERK_SECRET_KEY"
		if key == "" {
			return "", "", fmt.Errorf("no Clerk secret key: set CLERK_SECRET_KEY, pass --clerk-secret-key-file, or use --instance NAME")
		}
	}
	if !strings.HasPrefix(key, "sk_") {
		return "", "", fmt.Errorf("%s does not hold a Clerk secret key (sk_live_… or sk_test_…, Clerk Dashboard → API keys)", from)
	}
	return key, from, nil
}

// checkAPIURL refuses to send the key unencrypted anywhere but to this machine.
func checkAPIURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("--clerk-api-url %q is not an http(s) URL such as https://api.clerk.com/v1", raw)
	}
	if u.Scheme == "http" {
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("--clerk-api-url %q uses http:// for a host other than localhost, which would send the secret key "+
				"unencrypted; use https://", u.Redacted())
		}
	}
	return nil
}

// instanceSource reads a ClerkInstance and its Secret through the kubeconfig.
func (a *app) instanceSource(ctx context.Context, kf kubeFlags, name, resourceNS string) (clerkSource, error) {
	c, _, err := a.kube(kf)
	if err != nil {
		return clerkSource{}, err
	}
	var ci clerkv1alpha1.ClerkInstance
	if err := c.Get(ctx, types.NamespacedName{Name: name}, &ci); err != nil {
		if apierrors.IsNotFound(err) {
			return clerkSource{}, fmt.Errorf("ClerkInstance %s not found; list them with 'kubectl get clerkinstances'", name)
		}
		return clerkSource{}, fmt.Errorf("read ClerkInstance %s: %w", name, kubeError(err))
	}
	ref := ci.Spec.SecretKeyRef
	secretName := resourceNS + "/" + ref.Name
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: resourceNS, Name: ref.Name}, &s); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return clerkSource{}, fmt.Errorf("the Secret %s (spec.secretKeyRef of ClerkInstance %s) was not found; "+
				"if kubeclerk runs in another namespace, pass it with --cluster-resource-namespace", secretName, name)
		case apierrors.IsForbidden(err):
			return clerkSource{}, fmt.Errorf("you may not read the Secret %s (spec.secretKeyRef of ClerkInstance %s): ask for 'get' on it, "+
				"or pass the key yourself with CLERK_SECRET_KEY instead of --instance: %w", secretName, name, err)
		}
		return clerkSource{}, fmt.Errorf("read Secret %s: %w", secretName, err)
	}
	value, ok := s.Data[ref.Key]
	if !ok {
		return clerkSource{}, fmt.Errorf("the Secret %s has no key %q (spec.secretKeyRef of ClerkInstance %s)", secretName, ref.Key, name)
	}
	key, _, err := instance.ParseKey(value)
	if err != nil {
		return clerkSource{}, fmt.Errorf("the Secret %s, key %q: %w", secretName, ref.Key, err)
	}
	apiURL := ci.Spec.APIURL
	if apiURL == "" {
		apiURL = clerk.DefaultBaseURL
	} else if err := instance.ValidateAPIURL(apiURL); err != nil {
		return clerkSource{}, fmt.Errorf("ClerkInstance %s: %w", name, err)
	}
	out := clerkSource{key: key, policy: ci.Spec.Policy, src: export.Source{
		URL:     apiURL,
		URLFrom: "spec.apiURL of ClerkInstance " + name,
		KeyFrom: fmt.Sprintf("Secret %s key %q (spec.secretKeyRef of ClerkInstance %s)", secretName, ref.Key, name),
	}}
	if ci.Spec.RequestsPerSecond != nil {
		out.rps = float64(*ci.Spec.RequestsPerSecond)
	}
	if ci.Spec.Burst != nil {
		out.burst = int(*ci.Spec.Burst)
	}
	return out, nil
}
