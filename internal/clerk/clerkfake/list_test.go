package clerkfake

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// listFixture creates 15 users one second apart: u00 … u14, every third
// banned, with names, usernames, phones and external IDs.
func listFixture(t *testing.T) (*fixture, []string) {
	f := newFixture(t, Options{})
	ids := make([]string, 0, 15)
	for i := range 15 {
		body := map[string]any{
			"email_address": []string{fmt.Sprintf("user%02d@Example.com", i)},
			"username":      fmt.Sprintf("name_%02d", i),
			"first_name":    []string{"Ada", "Grace", "Alan"}[i%3],
			"last_name":     fmt.Sprintf("Last%02d", 14-i),
			"external_id":   fmt.Sprintf("ext-%02d", i),
			"phone_number":  []string{fmt.Sprintf("+1555000%04d", i)},
			"banned":        i%3 == 0,
		}
		ids = append(ids, f.create(body)["id"].(string))
		f.clock.Advance(time.Second)
	}
	return f, ids
}

func idsOf(l []map[string]any) []string {
	out := make([]string, len(l))
	for i, u := range l {
		out[i] = str(u, "id")
	}
	return out
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func TestListUsers(t *testing.T) {
	f, ids := listFixture(t)
	newest := reversed(ids)
	get := func(q string) []string { t.Helper(); return idsOf(f.do("GET", "/users?"+q, nil).list(t)) }
	count := func(q string) int64 { t.Helper(); return num(f.do("GET", "/users/count?"+q, nil).ok(t), "total_count") }

	cases := []struct {
		name, query string
		want        []string
	}{
		{"default: newest first, limit 10", "", newest[:10]},
		{"limit and offset", "limit=3&offset=2", newest[2:5]},
		{"offset past the end", "offset=100", []string{}},
		{"limit 500", "limit=500", newest},
		{"order created_at ascending", "order_by=created_at&limit=4", ids[:4]},
		{"order +created_at", "order_by=%2Bcreated_at&limit=4", ids[:4]},
		{"first order_by wins", "order_by=created_at&order_by=-created_at&limit=2", ids[:2]},
		{"order last_name", "order_by=last_name&limit=3", newest[:3]},
		{"order -username", "order_by=-username&limit=2", newest[:2]},
		{"order email_address", "order_by=email_address&limit=2", ids[:2]},
		{"user_id include", "user_id=" + ids[3] + "&user_id=" + ids[1], []string{ids[3], ids[1]}},
		{"user_id brackets", "user_id[]=" + ids[3], []string{ids[3]}},
		{"user_id exclude", "user_id=-" + ids[14] + "&user_id=-" + ids[13] + "&limit=2", []string{ids[12], ids[11]}},
		{"user_id plus prefix", "user_id=" + url.QueryEscape("+"+ids[2]), []string{ids[2]}},
		{"unknown user_id ignored", "user_id=user_nope&user_id=" + ids[0], []string{ids[0]}},
		{"external_id", "external_id=ext-04&external_id=ext-05", []string{ids[5], ids[4]}},
		{"external_id exclude", "external_id=-ext-14&limit=1", []string{ids[13]}},
		{"email_address case-insensitive", "email_address=USER07@example.com", []string{ids[7]}},
		{"username", "username=NAME_08", []string{ids[8]}},
		{"phone_number", "phone_number=%2B15550000009", []string{ids[9]}},
		{"query on email", "query=user1", []string{ids[14], ids[13], ids[12], ids[11], ids[10]}},
		{"query on name", "query=grace&limit=2", []string{ids[13], ids[10]}},
		{"query on id", "query=" + strings.ToLower(ids[6][5:]), []string{ids[6]}},
		{"email_address_query", "email_address_query=ER03@EXAMPLE", []string{ids[3]}},
		{"phone_number_query", "phone_number_query=0011", []string{ids[11]}},
		{"username_query", "username_query=ME_1&limit=2", []string{ids[14], ids[13]}},
		{"name_query full name", "name_query=alan%20last12", []string{ids[2]}},
		{"banned=true", "banned=true", []string{ids[12], ids[9], ids[6], ids[3], ids[0]}},
		{"banned=false", "banned=false&limit=2", []string{ids[14], ids[13]}},
		{"created_at window", fmt.Sprintf("created_at_after=%d&created_at_before=%d",
			f.clock.Now().Add(-5*time.Second-time.Millisecond).UnixMilli(), f.clock.Now().Add(-2*time.Second).UnixMilli()),
			[]string{ids[12], ids[11], ids[10]}},
		{"filters combine with AND", "banned=true&query=user0&unknown_param=x", []string{ids[9], ids[6], ids[3], ids[0]}},
		{"last_active_at filter excludes null", "last_active_at_after=1", []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, get(tc.query)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if tc.query != "" && !strings.Contains(tc.query, "limit") && !strings.Contains(tc.query, "offset") {
				if n := count(tc.query); n != int64(len(tc.want)) {
					t.Errorf("count %d, want %d", n, len(tc.want))
				}
			}
		})
	}

	t.Run("count ignores paging and ordering", func(t *testing.T) {
		if n := count("limit=1&offset=3&order_by=-updated_at&starting_after=x"); n != 15 {
			t.Errorf("count %d", n)
		}
		if n := count("banned=true&limit=1"); n != 5 {
			t.Errorf("banned count %d", n)
		}
		got := f.do("GET", "/users/count", nil).ok(t)
		if mustJSON(t, got) != `{"object":"total_count","total_count":15}` {
			t.Errorf("count body %v", got)
		}
	})

	t.Run("order by updated_at", func(t *testing.T) {
		f.do("PATCH", "/users/"+ids[2], map[string]any{"first_name": "Touched"}).ok(t)
		f.do("PATCH", "/users/"+ids[7], map[string]any{"first_name": "Touched"}).ok(t)
		if got := get("order_by=-updated_at&limit=2"); !slices.Equal(got, []string{ids[7], ids[2]}) {
			t.Errorf("-updated_at: %v", got)
		}
		if got := get("order_by=%2Bupdated_at&limit=1"); !slices.Equal(got, []string{ids[0]}) {
			t.Errorf("+updated_at: %v", got)
		}
		if got := get("order_by=updated_at&limit=15"); !slices.Equal(got[13:], []string{ids[2], ids[7]}) {
			t.Errorf("updated_at ascending ends with %v, want the two touched users", got[13:])
		}
	})

	t.Run("errors", func(t *testing.T) {
		f.do("GET", "/users?limit=0", nil).clerkErr(t, 422, "form_param_value_invalid")
		f.do("GET", "/users?limit=501", nil).clerkErr(t, 422, "form_param_value_invalid")
		f.do("GET", "/users?limit=ten", nil).clerkErr(t, 422, "form_param_type_invalid")
		f.do("GET", "/users?offset=-1", nil).clerkErr(t, 422, "form_param_value_invalid")
		f.do("GET", "/users?order_by=shoe_size", nil).clerkErr(t, 400, "invalid_query_parameter_value")
		f.do("GET", "/users?banned=maybe", nil).clerkErr(t, 400, "invalid_query_parameter_value")
		f.do("GET", "/users?created_at_after=yesterday", nil).clerkErr(t, 422, "form_param_invalid_date")
		f.do("GET", "/users?provider=oauth_google", nil).clerkErr(t, 422, "form_conditional_param_missing")
		many := url.Values{}
		for i := range 101 {
			many.Add("user_id", fmt.Sprintf("user_%d", i))
		}
		e := f.do("GET", "/users?"+many.Encode(), nil).clerkErr(t, 422, "form_param_array_size_exceeded")
		if paramName(e) != "user_id" {
			t.Errorf("param %q", paramName(e))
		}
		f.do("GET", "/users/count?"+many.Encode(), nil).clerkErr(t, 422, "form_param_array_size_exceeded")
		many.Del("user_id")
		for i := range 100 {
			many.Add("email_address", fmt.Sprintf("x%d@example.com", i))
		}
		f.do("GET", "/users?"+many.Encode(), nil).list(t) // exactly 100 is fine
	})
}

