package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// The admin REST API: an organization's signups, posts, pages, interests and stats. Every
// route runs behind requireAdmin; every record read or changed is checked against the
// request's organization (403 for another organization's data). Changes run inside the
// store's optimistic transactions, with the ownership and state checks inside them.

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
	// What this server offers the organization's admins: the dashboard shows or hides its
	// sections by these.
	return c.JSON(fiber.Map{"org": org, "features": fiber.Map{
		"facebook_login": s.cfg.Facebook != nil,
		"email":          s.cfg.Mail != nil,
		"outbox":         s.cfg.Outbox != nil,
	}})
}

// ---- Signups ----

// signupInput is the editable part of a signup. Absent fields are nil: PATCH leaves them as
// they are, POST and PUT make them empty.
type signupInput struct {
	Title       *string           `json:"title"`
	Description *string           `json:"description"`
	Facts       *string           `json:"facts"`
	TimeZone    *string           `json:"time_zone"`
	Slots       *[]voluntree.Slot `json:"slots"`
	Disabled    *bool             `json:"disabled"`
}

// applyTo sets su's editable fields from in (all of them when replace), then normalizes and
// validates su.
func (in *signupInput) applyTo(su *voluntree.Signup, replace bool) error {
	if replace {
		su.Title, su.Description, su.Facts, su.TimeZone, su.Slots, su.Disabled = "", "", "", "", nil, false
	}
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&su.Title, in.Title)
	set(&su.Description, in.Description)
	set(&su.Facts, in.Facts)
	set(&su.TimeZone, in.TimeZone)
	if in.Slots != nil {
		su.Slots = slices.Clone(*in.Slots) // Normalize writes ids: keep the input as sent
	}
	if in.Disabled != nil {
		su.Disabled = *in.Disabled
	}
	if su.Slots == nil {
		su.Slots = []voluntree.Slot{}
	}
	su.Normalize()
	return su.Validate()
}

type slotFillView struct {
	SlotID   string `json:"slot_id"`
	Filled   int    `json:"filled"`
	Required int    `json:"required"`
}

// signupView is one signup with how full its slots are.
type signupView struct {
	voluntree.Signup
	Fills []slotFillView `json:"fills"`
}

func newSignupView(su voluntree.Signup, fills []voluntree.SlotFill) signupView {
	v := signupView{Signup: su, Fills: make([]slotFillView, 0, len(su.Slots))}
	filled := make(map[string]int, len(fills))
	for _, f := range fills {
		filled[f.Slot.ID] = f.Filled
	}
	for _, sl := range su.Slots {
		v.Fills = append(v.Fills, slotFillView{SlotID: sl.ID, Filled: filled[sl.ID], Required: sl.Required})
	}
	return v
}

// signupWithFills answers with the signup and its fills.
func (s *Server) signupWithFills(c *fiber.Ctx, su voluntree.Signup) error {
	fills, err := s.cfg.Store.SlotFills(c.UserContext(), &su)
	if err != nil {
		return err
	}
	return c.JSON(newSignupView(su, fills))
}

func (s *Server) listSignups(c *fiber.Ctx) error {
	limit, offset, err := pagination(c)
	if err != nil {
		return err
	}
	pg, err := s.cfg.Store.Signups(c.UserContext(), principal(c).OrgID, offset, limit)
	if err != nil {
		return err
	}
	return c.JSON(listOf(pg.Items, pg.Total, limit, offset))
}

func (s *Server) createSignup(c *fiber.Ctx) error {
	var in signupInput
	if err := decodeJSON(c.Body(), &in); err != nil {
		return err
	}
	now := s.now()
	su := voluntree.Signup{ID: voluntree.NewID("su_"), OrgID: principal(c).OrgID, CreatedAt: now, UpdatedAt: now}
	if err := in.applyTo(&su, true); err != nil {
		return err
	}
	if err := s.cfg.Store.CreateSignup(c.UserContext(), su); err != nil {
		return err
	}
	s.cfg.Logger.Info("signup created", "action", "admin_signup", "org", su.OrgID, "signup", su.ID)
	c.Location("/api/v1/signups/" + su.ID)
	return c.Status(fiber.StatusCreated).JSON(newSignupView(su, nil))
}

func (s *Server) getSignup(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "signup")
	if err != nil {
		return err
	}
	su, err := s.cfg.Store.Signup(c.UserContext(), id)
	if err != nil {
		return err
	}
	if err := s.ownedBy(c, "signup", su.OrgID); err != nil {
		return err
	}
	return s.signupWithFills(c, su)
}

func (s *Server) replaceSignup(c *fiber.Ctx) error { return s.updateSignup(c, true) }
func (s *Server) patchSignup(c *fiber.Ctx) error   { return s.updateSignup(c, false) }

