// Package crd_test checks the ClerkUser CRD the way users meet it: with the real kubectl against a
// real kube-apiserver (envtest) that has the generated CRD of config/crd/bases installed.
//
// Run with `make test`, or:
//
//	export KUBEBUILDER_ASSETS=$(bash hack/envtest/build.sh | tail -n 1) && go test ./test/crd/ -v
package crd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

const (
	// kubectlTimeout bounds every kubectl call; the machine is shared with other builds.
	kubectlTimeout = 60 * time.Second
	// readyTimeout bounds the wait for eventually consistent views (the OpenAPI document).
	readyTimeout = 90 * time.Second
	pollInterval = 250 * time.Millisecond

	crdName = "clerkusers.clerk.kubeclerk.dev"
)

var (
	repoRoot   = filepath.Join("..", "..")
	crdDir     = filepath.Join(repoRoot, "config", "crd", "bases")
	samplesDir = filepath.Join(repoRoot, "config", "samples")

	testEnv   *envtest.Environment
	restCfg   *rest.Config
	k8sClient client.Client
	kc        *kubectl
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		fmt.Fprintln(os.Stderr, "FAIL: KUBEBUILDER_ASSETS is not set. These tests need kube-apiserver, etcd and kubectl: "+
			"run `make test`, or `export KUBEBUILDER_ASSETS=$(bash hack/envtest/build.sh | tail -n 1)` from the repository root first.")
		return 1
	}
	for _, bin := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: KUBEBUILDER_ASSETS=%s has no %s (%v): run `make test`, which builds the envtest binaries.\n",
				assets, bin, err)
			return 1
		}
	}

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:        []string{crdDir},
		ErrorIfCRDPathMissing:    true,
		CRDInstallOptions:        envtest.CRDInstallOptions{MaxTime: readyTimeout},
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	var err error
	if restCfg, err = testEnv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start envtest with the CRDs of %s: %v\n", crdDir, err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}()
	if len(testEnv.CRDs) == 0 {
		fmt.Fprintf(os.Stderr, "FAIL: no CRD was installed from %s\n", crdDir)
		return 1
	}

	scheme := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	if k8sClient, err = client.New(restCfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: client:", err)
		return 1
	}

	// The real kubectl that envtest found next to kube-apiserver, with a kubeconfig for an admin
	// user of the test API server.
	user, err := testEnv.ControlPlane.AddUser(envtest.User{Name: "crd-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: add user:", err)
		return 1
	}
	envKubectl, err := user.Kubectl()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: kubectl:", err)
		return 1
	}
	if envKubectl.Path == "" || filepath.Dir(envKubectl.Path) != filepath.Clean(assets) {
		fmt.Fprintf(os.Stderr, "FAIL: envtest's kubectl is %q, expected the one in KUBEBUILDER_ASSETS=%s\n", envKubectl.Path, assets)
		return 1
	}
	// A private discovery cache: the API server's port is random, and another run's cache for the
	// same host:port must not be used.
	cacheDir, err := os.MkdirTemp("", "kubeclerk-crd-test-kubectl-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(cacheDir) }()
	kc = &kubectl{path: envKubectl.Path, opts: append(append([]string{}, envKubectl.Opts...), "--cache-dir="+cacheDir)}

	return m.Run()
}

// kubectl runs the real kubectl binary against the test API server.
type kubectl struct {
	path string
	opts []string
}

// result is what one kubectl call produced.
type result struct {
	args     []string
	stdout   string
	stderr   string
	exitCode int
	err      error // set when kubectl could not run or did not exit 0
}

func (r result) String() string {
	return fmt.Sprintf("kubectl %s: exit %d (%v)\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.exitCode, r.err, r.stdout, r.stderr)
}

// run calls kubectl with args; stdin is fed to it when not empty.
func (k *kubectl) run(stdin string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	all := append(append([]string{}, k.opts...), args...)
	cmd := exec.CommandContext(ctx, k.path, all...)
	// Only the kubeconfig flag decides where kubectl goes.
	cmd.Env = append(os.Environ(), "KUBECONFIG=/dev/null")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String(), err: err}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		r.exitCode = exitErr.ExitCode()
	case err != nil:
		r.exitCode = -1
	}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("kubectl did not finish within %s: %w", kubectlTimeout, ctx.Err())
		r.exitCode = -1
	}
	return r
}

// mustRun calls kubectl and fails the test unless it exits 0.
func mustRun(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := kc.run(stdin, args...)
	if r.err != nil || r.exitCode != 0 {
		t.Fatalf("expected success: %s", r)
	}
	return r
}

// newNamespace creates a namespace with kubectl; it is deleted (without waiting) when the test ends.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	if len(name) > 63 {
		name = name[len(name)-63:]
		name = strings.TrimLeft(name, "-")
	}
	mustRun(t, "", "create", "namespace", name)
	t.Cleanup(func() { kc.run("", "delete", "namespace", name, "--wait=false") })
	return name
}

// getObject reads an object with `kubectl get -o json`.
func getObject(t *testing.T, ns, resource, name string) map[string]any {
	t.Helper()
	r := mustRun(t, "", "get", resource, name, "-n", ns, "-o", "json")
	var obj map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &obj); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
	return obj
}

// field walks obj along path; ok is false when a step is missing.
func field(obj map[string]any, path ...string) (any, bool) {
	var cur any = obj
	for _, p := range path {
		m, isMap := cur.(map[string]any)
		if !isMap {
			return nil, false
		}
		if cur, isMap = m[p]; !isMap {
			return nil, false
		}
	}
	return cur, true
}

// eventually calls f until it returns nil or timeout passes; it returns f's last error.
func eventually(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		<-ticker.C
	}
}
