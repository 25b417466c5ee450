package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/record/util"
	"k8s.io/client-go/tools/reference"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crrecorder "sigs.k8s.io/controller-runtime/pkg/recorder"
)

const (
	// DefaultQueueSize is how many Events may wait to be sent, like client-go's maxQueuedEvents.
	DefaultQueueSize = 1000
	// DefaultSeriesCacheSize is how many series the recorder remembers.
	DefaultSeriesCacheSize = 4096

	// seriesWindow is how long after its last occurrence an Event can be repeated into a
	// series, client-go's finishTime.
	seriesWindow = 6 * time.Minute
	// maxNoteLength is the apiserver's limit on an Event's note, in bytes.
	maxNoteLength = 1024
	// requestTimeout bounds one API call, so that a hung connection cannot stop the worker.
	requestTimeout = 10 * time.Second
	// drainTimeout bounds how long Start sends the queued Events once its context is done.
	drainTimeout = 2 * time.Second
	// dropLogInterval is the least time between two log lines about dropped Events.
	dropLogInterval = 10 * time.Second
	// pruneInterval is how often the dead series are removed from the cache.
	pruneInterval = time.Minute
)

// defaultBackoff is the wait before each retry of an Event whose sending failed transiently:
// three tries in all.
var defaultBackoff = []time.Duration{time.Second, 2 * time.Second}

var (
	_ events.EventRecorder           = (*Recorder)(nil)
	_ events.AnnotatedEventRecorder  = (*Recorder)(nil)
	_ crrecorder.EventRecorder       = (*Recorder)(nil)
	_ manager.Runnable               = (*Recorder)(nil)
	_ manager.LeaderElectionRunnable = (*Recorder)(nil)
)

// Recorder records events.k8s.io/v1 Events through one worker goroutine, with a bounded queue
// and a bounded series cache. Eventf never blocks. Events are sent while Start runs: add the
// Recorder to a manager (it is a Runnable that runs on every replica), or run it with Background
// when it must outlive the manager's runnables, which stop before its controllers do. Events
// recorded before Start wait in the queue.
type Recorder struct {
	client     eventsv1client.EventsV1Interface
	scheme     *runtime.Scheme
	controller string
	instance   string
	log        logr.Logger

	queue       chan *eventsv1.Event
	started     atomic.Bool
	stopped     atomic.Bool
	dropped     atomic.Int64
	failed      atomic.Int64
	lastDropLog atomic.Int64 // UnixNano of the last log line about dropped Events

	// mu guards series, which only the worker uses; the lock lets tests read its length.
	mu     sync.Mutex
	series *seriesCache

	// Replaced by tests.
	now          func() time.Time
	backoff      []time.Duration
	drainTimeout time.Duration
}

type options struct {
	queueSize       int
	seriesCacheSize int
}

// Option configures a Recorder.
type Option func(*options)

// WithQueueSize sets how many Events may wait to be sent (DefaultQueueSize unless set).
func WithQueueSize(n int) Option {
	return func(o *options) { o.queueSize = n }
}

// WithSeriesCacheSize sets how many series the Recorder remembers (DefaultSeriesCacheSize
// unless set). When it is full, the least recently used series is forgotten: its next
// occurrence creates a new Event.
func WithSeriesCacheSize(n int) Option {
	return func(o *options) { o.seriesCacheSize = n }
}

// New returns a Recorder that sends Events with client, with the reporting controller
// controller. scheme resolves the kinds of the objects Events are about.
func New(client eventsv1client.EventsV1Interface, scheme *runtime.Scheme, controller string, log logr.Logger, opts ...Option) *Recorder {
	o := options{queueSize: DefaultQueueSize, seriesCacheSize: DefaultSeriesCacheSize}
	for _, opt := range opts {
		opt(&o)
	}
	o.queueSize = max(o.queueSize, 1)
	o.seriesCacheSize = max(o.seriesCacheSize, 1)
	// As client-go's broadcaster does.
	hostname, _ := os.Hostname()
	return &Recorder{
		client:       client,
		scheme:       scheme,
		controller:   controller,
		instance:     controller + "-" + hostname,
		log:          log,
		queue:        make(chan *eventsv1.Event, o.queueSize),
		series:       newSeriesCache(o.seriesCacheSize, seriesWindow),
		now:          time.Now,
		backoff:      defaultBackoff,
		drainTimeout: drainTimeout,
	}
}

// NewForConfig returns a Recorder whose client is built from cfg and httpClient, such as the
// manager's GetConfig() and GetHTTPClient().
func NewForConfig(cfg *rest.Config, httpClient *http.Client, scheme *runtime.Scheme, controller string, log logr.Logger,
	opts ...Option) (*Recorder, error) {
	c, err := eventsv1client.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("events client: %w", err)
	}
	return New(c, scheme, controller, log, opts...), nil
}

// Dropped returns how many Events were dropped because the queue was full or the Recorder had
// stopped.
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

