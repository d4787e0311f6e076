package httpapi

import (
	"regexp"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
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
func parseTokenBody(body []byte, caller voluntree.Role) (voluntree.TokenOptions, error) {
	var in struct {
		Label     string `json:"label"`
		Role      string `json:"role"`
		ExpiresIn int64  `json:"expires_in"`
	}
	if err := decodeJSON(body, &in); err != nil {
		return voluntree.TokenOptions{}, err
	}
	opts := voluntree.TokenOptions{Label: in.Label, Role: voluntree.RoleAdmin}
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
	if p.Via == ViaToken {
		// Made by a token: it answers to that token, and lives no longer.
		opts.CreatedBy = "token:" + p.TokenID
		if !p.TokenExpires.IsZero() {
			left := time.Until(p.TokenExpires)
			if left <= 0 {
				return voluntree.Errorf(voluntree.EUNAUTHORIZED, "this token has expired")
			}
			if opts.TTL == 0 || opts.TTL > left {
				opts.TTL = left
			}
		}
	}
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

// githubLogin is the shape of a GitHub organization's login.
var githubLogin = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)

// parseOrgPatch reads PATCH /api/v1/org {"name", "github_org"} (absent fields stay).
func parseOrgPatch(body []byte) (name, githubOrg *string, err error) {
	var in struct {
		Name      *string `json:"name"`
		GitHubOrg *string `json:"github_org"`
	}
	if err := decodeJSON(body, &in); err != nil {
		return nil, nil, err
	}
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if n == "" || len(n) > 200 || strings.ContainsAny(n, "\r\n\x00") {
			return nil, nil, voluntree.FieldErrorf("name", "name: 1 to 200 characters on one line")
		}
		in.Name = &n
	}
	if in.GitHubOrg != nil && *in.GitHubOrg != "" && !githubLogin.MatchString(*in.GitHubOrg) {
		return nil, nil, voluntree.FieldErrorf("github_org", "github_org: a GitHub organization's login (letters, digits, hyphens), or \"\" for none")
	}
	return in.Name, in.GitHubOrg, nil
}

// updateOrg changes the organization's name and GitHub gate (owners).
func (s *Server) updateOrg(c *fiber.Ctx) error {
	name, gate, err := parseOrgPatch(c.Body())
	if err != nil {
		return err
	}
	o, err := s.cfg.Store.UpdateOrg(c.UserContext(), principal(c).OrgID, func(o *voluntree.Organization) error {
		if name != nil {
			o.Name = *name
		}
		if gate != nil {
			o.GitHubOrg = *gate
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(o)
}

// signinOptions tells the dashboard how people can sign in here (GET /api/v1/signin).
func (s *Server) signinOptions(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"github": s.cfg.GitHub != nil, "facebook": s.cfg.FacebookSignIn != nil, "link": true})
}
