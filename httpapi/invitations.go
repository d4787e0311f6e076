package httpapi

import (
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/mail"
)

// Invitations: an owner invites someone by email with a role; the email carries a link to
// /invite?token=vi_…, whose page lets the invitee sign in (with GitHub, the invitation riding
// along) or, already signed in, accept at once.

// invitationGone is the sign-in error of an invitation that cannot be used.
const invitationGone = "This invitation is unknown, used, revoked or expired: ask for a new one."

// InvitationTTL is how long an invitation stays open.
const InvitationTTL = 7 * 24 * time.Hour

// parseInvitationBody reads POST /api/v1/invitations {"email", "role"}; no invitation gives
// more power than its maker has.
func parseInvitationBody(body []byte, caller voluntree.Role) (string, voluntree.Role, error) {
	var in struct {
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	if err := decodeJSON(body, &in); err != nil {
		return "", "", err
	}
	email, err := voluntree.NormalizeEmail(in.Email)
	if err != nil {
		return "", "", err
	}
	role, err := voluntree.ParseRole("role", in.Role)
	if err != nil {
		return "", "", err
	}
	if !caller.AtLeast(role) {
		return "", "", voluntree.FieldErrorf("role", "an invitation cannot give more power than you have (%s)", caller)
	}
	return email, role, nil
}

func (s *Server) inviteURL(token string) string {
	return strings.TrimSuffix(s.cfg.PublicURL, "/") + "/invite?token=" + url.QueryEscape(token)
}

// createInvitation answers POST /api/v1/invitations: 201 with the invitation; the link goes
// by email (without a mail server the answer carries it, for the owner to pass on).
func (s *Server) createInvitation(c *fiber.Ctx) error {
	p := principal(c)
	email, role, err := parseInvitationBody(c.Body(), p.Role)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	org, err := s.cfg.Store.Org(ctx, p.OrgID)
	if err != nil {
		return err
	}
	token, inv, err := s.cfg.Store.CreateInvitation(ctx, voluntree.Invitation{OrgID: p.OrgID, Email: email, Role: role,
		InvitedBy: p.UserID}, InvitationTTL)
	if err != nil {
		return err
	}
	out := fiber.Map{"invitation": inv}
	if s.cfg.Mail == nil {
		out["link"] = s.inviteURL(token)
	} else {
		e := mail.Email{Org: p.OrgID, To: email, CreatedAt: s.now(),
			Subject: fmt.Sprintf("You are invited to %s on Voluntree", org.Name),
			Text: fmt.Sprintf("Hello,\n\nyou are invited to join %s on Voluntree as %s.\n\nAccept: %s\n\n"+
				"The link works once, until %s. If you did not expect it, ignore this email.\n\n— Voluntree\n",
				org.Name, role, s.inviteURL(token), inv.ExpiresAt.Format("2 January 2006 15:04 MST"))}
		if _, err := s.cfg.Mail.Enqueue(ctx, e); err != nil {
			_ = s.cfg.Store.RevokeInvitation(ctx, p.OrgID, inv.ID) // nobody got the link
			return fmt.Errorf("httpapi: mail the invitation: %w", err)
		}
	}
	s.cfg.Logger.Info("invitation sent", "action", "member", "org", p.OrgID, "invitation", inv.ID[:12], "role", role)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (s *Server) listInvitations(c *fiber.Ctx) error {
	items, err := s.cfg.Store.Invitations(c.UserContext(), principal(c).OrgID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"items": items, "total": len(items)})
}

func (s *Server) revokeInvitation(c *fiber.Ctx) error {
	if err := s.cfg.Store.RevokeInvitation(c.UserContext(), principal(c).OrgID, c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

var invitePage = template.Must(template.New("invite").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Invitation — Voluntree</title><link rel="stylesheet" href="/style.css"></head>
<body><main class="signin"><h1>Join {{.Org}} on Voluntree</h1>
<p>You are invited as <strong>{{.Role}}</strong> (sent to {{.Email}}).</p>
{{if .SignedIn}}<form method="post" action="/auth/invitation"><input type="hidden" name="token" value="{{.Token}}">
<button type="submit">Accept</button></form>{{end}}
{{if .GitHub}}<p><a class="button" href="/auth/github?invitation={{.Token}}">Sign in with GitHub to accept</a></p>{{end}}
{{if not (or .SignedIn .GitHub)}}<p>Sign in first (ask the organization for a sign-in link), then open this invitation again.</p>{{end}}
<p class="muted small">It works once, until {{.Expires}}.</p></main></body></html>`))

// invitationPage answers GET /invite?token=vi_….
func (s *Server) invitationPage(c *fiber.Ctx) error {
	ctx := c.UserContext()
	token := c.Query("token")
	inv, err := s.cfg.Store.Invitation(ctx, token)
	if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
		return voluntree.Errorf(voluntree.ENOTFOUND, "this invitation is unknown, used, revoked or expired: ask for a new one")
	}
	if err != nil {
		return err
	}
	org, err := s.cfg.Store.Org(ctx, inv.OrgID)
	if err != nil {
		return err
	}
	_, serr := s.cfg.Store.UseSession(ctx, c.Cookies(SessionCookie), s.cfg.SessionIdle)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Referrer-Policy", "same-origin")
	return invitePage.Execute(c.Response().BodyWriter(), map[string]any{
		"Org": org.Name, "Role": inv.Role, "Email": inv.Email, "Token": token, "SignedIn": serr == nil,
		"GitHub": s.cfg.GitHub != nil, "Expires": inv.ExpiresAt.Format("2 January 2006 15:04 MST")})
}

// acceptInvitation answers POST /auth/invitation (a signed-in browser): the person joins the
// invitation's organization and the session acts for it.
func (s *Server) acceptInvitation(c *fiber.Ctx) error {
	if !s.sameOrigin(c) {
		return voluntree.Errorf(voluntree.EFORBIDDEN, "cross-site request refused")
	}
	ctx := c.UserContext()
	sess, err := s.cfg.Store.UseSession(ctx, c.Cookies(SessionCookie), s.cfg.SessionIdle)
	if err != nil {
		return voluntree.Errorf(voluntree.EUNAUTHORIZED, "sign in first, then accept the invitation")
	}
	token := c.FormValue("token")
	inv, err := s.cfg.Store.Invitation(ctx, token)
	if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
		return s.signinFail(c, invitationGone)
	}
	if err != nil {
		return err
	}
	if msg, err := s.gateAtSignIn(ctx, sess, inv.OrgID); err != nil {
		return err
	} else if msg != "" {
		return s.signinFail(c, msg)
	}
	m, err := s.cfg.Store.AcceptInvitation(ctx, token, sess.UserID)
	if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
		return s.signinFail(c, invitationGone)
	}
	if err != nil {
		return err
	}
	if err := s.cfg.Store.SwitchSessionOrg(ctx, sess.ID, m.OrgID); err != nil {
		return err
	}
	s.cfg.Logger.Info("invitation accepted", "action", "member", "org", m.OrgID, "user", sess.UserID, "role", m.Role)
	return c.Redirect("/", fiber.StatusSeeOther)
}
