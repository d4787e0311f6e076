package smtpsink_test

import (
	"context"
	"errors"
	"net/smtp"
	"net/textproto"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voluntree/voluntree/internal/smtpsink"
)

func start(t *testing.T, cfg smtpsink.Config) *smtpsink.Sink {
	t.Helper()
	s, err := smtpsink.Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func replyCode(err error) int {
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) {
		return tpErr.Code
	}
	return 0
}

const msg = "From: a@example.org\r\nTo: b@example.org, c@example.org\r\nSubject: Hello\r\n\r\nLine one\r\nLine two\r\n"

func TestSendMail(t *testing.T) {
	t.Parallel()
	s := start(t, smtpsink.Config{})
	to := []string{"b@example.org", "c@example.org", "d@example.org"}
	if err := smtp.SendMail(s.Addr(), nil, "a@example.org", to, []byte(msg)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	msgs, err := s.Wait(testCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if m.From != "a@example.org" || !reflect.DeepEqual(m.To, to) {
		t.Errorf("envelope = %q → %q, want a@example.org → %q", m.From, m.To, to)
	}
	if string(m.Data) != msg {
		t.Errorf("Data = %q, want %q", m.Data, msg)
	}
	if got := m.Header.Get("Subject"); got != "Hello" {
		t.Errorf("Subject = %q", got)
	}
	if m.Body != "Line one\r\nLine two\r\n" {
		t.Errorf("Body = %q", m.Body)
	}
	if !strings.HasPrefix(s.URL(), "smtp://127.0.0.1:") {
		t.Errorf("URL = %q", s.URL())
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	s := start(t, smtpsink.Config{Username: "user", Password: "p@ss word"})
	if got, want := s.URL(), "smtp://user:p%40ss%20word@"+s.Addr(); got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	send := func(auth smtp.Auth) error {
		return smtp.SendMail(s.Addr(), auth, "a@example.org", []string{"b@example.org"}, []byte(msg))
	}
	tests := []struct {
		name string
		auth smtp.Auth
		code int // 0: accepted
	}{
		{"right credentials", smtp.PlainAuth("", "user", "p@ss word", "127.0.0.1"), 0},
		{"wrong password", smtp.PlainAuth("", "user", "nope", "127.0.0.1"), 535},
		{"wrong user", smtp.PlainAuth("", "someone", "p@ss word", "127.0.0.1"), 535},
		{"no auth", nil, 530},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := send(tt.auth)
			if got := replyCode(err); got != tt.code {
				t.Fatalf("SendMail: reply %d (%v), want %d", got, err, tt.code)
			}
		})
	}
	if n := len(s.Messages()); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
}

func TestAuthOptionalWithoutCredentials(t *testing.T) {
	t.Parallel()
	s := start(t, smtpsink.Config{})
	err := smtp.SendMail(s.Addr(), smtp.PlainAuth("", "any", "thing", "127.0.0.1"), "a@example.org", []string{"b@example.org"}, []byte(msg))
	if err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	if _, err := s.Wait(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
}

func TestDotStuffing(t *testing.T) {
	t.Parallel()
	s := start(t, smtpsink.Config{})
	body := ".leading dot\r\n..two dots\r\n.\r\nnot the end\r\n. \r\nend\r\n"
	data := "Subject: dots\r\n\r\n" + body
	if err := smtp.SendMail(s.Addr(), nil, "a@example.org", []string{"b@example.org"}, []byte(data)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	msgs, err := s.Wait(testCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(msgs[0].Data) != data || msgs[0].Body != body {
		t.Fatalf("Data = %q, want %q", msgs[0].Data, data)
	}
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	s := start(t, smtpsink.Config{})
	send := func() error {
		return smtp.SendMail(s.Addr(), nil, "a@example.org", []string{"b@example.org"}, []byte(msg))
	}
	s.FailNext(2, 451, "4.3.0 try again later")
	for i := range 2 {
		if err := send(); replyCode(err) != 451 || !strings.Contains(err.Error(), "try again later") {
			t.Fatalf("send %d: %v, want 451", i, err)
		}
	}
	s.FailNext(1, 550, "5.1.1 no such user")
	if err := send(); replyCode(err) != 550 {
		t.Fatalf("send: %v, want 550", err)
	}
	if err := send(); err != nil {
		t.Fatalf("send after the failures: %v", err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Fatalf("%d messages stored, want 1 (failed ones store nothing)", n)
	}
}

func TestSizeLimit(t *testing.T) {
	t.Parallel()
	s := start(t, smtpsink.Config{MaxSize: 100})
	big := "Subject: big\r\n\r\n" + strings.Repeat("x", 200) + "\r\n"
	if err := smtp.SendMail(s.Addr(), nil, "a@example.org", []string{"b@example.org"}, []byte(big)); replyCode(err) != 552 {
		t.Fatalf("big message: %v, want 552", err)
	}
	small := "Subject: small\r\n\r\nok\r\n"
	if err := smtp.SendMail(s.Addr(), nil, "a@example.org", []string{"b@example.org"}, []byte(small)); err != nil {
		t.Fatalf("small message after a big one: %v", err)
	}
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].Header.Get("Subject") != "small" {
		t.Fatalf("messages = %+v, want only the small one", msgs)
	}
}

// TestProtocol drives the conversation by hand: replies to out-of-order and unknown
// commands, RSET, NOOP, HELO, and a SIZE parameter over the limit.
func TestProtocol(t *testing.T) {
	t.Parallel()
	s := start(t, smtpsink.Config{MaxSize: 1000})
	c, err := textproto.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.ReadResponse(220); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	steps := []struct {
		cmd  string
		code int
	}{
		{"MAIL FROM:<a@example.org>", 503}, // before HELO
		{"HELO client.example", 250},
		{"RCPT TO:<b@example.org>", 503}, // before MAIL
		{"DATA", 503},
		{"FOO bar", 500},
		{"MAIL FROM:a@example.org", 501},
		{"MAIL FROM:<a@example.org> SIZE=5000", 552},
		{"MAIL FROM:<a@example.org> SIZE=10", 250},
		{"MAIL FROM:<a@example.org>", 503}, // nested
		{"DATA", 503},                      // no recipient yet
		{"RCPT TO:<>", 501},
		{"RCPT TO:<b@example.org>", 250},
		{"NOOP", 250},
		{"RSET", 250},
		{"RCPT TO:<b@example.org>", 503}, // RSET ended the transaction
		{"AUTH LOGIN", 504},
		{"MAIL FROM:<>", 250}, // the null sender
		{"RCPT TO:<b@example.org>", 250},
		{"DATA", 354},
	}
	for _, st := range steps {
		if err := c.PrintfLine("%s", st.cmd); err != nil {
			t.Fatal(err)
		}
		if code, text, err := c.ReadResponse(st.code); err != nil {
			t.Fatalf("%s: %d %s, want %d", st.cmd, code, text, st.code)
		}
	}
	if err := c.PrintfLine("Subject: by hand\r\n\r\n..dotted\r\n."); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadResponse(250); err != nil {
		t.Fatalf("end of data: %v", err)
	}
	if err := c.PrintfLine("QUIT"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadResponse(221); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	msgs, err := s.Wait(testCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if m := msgs[0]; m.From != "" || m.Body != ".dotted\r\n" || m.Header.Get("Subject") != "by hand" {
		t.Fatalf("message = %+v", m)
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	s := start(t, smtpsink.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Wait(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with nothing sent: %v, want deadline exceeded", err)
	}

	const n = 5
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- smtp.SendMail(s.Addr(), nil, "a@example.org", []string{"b@example.org"}, []byte(msg))
		})
	}
	msgs, err := s.Wait(testCtx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("SendMail: %v", err)
		}
	}
	if len(msgs) != n {
		t.Fatalf("Wait returned %d messages, want %d", len(msgs), n)
	}
}

func TestCloseEndsOpenConnections(t *testing.T) {
	t.Parallel()
	s, err := smtpsink.Start(smtpsink.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := textproto.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	s.Close() // returns only once the session's handler ended
	s.Close() // idempotent
	if _, err := c.ReadLine(); err == nil {
		t.Fatal("connection still open after Close")
	}
}
