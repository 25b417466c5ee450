package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

// firstSeen remembers when this manager first learnt of each version of a thing: a ClerkUser's
// generation (generations), a private-metadata Secret's resourceVersion (secretVersions).
type firstSeen[K comparable, V comparable] struct {
	mu   sync.Mutex
	seen map[K]versionSeen[V]
}

type versionSeen[V comparable] struct {
	version V
	at      time.Time
}

// saw records that version v of k was seen at now, unless it was seen before, and returns when
// it was first seen.
func (f *firstSeen[K, V]) saw(k K, v V, now time.Time) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[K]versionSeen[V]{}
	}
	if s, ok := f.seen[k]; ok && s.version == v {
		return s.at
	}
	f.seen[k] = versionSeen[V]{version: v, at: now}
	return now
}

// forget drops what is remembered of k.
func (f *firstSeen[K, V]) forget(k K) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.seen, k)
}

// generations remembers when this manager first learnt of each ClerkUser generation: the watch
// event that brought it (after a start, the initial listing). A plan for generation G is made
// against an observation read from Clerk after that moment, so that a cached view from before
// a spec change (an out-of-band unban, a re-enrolled second factor) never decides what the new
// generation does; reads made after it, coalesced batch reads and the start's listing included,
// are as good as a read made by the reconcile itself, and cost nothing more. A generation the
// watch has not reported yet counts as seen when it is asked about (the strictest bound).
type generations = firstSeen[types.UID, int64]

// secretVersions does the same for the Secrets privateMetadataFrom reads: a new value of one is
// a change of the declared state as much as a new generation.
type secretVersions = firstSeen[types.NamespacedName, string]

// watchPredicate records each generation as the watch delivers it, and on deletion forgets the
// object and (through gone) what the observer knows of its user. It filters nothing.
func (r *ClerkUserReconciler) watchPredicate() predicate.Funcs {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool {
			r.gens.saw(e.Object.GetUID(), e.Object.GetGeneration(), r.createdSince(e.Object.GetCreationTimestamp().Time, e.Object.GetGeneration()))
			return true
		},
		UpdateFunc: func(e event.UpdateEvent) bool {
			r.gens.saw(e.ObjectNew.GetUID(), e.ObjectNew.GetGeneration(), r.now())
			return true
		},
		DeleteFunc: func(e event.DeleteEvent) bool {
			r.gens.forget(e.Object.GetUID())
			if obj, ok := e.Object.(*clerkv1alpha1.ClerkUser); ok {
				// An object deleted with Orphan, or while Observe, leaves nothing cached behind.
				if id := boundID(obj); id != "" {
					if name := instanceOf(obj); name == "" && r.Observer != nil {
						r.Observer.Forget(id, false)
					} else if r.observers != nil {
						r.observers.forget(name, id)
					}
				}
			}
			return true
		},
	}
}

// createdSince dates the generation a Create event brings. The event may be handled well after
// the object appeared (the initial listing of a busy start), and dating it by then would refuse
// reads made in between. Nothing is cached from before this process started, so an object that
// existed then is dated by the start; a new object by its creation (the API server's clock,
// whole seconds), as long as it was never edited; anything else by now.
func (r *ClerkUserReconciler) createdSince(created time.Time, generation int64) time.Time {
	now := r.now()
	switch {
	case !r.started.IsZero() && created.Before(r.started):
		return r.started
	case generation == 1 && !created.IsZero() && created.Before(now):
		return created
	}
	return now
}
