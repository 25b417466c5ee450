package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk/clerkfake"
)

// Phase names.
const (
	phaseInitial   = "initial"
	phaseThrottle  = "throttle"
	phaseErrors    = "errors"
	phaseLost      = "lost"
	phaseOutage    = "outage"
	phaseFailover  = "failover"
	phaseRestarts  = "restarts"
	phaseAPIServer = "apiserver"
	phaseAll       = "all"
)

// allPhases is the order make chaos runs the phases in; initial always runs first.
var allPhases = []string{phaseThrottle, phaseErrors, phaseLost, phaseOutage, phaseFailover, phaseRestarts, phaseAPIServer, phaseAll}

// phaseDef says which faults a phase runs while its rollout converges.
type phaseDef struct {
	name        string
	description string
	// faults are set on the fake for the fault window (status faults, dropped responses).
	faults clerkfake.Faults
	// html503 and dropWrites are injected by the proxy: 503s with an HTML body (a load
	// balancer's), and responses of applied writes dropped.
	html503, dropWrites float64
	// outage: every Clerk call fails for this long, from outageAfter after the rollout began.
	outage, outageAfter time.Duration
	// killLeaderAt SIGKILLs the leader once this share of the rollout converged (0: never).
	killLeaderAt float64
	// killEvery SIGKILLs a random replica every [min, max] during the fault window.
	killEvery [2]time.Duration
	// apiServerAt restarts kube-apiserver once this share of the rollout converged, or
	// apiServerAfter after the rollout began (0: never).
	apiServerAt    float64
	apiServerAfter time.Duration
	// minWindow is the shortest fault window; it ends once every fault above happened and the
	// rollout converged, or after the cap.
	minWindow time.Duration
	// allowance is what the phase adds to the convergence bound after faults clear.
	allowance   time.Duration
	allowanceOf string
}

// hasRates reports whether the phase injects faults into a share of the requests.
func (d phaseDef) hasRates() bool {
	f := d.faults
	return f.Rate429+f.Rate500+f.Rate502+f.Rate503+f.DropResponseRate+d.html503+d.dropWrites > 0
}

// writeRoutes are the fake's routes that change a user.
func writeRoutes() []string {
	var out []string
	for _, r := range clerkfake.RouteNames() {
		if !strings.HasPrefix(r, "GET ") && !strings.Contains(r, "verify_") {
			out = append(out, r)
		}
	}
	return out
}

// Leader election: controller-runtime's defaults (lease 15 s, retry 2 s), and what a
// replica needs once it leads (caches, the observer's first reads).
const (
	leaseDuration = 15 * time.Second
	leaseRetry    = 2 * time.Second
	leaderStart   = 10 * time.Second
)

// phaseDefs returns the phases with the outage length o.outage (the all phase halves rates,
// the outage and the kill frequency).
func phaseDefs(o options) map[string]phaseDef {
	failover := leaseDuration + leaseRetry + leaderStart
	const failoverOf = "failover (lease, retry, start)"
	return map[string]phaseDef{
		phaseInitial: {name: phaseInitial, description: "create every object; 10% of POST /v1/users responses dropped after the create",
			faults: clerkfake.Faults{DropResponseRate: 0.1, Routes: []string{"POST /v1/users"}}},
		phaseThrottle: {name: phaseThrottle, description: "10% of requests answered 429 with Retry-After: 1",
			faults: clerkfake.Faults{Rate429: 0.1, RetryAfterSeconds: 1}, minWindow: 30 * time.Second},
		phaseErrors: {name: phaseErrors, description: "5% 500s, 5% 503s (half of them HTML from a load balancer)",
			faults: clerkfake.Faults{Rate500: 0.05, Rate503: 0.025}, html503: 0.025, minWindow: 30 * time.Second},
		phaseLost: {name: phaseLost, description: "10% of responses on every write route dropped after the write was applied",
			faults: clerkfake.Faults{DropResponseRate: 0.1, Routes: writeRoutes()}, minWindow: 30 * time.Second},
		phaseOutage: {name: phaseOutage, description: fmt.Sprintf("every Clerk call fails (500/503) for %s, then Clerk recovers", o.outage),
			outage: o.outage, allowance: o.outage, allowanceOf: "outage (backoff reached during it)"},
		phaseFailover: {name: phaseFailover, description: "the leader is SIGKILLed at 50% of the rollout",
			killLeaderAt: 0.5, allowance: failover, allowanceOf: failoverOf},
		phaseRestarts: {name: phaseRestarts, description: "a random replica SIGKILLed every 5-20 s for 60 s",
			killEvery: [2]time.Duration{5 * time.Second, 20 * time.Second}, minWindow: 60 * time.Second,
			allowance: failover, allowanceOf: failoverOf},
		phaseAPIServer: {name: phaseAPIServer, description: "kube-apiserver restarted at 30% of the rollout",
			apiServerAt: 0.3, allowance: failover, allowanceOf: failoverOf},
		phaseAll: {name: phaseAll, description: fmt.Sprintf("all at half rates: 5%% 429, 2.5%% 500, 2.5%% 503, 5%% of write "+
			"responses dropped, a %s outage, leader killed at 50%%, a replica killed every 10-40 s, apiserver restarted", o.outage/2),
			faults:  clerkfake.Faults{Rate429: 0.05, RetryAfterSeconds: 1, Rate500: 0.025, Rate503: 0.0125},
			html503: 0.0125, dropWrites: 0.05, outage: o.outage / 2, outageAfter: 10 * time.Second,
			killLeaderAt: 0.5, killEvery: [2]time.Duration{10 * time.Second, 40 * time.Second},
			apiServerAfter: 10*time.Second + o.outage/2 + 10*time.Second, minWindow: 60 * time.Second,
			allowance: o.outage/2 + failover, allowanceOf: "outage and failover"},
	}
}

