package export

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// Lister lists Clerk users; *clerk.Client is one.
type Lister interface {
	ListUsers(ctx context.Context, p clerk.ListUsersParams) ([]clerk.User, error)
}

// PageSize is how many users one GET /users asks for: Clerk's maximum.
const PageSize = clerk.MaxListLimit

// OrderBy sorts pages oldest first, so that users created during an export come last instead
// of shifting the pages still to read.
const OrderBy = "created_at"

// Paging tunes [ForEachUser]; the zero value is usable.
type Paging struct {
	// PageSize is the limit of each request; 0 means PageSize.
	PageSize int
	// Retries is how often one page is asked for again after a 429, a 5xx or a network error
	// other than an unreachable server; 0 means 5, negative means none.
	Retries int
	// Sleep waits between retries; nil sleeps (and stops when ctx is done).
	Sleep func(ctx context.Context, d time.Duration) error
}

// ForEachUser calls fn for every user, reading pages of PageSize ordered by created_at
// (GET /users?limit=500&offset=…&order_by=created_at) until a page comes back short. A user seen
// twice (the pages shifted while reading) is passed once. It returns the number of requests
// that answered. The first error of fn, or of a page that failed after its retries, ends it.
// It never writes to Clerk.
func ForEachUser(ctx context.Context, l Lister, p Paging, fn func(*clerk.User) error) (pages int, err error) {
	size := p.PageSize
	if size <= 0 {
		size = PageSize
	}
	seen := map[string]bool{}
	for offset := 0; ; offset += size {
		users, err := listPage(ctx, l, p, clerk.ListUsersParams{Limit: size, Offset: offset, OrderBy: OrderBy})
		if err != nil {
			return pages, err
		}
		pages++
		for i := range users {
			u := &users[i]
			if seen[u.ID] {
				continue
			}
			seen[u.ID] = true
			if err := fn(u); err != nil {
				return pages, err
			}
		}
		if len(users) < size {
			return pages, nil
		}
	}
}

// listPage asks for one page, retrying what may pass.
func listPage(ctx context.Context, l Lister, p Paging, params clerk.ListUsersParams) ([]clerk.User, error) {
	retries := p.Retries
	switch {
	case retries == 0:
		retries = 5
	case retries < 0:
		retries = 0
	}
	sleep := p.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		users, err := l.ListUsers(ctx, params)
		if err == nil {
			return users, nil
		}
		if attempt >= retries || !retryable(err) || ctx.Err() != nil {
			return nil, &PageError{Offset: params.Offset, Attempts: attempt + 1, Err: err}
		}
		wait := backoff
		if d, ok := clerk.RetryAfter(err); ok {
			wait = d
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, &PageError{Offset: params.Offset, Attempts: attempt + 1, Err: err}
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// retryable reports whether asking again may succeed: a 429, a 5xx or 408, or a network
// failure other than an unreachable server (connection refused, unknown host: that is a wrong
// URL, reported at once).
func retryable(err error) bool {
	if clerk.IsRateLimited(err) {
		return true
	}
	if !clerk.IsUnavailable(err) {
		return false
	}
	return !Unreachable(err)
}

// Unreachable reports whether err is a failure to connect at all: unknown host or refused
// connection.
func Unreachable(err error) bool {
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return true
	}
	opErr, ok := errors.AsType[*net.OpError](err)
	return ok && opErr.Op == "dial"
}

// PageError is a page of users that could not be read.
type PageError struct {
	// Offset is the page's offset.
	Offset int
	// Attempts is how often it was asked for.
	Attempts int
	// Err is the last error.
	Err error
}

// Error implements error.
func (e *PageError) Error() string {
	if e.Attempts > 1 {
		return fmt.Sprintf("read users at offset %d (%d attempts): %v", e.Offset, e.Attempts, e.Err)
	}
	return fmt.Sprintf("read users at offset %d: %v", e.Offset, e.Err)
}

// Unwrap returns the cause.
func (e *PageError) Unwrap() error { return e.Err }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Result is what [Run] exported.
type Result struct {
	// Entries are the exported users, named and in order.
	Entries []Entry
	// Read is how many users Clerk returned.
	Read int
	// Filtered is how many of them the email domains left out.
	Filtered int
	// Skipped are the users that could not be exported, with the reason.
	Skipped []error
	// Pages is how many pages were read.
	Pages int
}

// Run reads every user through l, keeps those in o.EmailDomains, converts and names them. It
// returns nothing but the error when a page cannot be read: a partial export is never returned.
func Run(ctx context.Context, l Lister, o Options, p Paging) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.EmailDomains = NormalizeDomains(o.EmailDomains)
	r := &Result{}
	pages, err := ForEachUser(ctx, l, p, func(u *clerk.User) error {
		r.Read++
		if !MatchesDomains(u, o.EmailDomains) {
			r.Filtered++
			return nil
		}
		e, err := Convert(u, o)
		if err != nil {
			r.Skipped = append(r.Skipped, err)
			return nil
		}
		r.Entries = append(r.Entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.Pages = pages
	AssignNames(r.Entries)
	return r, nil
}
