package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
)

// The admin REST API: signups.go, posts.go, pages.go, email.go, and here the organization,
// interests, stats and the request helpers they share. Every route runs behind requireAdmin;
// every record read or changed is checked against the request's organization (403 for
// another organization's data). Changes run inside the store's optimistic transactions, with
// the ownership and state checks inside them.

// Pagination of the admin lists.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
	maxPageOffset    = 1_000_000_000
)

// Stats ranges.
const (
	DefaultStatsRange = 30 * 24 * time.Hour
	MaxStatsRange     = 366 * 24 * time.Hour
)

// maxPublishLag is how far in the past publish_at may be (a clock skew, a slow form).
const maxPublishLag = time.Minute

// listResponse is the shape of every list: one page of items and where it is.
type listResponse[T any] struct {
	Items  []T `json:"items"`
	Total  int `json:"total"`
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
}

func listOf[T any](items []T, total, limit, offset int) listResponse[T] {
	if items == nil {
		items = []T{}
	}
	return listResponse[T]{Items: items, Total: total, Limit: limit, Offset: offset}
}

func (s *Server) now() time.Time { return s.cfg.Now().UTC() }

// ---- Request helpers ----

// decodeJSON decodes a body that must be one JSON object into v. Unknown fields are refused:
// a misspelt field would otherwise be silently ignored.
func decodeJSON(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return voluntree.Errorf(voluntree.EINVALID, "body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return voluntree.Errorf(voluntree.EINVALID, "body must be a single JSON object")
	}
	return nil
}

// decodeOptionalJSON is decodeJSON for a body that may be empty.
func decodeOptionalJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return decodeJSON(body, v)
}

// jsonError turns a decoding error into a validation error naming the field when it can.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return voluntree.FieldErrorf(te.Field, "%s: want %s, got %s", te.Field, te.Type, te.Value)
	case errors.As(err, &te):
		return voluntree.Errorf(voluntree.EINVALID, "body: want %s, got %s", te.Type, te.Value)
	case errors.As(err, &se):
		return voluntree.Errorf(voluntree.EINVALID, "body is not valid JSON: %v", err)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return voluntree.FieldErrorf(name, "unknown field %q", name)
	}
	return voluntree.Errorf(voluntree.EINVALID, "body: %v", err)
}

// pathID returns a path parameter that must be a record id: a malformed one names no record
// (404). The copy outlives the request's buffers.
func pathID(c *fiber.Ctx, param, what string) (string, error) {
	id := c.Params(param)
	if !voluntree.ValidID(id) {
		return "", voluntree.Errorf(voluntree.ENOTFOUND, "no %s has this id", what)
	}
	return strings.Clone(id), nil
}

// pagination reads ?limit= (1..MaxPageLimit, default DefaultPageLimit) and ?offset= (≥ 0).
func pagination(c *fiber.Ctx) (limit, offset int, err error) {
	limit, offset = DefaultPageLimit, 0
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageLimit {
			return 0, 0, voluntree.FieldErrorf("limit", "limit: want an integer from 1 to %d, got %.20q", MaxPageLimit, v)
		}
		limit = n
	}
	if v := c.Query("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxPageOffset {
			return 0, 0, voluntree.FieldErrorf("offset", "offset: want an integer from 0 to %d, got %.20q", maxPageOffset, v)
		}
		offset = n
	}
	return limit, offset, nil
}

// ---- Organization ----

func (s *Server) getMe(c *fiber.Ctx) error {
	org, err := s.cfg.Store.Org(c.UserContext(), principal(c).OrgID)
	if err != nil {
		return err
	}
	p := principal(c)
	// What this server offers the organization's admins: the dashboard shows or hides its
	// sections by these (and by the role).
	out := fiber.Map{"org": org, "role": p.Role, "via": p.Via, "features": fiber.Map{
		"facebook_login": s.cfg.Facebook != nil,
		"email":          s.cfg.Mail != nil,
		"outbox":         s.cfg.Outbox != nil,
		// The model registry, for the owners of the operator organization.
		"models": s.cfg.Models != nil && s.cfg.OperatorOrg != "" && p.OrgID == s.cfg.OperatorOrg && p.Role == voluntree.RoleOwner,
	}}
	if p.Session != nil {
		ctx := c.UserContext()
		u, err := s.cfg.Store.User(ctx, p.UserID)
		if err != nil {
			return err
		}
		orgs, err := s.cfg.Store.UserOrgs(ctx, p.UserID)
		if err != nil {
			return err
		}
		// The CSRF token goes only to this site's own pages: a cross-site page cannot read
		// this answer (no CORS), so it cannot forge the header.
		out["user"], out["orgs"], out["csrf_token"] = u, orgs, p.Session.CSRF
		out["session_expires_at"] = p.Session.ExpiresAt
		c.Set(fiber.HeaderCacheControl, "no-store")
	}
	return c.JSON(out)
}

