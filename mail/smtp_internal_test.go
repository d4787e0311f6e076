package mail

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"testing"
	"time"
)

func TestNewSMTPSender(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url                   string
		addr, user, pass, frm string
		tls                   bool
		err                   string
	}{
		{url: "smtp://mail.example.org?from=noreply@example.org", addr: "mail.example.org:25", frm: "noreply@example.org"},
		{url: "smtps://mail.example.org?from=noreply@example.org", addr: "mail.example.org:465", frm: "noreply@example.org", tls: true},
		{url: "smtp://u%40x:p%3As@127.0.0.1:2525?from=Voluntree+%3Cnoreply@example.org%3E", addr: "127.0.0.1:2525", user: "u@x", pass: "p:s", frm: "noreply@example.org"},
		{url: "smtp://[::1]:587?from=a@b.c", addr: "[::1]:587", frm: "a@b.c"},
		{url: "smtp://mail.example.org", err: "from"},
		{url: "smtp://mail.example.org?from=nope", err: "from"},
		{url: "smtp://mail.example.org?from=a@b.c&form=x", err: "form"},
		{url: "http://mail.example.org?from=a@b.c", err: "scheme"},
		{url: "smtp://?from=a@b.c", err: "host"},
		{url: "smtp://%zz", err: "URL"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			s, err := NewSMTPSender(tt.url)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.addr != tt.addr || s.user != tt.user || s.pass != tt.pass || s.from.Address != tt.frm || s.implicitTLS != tt.tls {
				t.Fatalf("sender = %+v", s)
			}
		})
	}
}

func TestBuildMessage(t *testing.T) {
	t.Parallel()
	from := &netmail.Address{Name: "Voluntree", Address: "noreply@example.org"}
	e := Email{
		ID:        "abc",
		To:        "Zoë <zoe@example.org>",
		Subject:   strings.Repeat("验证码 ", MaxSubjectRunes/4),
		Text:      "trailing spaces   \n" + strings.Repeat("é=", 200) + "\r\nend",
		CreatedAt: time.Date(2025, 3, 1, 10, 0, 0, 0, time.FixedZone("CET", 3600)),
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	raw, err := buildMessage(from, e)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 || strings.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has %d bytes: %q", i, len(line), line)
		}
		for _, c := range []byte(line) {
			if c > 126 {
				t.Fatalf("line %d is not 7-bit: %q", i, line)
			}
		}
	}
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subject != e.Subject {
		t.Fatalf("Subject = %q (%v), want %q", subject, err, e.Subject)
	}
	if got := m.Header.Get("Date"); got != "Sat, 01 Mar 2025 10:00:00 +0100" {
		t.Fatalf("Date = %q", got)
	}
	if got := m.Header.Get("Message-Id"); got != "<abc@voluntree>" {
		t.Fatalf("Message-ID = %q", got)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(e.Text, "\r\n", "\n") + "\n"
	if got := strings.ReplaceAll(string(body), "\r\n", "\n"); got != want {
		t.Fatalf("body = %q, want %q", got, want)
	}
}
