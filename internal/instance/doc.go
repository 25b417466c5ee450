// Package instance owns what kubeclerk knows about ClerkInstances apart from the cluster: what a
// secret key is ([KeyType], [ParseKey]), which API URLs may be used ([ValidateAPIURL]), which
// namespaces an instance serves ([CheckNamespace]), what its policy allows a ClerkUser to declare
// ([CheckSpec]) and to be bound to ([CheckBoundUser]), and the reasons of a ClerkInstance's
// Ready condition.
//
// These checks are pure: they read no Secrets or other objects, call no Clerk API, keep no state
// and are covered by table tests. The package never reads or writes Kubernetes objects (the
// controller reads a Secret and passes its bytes in, and writes status), never logs, and never
// puts a secret key, or any part of one, into an error or message.
//
// A refusal by the namespace selector or the policy is a [*NotAllowedError] (several are
// returned together as [Violations]); its message names the ClerkInstance, its rule and the
// ClerkUser field and says what to do, ready for a Stalled condition with reason NotAllowed.
// Messages hold identifiers and metadata key names, never metadata values.
package instance