// updateSignup handles PUT (replace: every editable field) and PATCH (only those present).
// Slots keep the ids they are sent with, so their volunteers stay attached; a slot with
// volunteers cannot be removed.
func (s *Server) updateSignup(c *fiber.Ctx, replace bool) error {
	id, err := pathID(c, "id", "signup")
	if err != nil {
		return err
	}
	var in signupInput
	if err := decodeJSON(c.Body(), &in); err != nil {
		return err
	}
	ctx := c.UserContext()
	su, err := s.cfg.Store.UpdateSignup(ctx, id, func(su *voluntree.Signup) error {
		if err := s.ownedBy(c, "signup", su.OrgID); err != nil {
			return err
		}
		old := *su
		old.Slots = slices.Clone(su.Slots)
		if err := in.applyTo(su, replace); err != nil {
			return err
		}
		if err := s.checkRemovedSlots(ctx, &old, su); err != nil {
			return err
		}
		su.UpdatedAt = s.now()
		return nil
	})
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("signup updated", "action", "admin_signup", "org", su.OrgID, "signup", su.ID, "disabled", su.Disabled)
	return s.signupWithFills(c, su)
}

// checkRemovedSlots refuses an update that drops a slot someone signed up for.
func (s *Server) checkRemovedSlots(ctx context.Context, old, updated *voluntree.Signup) error {
	gone := voluntree.Signup{ID: old.ID}
	for _, sl := range old.Slots {
		if _, ok := updated.Slot(sl.ID); !ok {
			gone.Slots = append(gone.Slots, sl)
		}
	}
	if len(gone.Slots) == 0 {
		return nil
	}
	fills, err := s.cfg.Store.SlotFills(ctx, &gone)
	if err != nil {
		return err
	}
	for _, f := range fills {
		if f.Filled > 0 {
			return voluntree.Errorf(voluntree.ECONFLICT,
				"slot %s (%s %s–%s) has %d volunteer(s) and cannot be removed: send it again with its id",
				f.Slot.ID, f.Slot.Date, f.Slot.Start, f.Slot.End, f.Filled)
		}
	}
	return nil
}

func (s *Server) deleteSignup(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "signup")
	if err != nil {
		return err
	}
	err = s.cfg.Store.DeleteSignup(c.UserContext(), id, func(su *voluntree.Signup) error {
		return s.ownedBy(c, "signup", su.OrgID)
	})
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("signup deleted", "action", "admin_signup", "org", principal(c).OrgID, "signup", id)
	return c.SendStatus(fiber.StatusNoContent)
}

// ---- Posts ----

type postInput struct {
	SignupID      string  `json:"signup_id"`
	PageID        string  `json:"page_id"`
	Message       string  `json:"message"`
	AppendSummary bool    `json:"append_summary"`
	PhotoURL      string  `json:"photo_url"`
	PublishAt     *string `json:"publish_at"` // RFC 3339; absent: now (or, for a draft, unset)
	Draft         bool    `json:"draft"`
}

// postView is one post with its number of interests (0 until it is published).
type postView struct {
	voluntree.Post
	Interests int `json:"interests"`
}

// parsePublishAt reads an optional publish_at, which may not lie more than maxPublishLag in
// the past.
func (s *Server) parsePublishAt(v *string) (*time.Time, error) {
	if v == nil || *v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, *v)
	if err != nil {
		return nil, voluntree.FieldErrorf("publish_at", "publish_at: want an RFC 3339 time such as 2026-05-01T09:00:00+02:00, got %.40q", *v)
	}
	if t.Before(s.now().Add(-maxPublishLag)) {
		return nil, voluntree.FieldErrorf("publish_at", "publish_at: %s is in the past", t.Format(time.RFC3339))
	}
	t = t.UTC()
	return &t, nil
}

// activeSignup returns a post's signup, refusing a missing one (field signup_id), another
// organization's (403) or a disabled one (409).
func (s *Server) activeSignup(c *fiber.Ctx, id string) (voluntree.Signup, error) {
	su, err := s.cfg.Store.Signup(c.UserContext(), id)
	if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
		return su, voluntree.FieldErrorf("signup_id", "signup_id: signup %s not found", id)
	}
	if err != nil {
		return su, err
	}
	if err := s.ownedBy(c, "signup", su.OrgID); err != nil {
		return su, err
	}
	if su.Disabled {
		return su, voluntree.Errorf(voluntree.ECONFLICT, "signup %s is disabled: enable it before posting it", su.ID)
	}
	return su, nil
}

