package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// appKey is the metadata key the simulated application writes: no spec declares it.
const appKey = "app_counter"

// appTarget is a user the application writes to, and the metadata kinds it may write there:
// all three under metadataPolicy Merge, only those the object does not declare under Replace.
type appTarget struct {
	userID string
	kinds  []string
}

// app is the application that shares the Clerk users with kubeclerk: it keeps writing keys of
// its own into their metadata, straight to Clerk (not through the recording proxy), and
// records in Expect.Kept what it wrote last. A write that fails is sent again until Clerk
// answers it: a lost response may have applied it, and the last value sent is the one that
// must survive.
type app struct {
	fake  *fakeAPI
	every time.Duration
	exp   *Expect
	r     *rand.Rand

	run sync.Mutex // held while a write is under way; pause takes it

	mu       sync.Mutex // guards the fields below and exp.Kept
	targets  []appTarget
	counter  int
	writes   int
	failures int
	log      []appWrite
}

// appWrite is one write of the application, for OUT/app.jsonl.
type appWrite struct {
	At     time.Time `json:"at"`
	UserID string    `json:"userID"`
	Kind   string    `json:"kind"`
	Value  string    `json:"value"`
	Error  string    `json:"error,omitempty"`
}

// takeLog returns the writes since the last call.
func (a *app) takeLog() []appWrite {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.log
	a.log = nil
	return l
}

func newApp(fake *fakeAPI, perSecond float64, exp *Expect, seed uint64) *app {
	return &app{fake: fake, every: time.Duration(float64(time.Second) / perSecond), exp: exp,
		r: rand.New(rand.NewPCG(seed, 7))} //nolint:gosec // a reproducible workload
}

// setTargets replaces the users the application writes to.
func (a *app) setTargets(t []appTarget) {
	a.mu.Lock()
	a.targets = t
	a.mu.Unlock()
}

// pause waits for the write under way and holds the application until resume.
func (a *app) pause() { a.run.Lock() }

func (a *app) resume() { a.run.Unlock() }

// loop writes until ctx ends.
func (a *app) loop(ctx context.Context) {
	t := time.NewTicker(a.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.run.Lock()
		a.writeOne(ctx)
		a.run.Unlock()
	}
}

func (a *app) writeOne(ctx context.Context) {
	a.mu.Lock()
	if len(a.targets) == 0 {
		a.mu.Unlock()
		return
	}
	tg := a.targets[a.r.IntN(len(a.targets))]
	kind := tg.kinds[a.r.IntN(len(tg.kinds))]
	a.counter++
	v := json.Number(strconv.Itoa(a.counter))
	a.mu.Unlock()
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		at := time.Now()
		err := a.fake.mergeMetadata(cctx, tg.userID, kind, map[string]any{appKey: v})
		cancel()
		a.mu.Lock()
		a.writes++
		w := appWrite{At: at, UserID: tg.userID, Kind: kind, Value: v.String()}
		if err != nil {
			w.Error = err.Error()
		}
		a.log = append(a.log, w)
		switch {
		case err == nil:
			if a.exp.Kept[tg.userID] == nil {
				a.exp.Kept[tg.userID] = map[string]map[string]any{}
			}
			if a.exp.Kept[tg.userID][kind] == nil {
				a.exp.Kept[tg.userID][kind] = map[string]any{}
			}
			a.exp.Kept[tg.userID][kind][appKey] = v
			a.mu.Unlock()
			return
		case isNotFound(err):
			a.mu.Unlock()
			return
		}
		a.failures++
		a.mu.Unlock()
		if sleep(ctx, 200*time.Millisecond) != nil {
			return
		}
	}
}

// stats returns how many writes the application sent and how many failed.
func (a *app) stats() (writes, failures int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.writes, a.failures
}
