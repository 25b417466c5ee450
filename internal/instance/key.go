package instance

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidKey is wrapped by every error of [KeyType] and [ParseKey]: the Secret entry named by
// spec.secretKeyRef does not hold a Clerk secret key. Fixing it needs a change of the Secret, so
// retrying before the Secret changes is pointless.
var ErrInvalidKey = errors.New("not a Clerk secret key")

const (
	liveKeyPrefix = "sk_live_"
	testKeyPrefix = "sk_test_"
)

// keyError wraps ErrInvalidKey with a message that says what to fix; it never holds the key.
func keyError(problem string) error {
	return fmt.Errorf("%w: the Secret entry named by spec.secretKeyRef %s; put the instance's "+
		"Backend API secret key (sk_live_… or sk_test_…, Clerk Dashboard → API keys) there", ErrInvalidKey, problem)
}

// KeyType returns the environment of a Clerk secret key from its prefix: [KeyTypeLive] for
// sk_live_… and [KeyTypeTest] for sk_test_…. Any other value is an error wrapping
// [ErrInvalidKey] that names spec.secretKeyRef and says what is wrong; it never contains the key
// or any part of it. The key must be non-empty after its prefix and consist of printable ASCII
// without spaces (what the Clerk client accepts); surrounding whitespace is not removed here (see
// [ParseKey]).
func KeyType(key string) (string, error) {
	switch {
	case key == "":
		return "", keyError("is empty")
	case strings.HasPrefix(key, "pk_"):
		return "", keyError("holds a publishable key (pk_…), which the Backend API does not accept")
	case strings.HasPrefix(key, "whsec_"):
		return "", keyError("holds a webhook signing secret (whsec_…), which belongs in spec.webhookSecretRef")
	}
	for i := range len(key) {
		if b := key[i]; b <= ' ' || b >= 0x7f {
			return "", keyError(fmt.Sprintf("contains a space, line break, control or non-ASCII character (at byte %d)", i))
		}
	}
	var typ, rest string
	switch {
	case strings.HasPrefix(key, liveKeyPrefix):
		typ, rest = KeyTypeLive, key[len(liveKeyPrefix):]
	case strings.HasPrefix(key, testKeyPrefix):
		typ, rest = KeyTypeTest, key[len(testKeyPrefix):]
	default:
		return "", keyError("does not start with sk_live_ or sk_test_")
	}
	if rest == "" {
		return "", keyError("holds only a key prefix, not a key")
	}
	return typ, nil
}

// ParseKey turns the bytes of the Secret entry named by spec.secretKeyRef into the secret key
// and its type. Surrounding whitespace (a trailing newline from `echo` or a file) is removed,
// as the manager does for CLERK_SECRET_KEY and --clerk-secret-key-file; the rest is checked by
// [KeyType]. Errors never contain the key.
func ParseKey(value []byte) (key, keyType string, err error) {
	key = strings.TrimSpace(string(value))
	if keyType, err = KeyType(key); err != nil {
		return "", "", err
	}
	return key, keyType, nil
}
