package mail

import (
	"crypto/rand"
	"encoding/hex"
	netmail "net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/voluntree/voluntree"
)

// Email limits.
const (
	MaxSubjectRunes = 200
	MaxTextBytes    = 100 << 10
	MaxIDLength     = 64
)

// Email is one plain-text email to one recipient, as queued (JSON).
type Email struct {
	ID        string    `json:"id"`            // also the Message-ID's local part, so receivers can dedupe a resend
	Org       string    `json:"org,omitempty"` // the organization it is for (the outbox shows each its own)
	To        string    `json:"to"`            // "a@example.org" or "Name <a@example.org>"
	Subject   string    `json:"subject"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"` // the Date header
}

// Validate reports an email that cannot be sent safely: a recipient that is not one address,
// or a header value with a line break (header injection), or sizes past the limits. Its
// errors are voluntree EINVALID errors.
func (e Email) Validate() error {
	if e.ID != "" && !validID(e.ID) {
		return voluntree.Errorf(voluntree.EINVALID, "email id %.40q: only letters, digits, '_' and '-', at most %d", e.ID, MaxIDLength)
	}
	if strings.ContainsAny(e.To, "\r\n") {
		return voluntree.Errorf(voluntree.EINVALID, "email recipient %.80q contains a line break", e.To)
	}
	if _, err := netmail.ParseAddress(e.To); err != nil {
		return voluntree.Errorf(voluntree.EINVALID, "email recipient %.80q is not an address: %v", e.To, err)
	}
	if strings.ContainsAny(e.Subject, "\r\n") {
		return voluntree.Errorf(voluntree.EINVALID, "email subject contains a line break")
	}
	if !utf8.ValidString(e.Subject) || !utf8.ValidString(e.Text) {
		return voluntree.Errorf(voluntree.EINVALID, "email subject and text must be UTF-8")
	}
	if n := utf8.RuneCountInString(e.Subject); n > MaxSubjectRunes {
		return voluntree.Errorf(voluntree.EINVALID, "email subject has %d characters, at most %d", n, MaxSubjectRunes)
	}
	if len(e.Text) > MaxTextBytes {
		return voluntree.Errorf(voluntree.EINVALID, "email text has %d bytes, at most %d", len(e.Text), MaxTextBytes)
	}
	return nil
}

func validID(id string) bool {
	if len(id) > MaxIDLength {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// newID returns 16 random bytes in hex.
func newID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