func (s *Server) createPost(c *fiber.Ctx) error {
	var in postInput
	if err := decodeJSON(c.Body(), &in); err != nil {
		return err
	}
	now := s.now()
	p := voluntree.Post{
		ID: voluntree.NewID("po_"), OrgID: principal(c).OrgID,
		SignupID: strings.TrimSpace(in.SignupID), PageID: strings.TrimSpace(in.PageID),
		Message: strings.TrimSpace(in.Message), AppendSummary: in.AppendSummary,
		PhotoURL: strings.TrimSpace(in.PhotoURL), CreatedAt: now, UpdatedAt: now,
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if !voluntree.ValidID(p.SignupID) {
		return voluntree.FieldErrorf("signup_id", "signup_id: not a signup id")
	}
	if !voluntree.ValidID(p.PageID) {
		return voluntree.FieldErrorf("page_id", "page_id: not a page id")
	}
	publishAt, err := s.parsePublishAt(in.PublishAt)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	if _, err := s.activeSignup(c, p.SignupID); err != nil {
		return err
	}
	page, err := s.cfg.Store.Page(ctx, p.PageID)
	if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
		return voluntree.FieldErrorf("page_id", "page_id: page %s is not connected", p.PageID)
	}
	if err != nil {
		return err
	}
	if err := s.ownedBy(c, "page", page.OrgID); err != nil {
		return err
	}
	p.Status, p.PublishAt = voluntree.PostDraft, publishAt
	if !in.Draft {
		if publishAt == nil {
			publishAt = &now
		}
		p.Status, p.PublishAt = voluntree.PostScheduled, publishAt
	}
	if err := s.cfg.Store.CreatePost(ctx, p); err != nil {
		return err
	}
	s.cfg.Logger.Info("post created", "action", "admin_post", "org", p.OrgID, "post", p.ID, "status", p.Status)
	s.postEvent(ctx, &p)
	c.Location("/api/v1/posts/" + p.ID)
	return c.Status(fiber.StatusCreated).JSON(postView{Post: p})
}

// postEvent announces a post's status. A lost announcement is logged, not an error: the post
// is stored, and answering 500 would make the client create it twice.
func (s *Server) postEvent(ctx context.Context, p *voluntree.Post) {
	if _, err := s.cfg.Store.AppendEvent(ctx, voluntree.PostEvent(p)); err != nil {
		s.cfg.Logger.Warn("post event", "action", "admin_post", "post", p.ID, "error", err)
	}
}

var postStatuses = []voluntree.PostStatus{
	voluntree.PostDraft, voluntree.PostScheduled, voluntree.PostPublishing, voluntree.PostPublished, voluntree.PostFailed,
}

func (s *Server) listPosts(c *fiber.Ctx) error {
	limit, offset, err := pagination(c)
	if err != nil {
		return err
	}
	ctx, org := c.UserContext(), principal(c).OrgID
	status := voluntree.PostStatus(c.Query("status"))
	if status == "" {
		pg, err := s.cfg.Store.Posts(ctx, org, offset, limit)
		if err != nil {
			return err
		}
		return c.JSON(listOf(pg.Items, pg.Total, limit, offset))
	}
	if !slices.Contains(postStatuses, status) {
		return voluntree.FieldErrorf("status", "status: want one of draft, scheduled, publishing, published, failed, got %.20q", string(status))
	}
	// No index by status: filter the organization's posts (hundreds, not millions).
	all, err := s.cfg.Store.Posts(ctx, org, 0, 1<<30)
	if err != nil {
		return err
	}
	var match []voluntree.Post
	for _, p := range all.Items {
		if p.Status == status {
			match = append(match, p)
		}
	}
	lo, hi := min(offset, len(match)), min(offset+limit, len(match))
	return c.JSON(listOf(match[lo:hi], len(match), limit, offset))
}

// ownPost loads the post of the path, refusing another organization's.
func (s *Server) ownPost(c *fiber.Ctx) (voluntree.Post, error) {
	id, err := pathID(c, "id", "post")
	if err != nil {
		return voluntree.Post{}, err
	}
	p, err := s.cfg.Store.Post(c.UserContext(), id)
	if err != nil {
		return p, err
	}
	return p, s.ownedBy(c, "post", p.OrgID)
}

func (s *Server) getPost(c *fiber.Ctx) error {
	p, err := s.ownPost(c)
	if err != nil {
		return err
	}
	v := postView{Post: p}
	if p.FacebookPostID != "" {
		if v.Interests, err = s.cfg.Store.InterestCount(c.UserContext(), p.FacebookPostID); err != nil {
			return err
		}
	}
	return c.JSON(v)
}

