package crd_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

// wantColumns is the header of `kubectl get clerkusers`, as the contract fixes it.
var wantColumns = []string{"NAME", "USER-ID", "EMAIL", "BANNED", "LOCKED", "READY", "REASON", "AGE"}

// sample is one file of config/samples and the ClerkUser names it declares.
type sample struct {
	file  string
	names []string
}

// readSamples lists every sample manifest (all YAML files but kustomization.yaml).
func readSamples(t *testing.T) []sample {
	t.Helper()
	entries, err := os.ReadDir(samplesDir)
	if err != nil {
		t.Fatalf("read %s: %v", samplesDir, err)
	}
	var out []sample
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "kustomization.yaml" || (!strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".yml")) {
			continue
		}
		path := filepath.Join(samplesDir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		s := sample{file: path}
		otherKinds := false
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("decode %s: %v", path, err)
			}
			if doc == nil {
				continue
			}
			if doc["apiVersion"] != "clerk.kubeclerk.dev/v1alpha1" || doc["kind"] != "ClerkUser" {
				otherKinds = true
				continue
			}
			n, _ := field(doc, "metadata", "name")
			nameStr, _ := n.(string)
			if nameStr == "" {
				t.Fatalf("%s: a ClerkUser without metadata.name", path)
			}
			s.names = append(s.names, nameStr)
		}
		if len(s.names) == 0 {
			if otherKinds {
				continue // e.g. the ClerkInstance sample; checked by TestClerkInstanceSampleAndColumns
			}
			t.Fatalf("%s declares no ClerkUser", path)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		t.Fatalf("no samples in %s", samplesDir)
	}
	return out
}

