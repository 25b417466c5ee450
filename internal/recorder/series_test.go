package recorder

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/types"
)

func key(s string) seriesKey {
	return keyOf(&eventsv1.Event{Note: s})
}

// TestSeriesCacheLRU: the least recently used entry is evicted when the cache is full.
func TestSeriesCacheLRU(t *testing.T) {
	c := newSeriesCache(2, time.Minute)
	c.put(key("a"), "ns", "a.1", t0)
	c.put(key("b"), "ns", "b.1", t0)
	if e := c.get(key("a"), t0.Add(time.Second)); e == nil || e.name != "a.1" || e.namespace != "ns" || e.count != 1 {
		t.Fatalf("a: %+v", e)
	}
	c.put(key("c"), "ns", "c.1", t0.Add(2*time.Second)) // evicts b, used least recently
	if c.len() != 2 || c.get(key("b"), t0) != nil || c.get(key("a"), t0) == nil || c.get(key("c"), t0) == nil {
		t.Errorf("after the eviction: %d entries, b %v", c.len(), c.get(key("b"), t0))
	}
	// Putting a key again replaces its entry.
	c.put(key("a"), "ns", "a.2", t0)
	if e := c.get(key("a"), t0); c.len() != 2 || e.name != "a.2" || e.count != 1 {
		t.Errorf("replaced: %d entries, %+v", c.len(), e)
	}
	// forget removes an entry only if it still heads the series with that Event.
	c.forget(key("a"), "a.1")
	if c.get(key("a"), t0) == nil {
		t.Error("forgot the series of another Event")
	}
	c.forget(key("a"), "a.2")
	if c.get(key("a"), t0) != nil || c.len() != 1 {
		t.Error("did not forget")
	}
}

// TestSeriesCacheExpiry: an entry is dead a window after its last occurrence.
func TestSeriesCacheExpiry(t *testing.T) {
	c := newSeriesCache(10, time.Minute)
	c.put(key("a"), "ns", "a.1", t0)
	c.put(key("b"), "ns", "b.1", t0.Add(30*time.Second))
	if c.get(key("a"), t0.Add(time.Minute)) == nil {
		t.Error("a is dead exactly a window after its last occurrence")
	}
	if c.get(key("a"), t0.Add(time.Minute+time.Nanosecond)) != nil || c.len() != 1 {
		t.Errorf("a is alive after the window: %d entries", c.len())
	}
	c.prune(t0.Add(90 * time.Second))
	if c.len() != 1 {
		t.Errorf("pruned a live entry: %d entries", c.len())
	}
	c.prune(t0.Add(91 * time.Second))
	if c.len() != 0 {
		t.Errorf("%d entries after the window", c.len())
	}
}

// TestKeyOf: the key tells apart Events that differ in any field client-go compares, or the note.
func TestKeyOf(t *testing.T) {
	base := func() *eventsv1.Event {
		return &eventsv1.Event{
			Type: "Normal", Action: "Update", Reason: "Updated", ReportingController: "c", ReportingInstance: "c-h", Note: "n",
			Regarding: corev1.ObjectReference{Kind: "K", Namespace: "ns", Name: "a", UID: "u", APIVersion: "v1", ResourceVersion: "1"},
		}
	}
	k := keyOf(base())
	same := base()
	same.Name, same.EventTime = "other-name", eventsv1.Event{}.EventTime
	if keyOf(same) != k {
		t.Error("the name and the time are not part of the identity")
	}
	for name, change := range map[string]func(*eventsv1.Event){
		"type":        func(e *eventsv1.Event) { e.Type = "Warning" },
		"action":      func(e *eventsv1.Event) { e.Action = "Create" },
		"reason":      func(e *eventsv1.Event) { e.Reason = "Created" },
		"controller":  func(e *eventsv1.Event) { e.ReportingController = "d" },
		"instance":    func(e *eventsv1.Event) { e.ReportingInstance = "c-i" },
		"note":        func(e *eventsv1.Event) { e.Note = "m" },
		"kind":        func(e *eventsv1.Event) { e.Regarding.Kind = "L" },
		"namespace":   func(e *eventsv1.Event) { e.Regarding.Namespace = "other" },
		"name":        func(e *eventsv1.Event) { e.Regarding.Name = "b" },
		"uid":         func(e *eventsv1.Event) { e.Regarding.UID = "v" },
		"version":     func(e *eventsv1.Event) { e.Regarding.ResourceVersion = "2" },
		"empty rel":   func(e *eventsv1.Event) { e.Related = &corev1.ObjectReference{} },
		"related":     func(e *eventsv1.Event) { e.Related = &corev1.ObjectReference{Name: "r"} },
		"boundary":    func(e *eventsv1.Event) { e.Action, e.Reason = "UpdateU", "pdated" },
		"moved field": func(e *eventsv1.Event) { e.Note, e.Regarding.Kind = "nK", "" },
	} {
		e := base()
		change(e)
		if keyOf(e) == k {
			t.Errorf("%s: same key", name)
		}
	}
}

