package recorder

import (
	"encoding/binary"
	"hash/fnv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
)

// seriesKey identifies isomorphic Events: a 128-bit FNV-1a hash of what client-go's eventKey
// holds (type, action, reason, reporting controller and instance, the regarding and related
// references) and the note. A hash instead of the fields keeps an entry small; at 4096 entries
// the chance of two different Events sharing a hash is about 2^-105.
type seriesKey [16]byte

// keyOf returns the identity of ev.
func keyOf(ev *eventsv1.Event) seriesKey {
	h := fnv.New128a()
	var buf [binary.MaxVarintLen64]byte
	write := func(s string) {
		// Each field is prefixed with its length so that ("ab", "c") and ("a", "bc") differ.
		_, _ = h.Write(buf[:binary.PutUvarint(buf[:], uint64(len(s)))])
		_, _ = h.Write([]byte(s))
	}
	writeRef := func(r *corev1.ObjectReference) {
		write(r.Kind)
		write(r.Namespace)
		write(r.Name)
		write(string(r.UID))
		write(r.APIVersion)
		write(r.ResourceVersion)
		write(r.FieldPath)
	}
	write(ev.Type)
	write(ev.Action)
	write(ev.Reason)
	write(ev.ReportingController)
	write(ev.ReportingInstance)
	write(ev.Note)
	writeRef(&ev.Regarding)
	if ev.Related != nil {
		write("related")
		writeRef(ev.Related)
	} else {
		write("")
	}
	var k seriesKey
	h.Sum(k[:0])
	return k
}

// seriesEntry is what the cache keeps of a series: the Event that heads it, how many times it
// occurred, and when last. It is an element of the cache's LRU list.
type seriesEntry struct {
	key       seriesKey
	namespace string
	name      string
	count     int32
	last      int64 // UnixNano of the last occurrence
	// prev is more recently used, next less; the list is circular around the cache's root.
	prev, next *seriesEntry
}

// seriesCache is a bounded LRU cache of series. It is not safe for concurrent use.
type seriesCache struct {
	max    int
	window time.Duration
	m      map[seriesKey]*seriesEntry
	root   seriesEntry // root.next is the most recently used entry, root.prev the least
}

func newSeriesCache(maxEntries int, window time.Duration) *seriesCache {
	c := &seriesCache{max: maxEntries, window: window, m: make(map[seriesKey]*seriesEntry)}
	c.root.next, c.root.prev = &c.root, &c.root
	return c
}

func (c *seriesCache) len() int { return len(c.m) }

// get returns the live entry of key at time t, marking it used, or nil. An entry whose last
// occurrence is more than the window before t is dead: get removes it.
func (c *seriesCache) get(key seriesKey, t time.Time) *seriesEntry {
	e := c.m[key]
	if e == nil {
		return nil
	}
	if t.UnixNano()-e.last > int64(c.window) {
		c.remove(e)
		return nil
	}
	c.unlink(e)
	c.pushFront(e)
	return e
}

// put makes the Event namespace/name, which occurred at t, the head of key's series, evicting
// the least recently used entry when the cache is full.
func (c *seriesCache) put(key seriesKey, namespace, name string, t time.Time) {
	if e := c.m[key]; e != nil {
		c.remove(e)
	}
	for len(c.m) >= c.max && c.root.prev != &c.root {
		c.remove(c.root.prev)
	}
	// Clone so that an entry never keeps a larger string (an object's buffer) alive.
	e := &seriesEntry{key: key, namespace: strings.Clone(namespace), name: strings.Clone(name), count: 1, last: t.UnixNano()}
	c.m[key] = e
	c.pushFront(e)
}

// forget removes key's entry if it still heads the series with the Event name.
func (c *seriesCache) forget(key seriesKey, name string) {
	if e := c.m[key]; e != nil && e.name == name {
		c.remove(e)
	}
}

// prune removes the dead entries at now. The list is in order of use, which is the order of
// the last occurrences, so they are all at its end.
func (c *seriesCache) prune(now time.Time) {
	for e := c.root.prev; e != &c.root && now.UnixNano()-e.last > int64(c.window); e = c.root.prev {
		c.remove(e)
	}
}

func (c *seriesCache) remove(e *seriesEntry) {
	c.unlink(e)
	delete(c.m, e.key)
}

func (c *seriesCache) unlink(e *seriesEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *seriesCache) pushFront(e *seriesEntry) {
	e.prev, e.next = &c.root, c.root.next
	c.root.next.prev = e
	c.root.next = e
}
