package clerkfake

import (
	"encoding/base32"
	"net/http"
	"net/mail"
	"regexp"
	"slices"
	"strings"
)

var (
	phoneRE   = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	ethRE     = regexp.MustCompile(`^0x[0-9a-fA-F]{40}$`)
	base58RE  = regexp.MustCompile(`^[1-9A-HJ-NP-Za-km-z]{32,44}$`)
	usernameR = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	digitsRE  = regexp.MustCompile(`^[0-9]+$`)
)

// passwordHashers is the PasswordHasher enum of the spec.
var passwordHashers = []string{
	"argon2i", "argon2id", "bcrypt", "bcrypt_sha256_django", "ldap_ssha", "md5", "md5_phpass",
	"pbkdf2_sha1", "pbkdf2_sha256", "pbkdf2_sha256_django", "pbkdf2_sha512", "pbkdf2_sha512_hex",
	"phpass", "scrypt_firebase", "scrypt_werkzeug", "sha256", "sha512_symfony",
}

// minPasswordLength is Clerk's minimum ("at least 8 characters long").
const minPasswordLength = 8

func validEmail(s string) bool {
	if strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	return at > 0 && strings.Contains(s[at+1:], ".")
}

func checkEmail(param, s string) *apiError {
	if !validEmail(s) {
		return errParamFormat(param, param+" must be a valid email address.")
	}
	return nil
}

func checkPhone(param, s string) *apiError {
	if !phoneRE.MatchString(s) {
		return errParamFormat(param, param+" must be a valid phone number according to E.164 international standard.")
	}
	return nil
}

func checkWeb3(param, s string) *apiError {
	if !ethRE.MatchString(s) && !base58RE.MatchString(s) {
		return errParamFormat(param, param+" must be a valid web3 wallet address.")
	}
	return nil
}

// checkUsername applies Clerk's default username rules (4 to 64 characters).
func checkUsername(s string) *apiError {
	if n := len([]rune(s)); n < 4 || n > 64 {
		return newAPIError(http.StatusUnprocessableEntity, "form_username_invalid_length", "is invalid",
			"Username must be between 4 and 64 characters long.", paramMeta("username"))
	}
	if !usernameR.MatchString(s) {
		return newAPIError(http.StatusUnprocessableEntity, "form_username_invalid_character", "is invalid",
			"Username can only contain letters, numbers and '_', '-' or '.'.", paramMeta("username"))
	}
	if digitsRE.MatchString(s) {
		return newAPIError(http.StatusUnprocessableEntity, "form_username_needs_non_number_char", "is invalid",
			"Username must contain at least one non-number character.", paramMeta("username"))
	}
	return nil
}

func checkPassword(pw string, skipChecks bool) *apiError {
	if skipChecks {
		return nil
	}
	if len([]rune(pw)) < minPasswordLength {
		return newAPIError(http.StatusUnprocessableEntity, "form_password_length_too_short", "Passwords must be 8 characters or more.",
			"Passwords must be 8 characters or more.", paramMeta("password"))
	}
	return nil
}

func checkHasher(digest *string, hasher *string) *apiError {
	if digest == nil {
		return nil
	}
	if hasher == nil {
		return errParamMissing("password_hasher")
	}
	if !slices.Contains(passwordHashers, *hasher) {
		return errParamValue("password_hasher", *hasher+" is not a supported password hasher.")
	}
	return nil
}

// normalizeTOTPSecret validates a base32 TOTP secret and returns it upper-cased
// without padding or spaces.
func normalizeTOTPSecret(secret string) (string, *apiError) {
	s := strings.ToUpper(strings.ReplaceAll(strings.TrimRight(secret, "="), " ", ""))
	if _, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s); err != nil || s == "" {
		return "", newAPIError(http.StatusUnprocessableEntity, "invalid_totp_secret_code", "is invalid",
			"The TOTP secret must be a valid base32 string.", paramMeta("totp_secret"))
	}
	return s, nil
}