// countingClient is an events client that counts and drops the Events.
func countingClient() (*funcClient, *atomic.Int64, *atomic.Int64) {
	var creates, patches atomic.Int64
	return &funcClient{
		create: func(context.Context, *eventsv1.Event) (*eventsv1.Event, error) {
			creates.Add(1)
			return &eventsv1.Event{}, nil
		},
		patch: func(context.Context, string, string, []byte) (*eventsv1.Event, error) {
			patches.Add(1)
			return &eventsv1.Event{}, nil
		},
	}, &creates, &patches
}

// TestSeriesCacheBound: however many distinct Events, the cache keeps at most its bound; an
// evicted series starts again with a new Event, and dead series are pruned.
func TestSeriesCacheBound(t *testing.T) {
	c, creates, patches := countingClient()
	const bound = 16
	var over atomic.Int64
	create := c.create
	r, clock := newTestRecorderWithLog(t, c, logr.Discard(), WithSeriesCacheSize(bound))
	c.create = func(ctx context.Context, ev *eventsv1.Event) (*eventsv1.Event, error) {
		if r.seriesLen() > bound {
			over.Add(1)
		}
		return create(ctx, ev)
	}
	start(t, r)
	record := func(i int) {
		clock.Step(time.Millisecond)
		r.Eventf(configMap(), nil, corev1.EventTypeNormal, "Updated", "Update", "event %d", i)
	}
	for i := range 100 {
		record(i)
	}
	eventually(t, "the Events", func() bool { return creates.Load() == 100 })
	if over.Load() != 0 || r.seriesLen() != bound {
		t.Errorf("%d series, over the bound %d times", r.seriesLen(), over.Load())
	}
	record(99) // recent: a patch
	eventually(t, "the patch", func() bool { return patches.Load() == 1 })
	record(0) // evicted: a new Event
	eventually(t, "the new Event", func() bool { return creates.Load() == 101 })
	if patches.Load() != 1 || r.seriesLen() != bound {
		t.Errorf("%d patches, %d series", patches.Load(), r.seriesLen())
	}
	clock.Step(seriesWindow + time.Second)
	r.prune()
	if n := r.seriesLen(); n != 0 {
		t.Errorf("%d series 6 minutes after the last Event", n)
	}
}

// TestMemoryBounded: recording 10,000 distinct Events, as a 10,000-user rollout does, leaves
// at most DefaultSeriesCacheSize small entries behind; client-go's broadcaster keeps all the
// Events, about 7.5 MB.
func TestMemoryBounded(t *testing.T) {
	const n = 10000
	c, creates, _ := countingClient()
	r, clock := newTestRecorderWithLog(t, c, logr.Discard())
	stop := start(t, r)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		clock.Step(time.Millisecond)
		cm := configMap()
		cm.Name = fmt.Sprintf("user-%05d", i)
		cm.UID = types.UID(fmt.Sprintf("uid-%05d", i))
		r.Eventf(cm, nil, corev1.EventTypeNormal, "Created", "Create", "Created Clerk user user_%032d", i)
		if i%500 == 499 {
			// Let the worker keep up, as it does at the pace of real Clerk writes.
			eventually(t, "the worker", func() bool { return creates.Load() == int64(i+1) || r.Dropped() > 0 })
		}
	}
	eventually(t, "the Events", func() bool { return creates.Load()+r.Dropped() == n })
	runtime.GC()
	runtime.ReadMemStats(&after)
	retained := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d Events: %d series, %d bytes retained (%d per series)", n, r.seriesLen(), retained,
		retained/int64(max(r.seriesLen(), 1)))
	if r.Dropped() != 0 {
		t.Errorf("%d dropped", r.Dropped())
	}
	if r.seriesLen() != DefaultSeriesCacheSize {
		t.Errorf("%d series, want the bound %d", r.seriesLen(), DefaultSeriesCacheSize)
	}
	// About 200 bytes per series; the bound leaves room for the runtime's noise.
	if retained > 2<<20 {
		t.Errorf("%d bytes retained after %d Events, want under 2 MiB", retained, n)
	}
	stop()
	runtime.KeepAlive(r)
}

// BenchmarkEventf measures recording and sending an Event through a client that drops it.
func BenchmarkEventf(b *testing.B) {
	c, creates, _ := countingClient()
	r := New(c, nil, "kubeclerk", logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	ref := &corev1.ObjectReference{Kind: "ClerkUser", APIVersion: "clerk.kubeclerk.dev/v1alpha1", Namespace: "ns", UID: "u"}
	b.ReportAllocs()
	var sent int64
	for i := 0; b.Loop(); i++ {
		ref.Name = fmt.Sprintf("user-%d", i)
		r.Eventf(ref, nil, corev1.EventTypeNormal, "Created", "Create", "Created Clerk user %d", i)
		sent++
	}
	for creates.Load()+r.Dropped() < sent {
		runtime.Gosched()
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(r.seriesLen()), "series")
}
