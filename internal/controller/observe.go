package controller

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

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

// Observer reads the current state of Clerk users for reconciles. It is the one seam through
// which a reconcile reads a bound user, so that a batched observer (many users per list call)
// can replace per-object reads without touching the plan.
type Observer interface {
	// Observe returns the Clerk user with the given ID, as fresh as a write may trust, or an
	// error for which clerk.IsNotFound is true when the user does not exist.
	Observe(ctx context.Context, userID string) (*clerk.User, error)
	// Remember records u as Clerk confirmed it in answer to a write.
	Remember(u *clerk.User)
	// Forget drops what is known of a user that is gone or no longer managed.
	Forget(userID string)
}

// userGetter is the read the per-object observer needs.
type userGetter interface {
	GetUser(ctx context.Context, id string) (*clerk.User, error)
}

// GetObserver observes each user with one GET /users/{id}.
type GetObserver struct {
	// Clerk is the API to read from.
	Clerk userGetter
}

// Observe implements Observer with one GET /users/{id}.
func (o GetObserver) Observe(ctx context.Context, userID string) (*clerk.User, error) {
	return o.Clerk.GetUser(ctx, userID)
}

// Remember implements Observer; every Observe reads anyway.
func (GetObserver) Remember(*clerk.User) {}

// Forget implements Observer; nothing is kept.
func (GetObserver) Forget(string) {}

// lookup returns which identifier of spec finds the user when no ID is known: the first set of
// externalID, emailAddress, username, as a list filter and a description for messages.
func lookup(spec *clerkv1alpha1.ClerkUserSpec) (clerk.ListUsersParams, string) {
	p := clerk.ListUsersParams{Limit: 2}
	switch {
	case spec.ExternalID != "":
		p.ExternalIDs = []string{spec.ExternalID}
		return p, fmt.Sprintf("externalID %q", spec.ExternalID)
	case spec.EmailAddress != "":
		p.EmailAddresses = []string{spec.EmailAddress}
		return p, fmt.Sprintf("emailAddress %q", spec.EmailAddress)
	default:
		p.Usernames = []string{spec.Username}
		return p, fmt.Sprintf("username %q", spec.Username)
	}
}

// find returns the Clerk user obj manages, reading Clerk once: by ID when one is known
// (spec.userID, else status.userID), else by the lookup identifier. A nil user with a nil error
// means no user matches and obj may create one.
func (r *ClerkUserReconciler) find(ctx context.Context, obj *clerkv1alpha1.ClerkUser) (*clerk.User, error) {
	if id := boundID(obj); id != "" {
		u, err := r.Observer.Observe(ctx, id)
		switch {
		case err == nil:
			return u, nil
		case !clerk.IsNotFound(err):
			return nil, fmt.Errorf("read Clerk user %s: %w", id, err)
		case obj.Spec.UserID != "" && obj.Status.UserID == "":
			return nil, &waitError{reason: ReasonUserNotFound,
				message: fmt.Sprintf("No Clerk user has ID %s; checking again every %s. Check spec.userID.", id, r.SyncPeriod)}
		case obj.Spec.UserID != "" || obj.Spec.CreationPolicy != clerkv1alpha1.CreationPolicyAdoptOrCreate:
			return nil, &stallError{reason: ReasonUserDeleted,
				message: fmt.Sprintf("Clerk user %s was deleted outside kubeclerk. Delete this object, or clear spec.userID and set creationPolicy: AdoptOrCreate to create the user again.", id)}
		}
		// AdoptOrCreate: the user is gone; look it up again (a create whose response was lost
		// may have made it), else create it.
	}

	params, what := lookup(&obj.Spec)
	users, err := r.Clerk.ListUsers(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("look up Clerk user by %s: %w", what, err)
	}
	switch {
	case len(users) > 1:
		return nil, &stallError{reason: ReasonAmbiguousUser,
			message: fmt.Sprintf("Several Clerk users match %s; set spec.userID to the one to manage.", what)}
	case len(users) == 1:
		return &users[0], nil
	case obj.Spec.CreationPolicy == clerkv1alpha1.CreationPolicyAdoptOrCreate && obj.Spec.ManagementPolicy != clerkv1alpha1.ManagementPolicyObserve:
		return nil, nil
	default:
		return nil, &waitError{reason: ReasonUserNotFound,
			message: fmt.Sprintf("No Clerk user matches %s yet; checking again every %s. Set creationPolicy: AdoptOrCreate to create it.", what, r.SyncPeriod)}
	}
}

// conflict returns a stall error when another, older ClerkUser is bound to the Clerk user id.
// The older object keeps the user (ties go to the lower namespace/name); it is found through
// the status.userID field index, never by listing everything.
func (r *ClerkUserReconciler) conflict(ctx context.Context, obj *clerkv1alpha1.ClerkUser, id string) error {
	var list clerkv1alpha1.ClerkUserList
	if err := r.List(ctx, &list, client.MatchingFields{userIDIndex: id}); err != nil {
		return fmt.Errorf("list ClerkUsers bound to %s: %w", id, err)
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.UID == obj.UID || !other.DeletionTimestamp.IsZero() {
			continue
		}
		if olderThan(other, obj) {
			return &stallError{reason: ReasonConflict,
				message: fmt.Sprintf("Clerk user %s is already managed by ClerkUser %s/%s; this object writes nothing. Delete one of them or point this one at another user.", id, other.Namespace, other.Name)}
		}
	}
	return nil
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
