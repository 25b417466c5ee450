package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// TestEventFields: the Event is built as client-go builds it.
func TestEventFields(t *testing.T) {
	cs := fake.NewClientset()
	r, _ := newTestRecorder(t, cs.EventsV1())
	start(t, r)
	cm := configMap()
	related := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", UID: "uid-2"}}
	r.AnnotatedEventf(cm, related, map[string]string{"a": "b"}, corev1.EventTypeNormal, "Created", "Create",
		"Created Clerk user %s", "user_1")
	eventually(t, "the Event", func() bool { return len(created(cs)) == 1 })

	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := cs.EventsV1().Events("ns").Get(context.Background(), fmt.Sprintf("cm.%x", t0.UnixNano()), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Event is not named cm.<hex nanoseconds>: %v", err)
	}
	if ev.Namespace != "ns" || ev.Type != corev1.EventTypeNormal || ev.Reason != "Created" || ev.Action != "Create" ||
		ev.Note != "Created Clerk user user_1" || ev.ReportingController != "kubeclerk" ||
		ev.ReportingInstance != "kubeclerk-"+hostname || ev.Series != nil || ev.Annotations["a"] != "b" {
		t.Errorf("Event: %+v", ev)
	}
	if !ev.EventTime.Time.Equal(t0) {
		t.Errorf("eventTime %v, want %v", ev.EventTime, t0)
	}
	want := corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: "ns", Name: "cm", UID: "uid-1", ResourceVersion: "7"}
	if ev.Regarding != want {
		t.Errorf("regarding %+v, want %+v", ev.Regarding, want)
	}
	if ev.Related == nil || ev.Related.Kind != "Secret" || ev.Related.Name != "s" || ev.Related.UID != "uid-2" {
		t.Errorf("related %+v", ev.Related)
	}
}

// TestEventNamespace: an Event about a cluster-scoped object goes to "default"; one about an
// ObjectReference uses it as the regarding reference.
func TestEventNamespace(t *testing.T) {
	cs := fake.NewClientset()
	r, clock := newTestRecorder(t, cs.EventsV1())
	start(t, r)
	r.Eventf(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team", UID: "uid-ns"}}, nil, corev1.EventTypeWarning,
		"Failed", "Sync", "no")
	clock.Step(time.Second)
	ref := &corev1.ObjectReference{Kind: "ClerkUser", APIVersion: "clerk.kubeclerk.dev/v1alpha1", Namespace: "team", Name: "u", UID: "uid-u"}
	r.Eventf(ref, nil, corev1.EventTypeNormal, "Created", "Create", "yes")
	eventually(t, "the Events", func() bool { return len(created(cs)) == 2 })
	evs := created(cs)
	if evs[0].Namespace != metav1.NamespaceDefault || evs[0].Regarding.Name != "team" || evs[0].Regarding.Kind != "Namespace" ||
		evs[0].Type != corev1.EventTypeWarning {
		t.Errorf("cluster-scoped: %+v", evs[0])
	}
	if evs[1].Namespace != "team" || evs[1].Regarding != *ref {
		t.Errorf("reference: %+v", evs[1])
	}
	ref.Name = "changed"
	if evs[1].Regarding.Name != "u" {
		t.Error("the Event shares the caller's reference")
	}
}

// TestNoteTruncated: a note over 1024 bytes is cut to at most 1024, on a rune boundary.
func TestNoteTruncated(t *testing.T) {
	for _, note := range []string{
		strings.Repeat("x", 2000),
		"x" + strings.Repeat("é", 600), // the cut at 1024 falls inside an "é"
		strings.Repeat("y", 1024),
		"short",
	} {
		got := truncateNote(note)
		if len(got) > maxNoteLength || !utf8.ValidString(got) || !strings.HasPrefix(note, got) || len(got) < min(len(note), maxNoteLength-3) {
			t.Errorf("truncateNote(%d bytes) = %d bytes, valid UTF-8 %v", len(note), len(got), utf8.ValidString(got))
		}
	}

	cs := fake.NewClientset()
	r, _ := newTestRecorder(t, cs.EventsV1())
	start(t, r)
	r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Created", "Create", "%s", strings.Repeat("z", 3000))
	eventually(t, "the Event", func() bool { return len(created(cs)) == 1 })
	if n := len(created(cs)[0].Note); n != maxNoteLength {
		t.Errorf("note of %d bytes, want %d", n, maxNoteLength)
	}
}

