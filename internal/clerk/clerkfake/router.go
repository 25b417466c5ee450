package clerkfake

import (
	"net/url"
	"strings"
)

// handlerFunc computes the answer to one authenticated, admitted /v1 call.
type handlerFunc func(s *Server, c *call) reply

// route is one operation of the Backend API, by method and spec path template.
type route struct {
	method   string
	template string   // "/v1/users/{user_id}/ban"
	segs     []string // split template; "{x}" segments capture
	name     string   // "POST /v1/users/{user_id}/ban" (stats key, fault filter)
	handle   handlerFunc
	perUser  bool // counts against the per-user write limit
	literals int  // number of literal segments (more wins on ambiguity)
}

// routes lists every implemented users operation of bapi/2026-05-12.yml.
// POST /v1/users/{user_id}/totp (CreateUserTOTP) is deliberately absent: it
// was removed from the API and is answered 404 like any unknown route.
var routes = buildRoutes([]route{
	{method: "GET", template: "/v1/users", handle: (*Server).listUsers},
	{method: "POST", template: "/v1/users", handle: (*Server).createUser},
	{method: "GET", template: "/v1/users/count", handle: (*Server).countUsers},
	{method: "POST", template: "/v1/users/ban", handle: (*Server).bulkBan},
	{method: "POST", template: "/v1/users/unban", handle: (*Server).bulkUnban},
	{method: "GET", template: "/v1/users/{user_id}", handle: (*Server).getUser},
	{method: "PATCH", template: "/v1/users/{user_id}", handle: (*Server).updateUser, perUser: true},
	{method: "DELETE", template: "/v1/users/{user_id}", handle: (*Server).deleteUser},
	{method: "POST", template: "/v1/users/{user_id}/ban", handle: (*Server).banUser},
	{method: "POST", template: "/v1/users/{user_id}/unban", handle: (*Server).unbanUser},
	{method: "POST", template: "/v1/users/{user_id}/lock", handle: (*Server).lockUser},
	{method: "POST", template: "/v1/users/{user_id}/unlock", handle: (*Server).unlockUser},
	{method: "POST", template: "/v1/users/{user_id}/profile_image", handle: (*Server).setProfileImage},
	{method: "DELETE", template: "/v1/users/{user_id}/profile_image", handle: (*Server).deleteProfileImage},
	{method: "PATCH", template: "/v1/users/{user_id}/metadata", handle: (*Server).mergeMetadata, perUser: true},
	{method: "PUT", template: "/v1/users/{user_id}/metadata", handle: (*Server).replaceMetadata, perUser: true},
	{method: "GET", template: "/v1/users/{user_id}/oauth_access_tokens/{provider}", handle: (*Server).oauthAccessTokens},
	{method: "GET", template: "/v1/users/{user_id}/organization_memberships", handle: (*Server).organizationMemberships},
	{method: "GET", template: "/v1/users/{user_id}/organization_invitations", handle: (*Server).organizationInvitations},
	{method: "POST", template: "/v1/users/{user_id}/remove_password", handle: (*Server).removePassword},
	{method: "POST", template: "/v1/users/{user_id}/verify_password", handle: (*Server).verifyPassword},
	{method: "POST", template: "/v1/users/{user_id}/verify_totp", handle: (*Server).verifyTOTP},
	{method: "DELETE", template: "/v1/users/{user_id}/mfa", handle: (*Server).disableMFA},
	{method: "DELETE", template: "/v1/users/{user_id}/backup_code", handle: (*Server).deleteBackupCodes},
	{method: "DELETE", template: "/v1/users/{user_id}/passkeys/{passkey_identification_id}", handle: (*Server).deletePasskey},
	{method: "DELETE", template: "/v1/users/{user_id}/web3_wallets/{web3_wallet_identification_id}", handle: (*Server).deleteWeb3Wallet},
	{method: "DELETE", template: "/v1/users/{user_id}/totp", handle: (*Server).deleteTOTP},
	{method: "DELETE", template: "/v1/users/{user_id}/external_accounts/{external_account_id}", handle: (*Server).deleteExternalAccount},
})

// routeNames holds every "METHOD template" the server implements.
var routeNames = func() []string {
	out := make([]string, len(routes))
	for i, r := range routes {
		out[i] = r.name
	}
	return out
}()

// RouteNames returns every implemented route as "METHOD /v1/template",
// the form used by Stats and Faults.Routes.
func RouteNames() []string { return append([]string(nil), routeNames...) }

func buildRoutes(rs []route) []route {
	for i := range rs {
		r := &rs[i]
		r.segs = strings.Split(strings.TrimPrefix(r.template, "/"), "/")
		r.name = r.method + " " + r.template
		for _, s := range r.segs {
			if !strings.HasPrefix(s, "{") {
				r.literals++
			}
		}
	}
	return rs
}

// unmatchedName is the stats key for paths that match no template.
func unmatchedName(method string) string { return method + " /v1/*" }

// match finds the route for method and escaped path. It returns the route
// (nil when no operation exists for this method) and the name to count the
// request under: the route's name, or for a wrong method on a known path
// "METHOD template", or "METHOD /v1/*".
func match(method, escapedPath string) (*route, map[string]string, string) {
	p := strings.TrimSuffix(strings.TrimPrefix(escapedPath, "/"), "/")
	raw := strings.Split(p, "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, nil, unmatchedName(method)
		}
		segs[i] = u
	}
	var best, bestAnyMethod *route
	for i := range routes {
		r := &routes[i]
		if !r.matches(segs) {
			continue
		}
		if bestAnyMethod == nil || r.literals > bestAnyMethod.literals {
			bestAnyMethod = r
		}
		if r.method == method && (best == nil || r.literals > best.literals) {
			best = r
		}
	}
	if best == nil {
		if bestAnyMethod != nil {
			return nil, nil, method + " " + bestAnyMethod.template
		}
		return nil, nil, unmatchedName(method)
	}
	params := map[string]string{}
	for i, s := range best.segs {
		if strings.HasPrefix(s, "{") {
			params[s[1:len(s)-1]] = segs[i]
		}
	}
	return best, params, best.name
}

func (r *route) matches(segs []string) bool {
	if len(segs) != len(r.segs) {
		return false
	}
	for i, s := range r.segs {
		if strings.HasPrefix(s, "{") {
			if segs[i] == "" {
				return false
			}
			continue
		}
		if s != segs[i] {
			return false
		}
	}
	return true
}
