package clerkfake

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// maxFilterValues is the documented cap on each array query parameter.
const maxFilterValues = 100

// orderFields are the allowed order_by properties of GET /users.
var orderFields = []string{"created_at", "updated_at", "email_address", "web3wallet", "first_name", "last_name",
	"phone_number", "username", "last_active_at", "last_sign_in_at"}

// userFilter is the parsed filter set shared by GET /users and GET /users/count.
type userFilter struct {
	emails, phones, usernames, wallets, providerUserIDs []string
	userIn, userOut, extIn, extOut, orgIn, orgOut       []string
	query, emailQ, phoneQ, usernameQ, nameQ             string
	provider                                            string
	banned                                              *bool
	activeBefore, activeAfter                           *int64
	createdBefore, createdAfter                         *int64
	signInBefore, signInAfter                           *int64
}

// multi returns the values of a repeated query key (key=a&key=b, also key[]=a).
func multi(q url.Values, key string) ([]string, *apiError) {
	vals := append(append([]string(nil), q[key]...), q[key+"[]"]...)
	if len(vals) > maxFilterValues {
		return nil, errArrayTooLong(key, maxFilterValues)
	}
	return vals, nil
}

// splitSign separates "+id"/"id" (include) from "-id" (exclude).
func splitSign(vals []string) (in, out []string) {
	for _, v := range vals {
		switch {
		case strings.HasPrefix(v, "-"):
			out = append(out, v[1:])
		case strings.HasPrefix(v, "+"):
			in = append(in, v[1:])
		default:
			in = append(in, v)
		}
	}
	return in, out
}

func queryInt(q url.Values, key string) (*int64, *apiError) {
	v := q.Get(key)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, newAPIError(http.StatusUnprocessableEntity, "form_param_invalid_date", "is invalid",
			key+" must be a Unix timestamp in milliseconds.", paramMeta(key))
	}
	return &n, nil
}

func parseFilter(q url.Values) (*userFilter, *apiError) {
	f := &userFilter{}
	var e *apiError
	lists := []struct {
		key string
		dst *[]string
	}{{"email_address", &f.emails}, {"phone_number", &f.phones}, {"username", &f.usernames},
		{"web3_wallet", &f.wallets}, {"provider_user_id", &f.providerUserIDs}}
	for _, l := range lists {
		if *l.dst, e = multi(q, l.key); e != nil {
			return nil, e
		}
	}
	signed := []struct {
		key     string
		in, out *[]string
	}{{"user_id", &f.userIn, &f.userOut}, {"external_id", &f.extIn, &f.extOut}, {"organization_id", &f.orgIn, &f.orgOut}}
	for _, l := range signed {
		vals, e := multi(q, l.key)
		if e != nil {
			return nil, e
		}
		*l.in, *l.out = splitSign(vals)
	}
	f.query = lower(q.Get("query"))
	f.emailQ = lower(q.Get("email_address_query"))
	f.phoneQ = lower(q.Get("phone_number_query"))
	f.usernameQ = lower(q.Get("username_query"))
	f.nameQ = lower(q.Get("name_query"))
	f.provider = q.Get("provider")
	if (f.provider == "") != (len(f.providerUserIDs) == 0) {
		return nil, newAPIError(http.StatusUnprocessableEntity, "form_conditional_param_missing", "missing data",
			"provider and provider_user_id must be used together.", paramMeta("provider"))
	}
	if v := q.Get("banned"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, errQueryValue("banned", v)
		}
		f.banned = &b
	}
	ints := []struct {
		key string
		dst **int64
	}{{"last_active_at_before", &f.activeBefore}, {"last_active_at_after", &f.activeAfter},
		{"created_at_before", &f.createdBefore}, {"created_at_after", &f.createdAfter},
		{"last_sign_in_at_before", &f.signInBefore}, {"last_sign_in_at_after", &f.signInAfter}}
	for _, l := range ints {
		if *l.dst, e = queryInt(q, l.key); e != nil {
			return nil, e
		}
	}
	if f.activeAfter == nil { // deprecated alias
		if f.activeAfter, e = queryInt(q, "last_active_at_since"); e != nil {
			return nil, e
		}
	}
	return f, nil
}

