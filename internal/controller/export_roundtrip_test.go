package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/export"
)

// exportRoundTripUsers is how many Clerk users TestExportRoundTrip exports (200 with -short).
func exportRoundTripUsers() int {
	if testing.Short() {
		return 200
	}
	return 1000
}

// roundTripSeed returns varied Clerk users, as the fake's Seed takes them: banned, locked by an
// administrator or temporarily locked out, with and without names, usernames, external IDs and
// MFA, metadata with nested objects, 64-bit integers and decimals, and values a ClerkUser cannot
// declare exactly (nulls, numbers beyond float64), which the export leaves out.
func roundTripSeed(n int) []json.RawMessage {
	domains := []string{"example.com", "acme.io", "corp.example.org"}
	users := make([]json.RawMessage, 0, n)
	for i := range n {
		u := map[string]any{}
		email := fmt.Sprintf("person%04d@%s", i, domains[i%len(domains)])
		switch i % 97 {
		case 1:
			email = fmt.Sprintf("first.last%d@example.com", i) // same name as the next one
		case 2:
			email = fmt.Sprintf("first-last%d@example.com", i-1)
		}
		if i%41 != 5 { // some users have no email address at all
			u["email_addresses"] = []map[string]any{{"email_address": email}}
		}
		if i%3 == 0 {
			u["username"] = fmt.Sprintf("User_%04d", i)
		}
		if i%4 == 0 {
			u["external_id"] = fmt.Sprintf("emp-%d", 100000+i)
		}
		switch i % 5 {
		case 0:
			u["first_name"], u["last_name"] = "Zoë", "Ångström"
		case 1:
			u["first_name"] = "山田"
		case 2:
			u["first_name"], u["last_name"] = "", ""
		}
		if i%10 == 0 {
			u["banned"] = true
		}
		switch {
		case i%15 == 7:
			u["locked"] = true // an administrator's lock: no expiry
		case i%17 == 3:
			u["locked"], u["lockout_expires_in_seconds"] = true, 3600 // after failed sign-ins
		}
		if i%50 == 9 {
			u["totp_secret"] = "JBSWY3DPEHPK3PXP"
		}
		switch i % 4 {
		case 0:
			u["public_metadata"] = json.RawMessage(fmt.Sprintf(
				`{"role":"admin","teams":["billing","ops"],"id":1098765432109876543,"ratio":0.1,"neg":-2.5e-7,`+
					`"nested":{"deep":{"n":%d,"list":[1,{"a":[true,false]}],"empty":{}}},"s":"yes","k":"0x1F"}`, i))
		case 1:
			u["public_metadata"] = json.RawMessage(`{"role":"member","gone":null,"holes":{"x":null,"y":1},` +
				`"huge":12345678901234567890123,"tiny":1e400,"ok":[null,{"a":null}],"true":"on","":"empty key"}`)
		case 2:
			u["public_metadata"] = json.RawMessage(`{}`)
		}
		if i%2 == 0 {
			u["unsafe_metadata"] = json.RawMessage(fmt.Sprintf(`{"theme":"dark","prefs":{"tz":"Europe/Paris","n":%d},"multi":"a\nb: c"}`, i))
		}
		if i%6 == 0 {
			u["private_metadata"] = json.RawMessage(fmt.Sprintf(`{"crm":"C-%d","score":12345678901234567890123,"flags":{"vip":true}}`, i))
		}
		raw, err := json.Marshal(u)
		if err != nil {
			panic(err)
		}
		users = append(users, raw)
	}
	return users
}

