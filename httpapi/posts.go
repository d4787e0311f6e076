package httpapi

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
)

// Posts of the admin API: create, list, get, publish, cancel, retry; publishing itself is
// the post grain's (cluster/publish.go).

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
	if _, err := s.cfg.Store.AppendEvent(ctx, p.OrgID, voluntree.PostEvent(p)); err != nil {
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
		if v.Interests, err = s.cfg.Store.InterestCount(c.UserContext(), p.OrgID, p.FacebookPostID); err != nil {
			return err
		}
	}
	return c.JSON(v)
}

// changePost applies a status change to the post of the path in one transaction, after the
// ownership check, then announces it.
func (s *Server) changePost(c *fiber.Ctx, action string, change func(*voluntree.Post) (voluntree.QueueOp, error)) error {
	id, err := pathID(c, "id", "post")
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	p, err := s.cfg.Store.UpdatePost(ctx, id, func(p *voluntree.Post) (voluntree.QueueOp, error) {
		if err := s.ownedBy(c, "post", p.OrgID); err != nil {
			return voluntree.QueueOp{}, err
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
	return s.changePost(c, "scheduled", func(p *voluntree.Post) (voluntree.QueueOp, error) {
		if p.Status != voluntree.PostDraft {
			return voluntree.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is %s: only a draft can be published", p.ID, p.Status)
		}
		if _, err := s.activeSignup(c, p.SignupID); err != nil {
			return voluntree.QueueOp{}, err
		}
		when := s.now()
		switch {
		case at != nil:
			when = *at
		case p.PublishAt != nil && p.PublishAt.After(when):
			when = *p.PublishAt
		}
		p.Status, p.PublishAt = voluntree.PostScheduled, &when
		return voluntree.QueueOp{Add: true, At: when}, nil
	})
}

// cancelPost returns a scheduled post to draft and takes it out of the publish queue.
func (s *Server) cancelPost(c *fiber.Ctx) error {
	if err := decodeOptionalJSON(c.Body(), &struct{}{}); err != nil {
		return err
	}
	return s.changePost(c, "canceled", func(p *voluntree.Post) (voluntree.QueueOp, error) {
		switch p.Status {
		case voluntree.PostScheduled:
			p.Status = voluntree.PostDraft
			return voluntree.QueueOp{Remove: true}, nil
		case voluntree.PostDraft:
			return voluntree.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is a draft already: nothing to cancel", p.ID)
		case voluntree.PostPublishing:
			return voluntree.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is being published to the page: it can no longer be canceled", p.ID)
		case voluntree.PostPublished:
			return voluntree.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is published on Facebook (%s): remove it on the page", p.ID, p.FacebookPostID)
		case voluntree.PostFailed:
			return voluntree.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s failed and is not queued: retry it or leave it", p.ID)
		}
		return voluntree.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is %s: only a scheduled post can be canceled", p.ID, p.Status)
	})
}

// retryPost sends a failed post back to the queue, due now, with a fresh attempt count.
func (s *Server) retryPost(c *fiber.Ctx) error {
	if err := decodeOptionalJSON(c.Body(), &struct{}{}); err != nil {
		return err
	}
	return s.changePost(c, "retried", func(p *voluntree.Post) (voluntree.QueueOp, error) {
		if p.Status != voluntree.PostFailed {
			return voluntree.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is %s: only a failed post can be retried", p.ID, p.Status)
		}
		if _, err := s.activeSignup(c, p.SignupID); err != nil {
			return voluntree.QueueOp{}, err
		}
		now := s.now()
		p.Status, p.PublishAt = voluntree.PostScheduled, &now
		p.Error, p.ErrorCode, p.Attempts, p.Unconfirmed = "", 0, 0, false
		return voluntree.QueueOp{Add: true, At: now}, nil
	})
}
