package mail

import (
	"bytes"
	"fmt"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"time"
)

// MessageIDDomain is the right-hand side of every Message-ID: <ID@voluntree>.
const MessageIDDomain = "voluntree"

// buildMessage renders e as an RFC 5322 message from from: a plain-text UTF-8 body in
// quoted-printable (7-bit clean, so any relay accepts it), non-ASCII header text as RFC 2047
// encoded-words, and the email's ID in the Message-ID so receivers can dedupe a resend.
// e must be valid and have an ID.
func buildMessage(from *netmail.Address, e Email) ([]byte, error) {
	to, err := netmail.ParseAddress(e.To)
	if err != nil {
		return nil, fmt.Errorf("mail: recipient %q: %w", e.To, err)
	}
	date := e.CreatedAt
	if date.IsZero() {
		date = time.Now()
	}
	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(fold(value))
		b.WriteString("\r\n")
	}
	header("From", from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", e.Subject))
	header("Date", date.Format(time.RFC1123Z))
	header("Message-ID", "<"+e.ID+"@"+MessageIDDomain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b) // text mode: line breaks become CRLF, lines ≤ 76
	if _, err := qp.Write([]byte(e.Text)); err != nil {
		return nil, fmt.Errorf("mail: encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("mail: encode body: %w", err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}

// fold breaks a header value between adjacent encoded-words (which mime's encoder keeps
// under 76 characters each), so that a long non-ASCII subject stays within the line length
// limit. Unfolding restores the value exactly.
func fold(v string) string {
	return strings.ReplaceAll(v, "?= =?", "?=\r\n =?")
}