// TestExportRoundTrip: every exported object, applied as it is, is Ready (Observed) with nothing
// pending, and switched to Manage is Synced without a single write to Clerk.
func TestExportRoundTrip(t *testing.T) {
	start := time.Now()
	h := newHarness(t, withWorkers(8))
	ctx := context.Background()
	t.Logf("harness up after %v", time.Since(start).Round(time.Millisecond))
	n := exportRoundTripUsers()
	h.g.Expect(h.fake.Seed(roundTripSeed(n))).To(Succeed())
	t.Logf("seeded after %v", time.Since(start).Round(time.Millisecond))
	writes := h.writes()

	res, err := export.Run(ctx, h.api, export.Options{Namespace: h.ns, PrivateMetadata: export.PrivateMetadataSecret}, export.Paging{})
	h.g.Expect(err).NotTo(HaveOccurred())
	h.g.Expect(res.Entries).To(HaveLen(n))
	h.g.Expect(res.Pages).To(Equal(n/export.PageSize + 1))
	suffixed := 0
	for _, e := range res.Entries {
		if e.Object.Name != e.BaseName {
			suffixed++
		}
	}
	h.g.Expect(suffixed).To(BeNumerically(">", 0), "no name collision was exercised")
	var out bytes.Buffer
	h.g.Expect(export.Write(&out, res.Entries)).To(Succeed())
	h.g.Expect(h.writes()).To(Equal(writes), "the export wrote to Clerk")
	t.Logf("seeded and exported %d users (%d bytes of YAML) in %v", len(res.Entries), out.Len(), time.Since(start).Round(time.Millisecond))

	// Apply the documents as kubectl does: YAML to JSON to unstructured.
	objs := decodeYAMLStream(t, out.Bytes())
	var names []string
	secrets := 0
	for _, o := range objs {
		switch o.GetKind() {
		case "ClerkUser":
			names = append(names, o.GetName())
		case "Secret":
			secrets++
		default:
			t.Fatalf("unexpected kind %s", o.GetKind())
		}
	}
	h.g.Expect(names).To(HaveLen(n))
	h.g.Expect(secrets).To(Equal((n + 5) / 6))
	createAll(t, objs)
	t.Logf("applied %d objects after %v", len(objs), time.Since(start).Round(time.Millisecond))

	waitAll(t, h, len(names), ReasonObserved)
	t.Logf("all Ready (Observed) after %v; Clerk requests: %v", time.Since(start).Round(time.Millisecond), h.fake.Stats().ByRoute())
	h.g.Expect(h.writes()).To(Equal(writes), "Observe wrote to Clerk")

	// Switch every object to Manage.
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"managementPolicy":"Manage"}}`))
	runParallel(t, names, func(name string) error {
		obj := &clerkv1alpha1.ClerkUser{}
		obj.Namespace, obj.Name = h.ns, name
		return k8sClient.Patch(ctx, obj, patch)
	})
	waitAll(t, h, len(names), ReasonSynced)
	t.Logf("all Synced after %v; Clerk requests: %v", time.Since(start).Round(time.Millisecond), h.fake.Stats().ByRoute())
	h.g.Consistently(h.writes, time.Second).Should(Equal(writes), "Manage wrote to Clerk: %v", h.fake.Stats().ByRoute())
}

// decodeYAMLStream splits a YAML stream into objects, as kubectl apply -f reads it.
func decodeYAMLStream(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(u)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decode document %d: %v", len(objs)+1, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		objs = append(objs, u)
	}
}

// createAll creates the objects in order, a few at a time: each private-metadata Secret comes
// right before its ClerkUser, and a ClerkUser whose Secret is not there yet would only wait.
func createAll(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	var secrets, users []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Secret" {
			secrets = append(secrets, o)
		} else {
			users = append(users, o)
		}
	}
	for _, batch := range [][]*unstructured.Unstructured{secrets, users} {
		runParallel(t, batch, func(o *unstructured.Unstructured) error {
			return k8sClient.Create(context.Background(), o)
		})
	}
}

// runParallel calls f for every item with a few workers and fails the test on the first error.
func runParallel[T any](t *testing.T, items []T, f func(T) error) {
	t.Helper()
	const workers = 8
	ch := make(chan T)
	errs := make(chan error, workers)
	for range workers {
		go func() {
			var first error
			for it := range ch {
				if err := f(it); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// waitAll waits until n ClerkUsers of the harness namespace are Ready with reason for their
// current generation, with no pending changes.
func waitAll(t *testing.T, h *harness, n int, reason string) {
	t.Helper()
	h.g.Eventually(func(g Gomega) {
		var list clerkv1alpha1.ClerkUserList
		g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(h.ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(n))
		var bad []string
		for _, o := range list.Items {
			c := meta.FindStatusCondition(o.Status.Conditions, ConditionReady)
			switch {
			case c == nil || c.ObservedGeneration != o.Generation || c.Reason != reason:
				if c != nil && c.Reason != ReasonProgressing && c.Reason != reason {
					bad = append(bad, fmt.Sprintf("%s: %s %s: %s", o.Name, c.Status, c.Reason, c.Message))
				} else {
					bad = append(bad, o.Name+": not yet")
				}
			case len(o.Status.PendingChanges) > 0:
				bad = append(bad, fmt.Sprintf("%s: pending %s", o.Name, strings.Join(o.Status.PendingChanges, ",")))
			}
		}
		g.Expect(bad).To(BeEmpty(), "%d of %d not %s", len(bad), n, reason)
	}, 5*time.Minute, time.Second).Should(Succeed())
}
