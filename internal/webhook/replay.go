package webhook

import (
	"container/heap"
	"sync"
	"time"
)

// replayVerdict is what the replay cache says about a message.
type replayVerdict int

const (
	// replayNew: first sight of the ID; it is now remembered.
	replayNew replayVerdict = iota
	// replaySeen: the ID was seen within the tolerance window.
	replaySeen
	// replayFull: the cache holds its maximum of IDs that have not expired; the ID was not
	// remembered, so the message must not be processed either.
	replayFull
)

// replayCache remembers the svix-ids of verified messages, per instance, until a replay of them
// would be refused anyway by the timestamp check: an entry expires Tolerance after the latest
// signed timestamp it was seen with. Its size never exceeds max; when full it refuses new IDs
// rather than forgetting unexpired ones, which would open a replay window.
type replayCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]*replayEntry // by instance + "/" + svix-id ("/" is not valid in an instance name)
	byTime  expiryHeap
}

type replayEntry struct {
	key     string
	expires time.Time
	index   int // in byTime
}

func newReplayCache(maxIDs int) *replayCache {
	return &replayCache{max: maxIDs, entries: map[string]*replayEntry{}}
}

// check looks up (instance, id) at now for a message signed at ts, and remembers it when new. For
// a new ID refused because the cache is full, retry is when the oldest entry expires.
func (c *replayCache) check(instance, id string, ts, now time.Time) (v replayVerdict, retry time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	key := instance + "/" + id
	expires := ts.Add(Tolerance)
	if e, ok := c.entries[key]; ok {
		// A later attempt of the same message (Svix re-signs each attempt with a new timestamp)
		// keeps the ID until that attempt could no longer be replayed.
		if expires.After(e.expires) {
			e.expires = expires
			heap.Fix(&c.byTime, e.index)
		}
		return replaySeen, 0
	}
	if len(c.entries) >= c.max {
		return replayFull, c.byTime[0].expires.Sub(now)
	}
	e := &replayEntry{key: key, expires: expires}
	c.entries[key] = e
	heap.Push(&c.byTime, e)
	return replayNew, 0
}

// expire drops the entries whose message can no longer pass the timestamp check at now.
func (c *replayCache) expire(now time.Time) {
	for len(c.byTime) > 0 && now.After(c.byTime[0].expires) {
		e, _ := heap.Pop(&c.byTime).(*replayEntry)
		delete(c.entries, e.key)
	}
}

// len returns the number of IDs remembered.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// expiryHeap is a min-heap of entries by expiry (container/heap).
type expiryHeap []*replayEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *expiryHeap) Push(x any) {
	e, _ := x.(*replayEntry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *expiryHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return e
}
