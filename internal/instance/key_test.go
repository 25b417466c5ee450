package instance

import (
	"errors"
	"strings"
	"testing"
)

// secretPart is in every test key after its prefix; no error may contain it.
const secretPart = "S3CRETxyz789"

func TestKeyType(t *testing.T) {
	for _, tc := range []struct {
		name, key, want string
		// wantErr are texts the error must contain; empty means success.
		wantErr []string
	}{
		{name: "live", key: "sk_live_" + secretPart, want: KeyTypeLive},
		{name: "test", key: "sk_test_" + secretPart, want: KeyTypeTest},
		{name: "test with every printable character", key: "sk_test_" + secretPart + "!~_-.=/+", want: KeyTypeTest},

		{name: "empty", key: "", wantErr: []string{"is empty"}},
		{name: "publishable live key", key: "pk_live_" + secretPart, wantErr: []string{"publishable key"}},
		{name: "publishable test key", key: "pk_test_" + secretPart, wantErr: []string{"publishable key"}},
		{name: "webhook secret", key: "whsec_" + secretPart, wantErr: []string{"spec.webhookSecretRef"}},
		{name: "live prefix only", key: "sk_live_", wantErr: []string{"only a key prefix"}},
		{name: "test prefix only", key: "sk_test_", wantErr: []string{"only a key prefix"}},
		{name: "unknown environment", key: "sk_prod_" + secretPart, wantErr: []string{"does not start with sk_live_ or sk_test_"}},
		{name: "uppercase prefix", key: "SK_LIVE_" + secretPart, wantErr: []string{"does not start with sk_live_ or sk_test_"}},
		{name: "no underscore", key: "sklive" + secretPart, wantErr: []string{"does not start with"}},
		{name: "bearer prefix", key: "Bearer sk_live_" + secretPart, wantErr: []string{"space"}},
		{name: "trailing newline", key: "sk_live_" + secretPart + "\n", wantErr: []string{"line break"}},
		{name: "leading space", key: " sk_live_" + secretPart, wantErr: []string{"space"}},
		{name: "inner space", key: "sk_live_" + secretPart + " x", wantErr: []string{"space"}},
		{name: "tab", key: "sk_test_" + secretPart + "\t", wantErr: []string{"control"}},
		{name: "NUL", key: "sk_test_" + secretPart + "\x00", wantErr: []string{"control"}},
		{name: "DEL", key: "sk_test_" + secretPart + "\x7f", wantErr: []string{"control"}},
		{name: "non-ASCII", key: "sk_live_" + secretPart + "é", wantErr: []string{"non-ASCII"}},
		{name: "two keys", key: "sk_live_" + secretPart + "\nsk_test_" + secretPart, wantErr: []string{"line break"}},
		{name: "quoted", key: `"sk_live_` + secretPart + `"`, wantErr: []string{"does not start with"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := KeyType(tc.key)
			if len(tc.wantErr) == 0 {
				if err != nil || got != tc.want {
					t.Fatalf("KeyType = %q, %v; want %q, nil", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("KeyType = %q, nil; want an error", got)
			}
			if got != "" {
				t.Errorf("KeyType returned type %q with an error", got)
			}
			checkKeyError(t, err, tc.key, tc.wantErr...)
		})
	}
}

// checkKeyError checks that err is an ErrInvalidKey naming spec.secretKeyRef and saying what to
// put there, containing want and no part of the key.
func checkKeyError(t *testing.T, err error, key string, want ...string) {
	t.Helper()
	msg := err.Error()
	if !errors.Is(err, ErrInvalidKey) {
		t.Errorf("error %q does not wrap ErrInvalidKey", msg)
	}
	for _, w := range append([]string{"spec.secretKeyRef", "sk_live_… or sk_test_…"}, want...) {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	if strings.Contains(msg, secretPart) || (len(key) > len("sk_live_") && strings.Contains(msg, key)) {
		t.Errorf("error %q contains the key", msg)
	}
}

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		name, value, wantKey, wantType string
		wantErr                        string
	}{
		{name: "as is", value: "sk_live_" + secretPart, wantKey: "sk_live_" + secretPart, wantType: KeyTypeLive},
		{name: "trailing newline", value: "sk_test_" + secretPart + "\n", wantKey: "sk_test_" + secretPart, wantType: KeyTypeTest},
		{name: "CRLF and spaces", value: "  sk_test_" + secretPart + " \r\n", wantKey: "sk_test_" + secretPart, wantType: KeyTypeTest},
		{name: "only whitespace", value: " \n\t", wantErr: "is empty"},
		{name: "empty", value: "", wantErr: "is empty"},
		{name: "two lines", value: "sk_live_" + secretPart + "\nsk_live_other\n", wantErr: "line break"},
		{name: "publishable", value: "pk_live_" + secretPart + "\n", wantErr: "publishable key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, typ, err := ParseKey([]byte(tc.value))
			if tc.wantErr == "" {
				if err != nil || key != tc.wantKey || typ != tc.wantType {
					t.Fatalf("ParseKey = %q, %q, %v; want %q, %q, nil", key, typ, err, tc.wantKey, tc.wantType)
				}
				return
			}
			if err == nil || key != "" || typ != "" {
				t.Fatalf("ParseKey = %q, %q, %v; want an error", key, typ, err)
			}
			checkKeyError(t, err, strings.TrimSpace(tc.value), tc.wantErr)
		})
	}
}
