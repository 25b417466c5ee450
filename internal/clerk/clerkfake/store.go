package clerkfake

import (
	"math/rand/v2"
	"sync"
	"time"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newID returns prefix + "_" + 27 random base62 characters, the shape of
// Clerk's KSUID-based identifiers (user_2dYS7stz9bgxQsSRvNqEAHhuxvW).
func newID(prefix string) string {
	b := make([]byte, 0, len(prefix)+28)
	b = append(b, prefix...)
	b = append(b, '_')
	for range 27 {
		b = append(b, base62[rand.IntN(len(base62))])
	}
	return string(b)
}

// store holds the users and the uniqueness indexes. All fields are guarded
// by mu.
type store struct {
	mu sync.RWMutex

	users   map[string]*user
	seq     int64
	lastTS  int64 // last timestamp handed out by stamp; keeps updated_at strictly increasing
	byEmail map[string]string
	byPhone map[string]string
	byUser  map[string]string // lowercased username
	byExt   map[string]string
	byWeb3  map[string]string // lowercased wallet
}

func newStore() *store {
	st := &store{}
	st.clear()
	return st
}

// clear drops every user. Callers hold mu (or own the store exclusively).
func (st *store) clear() {
	st.users = map[string]*user{}
	st.byEmail = map[string]string{}
	st.byPhone = map[string]string{}
	st.byUser = map[string]string{}
	st.byExt = map[string]string{}
	st.byWeb3 = map[string]string{}
	st.seq = 0
}

// stamp returns a millisecond timestamp that is strictly greater than every
// timestamp handed out before, so updated_at always moves, even for several
// writes within the same millisecond. Callers hold mu for writing.
func (st *store) stamp(now time.Time) int64 {
	ms := now.UnixMilli()
	if ms <= st.lastTS {
		ms = st.lastTS + 1
	}
	st.lastTS = ms
	return ms
}

// index adds every unique identifier of u to the indexes.
func (st *store) index(u *user) {
	for _, e := range u.data.EmailAddresses {
		st.byEmail[lower(e.EmailAddress)] = u.data.ID
	}
	for _, p := range u.data.PhoneNumbers {
		st.byPhone[p.PhoneNumber] = u.data.ID
	}
	for _, w := range u.data.Web3Wallets {
		st.byWeb3[lower(w.Web3Wallet)] = u.data.ID
	}
	if u.data.Username != nil {
		st.byUser[lower(*u.data.Username)] = u.data.ID
	}
	if u.data.ExternalID != nil {
		st.byExt[*u.data.ExternalID] = u.data.ID
	}
}

// unindex removes every unique identifier of u from the indexes.
func (st *store) unindex(u *user) {
	for _, e := range u.data.EmailAddresses {
		delete(st.byEmail, lower(e.EmailAddress))
	}
	for _, p := range u.data.PhoneNumbers {
		delete(st.byPhone, p.PhoneNumber)
	}
	for _, w := range u.data.Web3Wallets {
		delete(st.byWeb3, lower(w.Web3Wallet))
	}
	if u.data.Username != nil {
		delete(st.byUser, lower(*u.data.Username))
	}
	if u.data.ExternalID != nil {
		delete(st.byExt, *u.data.ExternalID)
	}
}

// taken reports whether key is held in idx by a user other than self.
func taken(idx map[string]string, key, self string) bool {
	owner, ok := idx[key]
	return ok && owner != self
}

// insert stores a new user and indexes it. Callers checked uniqueness.
func (st *store) insert(u *user) {
	st.seq++
	u.seq = st.seq
	st.users[u.data.ID] = u
	st.index(u)
	u.refresh()
}

// remove deletes a user and its index entries.
func (st *store) remove(u *user) {
	st.unindex(u)
	delete(st.users, u.data.ID)
}
