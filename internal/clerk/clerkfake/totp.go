package clerkfake

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// totpPeriod and totpDigits are the only TOTP settings Clerk supports
// (period 30 s, 6 digits, SHA1).
const (
	totpPeriod = 30
	totpDigits = 6
)

// TOTPCode returns the RFC 6238 code (SHA1, 30 s, 6 digits) of a base32
// secret at time t: the code POST /v1/users/{user_id}/verify_totp accepts
// for a user created or updated with that totp_secret. Tests use it to
// produce valid codes.
func TOTPCode(secret string, t time.Time) (string, error) {
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(
		strings.ToUpper(strings.ReplaceAll(strings.TrimRight(secret, "="), " ", "")))
	if err != nil {
		return "", fmt.Errorf("decode TOTP secret: %w", err)
	}
	return hotp(key, uint64(t.Unix()/totpPeriod)), nil
}

func hotp(key []byte, counter uint64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac := hmac.New(sha1.New, key)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%0*d", totpDigits, bin%1000000)
}

// totpValid accepts the code of the current period and of one period
// either side, for clock drift.
func totpValid(secret, code string, now time.Time) bool {
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		return false
	}
	c := now.Unix() / totpPeriod
	for _, d := range []int64{0, -1, 1} {
		if subtle.ConstantTimeCompare([]byte(hotp(key, uint64(c+d))), []byte(code)) == 1 {
			return true
		}
	}
	return false
}
