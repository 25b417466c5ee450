// Command kubeclerk-demo runs the whole of kubeclerk on one machine: a local Kubernetes control
// plane (the kube-apiserver and etcd that envtest uses), the fake Clerk API seeded with a few
// users, the CRDs, the manager (bin/manager), the objects in config/samples and the tenant setup
// of config/samples/tenant (a ClerkInstance with its Secret, pointed at the fake, and a tenant
// namespace with one ClerkUser its policy allows and one it refuses on purpose). It shows each
// ClerkUser's READY/REASON, what the fake Clerk holds for its user and the Clerk calls kubeclerk
// made while the users converge, shows the refused object with what to change, then reports
// changes until Ctrl-C and stops everything, leaving nothing behind.
//
//	make demo         # interactive; Ctrl-C stops it
//	make demo-check   # non-interactive: exit 0 once every sample is Ready, non-zero otherwise
//
// It runs from the repository root and needs KUBEBUILDER_ASSETS (or runs hack/envtest/build.sh).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

const (
	defaultClerkAddr = "127.0.0.1:8089"
	kubeAPIServer    = "kube-apiserver"
	etcd             = "etcd"
)

type options struct {
	check      bool
	timeout    time.Duration
	dir        string
	clerkAddr  string
	syncPeriod time.Duration
	namespace  string
	samples    string
	tenant     string
	seed       string
	crds       string
	manager    string
	keep       bool
	drift      bool
	webhooks   bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == shimArg {
		runShim(os.Args[2:])
	}
	var o options
	flag.BoolVar(&o.check, "check", false,
		"Non-interactive: exit 0 once every sample is Ready and Clerk holds what it declares "+
			"(and, with --check-drift, an out-of-band change was corrected), non-zero otherwise.")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Minute, "With --check: the time limit for the whole run.")
	flag.StringVar(&o.dir, "dir", "bin/demo", "Directory for the kubeconfig, logs and control-plane data; removed on exit.")
	flag.StringVar(&o.clerkAddr, "clerk-addr", "",
		"Listen address of the fake Clerk API. Default "+defaultClerkAddr+", or a free port when that one is taken.")
	flag.DurationVar(&o.syncPeriod, "sync-period", 10*time.Second,
		"The manager's --sync-period: how soon out-of-band changes in Clerk are corrected.")
	flag.StringVar(&o.namespace, "namespace", "default", "Namespace for the samples.")
	flag.StringVar(&o.samples, "samples", "config/samples", "Kustomization with the ClerkUser objects to apply.")
	flag.StringVar(&o.tenant, "tenant", "config/samples/tenant",
		"Kustomization with a ClerkInstance, its Secret and a tenant namespace with ClerkUsers bound to it; applied with "+
			"the instance pointed at the fake Clerk API. Empty: none.")
	flag.StringVar(&o.seed, "seed", "hack/demo/clerk-users.json", "Users the fake Clerk API starts with.")
	flag.StringVar(&o.crds, "crds", "config/crd/bases", "Directory with the CRDs.")
	flag.StringVar(&o.manager, "manager", "bin/manager", "The manager binary (make build).")
	flag.BoolVar(&o.keep, "keep", false, "Keep --dir (logs, kubeconfig) after stopping.")
	flag.BoolVar(&o.drift, "check-drift", true,
		"With --check: also unban a banned sample's user behind kubeclerk's back and wait until it is banned again.")
	flag.BoolVar(&o.webhooks, "webhooks", true,
		"The fake Clerk API sends Svix-signed webhooks (user.created/updated/deleted) to the manager, which corrects "+
			"out-of-band changes at once; false: polling only, within the sync period.")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kubeclerk-demo: unexpected arguments %v\n", flag.Args())
		os.Exit(2)
	}
	os.Exit(run(o, os.Stdout))
}

