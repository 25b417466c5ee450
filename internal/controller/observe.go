package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

// userIDIndex is the field index of ClerkUsers by status.userID, used to find two objects bound
// to one Clerk user without listing everything.
const userIDIndex = "status.userID"

// ClerkAPI is the part of Clerk's Backend API the reconciler uses. *clerk.Client implements it.
type ClerkAPI interface {
	// ListUsers returns the users matching the filters of p (GET /users).
	ListUsers(ctx context.Context, p clerk.ListUsersParams) ([]clerk.User, error)
	// CreateUser creates a user (POST /users).
	CreateUser(ctx context.Context, p clerk.CreateUserParams) (*clerk.User, error)
	// UpdateUser changes profile fields (PATCH /users/{id}).
	UpdateUser(ctx context.Context, id string, p clerk.UpdateUserParams) (*clerk.User, error)
	// MergeMetadata deep-merges metadata (PATCH /users/{id}/metadata).
	MergeMetadata(ctx context.Context, id string, p clerk.MetadataParams) (*clerk.User, error)
	// ReplaceMetadata replaces metadata objects (PUT /users/{id}/metadata).
	ReplaceMetadata(ctx context.Context, id string, p clerk.MetadataParams) (*clerk.User, error)
	// BanUser bans a user.
	BanUser(ctx context.Context, id string) (*clerk.User, error)
	// UnbanUser unbans a user.
	UnbanUser(ctx context.Context, id string) (*clerk.User, error)
	// LockUser locks a user.
	LockUser(ctx context.Context, id string) (*clerk.User, error)
	// UnlockUser unlocks a user.
	UnlockUser(ctx context.Context, id string) (*clerk.User, error)
	// DisableMFA removes every second factor of a user (DELETE /users/{id}/mfa).
	DisableMFA(ctx context.Context, id string) error
	// DeleteUser deletes a user.
	DeleteUser(ctx context.Context, id string) error
}

// identifier is one declared identifier of a spec that finds a Clerk user.
type identifier struct {
	field string // spec field name, for messages
	value string
}

// identifiers returns the declared identifiers of spec in lookup order: externalID,
// emailAddress, username.
func identifiers(spec *clerkv1alpha1.ClerkUserSpec) []identifier {
	var ids []identifier
	for _, i := range []identifier{{"externalID", spec.ExternalID}, {"emailAddress", spec.EmailAddress}, {"username", spec.Username}} {
		if i.value != "" {
			ids = append(ids, i)
		}
	}
	return ids
}

// describe is the identifier as messages name it, e.g. `externalID "emp-1"`.
func (i identifier) describe() string { return fmt.Sprintf("%s %q", i.field, i.value) }

// lookupLimit is the page size of a lookup: exact matches are picked from it, so that a filter
// Clerk reads more loosely than kubeclerk (case, a leading sign) cannot hide the exact match.
const lookupLimit = 10

// params returns the GET /users filter that finds users with this identifier. Clerk reads a
// leading "+" or "-" of an external_id value as include/exclude, so the value is sent behind an
// explicit "+" (include), which makes Clerk match it exactly, whatever it starts with.
func (i identifier) params() clerk.ListUsersParams {
	p := clerk.ListUsersParams{Limit: lookupLimit}
	switch i.field {
	case "externalID":
		p.ExternalIDs = []string{"+" + i.value}
	case "emailAddress":
		p.EmailAddresses = []string{i.value}
	default:
		p.Usernames = []string{i.value}
	}
	return p
}

// matches reports whether u holds this identifier exactly (email addresses and usernames
// without regard to case, as Clerk stores them in lower case).
func (i identifier) matches(u *clerk.User) bool {
	switch i.field {
	case "externalID":
		return u.ExternalID != nil && *u.ExternalID == i.value
	case "emailAddress":
		for _, e := range u.EmailAddresses {
			if strings.EqualFold(e.EmailAddress, i.value) {
				return true
			}
		}
		return false
	default:
		return u.Username != nil && strings.EqualFold(*u.Username, i.value)
	}
}

// contradicts reports whether u holds another value of this identifier's kind, so that it
// cannot be the user the spec means (a user without any is not contradicted).
func (i identifier) contradicts(u *clerk.User) bool {
	switch i.field {
	case "externalID":
		return u.ExternalID != nil && *u.ExternalID != "" && *u.ExternalID != i.value
	case "username":
		return u.Username != nil && *u.Username != "" && !strings.EqualFold(*u.Username, i.value)
	}
	return false // a user may have several email addresses
}

// lookup returns the users that hold identifier i exactly: one GET /users, results checked for
// equality before anything is bound to them.
func (r *ClerkUserReconciler) lookup(ctx context.Context, i identifier) ([]clerk.User, error) {
	users, err := r.Clerk.ListUsers(ctx, i.params())
	if err != nil {
		return nil, fmt.Errorf("look up Clerk user by %s: %w", i.describe(), err)
	}
	exact := users[:0]
	for k := range users {
		if i.matches(&users[k]) {
			exact = append(exact, users[k])
		}
	}
	return exact, nil
}

