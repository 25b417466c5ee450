package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

// controlPlane is an envtest kube-apiserver and etcd with the ClerkUser CRD installed, whose
// certificates and data live in fixed directories so that the apiserver can be restarted.
type controlPlane struct {
	env        *envtest.Environment
	cfg        *rest.Config
	kubeconfig string
	logs       []*os.File
}

// startControlPlane starts envtest (binaries from KUBEBUILDER_ASSETS) with its directories,
// logs and a cluster-admin kubeconfig in dir.
func startControlPlane(crdDir, dir string) (*controlPlane, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run 'make chaos', which builds or finds kube-apiserver and etcd")
	}
	cp := &controlPlane{}
	for _, sub := range []string{"apiserver", "etcd"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	apiLog, err := os.Create(filepath.Join(dir, "kube-apiserver.log"))
	if err != nil {
		return nil, err
	}
	etcdLog, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	cp.logs = []*os.File{apiLog, etcdLog}
	cp.env = &envtest.Environment{
		ControlPlane: envtest.ControlPlane{
			APIServer: &envtest.APIServer{CertDir: filepath.Join(dir, "apiserver"), Out: apiLog, Err: apiLog},
			Etcd:      &envtest.Etcd{DataDir: filepath.Join(dir, "etcd"), Out: etcdLog, Err: etcdLog},
		},
		CRDDirectoryPaths:        []string{crdDir},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		// A graceful stop of kube-apiserver waits for its requests and watches to end.
		ControlPlaneStopTimeout: 2 * time.Minute,
	}
	if _, err := cp.env.Start(); err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	user, err := cp.env.AddUser(envtest.User{Name: "kubeclerk-chaos", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		cp.stop()
		return nil, fmt.Errorf("add envtest user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		cp.stop()
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cp.cfg = rest.CopyConfig(user.Config())
	cp.cfg.QPS, cp.cfg.Burst = 1000, 2000
	cp.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(cp.kubeconfig, kc, 0o600); err != nil {
		cp.stop()
		return nil, err
	}
	return cp, nil
}

// restartAPIServer stops kube-apiserver and starts it again on the same port, certificates and
// etcd. It returns how long the API was away. The stop is SIGTERM, then SIGKILL after
// apiServerGrace: a lone envtest kube-apiserver otherwise waits a minute for its requests to
// drain, where a cluster would have another apiserver to answer meanwhile.
func (cp *controlPlane) restartAPIServer(ctx context.Context) (time.Duration, error) {
	t := time.Now()
	s := cp.env.ControlPlane.APIServer
	if pid := findProcess("kube-apiserver", "--cert-dir="+s.CertDir); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(apiServerGrace)
		for processAlive(pid) && time.Now().Before(deadline) {
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return 0, err
			}
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := s.Stop(); err != nil {
		return 0, fmt.Errorf("stop kube-apiserver: %w", err)
	}
	if err := s.Start(); err != nil {
		return time.Since(t), fmt.Errorf("start kube-apiserver again: %w", err)
	}
	return time.Since(t), nil
}

func (cp *controlPlane) stop() {
	if err := cp.env.Stop(); err != nil {
		logf("stop envtest: %v", err)
	}
	for _, f := range cp.logs {
		_ = f.Close()
	}
}

func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := clerkv1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// ensureNamespaces creates the namespaces.
func ensureNamespaces(ctx context.Context, c client.Client, names ...string) error {
	for _, n := range names {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}
		if err := client.IgnoreAlreadyExists(c.Create(ctx, ns)); err != nil {
			return fmt.Errorf("create namespace %s: %w", n, err)
		}
	}
	return nil
}

// objState is what the watcher knows of one ClerkUser.
type objState struct {
	generation int64
	converged  bool
	ready      string // the Ready condition, for progress reports
}

// watcher follows the ClerkUsers of a namespace through an informer (which lists and watches
// again by itself after the apiserver comes back).
type watcher struct {
	mu      sync.Mutex
	objs    map[string]objState
	changed chan struct{}
}

func (w *watcher) observe(obj any) {
	cu, ok := obj.(*clerkv1alpha1.ClerkUser)
	if !ok {
		return
	}
	st := objState{generation: cu.Generation, converged: converged(cu)}
	if !st.converged {
		st.ready = fmt.Sprintf("generation %d, observed %d", cu.Generation, cu.Status.ObservedGeneration)
		if !cu.DeletionTimestamp.IsZero() {
			st.ready += ", deleting"
		}
		for _, c := range cu.Status.Conditions {
			if c.Type == conditionReady {
				st.ready += fmt.Sprintf(", Ready=%s %s since %s: %.150s", c.Status, c.Reason, c.LastTransitionTime.Format("15:04:05"), c.Message)
			}
		}
	}
	w.mu.Lock()
	w.objs[cu.Name] = st
	w.mu.Unlock()
	w.signal()
}

func (w *watcher) forget(obj any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	cu, ok := obj.(*clerkv1alpha1.ClerkUser)
	if !ok {
		return
	}
	w.mu.Lock()
	delete(w.objs, cu.Name)
	w.mu.Unlock()
	w.signal()
}

func (w *watcher) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// progress says how many of want are converged at a generation above minGen (0: any), and
// how many of gone still exist.
func (w *watcher) progress(want map[string]int64, gone []string) (done, pending int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, minGen := range want {
		s, ok := w.objs[name]
		if ok && s.converged && s.generation >= minGen {
			done++
		} else {
			pending++
		}
	}
	for _, name := range gone {
		if _, ok := w.objs[name]; ok {
			pending++
		} else {
			done++
		}
	}
	return done, pending
}

// pending describes up to n objects of want that are not converged, and of gone that exist.
func (w *watcher) pending(want map[string]int64, gone []string, n int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if len(out) == n {
			return out
		}
		s, ok := w.objs[name]
		switch {
		case !ok:
			out = append(out, name+": not in the cache")
		case !s.converged || s.generation < want[name]:
			out = append(out, name+": "+s.ready)
		}
	}
	for _, name := range gone {
		if s, ok := w.objs[name]; ok && len(out) < n {
			out = append(out, name+" (deleted): "+s.ready)
		}
	}
	return out
}

// startWatcher starts an informer on ClerkUsers in namespace feeding a watcher.
func startWatcher(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, namespace string) (*watcher, error) {
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, DefaultNamespaces: map[string]cache.Config{namespace: {}}})
	if err != nil {
		return nil, err
	}
	go func() {
		if err := c.Start(ctx); err != nil && ctx.Err() == nil {
			logf("watcher: %v", err)
		}
	}()
	inf, err := c.GetInformer(ctx, &clerkv1alpha1.ClerkUser{})
	if err != nil {
		return nil, err
	}
	w := &watcher{objs: map[string]objState{}, changed: make(chan struct{}, 1)}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    w.observe,
		UpdateFunc: func(_, obj any) { w.observe(obj) },
		DeleteFunc: w.forget,
	})
	if err != nil {
		return nil, err
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return nil, errors.New("watcher cache did not sync")
	}
	return w, nil
}

// retry runs f until it succeeds, for up to timeout: Kubernetes calls made while the apiserver
// restarts fail for a while.
func retry(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// apiServerGrace is how long a stopping kube-apiserver may drain before it is killed.
const apiServerGrace = 5 * time.Second

// findProcess returns the pid of a running process whose command line holds name and arg,
// or 0.
func findProcess(name, arg string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmd := strings.Split(string(b), "\x00")
		if len(cmd) > 0 && filepath.Base(cmd[0]) == name && slices.Contains(cmd, arg) {
			return pid
		}
	}
	return 0
}

// processAlive reports whether pid runs (a zombie counts as gone).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, state, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(state, "Z")
}
