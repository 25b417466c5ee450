package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

var now = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// testApp returns the plugin with captured output, the given environment and a fake cluster.
func testApp(env map[string]string, objs ...client.Object) (*app, *bytes.Buffer, *bytes.Buffer, client.Client) {
	var stdout, stderr bytes.Buffer
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	a := &app{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] },
		now:  func() time.Time { return now },
		kube: func(kubeFlags) (client.Client, string, error) { return c, "support", nil }}
	return a, &stdout, &stderr, c
}

// fakeClerk serves a fake Clerk API with a few users.
func fakeClerk(t *testing.T, key string) *httptest.Server {
	t.Helper()
	f := clerkfake.New(clerkfake.Options{SecretKey: key})
	if err := f.Seed([]json.RawMessage{
		json.RawMessage(`{"email_addresses":[{"email_address":"alice@example.com"}],"username":"alice","first_name":"Alice",` +
			`"public_metadata":{"role":"admin","team":"ops"},"private_metadata":{"crm":"C-1"}}`),
		json.RawMessage(`{"email_addresses":[{"email_address":"bob@acme.io"}],"banned":true}`),
	}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

func TestVersionAndHelp(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		a, out, _, _ := testApp(nil)
		if code := a.run(context.Background(), args); code != 0 || !strings.HasPrefix(out.String(), "kubectl-clerk ") {
			t.Errorf("%v: code %d, output %q", args, code, out)
		}
	}
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}} {
		a, out, _, _ := testApp(nil)
		if code := a.run(context.Background(), args); code != 0 || !strings.Contains(out.String(), "Commands:") {
			t.Errorf("%v: code %d, output %q", args, code, out)
		}
	}
	for _, cmd := range []string{"export", "status", "reconcile"} {
		for _, args := range [][]string{{cmd, "--help"}, {cmd, "-h"}, {"help", cmd}} {
			a, out, _, _ := testApp(nil)
			code := a.run(context.Background(), args)
			if code != 0 || !strings.Contains(out.String(), "kubectl clerk "+cmd) || !strings.Contains(out.String(), "Flags:") {
				t.Errorf("%v: code %d, output %q", args, code, out)
			}
		}
	}
	for _, args := range [][]string{nil, {"frobnicate"}, {"export", "--bogus"}, {"status", "extra"}, {"reconcile"},
		{"status", "-A", "-n", "x"}} {
		a, out, errOut, _ := testApp(nil)
		if code := a.run(context.Background(), args); code != exitUsage || out.Len() != 0 || errOut.Len() == 0 {
			t.Errorf("%v: code %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := newFlagSet("x")
	ns := fs.String("n", "", "")
	all := fs.Bool("A", false, "")
	pos, err := parseInterspersed(fs, []string{"alice", "-n", "support", "bob", "-A", "--", "-carol"})
	if err != nil || *ns != "support" || !*all || !slices.Equal(pos, []string{"alice", "bob", "-carol"}) {
		t.Errorf("pos %q ns %q all %v err %v", pos, *ns, *all, err)
	}
	if _, err := parseInterspersed(newFlagSet("y"), []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestExportWithOwnKey(t *testing.T) {
	const key = "sk_test_cmd_export_own"
	srv := fakeClerk(t, key)
	a, out, errOut, _ := testApp(map[string]string{"CLERK_SECRET_KEY": key})
	code := a.run(context.Background(), []string{"export", "--clerk-api-url", srv.URL + "/v1", "-n", "support",
		"--email-domain", "EXAMPLE.com"})
	if code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	text := out.String()
	for _, want := range []string{"name: alice\n", "namespace: support\n", "managementPolicy: Observe\n", "role: admin",
		`privateMetadata not exported (keys "crm")`} {
		if !strings.Contains(text, want) {
			t.Errorf("output does not contain %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "bob") {
		t.Errorf("--email-domain let bob through:\n%s", text)
	}
	want := "exported 1 of 2 Clerk users from " + srv.URL + "/v1 (1 outside --email-domain example.com)"
	if !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr %q, want %q", errOut, want)
	}

	// The key from a file, private metadata in Secrets.
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, out, errOut, _ = testApp(nil)
	if code := a.run(context.Background(), []string{"export", "--clerk-secret-key-file", file, "--clerk-api-url", srv.URL + "/v1",
		"--private-metadata=secret"}); code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	if !strings.Contains(out.String(), "kind: Secret") || !strings.Contains(out.String(), `metadata.json: '{"crm":"C-1"}'`) {
		t.Errorf("no Secret:\n%s", out)
	}
}

func TestExportErrors(t *testing.T) {
	const key = "sk_test_cmd_export_errors"
	srv := fakeClerk(t, key)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"wrong key", map[string]string{"CLERK_SECRET_KEY": "sk_test_wrong"}, []string{"--clerk-api-url", srv.URL + "/v1"}, exitError,
			"Clerk refused the secret key from CLERK_SECRET_KEY (HTTP 401)"},
		{"unreachable", map[string]string{"CLERK_SECRET_KEY": key}, []string{"--clerk-api-url", closed.URL + "/v1"}, exitError,
			"cannot reach the Clerk API at " + closed.URL + "/v1: check --clerk-api-url"},
		{"no version prefix", map[string]string{"CLERK_SECRET_KEY": key}, []string{"--clerk-api-url", srv.URL}, exitError,
			"must include the version prefix"},
		{"no key", nil, nil, exitUsage, "no Clerk secret key: set CLERK_SECRET_KEY"},
		{"publishable key", map[string]string{"CLERK_SECRET_KEY": "pk_test_x"}, nil, exitUsage,
			"CLERK_SECRET_KEY does not hold a Clerk secret key"},
		{"missing key file", nil, []string{"--clerk-secret-key-file", "/nonexistent/key"}, exitUsage, "read --clerk-secret-key-file"},
		{"plain http", map[string]string{"CLERK_SECRET_KEY": key}, []string{"--clerk-api-url", "http://clerk.example.com/v1"}, exitUsage,
			"would send the secret key unencrypted"},
		{"bad mode", map[string]string{"CLERK_SECRET_KEY": key}, []string{"--private-metadata", "plain"}, exitUsage,
			"use omit, inline or secret"},
		{"bad namespace", map[string]string{"CLERK_SECRET_KEY": key}, []string{"-n", "Support"}, exitUsage, "not a valid Kubernetes namespace"},
		{"kubeconfig without instance", map[string]string{"CLERK_SECRET_KEY": key}, []string{"--context", "x"}, exitUsage,
			"only with --instance"},
		{"instance and url", nil, []string{"--instance", "acme", "--clerk-api-url", srv.URL}, exitUsage, "cannot be combined with --instance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, out, errOut, _ := testApp(tc.env)
			code := a.run(context.Background(), append([]string{"export"}, tc.args...))
			if code != tc.code || out.Len() != 0 || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("code %d (want %d), stdout %q, stderr %q (want %q)", code, tc.code, out, errOut, tc.want)
			}
			if strings.Contains(errOut.String(), key) {
				t.Errorf("stderr shows the key: %s", errOut)
			}
		})
	}
}

func clerkInstance(apiURL string) *clerkv1alpha1.ClerkInstance {
	return &clerkv1alpha1.ClerkInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "acme-prod"},
		Spec: clerkv1alpha1.ClerkInstanceSpec{
			SecretKeyRef:      clerkv1alpha1.SecretKeyReference{Name: "clerk-acme", Key: "secret-key"},
			APIURL:            apiURL,
			NamespaceSelector: &metav1.LabelSelector{},
			Policy: &clerkv1alpha1.ClerkInstancePolicy{AllowUserID: new(false),
				ProtectedMetadataKeys: &clerkv1alpha1.ProtectedMetadataKeys{Public: []string{"role"}}},
		},
	}
}

