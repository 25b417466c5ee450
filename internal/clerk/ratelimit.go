package clerk

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultRetryAfter is how long the key's bucket is paused after a 429 that carries no usable
// Retry-After header.
const DefaultRetryAfter = time.Second

// MaxPause caps how long one 429 can pause a key's bucket, so that a bogus Retry-After cannot
// stop the client for hours. APIError.RetryAfter still reports the value Clerk sent.
const MaxPause = 5 * time.Minute

// keyBucket is the rate-limiting state shared by every Client with the same secret key.
type keyBucket struct {
	limiter *rate.Limiter

	mu          sync.Mutex
	pausedUntil time.Time
}

// buckets is the process-wide registry of token buckets, keyed by SHA-256 of the secret key so
// that the key itself is not kept here. Entries are never removed: a process uses few keys.
var buckets = struct {
	sync.Mutex
	m map[[sha256.Size]byte]*keyBucket
}{m: map[[sha256.Size]byte]*keyBucket{}}

// bucketFor returns the bucket of key, creating it or (when it exists) setting its rate and
// burst: the latest caller wins.
func bucketFor(key string, limit rate.Limit, burst int) *keyBucket {
	id := sha256.Sum256([]byte(key))
	buckets.Lock()
	defer buckets.Unlock()
	b, ok := buckets.m[id]
	if !ok {
		b = &keyBucket{limiter: rate.NewLimiter(limit, burst)}
		buckets.m[id] = b
		return b
	}
	now := time.Now()
	b.limiter.SetLimitAt(now, limit)
	b.limiter.SetBurstAt(now, burst)
	return b
}

func (b *keyBucket) pausedUntilTime() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pausedUntil
}

// pause holds back every request on this key for d (DefaultRetryAfter when d <= 0, at most
// MaxPause). A pause only ever extends an existing one.
func (b *keyBucket) pause(d time.Duration) {
	if d <= 0 {
		d = DefaultRetryAfter
	}
	d = min(d, MaxPause)
	until := time.Now().Add(d)
	b.mu.Lock()
	defer b.mu.Unlock()
	if until.After(b.pausedUntil) {
		b.pausedUntil = until
	}
}

// wait blocks until a request on this key may be sent: first until any 429 pause has passed,
// then for a token, then again for a pause that began meanwhile. It returns a *LimiterError
// when ctx is done, or when ctx's deadline would pass before the request could be sent (in
// which case it returns at once instead of waiting in vain).
func (b *keyBucket) wait(ctx context.Context, method, path string) error {
	if err := b.waitPause(ctx, method, path); err != nil {
		return err
	}
	if err := b.limiter.Wait(ctx); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return &LimiterError{Method: method, Path: path, Err: cerr}
		}
		// The limiter refused because the deadline would pass before a token is available.
		return &LimiterError{Method: method, Path: path, RetryAfter: b.tokenDelay(), Err: errDeadlineTooSoon}
	}
	return b.waitPause(ctx, method, path)
}

// waitPause waits until the bucket is not paused.
func (b *keyBucket) waitPause(ctx context.Context, method, path string) error {
	for {
		until := b.pausedUntilTime()
		d := time.Until(until)
		if d <= 0 {
			return nil
		}
		if dl, ok := ctx.Deadline(); ok && dl.Before(until) {
			return &LimiterError{Method: method, Path: path, RetryAfter: d, Err: errDeadlineTooSoon}
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return &LimiterError{Method: method, Path: path, RetryAfter: max(0, time.Until(until)), Err: ctx.Err()}
		case <-t.C:
			// Loop: the pause may have been extended while we waited.
		}
	}
}

// tokenDelay estimates how long until the limiter has a token.
func (b *keyBucket) tokenDelay() time.Duration {
	lim := b.limiter.Limit()
	if lim == rate.Inf || lim <= 0 {
		return 0
	}
	missing := 1 - b.limiter.Tokens()
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / float64(lim) * float64(time.Second))
}