// outageFaults make every Clerk call fail.
var outageFaults = clerkfake.Faults{Rate500: 0.5, Rate503: 0.5}

// runPhase runs one phase: the rollout under faults, then convergence with faults cleared,
// then the checks.
func (h *harness) runPhase(ctx context.Context, def phaseDef) (*PhaseResult, error) {
	res := &PhaseResult{Name: def.name, Faults: def.description}
	delete(h.stalls, def.name)
	logf("phase %s: %s", def.name, def.description)

	// 1. The rollout, with the application held while its targets change.
	h.app.pause()
	var ro rollout
	if def.name == phaseInitial {
		ro = rollout{created: h.wl.sorted()}
	} else {
		ro = h.wl.newRollout(def.name, max(1, h.o.users/150), h.before)
	}
	needed := 0
	for _, o := range slices.Concat(ro.changed, ro.created) {
		var u *FakeUser
		switch {
		case o.userID != "":
			u = h.before[o.userID]
		case o.identity != create:
			u = h.before[seedUserID(o.index)]
		}
		needed += neededWrites(o, u, h.wl.exp)
	}
	for _, o := range ro.deleted {
		if o.spec.DeletionPolicy != clerkv1alpha1.DeletionPolicyOrphan {
			needed++
		}
	}
	res.Rollout = RolloutCounts{Changed: len(ro.changed), Created: len(ro.created), Deleted: len(ro.deleted)}
	res.NeededWrites = needed
	h.app.setTargets(h.appTargets())
	h.app.resume()

	// 2. The rollout is written while the fault window runs: faults that wait for a share of
	// the rollout see it converge as it is written. Each object gets one write: a new object
	// generation 1, a changed one the next generation.
	want, gone := map[string]int64{}, make([]string, 0, len(ro.deleted))
	for _, o := range ro.created {
		want[o.name] = 1
	}
	for _, o := range ro.changed {
		want[o.name] = o.generation + 1
	}
	for _, o := range ro.deleted {
		gone = append(gone, o.name)
	}
	start := time.Now()
	if err := h.setFaults(ctx, def.faults, def.html503, def.dropWrites); err != nil {
		return nil, err
	}
	applied := make(chan error, 1)
	go func() {
		err := h.applyRollout(ctx, ro)
		logf("[%s] rollout written in %.1fs: %d changed, %d created, %d deleted", def.name, time.Since(start).Seconds(),
			len(ro.changed), len(ro.created), len(ro.deleted))
		applied <- err
	}()
	// Faults that are rates run until every object converged under them, rollout or not: a
	// new leader reads and reconciles them all, under the same faults.
	every := map[string]int64{}
	for _, o := range h.wl.objs {
		every[o.name] = max(1, o.generation)
	}
	maps.Copy(every, want)
	fw, err := h.faultWindow(ctx, def, start, want, every, gone)
	if aerr := <-applied; aerr != nil {
		return nil, aerr
	}
	if err != nil {
		return nil, err
	}
	res.FaultSeconds = round(fw.cleared.Sub(start).Seconds(), 1)
	res.APIServerDownSeconds = round(fw.apiDown.Seconds(), 1)

	// 3. Convergence with every fault cleared.
	all := map[string]int64{}
	for _, o := range h.wl.objs {
		all[o.name] = o.generation
	}
	// converge returns with the application held, so that what it wrote last is in the snapshot.
	snap, convAt, err := h.converge(ctx, def.name, all, gone, fw.cleared)
	defer h.app.resume()
	if err != nil {
		return nil, err
	}
	res.RolloutSeconds = round(convAt.Sub(start).Seconds(), 1)
	res.ConvergeSeconds = round(max(0, convAt.Sub(fw.cleared).Seconds()), 1)
	bound := 30*time.Second + time.Duration(float64(needed)/h.o.budget()*float64(time.Second)) + def.allowance
	res.BoundSeconds = round(bound.Seconds(), 1)
	res.BoundFormula = fmt.Sprintf("30 s + %d writes / %.0f/s", needed, h.o.budget())
	if def.allowance > 0 {
		res.BoundFormula += fmt.Sprintf(" + %s %s", def.allowance, def.allowanceOf)
	}

	// 4. Checks.
	var findings []Finding
	if snap == nil {
		findings = append(findings, Finding{Check: checkReady, Detail: fmt.Sprintf("not converged %s after faults cleared", h.o.convergeTimeout)})
		if snap, err = h.snapshot(ctx); err != nil {
			return nil, err
		}
	} else if convAt.Sub(fw.cleared) > bound {
		findings = append(findings, Finding{Check: checkBound, Detail: fmt.Sprintf(
			"converged %.1fs after faults cleared; bound %.1fs (%s)", convAt.Sub(fw.cleared).Seconds(), bound.Seconds(), res.BoundFormula)})
	}
	recorded := h.px.snapshot()
	h.dumpCalls(def.name, recorded)
	calls := callsBetween(recorded, start, convAt)
	removals := MFARemovals(calls)
	findings = append(findings, CheckState(*snap, h.wl.exp, removals)...)
	rate, rf := CheckRate(calls, h.o.budget(), h.o.burstOrDefault())
	res.Rate = rate
	findings = append(findings, rf...)
	findings = append(findings, CheckLeaders(calls, time.Second)...)
	idx := indexObjects(snap.Objects, h.wl.exp.Deleted)
	if fw.outageTo.After(fw.outageFrom) {
		hl, hf := CheckHotLoop(callsBetween(calls, fw.outageFrom, fw.outageTo), fw.outageFrom, fw.outageTo, h.fl.terms(),
			idx, len(snap.Objects), h.o.budget())
		res.HotLoop = &hl
		findings = append(findings, hf...)
	}
	res.Calls = len(calls)
	res.Writes = countWrites(calls)
	res.ExtraCalls = res.Calls - needed
	res.ExtraWrites = res.Writes - needed
	res.CallsByRoute = byRoute(calls)
	res.RateLimited = countStatus(calls, 429)
	res.ServerErrors = countStatus(calls, 500) + countStatus(calls, 502) + countStatus(calls, 503)
	res.DroppedResponses = countLost(calls)
	res.Objects = len(snap.Objects)
	kills, exits := h.fl.counts()
	res.Kills, res.Exits = kills-h.kills, exits-h.exits
	h.kills, h.exits = kills, exits
	aw, af := h.app.stats()
	res.AppWrites, res.AppFailures = aw-h.appWrites, af-h.appFailures
	h.appWrites, h.appFailures = aw, af
	res.setFindings(findings)
	res.Stall = h.stalls[def.name]
	for i, f := range findings {
		if i == 10 {
			logf("[%s] … %d more findings", def.name, len(findings)-10)
			break
		}
		logf("[%s] %s", def.name, f)
	}
	h.afterCheck(ctx, snap)
	return res, nil
}

