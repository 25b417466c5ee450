package recorder

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// TestAPIServer records Events through a real kube-apiserver: it takes the Event as built,
// the truncated note and the series patch, and rejects an invalid Event once.
func TestAPIServer(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run 'make test', which builds or finds kube-apiserver and etcd")
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cm, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewForConfig(cfg, httpClient, scheme.Scheme, "kubeclerk", testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	start(t, r)

	note := strings.Repeat("x", 3000)
	r.Eventf(cm, nil, corev1.EventTypeNormal, "Created", "Create", "%s", note)
	r.Eventf(cm, nil, corev1.EventTypeNormal, "Created", "Create", "%s", note)
	r.Eventf(cm, nil, corev1.EventTypeNormal, "", "Create", "no reason") // invalid: not retried
	selector := fields.OneTermEqualSelector("regarding.uid", string(cm.UID)).String()
	var ev eventsv1.Event
	eventually(t, "the series", func() bool {
		list, err := cs.EventsV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 || list.Items[0].Series == nil {
			return false
		}
		ev = list.Items[0]
		return true
	})
	if ev.Series.Count != 2 || len(ev.Note) != maxNoteLength || ev.Regarding.Name != "cm" || ev.Regarding.Kind != "ConfigMap" ||
		ev.ReportingController != "kubeclerk" || !strings.HasPrefix(ev.Name, "cm.") {
		t.Errorf("Event: %+v", ev)
	}
	eventually(t, "the invalid Event's failure", func() bool { return r.Failed() == 1 })
}
