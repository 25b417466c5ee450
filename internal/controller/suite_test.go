package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
	"github.com/kubeclerk/kubeclerk/internal/instance"
	"github.com/kubeclerk/kubeclerk/internal/metrics"
	"github.com/kubeclerk/kubeclerk/internal/observe"
	"github.com/kubeclerk/kubeclerk/internal/recorder"
)

// The envtest control plane is started once, by the first test that needs it, and stopped by
// TestMain, so that the pure table tests of this package run without it.
var (
	envOnce   sync.Once
	envErr    error
	testEnv   *envtest.Environment
	restCfg   *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if testEnv != nil {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}
	os.Exit(code)
}

// startEnv starts kube-apiserver and etcd with the ClerkUser CRD, once.
func startEnv(t *testing.T) {
	t.Helper()
	envOnce.Do(func() {
		if os.Getenv("KUBEBUILDER_ASSETS") == "" {
			envErr = fmt.Errorf("KUBEBUILDER_ASSETS is not set: run 'make test', which builds or finds kube-apiserver and etcd")
			return
		}
		logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(zapcore.Level(zapLevel()))))
		if envErr = clientgoscheme.AddToScheme(scheme); envErr != nil {
			return
		}
		if envErr = clerkv1alpha1.AddToScheme(scheme); envErr != nil {
			return
		}
		testEnv = &envtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
			ErrorIfCRDPathMissing: true,
		}
		if restCfg, envErr = testEnv.Start(); envErr != nil {
			return
		}
		k8sClient, envErr = client.New(restCfg, client.Options{Scheme: scheme})
	})
	if envErr != nil {
		t.Fatalf("envtest: %v", envErr)
	}
}

// harness is one isolated world for a lifecycle test: its own namespace, its own fake Clerk
// (with its own secret key, hence its own client-side rate bucket) and its own manager that
// only watches that namespace.
type harness struct {
	t  *testing.T
	g  *WithT
	ns string
	// mgrNS is the manager's namespace (ClerkInstances' Secrets): ns, unless withManagerNamespace.
	mgrNS  string
	fake   *clerkfake.Server
	srv    *httptest.Server
	api    *clerk.Client // out-of-band changes, as the application or a person would make them
	mgrAPI *clerk.Client
	opts   harnessOptions
	stop   func()
	// metrics and registry are the manager's metrics (withMetrics).
	metrics  *metrics.Metrics
	registry *prometheus.Registry
	// reconciler is the running manager's ClerkUser reconciler.
	reconciler *ClerkUserReconciler
	// clients are the ClerkInstances' Clerk clients, kept across manager restarts.
	clients *instance.Clients
}

type harnessOptions struct {
	perObject  bool // observe.PerObject instead of the default observe.Batch
	syncPeriod time.Duration
	fake       clerkfake.Options
	wrap       func(http.Handler) http.Handler
	// managerNS gives the manager a namespace of its own: ns is then a tenant's, where only
	// labelled Secrets are cached.
	managerNS bool
	// noOwnKey starts the manager without a Clerk key of its own: ClerkInstances only.
	noOwnKey bool
	// metrics gives the manager kubeclerk's metrics, in the harness's own registry.
	metrics bool
	// maxDeletionsPerMinute sets the deletion brake; 0: none.
	maxDeletionsPerMinute int
	// workers is MaxConcurrentReconciles; 2 when zero.
	workers int
}

const (
	testTimeout = 30 * time.Second
	testPoll    = 50 * time.Millisecond
)

