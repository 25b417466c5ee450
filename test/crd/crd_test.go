package crd_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// wantPrinterColumns are the columns of `kubectl get clerkusers` after NAME, as the contract fixes them.
var wantPrinterColumns = []apiextensionsv1.CustomResourceColumnDefinition{
	{Name: "User-ID", Type: "string", JSONPath: ".status.userID"},
	{Name: "Email", Type: "string", JSONPath: ".status.observed.primaryEmailAddress"},
	{Name: "Banned", Type: "boolean", JSONPath: ".status.observed.banned"},
	{Name: "Locked", Type: "boolean", JSONPath: ".status.observed.locked"},
	{Name: "Ready", Type: "string", JSONPath: `.status.conditions[?(@.type=="Ready")].status`},
	{Name: "Reason", Type: "string", JSONPath: `.status.conditions[?(@.type=="Ready")].reason`},
	{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"},
}

// TestCRD checks the CRD both as generated (the YAML file) and as the API server serves it.
func TestCRD(t *testing.T) {
	forEachCRDSource(t, "clerk.kubeclerk.dev_clerkusers.yaml", crdName, "cu", checkCRD)
}

// forEachCRDSource runs check on a CRD as generated (file in config/crd/bases) and as the API
// server serves it (name), which must be Established with the short name.
func forEachCRDSource(t *testing.T, file, name, shortName string, check func(*testing.T, *apiextensionsv1.CustomResourceDefinition)) {
	t.Helper()
	fromFile := func(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
		path := filepath.Join(crdDir, file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			t.Fatalf("decode %s: %v", path, err)
		}
		return crd
	}
	fromServer := func(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Name: name}, crd); err != nil {
			t.Fatalf("get CRD %s: %v", name, err)
		}
		established := false
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				established = true
			}
		}
		if !established {
			t.Errorf("CRD %s is not Established: %+v", name, crd.Status.Conditions)
		}
		if !slices.Equal(crd.Status.AcceptedNames.ShortNames, []string{shortName}) {
			t.Errorf("accepted short names %v, want [%s]", crd.Status.AcceptedNames.ShortNames, shortName)
		}
		return crd
	}
	for _, src := range []struct {
		name string
		get  func(*testing.T) *apiextensionsv1.CustomResourceDefinition
	}{{"file", fromFile}, {"server", fromServer}} {
		t.Run(src.name, func(t *testing.T) {
			check(t, src.get(t))
		})
	}
}

func checkCRD(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	v := checkCRDNames(t, crd, crdName, "ClerkUser", "clerkusers", "cu", apiextensionsv1.NamespaceScoped)
	if !slices.Equal(v.AdditionalPrinterColumns, wantPrinterColumns) {
		t.Errorf("printer columns\n%+v\nwant\n%+v", v.AdditionalPrinterColumns, wantPrinterColumns)
	}

	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		t.Fatal("no schema")
	}
	root := v.Schema.OpenAPIV3Schema
	if !slices.Contains(root.Required, "spec") {
		t.Errorf("spec is not required: %v", root.Required)
	}
	spec, ok := root.Properties["spec"]
	if !ok {
		t.Fatal("no spec in the schema")
	}
	if spec.Description == "" {
		t.Error("spec has no description")
	}

	for _, c := range []struct {
		field, def string
		enum       []string
	}{
		{"metadataPolicy", `"Merge"`, []string{"Merge", "Replace"}},
		{"creationPolicy", `"Adopt"`, []string{"Adopt", "AdoptOrCreate"}},
		{"deletionPolicy", `"Orphan"`, []string{"Orphan", "Ban", "Delete"}},
		{"managementPolicy", `"Manage"`, []string{"Manage", "Observe"}},
	} {
		t.Run("spec."+c.field, func(t *testing.T) {
			p, ok := spec.Properties[c.field]
			if !ok {
				t.Fatalf("no spec.%s", c.field)
			}
			if p.Default == nil || string(p.Default.Raw) != c.def {
				t.Errorf("default %v, want %s", p.Default, c.def)
			}
			var enum []string
			for _, e := range p.Enum {
				enum = append(enum, string(e.Raw))
			}
			var want []string
			for _, e := range c.enum {
				want = append(want, `"`+e+`"`)
			}
			if !slices.Equal(enum, want) {
				t.Errorf("enum %v, want %v", enum, want)
			}
		})
	}

	// Fields without a default: unset means "not managed", so the server must not invent a value.
	for name, p := range spec.Properties {
		switch name {
		case "metadataPolicy", "creationPolicy", "deletionPolicy", "managementPolicy":
		default:
			if p.Default != nil {
				t.Errorf("spec.%s has default %s; only the policies have defaults", name, p.Default.Raw)
			}
		}
	}

	for _, f := range []string{"publicMetadata", "privateMetadata", "unsafeMetadata"} {
		p := spec.Properties[f]
		if p.Type != "object" || p.XPreserveUnknownFields == nil || !*p.XPreserveUnknownFields {
			t.Errorf("spec.%s: type %q, preserve unknown fields %v; want a free-form JSON object", f, p.Type, p.XPreserveUnknownFields)
		}
	}
	if p := spec.Properties["userID"]; p.Pattern != `^user_[A-Za-z0-9]+$` {
		t.Errorf("spec.userID pattern %q", p.Pattern)
	}
	if n := len(spec.XValidations); n != 4 {
		t.Errorf("spec has %d CEL rules, want 4 (identifier, AdoptOrCreate, userID immutable, instanceRef immutable): %+v", n, spec.XValidations)
	}
}

// checkCRDNames checks what every kubeclerk CRD shares: its name, group, names, category
// "clerk", scope, and one version v1alpha1, served and stored, with the status subresource
// only. It returns that version.
func checkCRDNames(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition, name, kind, plural, shortName string,
	scope apiextensionsv1.ResourceScope) apiextensionsv1.CustomResourceDefinitionVersion {
	t.Helper()
	s := crd.Spec
	for _, c := range []struct{ what, got, want string }{
		{"name", crd.Name, name},
		{"group", s.Group, "clerk.kubeclerk.dev"},
		{"kind", s.Names.Kind, kind},
		{"listKind", s.Names.ListKind, kind + "List"},
		{"plural", s.Names.Plural, plural},
		{"singular", s.Names.Singular, strings.ToLower(kind)},
		{"scope", string(s.Scope), string(scope)},
	} {
		if c.got != c.want {
			t.Errorf("%s is %q, want %q", c.what, c.got, c.want)
		}
	}
	if !slices.Equal(s.Names.ShortNames, []string{shortName}) {
		t.Errorf("short names %v, want [%s]", s.Names.ShortNames, shortName)
	}
	if !slices.Equal(s.Names.Categories, []string{"clerk"}) {
		t.Errorf("categories %v, want [clerk]", s.Names.Categories)
	}
	if len(s.Versions) != 1 {
		t.Fatalf("versions %d, want 1 (v1alpha1)", len(s.Versions))
	}
	v := s.Versions[0]
	if v.Name != "v1alpha1" || !v.Served || !v.Storage {
		t.Errorf("version %q served=%v storage=%v, want v1alpha1 served and stored", v.Name, v.Served, v.Storage)
	}
	if v.Subresources == nil || v.Subresources.Status == nil || v.Subresources.Scale != nil {
		t.Errorf("subresources %+v, want status only", v.Subresources)
	}
	return v
}