func containsFold(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

func before(v *int64, limit *int64) bool { return limit == nil || (v != nil && *v < *limit) }
func after(v *int64, limit *int64) bool  { return limit == nil || (v != nil && *v > *limit) }

// matches applies every filter (different filters combine as AND).
func (f *userFilter) matches(u *user) bool {
	return f.matchesIDs(&u.data) && f.matchesIdentifiers(&u.data) && f.matchesOrgs(u) &&
		f.matchesProvider(&u.data) && f.matchesState(&u.data) && f.matchesSearch(&u.search)
}

// matchesIDs applies user_id and external_id.
func (f *userFilter) matchesIDs(d *userJSON) bool {
	if len(f.userIn) > 0 && !slices.Contains(f.userIn, d.ID) || slices.Contains(f.userOut, d.ID) {
		return false
	}
	ext := deref(d.ExternalID)
	if len(f.extIn) > 0 && (d.ExternalID == nil || !slices.Contains(f.extIn, ext)) {
		return false
	}
	return d.ExternalID == nil || !slices.Contains(f.extOut, ext)
}

// matchesIdentifiers applies the exact-match email_address, phone_number,
// web3_wallet and username filters.
func (f *userFilter) matchesIdentifiers(d *userJSON) bool {
	if len(f.emails) > 0 && !slices.ContainsFunc(d.EmailAddresses, func(e *emailAddress) bool {
		return containsFold(f.emails, e.EmailAddress)
	}) {
		return false
	}
	if len(f.phones) > 0 && !slices.ContainsFunc(d.PhoneNumbers, func(p *phoneNumber) bool {
		return slices.Contains(f.phones, p.PhoneNumber)
	}) {
		return false
	}
	if len(f.wallets) > 0 && !slices.ContainsFunc(d.Web3Wallets, func(w *web3Wallet) bool {
		return containsFold(f.wallets, w.Web3Wallet)
	}) {
		return false
	}
	return len(f.usernames) == 0 || (d.Username != nil && containsFold(f.usernames, *d.Username))
}

// matchesOrgs applies organization_id.
func (f *userFilter) matchesOrgs(u *user) bool {
	if len(f.orgIn) == 0 && len(f.orgOut) == 0 {
		return true
	}
	orgs := u.orgIDs()
	if len(f.orgIn) > 0 && !slices.ContainsFunc(orgs, func(o string) bool { return slices.Contains(f.orgIn, o) }) {
		return false
	}
	return !slices.ContainsFunc(orgs, func(o string) bool { return slices.Contains(f.orgOut, o) })
}

// matchesProvider applies provider with provider_user_id.
func (f *userFilter) matchesProvider(d *userJSON) bool {
	return f.provider == "" || slices.ContainsFunc(d.ExternalAccounts, func(ea map[string]any) bool {
		p, _ := ea["provider"].(string)
		pid, _ := ea["provider_user_id"].(string)
		return providerMatches(p, f.provider) && slices.Contains(f.providerUserIDs, pid)
	})
}

// matchesState applies banned and the timestamp ranges.
func (f *userFilter) matchesState(d *userJSON) bool {
	if f.banned != nil && d.Banned != *f.banned {
		return false
	}
	return before(d.LastActiveAt, f.activeBefore) && after(d.LastActiveAt, f.activeAfter) &&
		before(&d.CreatedAt, f.createdBefore) && after(&d.CreatedAt, f.createdAfter) &&
		before(d.LastSignInAt, f.signInBefore) && after(d.LastSignInAt, f.signInAfter)
}

// matchesSearch applies the partial-match filters and query.
func (f *userFilter) matchesSearch(ix *searchIndex) bool {
	if f.emailQ != "" && !slices.ContainsFunc(ix.emails, func(e string) bool { return strings.Contains(e, f.emailQ) }) {
		return false
	}
	if f.phoneQ != "" && !slices.ContainsFunc(ix.phones, func(p string) bool { return strings.Contains(p, f.phoneQ) }) {
		return false
	}
	if f.usernameQ != "" && !strings.Contains(ix.username, f.usernameQ) {
		return false
	}
	if f.nameQ != "" && !strings.Contains(ix.name, f.nameQ) {
		return false
	}
	return f.query == "" || strings.Contains(ix.all, f.query)
}

func fullName(d *userJSON) string {
	return strings.TrimSpace(deref(d.FirstName) + " " + deref(d.LastName))
}

// providerMatches compares OAuth providers, accepting "google" for "oauth_google".
func providerMatches(stored, asked string) bool {
	return stored == asked || stored == "oauth_"+asked || "oauth_"+stored == asked
}

// orgIDs lists the organizations the user is a member of.
func (u *user) orgIDs() []string {
	var out []string
	for _, m := range u.memberships {
		if org, ok := m["organization"].(map[string]any); ok {
			if id, ok := org["id"].(string); ok {
				out = append(out, id)
			}
		}
	}
	return out
}

// ordering is a parsed order_by.
type ordering struct {
	field string
	desc  bool
}

func parseOrder(q url.Values) (ordering, *apiError) {
	v := q.Get("order_by") // only the first order_by is used
	if v == "" {
		return ordering{field: "created_at", desc: true}, nil
	}
	o := ordering{field: v}
	switch v[0] {
	case '-':
		o.field, o.desc = v[1:], true
	case '+':
		o.field = v[1:]
	}
	if !slices.Contains(orderFields, o.field) {
		return o, errQueryValue("order_by", v)
	}
	return o, nil
}

// sortKey returns the string or integer value ordered on; null values sort
// last ascending and first descending, as in PostgreSQL.
func sortValue(u *user, field string) (s string, n *int64) {
	d := &u.data
	switch field {
	case "created_at":
		return "", &d.CreatedAt
	case "updated_at":
		return "", &d.UpdatedAt
	case "last_active_at":
		return "", d.LastActiveAt
	case "last_sign_in_at":
		return "", d.LastSignInAt
	case "email_address":
		return u.primaryEmail(), nil
	case "phone_number":
		return u.primaryPhone(), nil
	case "web3wallet":
		return u.primaryWeb3(), nil
	case "first_name":
		return deref(d.FirstName), nil
	case "last_name":
		return deref(d.LastName), nil
	case "username":
		return deref(d.Username), nil
	}
	return "", nil
}

func isIntField(field string) bool {
	switch field {
	case "created_at", "updated_at", "last_active_at", "last_sign_in_at":
		return true
	}
	return false
}

// compare orders a before b (negative) under o, with created_at and
// insertion order as tie-breakers in the same direction.
func (o ordering) compare(a, b *user) int {
	c := 0
	as, an := sortValue(a, o.field)
	bs, bn := sortValue(b, o.field)
	if isIntField(o.field) {
		switch {
		case an == nil && bn == nil:
		case an == nil:
			return nullOrder(o.desc)
		case bn == nil:
			return -nullOrder(o.desc)
		default:
			c = cmp.Compare(*an, *bn)
		}
	} else {
		switch {
		case as == "" && bs == "":
		case as == "":
			return nullOrder(o.desc)
		case bs == "":
			return -nullOrder(o.desc)
		default:
			c = cmp.Compare(lower(as), lower(bs))
		}
	}
	if c == 0 {
		c = cmp.Compare(a.data.CreatedAt, b.data.CreatedAt)
	}
	if c == 0 {
		c = cmp.Compare(a.seq, b.seq)
	}
	if o.desc {
		c = -c
	}
	return c
}

// nullOrder: a null a sorts after b ascending (NULLS LAST) and before b
// descending (NULLS FIRST).
func nullOrder(desc bool) int {
	if desc {
		return -1
	}
	return 1
}

// pageParams parses limit and offset (LimitParameter, OffsetParameter).
func pageParams(q url.Values) (limit, offset int, e *apiError) {
	limit, offset = 10, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, 0, errParamType("limit", "integer")
		}
		if n < 1 || n > 500 {
			return 0, 0, errParamValue("limit", "limit must be between 1 and 500.")
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, 0, errParamType("offset", "integer")
		}
		if n < 0 {
			return 0, 0, errParamValue("offset", "offset must be greater than or equal to 0.")
		}
		offset = n
	}
	return limit, offset, nil
}

