package clerkfake

import (
	"sync"
	"time"
)

// rateWindow is Clerk's rate-limit window: limits are "N requests per 10 seconds".
const rateWindow = 10 * time.Second

// Default per-key limits (clerk-docs system-limits.mdx; changelog 2025-07-03).
const (
	DefaultTestRateLimit    = 100  // sk_test_ keys (development instances)
	DefaultLiveRateLimit    = 1000 // sk_live_ keys (production instances)
	DefaultPerUserRateLimit = 10   // PATCH /users/{id}, PATCH|PUT /users/{id}/metadata
)

// DefaultRateLimitForKey returns Clerk's per-instance limit for a secret key:
// 1000 requests per 10 s for sk_live_ keys and 100 otherwise.
func DefaultRateLimitForKey(key string) int {
	if len(key) >= 8 && key[:8] == "sk_live_" {
		return DefaultLiveRateLimit
	}
	return DefaultTestRateLimit
}

// slidingLog admits at most limit events in any rateWindow: it remembers
// the times of the last limit admitted events in a ring.
type slidingLog struct {
	times []time.Time
	next  int
	n     int
}

// admit records an event at now if the window has room and returns 0, or
// returns how long until the oldest remembered event leaves the window.
func (l *slidingLog) admit(now time.Time, limit int) time.Duration {
	if len(l.times) != limit {
		l.times = make([]time.Time, limit)
		l.next, l.n = 0, 0
	}
	if l.n == limit {
		oldest := l.times[l.next]
		if wait := oldest.Add(rateWindow).Sub(now); wait > 0 {
			return wait
		}
	}
	l.times[l.next] = now
	l.next = (l.next + 1) % limit
	if l.n < limit {
		l.n++
	}
	return 0
}

// newest returns the most recent admitted event time.
func (l *slidingLog) newest() time.Time {
	if l.n == 0 {
		return time.Time{}
	}
	return l.times[(l.next-1+len(l.times))%len(l.times)]
}

// limiter implements the per-key and per-user limits. A limit of 0 turns
// the corresponding check off.
type limiter struct {
	mu      sync.Mutex
	keys    map[string]*slidingLog
	users   map[string]*slidingLog
	sweepAt int
}

func newLimiter() *limiter {
	return &limiter{keys: map[string]*slidingLog{}, users: map[string]*slidingLog{}, sweepAt: 1024}
}

func (l *limiter) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys = map[string]*slidingLog{}
	l.users = map[string]*slidingLog{}
}

// retryAfterSeconds rounds a wait up to whole seconds (at least 1), the
// integer form of Clerk's Retry-After header.
func retryAfterSeconds(wait time.Duration) int {
	s := max(int((wait+time.Second-1)/time.Second), 1)
	return s
}

// allowKey counts one request against key; it returns the Retry-After
// seconds when the key is over its limit, else 0.
func (l *limiter) allowKey(key string, limit int, now time.Time) int {
	if limit <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	log := l.keys[key]
	if log == nil {
		log = &slidingLog{}
		l.keys[key] = log
	}
	if wait := log.admit(now, limit); wait > 0 {
		return retryAfterSeconds(wait)
	}
	return 0
}

// allowUser counts one write against a user; see allowKey.
func (l *limiter) allowUser(userID string, limit int, now time.Time) int {
	if limit <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	log := l.users[userID]
	if log == nil {
		if len(l.users) >= l.sweepAt {
			l.sweep(now)
		}
		log = &slidingLog{}
		l.users[userID] = log
	}
	if wait := log.admit(now, limit); wait > 0 {
		return retryAfterSeconds(wait)
	}
	return 0
}

// sweep forgets users whose last write left the window, bounding memory.
func (l *limiter) sweep(now time.Time) {
	for id, log := range l.users {
		if now.Sub(log.newest()) >= rateWindow {
			delete(l.users, id)
		}
	}
	l.sweepAt = 2*len(l.users) + 1024
}
