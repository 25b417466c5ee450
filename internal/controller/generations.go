package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

// generations remembers when this manager first learnt of each ClerkUser generation: the watch
// event that brought it (after a start, the initial listing). A plan for generation G is made
// against an observation read from Clerk after that moment, so that a cached view from before
// a spec change (an out-of-band unban, a re-enrolled second factor) never decides what the new
// generation does; reads made after it, coalesced batch reads and the start's listing included,
// are as good as a read made by the reconcile itself, and cost nothing more.
type generations struct {
	mu   sync.Mutex
	seen map[types.UID]generationSeen
}

type generationSeen struct {
	generation int64
	at         time.Time
}

// saw records that generation gen of object uid was seen at now, unless it was seen before.
func (g *generations) saw(uid types.UID, gen int64, now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[types.UID]generationSeen{}
	}
	if s, ok := g.seen[uid]; ok && s.generation == gen {
		return s.at
	}
	g.seen[uid] = generationSeen{generation: gen, at: now}
	return now
}

// since returns when the object's current generation was first seen; a generation the watch
// has not reported yet counts as seen now (the strictest bound).
func (g *generations) since(obj *clerkv1alpha1.ClerkUser, now time.Time) time.Time {
	return g.saw(obj.UID, obj.Generation, now)
}

// forget drops what is remembered of a deleted object.
func (g *generations) forget(uid types.UID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.seen, uid)
}

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
					r.Observer.Forget(id, false)
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
