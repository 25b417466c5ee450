package recorder

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
)

// t0 is the fake clock's start: a whole number of microseconds, which Events keep exactly.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 678000, time.UTC)

// newTestRecorder returns a Recorder on client with a fake clock at t0, fast retries and a
// logger writing to t.
func newTestRecorder(t *testing.T, client eventsv1client.EventsV1Interface, opts ...Option) (*Recorder, *testingclock.FakeClock) {
	t.Helper()
	return newTestRecorderWithLog(t, client, testr.NewWithOptions(t, testr.Options{Verbosity: 1}), opts...)
}

func newTestRecorderWithLog(t *testing.T, client eventsv1client.EventsV1Interface, log logr.Logger, opts ...Option) (*Recorder, *testingclock.FakeClock) {
	t.Helper()
	clock := testingclock.NewFakeClock(t0)
	r := New(client, scheme.Scheme, "kubeclerk", log, opts...)
	r.now = clock.Now
	r.backoff = []time.Duration{time.Millisecond, 2 * time.Millisecond}
	return r, clock
}

// start runs r until the returned stop is called, or the test ends; stop waits for Start to
// return.
func start(t *testing.T, r *Recorder) (stop func()) {
	t.Helper()
	stopRecorder := r.Background()
	stop = sync.OnceFunc(func() {
		done := make(chan error, 1)
		go func() { done <- stopRecorder() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Start did not return 10 s after its context was cancelled")
		}
	})
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	gomega.NewWithT(t).Eventually(cond).WithTimeout(10*time.Second).WithPolling(time.Millisecond).
		Should(gomega.BeTrue(), "timed out waiting for %s", what)
}

// configMap is the object the Events are about.
func configMap() *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Namespace: "ns", Name: "cm", UID: types.UID("uid-1"), ResourceVersion: "7",
	}}
}

// eventActions returns the fake's actions on events with verb.
func eventActions(cs *fake.Clientset, verb string) []clienttesting.Action {
	var out []clienttesting.Action
	for _, a := range cs.Actions() {
		if a.GetResource().Resource == "events" && a.GetVerb() == verb {
			out = append(out, a)
		}
	}
	return out
}

// created returns the Events the fake was asked to create, in order.
func created(cs *fake.Clientset) []*eventsv1.Event {
	actions := eventActions(cs, "create")
	out := make([]*eventsv1.Event, 0, len(actions))
	for _, a := range actions {
		out = append(out, a.(clienttesting.CreateAction).GetObject().(*eventsv1.Event))
	}
	return out
}

// funcClient is an events client whose Create and Patch call functions; it stores nothing.
// Its other methods panic.
type funcClient struct {
	create func(ctx context.Context, ev *eventsv1.Event) (*eventsv1.Event, error)
	patch  func(ctx context.Context, namespace, name string, data []byte) (*eventsv1.Event, error)
}

func (c *funcClient) RESTClient() rest.Interface { return nil }

func (c *funcClient) Events(namespace string) eventsv1client.EventInterface {
	return &funcEvents{c: c, namespace: namespace}
}

type funcEvents struct {
	eventsv1client.EventInterface
	c         *funcClient
	namespace string
}

func (e *funcEvents) Create(ctx context.Context, ev *eventsv1.Event, _ metav1.CreateOptions) (*eventsv1.Event, error) {
	return e.c.create(ctx, ev)
}

func (e *funcEvents) Patch(ctx context.Context, name string, _ types.PatchType, data []byte, _ metav1.PatchOptions,
	_ ...string) (*eventsv1.Event, error) {
	return e.c.patch(ctx, e.namespace, name, data)
}
