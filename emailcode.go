package voluntree

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/mail"
	"strings"
	"time"
)

// Email verification: before an organization connects a Facebook page, its admin proves
// the organization's email address with a one-time code sent to it.
const (
	EmailCodeDigits   = 6
	EmailCodeTTL      = 15 * time.Minute // a code is valid this long after it was sent
	EmailCodeAttempts = 3                // wrong codes before the code is locked
	EmailCodeCooldown = time.Minute      // between two codes sent to an organization
	EmailCodesPerHour = 5                // codes sent to an organization in any hour
	MaxEmailLength    = 254
)

// EmailChallenge is an organization's pending email verification. The code itself is not
// kept, only its hash.
type EmailChallenge struct {
	Email     string      `json:"email"`
	CodeHash  string      `json:"code_hash"`
	SentAt    time.Time   `json:"sent_at"`
	ExpiresAt time.Time   `json:"expires_at"`
	Attempts  int         `json:"attempts"` // wrong codes entered
	Sends     []time.Time `json:"sends"`    // when codes were sent in the last hour
}

// NewEmailCode returns a uniformly random code of EmailCodeDigits digits.
func NewEmailCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("voluntree: email code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// HashEmailCode is the stored form of a code, bound to its organization and address.
func HashEmailCode(orgID, email, code string) string {
	sum := sha256.Sum256([]byte(orgID + "\x00" + strings.ToLower(email) + "\x00" + code))
	return hex.EncodeToString(sum[:])
}

// NormalizeEmail checks that s is one plain address ("a@example.org", no display name) and
// returns it trimmed. Errors name the field "email".
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", FieldErrorf("email", "email is required")
	}
	if len(s) > MaxEmailLength || strings.ContainsAny(s, "\r\n<>") {
		return "", FieldErrorf("email", "email: want one address like name@example.org")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return "", FieldErrorf("email", "email: want one address like name@example.org")
	}
	return s, nil
}

// Locked reports whether too many wrong codes were entered: the code no longer verifies.
func (c *EmailChallenge) Locked() bool { return c.Attempts >= EmailCodeAttempts }

// AttemptsLeft is how many wrong codes may still be entered.
func (c *EmailChallenge) AttemptsLeft() int { return max(0, EmailCodeAttempts-c.Attempts) }

// Reissue returns the challenge of a new code for email sent at now, or ERATELIMITED when
// prev (the pending challenge, nil when none) forbids one yet: a locked code blocks new codes
// until it would have expired, and codes are at most one a minute and five an hour.
func Reissue(prev *EmailChallenge, email, codeHash string, now time.Time) (EmailChallenge, error) {
	next := EmailChallenge{Email: email, CodeHash: codeHash, SentAt: now, ExpiresAt: now.Add(EmailCodeTTL)}
	if prev != nil {
		if prev.Locked() && now.Before(prev.ExpiresAt) {
			wait := prev.ExpiresAt.Sub(now)
			return EmailChallenge{}, rateLimited(wait, "too many wrong codes: verification is locked, ask for a new code in %s", ceilMinutes(wait))
		}
		for _, t := range prev.Sends {
			if now.Sub(t) < time.Hour {
				next.Sends = append(next.Sends, t)
			}
		}
		if len(next.Sends) > 0 {
			if wait := next.Sends[len(next.Sends)-1].Add(EmailCodeCooldown).Sub(now); wait > 0 {
				return EmailChallenge{}, rateLimited(wait, "a code was sent less than a minute ago: check the inbox or wait %s", ceilSeconds(wait))
			}
		}
		if len(next.Sends) >= EmailCodesPerHour {
			wait := next.Sends[0].Add(time.Hour).Sub(now)
			return EmailChallenge{}, rateLimited(wait, "%d codes were sent in the last hour: wait %s", EmailCodesPerHour, ceilSeconds(wait))
		}
	}
	next.Sends = append(next.Sends, now)
	return next, nil
}

// Check verifies code at now. A wrong code counts an attempt (the caller stores the changed
// challenge); the third locks the challenge. Errors: EINVALID with field "code" for a
// malformed, wrong or expired code; ERATELIMITED once locked.
func (c *EmailChallenge) Check(orgID, code string, now time.Time) error {
	code = strings.TrimSpace(code)
	switch {
	case !now.Before(c.ExpiresAt):
		return FieldErrorf("code", "this code has expired: ask for a new one")
	case c.Locked():
		wait := c.ExpiresAt.Sub(now)
		return rateLimited(wait, "too many wrong codes: this code is locked, ask for a new one in %s", ceilMinutes(wait))
	case len(code) != EmailCodeDigits || strings.Trim(code, "0123456789") != "":
		return FieldErrorf("code", "code: want the %d digits from the email", EmailCodeDigits)
	}
	want, _ := hex.DecodeString(c.CodeHash)
	got, _ := hex.DecodeString(HashEmailCode(orgID, c.Email, code))
	if subtle.ConstantTimeCompare(want, got) == 1 {
		return nil
	}
	c.Attempts++
	if c.Locked() {
		wait := max(0, c.ExpiresAt.Sub(now))
		return rateLimited(wait, "wrong code, and that was the last attempt: ask for a new code in %s", ceilMinutes(wait))
	}
	return FieldErrorf("code", "wrong code: %d attempt(s) left", c.AttemptsLeft())
}

func rateLimited(wait time.Duration, format string, args ...any) *Error {
	e := Errorf(ERATELIMITED, format, args...)
	e.RetryAfter = wait
	return e
}

// ceilMinutes words a wait in whole minutes, rounded up ("1 minute", "14 minutes").
func ceilMinutes(d time.Duration) string {
	n := int((d + time.Minute - 1) / time.Minute)
	if n <= 1 {
		return "1 minute"
	}
	return fmt.Sprintf("%d minutes", n)
}

func ceilSeconds(d time.Duration) string {
	return fmt.Sprintf("%ds", int((d+time.Second-1)/time.Second))
}
