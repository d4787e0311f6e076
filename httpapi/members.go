package httpapi

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// An organization's people and credentials: members with their roles, and admin API tokens.
// Owners manage them; everyone else reads who the members are.

// MaxTokenTTL bounds an API-created token's lifetime (expires_in); 0 is "never".
const MaxTokenTTL = 366 * 24 * time.Hour

func (s *Server) listMembers(c *fiber.Ctx) error {
	ms, err := s.cfg.Store.Members(c.UserContext(), principal(c).OrgID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"items": ms, "total": len(ms)})
}

// parseRoleBody reads {"role"}: the body of PATCH /api/v1/members/:user.
func parseRoleBody(body []byte) (voluntree.Role, error) {
	var in struct {
		Role string `json:"role"`
	}
	if err := decodeJSON(body, &in); err != nil {
		return "", err
	}
	return voluntree.ParseRole("role", in.Role)
}

// changeMember sets a member's role (PATCH /api/v1/members/:user {"role"}).
func (s *Server) changeMember(c *fiber.Ctx) error {
	role, err := parseRoleBody(c.Body())
	if err != nil {
		return err
	}
	ctx, orgID, userID := c.UserContext(), principal(c).OrgID, c.Params("user")
	if _, err := s.cfg.Store.Member(ctx, orgID, userID); err != nil {
		return err // not a member of this organization: 404
	}
	m, err := s.cfg.Store.SetMember(ctx, orgID, userID, role)
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("member role changed", "action", "member", "org", orgID, "user", userID, "role", role)
	return c.JSON(m)
}

// removeMember ends a membership and signs its sessions out (DELETE /api/v1/members/:user).
func (s *Server) removeMember(c *fiber.Ctx) error {
	ctx, orgID, userID := c.UserContext(), principal(c).OrgID, c.Params("user")
	if err := s.cfg.Store.RemoveMember(ctx, orgID, userID); err != nil {
		return err
	}
	s.cfg.Logger.Info("member removed", "action", "member", "org", orgID, "user", userID)
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) listTokens(c *fiber.Ctx) error {
	ts, err := s.cfg.Store.AdminTokens(c.UserContext(), principal(c).OrgID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"items": ts, "total": len(ts)})
}

// parseTokenBody reads the body of POST /api/v1/tokens ({"label", "role", "expires_in"}
// seconds, 0: never) for a caller of role caller: no token gets more power than its maker.
func parseTokenBody(body []byte, caller voluntree.Role) (redisstore.TokenOptions, error) {
	var in struct {
		Label     string `json:"label"`
		Role      string `json:"role"`
		ExpiresIn int64  `json:"expires_in"`
	}
	if err := decodeJSON(body, &in); err != nil {
		return redisstore.TokenOptions{}, err
	}
	opts := redisstore.TokenOptions{Label: in.Label, Role: voluntree.RoleAdmin}
	if in.Role != "" {
		r, err := voluntree.ParseRole("role", in.Role)
		if err != nil {
			return opts, err
		}
		opts.Role = r
	}
	if !caller.AtLeast(opts.Role) {
		return opts, voluntree.FieldErrorf("role", "a token cannot have more power than you (%s)", caller)
	}
	if in.ExpiresIn < 0 || in.ExpiresIn > int64(MaxTokenTTL/time.Second) {
		return opts, voluntree.FieldErrorf("expires_in", "expires_in: seconds between 0 (never) and %d", int64(MaxTokenTTL/time.Second))
	}
	opts.TTL = time.Duration(in.ExpiresIn) * time.Second
	if len(opts.Label) > 100 || strings.ContainsAny(opts.Label, "\r\n\x00") {
		return opts, voluntree.FieldErrorf("label", "label: at most 100 characters on one line")
	}
	return opts, nil
}

// createToken makes an admin API token (POST /api/v1/tokens). It answers the token once.
func (s *Server) createToken(c *fiber.Ctx) error {
	p := principal(c)
	opts, err := parseTokenBody(c.Body(), p.Role)
	if err != nil {
		return err
	}
	opts.CreatedBy = p.UserID
	token, rec, err := s.cfg.Store.CreateAdminToken(c.UserContext(), p.OrgID, opts)
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("token created", "action", "token", "org", p.OrgID, "token_id", rec.ID, "role", rec.Role)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"token": token, "record": rec})
}

// revokeToken deletes a token (DELETE /api/v1/tokens/:id): refused at once after.
func (s *Server) revokeToken(c *fiber.Ctx) error {
	p := principal(c)
	if _, err := s.cfg.Store.RevokeAdminToken(c.UserContext(), p.OrgID, c.Params("id")); err != nil {
		return err
	}
	s.cfg.Logger.Info("token revoked", "action", "token", "org", p.OrgID, "token_id", c.Params("id"))
	return c.SendStatus(fiber.StatusNoContent)
}