func TestListStartingAfter(t *testing.T) {
	f, ids := listFixture(t)
	for _, order := range []string{"", "-created_at", "created_at", "%2Bcreated_at"} {
		t.Run("order "+order, func(t *testing.T) {
			want := reversed(ids)
			if order == "created_at" || order == "%2Bcreated_at" {
				want = ids
			}
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("cursor pagination does not end")
				}
				q := "limit=4&order_by=" + order
				if cursor != "" {
					q += "&starting_after=" + cursor
				}
				page := idsOf(f.do("GET", "/users?"+q, nil).list(t))
				got = append(got, page...)
				if len(page) < 4 {
					break
				}
				cursor = page[len(page)-1]
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("walk (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("cursor with filters", func(t *testing.T) {
		got := idsOf(f.do("GET", "/users?banned=true&starting_after="+ids[9], nil).list(t))
		if !slices.Equal(got, []string{ids[6], ids[3], ids[0]}) {
			t.Errorf("got %v", got)
		}
		// The cursor need not match the filters itself.
		got = idsOf(f.do("GET", "/users?banned=true&starting_after="+ids[8], nil).list(t))
		if !slices.Equal(got, []string{ids[6], ids[3], ids[0]}) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("422 cases", func(t *testing.T) {
		for _, q := range []string{"order_by=-updated_at", "order_by=username", "order_by=email_address"} {
			e := f.do("GET", "/users?starting_after="+ids[3]+"&"+q, nil).clerkErr(t, 422, "form_param_value_invalid")
			if paramName(e) != "starting_after" {
				t.Errorf("%s: param %q", q, paramName(e))
			}
		}
		f.do("GET", "/users?starting_after="+ids[3]+"&offset=1", nil).clerkErr(t, 422, "form_param_value_invalid")
		f.do("GET", "/users?starting_after="+ids[3]+"&offset=0", nil).list(t) // zero offset is fine
		f.do("GET", "/users?starting_after=user_unknown", nil).clerkErr(t, 422, "form_param_value_invalid")
	})
}

func TestListFiltersSeededRelations(t *testing.T) {
	f := newFixture(t, Options{})
	err := f.srv.Seed(rawUsers(t,
		`{"id":"user_a","email_addresses":[{"email_address":"a@example.com"}],"organization_memberships":[{"organization":{"id":"org_1"}}],
		  "external_accounts":[{"provider":"oauth_google","provider_user_id":"g-1"}],"last_active_at":1000,"last_sign_in_at":2000,
		  "web3_wallets":[{"web3_wallet":"0xAbCdEf0123456789aBcDeF0123456789abcdef01"}]}`,
		`{"id":"user_b","email_addresses":[{"email_address":"b@example.com"}],"organization_memberships":[{"organization":{"id":"org_2"}}],
		  "external_accounts":[{"provider":"oauth_github","provider_user_id":"g-1"}],"last_active_at":3000,"last_sign_in_at":4000}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"organization_id=org_1":                                  {"user_a"},
		"organization_id=-org_1":                                 {"user_b"},
		"organization_id=org_1&organization_id=org_2":            {"user_b", "user_a"},
		"provider=oauth_google&provider_user_id=g-1":             {"user_a"},
		"provider=oauth_github&provider_user_id=g-2":             {},
		"last_active_at_before=2000":                             {"user_a"},
		"last_active_at_after=2000":                              {"user_b"},
		"last_active_at_since=2000":                              {"user_b"},
		"last_sign_in_at_after=1000&last_sign_in_at_before=3000": {"user_a"},
		"web3_wallet=0xabcdef0123456789abcdef0123456789abcdef01": {"user_a"},
		"order_by=last_active_at":                                {"user_a", "user_b"},
		"order_by=-last_sign_in_at":                              {"user_b", "user_a"},
	}
	for q, want := range cases {
		if got := idsOf(f.do("GET", "/users?"+q, nil).list(t)); !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
			t.Errorf("%s: got %v, want %v", q, got, want)
		}
	}
}