func (s *Server) listUsers(c *call) reply {
	q := c.r.URL.Query()
	f, e := parseFilter(q)
	if e != nil {
		return fail(e)
	}
	order, e := parseOrder(q)
	if e != nil {
		return fail(e)
	}
	limit, offset, e := pageParams(q)
	if e != nil {
		return fail(e)
	}
	cursor := q.Get("starting_after")
	if cursor != "" {
		if order.field != "created_at" {
			return fail(errParamValue("starting_after", "starting_after can only be used when ordering by created_at."))
		}
		if offset != 0 {
			return fail(errParamValue("starting_after", "starting_after cannot be combined with a non-zero offset."))
		}
	}

	s.st.mu.RLock()
	defer s.st.mu.RUnlock()
	var cur *user
	if cursor != "" {
		if cur = s.st.users[cursor]; cur == nil {
			return fail(errParamValue("starting_after", "starting_after must be the ID of an existing user."))
		}
	}
	var matched []*user
	for _, u := range s.st.users {
		if f.matches(u) && (cur == nil || order.compare(cur, u) < 0) {
			matched = append(matched, u)
		}
	}
	matched = firstN(matched, offset+limit, order.compare)
	if offset >= len(matched) {
		matched = nil
	} else {
		matched = matched[offset:]
	}
	nowMS := c.now.UnixMilli()
	items := make([][]byte, len(matched))
	for i, u := range matched {
		items[i] = u.render(nowMS)
	}
	return okJSON(joinArray(items))
}

// totalCount is the TotalCount schema.
type totalCount struct {
	Object     string `json:"object"`
	TotalCount int64  `json:"total_count"`
}

// countUsers answers GET /users/count. limit, offset, order_by and
// starting_after are ignored (clerk-sdk-go sends them).
func (s *Server) countUsers(c *call) reply {
	f, e := parseFilter(c.r.URL.Query())
	if e != nil {
		return fail(e)
	}
	s.st.mu.RLock()
	n := 0
	for _, u := range s.st.users {
		if f.matches(u) {
			n++
		}
	}
	s.st.mu.RUnlock()
	return okValue(totalCount{Object: "total_count", TotalCount: int64(n)})
}

// firstN returns the first n items of us in compare order, sorted. For small n
// it keeps a sorted window instead of sorting everything: listing pages of
// 10 over thousands of users is the common case.
func firstN(us []*user, n int, compare func(a, b *user) int) []*user {
	if n >= len(us)/4 {
		slices.SortFunc(us, compare)
		if len(us) > n {
			us = us[:n]
		}
		return us
	}
	top := make([]*user, 0, n+1)
	for _, u := range us {
		if len(top) == n && compare(u, top[n-1]) >= 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(top, u, compare)
		top = slices.Insert(top, i, u)
		if len(top) > n {
			top = top[:n]
		}
	}
	return top
}
