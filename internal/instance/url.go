package instance

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// loopbackHosts are the only hosts an http:// spec.apiURL may name (the fake Clerk API in tests).
var loopbackHosts = []string{"127.0.0.1", "localhost", "::1"}

// ValidateAPIURL checks a ClerkInstance's spec.apiURL with the same rule as the CRD: an https://
// URL with a host, or an http:// URL whose host is 127.0.0.1, localhost or [::1] (any port);
// never user info, a query or a fragment. The empty string is valid: it means Clerk's API
// (https://api.clerk.com/v1). The error names spec.apiURL and says what to do.
func ValidateAPIURL(raw string) error {
	if raw == "" {
		return nil
	}
	bad := func(problem string) error {
		return fmt.Errorf("spec.apiURL %s; use an https:// URL such as https://api.clerk.com/v1 (http:// only for "+
			"127.0.0.1, localhost or [::1]), or remove the field to use Clerk's API", problem)
	}
	if strings.ContainsAny(raw, "@?#") {
		return bad("must not contain user info, a query or a fragment ('@', '?' or '#')")
	}
	// ParseRequestURI, as the CRD's CEL url() does: an absolute URL, no fragment parsing.
	u, err := url.ParseRequestURI(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return bad("is not an absolute URL")
	}
	host := u.Hostname()
	switch {
	case host == "":
		return bad("has no host")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http":
		if slices.Contains(loopbackHosts, host) {
			return nil
		}
		return bad("uses http:// for a host other than 127.0.0.1, localhost or [::1], which would send the secret key unencrypted")
	default:
		return bad(fmt.Sprintf("has scheme %q", u.Scheme))
	}
}