// ---- Interests ----

func (s *Server) postInterests(c *fiber.Ctx) error {
	limit, offset, err := pagination(c)
	if err != nil {
		return err
	}
	p, err := s.ownPost(c)
	if err != nil {
		return err
	}
	if p.FacebookPostID == "" { // not on Facebook: nobody could answer it
		return c.JSON(listOf([]voluntree.Interest(nil), 0, limit, offset))
	}
	ctx := c.UserContext()
	items, err := s.cfg.Store.Interests(ctx, p.OrgID, p.FacebookPostID, int64(offset), int64(limit))
	if err != nil {
		return err
	}
	total, err := s.cfg.Store.InterestCount(ctx, p.OrgID, p.FacebookPostID)
	if err != nil {
		return err
	}
	return c.JSON(listOf(items, total, limit, offset))
}

func (s *Server) slotInterests(c *fiber.Ctx) error {
	limit, offset, err := pagination(c)
	if err != nil {
		return err
	}
	slotID, err := pathID(c, "slot", "slot")
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	su, err := s.ownSignup(c)
	if err != nil {
		return err
	}
	if _, ok := su.Slot(slotID); !ok {
		return voluntree.Errorf(voluntree.ENOTFOUND, "signup %s has no slot %s", su.ID, slotID)
	}
	pg, err := s.cfg.Store.SlotInterests(ctx, &su, slotID, offset, limit)
	if err != nil {
		return err
	}
	return c.JSON(listOf(pg.Items, pg.Total, limit, offset))
}

// ---- Stats ----

func (s *Server) myStats(c *fiber.Ctx) error { return s.stats(c, principal(c).OrgID) }

func (s *Server) orgStats(c *fiber.Ctx) error {
	org, err := pathID(c, "org", "organization")
	if err != nil {
		return err
	}
	if org != principal(c).OrgID {
		return voluntree.Errorf(voluntree.EFORBIDDEN, "this organization's stats belong to its own admins")
	}
	return s.stats(c, org)
}

func (s *Server) stats(c *fiber.Ctx, org string) error {
	from, to, err := statsRange(c.Query("from"), c.Query("to"), s.now())
	if err != nil {
		return err
	}
	st, err := s.cfg.Store.OrgStats(c.UserContext(), org, from, to)
	if err != nil {
		return err
	}
	return c.JSON(st)
}

// statsRange reads [from, to) of ?from=&to= (RFC 3339, or YYYY-MM-DD in UTC, a to date
// including its day). Default: the DefaultStatsRange up to now.
func statsRange(fromQ, toQ string, now time.Time) (from, to time.Time, err error) {
	to = now
	if toQ != "" {
		if to, err = parseInstant("to", toQ, true); err != nil {
			return from, to, err
		}
	}
	from = to.Add(-DefaultStatsRange)
	if fromQ != "" {
		if from, err = parseInstant("from", fromQ, false); err != nil {
			return from, to, err
		}
	}
	switch {
	case !from.Before(to):
		return from, to, voluntree.FieldErrorf("to", "to (%s) must be after from (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339))
	case to.Sub(from) > MaxStatsRange:
		return from, to, voluntree.FieldErrorf("from", "from: a range is at most %d days, got %.1f", int(MaxStatsRange.Hours()/24), to.Sub(from).Hours()/24)
	}
	return from, to, nil
}

// parseInstant reads an RFC 3339 time or a YYYY-MM-DD date (UTC midnight; with endOfDay the
// next midnight, so the day is included).
func parseInstant(field, v string, endOfDay bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, voluntree.FieldErrorf(field, "%s: want an RFC 3339 time or a date as YYYY-MM-DD, got %.40q", field, v)
	}
	if endOfDay {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}