// changePost applies a status change to the post of the path in one transaction, after the
// ownership check, then announces it.
func (s *Server) changePost(c *fiber.Ctx, action string, change func(*voluntree.Post) (redisstore.QueueOp, error)) error {
	id, err := pathID(c, "id", "post")
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	p, err := s.cfg.Store.UpdatePost(ctx, id, func(p *voluntree.Post) (redisstore.QueueOp, error) {
		if err := s.ownedBy(c, "post", p.OrgID); err != nil {
			return redisstore.QueueOp{}, err
		}
		return change(p)
	})
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("post "+action, "action", "admin_post", "org", p.OrgID, "post", p.ID, "status", p.Status)
	s.postEvent(ctx, &p)
	return c.JSON(postView{Post: p})
}

type publishInput struct {
	PublishAt *string `json:"publish_at"`
}

// publishPost schedules a draft: at publish_at when given, else at the draft's own
// publish_at when that is still ahead, else now.
func (s *Server) publishPost(c *fiber.Ctx) error {
	var in publishInput
	if err := decodeOptionalJSON(c.Body(), &in); err != nil {
		return err
	}
	at, err := s.parsePublishAt(in.PublishAt)
	if err != nil {
		return err
	}
	return s.changePost(c, "scheduled", func(p *voluntree.Post) (redisstore.QueueOp, error) {
		if p.Status != voluntree.PostDraft {
			return redisstore.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is %s: only a draft can be published", p.ID, p.Status)
		}
		if _, err := s.activeSignup(c, p.SignupID); err != nil {
			return redisstore.QueueOp{}, err
		}
		when := s.now()
		switch {
		case at != nil:
			when = *at
		case p.PublishAt != nil && p.PublishAt.After(when):
			when = *p.PublishAt
		}
		p.Status, p.PublishAt = voluntree.PostScheduled, &when
		return redisstore.QueueOp{Add: true, At: when}, nil
	})
}

// cancelPost returns a scheduled post to draft and takes it out of the publish queue.
func (s *Server) cancelPost(c *fiber.Ctx) error {
	if err := decodeOptionalJSON(c.Body(), &struct{}{}); err != nil {
		return err
	}
	return s.changePost(c, "canceled", func(p *voluntree.Post) (redisstore.QueueOp, error) {
		switch p.Status {
		case voluntree.PostScheduled:
			p.Status = voluntree.PostDraft
			return redisstore.QueueOp{Remove: true}, nil
		case voluntree.PostDraft:
			return redisstore.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is a draft already: nothing to cancel", p.ID)
		case voluntree.PostPublishing:
			return redisstore.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is being published to the page: it can no longer be canceled", p.ID)
		case voluntree.PostPublished:
			return redisstore.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is published on Facebook (%s): remove it on the page", p.ID, p.FacebookPostID)
		case voluntree.PostFailed:
			return redisstore.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s failed and is not queued: retry it or leave it", p.ID)
		}
		return redisstore.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is %s: only a scheduled post can be canceled", p.ID, p.Status)
	})
}

// retryPost sends a failed post back to the queue, due now, with a fresh attempt count.
func (s *Server) retryPost(c *fiber.Ctx) error {
	if err := decodeOptionalJSON(c.Body(), &struct{}{}); err != nil {
		return err
	}
	return s.changePost(c, "retried", func(p *voluntree.Post) (redisstore.QueueOp, error) {
		if p.Status != voluntree.PostFailed {
			return redisstore.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is %s: only a failed post can be retried", p.ID, p.Status)
		}
		if _, err := s.activeSignup(c, p.SignupID); err != nil {
			return redisstore.QueueOp{}, err
		}
		now := s.now()
		p.Status, p.PublishAt = voluntree.PostScheduled, &now
		p.Error, p.ErrorCode, p.Attempts, p.Unconfirmed = "", 0, 0, false
		return redisstore.QueueOp{Add: true, At: now}, nil
	})
}

// ---- Pages ----

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
	items, err := s.cfg.Store.Interests(ctx, p.FacebookPostID, int64(offset), int64(limit))
	if err != nil {
		return err
	}
	total, err := s.cfg.Store.InterestCount(ctx, p.FacebookPostID)
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
	id, err := pathID(c, "id", "signup")
	if err != nil {
		return err
	}
	slotID, err := pathID(c, "slot", "slot")
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	su, err := s.cfg.Store.Signup(ctx, id)
	if err != nil {
		return err
	}
	if err := s.ownedBy(c, "signup", su.OrgID); err != nil {
		return err
	}
	if _, ok := su.Slot(slotID); !ok {
		return voluntree.Errorf(voluntree.ENOTFOUND, "signup %s has no slot %s", su.ID, slotID)
	}
	pg, err := s.cfg.Store.SlotInterests(ctx, su.ID, slotID, offset, limit)
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