// Failed returns how many Events the apiserver did not take: rejected, or still failing after
// the retries.
func (r *Recorder) Failed() int64 { return r.failed.Load() }

// NeedLeaderElection is false: every replica records the Events of its own work.
func (r *Recorder) NeedLeaderElection() bool { return false }

// Eventf records an Event about regarding (and related, which may be nil). It never blocks.
func (r *Recorder) Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.AnnotatedEventf(regarding, related, nil, eventtype, reason, action, note, args...)
}

// AnnotatedEventf is Eventf with annotations on the Event.
func (r *Recorder) AnnotatedEventf(regarding runtime.Object, related runtime.Object, annotations map[string]string,
	eventtype, reason, action, note string, args ...any) {
	ev := r.makeEvent(regarding, related, annotations, eventtype, reason, action, note, args...)
	if ev == nil {
		return
	}
	r.log.V(1).Info("Event occurred", "object", objectName(&ev.Regarding), "kind", ev.Regarding.Kind,
		"apiVersion", ev.Regarding.APIVersion, "type", ev.Type, "reason", ev.Reason, "action", ev.Action, "note", ev.Note)
	if r.stopped.Load() {
		r.drop(ev, "Recorder stopped, dropping Events")
		return
	}
	select {
	case r.queue <- ev:
	default:
		r.drop(ev, "Event queue full, dropping Events")
	}
}

// makeEvent builds the Event as client-go's recorderImpl.eventf and makeEvent do, or returns nil
// (after logging why) when it cannot be sent.
func (r *Recorder) makeEvent(regarding, related runtime.Object, annotations map[string]string,
	eventtype, reason, action, note string, args ...any) *eventsv1.Event {
	t := r.now()
	message := fmt.Sprintf(note, args...)
	if isNil(regarding) {
		r.log.Error(reference.ErrNilObject, "Could not construct reference, will not report event", "eventType", eventtype, "reason", reason)
		return nil
	}
	refRegarding, err := reference.GetReference(r.scheme, regarding)
	if err != nil {
		r.log.Error(err, "Could not construct reference, will not report event", "objectType", fmt.Sprintf("%T", regarding),
			"eventType", eventtype, "reason", reason)
		return nil
	}
	var refRelated *corev1.ObjectReference
	if !isNil(related) {
		if ref, err := reference.GetReference(r.scheme, related); err != nil {
			r.log.V(5).Info("Could not construct reference", "objectType", fmt.Sprintf("%T", related), "err", err.Error())
		} else {
			// GetReference returns a given *ObjectReference itself: the Event must not share it.
			refRelated = ref.DeepCopy()
		}
	}
	if !util.ValidateEventType(eventtype) {
		r.log.Error(nil, "Unsupported event type", "eventType", eventtype, "reason", reason)
		return nil
	}
	namespace := refRegarding.Namespace
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	return &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:        util.GenerateEventName(refRegarding.Name, t.UnixNano()),
			Namespace:   namespace,
			Annotations: maps.Clone(annotations),
		},
		EventTime:           metav1.MicroTime{Time: t},
		ReportingController: r.controller,
		ReportingInstance:   r.instance,
		Action:              action,
		Reason:              reason,
		Regarding:           *refRegarding,
		Related:             refRelated,
		Note:                truncateNote(message),
		Type:                eventtype,
	}
}

// truncateNote cuts note to the apiserver's limit, on a rune boundary.
func truncateNote(note string) string {
	if len(note) <= maxNoteLength {
		return note
	}
	n := maxNoteLength
	for n > 0 && !utf8.RuneStart(note[n]) {
		n--
	}
	return note[:n]
}

// isNil tells a nil interface or a nil pointer, on which GetReference would panic.
func isNil(obj runtime.Object) bool {
	if obj == nil {
		return true
	}
	v := reflect.ValueOf(obj)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

func objectName(ref *corev1.ObjectReference) string {
	if ref.Namespace == "" {
		return ref.Name
	}
	return ref.Namespace + "/" + ref.Name
}

// drop counts ev as dropped and says so, at most once every dropLogInterval.
func (r *Recorder) drop(ev *eventsv1.Event, msg string) {
	n := r.dropped.Add(1)
	now := r.now().UnixNano()
	last := r.lastDropLog.Load()
	if (last == 0 || now-last >= int64(dropLogInterval)) && r.lastDropLog.CompareAndSwap(last, now) {
		r.log.Info(msg, "dropped", n, "reason", ev.Reason, "object", objectName(&ev.Regarding))
	}
}

// Start sends the queued Events until ctx is done, then for at most 2 seconds more.
func (r *Recorder) Start(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("event recorder already started")
	}
	ticker := time.NewTicker(pruneInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			r.stopped.Store(true)
			r.drain(ctx, nil)
			return nil
		case ev := <-r.queue:
			op := r.plan(ev)
			if err := r.send(ctx, op); err != nil && ctx.Err() != nil {
				// Interrupted by the shutdown: try once more while draining.
				r.stopped.Store(true)
				r.drain(ctx, op)
				return nil
			}
		case <-ticker.C:
			r.prune()
		}
	}
}

