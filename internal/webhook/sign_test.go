package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test vector of the Standard Webhooks specification's reference libraries
// (github.com/standard-webhooks/standard-webhooks, libraries/*/…: TestWebhookSign), which the Svix
// server's own tests take from Svix's documentation. Checked independently with
//
//	printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' |
//	  openssl dgst -sha256 -mac HMAC -macopt hexkey:$(printf MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p) -binary | base64
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// TestSignStandardWebhooksVector: Sign gives the specification's signature, with or without the
// whsec_ prefix and with a trailing newline (a secret read from a file).
func TestSignStandardWebhooksVector(t *testing.T) {
	for _, secret := range []string{vectorSecret, strings.TrimPrefix(vectorSecret, SecretPrefix), vectorSecret + "\n"} {
		got, err := Sign(secret, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody))
		if err != nil {
			t.Fatal(err)
		}
		if got != vectorSignature {
			t.Errorf("Sign = %q, want %q", got, vectorSignature)
		}
	}
}

// TestVerifyStandardWebhooksVector: the receiver accepts the specification's signed request (its
// body is no Clerk event, so a verified request is answered 400, an unverified one 401), and
// refuses it with one bit of the signature changed.
func TestVerifyStandardWebhooksVector(t *testing.T) {
	h := newHarness(t, map[string]string{"default": vectorSecret})
	h.now = time.Unix(vectorTimestamp, 0)
	header := http.Header{}
	header.Set(HeaderID, vectorID)
	header.Set(HeaderTimestamp, strconv.Itoa(vectorTimestamp))
	header.Set(HeaderSignature, vectorSignature)
	if rec := h.do(http.MethodPost, Path+"default", header, []byte(vectorBody)); rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400 (verified, not an event)", rec.Code)
	}
	header.Set(HeaderSignature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=")
	if rec := h.do(http.MethodPost, Path+"default", header, []byte(vectorBody)); rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", rec.Code)
	}
}

// TestSignMatchesFormula: Sign is base64(HMAC-SHA256(key, id.ts.body)) computed here with the
// standard library only, for bodies with dots, newlines and binary bytes.
func TestSignMatchesFormula(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	secret := SecretPrefix + base64.StdEncoding.EncodeToString(key)
	for i, body := range [][]byte{nil, []byte("{}"), []byte("a.b.c\n"), {0, 0xff, '.', 0x80}} {
		ts := time.Unix(1700000000+int64(i), 999_000_000) // sub-second part is not signed
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte("msg_" + strconv.Itoa(i) + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
		mac.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		got, err := Sign(secret, "msg_"+strconv.Itoa(i), ts, body)
		if err != nil || got != want {
			t.Errorf("body %q: Sign = %q, %v; want %q", body, got, err, want)
		}
	}
}

// TestSignRefusesBadSecrets: no signing with an empty, short or non-base64 key, or without an ID;
// the error does not contain the secret.
func TestSignRefusesBadSecrets(t *testing.T) {
	for _, secret := range []string{"", SecretPrefix, SecretPrefix + "dGVzdA==", SecretPrefix + "not base64!!", "whsec_" + strings.Repeat("A", 20)} {
		_, err := Sign(secret, "msg_1", time.Unix(1, 0), nil)
		if err == nil {
			t.Errorf("secret %q: no error", secret)
			continue
		}
		if s := strings.TrimPrefix(secret, SecretPrefix); s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains the secret", err)
		}
	}
	if _, err := Sign(vectorSecret, "", time.Unix(1, 0), nil); err == nil {
		t.Error("empty message ID: no error")
	}
}

// TestSetHeaders: the three headers a delivery needs, verified by the receiver's own check.
func TestSetHeaders(t *testing.T) {
	h := http.Header{}
	if err := SetHeaders(h, vectorSecret, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody)); err != nil {
		t.Fatal(err)
	}
	if h.Get(HeaderID) != vectorID || h.Get(HeaderTimestamp) != strconv.Itoa(vectorTimestamp) || h.Get(HeaderSignature) != vectorSignature {
		t.Fatalf("headers %v", h)
	}
	if err := SetHeaders(h, "", vectorID, time.Unix(vectorTimestamp, 0), nil); err == nil {
		t.Fatal("empty secret: no error")
	}
}

// TestReadHeaders: timestamps must be canonical non-negative decimals, IDs 1..256 bytes.
func TestReadHeaders(t *testing.T) {
	for _, tc := range []struct {
		id, ts, sig string
		ok          bool
	}{
		{"msg_1", "1614265330", "v1,x", true},
		{"msg_1", "0", "v1,x", true},
		{"msg_1", "+1614265330", "v1,x", false},
		{"msg_1", "01614265330", "v1,x", false},
		{"msg_1", "-5", "v1,x", false},
		{"msg_1", "1614265330.5", "v1,x", false},
		{"msg_1", "abc", "v1,x", false},
		{"msg_1", "99999999999999999999", "v1,x", false},
		{"msg_1", "", "v1,x", false},
		{"", "1614265330", "v1,x", false},
		{strings.Repeat("m", 256), "1614265330", "v1,x", true},
		{strings.Repeat("m", 257), "1614265330", "v1,x", false},
		{"msg_1", "1614265330", " ", false},
	} {
		h := http.Header{}
		h.Set(HeaderID, tc.id)
		h.Set(HeaderTimestamp, tc.ts)
		h.Set(HeaderSignature, tc.sig)
		if _, ok := readHeaders(h); ok != tc.ok {
			t.Errorf("id %.10q ts %q sig %q: ok %v, want %v", tc.id, tc.ts, tc.sig, ok, tc.ok)
		}
	}
}