// TestDroppedBeforeQueue: an Event of an unsupported type, or about no object or an object
// without a kind, is not queued.
func TestDroppedBeforeQueue(t *testing.T) {
	cs := fake.NewClientset()
	r, clock := newTestRecorder(t, cs.EventsV1())
	var nilCM *corev1.ConfigMap
	noKind := &unstructured.Unstructured{}
	noKind.SetName("x")
	for _, c := range []struct {
		name      string
		regarding runtime.Object
		eventtype string
	}{
		{"type Info", configMap(), "Info"},
		{"empty type", configMap(), ""},
		{"nil object", nil, corev1.EventTypeNormal},
		{"nil pointer", nilCM, corev1.EventTypeNormal},
		{"no kind", noKind, corev1.EventTypeNormal},
	} {
		r.Eventf(c.regarding, nil, c.eventtype, "Created", "Create", "note")
		if len(r.queue) != 0 {
			t.Fatalf("%s: queued", c.name)
		}
	}
	// A related object without a reference is left out, as client-go does.
	clock.Step(time.Second)
	r.Eventf(configMap(), noKind, corev1.EventTypeNormal, "Created", "Create", "note")
	start(t, r)
	eventually(t, "the Event", func() bool { return len(created(cs)) == 1 })
	if ev := created(cs)[0]; ev.Related != nil {
		t.Errorf("related %+v", ev.Related)
	}
	if r.Dropped() != 0 {
		t.Errorf("Dropped() = %d: invalid Events are not queue drops", r.Dropped())
	}
}

// seriesPatchOf decodes a patch action.
func seriesPatchOf(t *testing.T, a clienttesting.Action) (name string, s eventsv1.EventSeries) {
	t.Helper()
	p := a.(clienttesting.PatchAction)
	if p.GetPatchType() != types.MergePatchType {
		t.Errorf("patch type %s, want a JSON merge patch", p.GetPatchType())
	}
	var body struct {
		Series *eventsv1.EventSeries `json:"series"`
	}
	if err := json.Unmarshal(p.GetPatch(), &body); err != nil || body.Series == nil {
		t.Fatalf("patch %s: %v", p.GetPatch(), err)
	}
	return p.GetName(), *body.Series
}

// TestSeries: an isomorphic Event within 6 minutes of the last occurrence patches the first
// Event's series; later, or with another note, it creates a new Event.
func TestSeries(t *testing.T) {
	cs := fake.NewClientset()
	r, clock := newTestRecorder(t, cs.EventsV1())
	start(t, r)
	cm := configMap()
	record := func(note string) {
		r.Eventf(cm, nil, corev1.EventTypeNormal, "Updated", "Update", "%s", note)
	}
	first := fmt.Sprintf("cm.%x", t0.UnixNano())

	record("same")
	eventually(t, "the first Event", func() bool { return len(created(cs)) == 1 })
	clock.Step(time.Minute)
	record("same")
	eventually(t, "the first patch", func() bool { return len(eventActions(cs, "patch")) == 1 })
	name, s := seriesPatchOf(t, eventActions(cs, "patch")[0])
	if name != first || s.Count != 2 || !s.LastObservedTime.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("first patch: %s %+v", name, s)
	}
	clock.Step(5 * time.Minute) // 6 minutes after the first occurrence, 5 after the last
	record("same")
	eventually(t, "the second patch", func() bool { return len(eventActions(cs, "patch")) == 2 })
	name, s = seriesPatchOf(t, eventActions(cs, "patch")[1])
	if name != first || s.Count != 3 || !s.LastObservedTime.Time.Equal(t0.Add(6*time.Minute)) {
		t.Errorf("second patch: %s %+v", name, s)
	}
	ev, err := cs.EventsV1().Events("ns").Get(context.Background(), first, metav1.GetOptions{})
	if err != nil || ev.Series == nil || ev.Series.Count != 3 || ev.Note != "same" {
		t.Fatalf("stored Event: %+v, %v", ev, err)
	}

	clock.Step(seriesWindow + time.Second)
	record("same")
	eventually(t, "a new Event after 6 minutes", func() bool { return len(created(cs)) == 2 })
	clock.Step(time.Second)
	record("other")
	eventually(t, "a new Event for another note", func() bool { return len(created(cs)) == 3 })
	clock.Step(time.Second)
	record("same")
	eventually(t, "the third patch", func() bool { return len(eventActions(cs, "patch")) == 3 })
	name, s = seriesPatchOf(t, eventActions(cs, "patch")[2])
	if name != created(cs)[1].Name || s.Count != 2 {
		t.Errorf("third patch: %s %+v, want count 2 on %s", name, s, created(cs)[1].Name)
	}
	if len(created(cs)) != 3 {
		t.Errorf("%d Events created, want 3", len(created(cs)))
	}
	list, err := cs.EventsV1().Events("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 3 {
		t.Errorf("%d Events stored, want 3 (%v)", len(list.Items), err)
	}
}