func TestExportWithInstance(t *testing.T) {
	const key = "sk_test_cmd_export_instance"
	srv := fakeClerk(t, key)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "clerk-acme", Namespace: "kubeclerk-system"},
		Data: map[string][]byte{"secret-key": []byte(key + "\n")}}
	a, out, errOut, _ := testApp(nil, clerkInstance(srv.URL+"/v1"), secret)
	if code := a.run(context.Background(), []string{"export", "--instance", "acme-prod", "-n", "acme"}); code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	var docs []clerkv1alpha1.ClerkUser
	for d := range strings.SplitSeq(out.String(), "---\n") {
		if strings.TrimSpace(d) == "" {
			continue
		}
		var cu clerkv1alpha1.ClerkUser
		if err := yaml.Unmarshal([]byte(d), &cu); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, cu)
	}
	if len(docs) != 2 {
		t.Fatalf("%d documents:\n%s", len(docs), out)
	}
	for _, d := range docs {
		if d.Spec.InstanceRef == nil || d.Spec.InstanceRef.Name != "acme-prod" || d.Namespace != "acme" {
			t.Errorf("%s: instanceRef %v namespace %q", d.Name, d.Spec.InstanceRef, d.Namespace)
		}
	}
	// The protected key is left out, the other one kept.
	if pm := docs[0].Spec.PublicMetadata; pm == nil || string(pm.Raw) != `{"team":"ops"}` {
		t.Errorf("publicMetadata = %v", pm)
	}
	if !strings.Contains(errOut.String(), "does not allow spec.userID") {
		t.Errorf("no warning about policy.allowUserID: %s", errOut)
	}

	for _, tc := range []struct {
		name string
		objs []client.Object
		args []string
		want string
	}{
		{"no instance", nil, nil, "ClerkInstance acme-prod not found"},
		{"no Secret", []client.Object{clerkInstance("")}, nil,
			"the Secret kubeclerk-system/clerk-acme (spec.secretKeyRef of ClerkInstance acme-prod) " +
				"was not found; if kubeclerk runs in another namespace, pass it with --cluster-resource-namespace"},
		{"Secret elsewhere", []client.Object{clerkInstance(""), secret}, []string{"--cluster-resource-namespace", "clerk"},
			"Secret clerk/clerk-acme"},
		{"no Secret key", []client.Object{clerkInstance(""), &corev1.Secret{ObjectMeta: secret.ObjectMeta}}, nil, `has no key "secret-key"`},
		{"wrong key in Secret", []client.Object{clerkInstance(srv.URL + "/v1"), &corev1.Secret{ObjectMeta: secret.ObjectMeta,
			Data: map[string][]byte{"secret-key": []byte("sk_test_wrong")}}}, nil,
			`Clerk refused the secret key from Secret kubeclerk-system/clerk-acme key "secret-key" (spec.secretKeyRef of ClerkInstance acme-prod)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, out, errOut, _ := testApp(nil, tc.objs...)
			code := a.run(context.Background(), append([]string{"export", "--instance", "acme-prod"}, tc.args...))
			if code != exitError || out.Len() != 0 || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("code %d, stdout %q, stderr %q, want %q", code, out, errOut, tc.want)
			}
		})
	}
}

func clerkUser(ns, name string, age time.Duration, gen int64, ready *metav1.Condition, userID string,
	pending ...string) *clerkv1alpha1.ClerkUser {
	o := &clerkv1alpha1.ClerkUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: gen, CreationTimestamp: metav1.NewTime(now.Add(-age))},
		Spec:       clerkv1alpha1.ClerkUserSpec{UserID: userID},
		Status:     clerkv1alpha1.ClerkUserStatus{UserID: userID, PendingChanges: pending},
	}
	if ready != nil {
		o.Status.Conditions = []metav1.Condition{*ready}
	}
	return o
}

func cond(status metav1.ConditionStatus, reason string, gen int64) *metav1.Condition {
	return &metav1.Condition{Type: "Ready", Status: status, Reason: reason, ObservedGeneration: gen}
}

func TestStatus(t *testing.T) {
	objs := []client.Object{
		clerkUser("support", "bob", 3*time.Hour, 2, cond(metav1.ConditionTrue, "Observed", 2), "user_b",
			"ban", "publicMetadata.role", "lastName", "unlock", "firstName", "externalID"),
		clerkUser("support", "alice", 50*time.Hour, 1, cond(metav1.ConditionTrue, "Synced", 1), "user_a"),
		clerkUser("support", "new", 5*time.Second, 1, nil, ""),
		clerkUser("support", "stale", time.Minute, 3, cond(metav1.ConditionTrue, "Synced", 2), "user_s"),
		clerkUser("ops", "carol", 40*24*time.Hour, 1, cond(metav1.ConditionFalse, "UserNotFound", 1), ""),
	}
	a, out, errOut, _ := testApp(nil, objs...)
	if code := a.run(context.Background(), []string{"status"}); code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	want := `NAME    READY     REASON        USER-ID   PENDING                                           AGE
alice   True      Synced        user_a    <none>                                            2d2h
bob     True      Observed      user_b    ban,publicMetadata.role,lastName,unlock,+2 more   3h
new     Unknown   <none>        <none>    <none>                                            5s
stale   Unknown   Progressing   user_s    <none>                                            60s
`
	if out.String() != want {
		t.Errorf("status:\n%s\nwant:\n%s", out, want)
	}

	a, out, _, _ = testApp(nil, objs...)
	if code := a.run(context.Background(), []string{"status", "-A"}); code != 0 {
		t.Fatal(code)
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.HasPrefix(lines[0], "NAMESPACE   NAME ") || !strings.HasPrefix(lines[1], "ops         carol   False     UserNotFound") ||
		len(lines) != 7 {
		t.Errorf("status -A:\n%s", out)
	}

	a, out, errOut, _ = testApp(nil, objs...)
	code := a.run(context.Background(), []string{"status", "-n", "empty"})
	if code != 0 || out.Len() != 0 || errOut.String() != "No ClerkUsers found in empty namespace.\n" {
		t.Errorf("code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestReconcile(t *testing.T) {
	alice := clerkUser("support", "alice", time.Hour, 1, nil, "user_a")
	alice.Annotations = map[string]string{"keep": "me"}
	a, out, errOut, c := testApp(nil, alice, clerkUser("ops", "bob", time.Hour, 1, nil, "user_b"))
	if code := a.run(context.Background(), []string{"reconcile", "alice"}); code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	want := "clerkuser.clerk.kubeclerk.dev/alice reconcile requested (clerk.kubeclerk.dev/requested-at=2026-11-26T10:00:00Z)\n"
	if out.String() != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	var got clerkv1alpha1.ClerkUser
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: "support", Name: "alice"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Annotations[RequestedAtAnnotation] != "2026-11-26T10:00:00Z" || got.Annotations["keep"] != "me" || got.Spec.UserID != "user_a" {
		t.Errorf("annotations %v spec %+v", got.Annotations, got.Spec)
	}

	// -n after the name; a missing object is an error, and is not created.
	a, out, errOut, c = testApp(nil, clerkUser("ops", "bob", time.Hour, 1, nil, "user_b"))
	code := a.run(context.Background(), []string{"reconcile", "bob", "ghost", "-n", "ops"})
	if code != exitError || !strings.Contains(out.String(), "clerkuser.clerk.kubeclerk.dev/bob reconcile requested") ||
		!strings.Contains(errOut.String(), `ClerkUser "ghost" not found in namespace ops`) {
		t.Errorf("code %d, stdout %q, stderr %q", code, out, errOut)
	}
	var list clerkv1alpha1.ClerkUserList
	if err := c.List(context.Background(), &list); err != nil || len(list.Items) != 1 {
		t.Errorf("objects: %d, %v", len(list.Items), err)
	}
}
