package mail_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/mail"
)

func TestEmailValidate(t *testing.T) {
	t.Parallel()
	ok := mail.Email{ID: "abc-123_x", To: "Ada <ada@example.org>", Subject: "Votre code ✓", Text: "123456"}
	tests := []struct {
		name  string
		edit  func(e *mail.Email)
		valid bool
	}{
		{"valid", func(e *mail.Email) {}, true},
		{"no id yet", func(e *mail.Email) { e.ID = "" }, true},
		{"bare address", func(e *mail.Email) { e.To = "ada@example.org" }, true},
		{"longest subject", func(e *mail.Email) { e.Subject = strings.Repeat("é", mail.MaxSubjectRunes) }, true},
		{"largest text", func(e *mail.Email) { e.Text = strings.Repeat("x", mail.MaxTextBytes) }, true},
		{"header injection in To", func(e *mail.Email) { e.To = "a@b.c\r\nBcc: x" }, false},
		{"LF in To", func(e *mail.Email) { e.To = "a@b.c\nBcc: x@y.z" }, false},
		{"two recipients", func(e *mail.Email) { e.To = "a@b.c, d@e.f" }, false},
		{"not an address", func(e *mail.Email) { e.To = "ada" }, false},
		{"no recipient", func(e *mail.Email) { e.To = "" }, false},
		{"header injection in Subject", func(e *mail.Email) { e.Subject = "Hi\r\nBcc: x@y.z" }, false},
		{"CR in Subject", func(e *mail.Email) { e.Subject = "Hi\rthere" }, false},
		{"subject too long", func(e *mail.Email) { e.Subject = strings.Repeat("é", mail.MaxSubjectRunes+1) }, false},
		{"text too long", func(e *mail.Email) { e.Text = strings.Repeat("x", mail.MaxTextBytes+1) }, false},
		{"text not UTF-8", func(e *mail.Email) { e.Text = "\xff" }, false},
		{"id with a space", func(e *mail.Email) { e.ID = "a b" }, false},
		{"id breaking the Message-ID", func(e *mail.Email) { e.ID = "x>\r\nBcc: y" }, false},
		{"id too long", func(e *mail.Email) { e.ID = strings.Repeat("a", mail.MaxIDLength+1) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok
			tt.edit(&e)
			err := e.Validate()
			if (err == nil) != tt.valid {
				t.Fatalf("Validate() = %v, want valid %v", err, tt.valid)
			}
			if err != nil && voluntree.ErrorCode(err) != voluntree.EINVALID {
				t.Fatalf("error code %q, want %q", voluntree.ErrorCode(err), voluntree.EINVALID)
			}
		})
	}
}

func ExampleEmail_Validate() {
	e := mail.Email{To: "a@b.c\r\nBcc: everyone@example.org", Subject: "Hi", Text: "..."}
	fmt.Println(e.Validate())
	// Output: voluntree: invalid: email recipient "a@b.c\r\nBcc: everyone@example.org" contains a line break
}
