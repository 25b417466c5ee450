package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

const benchNamespace = "bench"

// userID is the Clerk ID of seeded user i; ClerkUser i binds to it by spec.userID.
func userID(i int) string { return fmt.Sprintf("user_bench%07d", i) }

// objectName is the name of ClerkUser i; the new objects measured for latency are "new-…".
func objectName(i int) string { return fmt.Sprintf("u-%07d", i) }

// change is the single Clerk write each ClerkUser needs.
type change string

const (
	changeBan      change = "ban"      // spec banned: true on a user that is not banned: POST …/ban
	changeMetadata change = "metadata" // one publicMetadata key the user lacks: PATCH …/metadata
)

// seedUser is user i as the fake starts with it: not banned, without the managed key. With the
// drift phase on (drift) and -change ban it already holds publicMetadata.role = driftRole, which
// its ClerkUser then declares too, so that convergence still needs only the ban.
func seedUser(i int, c change, drift bool) map[string]any {
	md := map[string]any{"app": "kept"}
	if drift && c != changeMetadata {
		md["role"] = driftRole
	}
	return map[string]any{
		"id":              userID(i),
		"external_id":     fmt.Sprintf("bench-%07d", i),
		"first_name":      "Bench",
		"last_name":       fmt.Sprintf("User %d", i),
		"email_addresses": []map[string]any{{"email_address": fmt.Sprintf("bench-%07d@example.com", i)}},
		"public_metadata": md,
	}
}

// writeSeed writes users 0..n-1 as a JSON array for fakeclerk --seed.
func writeSeed(path string, n int, c change, drift bool) error {
	users := make([]map[string]any, n)
	for i := range users {
		users[i] = seedUser(i, c, drift)
	}
	b, err := json.Marshal(users)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// clerkUser is the ClerkUser bound to seeded user i that needs exactly one write. With the drift
// phase on (drift) it also declares what the out-of-band changes undo, all of which seeded user i
// already holds: the ban state (banned: false with -change metadata), publicMetadata.role =
// driftRole and mfa.disabled.
func clerkUser(name string, i int, c change, drift bool) *clerkv1alpha1.ClerkUser {
	cu := &clerkv1alpha1.ClerkUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: benchNamespace},
		Spec:       clerkv1alpha1.ClerkUserSpec{UserID: userID(i)},
	}
	switch c {
	case changeMetadata:
		cu.Spec.PublicMetadata = &apiextensionsv1.JSON{Raw: []byte(`{"role":"` + driftRole + `"}`)}
		if drift {
			cu.Spec.Banned = new(false)
		}
	default:
		cu.Spec.Banned = new(true)
		if drift {
			cu.Spec.PublicMetadata = &apiextensionsv1.JSON{Raw: []byte(`{"role":"` + driftRole + `"}`)}
		}
	}
	if drift {
		cu.Spec.MFA = &clerkv1alpha1.MFASpec{Disabled: true}
	}
	return cu
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

// createObjects creates ClerkUsers 0..n-1 with workers goroutines.
func createObjects(ctx context.Context, c client.Client, n, workers int, ch change, drift bool,
	progress func(done int)) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace}}
	if err := client.IgnoreAlreadyExists(c.Create(ctx, ns)); err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	var next, done atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := c.Create(ctx, clerkUser(objectName(i), i, ch, drift)); client.IgnoreAlreadyExists(err) != nil {
					errs <- fmt.Errorf("create ClerkUser %s: %w", objectName(i), err)
					return
				}
				if d := done.Add(1); progress != nil && d%500 == 0 {
					progress(int(d))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// converged reports whether cu is Ready=True with reason Synced for its current generation.
func converged(cu *clerkv1alpha1.ClerkUser) bool {
	if cu.Status.ObservedGeneration != cu.Generation {
		return false
	}
	for _, c := range cu.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == metav1.ConditionTrue && c.Reason == "Synced" && c.ObservedGeneration == cu.Generation
		}
	}
	return false
}

// watcher follows ClerkUsers through an informer and records when each first converged, and
// whether it still is.
type watcher struct {
	mu      sync.Mutex
	first   map[string]time.Time // name → first time seen converged
	current map[string]bool      // name → converged now
	nReady  int
	changed chan struct{} // signalled (non-blocking) on every change of readiness
}

func newWatcher() *watcher {
	return &watcher{first: map[string]time.Time{}, current: map[string]bool{}, changed: make(chan struct{}, 1)}
}

func (w *watcher) observe(obj any) {
	cu, ok := obj.(*clerkv1alpha1.ClerkUser)
	if !ok {
		return
	}
	now := time.Now()
	ok = converged(cu)
	w.mu.Lock()
	if w.current[cu.Name] != ok {
		w.current[cu.Name] = ok
		if ok {
			w.nReady++
		} else {
			w.nReady--
		}
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	if _, seen := w.first[cu.Name]; ok && !seen {
		w.first[cu.Name] = now
	}
	w.mu.Unlock()
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
	if w.current[cu.Name] {
		w.nReady--
	}
	delete(w.current, cu.Name)
	w.mu.Unlock()
}

// ready returns how many objects are converged now.
func (w *watcher) ready() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nReady
}

// firstReady returns when name first converged.
func (w *watcher) firstReady(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.first[name]
	return t, ok
}

// firstTimes returns the first-converged times of all objects accepted by keep.
func (w *watcher) firstTimes(keep func(name string) bool) []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Time
	for name, t := range w.first {
		if keep(name) {
			out = append(out, t)
		}
	}
	return out
}

// startWatcher starts an informer on ClerkUsers in the bench namespace feeding a watcher.
func startWatcher(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) (*watcher, error) {
	c, err := cache.New(cfg, cache.Options{Scheme: scheme,
		DefaultNamespaces: map[string]cache.Config{benchNamespace: {}}})
	if err != nil {
		return nil, err
	}
	go func() {
		if err := c.Start(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "bench: watcher:", err)
		}
	}()
	// GetInformer on a started cache waits for the informer's first list.
	inf, err := c.GetInformer(ctx, &clerkv1alpha1.ClerkUser{})
	if err != nil {
		return nil, err
	}
	w := newWatcher()
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    w.observe,
		UpdateFunc: func(_, obj any) { w.observe(obj) },
		DeleteFunc: w.forget,
	})
	if err != nil {
		return nil, err
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return nil, fmt.Errorf("watcher cache did not sync")
	}
	return w, nil
}