// demo is one run: the processes it started and how to reach them.
type demo struct {
	o     options
	out   io.Writer
	dir   string // absolute
	start time.Time

	assets     string
	fake       *fakeClerk
	env        *envtest.Environment
	kubeconfig string
	kubectl    string
	manager    *child
	// metricsAddr is where the manager serves its metrics (plain HTTP, for the demo only).
	metricsAddr  string
	managerStart time.Time
	// webhookAddr is where the manager serves Clerk webhooks ("" with --webhooks=false);
	// webhookSecret, in webhookSecretFile, signs the fake Clerk's events to its default route.
	webhookAddr, webhookSecret, webhookSecretFile string
	// instanceWebhookSecret is the tenant ClerkInstance's signing secret (spec.webhookSecretRef).
	instanceWebhookSecret string
	client                client.Client
	samples               []string // ClerkUsers that must converge: name in --namespace, namespace/name elsewhere
	refused               []string // ClerkUsers their ClerkInstance must refuse (NotAllowed), as samples
	instances             []string // ClerkInstances that must be Ready (Connected)
	tenant                *tenantPlan
	logFiles              []*os.File

	stopOnce sync.Once
}

func (d *demo) path(name string) string { return filepath.Join(d.dir, name) }

// printf writes to the demo's output; a terminal that went away is no reason to stop cleaning up.
func (d *demo) printf(format string, a ...any) { _, _ = fmt.Fprintf(d.out, format, a...) }

// rel shows path relative to the working directory when it is inside it.
func rel(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	if r, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

func run(o options, out io.Writer) int {
	ctrllog.SetLogger(logr.Discard())
	d := &demo{o: o, out: out, start: time.Now()}
	mode := "demo"
	if o.check {
		mode = "demo-check"
	}

	// The first Ctrl-C (or SIGTERM) stops the demo in order; another one, 3 s later, kills everything.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		var first time.Time
		for range sigs {
			if first.IsZero() {
				first = time.Now()
				cancel()
				continue
			}
			if time.Since(first) > 3*time.Second {
				fmt.Fprintln(os.Stderr, "\nkubeclerk-demo: killing everything now")
				d.forceKill()
				os.Exit(130)
			}
		}
	}()

	err := d.startAll(ctx)
	if err == nil {
		if o.check {
			err = d.check(ctx)
		} else {
			err = d.interactive(ctx)
		}
	}
	if errors.Is(err, context.Canceled) || ctx.Err() != nil && err != nil && !o.check {
		err = nil // Ctrl-C is how the interactive demo ends
	}
	if err != nil {
		d.printf("\n%s: FAILED: %v\n", mode, err)
		d.showLogs()
	}
	d.stopAll()
	if err != nil {
		return 1
	}
	if ctx.Err() != nil && o.check {
		d.printf("%s: interrupted\n", mode)
		return 130
	}
	return 0
}

// startAll starts the fake Clerk API, the control plane and the manager, and applies the samples.
func (d *demo) startAll(ctx context.Context) error {
	for _, p := range []string{d.o.samples, d.o.tenant, d.o.seed, d.o.crds} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s not found: run the demo from the repository root (make demo)", p)
		}
	}
	if _, err := os.Stat(d.o.manager); err != nil {
		return fmt.Errorf("%s not found: build it with make build (make demo does)", d.o.manager)
	}
	mgrBin, err := filepath.Abs(d.o.manager)
	if err != nil {
		return err
	}
	if err := d.prepareDir(); err != nil {
		return err
	}
	d.printf("kubeclerk demo: everything runs on this machine; kubeconfig and logs are in %s/\n\n", rel(d.dir))

	if d.assets, err = envtestAssets(ctx); err != nil {
		return err
	}

	// 1. The fake Clerk API.
	preferred := d.o.clerkAddr
	if preferred == "" {
		preferred = defaultClerkAddr
	}
	ln, moved, err := listenPreferred(ctx, preferred, d.o.clerkAddr == "")
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%s is in use: choose another address with make demo DEMO_CLERK_ADDR=127.0.0.1:PORT "+
				"(or --clerk-addr)", preferred)
		}
		return fmt.Errorf("fake Clerk API: %w", err)
	}
	reqLog, err := os.Create(d.path("clerk-requests.log"))
	if err != nil {
		_ = ln.Close()
		return err
	}
	d.logFiles = append(d.logFiles, reqLog)
	var hookURL string
	if d.o.webhooks {
		// The manager's webhook port is picked now, so that the fake knows where to send events;
		// those sent before the manager listens are retried a few times, then dropped (the sync
		// period corrects what they would have).
		if hookURL, err = d.setupWebhooks(ctx); err != nil {
			_ = ln.Close()
			return err
		}
	}
	if d.fake, err = startFakeClerk(ln, d.o.seed, reqLog, hookURL, d.webhookSecret); err != nil {
		_ = ln.Close()
		return fmt.Errorf("fake Clerk API: %w", err)
	}
	d.printf("  fake Clerk API   %s  (key %s; %d users from %s; calls logged to %s)\n",
		d.fake.apiURL(), clerkfake.DefaultSecretKey, d.fake.srv.UserCount(), d.o.seed, rel(d.path("clerk-requests.log")))
	if moved {
		d.printf("                   port %s is taken, so it uses %s; to choose one: make demo DEMO_CLERK_ADDR=127.0.0.1:PORT\n",
			strings.TrimPrefix(preferred, "127.0.0.1:"), d.fake.addr)
	}
	if hookURL != "" {
		d.printf("  webhooks         %s  (fake Clerk signs with the secret in %s; every change of a user, "+
			"through the API too, is sent as user.created/updated/deleted)\n", hookURL, rel(d.webhookSecretFile))
	} else {
		d.printf("  webhooks         off (--webhooks=false): out-of-band changes are corrected by polling, every %s\n",
			d.o.syncPeriod)
	}

	// 2. The control plane, with the CRDs.
	if err := d.startControlPlane(ctx); err != nil {
		return err
	}

	// 3. The manager, with its namespace, where ClerkInstances' Secrets live.
	if err := d.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}}); err != nil {
		return fmt.Errorf("create the manager's namespace %s: %w", managerNamespace, err)
	}
	if err := d.startManager(ctx, mgrBin); err != nil {
		return err
	}

	// 4. The samples.
	if err := d.applySamples(ctx); err != nil {
		return err
	}
	if d.o.tenant == "" {
		return nil
	}
	return d.applyTenant(ctx)
}

