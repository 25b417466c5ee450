package instance

import (
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/metrics"
)

// Config is what a ClerkInstance's client is built from: the key read from its Secret and the
// spec's URL and budget.
type Config struct {
	// Key is the secret key; it goes into the client and nowhere else.
	Key string `json:"-"`
	// APIURL is the Backend API base URL; "" means Clerk's.
	APIURL string
	// RequestsPerSecond and Burst are the budget; 0 means the client's default for the key type.
	RequestsPerSecond, Burst int32
}

// fingerprint identifies a Config without holding its key, so that a change (a rotated key, a
// new URL or budget) is seen without keeping a second copy of the key.
func (c Config) fingerprint() [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%d", c.Key, c.APIURL, c.RequestsPerSecond, c.Burst))
}

// Clients holds one Clerk client per ClerkInstance, each with its own budget (Clerk's rate limit
// belongs to the secret key, and so does the client's token bucket: a 429 storm on one
// instance never slows another). A client is replaced when its Config changes: a key rotated in
// its Secret is used from the next call on, without a restart. Safe for concurrent use.
type Clients struct {
	// Metrics, when set, records each instance's requests and budget.
	Metrics *metrics.Metrics

	mu     sync.RWMutex
	byName map[string]entry
}

type entry struct {
	client *clerk.Client
	print  [32]byte
}

// Ensure returns the client of instance name for cfg, building a new one when there is none or
// cfg changed (changed reports that). Errors (an invalid URL, budget or key) never contain the key.
func (s *Clients) Ensure(name string, cfg Config) (c *clerk.Client, changed bool, err error) {
	p := cfg.fingerprint()
	s.mu.RLock()
	e, ok := s.byName[name]
	s.mu.RUnlock()
	if ok && e.print == p {
		return e.client, false, nil
	}
	if err := ValidateAPIURL(cfg.APIURL); err != nil {
		return nil, false, err
	}
	opts := clerk.Options{BaseURL: cfg.APIURL, SecretKey: cfg.Key, RequestsPerSecond: float64(cfg.RequestsPerSecond),
		Burst: int(cfg.Burst)}
	if cfg.RequestsPerSecond <= 0 {
		opts.RequestsPerSecond = 0
	}
	if cfg.Burst <= 0 {
		opts.Burst = 0
	}
	if s.Metrics != nil {
		opts.Observer = s.Metrics.Client(name)
	}
	c, err = clerk.New(opts)
	if err != nil {
		return nil, false, fmt.Errorf("build the Clerk client of ClerkInstance %s: %w", name, err)
	}
	s.Metrics.SetBudget(name, float64(c.Limiter().Limit()))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byName == nil {
		s.byName = map[string]entry{}
	}
	s.byName[name] = entry{client: c, print: p}
	return c, true, nil
}

// Get returns the client of instance name, if it has one.
func (s *Clients) Get(name string) (*clerk.Client, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.byName[name]
	return e.client, ok
}

// Remove drops the client of instance name (the instance is gone, or its Secret is).
func (s *Clients) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byName[name]; ok {
		s.Metrics.ForgetInstance(name)
	}
	delete(s.byName, name)
}
