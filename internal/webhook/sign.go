package webhook

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	svix "github.com/svix/svix-webhooks/go"
)

// Header names of a Svix (Standard Webhooks) delivery.
const (
	// HeaderID carries the message ID ("msg_…"), the same for every delivery attempt of a message.
	HeaderID = "svix-id"
	// HeaderTimestamp carries the time of the attempt, in Unix seconds.
	HeaderTimestamp = "svix-timestamp"
	// HeaderSignature carries one or more space-separated "v1,<base64>" signatures.
	HeaderSignature = "svix-signature"
)

// SecretPrefix starts a Svix signing secret: "whsec_" followed by the base64 of the HMAC key.
const SecretPrefix = "whsec_"

// MinSecretBytes is the shortest HMAC key accepted, after base64 decoding. Svix and Clerk issue
// 24-byte keys; a shorter or empty key would make signatures guessable, so it is refused both
// for verifying and for [Sign].
const MinSecretBytes = 16

// maxIDLength bounds the svix-id kept in the replay cache; Svix's IDs are about 31 bytes.
const maxIDLength = 256

// errBadSecret never includes the secret or any part of it.
var errBadSecret = errors.New("webhook secret must be " + SecretPrefix +
	"<base64 of at least " + strconv.Itoa(MinSecretBytes) + " bytes>")

// parseSecret returns the HMAC key of a signing secret: surrounding white space (a trailing
// newline of a file) and the optional "whsec_" prefix removed, then standard base64 decoded.
func parseSecret(secret string) ([]byte, error) {
	s := strings.TrimPrefix(strings.TrimSpace(secret), SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(key) < MinSecretBytes {
		return nil, errBadSecret
	}
	return key, nil
}

// Sign returns the svix-signature header value ("v1,<base64>") for a message with ID msgID,
// sent at ts (whole seconds; the svix-timestamp header must be strconv.FormatInt(ts.Unix(), 10)),
// whose raw body is body, signed with secret ("whsec_<base64>"): base64 of
// HMAC-SHA256(key, msgID + "." + ts + "." + body), as Svix and Clerk sign. It fails only for a
// secret that is not valid base64 of at least [MinSecretBytes] bytes, or an empty msgID.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := parseSecret(secret)
	if err != nil {
		return "", err
	}
	if msgID == "" {
		return "", errors.New("webhook message ID must not be empty")
	}
	wh, err := svix.NewWebhookRaw(key)
	if err != nil {
		return "", fmt.Errorf("webhook signer: %w", err)
	}
	return wh.Sign(msgID, ts, body)
}

// SetHeaders signs body like [Sign] and sets the three Svix headers of a delivery on h.
func SetHeaders(h http.Header, secret, msgID string, ts time.Time, body []byte) error {
	sig, err := Sign(secret, msgID, ts, body)
	if err != nil {
		return err
	}
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return nil
}

// signedHeaders are the well-formed Svix headers of a request.
type signedHeaders struct {
	id, signature string
	timestamp     time.Time
	rawTimestamp  string
}

// readHeaders returns the Svix headers of h, or false when one is missing or malformed: an empty
// or overlong ID, a timestamp that is not a canonical decimal integer (no sign, no leading zero),
// an empty signature list.
func readHeaders(h http.Header) (signedHeaders, bool) {
	s := signedHeaders{id: h.Get(HeaderID), signature: h.Get(HeaderSignature), rawTimestamp: h.Get(HeaderTimestamp)}
	if s.id == "" || len(s.id) > maxIDLength || strings.TrimSpace(s.signature) == "" {
		return s, false
	}
	sec, err := strconv.ParseInt(s.rawTimestamp, 10, 64)
	if err != nil || sec < 0 || strconv.FormatInt(sec, 10) != s.rawTimestamp {
		return s, false
	}
	s.timestamp = time.Unix(sec, 0)
	return s, true
}

// verify reports whether one of the v1 signatures of s signs body with key. The timestamp is
// checked by the caller, against its own clock. svix-webhooks compares with hmac.Equal (constant
// time) and accepts any one matching entry of the space-separated list.
func verify(key []byte, s signedHeaders, body []byte) bool {
	wh, err := svix.NewWebhookRaw(key)
	if err != nil {
		return false
	}
	// Only the three svix-* headers, so the library cannot fall back to other headers
	// (webhook-id, …) than the ones checked here and used for replay detection.
	h := http.Header{}
	h.Set(HeaderID, s.id)
	h.Set(HeaderTimestamp, s.rawTimestamp)
	h.Set(HeaderSignature, s.signature)
	return wh.VerifyIgnoringTimestamp(body, h) == nil
}
