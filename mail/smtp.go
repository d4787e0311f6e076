package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"time"
)

// Default SMTP ports and the longest a Send may take when its context has no deadline.
const (
	DefaultSMTPPort  = "25"
	DefaultSMTPSPort = "465"
	defaultSMTPWait  = time.Minute
)

// SMTPSender sends emails through an SMTP server with net/smtp, one connection per email.
type SMTPSender struct {
	// TLSConfig, when set, is used for smtps:// and for STARTTLS (a server on smtp:// that
	// offers it is always asked to upgrade); its ServerName defaults to the URL's host.
	TLSConfig *tls.Config

	addr        string // host:port
	host        string
	implicitTLS bool
	user, pass  string
	from        *netmail.Address
}

// NewSMTPSender returns a sender for rawURL:
//
//	smtp://[user:pass@]host[:port]?from=noreply@example.org   (port 25; STARTTLS when offered)
//	smtps://[user:pass@]host[:port]?from=noreply@example.org  (implicit TLS, port 465)
//
// from (required) is the sender address, optionally with a name ("Voluntree
// <noreply@example.org>", URL-encoded). With a user, the sender authenticates with AUTH
// PLAIN, which net/smtp allows only over TLS or to localhost.
func NewSMTPSender(rawURL string) (*SMTPSender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("mail: SMTP URL: %w", err)
	}
	s := &SMTPSender{host: u.Hostname()}
	port := u.Port()
	switch u.Scheme {
	case "smtp":
		if port == "" {
			port = DefaultSMTPPort
		}
	case "smtps":
		s.implicitTLS = true
		if port == "" {
			port = DefaultSMTPSPort
		}
	default:
		return nil, fmt.Errorf("mail: SMTP URL scheme %q: want smtp or smtps", u.Scheme)
	}
	if s.host == "" {
		return nil, errors.New("mail: SMTP URL has no host")
	}
	s.addr = net.JoinHostPort(s.host, port)
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
	}
	q := u.Query()
	for k := range q {
		if k != "from" {
			return nil, fmt.Errorf("mail: SMTP URL parameter %q: only from is known", k)
		}
	}
	if q.Get("from") == "" {
		return nil, errors.New("mail: SMTP URL needs ?from=sender@address")
	}
	if s.from, err = netmail.ParseAddress(q.Get("from")); err != nil {
		return nil, fmt.Errorf("mail: SMTP URL from %q: %w", q.Get("from"), err)
	}
	return s, nil
}

// Send delivers e, giving up when ctx ends (without a deadline, after a minute). A 5xx reply
// to the envelope or the message is a permanent error (IsPermanent); failures to connect or
// authenticate, and 4xx replies, are not.
func (s *SMTPSender) Send(ctx context.Context, e Email) error {
	if err := e.Validate(); err != nil {
		return Permanent(err)
	}
	if e.ID == "" {
		e.ID = newID()
	}
	msg, err := buildMessage(s.from, e)
	if err != nil {
		return Permanent(err)
	}
	to, _ := netmail.ParseAddress(e.To) // valid: checked above

	conn, err := s.dial(ctx)
	if err != nil {
		return fmt.Errorf("mail: connect to %s: %w", s.addr, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultSMTPWait)
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) }) // unblock I/O
	defer stop()
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return s.fail(ctx, "greeting", err)
	}
	defer c.Close()

	if !s.implicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(s.tlsConfig()); err != nil {
				return s.fail(ctx, "STARTTLS", err)
			}
		}
	}
	if s.user != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return fmt.Errorf("mail: smtp %s does not offer AUTH", s.addr)
		}
		// A rejected login is the configuration's fault, not the email's: not permanent.
		if err := c.Auth(smtp.PlainAuth("", s.user, s.pass, s.host)); err != nil {
			return fmt.Errorf("mail: smtp authenticate to %s: %w", s.addr, ctxErr(ctx, err))
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return s.fail(ctx, "MAIL FROM", err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return s.fail(ctx, "RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return s.fail(ctx, "DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return s.fail(ctx, "message", err)
	}
	if err := w.Close(); err != nil { // the server's verdict on the message
		return s.fail(ctx, "message", err)
	}
	_ = c.Quit() // the message is accepted; a failed goodbye changes nothing
	return nil
}

func (s *SMTPSender) dial(ctx context.Context) (net.Conn, error) {
	if s.implicitTLS {
		d := tls.Dialer{Config: s.tlsConfig()}
		return d.DialContext(ctx, "tcp", s.addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", s.addr)
}

func (s *SMTPSender) tlsConfig() *tls.Config {
	cfg := &tls.Config{}
	if s.TLSConfig != nil {
		cfg = s.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = s.host
	}
	return cfg
}

// fail wraps an SMTP error; a 5xx reply is permanent.
func (s *SMTPSender) fail(ctx context.Context, step string, err error) error {
	err = fmt.Errorf("mail: smtp %s %s: %w", s.addr, step, ctxErr(ctx, err))
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) && tpErr.Code >= 500 && tpErr.Code < 600 {
		return Permanent(err)
	}
	return err
}

// ctxErr adds ctx's error to err when ctx ended (I/O then fails with a deadline error).
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return err
}
