package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/instance"
	"github.com/kubeclerk/kubeclerk/internal/observe"
)

// instanceObservers runs one batched observer per ClerkInstance, as the manager's own key has
// one: the users bound to an instance are read in batches with its key and budget, their changes
// outside kubeclerk are polled, and the objects of a changed user are reconciled. An observer is
// started by the first reconcile that needs it and stopped when its instance is gone, or when the
// instance's API URL changes (another Clerk, whose users the cache knows nothing of). A key
// rotation keeps it: every call takes the instance's current client.
type instanceObservers struct {
	// template carries the settings of the manager's own batched observer (MaxAge, intervals).
	template *observe.Batch
	clients  *instance.Clients
	// managed lists the user IDs bound to an instance; changed reports changed users of one.
	managed func(ctx context.Context, instance string) ([]string, error)
	changed func(ctx context.Context, instance string, ids []string)
	log     logr.Logger

	mu     sync.Mutex
	ctx    context.Context // the manager's, once started
	ready  chan struct{}   // closed once ctx is set
	byName map[string]*runningObserver
	wg     sync.WaitGroup
}

type runningObserver struct {
	batch   *observe.Batch
	baseURL string
	cancel  context.CancelFunc
}

func newInstanceObservers(template *observe.Batch, clients *instance.Clients, log logr.Logger) *instanceObservers {
	return &instanceObservers{template: template, clients: clients, log: log,
		ready: make(chan struct{}), byName: map[string]*runningObserver{}}
}

// Start holds the observers' lifetime (manager.Runnable): they run until the manager stops, and
// Start returns once every one of them has ended.
func (s *instanceObservers) Start(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	close(s.ready)
	s.mu.Unlock()
	<-ctx.Done()
	s.wg.Wait()
	return nil
}

// get returns the running observer of instance name, whose current client is c, starting one
// when there is none or the instance now points at another API URL.
func (s *instanceObservers) get(ctx context.Context, name string, c *clerk.Client) (observe.Observer, error) {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return nil, errors.New("the manager is stopping")
	}
	if o, ok := s.byName[name]; ok {
		if o.baseURL == c.BaseURL() {
			return o.batch, nil
		}
		o.cancel()
		delete(s.byName, name)
	}
	t := s.template
	b := &observe.Batch{
		Clerk:            currentClient{clients: s.clients, name: name},
		MaxAge:           t.MaxAge,
		PollInterval:     t.PollInterval,
		Window:           t.Window,
		FullReadInterval: t.FullReadInterval,
		Managed:          func(ctx context.Context) ([]string, error) { return s.managed(ctx, name) },
		Changed:          func(ctx context.Context, ids []string) { s.changed(ctx, name, ids) },
		Log:              s.log.WithValues("clerkInstance", name),
		Now:              t.Now,
	}
	octx, cancel := context.WithCancel(s.ctx)
	s.byName[name] = &runningObserver{batch: b, baseURL: c.BaseURL(), cancel: cancel}
	s.wg.Go(func() {
		if err := b.Start(octx); err != nil {
			s.log.Error(err, "The batched observer of a ClerkInstance stopped", "clerkInstance", name)
		}
	})
	return b, nil
}

// stop ends the observer of instance name, if one runs.
func (s *instanceObservers) stop(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.byName[name]; ok {
		o.cancel()
		delete(s.byName, name)
	}
}

// running returns the observer running for instance name, if any.
func (s *instanceObservers) running(name string) (*observe.Batch, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.byName[name]
	if !ok {
		return nil, false
	}
	return o.batch, true
}

// forget drops user id from the observer of instance name, if one runs.
func (s *instanceObservers) forget(name, id string) {
	s.mu.Lock()
	o, ok := s.byName[name]
	s.mu.Unlock()
	if ok {
		o.batch.Forget(id, false)
	}
}

// currentClient reads through the instance's current client, so that a rotated key is used
// from the next call on.
type currentClient struct {
	clients *instance.Clients
	name    string
}

func (c currentClient) client() (*clerk.Client, error) {
	cl, ok := c.clients.Get(c.name)
	if !ok {
		return nil, fmt.Errorf("ClerkInstance %s has no usable key", c.name)
	}
	return cl, nil
}

// PausedUntil is when the instance's key may be used again after a 429.
func (c currentClient) PausedUntil() time.Time {
	cl, err := c.client()
	if err != nil {
		return time.Time{}
	}
	return cl.PausedUntil()
}

func (c currentClient) ListUsers(ctx context.Context, p clerk.ListUsersParams) ([]clerk.User, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	return cl.ListUsers(ctx, p)
}

func (c currentClient) CountUsers(ctx context.Context, p clerk.ListUsersParams) (int64, error) {
	cl, err := c.client()
	if err != nil {
		return 0, err
	}
	return cl.CountUsers(ctx, p)
}

// instanceObserver returns the observer for the objects of instance name, whose client is c:
// the instance's batched observer when the manager's own observer is batched, else one GET per
// object.
func (r *ClerkUserReconciler) instanceObserver(ctx context.Context, name string, c *clerk.Client) (observe.Observer, error) {
	if r.observers == nil {
		return observe.PerObject{Clerk: c}, nil
	}
	return r.observers.get(ctx, name, c)
}

// boundToInstance lists the user IDs of the ClerkUsers bound to instance name ("" for the
// manager's own key).
func (r *ClerkUserReconciler) boundToInstance(ctx context.Context, name string) ([]string, error) {
	var list clerkv1alpha1.ClerkUserList
	var opts []client.ListOption
	if name != "" {
		opts = append(opts, client.MatchingFields{instanceRefIndex: name})
	}
	if err := r.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("list ClerkUsers: %w", err)
	}
	ids := make([]string, 0, len(list.Items))
	for i := range list.Items {
		if instanceOf(&list.Items[i]) != name {
			continue
		}
		if id := boundID(&list.Items[i]); id != "" {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// instanceOf is the name of the ClerkInstance obj is bound to, "" for the manager's own key.
func instanceOf(obj *clerkv1alpha1.ClerkUser) string {
	if obj.Spec.InstanceRef == nil {
		return ""
	}
	return obj.Spec.InstanceRef.Name
}