// newHarness starts a fake Clerk API and a manager for one test; both stop when the test ends.
func newHarness(t *testing.T, opts ...func(*harnessOptions)) *harness {
	t.Helper()
	startEnv(t)
	o := harnessOptions{syncPeriod: time.Minute}
	for _, f := range opts {
		f(&o)
	}
	key := "sk_test_" + strings.NewReplacer("/", "_", " ", "_", "-", "_").Replace(t.Name()) + fmt.Sprint(time.Now().UnixNano())
	o.fake.SecretKey = key
	fake := clerkfake.New(o.fake)
	t.Cleanup(func() { _ = fake.Close() }) // stops its webhook sender, if any
	var h http.Handler = fake
	if o.wrap != nil {
		h = o.wrap(fake)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	hs := &harness{t: t, g: NewWithT(t), fake: fake, srv: srv}
	hs.g.SetDefaultEventuallyTimeout(testTimeout)
	hs.g.SetDefaultEventuallyPollingInterval(testPoll)
	hs.g.SetDefaultConsistentlyDuration(2 * time.Second)
	hs.g.SetDefaultConsistentlyPollingInterval(testPoll)
	var err error
	hs.api, err = clerk.New(clerk.Options{BaseURL: srv.URL + "/v1", SecretKey: key, RequestsPerSecond: 1000, Burst: 1000})
	hs.g.Expect(err).NotTo(HaveOccurred())
	hs.mgrAPI = hs.api
	if o.metrics {
		// The manager's own client reports to the metrics; the test's out-of-band one does not.
		hs.metrics, hs.registry = metrics.New(), prometheus.NewRegistry()
		hs.g.Expect(hs.metrics.Register(hs.registry, "v-test", "c-test")).To(Succeed())
		hs.mgrAPI, err = clerk.New(clerk.Options{BaseURL: srv.URL + "/v1", SecretKey: key, RequestsPerSecond: 1000, Burst: 1000,
			Observer: hs.metrics.Client(metrics.DefaultInstance)})
		hs.g.Expect(err).NotTo(HaveOccurred())
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	hs.g.Expect(k8sClient.Create(context.Background(), ns)).To(Succeed())
	hs.ns = ns.Name
	hs.mgrNS = ns.Name
	if o.managerNS {
		m := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "mgr-"}}
		hs.g.Expect(k8sClient.Create(context.Background(), m)).To(Succeed())
		hs.mgrNS = m.Name
	}

	hs.opts = o
	hs.start()
	return hs
}

// start starts a manager for the harness namespace; it stops with the test or with stop.
func (h *harness) start() {
	h.t.Helper()
	o := h.opts
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{h.ns: {}},
			// The manager's Secret cache.
			ByObject:         map[client.Object]cache.ByObject{&corev1.Secret{}: SecretCache(h.mgrNS, true)},
			DefaultTransform: TrimForCache},
		// Every test has its own manager in this process; the controller name repeats.
		Controller: config.Controller{SkipNameValidation: new(true)},
	})
	h.g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	var observer observe.Observer = &observe.Batch{Clerk: h.mgrAPI, MaxAge: o.syncPeriod}
	if o.perObject {
		observer = observe.PerObject{Clerk: h.mgrAPI}
	}
	var own ClerkAPI = h.mgrAPI
	if o.noOwnKey {
		own, observer = nil, &observe.Batch{MaxAge: o.syncPeriod}
	}
	if h.clients == nil {
		h.clients = &instance.Clients{Metrics: h.metrics}
	}
	// Events go through the manager's recorder, which outlives the manager as in cmd/manager.
	rec, err := recorder.NewForConfig(restCfg, mgr.GetHTTPClient(), scheme, "kubeclerk", logf.Log.WithName("events"))
	h.g.Expect(err).NotTo(HaveOccurred())
	stopRecorder := rec.Background()
	r := &ClerkUserReconciler{
		Clients:                 h.clients,
		Client:                  mgr.GetClient(),
		Clerk:                   own,
		Observer:                observer,
		Metrics:                 h.metrics,
		DeletionBrake:           NewDeletionBrake(o.maxDeletionsPerMinute, logf.Log.WithName("brake")),
		Recorder:                rec,
		SyncPeriod:              o.syncPeriod,
		MaxConcurrentReconciles: max(2, o.workers),
	}
	h.g.Expect(r.SetupWithManager(ctx, mgr)).To(Succeed())
	h.reconciler = r
	// ClerkInstances' Secrets live in the manager's namespace.
	h.g.Expect((&ClerkInstanceReconciler{Client: mgr.GetClient(), Clients: h.clients, Namespace: h.mgrNS,
		ProbePeriod: o.syncPeriod}).SetupWithManager(ctx, mgr)).To(Succeed())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("manager: %v", err)
			}
			if err := stopRecorder(); err != nil {
				h.t.Errorf("event recorder: %v", err)
			}
		})
	}
	h.t.Cleanup(h.stop)
	if !o.perObject && !o.noOwnKey {
		// The batched observer's first poll (how many users, where changes stand) comes first.
		lists := h.calls("GET /v1/users")
		h.g.Eventually(func() int64 { return h.calls("GET /v1/users") }).Should(BeNumerically(">", lists))
	}
}

func perObject(o *harnessOptions) { o.perObject = true }

func withManagerNamespace(o *harnessOptions) { o.managerNS = true }

func withoutOwnKey(o *harnessOptions) { o.noOwnKey = true }

func withMetrics(o *harnessOptions) { o.metrics = true }

func withWorkers(n int) func(*harnessOptions) {
	return func(o *harnessOptions) { o.workers = n }
}

