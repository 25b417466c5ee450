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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// SecretKeyReference names one key of a Secret in the manager's namespace (the namespace set by
// --cluster-resource-namespace). Both fields are required: there is no default key, so a
// manifest always says which entry of the Secret holds the value.
type SecretKeyReference struct {
	// name is the name of the Secret, in the manager's namespace (--cluster-resource-namespace,
	// by default the namespace the manager runs in).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// key is the entry of the Secret's data that holds the value, e.g. secret-key or
	// webhook-secret. Required: there is no default. Surrounding whitespace in the value (a trailing newline) is ignored.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// ProtectedMetadataKeys lists the top-level metadata keys that ClerkUsers bound to a ClerkInstance
// may not declare, per metadata object. Keys are matched exactly (case-sensitive).
type ProtectedMetadataKeys struct {
	// public lists the protected top-level keys of publicMetadata.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Public []string `json:"public,omitempty"`

	// private lists the protected top-level keys of privateMetadata (also those coming from
	// privateMetadataFrom).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Private []string `json:"private,omitempty"`

	// unsafe lists the protected top-level keys of unsafeMetadata.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Unsafe []string `json:"unsafe,omitempty"`
}

// ClerkInstancePolicy limits what the ClerkUsers bound to a ClerkInstance may declare. Each field
// that is unset allows everything it would limit. A ClerkUser against the policy is Stalled with
// reason NotAllowed and causes no Clerk call.
// +kubebuilder:validation:XValidation:rule="!has(self.allowedDeletionPolicies) || size(self.allowedDeletionPolicies) > 0",message="spec.policy.allowedDeletionPolicies must not be empty: an empty list forbids every ClerkUser, even one with the default deletionPolicy Orphan; list the allowed policies (e.g. [Orphan]) or remove the field to allow all",fieldPath=".allowedDeletionPolicies"
// +kubebuilder:validation:XValidation:rule="!has(self.emailDomains) || size(self.emailDomains) > 0",message="spec.policy.emailDomains must not be empty: an empty list forbids every email address; list the allowed domains (e.g. [acme.com]) or remove the field to allow all",fieldPath=".emailDomains"
// +kubebuilder:validation:XValidation:rule="!has(self.externalIDPrefixes) || size(self.externalIDPrefixes) > 0",message="spec.policy.externalIDPrefixes must not be empty: an empty list forbids every externalID; list the allowed prefixes (e.g. [emp-]) or remove the field to allow all",fieldPath=".externalIDPrefixes"
type ClerkInstancePolicy struct {
	// allowUserID says whether a ClerkUser may name its Clerk user by spec.userID. false: it must
	// find the user by externalID, emailAddress or username, which the other rules can check.
	// Unset: allowed.
	// +optional
	AllowUserID *bool `json:"allowUserID,omitempty"`

	// allowCreate says whether a ClerkUser may use creationPolicy AdoptOrCreate, i.e. create users
	// in this Clerk instance. false: only existing users can be managed. Unset: allowed.
	// +optional
	AllowCreate *bool `json:"allowCreate,omitempty"`

	// allowedDeletionPolicies lists the deletionPolicy values a ClerkUser may use (Orphan, Ban,
	// Delete); a ClerkUser without deletionPolicy counts as Orphan. Unset: all are allowed. It must
	// not be empty and holds each value once.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=3
	AllowedDeletionPolicies []DeletionPolicy `json:"allowedDeletionPolicies,omitempty"`

	// emailDomains lists the domains email addresses must be in: the part after '@' of a
	// ClerkUser's spec.emailAddress must be one of them, and a Clerk user found by another
	// identifier must have a primary email address in one. Matching is exact and
	// case-insensitive; subdomains are not matched (list sub.acme.com on its own). A ClerkUser
	// with creationPolicy AdoptOrCreate then needs spec.emailAddress. Unset: any email address.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=3
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:XValidation:rule="!self.contains('@')",message="an email domain is the part after '@': write acme.com, not user@acme.com"
	// +kubebuilder:validation:items:XValidation:rule="self.contains('@') || self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?[.])+[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="must be a lowercase domain name with at least one dot, such as acme.com: letters, digits, '-' and '.', no wildcard, no leading or trailing dot; subdomains are not matched, list each one"
	EmailDomains []string `json:"emailDomains,omitempty"`

	// externalIDPrefixes lists the prefixes a ClerkUser's spec.externalID must start with
	// (case-sensitive), e.g. emp-. A ClerkUser without externalID is not affected.
	// Unset: any externalID.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	ExternalIDPrefixes []string `json:"externalIDPrefixes,omitempty"`

	// protectedMetadataKeys lists top-level metadata keys a ClerkUser bound here may not declare,
	// e.g. {public: [role]} keeps roles in the hands of the application. A ClerkUser with
	// metadataPolicy Replace may not declare a metadata object that has protected keys at all,
	// since replacing the object would overwrite them. Unset: every key may be declared.
	// +optional
	ProtectedMetadataKeys *ProtectedMetadataKeys `json:"protectedMetadataKeys,omitempty"`
}

// ClerkInstanceSpec declares one Clerk instance: where its secret key is, how fast kubeclerk may
// call it, and which ClerkUsers may use it.
type ClerkInstanceSpec struct {
	// secretKeyRef names the Secret entry holding the instance's Backend API secret key
	// (sk_live_… or sk_test_…, from Clerk Dashboard → API keys). The Secret lives in the
	// manager's namespace (--cluster-resource-namespace); the key is re-read when the Secret
	// changes, so rotating it needs no restart.
	// +required
	SecretKeyRef SecretKeyReference `json:"secretKeyRef"`

	// apiURL is the Clerk Backend API base URL, including the version prefix. It must use
	// https://; http:// is accepted only for 127.0.0.1, localhost and [::1] (tests with the fake
	// Clerk API). Unset: https://api.clerk.com/v1.
	// +optional
	// +kubebuilder:validation:MinLength=8
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && !self.contains('@') && !self.contains('?') && !self.contains('#') && url(self).getHostname() != '' && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['127.0.0.1', 'localhost', '::1']))",message="spec.apiURL must be an https:// URL such as https://api.clerk.com/v1, without user info, query or fragment (http:// is allowed only for 127.0.0.1, localhost or [::1]); remove the field to use Clerk's API"
	APIURL string `json:"apiURL,omitempty"`

	// requestsPerSecond is the client-side budget for calls to this instance, in requests per
	// second (a whole number; at least 1). Unset: half of Clerk's limit for the key type, 50 for
	// sk_live_ keys and 5 for sk_test_ keys. Each instance has its own budget.
	// +optional
	// +kubebuilder:validation:Minimum=1
	RequestsPerSecond *int32 `json:"requestsPerSecond,omitempty"`

	// burst is how many calls may be made at once before requestsPerSecond paces them (at least 1).
	// Unset: one second's worth of requestsPerSecond.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Burst *int32 `json:"burst,omitempty"`

	// webhookSecretRef names the Secret entry holding the signing secret (whsec_…) of the Clerk
	// webhook endpoint that sends this instance's user events to kubeclerk
	// (POST /webhooks/clerk/<name of this ClerkInstance>). Unset: webhooks for this instance are
	// refused and polling alone detects changes.
	// +optional
	WebhookSecretRef *SecretKeyReference `json:"webhookSecretRef,omitempty"`

	// namespaceSelector selects the namespaces whose ClerkUsers may use this instance, by the
	// namespaces' labels. Required: {} selects every namespace. A ClerkUser in a namespace it
	// does not select is Stalled with reason NotAllowed and causes no Clerk call.
	// +required
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="matchExpressions: operator must be In, NotIn, Exists or DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['Exists', 'DoesNotExist'] ? (!has(e.values) || size(e.values) == 0) : (has(e.values) && size(e.values) > 0))",message="matchExpressions: In and NotIn need values, Exists and DoesNotExist take none"
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector"`

	// policy limits what the ClerkUsers bound to this instance may declare. Unset: no limits.
	// +optional
	Policy *ClerkInstancePolicy `json:"policy,omitempty"`
}

