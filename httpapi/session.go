package httpapi

import (
	"html/template"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// Signing in. A browser holds a server-side session (voluntree.Session) through an opaque
// cookie: HttpOnly, SameSite=Lax, Secure when the public URL is https; it ends after
// SessionIdle without use, after SessionMax in all, at logout, and when its member is removed.

// SessionCookie is the session cookie's name.
const SessionCookie = "voluntree_session"

// Session lifetimes (Config.SessionIdle, SessionMax) and the one-time sign-in link's.
const (
	DefaultSessionIdle = 12 * time.Hour
	DefaultSessionMax  = 7 * 24 * time.Hour
	LoginLinkTTL       = 15 * time.Minute
)

// sessionCookie is the session cookie with value, kept until the session's absolute expiry
// (maxAge < 0 deletes it).
func (s *Server) sessionCookie(value string, maxAge time.Duration) *fiber.Cookie {
	ck := &fiber.Cookie{Name: SessionCookie, Value: value, Path: "/", HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Secure: strings.HasPrefix(s.cfg.PublicURL, "https://")}
	if maxAge < 0 {
		ck.MaxAge, ck.Expires = -1, time.Unix(1, 0)
	} else {
		ck.MaxAge = int(maxAge / time.Second)
	}
	return ck
}

// startSession signs the browser in as user, acting for org, and sends it to the dashboard.
func (s *Server) startSession(c *fiber.Ctx, userID, orgID, via string) error {
	token, _, err := s.cfg.Store.CreateSession(c.UserContext(), userID, orgID, via, s.cfg.SessionIdle, s.cfg.SessionMax)
	if err != nil {
		return err
	}
	c.Cookie(s.sessionCookie(token, s.cfg.SessionMax))
	s.cfg.Logger.Info("signed in", "action", "sign_in", "user", userID, "org", orgID, "via", via)
	c.Set(fiber.HeaderCacheControl, "no-store")
	// Relative: the cookie was set for the host the browser used.
	return c.Redirect("/", fiber.StatusSeeOther)
}

// linkPage turns a one-time sign-in link into a POST (at once in a browser, with a button
// without scripts), so that a link fetched by a mail scanner or a preview is not spent.
var linkPage = template.Must(template.New("link").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — Voluntree</title><link rel="stylesheet" href="/style.css"></head>
<body><main class="signin"><h1>Sign in to Voluntree</h1>
<form method="post" action="/auth/link"><input type="hidden" name="token" value="{{.}}">
<button type="submit">Sign in</button></form>
<p>This link works once, for 15 minutes.</p></main>
<script>document.forms[0].submit();</script></body></html>`))

// loginLinkPage answers GET /auth/link?token=: the confirmation page.
func (s *Server) loginLinkPage(c *fiber.Ctx) error {
	token := c.Query("token")
	if !strings.HasPrefix(token, redisstore.LoginLinkPrefix) || len(token) > 64 {
		return voluntree.Errorf(voluntree.EINVALID, "this is not a sign-in link: run `voluntree admin login-link -org <org>` for one")
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Referrer-Policy", "same-origin") // the token stays on this site; "no-referrer" would make the form's Origin "null"
	return linkPage.Execute(c.Response().BodyWriter(), token)
}

// useLoginLink answers POST /auth/link: it spends the link and signs the browser in.
func (s *Server) useLoginLink(c *fiber.Ctx) error {
	if !s.sameOrigin(c) {
		return voluntree.Errorf(voluntree.EFORBIDDEN, "cross-site request refused")
	}
	link, err := s.cfg.Store.UseLoginLink(c.UserContext(), c.FormValue("token"))
	if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
		return voluntree.Errorf(voluntree.EUNAUTHORIZED, "this sign-in link is unknown, used or expired: run `voluntree admin login-link -org <org>` for a new one")
	}
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.Member(c.UserContext(), link.OrgID, link.UserID); err != nil {
		return voluntree.Errorf(voluntree.EUNAUTHORIZED, "this link's person is no longer a member of the organization")
	}
	return s.startSession(c, link.UserID, link.OrgID, "link")
}

// logout ends the browser's session (POST /auth/logout, with the CSRF header).
func (s *Server) logout(c *fiber.Ctx) error {
	p := principal(c)
	if p.Session == nil {
		return voluntree.Errorf(voluntree.EINVALID, "logout ends a browser session; revoke a token with DELETE /api/v1/tokens/{id}")
	}
	if err := s.cfg.Store.DeleteSession(c.UserContext(), *p.Session); err != nil {
		return err
	}
	c.Cookie(s.sessionCookie("", -1))
	return c.SendStatus(fiber.StatusNoContent)
}

// switchOrg makes the session act for another of the person's organizations
// (POST /api/v1/session/org {"org_id"}).
func (s *Server) switchOrg(c *fiber.Ctx) error {
	p := principal(c)
	if p.Session == nil {
		return voluntree.Errorf(voluntree.EINVALID, "a token belongs to one organization")
	}
	orgID, err := parseOrgBody(c.Body())
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.Member(c.UserContext(), orgID, p.UserID); err != nil {
		return voluntree.Errorf(voluntree.EFORBIDDEN, "you are not a member of that organization")
	}
	if msg, err := s.gateAtSignIn(c.UserContext(), *p.Session, orgID); err != nil {
		return err
	} else if msg != "" {
		return voluntree.Errorf(voluntree.EFORBIDDEN, "%s", msg)
	}
	if err := s.cfg.Store.SwitchSessionOrg(c.UserContext(), p.Session.ID, orgID); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// parseOrgBody reads {"org_id"}: the body of POST /api/v1/session/org.
func parseOrgBody(body []byte) (string, error) {
	var in struct {
		OrgID string `json:"org_id"`
	}
	if err := decodeJSON(body, &in); err != nil {
		return "", err
	}
	if !voluntree.ValidID(in.OrgID) {
		return "", voluntree.FieldErrorf("org_id", "org_id: an organization id")
	}
	return in.OrgID, nil
}
