package mail_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/voluntree/voluntree/internal/smtpsink"
	"github.com/voluntree/voluntree/mail"
)

func TestSMTPSenderErrors(t *testing.T) {
	t.Parallel()
	sink := startSink(t, smtpsink.Config{Username: "user", Password: "secret"})
	good := smtpSender(t, sink)
	wrongPass, err := mail.NewSMTPSender(strings.Replace(sink.URL(), "secret", "wrong", 1) + "?from=noreply@example.org")
	if err != nil {
		t.Fatal(err)
	}
	closed := startSink(t, smtpsink.Config{})
	closed.Close()
	refused := smtpSender(t, closed)

	email := mail.Email{ID: "e1", To: "ada@example.org", Subject: "Code", Text: "123456"}
	tests := []struct {
		name      string
		sender    *mail.SMTPSender
		email     mail.Email
		fail      int // the sink's reply to the next DATA, 0 for none
		wantErr   string
		permanent bool
	}{
		{"temporary 451", good, email, 451, "451", false},
		{"permanent 550", good, email, 550, "550", true},
		{"permanent 554", good, email, 554, "554", true},
		{"wrong password: the configuration's fault", wrongPass, email, 0, "535", false},
		{"connection refused", refused, email, 0, "connect", false},
		{"invalid email", good, mail.Email{ID: "e2", To: "a@b.c\r\nBcc: x"}, 0, "line break", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fail != 0 {
				sink.FailNext(1, tt.fail, "4.0.0 planned failure")
			}
			err := tt.sender.Send(testCtx(t), tt.email)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Send = %v, want an error mentioning %q", err, tt.wantErr)
			}
			if got := mail.IsPermanent(err); got != tt.permanent {
				t.Fatalf("IsPermanent(%v) = %v, want %v", err, got, tt.permanent)
			}
		})
	}
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("%d messages arrived, want none", n)
	}
	if err := good.Send(testCtx(t), email); err != nil {
		t.Fatalf("Send with the right credentials: %v", err)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("%d messages arrived, want 1", n)
	}
}

func TestSMTPSenderImplicitTLS(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	sink := startSink(t, smtpsink.Config{
		Username: "user", Password: "secret",
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	})
	if !strings.HasPrefix(sink.URL(), "smtps://") {
		t.Fatalf("URL = %q, want smtps://", sink.URL())
	}
	s := smtpSender(t, sink)
	email := mail.Email{ID: "tls1", To: "ada@example.org", Subject: "Über TLS", Text: "123456"}

	if err := s.Send(testCtx(t), email); err == nil || mail.IsPermanent(err) {
		t.Fatalf("Send without trusting the certificate = %v, want a temporary error", err)
	}
	s.TLSConfig = &tls.Config{RootCAs: pool}
	if err := s.Send(testCtx(t), email); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs, err := sink.Wait(testCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].Subject() != "Über TLS" || msgs[0].Header.Get("Message-ID") != "<tls1@voluntree>" {
		t.Fatalf("message = %+v", msgs[0].Header)
	}
}

// selfSigned returns a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
