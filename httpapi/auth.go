package httpapi

import (
	"context"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
)

// Principal is who an admin request acts for: an organization, and how it was authenticated.
type Principal struct {
	OrgID string
	Via   string // "token": an admin API token (Authorization: Bearer)
}

// How a Principal was authenticated.
const (
	ViaToken = "token"
)

// principalKey is the c.Locals key of the request's Principal.
type principalKey struct{}

// requireAdmin is the one gate of the admin API: it authenticates the request and puts its
// Principal in c.Locals, or answers 401. The credential is an admin API token (`voluntree
// admin create-token -org …`) sent as "Authorization: Bearer <token>". It also gives the
// request its deadline.
func (s *Server) requireAdmin(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx) // the admin handlers' deadline
	h := c.Get(fiber.HeaderAuthorization)
	if h == "" {
		return voluntree.Errorf(voluntree.EUNAUTHORIZED, "authentication required: send Authorization: Bearer <admin API token>")
	}
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return voluntree.Errorf(voluntree.EUNAUTHORIZED, "malformed Authorization header: want Bearer <admin API token>")
	}
	rec, err := s.cfg.Store.LookupAdminToken(c.UserContext(), token)
	switch {
	case voluntree.ErrorCode(err) == voluntree.ENOTFOUND:
		return voluntree.Errorf(voluntree.EUNAUTHORIZED, "unknown admin API token")
	case err != nil:
		return fmt.Errorf("httpapi: look up admin token: %w", err)
	}
	c.Locals(principalKey{}, Principal{OrgID: rec.OrgID, Via: ViaToken})
	return c.Next()
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