func withDeletionBrake(perMinute int) func(*harnessOptions) {
	return func(o *harnessOptions) { o.maxDeletionsPerMinute = perMinute }
}

func withSyncPeriod(d time.Duration) func(*harnessOptions) {
	return func(o *harnessOptions) { o.syncPeriod = d }
}

func withWrap(w func(http.Handler) http.Handler) func(*harnessOptions) {
	return func(o *harnessOptions) { o.wrap = w }
}

// apply creates a ClerkUser in the harness namespace from a spec.
func (h *harness) apply(name string, spec clerkv1alpha1.ClerkUserSpec) {
	h.t.Helper()
	obj := &clerkv1alpha1.ClerkUser{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns}, Spec: spec}
	h.g.Expect(k8sClient.Create(context.Background(), obj)).To(Succeed())
}

// get reads a ClerkUser of the harness namespace.
func (h *harness) get(name string) *clerkv1alpha1.ClerkUser {
	h.t.Helper()
	obj := &clerkv1alpha1.ClerkUser{}
	h.g.Expect(k8sClient.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: name}, obj)).To(Succeed())
	return obj
}

// update changes a ClerkUser's spec, retrying on conflicts with the manager's writes.
func (h *harness) update(name string, mutate func(*clerkv1alpha1.ClerkUserSpec)) {
	h.t.Helper()
	h.g.Eventually(func() error {
		obj := &clerkv1alpha1.ClerkUser{}
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: name}, obj); err != nil {
			return err
		}
		mutate(&obj.Spec)
		return k8sClient.Update(context.Background(), obj)
	}).Should(Succeed())
}

// waitReady waits until the object's Ready condition has the given status and reason for its
// current generation, and returns the object.
func (h *harness) waitCondition(name string, status metav1.ConditionStatus, reason string) *clerkv1alpha1.ClerkUser {
	h.t.Helper()
	var obj *clerkv1alpha1.ClerkUser
	h.g.Eventually(func(g Gomega) {
		obj = &clerkv1alpha1.ClerkUser{}
		g.Expect(k8sClient.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: name}, obj)).To(Succeed())
		c := meta.FindStatusCondition(obj.Status.Conditions, ConditionReady)
		g.Expect(c).NotTo(BeNil(), "no Ready condition yet")
		g.Expect(c.ObservedGeneration).To(Equal(obj.Generation), "Ready is for an older generation")
		g.Expect(c.Reason).To(Equal(reason), "Ready reason (message: %s)", c.Message)
		g.Expect(c.Status).To(Equal(status))
	}).Should(Succeed())
	return obj
}

func (h *harness) waitSynced(name string) *clerkv1alpha1.ClerkUser {
	h.t.Helper()
	return h.waitCondition(name, metav1.ConditionTrue, ReasonSynced)
}

// clerkUser reads a user straight from the fake's store (not counted in its stats).
func (h *harness) clerkUser(id string) map[string]any {
	h.t.Helper()
	raw, ok := h.fake.User(id)
	h.g.Expect(ok).To(BeTrue(), "Clerk user %s does not exist", id)
	var u map[string]any
	h.g.Expect(json.Unmarshal(raw, &u)).To(Succeed())
	return u
}

// seed creates a Clerk user out of band and returns its ID.
func (h *harness) seed(p clerk.CreateUserParams) string {
	h.t.Helper()
	p.SkipPasswordRequirement = true
	u, err := h.api.CreateUser(context.Background(), p)
	h.g.Expect(err).NotTo(HaveOccurred())
	return u.ID
}

// calls counts the requests the fake answered for a route template, e.g. "GET /v1/users".
func (h *harness) calls(route string) int64 { return h.fake.Stats().Count(route) }

// reads counts every read the fake answered: by ID, and lists (lookups, batches, polls, counts).
func (h *harness) reads() int64 { return h.fake.Stats().Reads() }

// writes counts every write request the fake answered.
func (h *harness) writes() int64 { return h.fake.Stats().Writes() }

// events returns the reasons of the Events recorded for a ClerkUser.
func (h *harness) events(name string) []string {
	h.t.Helper()
	var list eventsv1.EventList
	h.g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(h.ns))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

// gone reports whether the ClerkUser no longer exists.
func (h *harness) gone(name string) func() bool {
	return func() bool {
		err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: name}, &clerkv1alpha1.ClerkUser{})
		return apierrors.IsNotFound(err)
	}
}

func zapLevel() int8 {
	if os.Getenv("KUBECLERK_TEST_VERBOSE") != "" {
		return -5
	}
	return 4 // quiet: the tests that inject Clerk faults make the reconciler log errors on purpose
}
