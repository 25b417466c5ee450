package argocd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ScriptFile is the name of a health check in Argo CD's resource_customizations layout:
// <group>/<kind>/health.lua, next to health_test.yaml and testdata/.
const ScriptFile = "health.lua"

// errNoScripts is returned when a directory holds no health check.
var errNoScripts = errors.New("no health.lua found")

// Check is one health check of a resource_customizations directory.
type Check struct {
	// Group and Kind are the API group and kind the check is for.
	Group, Kind string
	// Dir is the directory holding health.lua, health_test.yaml and testdata/.
	Dir string
	// Script is the content of health.lua.
	Script string
}

// ConfigMapKey is the argocd-cm key that installs the check:
// resource.customizations.health.<group>_<kind>.
func (c Check) ConfigMapKey() string {
	return "resource.customizations.health." + c.Group + "_" + c.Kind
}

// LoadChecks reads every <group>/<kind>/health.lua under dir, ordered by group and kind.
func LoadChecks(dir string) ([]Check, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*", "*", ScriptFile))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%s: %w", dir, errNoScripts)
	}
	slices.Sort(paths)
	checks := make([]Check, 0, len(paths))
	for _, p := range paths {
		script, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		kindDir := filepath.Dir(p)
		checks = append(checks, Check{
			Group:  filepath.Base(filepath.Dir(kindDir)),
			Kind:   filepath.Base(kindDir),
			Dir:    kindDir,
			Script: string(script),
		})
	}
	return checks, nil
}

// patchHeader introduces config/argocd/argocd-cm-patch.yaml.
const patchHeader = `# kubeclerk's Argo CD health checks for ClerkUser and ClerkInstance, as a patch of Argo CD's
# argocd-cm ConfigMap. Generated from config/argocd/resource_customizations/*/*/health.lua by
#   go test ./hack/argocd/ -run TestConfigMapPatch -update
# (a test fails when it differs from them); do not edit it by hand. Apply it with
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file config/argocd/argocd-cm-patch.yaml
# or list it under patches: in the kustomization that installs Argo CD. For the argo-cd Helm
# chart, put the data entries under configs.cm in its values. Argo CD picks up a change of
# argocd-cm without a restart.
`

// RenderConfigMapPatch renders the argocd-cm patch that installs checks: one data entry per
// check, holding its script verbatim as a YAML literal block.
func RenderConfigMapPatch(checks []Check) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(patchHeader)
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\ndata:\n")
	for _, c := range checks {
		if err := literalBlockSafe(c.Script); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(c.Dir, ScriptFile), err)
		}
		fmt.Fprintf(&b, "  %s: |\n", c.ConfigMapKey())
		for line := range strings.Lines(c.Script) {
			if line != "\n" {
				b.WriteString("    ")
			}
			b.WriteString(line)
		}
	}
	return b.Bytes(), nil
}

// literalBlockSafe reports why script would not survive a YAML literal block ("|") unchanged.
func literalBlockSafe(script string) error {
	switch {
	case !strings.HasSuffix(script, "\n"):
		return errors.New("must end with a newline")
	case strings.HasSuffix(script, "\n\n"):
		return errors.New("must not end with an empty line")
	case strings.HasPrefix(script, " ") || strings.HasPrefix(script, "\t") || strings.HasPrefix(script, "\n"):
		return errors.New("must not begin with white space")
	case strings.Contains(script, "\r"):
		return errors.New("must have Unix line endings")
	}
	return nil
}
