package instance

// Reasons of a ClerkInstance's Ready condition.
const (
	// ReasonConnected (Ready=True): the key was read from its Secret and Clerk accepted it.
	ReasonConnected = "Connected"
	// ReasonSecretNotFound (Ready=False): the Secret or its entry named by spec.secretKeyRef is
	// missing, or it does not hold a Clerk secret key.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonAuthenticationFailed (Ready=False): Clerk refused the key (401, or 403 on the key).
	ReasonAuthenticationFailed = "AuthenticationFailed"
	// ReasonClerkUnavailable (Ready=False): Clerk could not be reached or answered 5xx; retried.
	ReasonClerkUnavailable = "ClerkUnavailable"
)

// Values of a ClerkInstance's status.keyType, as returned by [KeyType].
const (
	// KeyTypeLive is a production key (sk_live_…).
	KeyTypeLive = "live"
	// KeyTypeTest is a development key (sk_test_…).
	KeyTypeTest = "test"
)
