package instance

import (
	"strings"
	"testing"
)

// TestValidateAPIURL covers the rule; test/crd checks that the CRD's CEL rule for spec.apiURL agrees with it.
func TestValidateAPIURL(t *testing.T) {
	valid := []string{
		"",
		"https://api.clerk.com/v1",
		"https://api.clerk.com/v1/",
		"https://api.clerk.com",
		"https://api.clerk.com:443/v1",
		"HTTPS://api.clerk.com/v1",
		"https://clerk-proxy.internal.example:8443/v1",
		"https://10.0.0.5/v1",
		"https://[2001:db8::1]/v1",
		"http://127.0.0.1/v1",
		"http://127.0.0.1:8089/v1",
		"http://localhost:8089/v1",
		"http://localhost",
		"http://[::1]:8089/v1",
		"http://[::1]/v1",
	}
	invalid := []struct{ url, want string }{
		{"http://api.clerk.com/v1", "http:// for a host other than"},
		{"http://10.0.0.5:8089/v1", "http:// for a host other than"},
		{"http://127.0.0.2:8089/v1", "http:// for a host other than"},
		{"http://localhost.evil.com/v1", "http:// for a host other than"},
		{"http://127.0.0.1.nip.io/v1", "http:// for a host other than"},
		{"http://[::2]/v1", "http:// for a host other than"},
		{"http://0.0.0.0:8089/v1", "http:// for a host other than"},
		{"http://127.0.0.1@evil.com/v1", "user info"},
		{"https://user:pass@api.clerk.com/v1", "user info"},
		{"https://api.clerk.com/v1?x=1", "query"},
		{"https://api.clerk.com/v1#frag", "fragment"},
		{"ftp://api.clerk.com/v1", `scheme "ftp"`},
		{"ws://localhost/v1", `scheme "ws"`},
		{"api.clerk.com/v1", "not an absolute URL"},
		{"/v1", "not an absolute URL"},
		{"https:///v1", "has no host"},
		{"https:api.clerk.com", "not an absolute URL"},
		{"https://", "has no host"},
		{"https:// api.clerk.com", "not an absolute URL"},
	}
	for _, u := range valid {
		t.Run(u, func(t *testing.T) {
			if err := ValidateAPIURL(u); err != nil {
				t.Errorf("ValidateAPIURL(%q) = %v, want nil", u, err)
			}
		})
	}
	for _, tc := range invalid {
		t.Run(tc.url, func(t *testing.T) {
			err := ValidateAPIURL(tc.url)
			if err == nil {
				t.Fatalf("ValidateAPIURL(%q) = nil, want an error", tc.url)
			}
			for _, w := range []string{"spec.apiURL", tc.want, "https://api.clerk.com/v1"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "pass") {
				t.Errorf("error %q repeats user info from the URL", err)
			}
		})
	}
}