// faultTimes is when the faults of a window happened.
type faultTimes struct {
	cleared              time.Time
	outageFrom, outageTo time.Time
	apiDown              time.Duration
}

// faultRun is the state of a fault window.
type faultRun struct {
	h                    *harness
	def                  phaseDef
	start                time.Time
	ft                   faultTimes
	outageFrom, outageTo time.Time
	inOutage, outageDone bool
	killDone, apiDone    bool
	nextKill             time.Time
}

// faultWindow runs the faults of def until the window ends, then clears them.
// want are the rollout's objects (and gone its deletions): their share converged triggers the
// faults that wait for one; every holds all live objects, which must converge before faults that
// are rates clear.
func (h *harness) faultWindow(ctx context.Context, def phaseDef, start time.Time, want, every map[string]int64,
	gone []string) (faultTimes, error) {
	r := &faultRun{h: h, def: def, start: start,
		outageFrom: start.Add(def.outageAfter), outageTo: start.Add(def.outageAfter + def.outage),
		outageDone: def.outage == 0, killDone: def.killLeaderAt == 0,
		apiDone: def.apiServerAt == 0 && def.apiServerAfter == 0}
	if def.killEvery[1] > 0 {
		r.nextKill = start.Add(randDuration(def.killEvery))
	}
	capAt := start.Add(h.o.faultCap)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastFrac := -1.0
	for {
		now := time.Now()
		done, pending := h.w.progress(want, gone)
		_, unconverged := h.w.progress(every, gone)
		frac := 1.0
		if done+pending > 0 {
			frac = float64(done) / float64(done+pending)
		}
		if math.Floor(frac*10) != math.Floor(lastFrac*10) {
			logf("[%s] rollout %3.0f%% converged (%d of %d) after %.1fs", def.name, 100*frac, done, done+pending, now.Sub(start).Seconds())
			lastFrac = frac
		}
		if err := r.step(ctx, now, frac); err != nil {
			return r.ft, err
		}
		if unconverged > 0 && r.apiDone {
			h.watchStall(ctx, def.name, unconverged, start)
		}
		// Faults that are events (an outage, kills, a restart) clear when the last one is over;
		// faults that are rates run until the rollout converged under them, or the cap.
		eventsDone := !now.Before(start.Add(def.minWindow)) && r.outageDone && r.killDone && r.apiDone
		if eventsDone && (!def.hasRates() || unconverged == 0 || now.After(capAt)) || now.After(capAt.Add(def.outage)) {
			break
		}
		select {
		case <-ctx.Done():
			return r.ft, ctx.Err()
		case <-h.w.changed:
		case <-tick.C:
		}
	}
	if err := h.setFaults(ctx, clerkfake.Faults{}, 0, 0); err != nil {
		return r.ft, err
	}
	r.ft.cleared = time.Now()
	logf("[%s] faults cleared %.1fs after the rollout began", def.name, r.ft.cleared.Sub(start).Seconds())
	return r.ft, nil
}