// TestSeriesEventGone: when the Event of a series is gone, its next occurrence creates a new
// Event, which heads the series from then on.
func TestSeriesEventGone(t *testing.T) {
	cs := fake.NewClientset()
	r, clock := newTestRecorder(t, cs.EventsV1())
	start(t, r)
	record := func() { r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Updated", "Update", "same") }
	record()
	eventually(t, "the first Event", func() bool { return len(created(cs)) == 1 })
	first := created(cs)[0].Name
	if err := cs.EventsV1().Events("ns").Delete(context.Background(), first, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	clock.Step(time.Second)
	record()
	eventually(t, "a new Event", func() bool { return len(created(cs)) == 2 })
	second := created(cs)[1]
	if second.Name == first || second.Series != nil || len(eventActions(cs, "patch")) != 1 {
		t.Errorf("after the patch of a gone Event: %+v, %d patches", second, len(eventActions(cs, "patch")))
	}
	clock.Step(time.Second)
	record()
	eventually(t, "the patch of the new Event", func() bool { return len(eventActions(cs, "patch")) == 2 })
	if name, s := seriesPatchOf(t, eventActions(cs, "patch")[1]); name != second.Name || s.Count != 2 {
		t.Errorf("patch %s %+v, want count 2 on %s", name, s, second.Name)
	}
}

// TestQueueFull: when the worker is stuck and the queue is full, Eventf drops and counts the
// Event without blocking; the queued Events are sent once the worker is free.
func TestQueueFull(t *testing.T) {
	cs := fake.NewClientset()
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	cs.PrependReactor("create", "events", func(clienttesting.Action) (bool, runtime.Object, error) {
		entered <- struct{}{}
		<-release
		return false, nil, nil // on to the object tracker
	})
	r, clock := newTestRecorder(t, cs.EventsV1(), WithQueueSize(2))
	start(t, r)
	record := func(i int) {
		clock.Step(time.Second)
		r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Updated", "Update", "event %d", i)
	}
	record(0)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not send the first Event")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 5; i++ {
			record(i)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Eventf blocked on a full queue")
	}
	if r.Dropped() != 3 {
		t.Errorf("Dropped() = %d, want 3", r.Dropped())
	}
	close(release)
	eventually(t, "the queued Events", func() bool { return len(created(cs)) == 3 })
	evs := created(cs)
	notes := make([]string, 0, len(evs))
	for _, ev := range evs {
		notes = append(notes, ev.Note)
	}
	if strings.Join(notes, ",") != "event 0,event 1,event 2" {
		t.Errorf("sent %q", notes)
	}
	if r.Dropped() != 3 || r.Failed() != 0 {
		t.Errorf("Dropped() = %d, Failed() = %d", r.Dropped(), r.Failed())
	}
}

// TestRetry: a transient error is retried, twice at most; an error that will not change is not.
func TestRetry(t *testing.T) {
	gr := schema.GroupResource{Group: "events.k8s.io", Resource: "events"}
	for _, c := range []struct {
		name      string
		errs      []error // the errors of the first tries, then success
		wantTries int
		wantFail  bool // counted by Failed
	}{
		{"transport error then success", []error{errors.New("connection refused"), errors.New("connection refused")}, 3, false},
		{"unavailable then success", []error{apierrors.NewServiceUnavailable("busy")}, 2, false},
		{"too many requests then success", []error{apierrors.NewTooManyRequests("slow down", 1)}, 2, false},
		{"transient errors exhaust the tries", []error{errors.New("a"), errors.New("b"), errors.New("c"), errors.New("d")}, 3, true},
		{"invalid", []error{apierrors.NewInvalid(schema.GroupKind{Group: "events.k8s.io", Kind: "Event"}, "x",
			field.ErrorList{field.Required(field.NewPath("reason"), "")})}, 1, true},
		{"forbidden", []error{apierrors.NewForbidden(gr, "x", errors.New("no"))}, 1, true},
		{"namespace gone", []error{apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "ns")}, 1, true},
		{"already exists", []error{apierrors.NewAlreadyExists(gr, "x")}, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := fake.NewClientset()
			var tries int
			cs.PrependReactor("create", "events", func(a clienttesting.Action) (bool, runtime.Object, error) {
				ev := a.(clienttesting.CreateAction).GetObject().(*eventsv1.Event)
				if ev.Reason != "Flaky" {
					return false, nil, nil
				}
				tries++
				if tries <= len(c.errs) {
					return true, nil, c.errs[tries-1]
				}
				return false, nil, nil
			})
			r, clock := newTestRecorder(t, cs.EventsV1())
			start(t, r)
			r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Flaky", "Update", "flaky")
			// A second Event, sent after the first is done with, tells when that is.
			clock.Step(time.Second)
			r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Marker", "Update", "marker")
			eventually(t, "the marker Event", func() bool {
				evs := created(cs)
				return len(evs) > 0 && evs[len(evs)-1].Reason == "Marker"
			})
			if got := len(created(cs)) - 1; got != c.wantTries {
				t.Errorf("%d tries, want %d", got, c.wantTries)
			}
			if got := r.Failed() == 1; got != c.wantFail {
				t.Errorf("Failed() = %d", r.Failed())
			}
			_, err := cs.EventsV1().Events("ns").Get(context.Background(), fmt.Sprintf("cm.%x", t0.UnixNano()), metav1.GetOptions{})
			if wantStored := c.wantTries > len(c.errs); (err == nil) != wantStored {
				t.Errorf("stored %v, want %v (%v)", err == nil, wantStored, err)
			}
		})
	}
}

