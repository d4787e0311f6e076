// Package smtpsink is a small, real SMTP server for tests: it listens on 127.0.0.1:0, speaks
// enough of RFC 5321 for net/smtp and common clients (EHLO/HELO, AUTH PLAIN, MAIL, RCPT,
// DATA, RSET, NOOP, QUIT) and keeps every message it accepts in memory.
//
//	sink, err := smtpsink.Start(smtpsink.Config{Username: "u", Password: "p"})
//	defer sink.Close()
//	err = smtp.SendMail(sink.Addr(), smtp.PlainAuth("", "u", "p", "127.0.0.1"), from, to, msg)
//	msgs, err := sink.Wait(ctx, 1) // blocks until a message arrived
//
// FailNext makes the next DATA commands fail with a chosen reply (451 temporary, 550
// permanent) to test a client's retries.
package smtpsink

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultMaxSize is the largest message (DATA) accepted unless Config says otherwise.
const DefaultMaxSize = 10 << 20

// Config configures a Sink.
type Config struct {
	// Username and Password, when Username is set, are the only credentials AUTH PLAIN
	// accepts, and a client must authenticate before MAIL. Without them any credentials
	// are accepted and authentication is optional.
	Username, Password string
	// MaxSize is the largest message in bytes (after dot-unstuffing); larger ones get 552.
	// 0 means DefaultMaxSize.
	MaxSize int
	// TLS, when set, makes the sink speak implicit TLS (smtps) with this configuration.
	TLS *tls.Config
	// OnMessage, when set, is called with each accepted message (from the connection's
	// goroutine: it must not block long).
	OnMessage func(Message)
}

// Message is one accepted message.
type Message struct {
	From   string      // envelope sender (MAIL FROM), "" for the null sender
	To     []string    // envelope recipients (RCPT TO), in order
	Data   []byte      // the message as received, CRLF line ends, dot-unstuffed
	Header mail.Header // Data's header (empty when Data does not parse as a message)
	Body   string      // Data's body as sent (still transfer-encoded); all of Data when it does not parse
}

// Subject returns the Subject header with RFC 2047 encoded-words decoded.
func (m Message) Subject() string {
	s := m.Header.Get("Subject")
	if dec, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		return dec
	}
	return s
}

// Text returns the body with its Content-Transfer-Encoding (quoted-printable or base64)
// undone. Line ends stay as sent (CRLF).
func (m Message) Text() (string, error) {
	var r io.Reader = strings.NewReader(m.Body)
	switch strings.ToLower(strings.TrimSpace(m.Header.Get("Content-Transfer-Encoding"))) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r) // skips line breaks
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("smtpsink: decode body: %w", err)
	}
	return string(b), nil
}

// Sink is a running SMTP server.
type Sink struct {
	cfg Config
	ln  net.Listener
	wg  sync.WaitGroup

	mu       sync.Mutex
	msgs     []Message
	arrived  chan struct{} // closed and replaced whenever a message is stored
	failN    int
	failCode int
	failText string
	conns    map[net.Conn]struct{}
	closed   bool
}

// Start listens on 127.0.0.1 on a free port and serves until Close.
func Start(cfg Config) (*Sink, error) {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smtpsink: listen: %w", err)
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	s := &Sink{cfg: cfg, ln: ln, arrived: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr returns the host:port the sink listens on.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// URL returns smtp://[user:pass@]host:port (smtps:// with TLS).
func (s *Sink) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.Addr()}
	if s.cfg.TLS != nil {
		u.Scheme = "smtps"
	}
	if s.cfg.Username != "" {
		u.User = url.UserPassword(s.cfg.Username, s.cfg.Password)
	}
	return u.String()
}

// Messages returns the messages accepted so far, oldest first.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait blocks until at least n messages were accepted, and returns them all, or returns
// ctx's error with the messages so far.
func (s *Sink) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			msgs := append([]Message(nil), s.msgs...)
			s.mu.Unlock()
			return msgs, nil
		}
		arrived := s.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			msgs := s.Messages()
			return msgs, fmt.Errorf("smtpsink: %d of %d messages arrived: %w", len(msgs), n, ctx.Err())
		}
	}
}

// FailNext makes the next n DATA commands answer code and text (e.g. 451 for a temporary
// failure, 550 for a permanent one) once the data is read, and store nothing.
func (s *Sink) FailNext(n int, code int, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode, s.failText = n, code, text
}

// Close stops listening, closes open connections and waits for their handlers.
func (s *Sink) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Sink) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			newSession(s, c).serve()
		}()
	}
}

// takeFailure consumes one planned DATA failure, if any.
func (s *Sink) takeFailure() (code int, text string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failN <= 0 {
		return 0, "", false
	}
	s.failN--
	return s.failCode, s.failText, true
}

// store parses and keeps an accepted message and wakes the waiters.
func (s *Sink) store(from string, to []string, data []byte) {
	m := Message{From: from, To: to, Data: data, Header: mail.Header{}, Body: string(data)}
	if pm, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
		body, _ := io.ReadAll(pm.Body)
		m.Header, m.Body = pm.Header, string(body)
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
	if s.cfg.OnMessage != nil {
		s.cfg.OnMessage(m)
	}
}

// idleTimeout bounds how long a connection may sit without sending a line.
const idleTimeout = 2 * time.Minute