// step starts and ends the outage, kills replicas and restarts the apiserver when their time
// (or share of the rollout converged, frac) has come.
func (r *faultRun) step(ctx context.Context, now time.Time, frac float64) error {
	h, def := r.h, r.def
	switch {
	case !r.outageDone && !r.inOutage && !now.Before(r.outageFrom):
		logf("[%s] outage: every Clerk call fails for %s", def.name, def.outage)
		if err := h.setFaults(ctx, outageFaults, 0, 0); err != nil {
			return err
		}
		r.inOutage, r.ft.outageFrom = true, now
	case r.inOutage && !now.Before(r.outageTo):
		logf("[%s] outage over", def.name)
		if err := h.setFaults(ctx, def.faults, def.html503, def.dropWrites); err != nil {
			return err
		}
		r.inOutage, r.outageDone, r.ft.outageTo = false, true, now
	}
	if !r.killDone && frac >= def.killLeaderAt {
		if l := h.fl.leaders(); len(l) == 1 {
			h.fl.kill(l[0], fmt.Sprintf("%.0f%% of the rollout converged", 100*frac))
			r.killDone = true
		}
	}
	if !r.nextKill.IsZero() && !now.Before(r.nextKill) {
		h.fl.killRandom("periodic kill")
		r.nextKill = time.Now().Add(randDuration(def.killEvery))
	}
	due := def.apiServerAt > 0 && frac >= def.apiServerAt || def.apiServerAfter > 0 && now.Sub(r.start) >= def.apiServerAfter
	if !r.apiDone && due {
		logf("[%s] restarting kube-apiserver (%.0f%% of the rollout converged)", def.name, 100*frac)
		d, err := h.cp.restartAPIServer(ctx)
		if err != nil {
			return err
		}
		logf("[%s] kube-apiserver back after %.1fs", def.name, d.Seconds())
		r.ft.apiDown += d
		r.apiDone = true
	}
	return nil
}

func randDuration(r [2]time.Duration) time.Duration {
	return r[0] + time.Duration(rand.Int64N(int64(r[1]-r[0])+1)) //nolint:gosec // timing needs no cryptographic randomness
}