// TestFailedCreateForgotten: after its Event could not be created, an occurrence of the same
// Event creates it again instead of patching an Event that does not exist.
func TestFailedCreateForgotten(t *testing.T) {
	cs := fake.NewClientset()
	var fail atomic.Bool
	fail.Store(true)
	cs.PrependReactor("create", "events", func(clienttesting.Action) (bool, runtime.Object, error) {
		if fail.Load() {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "x", errors.New("no"))
		}
		return false, nil, nil
	})
	r, clock := newTestRecorder(t, cs.EventsV1())
	start(t, r)
	r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Updated", "Update", "same")
	eventually(t, "the failure", func() bool { return r.Failed() == 1 })
	fail.Store(false)
	clock.Step(time.Second)
	r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Updated", "Update", "same")
	eventually(t, "the second create", func() bool { return len(created(cs)) == 2 })
	if n := len(eventActions(cs, "patch")); n != 0 {
		t.Errorf("%d patches", n)
	}
}

// TestBeforeStart: Events recorded before Start are sent once it runs.
func TestBeforeStart(t *testing.T) {
	cs := fake.NewClientset()
	r, clock := newTestRecorder(t, cs.EventsV1())
	for i := range 3 {
		clock.Step(time.Second)
		r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Updated", "Update", "event %d", i)
	}
	if n := len(cs.Actions()); n != 0 {
		t.Fatalf("%d API calls before Start", n)
	}
	start(t, r)
	eventually(t, "the Events", func() bool { return len(created(cs)) == 3 })
}

// TestStop: Start returns once its context is cancelled, and only runs once; later Events
// are dropped.
func TestStop(t *testing.T) {
	cs := fake.NewClientset()
	r, _ := newTestRecorder(t, cs.EventsV1())
	stop := start(t, r)
	r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Updated", "Update", "before")
	eventually(t, "the Event", func() bool { return len(created(cs)) == 1 })
	stop() // fails the test unless Start returns
	if err := r.Start(context.Background()); err == nil {
		t.Error("a second Start did not fail")
	}
	r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Updated", "Update", "after")
	if r.Dropped() != 1 || len(r.queue) != 0 {
		t.Errorf("after Stop: Dropped() = %d, %d queued", r.Dropped(), len(r.queue))
	}
}

// TestDrain: when its context is done, Start sends the queued Events before returning.
func TestDrain(t *testing.T) {
	cs := fake.NewClientset()
	r, clock := newTestRecorder(t, cs.EventsV1())
	for i := range 3 {
		clock.Step(time.Second)
		r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Updated", "Update", "event %d", i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(created(cs)); n != 3 {
		t.Errorf("%d Events sent, want 3", n)
	}
}

// TestDrainBounded: with an apiserver that does not answer, Start still returns soon after its
// context is done.
func TestDrainBounded(t *testing.T) {
	entered := make(chan struct{}, 10)
	c := &funcClient{create: func(ctx context.Context, _ *eventsv1.Event) (*eventsv1.Event, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	r, clock := newTestRecorderWithLog(t, c, logr.Discard())
	r.drainTimeout = 50 * time.Millisecond
	for i := range 3 {
		clock.Step(time.Second)
		r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Updated", "Update", "event %d", i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	<-entered
	began := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return")
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("Start returned %v after the cancellation", d)
	}
	if r.Failed() != 0 {
		t.Errorf("Failed() = %d: Events cut off by the shutdown are not failures", r.Failed())
	}
}

// TestBackground: Background's stop sends what was queued before it returns, and a second call
// returns the same result at once.
func TestBackground(t *testing.T) {
	cs := fake.NewClientset()
	r, _ := newTestRecorder(t, cs.EventsV1())
	stop := r.Background()
	r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Updated", "Update", "queued before stop")
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if n := len(created(cs)); n != 1 {
		t.Errorf("%d Events created by the time stop returned, want 1", n)
	}
	if err := stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel() // so that a Start that wrongly runs returns
	if err := r.Start(cancelled); err == nil {
		t.Error("Start after Background did not fail")
	}
}