// ClerkInstanceStatus is what kubeclerk last found out about the instance.
type ClerkInstanceStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions hold Ready (kstatus-compatible): True with reason Connected, or False with reason
	// SecretNotFound, AuthenticationFailed or ClerkUnavailable and a message saying what to do.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// keyType is the environment of the secret key, read from its prefix: live (sk_live_) or
	// test (sk_test_).
	// +optional
	// +kubebuilder:validation:Enum=live;test
	KeyType string `json:"keyType,omitempty"`

	// boundUsers is the number of ClerkUsers that refer to this instance.
	// +optional
	// +kubebuilder:validation:Minimum=0
	BoundUsers int32 `json:"boundUsers"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ci,categories=clerk
// +kubebuilder:printcolumn:name="Key-Type",type=string,JSONPath=`.status.keyType`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Users",type=integer,JSONPath=`.status.boundUsers`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name != 'default'",message="the name default is reserved for the manager's own key (metrics, webhook path /webhooks/clerk/default); choose another name"

// ClerkInstance declares one Clerk instance for the whole cluster: the Secret holding its secret
// key, its API URL and rate budget, and which ClerkUsers (by namespace and by policy) may manage
// its users. ClerkUsers refer to it by name in spec.instanceRef.
type ClerkInstance struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is a standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec declares the instance.
	// +required
	Spec ClerkInstanceSpec `json:"spec"`

	// status is what kubeclerk last found out about the instance.
	// +optional
	Status ClerkInstanceStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// ClerkInstanceList contains a list of ClerkInstance.
type ClerkInstanceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []ClerkInstance `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &ClerkInstance{}, &ClerkInstanceList{})
		return nil
	})
}
