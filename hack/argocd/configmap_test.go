package argocd

import (
	"bytes"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// update rewrites config/argocd/argocd-cm-patch.yaml from the health checks:
//
//	go test ./hack/argocd/ -run TestConfigMapPatch -update
var update = flag.Bool("update", false, "rewrite "+patchPath+" from the health checks")

// patchPath is the argocd-cm patch that installs kubeclerk's health checks.
var patchPath = filepath.Join("..", "..", "config", "argocd", "argocd-cm-patch.yaml")

// TestConfigMapPatch checks that the argocd-cm patch holds exactly the health checks of
// resource_customizations, byte for byte as rendered and, read as YAML, script for script.
func TestConfigMapPatch(t *testing.T) {
	checks := loadChecks(t)
	want, err := RenderConfigMapPatch(checks)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(patchPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(patchPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the health checks; run: go test ./hack/argocd/ -run TestConfigMapPatch -update", patchPath)
	}

	// Independently of the rendering: what Argo CD reads from the ConfigMap is each script.
	var cm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.UnmarshalStrict(got, &cm); err != nil {
		t.Fatalf("%s: %v", patchPath, err)
	}
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || cm.Metadata.Name != "argocd-cm" || cm.Metadata.Namespace != "argocd" {
		t.Errorf("%s patches %s %s %s/%s, want v1 ConfigMap argocd/argocd-cm", patchPath,
			cm.APIVersion, cm.Kind, cm.Metadata.Namespace, cm.Metadata.Name)
	}
	wantKeys := make([]string, 0, len(checks))
	for _, c := range checks {
		wantKeys = append(wantKeys, c.ConfigMapKey())
		if cm.Data[c.ConfigMapKey()] != c.Script {
			t.Errorf("%s: data[%s] is not %s/%s", patchPath, c.ConfigMapKey(), c.Dir, ScriptFile)
		}
	}
	if keys := slices.Sorted(maps.Keys(cm.Data)); !slices.Equal(keys, wantKeys) {
		t.Errorf("%s: data keys %v, want %v", patchPath, keys, wantKeys)
	}
}

// TestConfigMapKey checks the argocd-cm key against Argo CD's documented form,
// resource.customizations.health.<group>_<kind> (docs/operator-manual/health.md).
func TestConfigMapKey(t *testing.T) {
	c := Check{Group: "clerk.kubeclerk.dev", Kind: "ClerkUser"}
	if got, want := c.ConfigMapKey(), "resource.customizations.health.clerk.kubeclerk.dev_ClerkUser"; got != want {
		t.Fatalf("ConfigMapKey() = %q, want %q", got, want)
	}
}

// TestRenderConfigMapPatchRoundTrip checks that scripts come back from the rendered YAML
// unchanged, empty lines and indentation included, and that scripts a literal block would
// change are refused.
func TestRenderConfigMapPatchRoundTrip(t *testing.T) {
	script := "local hs = {}\n\nif obj.status ~= nil then\n\ths.message = \"a: b # c\"\n  end\n\n\nreturn hs\n"
	out, err := RenderConfigMapPatch([]Check{{Group: "g.example.com", Kind: "K", Script: script}})
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(out, &cm); err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["resource.customizations.health.g.example.com_K"]; got != script {
		t.Fatalf("round trip:\n got %q\nwant %q", got, script)
	}
	for _, bad := range []string{"return {}", "return {}\n\n", " return {}\n", "return {}\r\n"} {
		if _, err := RenderConfigMapPatch([]Check{{Group: "g", Kind: "K", Script: bad}}); err == nil {
			t.Errorf("RenderConfigMapPatch accepted %q", bad)
		} else if !strings.Contains(err.Error(), "health.lua") {
			t.Errorf("error %q does not name the file", err)
		}
	}
}
