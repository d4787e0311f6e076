package httpapi

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
)

// Principal is who an admin request acts for: an organization, with a role, and how it was
// authenticated.
type Principal struct {
	OrgID   string
	Role    voluntree.Role
	Via     string // ViaToken or ViaSession
	UserID  string // the signed-in person; "" for a token
	TokenID string // the token's id; "" for a session
	// TokenExpires is the token's expiry (zero: never); a token it makes expires no later.
	TokenExpires time.Time
	Session      *voluntree.Session
}

// How a Principal was authenticated.
const (
	ViaToken   = "token"   // an admin API token: Authorization: Bearer vt_…
	ViaSession = "session" // a signed-in browser: the session cookie
)

// CSRFHeader carries a session's CSRF token on every cookie-authenticated request that changes
// something (GET /api/v1/me tells it).
const CSRFHeader = "X-CSRF-Token"

// principalKey is the c.Locals key of the request's Principal.
type principalKey struct{}

// AdminRoute is one route of the admin API and the least role it needs.
type AdminRoute struct {
	Method, Path string
	Role         voluntree.Role
}

// AdminRoutes lists the admin API's routes as registered: tests go through every one.
func (s *Server) AdminRoutes() []AdminRoute { return s.adminList }

// admin registers an admin API route behind requireAdmin and a role gate (per route, not on
// the group: a group middleware would also answer 401 for unknown paths under /api/v1).
func (s *Server) admin(r fiber.Router, method, path string, role voluntree.Role, h fiber.Handler) {
	s.adminList = append(s.adminList, AdminRoute{Method: method, Path: "/api/v1" + path, Role: role})
	r.Add(method, path, s.requireAdmin, requireRole(role), h)
}

// requireAdmin is the one gate of the admin API: it authenticates the request and puts its
// Principal in c.Locals, or answers 401. The credential is an admin API token sent as
// "Authorization: Bearer <token>", or a session cookie; a cookie-authenticated request that
// changes something must also come from this site (Origin) and carry the session's CSRF
// token (403 otherwise). It also gives the request its deadline.
func (s *Server) requireAdmin(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx) // the admin handlers' deadline
	var p Principal
	var err error
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		p, err = s.tokenPrincipal(c, h)
	} else if ck := c.Cookies(SessionCookie); ck != "" {
		p, err = s.sessionPrincipal(c, ck)
	} else {
		err = voluntree.Errorf(voluntree.EUNAUTHORIZED, "authentication required: sign in, or send Authorization: Bearer <admin API token>")
	}
	if err != nil {
		return err
	}
	c.Locals(principalKey{}, p)
	return c.Next()
}

func (s *Server) tokenPrincipal(c *fiber.Ctx, h string) (Principal, error) {
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return Principal{}, voluntree.Errorf(voluntree.EUNAUTHORIZED, "malformed Authorization header: want Bearer <admin API token>")
	}
	rec, err := s.cfg.Store.LookupAdminToken(c.UserContext(), token)
	switch {
	case voluntree.ErrorCode(err) == voluntree.ENOTFOUND:
		return Principal{}, voluntree.Errorf(voluntree.EUNAUTHORIZED, "unknown, revoked or expired admin API token")
	case err != nil:
		return Principal{}, fmt.Errorf("httpapi: look up admin token: %w", err)
	}
	return Principal{OrgID: rec.OrgID, Role: rec.Role, Via: ViaToken, TokenID: rec.ID, TokenExpires: rec.ExpiresAt}, nil
}

