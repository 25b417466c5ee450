/*
Copyright 2026 The kubeclerk Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Finalizer is put on a ClerkUser while its deletionPolicy needs a Clerk call on deletion
// (Ban or Delete). It is never present while deletionPolicy is Orphan.
const Finalizer = "clerk.kubeclerk.dev/finalizer"

// MetadataPolicy says how declared metadata is applied to the Clerk user.
// +kubebuilder:validation:Enum=Merge;Replace
type MetadataPolicy string

const (
	// MetadataPolicyMerge owns only the top-level keys the object declares and deep-merges them
	// into Clerk's metadata (PATCH /users/{id}/metadata); other keys are left to the application.
	MetadataPolicyMerge MetadataPolicy = "Merge"
	// MetadataPolicyReplace replaces each declared metadata object as a whole (PUT /users/{id}/metadata).
	MetadataPolicyReplace MetadataPolicy = "Replace"
)

// CreationPolicy says what happens when no Clerk user matches the object's identifiers.
// +kubebuilder:validation:Enum=Adopt;AdoptOrCreate
type CreationPolicy string

const (
	// CreationPolicyAdopt only manages an existing user and waits (Ready=False, UserNotFound) until one matches.
	CreationPolicyAdopt CreationPolicy = "Adopt"
	// CreationPolicyAdoptOrCreate adopts a matching user or creates one from the spec.
	CreationPolicyAdoptOrCreate CreationPolicy = "AdoptOrCreate"
)

// DeletionPolicy says what happens to the Clerk user when the ClerkUser is deleted.
// +kubebuilder:validation:Enum=Orphan;Ban;Delete
type DeletionPolicy string

const (
	// DeletionPolicyOrphan leaves the Clerk user as it is.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
	// DeletionPolicyBan bans the Clerk user.
	DeletionPolicyBan DeletionPolicy = "Ban"
	// DeletionPolicyDelete deletes the Clerk user.
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// ManagementPolicy says whether kubeclerk writes to Clerk.
// +kubebuilder:validation:Enum=Manage;Observe
type ManagementPolicy string

const (
	// ManagementPolicyManage brings the Clerk user to the declared state.
	ManagementPolicyManage ManagementPolicy = "Manage"
	// ManagementPolicyObserve writes nothing; status.pendingChanges shows what Manage would do.
	ManagementPolicyObserve ManagementPolicy = "Observe"
)

// MFASpec declares the second-factor state kubeclerk keeps.
type MFASpec struct {
	// disabled keeps every second factor removed: whenever Clerk reports two_factor_enabled,
	// kubeclerk calls DisableMfa. false (or unset) leaves MFA to the user.
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// resetToken is a one-shot trigger: each new value removes all of the user's MFA methods once
	// (DisableMfa), and is then recorded in status.lastMFAResetToken. Use a ticket number or a date.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ResetToken string `json:"resetToken,omitempty"`
}

// PrivateMetadataSecretLabel must be "true" on a Secret that privateMetadataFrom reads: the
// manager reads (and caches) no other Secret outside its own namespace.
const PrivateMetadataSecretLabel = "clerk.kubeclerk.dev/private-metadata"

// PrivateMetadataSource says where private metadata kept out of Git comes from.
type PrivateMetadataSource struct {
	// secretKeyRef names the Secret (in the ClerkUser's namespace) and the key whose value is a
	// JSON object of private metadata.
	// +required
	SecretKeyRef LocalSecretKeyReference `json:"secretKeyRef"`
}

// LocalSecretKeyReference names one key of a Secret in the referring object's namespace.
type LocalSecretKeyReference struct {
	// name is the name of the Secret, in the ClerkUser's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// key is the entry of the Secret's data that holds the value.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// InstanceReference names a ClerkInstance.
type InstanceReference struct {
	// name of the ClerkInstance.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ClerkUserSpec is the declared state of one Clerk user.
// +kubebuilder:validation:XValidation:rule="has(self.userID) || has(self.externalID) || has(self.emailAddress) || has(self.username)",message="set at least one of spec.userID, spec.externalID, spec.emailAddress or spec.username to identify the Clerk user"
// +kubebuilder:validation:XValidation:rule="!has(self.creationPolicy) || self.creationPolicy != 'AdoptOrCreate' || has(self.externalID) || has(self.emailAddress) || has(self.username)",message="creationPolicy AdoptOrCreate needs spec.externalID, spec.emailAddress or spec.username, so that a create whose response was lost is found again instead of duplicated",fieldPath=".creationPolicy"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.userID) || (has(self.userID) && self.userID == oldSelf.userID)",message="spec.userID is immutable once set; create a new ClerkUser to manage another Clerk user",fieldPath=".userID"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.instanceRef) || (has(self.instanceRef) && self.instanceRef.name == oldSelf.instanceRef.name)",message="spec.instanceRef is immutable once set; create a new ClerkUser to manage a user of another Clerk instance",fieldPath=".instanceRef"
type ClerkUserSpec struct {
	// instanceRef names the ClerkInstance (cluster-scoped) whose key, budget and policy this
	// object uses; immutable once set. Without it the manager's own key is used.
	// +optional
	InstanceRef *InstanceReference `json:"instanceRef,omitempty"`

	// userID is the Clerk user ID (user_…) of an existing user. It wins over every other
	// identifier and is immutable once set.
	// +optional
	// +kubebuilder:validation:Pattern=`^user_[A-Za-z0-9]+$`
	// +kubebuilder:validation:MaxLength=64
	UserID string `json:"userID,omitempty"`

	// externalID is the user's external_id in Clerk. When userID is empty the user is found by it;
	// it is kept on the user (set when it differs).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	ExternalID string `json:"externalID,omitempty"`

	// emailAddress finds the user by email when userID and externalID are empty, and is the
	// primary email address of a user kubeclerk creates. It is not changed on an existing user.
	// +optional
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=320
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+$`
	EmailAddress string `json:"emailAddress,omitempty"`

	// username is kept on the user (set when it differs) and finds the user as a last resort.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Username string `json:"username,omitempty"`

	// firstName is the user's first name. Unset: not managed; "": cleared in Clerk.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	FirstName *string `json:"firstName,omitempty"`

	// lastName is the user's last name. Unset: not managed; "": cleared in Clerk.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	LastName *string `json:"lastName,omitempty"`

	// publicMetadata is a JSON object readable from the frontend and session tokens.
	// With metadataPolicy Merge the object owns its top-level keys; with Replace it replaces
	// Clerk's whole public metadata. Unset: not managed.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	PublicMetadata *apiextensionsv1.JSON `json:"publicMetadata,omitempty"`

	// privateMetadata is a JSON object readable only from the backend. Same rules as publicMetadata.
	// Its values are never copied into status, events or logs.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	PrivateMetadata *apiextensionsv1.JSON `json:"privateMetadata,omitempty"`

	// privateMetadataFrom reads more private metadata from a Secret in this object's namespace,
	// so that it stays out of Git. Its top-level keys are merged with privateMetadata (a key in
	// both is InvalidSpec) and owned the same way; a change of the Secret is applied at once.
	// Only Secrets labelled clerk.kubeclerk.dev/private-metadata: "true" are read.
	// +optional
	PrivateMetadataFrom *PrivateMetadataSource `json:"privateMetadataFrom,omitempty"`

	// unsafeMetadata is a JSON object the user can also write from the frontend. Same rules as publicMetadata.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	UnsafeMetadata *apiextensionsv1.JSON `json:"unsafeMetadata,omitempty"`

	// metadataPolicy is Merge (own the declared top-level keys, leave the others) or Replace
	// (each declared metadata object replaces Clerk's as a whole).
	// +optional
	// +kubebuilder:default=Merge
	MetadataPolicy MetadataPolicy `json:"metadataPolicy,omitempty"`

	// banned bans (true) or unbans (false) the user. Unset: not managed.
	// +optional
	Banned *bool `json:"banned,omitempty"`

	// locked locks (true) or unlocks (false) the user. false also lifts lockouts Clerk sets after
	// failed sign-ins. Unset (the safe default): not managed.
	// +optional
	Locked *bool `json:"locked,omitempty"`

	// mfa declares the user's second-factor state.
	// +optional
	MFA *MFASpec `json:"mfa,omitempty"`

	// creationPolicy is Adopt (manage an existing user; wait until one matches) or AdoptOrCreate
	// (create the user from this spec when none matches).
	// +optional
	// +kubebuilder:default=Adopt
	CreationPolicy CreationPolicy `json:"creationPolicy,omitempty"`

	// deletionPolicy says what deleting this object does to the Clerk user: Orphan (nothing),
	// Ban, or Delete. A user already gone counts as deleted.
	// +optional
	// +kubebuilder:default=Orphan
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// managementPolicy is Manage (bring Clerk to this spec) or Observe (write nothing; report
	// the plan in status.pendingChanges).
	// +optional
	// +kubebuilder:default=Manage
	ManagementPolicy ManagementPolicy `json:"managementPolicy,omitempty"`
}

// ObservedUser is the last state kubeclerk read from Clerk. It never holds secrets or metadata values.
type ObservedUser struct {
	// externalID is the user's external_id.
	// +optional
	ExternalID string `json:"externalID,omitempty"`
	// username is the user's username.
	// +optional
	Username string `json:"username,omitempty"`
	// firstName is the user's first name.
	// +optional
	FirstName string `json:"firstName,omitempty"`
	// lastName is the user's last name.
	// +optional
	LastName string `json:"lastName,omitempty"`
	// primaryEmailAddress is the user's primary email address.
	// +optional
	PrimaryEmailAddress string `json:"primaryEmailAddress,omitempty"`
	// banned is whether the user is banned.
	Banned bool `json:"banned"`
	// locked is whether the user is locked.
	Locked bool `json:"locked"`
	// lockoutExpiresInSeconds is the time left on a lock; null while locked means it never expires.
	// +optional
	LockoutExpiresInSeconds *int64 `json:"lockoutExpiresInSeconds,omitempty"`
	// twoFactorEnabled is whether any second factor is on.
	TwoFactorEnabled bool `json:"twoFactorEnabled"`
	// totpEnabled is whether an authenticator app (TOTP) is set up.
	TOTPEnabled bool `json:"totpEnabled"`
	// backupCodeEnabled is whether backup codes are set up.
	BackupCodeEnabled bool `json:"backupCodeEnabled"`
	// updatedAt is when Clerk last changed the user.
	// +optional
	UpdatedAt *metav1.Time `json:"updatedAt,omitempty"`
	// lastSignInAt is when the user last signed in.
	// +optional
	LastSignInAt *metav1.Time `json:"lastSignInAt,omitempty"`
}

// OwnedMetadataKeys lists the top-level metadata keys a ClerkUser owns (metadataPolicy Merge).
// A key listed here and no longer in the spec is deleted from Clerk.
type OwnedMetadataKeys struct {
	// public lists owned keys of publicMetadata.
	// +optional
	// +listType=set
	Public []string `json:"public,omitempty"`
	// private lists owned keys of privateMetadata.
	// +optional
	// +listType=set
	Private []string `json:"private,omitempty"`
	// unsafe lists owned keys of unsafeMetadata.
	// +optional
	// +listType=set
	Unsafe []string `json:"unsafe,omitempty"`
}

// PendingMFAReset is an MFA reset whose DisableMfa call may have been sent.
type PendingMFAReset struct {
	// token is the spec.mfa.resetToken being applied.
	Token string `json:"token"`

	// userUpdatedAt is the user's updated_at (Unix milliseconds, Clerk's clock) in the
	// observation the DisableMfa call was planned against: a removal of the second factors at or
	// after it (Clerk's mfa_disabled_at) satisfies the token.
	UserUpdatedAt int64 `json:"userUpdatedAt"`
}

// ClerkUserStatus is what kubeclerk last saw and did.
type ClerkUserStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// userID is the Clerk user this object is bound to, once found or created.
	// +optional
	UserID string `json:"userID,omitempty"`

	// conditions are Ready, Reconciling and Stalled (kstatus-compatible).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// observed is the last state read from Clerk.
	// +optional
	Observed *ObservedUser `json:"observed,omitempty"`

	// ownedMetadataKeys records the metadata keys this object owns; it is how removals are found.
	// +optional
	OwnedMetadataKeys *OwnedMetadataKeys `json:"ownedMetadataKeys,omitempty"`

	// pendingChanges is the human-readable plan still to apply (with Observe: what Manage would do),
	// e.g. "ban", "publicMetadata.role", "unlock".
	// +optional
	// +listType=atomic
	PendingChanges []string `json:"pendingChanges,omitempty"`

	// lastMFAResetToken is the last spec.mfa.resetToken that was applied: its DisableMfa call
	// succeeded, or a fresh read showed no second factor to remove.
	// +optional
	LastMFAResetToken string `json:"lastMFAResetToken,omitempty"`

	// pendingMFAReset is written just before the DisableMfa call of a new spec.mfa.resetToken.
	// If that call lands but this status is not updated after it (a crash, a failed patch), the
	// next reconcile sees from Clerk's mfa_disabled_at that the factors were removed after the
	// reset was asked for, records the token, and leaves alone a factor enrolled since.
	// +optional
	PendingMFAReset *PendingMFAReset `json:"pendingMFAReset,omitempty"`

	// privateMetadataFromHash identifies the value of spec.privateMetadataFrom last applied to
	// Clerk (sha256, salted with the Secret's UID so that it confirms no guess of the values to
	// whoever cannot read the Secret). Empty without privateMetadataFrom.
	// +optional
	PrivateMetadataFromHash string `json:"privateMetadataFromHash,omitempty"`

	// lastSyncTime is when kubeclerk last read the user from Clerk.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cu,categories=clerk
// +kubebuilder:printcolumn:name="User-ID",type=string,JSONPath=`.status.userID`
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.status.observed.primaryEmailAddress`
// +kubebuilder:printcolumn:name="Banned",type=boolean,JSONPath=`.status.observed.banned`
// +kubebuilder:printcolumn:name="Locked",type=boolean,JSONPath=`.status.observed.locked`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ClerkUser declares one user of a Clerk instance: how to find it, its profile, metadata and
// access state, and what kubeclerk may do to it.
type ClerkUser struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is a standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec is the declared state of the Clerk user.
	// +required
	Spec ClerkUserSpec `json:"spec"`

	// status is what kubeclerk last saw and did.
	// +optional
	Status ClerkUserStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// ClerkUserList contains a list of ClerkUser.
type ClerkUserList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []ClerkUser `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &ClerkUser{}, &ClerkUserList{})
		return nil
	})
}