// find returns the Clerk user obj manages: by ID when one is known (spec.userID, else
// status.userID) through the Observer, with an observation read at or after notBefore; else by
// the first declared identifier. A nil user with a nil error means no user matches and obj may
// create one.
func (r *ClerkUserReconciler) find(ctx context.Context, obj *clerkv1alpha1.ClerkUser, notBefore time.Time) (*clerk.User, error) {
	if id := boundID(obj); id != "" {
		u, err := r.Observer.Observe(ctx, id, notBefore)
		switch {
		case err == nil:
			return u, nil
		case !clerk.IsNotFound(err):
			return nil, fmt.Errorf("read Clerk user %s: %w", id, err)
		case obj.Spec.UserID != "" && obj.Status.UserID == "":
			// Clerk assigns IDs: no sign-up will ever bring this one. A typo needs a person,
			// so the object is Stalled (GitOps tools show it failed), still checked every period.
			return nil, &stallError{reason: ReasonUserNotFound,
				message: fmt.Sprintf("No Clerk user has ID %s (spec.userID); Clerk assigns IDs, so check the value, or find the user by externalID, emailAddress or username instead. Checking again every %s.", id, r.SyncPeriod)}
		case obj.Spec.UserID != "" || obj.Spec.CreationPolicy != clerkv1alpha1.CreationPolicyAdoptOrCreate:
			return nil, &stallError{reason: ReasonUserDeleted,
				message: fmt.Sprintf("Clerk user %s was deleted outside kubeclerk. Delete this object, or clear spec.userID and set creationPolicy: AdoptOrCreate to create the user again.", id)}
		}
		// AdoptOrCreate: the user is gone; look it up again (a create whose response was lost
		// may have made it), else create it.
	}

	first := identifiers(&obj.Spec)[0] // the CRD requires one identifier when userID is empty
	users, err := r.lookup(ctx, first)
	if err != nil {
		return nil, err
	}
	switch {
	case len(users) > 1:
		return nil, &stallError{reason: ReasonAmbiguousUser,
			message: fmt.Sprintf("Several Clerk users match %s; set spec.userID to the one to manage.", first.describe())}
	case len(users) == 1:
		// A lookup is a read made now: the next reconcile need not read the user again.
		r.Observer.Remember(&users[0])
		return &users[0], nil
	case obj.Spec.CreationPolicy == clerkv1alpha1.CreationPolicyAdoptOrCreate && obj.Spec.ManagementPolicy != clerkv1alpha1.ManagementPolicyObserve:
		return nil, nil
	default:
		return nil, &waitError{reason: ReasonUserNotFound,
			message: fmt.Sprintf("No Clerk user matches %s yet; checking again every %s. Set creationPolicy: AdoptOrCreate to create it.", first.describe(), r.SyncPeriod)}
	}
}

// findByAnyIdentifier looks the user up by every declared identifier, in order, and returns the
// one user they find, or nil when none does. Several users, or a user whose other identifiers
// contradict the spec, is a stall: it is not the user the spec means, and nothing may be bound
// to it. It serves a create that Clerk refused as a duplicate, and a deletion whose object
// never recorded the user it found.
func (r *ClerkUserReconciler) findByAnyIdentifier(ctx context.Context, spec *clerkv1alpha1.ClerkUserSpec) (*clerk.User, error) {
	var found *clerk.User
	ids := identifiers(spec)
	for _, i := range ids {
		users, err := r.lookup(ctx, i)
		if err != nil {
			return nil, err
		}
		for k := range users {
			u := &users[k]
			if found != nil && found.ID != u.ID || len(users) > 1 {
				return nil, &stallError{reason: ReasonAmbiguousUser,
					message: fmt.Sprintf("The identifiers of this spec match several Clerk users (%s holds %s); set spec.userID to the one to manage.", u.ID, i.describe())}
			}
			for _, other := range ids {
				if other.contradicts(u) {
					return nil, &stallError{reason: ReasonConflict,
						message: fmt.Sprintf("Clerk user %s holds %s but another %s; it is not the user this spec declares. Change the spec, or the user in Clerk.", u.ID, i.describe(), other.field)}
				}
			}
			found = u
		}
	}
	return found, nil
}

// conflict returns a stall error when another, older ClerkUser manages the Clerk user id. Only
// Manage objects take part: an Observe object never blocks one, and is never blocked. The older
// object keeps the user (ties go to the lower namespace/name), also while it is being deleted
// with a Ban or Delete still to do. Objects are found through the status.userID field index,
// never by listing everything.
func (r *ClerkUserReconciler) conflict(ctx context.Context, obj *clerkv1alpha1.ClerkUser, id string) error {
	if !manages(obj) {
		return nil
	}
	var list clerkv1alpha1.ClerkUserList
	if err := r.List(ctx, &list, client.MatchingFields{userIDIndex: id}); err != nil {
		return fmt.Errorf("list ClerkUsers bound to %s: %w", id, err)
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.UID == obj.UID || !manages(other) || !olderThan(other, obj) {
			continue
		}
		if other.DeletionTimestamp.IsZero() {
			return &stallError{reason: ReasonConflict,
				message: fmt.Sprintf("Clerk user %s is already managed by ClerkUser %s/%s; this object writes nothing. Delete one of them or point this one at another user.", id, other.Namespace, other.Name)}
		}
		if controllerutil.ContainsFinalizer(other, clerkv1alpha1.Finalizer) {
			return &stallError{reason: ReasonConflict,
				message: fmt.Sprintf("Clerk user %s is managed by ClerkUser %s/%s, which is being deleted with deletionPolicy %s; this object writes nothing until that is done.", id, other.Namespace, other.Name, other.Spec.DeletionPolicy)}
		}
	}
	return nil
}

// manages reports whether obj writes to Clerk (managementPolicy Manage).
func manages(obj *clerkv1alpha1.ClerkUser) bool {
	return obj.Spec.ManagementPolicy != clerkv1alpha1.ManagementPolicyObserve
}

// olderThan orders ClerkUsers by creation time, then namespace/name.
func olderThan(a, b *clerkv1alpha1.ClerkUser) bool {
	at, bt := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !at.Equal(bt) {
		return at.Before(bt)
	}
	return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
}

// jitter spreads periodic work: d plus up to 10%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + time.Duration(jitterRand()*0.1*float64(d))
}
