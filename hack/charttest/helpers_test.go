package charttest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// releaseName and namespace of the rendered chart: with them the chart's objects have the names
// of config/default's (namePrefix kubeclerk-, namespace kubeclerk-system).
const (
	releaseName = "kubeclerk"
	namespace   = "kubeclerk-system"
	chartDir    = "charts/kubeclerk"
)

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// repoRoot is the directory of the module's go.mod, found by walking up from the test's
// directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("no go.mod above the test's directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatal(rootErr)
	}
	return rootDir
}

// tool returns the path of bin/<name>, the pinned build the Makefile installs.
func tool(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(repoRoot(t), "bin", name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing: run make helm kustomize (the pinned tools the chart tests use)", path)
	}
	return path
}

// run runs a tool in the repository root and returns its standard output. Helm's cache,
// configuration and data live in a temporary directory, so the user's repositories and plugins
// play no part.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := runErr(t, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func runErr(t *testing.T, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), tool(t, name), args...)
	cmd.Dir = repoRoot(t)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &toolError{cmd: "bin/" + name + " " + strings.Join(args, " "), err: err,
			output: strings.TrimSpace(stdout.String() + "\n" + stderr.String())}
	}
	return stdout.Bytes(), nil
}

type toolError struct {
	cmd, output string
	err         error
}

func (e *toolError) Error() string { return e.cmd + ": " + e.err.Error() + "\n" + e.output }

// renderChart runs helm template on the chart with the given extra arguments (--set, -f),
// CRDs included.
func renderChart(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	all := append([]string{"template", releaseName, chartDir, "--namespace", namespace, "--include-crds"}, args...)
	return decodeObjects(t, run(t, "helm", all...))
}

// renderKustomize runs kustomize build on a directory of config/.
func renderKustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return decodeObjects(t, run(t, "kustomize", "build", dir))
}

// decodeObjects splits a multi-document YAML stream into objects, skipping empty documents.
func decodeObjects(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("read YAML document: %v", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("decode YAML document: %v\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// find returns the only object of kind named name (nil if none).
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if found != nil {
				t.Fatalf("two %s objects named %s", kind, name)
			}
			found = o
		}
	}
	return found
}

// mustFind is find, failing the test when there is no such object.
func mustFind(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	o := find(t, objs, kind, name)
	if o == nil {
		t.Fatalf("no %s %s among the rendered objects", kind, name)
	}
	return o
}

// into converts an object into a typed one, rejecting fields the type does not have.
func into(t *testing.T, o *unstructured.Unstructured, typed any) {
	t.Helper()
	data, err := yaml.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, typed); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}

// readFile reads a file of the repository.
func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