// setFaults sets the fake's faults and the proxy's.
func (h *harness) setFaults(ctx context.Context, f clerkfake.Faults, html503, dropWrites float64) error {
	h.px.setHTML503(html503)
	h.px.setDropWrites(dropWrites)
	return retry(ctx, 10*time.Second, func() error { return h.fake.setFaults(ctx, f) })
}

// applyRollout writes the rollout to the API: creates, spec updates and deletions, by a few
// workers, retrying conflicts (the manager patches finalizers) and unavailability.
func (h *harness) applyRollout(ctx context.Context, ro rollout) error {
	type job struct {
		o    *object
		kind string
	}
	jobs := make([]job, 0, len(ro.created)+len(ro.changed)+len(ro.deleted))
	for _, o := range ro.created {
		jobs = append(jobs, job{o, fieldCreate})
	}
	for _, o := range ro.changed {
		jobs = append(jobs, job{o, "update"})
	}
	for _, o := range ro.deleted {
		jobs = append(jobs, job{o, fieldDelete})
	}
	h.wl.r.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	ch := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 16 {
		wg.Go(func() {
			for j := range ch {
				err := retry(ctx, time.Minute, func() error { return h.write(ctx, j.o, j.kind) })
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, fmt.Errorf("%s ClerkUser %s: %w", j.kind, j.o.name, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	return firstErr
}

// write carries out one rollout step and records the generation written.
func (h *harness) write(ctx context.Context, o *object, kind string) error {
	switch kind {
	case fieldCreate:
		cu := o.clerkUser()
		err := h.c.Create(ctx, cu)
		if apierrors.IsAlreadyExists(err) {
			err = h.c.Get(ctx, client.ObjectKeyFromObject(cu), cu)
		}
		if err != nil {
			return err
		}
		o.generation = cu.Generation
		return nil
	case "update":
		cu := o.clerkUser()
		if err := h.c.Get(ctx, client.ObjectKeyFromObject(cu), cu); err != nil {
			return err
		}
		cu.Spec = *o.spec.DeepCopy()
		if err := h.c.Update(ctx, cu); err != nil {
			return err
		}
		o.generation = cu.Generation
		return nil
	default:
		return client.IgnoreNotFound(h.c.Delete(ctx, o.clerkUser()))
	}
}

// converge waits until every live object is converged at its latest generation and every
// deleted one is gone, then holds the application and takes a snapshot; nil when the deadline
// passed. It returns with the application held, also on error.
func (h *harness) converge(ctx context.Context, phase string, want map[string]int64, gone []string,
	cleared time.Time) (*Snapshot, time.Time, error) {
	deadline := cleared.Add(h.o.convergeTimeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	for {
		_, pending := h.w.progress(want, gone)
		if pending == 0 {
			at := time.Now()
			h.app.pause()
			snap, err := h.snapshot(ctx)
			if err != nil {
				return nil, at, err
			}
			if len(CheckReady(snap.Objects)) == 0 && len(snap.Objects) == len(want) {
				logf("[%s] converged %.1fs after faults cleared", phase, at.Sub(cleared).Seconds())
				return snap, at, nil
			}
			h.app.resume()
		}
		if time.Now().After(deadline) {
			h.app.pause()
			return nil, time.Now(), nil
		}
		if pending > 0 {
			h.watchStall(ctx, phase, pending, cleared)
		}
		if time.Since(last) > 15*time.Second {
			logf("[%s] waiting for %d objects, %.0fs after faults cleared", phase, pending, time.Since(cleared).Seconds())
			for _, p := range h.w.pending(want, gone, 5) {
				logf("[%s]   %s", phase, p)
			}
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			h.app.pause()
			return nil, time.Now(), ctx.Err()
		case <-h.w.changed:
		case <-tick.C:
		}
	}
}

// snapshot reads every ClerkUser from the API and every user from the fake.
func (h *harness) snapshot(ctx context.Context) (*Snapshot, error) {
	var list clerkv1alpha1.ClerkUserList
	if err := retry(ctx, time.Minute, func() error {
		return h.c.List(ctx, &list, client.InNamespace(chaosNamespace))
	}); err != nil {
		return nil, fmt.Errorf("list ClerkUsers: %w", err)
	}
	var users []*FakeUser
	if err := retry(ctx, time.Minute, func() error {
		var err error
		users, err = h.fake.listUsers(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	return &Snapshot{Users: users, Objects: list.Items}, nil
}

// indexObjects maps users and identifiers to the objects that hold them.
func indexObjects(objs []clerkv1alpha1.ClerkUser, deleted []DeletedObject) objectIndex {
	x := objectIndex{byUser: map[string]string{}, byIdent: map[string]string{}}
	for _, d := range deleted {
		x.byUser[d.UserID] = d.Name
	}
	for i := range objs {
		o := &objs[i]
		for _, id := range []string{o.Spec.UserID, o.Status.UserID} {
			if id != "" {
				x.byUser[id] = o.Name
			}
		}
		for _, id := range identifiersOf(&o.Spec) {
			x.byIdent[id] = o.Name
		}
	}
	return x
}

// appTargets lists the users the application may write to: those of live objects bound at
// the last check.
func (h *harness) appTargets() []appTarget {
	var out []appTarget
	for _, o := range h.wl.sorted() {
		if o.userID == "" {
			continue
		}
		t := appTarget{userID: o.userID, kinds: metaKinds}
		if o.spec.MetadataPolicy == clerkv1alpha1.MetadataPolicyReplace {
			t.kinds = nil
			for _, k := range metaKinds {
				if _, isSet := SpecMetadata(&o.spec, k); !isSet {
					t.kinds = append(t.kinds, k)
				}
			}
		}
		if len(t.kinds) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// afterCheck records what the check saw for the next phase: the users, and which user each
// object is bound to; and the users whose MFA was reset enroll a factor again.
func (h *harness) afterCheck(ctx context.Context, snap *Snapshot) {
	h.before = map[string]*FakeUser{}
	for _, u := range snap.Users {
		h.before[u.ID] = u
	}
	for i := range snap.Objects {
		if o := h.wl.objs[snap.Objects[i].Name]; o != nil {
			o.userID = snap.Objects[i].Status.UserID
		}
	}
	for _, o := range h.wl.sorted() {
		u := h.before[o.userID]
		if o.mfa != mfaReset || u == nil || u.HasMFA() {
			continue
		}
		if err := retry(ctx, 30*time.Second, func() error { return h.fake.enrollTOTP(ctx, u.ID) }); err != nil {
			logf("enroll TOTP for %s: %v", u.ID, err)
			continue
		}
		u.TwoFactorEnabled, u.TOTPEnabled = true, true
	}
}

// dumpCalls appends the calls recorded since the last dump to OUT/calls.jsonl, and the
// application's writes to OUT/app.jsonl, for investigating a finding.
func (h *harness) dumpCalls(phase string, recorded []Call) {
	write := func(name string, lines []any) {
		f, err := os.OpenFile(filepath.Join(h.o.out, name), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			logf("%s: %v", name, err)
			return
		}
		defer func() { _ = f.Close() }()
		enc := json.NewEncoder(f)
		for _, l := range lines {
			_ = enc.Encode(l)
		}
	}
	lines := make([]any, 0, len(recorded)-h.dumped)
	for _, c := range recorded[h.dumped:] {
		lines = append(lines, struct {
			Phase string `json:"phase"`
			Call
		}{phase, c})
	}
	h.dumped = len(recorded)
	write("calls.jsonl", lines)
	writes := h.app.takeLog()
	lines = make([]any, 0, len(writes))
	for _, w := range writes {
		lines = append(lines, w)
	}
	write("app.jsonl", lines)
}

// stallAfter is how long the leader may make no Clerk call while objects are not converged
// before the harness takes its goroutines for diagnosis.
const stallAfter = 20 * time.Second

// watchStall notices a leader that makes no Clerk call for stallAfter (counted from since at
// the earliest) while pending objects are not converged, and saves its goroutines (once per
// phase) to OUT/stall-PHASE-TIME.txt.
func (h *harness) watchStall(ctx context.Context, phase string, pending int, since time.Time) {
	p := h.fl.leaderProcess()
	quiet := time.Since(maxTime(h.px.lastCall(), since))
	if p == nil || h.stalls[phase] != "" || quiet < stallAfter || time.Since(time.Unix(0, p.markAt.Load())) < stallAfter {
		return
	}
	path := filepath.Join(h.o.out, "stall-"+phase+"-"+time.Now().Format("150405")+".txt")
	note := fmt.Sprintf("no Clerk call for %s while %d objects were not converged (%s leads)",
		quiet.Round(time.Second), pending, p.name)
	h.stalls[phase] = note
	if p.pprof != "" {
		if body, err := getText(ctx, "http://"+p.pprof+"/debug/pprof/goroutine?debug=2"); err == nil {
			_ = os.WriteFile(path, []byte(body), 0o644)
			note += "; its goroutines: " + path
			h.stalls[phase] = note
		}
	}
	logf("[%s] stall: %s", phase, note)
}