func (s *Server) sessionPrincipal(c *fiber.Ctx, cookie string) (Principal, error) {
	ctx := c.UserContext()
	sess, err := s.cfg.Store.UseSession(ctx, cookie, s.cfg.SessionIdle)
	switch {
	case voluntree.ErrorCode(err) == voluntree.ENOTFOUND:
		c.Cookie(s.sessionCookie("", -1))
		return Principal{}, voluntree.Errorf(voluntree.EUNAUTHORIZED, "your session has ended: sign in again")
	case err != nil:
		return Principal{}, fmt.Errorf("httpapi: session: %w", err)
	}
	if !safeMethod(c.Method()) {
		if !s.sameOrigin(c) {
			return Principal{}, voluntree.Errorf(voluntree.EFORBIDDEN, "cross-site request refused")
		}
		if !sess.CheckCSRF(c.Get(CSRFHeader)) {
			return Principal{}, voluntree.Errorf(voluntree.EFORBIDDEN, "missing or wrong %s header (GET /api/v1/me gives it)", CSRFHeader)
		}
	}
	// The role is read on every request: a member removed or demoted loses it at once.
	m, err := s.cfg.Store.Member(ctx, sess.OrgID, sess.UserID)
	switch {
	case voluntree.ErrorCode(err) == voluntree.ENOTFOUND:
		return Principal{}, voluntree.Errorf(voluntree.EUNAUTHORIZED, "you are no longer a member of this organization: sign in again")
	case err != nil:
		return Principal{}, fmt.Errorf("httpapi: membership: %w", err)
	}
	ok, err := s.recheckGate(ctx, sess)
	if err != nil {
		// GitHub unreachable: the session goes on for a while, checked at each request; past
		// GateGrace without a check it ends.
		s.cfg.Logger.Warn("github gate re-check", "action", "sign_in", "user", sess.UserID, "org", sess.OrgID, "error", err)
		ok = s.now().Sub(sess.CheckedAt) < GateGrace
	}
	switch {
	case !ok:
		_ = s.cfg.Store.DeleteSession(ctx, sess)
		c.Cookie(s.sessionCookie("", -1))
		return Principal{}, voluntree.Errorf(voluntree.EUNAUTHORIZED, "this organization requires membership of its GitHub organization, which GitHub no longer confirms: sign in again")
	}
	return Principal{OrgID: sess.OrgID, Role: m.Role, Via: ViaSession, UserID: sess.UserID, Session: &sess}, nil
}

func safeMethod(m string) bool {
	return m == fiber.MethodGet || m == fiber.MethodHead || m == fiber.MethodOptions
}

// sameOrigin reports whether a request's Origin (or, without one, its Referer) is this
// server's public origin or the origin it was reached at. A request naming neither passes:
// browsers send Origin on every cross-site request that changes something.
func (s *Server) sameOrigin(c *fiber.Ctx) bool {
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		ref := c.Get(fiber.HeaderReferer)
		if ref == "" {
			return true
		}
		u, err := url.Parse(ref)
		if err != nil {
			return false
		}
		origin = u.Scheme + "://" + u.Host
	}
	if origin == s.publicOrigin() {
		return true
	}
	return origin == c.Protocol()+"://"+c.Hostname()
}

// publicOrigin is the scheme and host of the public URL.
func (s *Server) publicOrigin() string {
	u, err := url.Parse(s.cfg.PublicURL)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// requireRole answers 403 to a principal whose role is below min.
func requireRole(min voluntree.Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if p := principal(c); !p.Role.AtLeast(min) {
			return voluntree.Errorf(voluntree.EFORBIDDEN, "this needs the %s role; you are %s", min, p.Role)
		}
		return c.Next()
	}
}

// principal returns the request's Principal (the zero value outside requireAdmin, which
// owns no organization's data).
func principal(c *fiber.Ctx) Principal {
	p, _ := c.Locals(principalKey{}).(Principal)
	return p
}

// ownedBy checks that a record (what: "signup", "post", "page", …) of organization orgID
// belongs to the request's organization: EFORBIDDEN otherwise.
func (s *Server) ownedBy(c *fiber.Ctx, what, orgID string) error {
	p := principal(c)
	if p.OrgID == "" || p.OrgID != orgID {
		return voluntree.Errorf(voluntree.EFORBIDDEN, "this %s belongs to another organization", what)
	}
	return nil
}