// envtestAssets is KUBEBUILDER_ASSETS, or what hack/envtest/build.sh builds or finds.
func envtestAssets(ctx context.Context) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		cmd := exec.CommandContext(ctx, "bash", "hack/envtest/build.sh")
		cmd.Stderr = os.Stderr
		outB, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("hack/envtest/build.sh: %w", err)
		}
		lines := strings.Split(strings.TrimSpace(string(outB)), "\n")
		dir = lines[len(lines)-1]
	}
	for _, b := range []string{kubeAPIServer, etcd, "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("no %s in %s (KUBEBUILDER_ASSETS): run make envtest-assets", b, dir)
		}
	}
	return dir, nil
}

// prepareDir creates the demo directory, replacing what a previous run left (unless that run is
// still going).
func (d *demo) prepareDir() error {
	dir, err := filepath.Abs(d.o.dir)
	if err != nil {
		return err
	}
	d.dir = dir
	if b, err := os.ReadFile(filepath.Join(dir, "demo.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != os.Getpid() && processAlive(pid) {
			return fmt.Errorf("another demo (pid %d) is using %s: stop it with Ctrl-C in its terminal, "+
				"or run this one elsewhere with --dir", pid, rel(dir))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the previous run's %s: %w", rel(dir), err)
	}
	for _, sub := range []string{"pids", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	// Temporary files of envtest and of the processes started here go into the directory too, so
	// that removing it removes them, even after a crash.
	_ = os.Setenv("TMPDIR", filepath.Join(dir, "tmp"))
	return os.WriteFile(filepath.Join(dir, "demo.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
}

func (d *demo) startControlPlane(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	shims := d.path("shims")
	if err := os.MkdirAll(shims, 0o700); err != nil {
		return err
	}
	for _, b := range []string{kubeAPIServer, etcd} {
		if err := writeShim(filepath.Join(shims, b), self, filepath.Join(d.assets, b)); err != nil {
			return err
		}
	}
	// The shims read these; the control plane's processes inherit the demo's environment.
	_ = os.Setenv(envShimParent, strconv.Itoa(os.Getpid()))
	_ = os.Setenv(envShimPidDir, d.path("pids"))

	apiLog, err := os.Create(d.path("kube-apiserver.log"))
	if err != nil {
		return err
	}
	etcdLog, err := os.Create(d.path("etcd.log"))
	if err != nil {
		return err
	}
	d.logFiles = append(d.logFiles, apiLog, etcdLog)
	for _, sub := range []string{"apiserver", "etcd"} {
		if err := os.MkdirAll(d.path(sub), 0o700); err != nil {
			return err
		}
	}
	d.env = &envtest.Environment{
		ControlPlane: envtest.ControlPlane{
			APIServer: &envtest.APIServer{Path: filepath.Join(shims, kubeAPIServer), CertDir: d.path("apiserver"),
				Out: apiLog, Err: apiLog},
			Etcd:        &envtest.Etcd{Path: filepath.Join(shims, etcd), DataDir: d.path("etcd"), Out: etcdLog, Err: etcdLog},
			KubectlPath: filepath.Join(d.assets, "kubectl"),
		},
		CRDDirectoryPaths:        []string{d.o.crds},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  20 * time.Second,
	}
	t0 := time.Now()
	cfg, err := d.env.Start()
	if err != nil {
		return fmt.Errorf("start the control plane (kube-apiserver and etcd from %s): %w", d.assets, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	d.kubeconfig = d.path("kubeconfig")
	if err := os.WriteFile(d.kubeconfig, d.env.KubeConfig, 0o600); err != nil {
		return err
	}
	d.kubectl = d.path("kubectl")
	if err := os.Symlink(filepath.Join(d.assets, "kubectl"), d.kubectl); err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = clerkv1alpha1.AddToScheme(scheme)
	if d.client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	d.printf("  control plane    %s  (kube-apiserver and etcd from %s; up in %s)\n",
		cfg.Host, d.assets, time.Since(t0).Round(100*time.Millisecond))
	d.printf("  kubeconfig       %s  (kubectl: %s)\n", rel(d.kubeconfig), rel(d.kubectl))
	names := make([]string, 0, len(d.env.CRDs))
	for _, c := range d.env.CRDs {
		names = append(names, c.GetName())
	}
	d.printf("  CRD              %s\n", strings.Join(names, ", "))
	return nil
}

func (d *demo) startManager(ctx context.Context, bin string) error {
	probe, err := freeLocalAddr(ctx)
	if err != nil {
		return err
	}
	if d.metricsAddr, err = freeLocalAddr(ctx); err != nil {
		return err
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "CLERK_SECRET_KEY=") ||
			strings.HasPrefix(kv, envShimParent+"=") || strings.HasPrefix(kv, envShimPidDir+"=")
	})
	env = append(env, "CLERK_SECRET_KEY="+clerkfake.DefaultSecretKey)
	args := []string{
		"--kubeconfig", d.kubeconfig,
		"--clerk-api-url", d.fake.apiURL(),
		"--sync-period", d.o.syncPeriod.String(),
		"--cluster-resource-namespace", managerNamespace,
		"--metrics-bind-address", d.metricsAddr,
		"--metrics-secure=false",
		"--health-probe-bind-address", probe,
	}
	if d.webhookAddr != "" {
		args = append(args, "--webhook-bind-address", d.webhookAddr, "--clerk-webhook-secret-file", d.webhookSecretFile)
	}
	d.managerStart = time.Now()
	if d.manager, err = startChild(ctx, "manager", d.path("manager.log"), env, bin, args...); err != nil {
		return err
	}
	d.printf("  namespace        %s created: the manager's (--cluster-resource-namespace), for ClerkInstances' Secrets\n",
		managerNamespace)
	d.printf("  manager          %s %s\n", rel(bin), strings.Join(args, " "))
	d.printf("                   (CLERK_SECRET_KEY=%s; pid %d; log %s)\n",
		clerkfake.DefaultSecretKey, d.manager.cmd.Process.Pid, rel(d.manager.log))
	d.printf("  metrics          http://%s/metrics (plain HTTP for the demo: kubeclerk_clerk_requests_total, ...)\n",
		d.metricsAddr)

	// Wait until it answers its readiness probe.
	deadline := time.Now().Add(60 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+probe+"/readyz", nil)
		if resp, err := hc.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		switch {
		case d.manager.exited():
			return fmt.Errorf("the manager exited at start (%w)", d.manager.err)
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return errors.New("the manager did not become ready within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kubectlArgs are args for the demo's kubectl, with its kubeconfig and cache.
func (d *demo) kubectlArgs(args ...string) []string {
	return append([]string{"--kubeconfig", d.kubeconfig, "--cache-dir", d.path("kube-cache")}, args...)
}

// applySamples runs kubectl apply -k on the samples and remembers the names it applied.
func (d *demo) applySamples(ctx context.Context) error {
	args := d.kubectlArgs("apply", "-k", d.o.samples, "-n", d.o.namespace)
	d.printf("  samples          kubectl apply -k %s -n %s\n", d.o.samples, d.o.namespace)
	cmd := exec.CommandContext(ctx, d.kubectl, args...)
	outB, err := cmd.CombinedOutput()
	for l := range strings.SplitSeq(strings.TrimSpace(string(outB)), "\n") {
		d.printf("                   %s\n", l)
		// "clerkuser.clerk.kubeclerk.dev/alice created"
		if kind, rest, ok := strings.Cut(l, "/"); ok && strings.HasPrefix(kind, "clerkuser.") {
			name, _, _ := strings.Cut(rest, " ")
			d.samples = append(d.samples, name)
		}
	}
	if err != nil {
		return fmt.Errorf("kubectl apply -k %s: %w", d.o.samples, err)
	}
	if len(d.samples) == 0 {
		return fmt.Errorf("kubectl apply -k %s applied no ClerkUser", d.o.samples)
	}
	d.printf("\n")
	return nil
}

// snapshot is the state of every ClerkUser in the samples' namespaces (--namespace first, each
// sorted by name) and of every ClerkInstance. Views and objs are keyed by the object's name in
// --namespace, by namespace/name elsewhere.
type snapshot struct {
	objs      map[string]*clerkv1alpha1.ClerkUser
	views     []userView
	instances []instanceView
	kubeclerk callCounts
	others    callCounts
}

// displayName is how the demo names a ClerkUser: its name in --namespace, namespace/name elsewhere.
func (d *demo) displayName(o *clerkv1alpha1.ClerkUser) string {
	if o.Namespace == d.o.namespace {
		return o.Name
	}
	return o.Namespace + "/" + o.Name
}

func (d *demo) snapshot(ctx context.Context) (*snapshot, error) {
	namespaces := []string{d.o.namespace}
	if d.tenant != nil {
		for _, ns := range d.tenant.Namespaces {
			if !slices.Contains(namespaces, ns) {
				namespaces = append(namespaces, ns)
			}
		}
	}
	s := &snapshot{objs: map[string]*clerkv1alpha1.ClerkUser{}}
	for _, ns := range namespaces {
		var list clerkv1alpha1.ClerkUserList
		if err := d.client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		slices.SortFunc(list.Items, func(a, b clerkv1alpha1.ClerkUser) int { return strings.Compare(a.Name, b.Name) })
		for i := range list.Items {
			o := &list.Items[i]
			v := newUserViewOf(o, d.appliedSpec(ctx, o), d.fake.user(o.Status.UserID))
			v.Name = d.displayName(o)
			s.objs[v.Name] = o
			s.views = append(s.views, v)
		}
	}
	if d.tenant != nil {
		var list clerkv1alpha1.ClerkInstanceList
		if err := d.client.List(ctx, &list); err != nil {
			return nil, err
		}
		for i := range list.Items {
			s.instances = append(s.instances, newInstanceView(&list.Items[i]))
		}
	}
	s.kubeclerk, s.others = d.fake.calls()
	return s, nil
}

// appliedSpec is o's spec as kubeclerk applies it: with the private metadata of
// spec.privateMetadataFrom's Secret merged in. When that Secret cannot be used, o's own spec.
func (d *demo) appliedSpec(ctx context.Context, o *clerkv1alpha1.ClerkUser) *clerkv1alpha1.ClerkUserSpec {
	from := o.Spec.PrivateMetadataFrom
	if from == nil {
		return &o.Spec
	}
	value, err := d.secretValue(ctx, o.Namespace, from.SecretKeyRef)
	if err != nil {
		return &o.Spec
	}
	spec, err := withSecretMetadata(&o.Spec, value)
	if err != nil {
		return &o.Spec
	}
	return spec
}

// expect is what the demo waits for.
func (d *demo) expect() expectations {
	return expectations{samples: d.samples, refused: d.refused, instances: d.instances}
}

// pollSnapshots calls f with a new snapshot every 250 ms until it returns true or an error, the
// manager exits or ctx ends.
func (d *demo) pollSnapshots(ctx context.Context, deadline time.Time, f func(*snapshot) (bool, error)) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		s, err := d.snapshot(ctx)
		switch {
		case err != nil && ctx.Err() == nil && time.Now().After(deadline):
			return fmt.Errorf("list ClerkUsers: %w", err)
		case err == nil:
			done, err := f(s)
			if err != nil || done {
				return err
			}
		}
		if d.manager.exited() {
			return fmt.Errorf("the manager exited (%w)", d.manager.err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (d *demo) elapsed() string { return time.Since(d.start).Round(100 * time.Millisecond).String() }

// converge shows the table whenever it changes until every sample converged, the manager exits,
// ctx ends or deadline passes (zero: none; then a hint is shown once after hintAfter).
func (d *demo) converge(ctx context.Context, deadline time.Time) (*snapshot, error) {
	t0 := time.Now()
	var last string
	hinted := false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s, err := d.snapshot(ctx)
		if err != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("list ClerkUsers: %w", err)
		}
		if s != nil {
			var b strings.Builder
			renderTable(&b, s.views)
			renderInstances(&b, s.instances)
			renderCalls(&b, s.kubeclerk, s.others)
			if b.String() != last {
				d.printf("after %s:\n%s\n", d.elapsed(), b.String())
				last = b.String()
			}
			e := d.expect()
			pending := pendingOf(s.views, s.instances, e)
			if len(pending) == 0 {
				d.printf("All %d ClerkUsers are Ready and the fake Clerk holds what they declare "+
					"(%s after applying them; %s in all).\n", len(d.samples), time.Since(t0).Round(100*time.Millisecond), d.elapsed())
				if len(e.instances) > 0 {
					d.printf("ClerkInstance %s is Ready (Connected).\n", strings.Join(e.instances, ", "))
				}
				if len(e.refused) > 0 {
					d.printf("Refused on purpose by their ClerkInstance (NotAllowed, not counted above): %s; see below.\n",
						strings.Join(e.refused, ", "))
				}
				return s, nil
			}
			if !deadline.IsZero() && time.Now().After(deadline) {
				return s, fmt.Errorf("after %s, %d of %d samples, refused samples and ClerkInstances have not settled:\n  %s",
					d.elapsed(), len(pending), len(e.samples)+len(e.refused)+len(e.instances), strings.Join(pending, "\n  "))
			}
			if deadline.IsZero() && !hinted && time.Since(t0) > time.Minute {
				hinted = true
				d.printf("Still waiting after a minute for:\n  %s\nThe manager's log is %s.\n\n",
					strings.Join(pending, "\n  "), rel(d.manager.log))
			}
		}
		if d.manager.exited() {
			return s, fmt.Errorf("the manager exited (%w)", d.manager.err)
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-tick.C:
		}
	}
}

// check is demo-check: converge, then correct an out-of-band change, within the time limit.
func (d *demo) check(ctx context.Context) error {
	deadline := d.start.Add(d.o.timeout)
	s, err := d.converge(ctx, deadline)
	if err != nil {
		return err
	}
	if d.tenant != nil {
		d.printf("%s\n", d.tenantText(s))
		if err := d.checkTenant(ctx, s, deadline); err != nil {
			return err
		}
		if s, err = d.snapshot(ctx); err != nil {
			return err
		}
	}
	if d.o.drift {
		if err := d.checkDrift(ctx, s, deadline); err != nil {
			return err
		}
	}
	msg := fmt.Sprintf("all %d samples Ready", len(d.samples))
	if d.tenant != nil {
		var fixed []string
		for _, u := range d.tenant.Users {
			if u.Refusal != nil {
				fixed = append(fixed, u.key())
			}
		}
		msg += fmt.Sprintf(", ClerkInstance %s Connected", strings.Join(d.tenant.Instances, ", "))
		if len(fixed) > 0 {
			msg += fmt.Sprintf(", %s refused (NotAllowed) without a Clerk call, then Ready once fixed", strings.Join(fixed, ", "))
		}
	}
	d.printBudget(ctx)
	d.printf("\ndemo-check: OK: %s, in %s\n", msg, d.elapsed())
	return nil
}

// checkDrift unbans a banned sample's user through the fake Clerk API (as the demo tells users to
// with curl) and waits until kubeclerk bans it again.
func (d *demo) checkDrift(ctx context.Context, s *snapshot, deadline time.Time) error {
	var target *userView
	for i, v := range s.views {
		o := s.objs[v.Name]
		if o.Spec.Banned != nil && *o.Spec.Banned && !v.Observe && v.Clerk != nil {
			target = &s.views[i]
			break
		}
	}
	if target == nil {
		d.printf("No banned sample: skipping the out-of-band change.\n")
		return nil
	}
	wired := d.webhookAddr != ""
	expect := fmt.Sprintf("within the sync period (%s)", d.o.syncPeriod)
	if wired {
		expect = fmt.Sprintf("within about a second, as the fake Clerk's user.updated webhook reaches it (demo-check "+
			"wants it within %s; polling, every %s, is the safety net)", webhookLimit, d.o.syncPeriod)
	}
	d.printf("\nOut-of-band change: POST /v1/users/%s/unban (%s), as curl would; kubeclerk should ban it again %s.\n",
		target.UserID, target.Name, expect)
	const banRoute = "POST /v1/users/{user_id}/ban"
	kc0, _ := d.fake.calls()
	bans0 := kc0.countRoute(banRoute)
	events0 := d.webhookEventsNow(ctx)
	t0 := time.Now()
	if err := d.clerkCall(ctx, http.MethodPost, "/users/"+target.UserID+"/unban", ""); err != nil {
		return err
	}
	seenUnbanned := false
	// The fake is read in process, so a short tick costs nothing and times the correction closely.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		u := d.fake.user(target.UserID)
		kc, _ := d.fake.calls()
		bans := kc.countRoute(banRoute)
		switch {
		case u == nil:
			return fmt.Errorf("the fake Clerk lost user %s", target.UserID)
		case !u.Banned:
			seenUnbanned = true
		case seenUnbanned || bans > bans0:
			// Banned again: by kubeclerk (its ban call is counted once the fake applied it).
			took := time.Since(t0)
			events := d.webhookEventsNow(ctx)
			how, err := correction(took, wired, events.accepted-events0.accepted, d.o.syncPeriod)
			d.printf("Drift corrected: %s is banned again after %s (%s; %d ban calls in all).\n",
				target.Name, shortDuration(took), how, bans)
			if err != nil {
				return fmt.Errorf("%w; the fake Clerk's webhook deliveries: %+v", err, d.fake.srv.Stats().Webhooks)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was unbanned out of band %s ago and kubeclerk has not banned it again "+
				"(the sync period is %s; webhooks %s)", target.Name, time.Since(t0).Round(time.Second), d.o.syncPeriod,
				map[bool]string{true: "wired", false: "off"}[wired])
		}
		if d.manager.exited() {
			return fmt.Errorf("the manager exited (%w)", d.manager.err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// clerkCall makes one call to the fake Clerk API with the demo key, as a user's curl would.
func (d *demo) clerkCall(ctx context.Context, method, path, body string) error {
	req, err := http.NewRequestWithContext(ctx, method, d.fake.apiURL()+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+clerkfake.DefaultSecretKey)
	req.Header.Set("User-Agent", "kubeclerk-demo")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return nil
}

// interactive is make demo: converge, say what to try, report changes until Ctrl-C.
func (d *demo) interactive(ctx context.Context) error {
	s, err := d.converge(ctx, time.Time{})
	if err != nil {
		return err
	}
	d.printf("%s", d.tenantText(s))
	d.printBudget(ctx)
	d.printf("%s", d.tryText(s))
	return d.watch(ctx, s)
}

// watch prints what changes, one line each, until ctx ends or the manager exits.
func (d *demo) watch(ctx context.Context, prev *snapshot) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	inSync := true
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if d.manager.exited() {
			return fmt.Errorf("the manager exited (%w)", d.manager.err)
		}
		s, err := d.snapshot(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.printf("%s  (list ClerkUsers: %v)\n", time.Now().Format("15:04:05"), err)
			continue
		}
		for _, l := range diffSnapshots(prev, s) {
			d.printf("%s  %s\n", time.Now().Format("15:04:05"), l)
		}
		all := settled(s.views)
		if all && !inSync && len(s.views) > 0 {
			line := fmt.Sprintf("all %d ClerkUsers Ready and in sync with Clerk", len(s.views))
			if r := refusedNames(s.views); len(r) > 0 {
				line = fmt.Sprintf("all %d ClerkUsers Ready and in sync with Clerk, but for %s: NotAllowed",
					len(s.views)-len(r), strings.Join(r, ", "))
			}
			d.printf("%s  %s\n", time.Now().Format("15:04:05"), line)
		}
		inSync = all
		prev = s
	}
}

// diffSnapshots lists the changes from a to b: objects, Clerk users, and Clerk calls that wrote or failed.
func diffSnapshots(a, b *snapshot) []string {
	var out []string
	before := map[string]userView{}
	for _, v := range a.views {
		before[v.Name] = v
	}
	seen := map[string]bool{}
	for _, v := range b.views {
		seen[v.Name] = true
		old, ok := before[v.Name]
		if !ok {
			out = append(out, fmt.Sprintf("%-15s ClerkUser created", v.Name))
			old = userView{Name: v.Name, Generation: v.Generation}
		}
		for _, c := range changes(old, v) {
			out = append(out, fmt.Sprintf("%-15s %s", v.Name, c))
		}
	}
	for _, v := range a.views {
		if !seen[v.Name] {
			out = append(out, fmt.Sprintf("%-15s ClerkUser deleted", v.Name))
		}
	}
	if dk := b.kubeclerk.sub(a.kubeclerk); dk.hasWrites() {
		out = append(out, fmt.Sprintf("%-15s %s", "kubeclerk", callsLine(dk)))
	}
	if do := b.others.sub(a.others); len(do) > 0 {
		out = append(out, fmt.Sprintf("%-15s %s", "other client", callsLine(do)))
	}
	return out
}

// stopAll stops the manager, the fake Clerk API and the control plane, and removes the directory.
func (d *demo) stopAll() {
	d.stopOnce.Do(func() {
		t0 := time.Now()
		var stopped, problems []string
		if d.manager != nil {
			if err := d.manager.stop(15 * time.Second); err != nil {
				problems = append(problems, err.Error())
			}
			stopped = append(stopped, "the manager")
		}
		if d.fake != nil {
			d.fake.stop()
			stopped = append(stopped, "the fake Clerk API")
		}
		if d.env != nil {
			if err := d.env.Stop(); err != nil {
				problems = append(problems, "control plane: "+err.Error())
				d.killShimmed()
			}
			stopped = append(stopped, "the control plane")
		}
		for _, f := range d.logFiles {
			_ = f.Close()
		}
		msg := "Stopped " + strings.Join(stopped, ", ")
		if len(stopped) == 0 {
			msg = "Nothing was started"
		}
		switch {
		case d.dir == "":
		case d.o.keep:
			_ = os.Remove(filepath.Join(d.dir, "demo.pid"))
			msg += "; kept " + rel(d.dir)
		default:
			if err := os.RemoveAll(d.dir); err != nil {
				problems = append(problems, fmt.Sprintf("remove %s: %v", rel(d.dir), err))
			} else {
				msg += "; removed " + rel(d.dir)
			}
		}
		d.printf("\n%s (%s).\n", msg, time.Since(t0).Round(100*time.Millisecond))
		for _, p := range problems {
			d.printf("  problem: %s\n", p)
		}
	})
}

// killShimmed kills the control plane's processes that are still running.
func (d *demo) killShimmed() {
	if d.dir == "" {
		return
	}
	for _, pid := range shimPids(d.path("pids")) {
		if processAlive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// forceKill ends every process the demo started, at once, and removes the directory.
func (d *demo) forceKill() {
	d.manager.kill()
	d.killShimmed()
	if d.dir != "" && !d.o.keep {
		_ = os.RemoveAll(d.dir)
	}
}

// showLogs prints the end of the logs that explain a failure.
func (d *demo) showLogs() {
	if d.dir == "" {
		return
	}
	logs := []string{"manager.log"}
	if d.client == nil {
		logs = []string{"kube-apiserver.log", "etcd.log"}
	}
	for _, l := range logs {
		t := tailFile(d.path(l), 40)
		if t == "" {
			continue
		}
		d.printf("\nLast lines of %s:\n%s\n", rel(d.path(l)), t)
	}
	if !d.o.keep && d.manager != nil {
		d.printf("\n(Run again with DEMO_FLAGS=--keep to keep every log in %s.)\n", rel(d.dir))
	}
}
