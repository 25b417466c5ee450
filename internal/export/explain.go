package export

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// Source says where the Clerk API URL and secret key came from, for error messages.
type Source struct {
	// URL is the API base URL used.
	URL string
	// URLFrom names where it came from, e.g. "--clerk-api-url" or "ClerkInstance acme spec.apiURL".
	URLFrom string
	// KeyFrom names where the key came from, e.g. "CLERK_SECRET_KEY" or "Secret kubeclerk-system/clerk key secret-key".
	KeyFrom string
}

// Explain turns an error of [Run] into a message that says what to fix. It never contains
// the secret key (the clerk package's errors do not).
func Explain(err error, src Source) string {
	var apiErr *clerk.APIError
	isAPI := errors.As(err, &apiErr)
	switch {
	case clerk.IsAuthentication(err):
		return fmt.Sprintf("Clerk refused the secret key from %s (HTTP %d): put the Backend API secret key "+
			"(sk_live_… or sk_test_…, Clerk Dashboard → API keys) of the instance at %s there (%v)",
			src.KeyFrom, apiErr.StatusCode, src.URL, err)
	case isAPI && apiErr.StatusCode == http.StatusNotFound:
		return fmt.Sprintf("%s has no Clerk users API (HTTP 404 for GET /users): check %s; it must include the "+
			"version prefix, e.g. https://api.clerk.com/v1 (%v)", src.URL, src.URLFrom, err)
	case isAPI && apiErr.StatusCode >= 300 && apiErr.StatusCode < 400:
		return fmt.Sprintf("%s answered with a redirect (HTTP %d): check %s; use the API's own https:// URL, "+
			"e.g. https://api.clerk.com/v1 (%v)", src.URL, apiErr.StatusCode, src.URLFrom, err)
	case Unreachable(err):
		return fmt.Sprintf("cannot reach the Clerk API at %s: check %s, your network and proxy settings (%v)",
			src.URL, src.URLFrom, err)
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case clerk.IsRateLimited(err):
		return fmt.Sprintf("Clerk kept answering 429 Too Many Requests; another client may be using the key's "+
			"whole budget. Try again later (%v)", err)
	case clerk.IsUnavailable(err):
		return fmt.Sprintf("the Clerk API at %s failed or did not answer in time; try again later, and check %s "+
			"if it persists (%v)", src.URL, src.URLFrom, err)
	}
	return err.Error()
}
