package httpapi

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/mail"
)

// Email verification: an organization proves its email address before it connects a page.
// POST /api/v1/me/email sends a 6-digit code through the mail queue; POST
// /api/v1/me/email/verify checks it (15 minutes, 3 attempts, then locked). On the embedded
// default the mail goes to an outbox, which GET /api/v1/outbox shows.

// Mailer queues an email (mail.Queue).
type Mailer interface {
	Enqueue(ctx context.Context, e mail.Email) (string, error)
}

// Outbox lists the newest emails "sent" without an SMTP server (mail.Queue).
type Outbox interface {
	Outbox(ctx context.Context, limit int) ([]mail.Email, error)
}

// emailView is an organization's email and its pending verification.
type emailView struct {
	Email      string        `json:"email,omitempty"` // the verified address, or one not verified yet
	VerifiedAt *time.Time    `json:"verified_at"`
	Pending    *pendingEmail `json:"pending"`
}

type pendingEmail struct {
	Email        string    `json:"email"`
	SentAt       time.Time `json:"sent_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	AttemptsLeft int       `json:"attempts_left"`
	Locked       bool      `json:"locked"`
	Expired      bool      `json:"expired"`
}

func (s *Server) emailViewOf(v voluntree.EmailVerification) emailView {
	out := emailView{Email: v.Org.Email, VerifiedAt: v.Org.EmailVerifiedAt}
	if ch := v.Challenge; ch != nil && (!ch.Locked() || s.now().Before(ch.ExpiresAt)) {
		out.Pending = &pendingEmail{Email: ch.Email, SentAt: ch.SentAt, ExpiresAt: ch.ExpiresAt,
			AttemptsLeft: ch.AttemptsLeft(), Locked: ch.Locked(), Expired: !s.now().Before(ch.ExpiresAt)}
	}
	return out
}

func (s *Server) getEmail(c *fiber.Ctx) error {
	v, err := s.cfg.Store.EmailVerification(c.UserContext(), principal(c).OrgID)
	if err != nil {
		return err
	}
	return c.JSON(s.emailViewOf(v))
}

// sendEmailCode: {"email": "..."} (default: the organization's email) → 202 and a code in
// that inbox; 200 without a code when the address is verified already.
func (s *Server) sendEmailCode(c *fiber.Ctx) error {
	if s.cfg.Mail == nil {
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "email is not configured on this server")
	}
	var in struct {
		Email string `json:"email"`
	}
	if err := decodeOptionalJSON(c.Body(), &in); err != nil {
		return err
	}
	ctx, orgID, now := c.UserContext(), principal(c).OrgID, s.now()
	code, err := voluntree.NewEmailCode()
	if err != nil {
		return err
	}
	var prev *voluntree.EmailChallenge
	var sent *voluntree.EmailChallenge
	v, err := s.cfg.Store.UpdateEmailVerification(ctx, orgID, func(v *voluntree.EmailVerification) (bool, error) {
		prev, sent = v.Challenge, nil
		email := in.Email
		if email == "" {
			email = v.Org.Email
		}
		email, err := voluntree.NormalizeEmail(email)
		if err != nil {
			return false, err
		}
		if v.Org.EmailVerifiedAt != nil && strings.EqualFold(email, v.Org.Email) {
			return false, nil // verified already: nothing to send
		}
		ch, err := voluntree.Reissue(v.Challenge, email, voluntree.HashEmailCode(orgID, email, code), now)
		if err != nil {
			return false, err
		}
		v.Challenge, sent = &ch, &ch
		return true, nil
	})
	if err != nil {
		return err
	}
	if sent == nil {
		return c.JSON(s.emailViewOf(v))
	}
	e := mail.Email{
		Org: orgID, To: sent.Email,
		Subject: fmt.Sprintf("%s is your Voluntree verification code", code),
		Text: fmt.Sprintf("Hello,\n\nsomeone (we hope you) asked to use this address for %s on Voluntree.\n\n"+
			"Your verification code is: %s\n\nIt is valid for %d minutes and can be tried %d times. "+
			"If you did not ask for it, ignore this email: nothing changes without the code.\n\n— Voluntree\n",
			v.Org.Name, code, int(voluntree.EmailCodeTTL/time.Minute), voluntree.EmailCodeAttempts),
		CreatedAt: now,
	}
	if _, err := s.cfg.Mail.Enqueue(ctx, e); err != nil {
		// The code never left (or, after a timeout, may have: its email then carries a dead
		// code): restore the previous challenge, so the send does not count against the
		// limits and the previous code (if any) still works.
		_, rerr := s.cfg.Store.UpdateEmailVerification(context.WithoutCancel(ctx), orgID, func(v *voluntree.EmailVerification) (bool, error) {
			if v.Challenge == nil || v.Challenge.CodeHash != sent.CodeHash {
				return false, nil
			}
			v.Challenge = prev
			return true, nil
		})
		if rerr != nil {
			s.cfg.Logger.Error("restoring the email challenge failed", "action", "email_code", "org", orgID, "error", rerr)
		}
		return fmt.Errorf("httpapi: queue the verification email: %w", err)
	}
	s.cfg.Logger.Info("email code sent", "action", "email_code", "org", orgID)
	return c.Status(fiber.StatusAccepted).JSON(s.emailViewOf(v))
}

// verifyEmail: {"code": "123456"} → 200 with the address verified; 400 field "code" for a
// wrong or expired code (each wrong one counts), 429 once locked, 409 when none is pending.
func (s *Server) verifyEmail(c *fiber.Ctx) error {
	var in struct {
		Code string `json:"code"`
	}
	if err := decodeJSON(c.Body(), &in); err != nil {
		return err
	}
	orgID, now := principal(c).OrgID, s.now()
	v, err := s.cfg.Store.UpdateEmailVerification(c.UserContext(), orgID, func(v *voluntree.EmailVerification) (bool, error) {
		if v.Challenge == nil {
			return false, voluntree.Errorf(voluntree.ECONFLICT, "no code is pending: ask for one (POST /api/v1/me/email)")
		}
		if err := v.Challenge.Check(orgID, in.Code, now); err != nil {
			return true, err // a wrong code counts
		}
		v.Org.Email, v.Org.EmailVerifiedAt, v.Challenge = v.Challenge.Email, &now, nil
		return true, nil
	})
	if err != nil {
		if voluntree.ErrorCode(err) != voluntree.EINTERNAL {
			s.cfg.Logger.Info("email code refused", "action", "email_verify", "org", orgID, "outcome", voluntree.ErrorCode(err))
		}
		return err
	}
	s.cfg.Logger.Info("email verified", "action", "email_verify", "org", orgID)
	return c.JSON(s.emailViewOf(v))
}

// outboxView is an email of the outbox.
type outboxView struct {
	ID        string    `json:"id"`
	To        string    `json:"to"`
	Subject   string    `json:"subject"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
}

// listOutbox shows the organization's emails in the outbox, newest first.
func (s *Server) listOutbox(c *fiber.Ctx) error {
	all, err := s.cfg.Outbox.Outbox(c.UserContext(), mail.OutboxMax)
	if err != nil {
		return err
	}
	orgID := principal(c).OrgID
	items := []outboxView{}
	for _, e := range all {
		if e.Org == orgID {
			items = append(items, outboxView{ID: e.ID, To: e.To, Subject: e.Subject, Text: e.Text, CreatedAt: e.CreatedAt})
		}
	}
	return c.JSON(fiber.Map{"items": items})
}