// Background runs Start on a new goroutine until stop is called. stop cancels it, waits for
// Start to return (after it sent what was queued, for at most 2 seconds) and returns Start's
// error; calling it again returns the same.
func (r *Recorder) Background() (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	return sync.OnceValue(func() error {
		cancel()
		return <-done
	})
}

// drain sends op and the queued Events, for at most drainTimeout.
func (r *Recorder) drain(ctx context.Context, op *sendOp) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.drainTimeout)
	defer cancel()
	if op != nil {
		_ = r.send(dctx, op)
	}
	for dctx.Err() == nil {
		select {
		case ev := <-r.queue:
			_ = r.send(dctx, r.plan(ev))
		default:
			return
		}
	}
	if n := len(r.queue); n > 0 {
		r.log.Info("Recorder stopped before sending all Events", "unsent", n)
	}
}

func (r *Recorder) prune() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.series.prune(r.now())
}

// seriesLen returns how many series the Recorder remembers.
func (r *Recorder) seriesLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.series.len()
}

// sendOp is what the worker does with an Event: create it, or patch the series it repeats.
type sendOp struct {
	// ev is the Event; it is created when it starts a series, or when the series' Event is gone.
	ev  *eventsv1.Event
	key seriesKey
	// patch is set when ev repeats the series headed by the Event namespace/name.
	patch     bool
	namespace string
	name      string
	count     int32
	last      time.Time
}

// plan looks ev up in the series cache.
func (r *Recorder) plan(ev *eventsv1.Event) *sendOp {
	op := &sendOp{ev: ev, key: keyOf(ev)}
	t := ev.EventTime.Time
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.series.get(op.key, t); e != nil {
		e.count++
		e.last = max(e.last, t.UnixNano())
		op.patch, op.namespace, op.name, op.count, op.last = true, e.namespace, e.name, e.count, t
		return op
	}
	r.series.put(op.key, ev.Namespace, ev.Name, t)
	return op
}

// send carries op out, retrying transient errors.
func (r *Recorder) send(ctx context.Context, op *sendOp) error {
	var err error
	for try := 0; ; try++ {
		if err = r.sendOnce(ctx, op); err == nil {
			return nil
		}
		if !retriable(err) || try >= len(r.backoff) || ctx.Err() != nil {
			break
		}
		r.log.V(1).Info("Unable to write Event, will retry", "reason", op.ev.Reason, "object", objectName(&op.ev.Regarding),
			"err", err.Error())
		timer := time.NewTimer(r.backoff[try])
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		timer.Stop()
	}
	if ctx.Err() != nil {
		// Interrupted by the shutdown: the caller may try again.
		return err
	}
	r.failed.Add(1)
	r.log.Error(err, "Unable to write Event, dropping it", "reason", op.ev.Reason, "object", objectName(&op.ev.Regarding),
		"kind", op.ev.Regarding.Kind)
	if !op.patch {
		// The next occurrence creates the Event again instead of patching one that does not exist.
		r.mu.Lock()
		r.series.forget(op.key, op.ev.Name)
		r.mu.Unlock()
	}
	return err
}

// sendOnce makes one try at op.
func (r *Recorder) sendOnce(ctx context.Context, op *sendOp) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if op.patch {
		data, err := seriesPatch(op.count, op.last)
		if err != nil {
			return err
		}
		_, err = r.client.Events(op.namespace).Patch(ctx, op.name, types.MergePatchType, data, metav1.PatchOptions{})
		if !apierrors.IsNotFound(err) {
			return err
		}
		// The Event expired: ev starts the series again.
		op.patch = false
		r.mu.Lock()
		r.series.put(op.key, op.ev.Namespace, op.ev.Name, op.ev.EventTime.Time)
		r.mu.Unlock()
	}
	_, err := r.client.Events(op.ev.Namespace).Create(ctx, op.ev, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// A retry of a create that went through.
		return nil
	}
	return err
}

// seriesPatch returns the JSON merge patch setting an Event's series.
func seriesPatch(count int32, last time.Time) ([]byte, error) {
	return json.Marshal(map[string]any{"series": eventsv1.EventSeries{Count: count, LastObservedTime: metav1.MicroTime{Time: last}}})
}

// retriable tells an error that may go away: a transport error, a timeout, an overloaded or
// failing apiserver. Other API errors (AlreadyExists, Invalid, Forbidden, NotFound, ...) and a
// request that cannot be built will not change.
func retriable(err error) bool {
	if _, ok := errors.AsType[*rest.RequestConstructionError](err); ok {
		return false
	}
	if apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err) {
		return true
	}
	var status apierrors.APIStatus
	return !errors.As(err, &status)
}
