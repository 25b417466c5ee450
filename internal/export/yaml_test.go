package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

// decodeStream reads a YAML stream the way kubectl apply -f does: each document to JSON, then
// to an unstructured object, whose numbers are int64 or float64 as in the API server.
func decodeStream(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(u)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("document %d: %v", len(out)+1, err)
		}
		out = append(out, u)
	}
}

// sameJSON reports whether two JSON texts hold the same value, numbers compared exactly.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	return sameValue(decodeNumbers(t, a), decodeNumbers(t, b))
}

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func sameValue(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		rx, ok1 := new(big.Rat).SetString(string(x))
		ry, ok2 := new(big.Rat).SetString(string(y))
		return ok1 && ok2 && rx.Cmp(ry) == 0
	}
	return a == b
}

var userIDPattern = regexp.MustCompile(`^user_[A-Za-z0-9]+$`)

func TestWriteRoundTrip(t *testing.T) {
	const public = `{"true":"on","":"empty key","null":"~","1":"012","y":"yes","#":"- x: y # z","multi":"a\nb: c\n","tab":"a\tb",` +
		`"uni":"Zoë 山田 🎉","hex":"0x1F","num":"1e3","id":1098765432109876543,"min":-9223372036854775808,"d":0.1,` +
		`"e":1e2,"neg":-2.5e-7,"f":1.5e300,"t":true,"nested":{"deep":{"list":[1,"2",null,{"a":[]}],"empty":{}}},"arr":[]}`
	users := []string{
		`{"id":"user_2xK9","created_at":1700000000000,"username":"alice","external_id":"emp-1042","first_name":"Alice",` +
			`"last_name":"O'Hara: \"the\" #1","banned":true,"locked":true,` + withEmail("a", "alice@example.com") +
			`,"public_metadata":` + public + `,"unsafe_metadata":{"theme":"dark"},"private_metadata":{"crm":"C-77","big":12345678901234567890}}`,
		`{"id":"user_3abc","created_at":1700000000001,"first_name":"yes","last_name":"null",` + withEmail("b", "bob@example.com") + `}`,
		`{"id":"user_4def","created_at":1700000000002,"locked":true,"lockout_expires_in_seconds":60}`,
	}
	entries := make([]Entry, 0, len(users))
	for _, js := range users {
		e, err := Convert(user(t, js), Options{Namespace: "support", Instance: "acme", PrivateMetadata: PrivateMetadataSecret})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	AssignNames(entries)
	var out bytes.Buffer
	if err := Write(&out, entries); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"---\n# Clerk user user_2xK9 <alice@example.com>, created 2023-11-14T22:13:20Z\napiVersion: clerk.kubeclerk.dev/v1alpha1\n",
		"---\n# Private metadata of Clerk user user_2xK9.",
		"# Clerk user user_4def, created 2023-11-14T22:13:20Z\n# locked not declared: a lockout that expires by itself",
		"  managementPolicy: Observe\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output does not contain %q:\n%s", want, text)
		}
	}
	for _, unwanted := range []string{"status:", "creationTimestamp", "emailAddress", "mfa:", "metadataPolicy"} {
		if strings.Contains(text, unwanted) {
			t.Errorf("output contains %q:\n%s", unwanted, text)
		}
	}

	docs := decodeStream(t, out.Bytes())
	if len(docs) != 4 {
		t.Fatalf("%d documents, want 4 (a Secret and 3 ClerkUsers):\n%s", len(docs), text)
	}
	// The Secret comes right before its ClerkUser.
	var secret corev1.Secret
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(docs[0].Object, &secret); err != nil {
		t.Fatal(err)
	}
	if secret.Kind != "Secret" || secret.Name != "alice-private-metadata" || secret.Namespace != "support" ||
		secret.Labels[clerkv1alpha1.PrivateMetadataSecretLabel] != "true" {
		t.Errorf("Secret = %+v", secret.ObjectMeta)
	}
	if !sameJSON(t, []byte(secret.StringData[PrivateMetadataKey]), []byte(`{"crm":"C-77","big":12345678901234567890}`)) {
		t.Errorf("Secret value = %s", secret.StringData[PrivateMetadataKey])
	}

	for i, doc := range docs[1:] {
		// What kubectl sends, typed.
		js, err := doc.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var cu clerkv1alpha1.ClerkUser
		if err := json.Unmarshal(js, &cu); err != nil {
			t.Fatal(err)
		}
		want := entries[i].Object
		if cu.APIVersion != "clerk.kubeclerk.dev/v1alpha1" || cu.Kind != "ClerkUser" || cu.Namespace != "support" || cu.Name != want.Name {
			t.Errorf("document %d: %s %s %s/%s", i+2, cu.APIVersion, cu.Kind, cu.Namespace, cu.Name)
		}
		if !dnsLabelRE.MatchString(cu.Name) || !userIDPattern.MatchString(cu.Spec.UserID) || cu.Spec.InstanceRef == nil || cu.Spec.InstanceRef.Name != "acme" {
			t.Errorf("document %d: name %q userID %q instanceRef %v", i+2, cu.Name, cu.Spec.UserID, cu.Spec.InstanceRef)
		}
		if cu.Spec.ManagementPolicy != clerkv1alpha1.ManagementPolicyObserve {
			t.Errorf("document %d: managementPolicy %q", i+2, cu.Spec.ManagementPolicy)
		}
		// Every field comes back as it was declared; metadata values exactly, after the trip
		// through YAML and the API server's number types.
		got, exp := cu.Spec, want.Spec
		for _, m := range []struct {
			name     string
			got, exp []byte
		}{
			{"publicMetadata", rawBytes(got.PublicMetadata), rawBytes(exp.PublicMetadata)},
			{"unsafeMetadata", rawBytes(got.UnsafeMetadata), rawBytes(exp.UnsafeMetadata)},
			{"privateMetadata", rawBytes(got.PrivateMetadata), rawBytes(exp.PrivateMetadata)},
		} {
			if (m.got == nil) != (m.exp == nil) || (m.got != nil && !sameJSON(t, m.got, m.exp)) {
				t.Errorf("document %d: %s = %s, want %s", i+2, m.name, m.got, m.exp)
			}
		}
		got.PublicMetadata, got.UnsafeMetadata, got.PrivateMetadata = nil, nil, nil
		exp.PublicMetadata, exp.UnsafeMetadata, exp.PrivateMetadata = nil, nil, nil
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(exp)
		if !bytes.Equal(a, b) {
			t.Errorf("document %d: spec\n%s\nwant\n%s", i+2, a, b)
		}
	}
	// The public metadata went through: all its keys, exactly.
	if !sameJSON(t, rawBytes(entries[0].Object.Spec.PublicMetadata), []byte(public)) {
		t.Errorf("publicMetadata = %s", entries[0].Object.Spec.PublicMetadata.Raw)
	}
}

func rawBytes(j *apiextensionsv1.JSON) []byte {
	if j == nil || len(j.Raw) == 0 || string(j.Raw) == "null" {
		return nil
	}
	return j.Raw
}

func TestWriteEmpty(t *testing.T) {
	var out bytes.Buffer
	if err := Write(&out, nil); err != nil || out.Len() != 0 {
		t.Errorf("Write(nil) = %q, %v", out.String(), err)
	}
}

func TestCommentCannotEscape(t *testing.T) {
	var b strings.Builder
	comment(&b, "a\r\nb\u2028c: d\u0085e")
	if got := b.String(); got != "# a\n# b?c: d?e\n" {
		t.Errorf("comment = %q", got)
	}
	var v map[string]any
	if err := yaml.Unmarshal([]byte(b.String()+"k: v\n"), &v); err != nil || len(v) != 1 {
		t.Errorf("parsed %v, %v", v, err)
	}
}