// listNames returns the ClerkUser names `kubectl get <resource> -o name` lists in ns.
func listNames(t *testing.T, ns, resource string) []string {
	t.Helper()
	r := mustRun(t, "", "get", resource, "-n", ns, "-o", "name")
	var names []string
	for line := range strings.Lines(r.stdout) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		kind, name, ok := strings.Cut(line, "/")
		if !ok || kind != "clerkuser.clerk.kubeclerk.dev" {
			t.Fatalf("unexpected line %q in %s", line, r)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// table splits kubectl's table output into the header and rows, cutting each line at the columns'
// offsets in the header, so that empty cells stay empty. Resource names may carry a
// "clerkuser.clerk.kubeclerk.dev/" prefix (kubectl adds one when it lists several kinds); it is removed.
func table(t *testing.T, r result) (header []string, rows map[string][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("expected a header and rows: %s", r)
	}
	fields := regexp.MustCompile(`\S+`).FindAllStringIndex(lines[0], -1)
	starts := make([]int, 0, len(fields))
	for _, m := range fields {
		starts = append(starts, m[0])
		header = append(header, lines[0][m[0]:m[1]])
	}
	rows = map[string][]string{}
	for _, l := range lines[1:] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		cells := make([]string, len(starts))
		for i, start := range starts {
			end := len(l)
			if i+1 < len(starts) {
				end = min(starts[i+1], len(l))
			}
			if start < end {
				cells[i] = strings.TrimSpace(l[start:end])
			}
		}
		cells[0] = strings.TrimPrefix(cells[0], "clerkuser.clerk.kubeclerk.dev/")
		rows[cells[0]] = cells
	}
	return header, rows
}

func TestSamples(t *testing.T) {
	samples := readSamples(t)
	var all []string
	for _, s := range samples {
		all = append(all, s.names...)
	}
	slices.Sort(all)

	nsFiles := newNamespace(t, "samples-f")
	t.Run("apply -f each sample", func(t *testing.T) {
		for _, s := range samples {
			t.Run(filepath.Base(s.file), func(t *testing.T) {
				r := mustRun(t, "", "apply", "-n", nsFiles, "-f", s.file)
				for _, n := range s.names {
					if !strings.Contains(r.stdout, "clerkuser.clerk.kubeclerk.dev/"+n+" created") {
						t.Errorf("kubectl apply did not report %s created: %s", n, r)
					}
					obj := getObject(t, nsFiles, "clerkusers", n)
					if _, ok := field(obj, "spec"); !ok {
						t.Errorf("%s has no spec after apply: %v", n, obj)
					}
				}
				// Applying the same file again changes nothing.
				r = mustRun(t, "", "apply", "-n", nsFiles, "-f", s.file)
				for _, n := range s.names {
					if !strings.Contains(r.stdout, "clerkuser.clerk.kubeclerk.dev/"+n+" unchanged") {
						t.Errorf("second kubectl apply did not report %s unchanged: %s", n, r)
					}
				}
			})
		}
		if got := listNames(t, nsFiles, "clerkusers"); !slices.Equal(got, all) {
			t.Errorf("after applying every sample, kubectl get clerkusers lists %v, want %v", got, all)
		}
	})

	nsKustomize := newNamespace(t, "samples-k")
	t.Run("apply -k config/samples", func(t *testing.T) {
		mustRun(t, "", "apply", "-n", nsKustomize, "-k", samplesDir)
		if got := listNames(t, nsKustomize, "clerkusers"); !slices.Equal(got, all) {
			t.Errorf("kubectl apply -k %s created %v, want every sample %v (is a sample missing from kustomization.yaml?)", samplesDir, got, all)
		}
	})

	// The printer columns show the status fields they are meant to show.
	first := samples[0].names[0]
	mustRun(t, "", "patch", "clerkuser", first, "-n", nsFiles, "--subresource=status", "--type=merge", "-p", `{"status":{
		"userID":"user_2xK9abc",
		"observed":{"primaryEmailAddress":"alice@example.com","banned":true,"locked":false,
			"twoFactorEnabled":false,"totpEnabled":false,"backupCodeEnabled":false},
		"conditions":[
			{"type":"Reconciling","status":"True","reason":"Progressing","message":"x","lastTransitionTime":"2026-01-01T00:00:00Z"},
			{"type":"Ready","status":"False","reason":"UserNotFound","message":"no user","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`)

	for _, tc := range []struct{ name, resource string }{
		{"plural", "clerkusers"},
		{"singular", "clerkuser"},
		{"short name", "cu"},
		{"category", "clerk"},
		{"fully qualified", "clerkusers.clerk.kubeclerk.dev"},
	} {
		t.Run("kubectl get "+tc.resource+" ("+tc.name+")", func(t *testing.T) {
			for _, ns := range []string{nsFiles, nsKustomize} {
				r := mustRun(t, "", "get", tc.resource, "-n", ns)
				// The category also lists ClerkInstances (cluster-scoped), in a table of their own.
				for block := range strings.SplitSeq(r.stdout, "\n\n") {
					if strings.Contains(block, "clerkuser.clerk.kubeclerk.dev/") {
						r.stdout = block
					}
				}
				header, rows := table(t, r)
				if !slices.Equal(header, wantColumns) {
					t.Errorf("header %v, want %v:\n%s", header, wantColumns, r)
				}
				var names []string
				for n, cells := range rows {
					names = append(names, n)
					if n == first && ns == nsFiles {
						continue
					}
					// No status yet: every status column is empty, AGE is not.
					want := []string{n, "", "", "", "", "", ""}
					if !slices.Equal(cells[:len(want)], want) || cells[len(cells)-1] == "" {
						t.Errorf("row of %s is %q, want %q followed by an age:\n%s", n, cells, want, r)
					}
				}
				slices.Sort(names)
				if !slices.Equal(names, all) {
					t.Errorf("kubectl get %s -n %s lists %v, want %v", tc.resource, ns, names, all)
				}
				if ns != nsFiles {
					continue
				}
				want := []string{first, "user_2xK9abc", "alice@example.com", "true", "false", "False", "UserNotFound"}
				got := rows[first]
				if len(got) != len(wantColumns) || !slices.Equal(got[:len(want)], want) {
					t.Errorf("row of %s is %v, want %v followed by an age:\n%s", first, got, want, r)
				} else if !regexp.MustCompile(`^[0-9]+[smhdy]`).MatchString(got[len(got)-1]) {
					t.Errorf("AGE of %s is %q:\n%s", first, got[len(got)-1], r)
				}
			}
		})
	}
}

// jsonFields returns the JSON names of a struct's fields (ClerkUserSpec, MFASpec).
func jsonFields(v any) []string {
	var out []string
	typ := reflect.TypeOf(v)
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// explainFields parses the FIELDS section of `kubectl explain` into field name -> description.
func explainFields(out string) map[string]string {
	fields := map[string]string{}
	header := regexp.MustCompile(`^  ([A-Za-z0-9_]+)\t<`)
	inFields := false
	current := ""
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		if line == "FIELDS:" {
			inFields = true
			continue
		}
		if !inFields {
			continue
		}
		if m := header.FindStringSubmatch(line); m != nil {
			current = m[1]
			fields[current] = ""
			continue
		}
		if current != "" && strings.HasPrefix(line, "    ") {
			fields[current] = strings.TrimSpace(fields[current] + " " + strings.TrimSpace(line))
		}
	}
	return fields
}

func TestExplain(t *testing.T) {
	// The contract's spec fields; the Go types may add more, which must be documented as well.
	contract := []string{
		"userID", "externalID", "emailAddress", "username", "firstName", "lastName",
		"publicMetadata", "privateMetadata", "unsafeMetadata", "metadataPolicy",
		"banned", "locked", "mfa", "creationPolicy", "deletionPolicy", "managementPolicy",
	}
	goFields := jsonFields(clerkv1alpha1.ClerkUserSpec{})
	for _, f := range contract {
		if !slices.Contains(goFields, f) {
			t.Errorf("ClerkUserSpec has no field %q of the contract (it has %v)", f, goFields)
		}
	}

	for _, tc := range []struct {
		path   string
		fields []string
	}{
		{"clerkuser.spec", goFields},
		{"cu.spec", goFields},
		{"clerkusers.spec.mfa", jsonFields(clerkv1alpha1.MFASpec{})},
	} {
		t.Run(tc.path, func(t *testing.T) {
			// The CRD's OpenAPI document is published asynchronously after the CRD is established.
			var r result
			if err := eventually(readyTimeout, func() error {
				r = kc.run("", "explain", tc.path)
				if r.err != nil {
					return errors.New(r.String())
				}
				return nil
			}); err != nil {
				t.Fatalf("kubectl explain %s: %v", tc.path, err)
			}
			for _, want := range []string{"GROUP:", "clerk.kubeclerk.dev", "KIND:", "ClerkUser", "VERSION:", "v1alpha1", "DESCRIPTION:", "FIELDS:"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("kubectl explain %s does not show %q:\n%s", tc.path, want, r.stdout)
				}
			}
			got := explainFields(r.stdout)
			for _, f := range tc.fields {
				desc, ok := got[f]
				switch {
				case !ok:
					t.Errorf("kubectl explain %s does not list %s:\n%s", tc.path, f, r.stdout)
				case len(strings.Fields(desc)) < 4:
					t.Errorf("kubectl explain %s: %s is not documented (description %q):\n%s", tc.path, f, desc, r.stdout)
				}
			}
			if len(got) != len(tc.fields) {
				t.Errorf("kubectl explain %s lists %d fields %v, want %v", tc.path, len(got), got, tc.fields)
			}
		})
	}

	// Each field is documented on its own page too, where the enums and defaults are shown.
	for _, tc := range []struct{ field, want string }{
		{"metadataPolicy", "Merge"},
		{"creationPolicy", "AdoptOrCreate"},
		{"deletionPolicy", "Orphan"},
		{"managementPolicy", "Observe"},
		{"userID", "immutable"},
	} {
		t.Run("clerkuser.spec."+tc.field, func(t *testing.T) {
			r := mustRun(t, "", "explain", "clerkuser.spec."+tc.field)
			if !strings.Contains(r.stdout, "FIELD: "+tc.field) || !strings.Contains(r.stdout, tc.want) {
				t.Errorf("kubectl explain clerkuser.spec.%s does not show %q:\n%s", tc.field, tc.want, r.stdout)
			}
		})
	}
}
