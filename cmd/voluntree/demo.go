package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/httpapi"
	"github.com/voluntree/voluntree/redisstore"
)

// The embedded default has no Facebook account: a demo organization owns the demo page, with
// a signup and its post (the one the demo channel comments on), and posts to the demo page
// are "published" in-process. Everything else about them — queue, scheduling, statuses,
// events, stats — is the real thing.

const demoOrg = "demo"

// seedDemo creates the demo organization, page, signup and published post once.
func seedDemo(ctx context.Context, st *redisstore.Store, d httpapi.Demo) error {
	err := st.CreateOrg(ctx, voluntree.Organization{ID: demoOrg, Name: "Riverside Friends (demo)"})
	if voluntree.ErrorCode(err) == voluntree.ECONFLICT {
		return nil // seeded before
	}
	if err != nil {
		return fmt.Errorf("seed demo: %w", err)
	}
	now := time.Now().UTC()
	if err := st.SavePage(ctx, voluntree.Page{ID: d.PageID, OrgID: demoOrg, Name: "Riverside Friends", AccessToken: "demo", ConnectedAt: now}); err != nil {
		return fmt.Errorf("seed demo page: %w", err)
	}
	// The coming Saturday (a week ahead on a Saturday): the demo post says "this Saturday".
	days := (int(time.Saturday) - int(now.Weekday()) + 7) % 7
	if days == 0 {
		days = 7
	}
	saturday := now.AddDate(0, 0, days).Format("2006-01-02")
	su := voluntree.Signup{
		ID: d.SignupID, OrgID: demoOrg, Title: "Riverside cleanup",
		Description: "Litter picking, sorting and snacks along the river.",
		Facts:       "Meet at the boathouse. Gloves and bags provided. Bring water and sun cream. Children welcome with an adult.",
		TimeZone:    "UTC",
		Slots: []voluntree.Slot{
			{ID: "sl_morning", Date: saturday, Start: "09:00", End: "11:00", Title: "Litter picking", Required: 12},
			{ID: "sl_late", Date: saturday, Start: "11:00", End: "13:00", Title: "Sorting and snacks", Required: 8},
		},
		CreatedAt: now, UpdatedAt: now,
	}
	if err := st.CreateSignup(ctx, su); err != nil {
		return fmt.Errorf("seed demo signup: %w", err)
	}
	post := voluntree.Post{ID: "po_demo", OrgID: demoOrg, SignupID: su.ID, PageID: d.PageID,
		Message: d.PostMessage, Status: voluntree.PostScheduled, PublishAt: &now, CreatedAt: now, UpdatedAt: now}
	if err := st.CreatePost(ctx, post); err != nil {
		return fmt.Errorf("seed demo post: %w", err)
	}
	// Published as the demo channel's post id, so demo comments count for this post.
	_, err = st.UpdatePost(ctx, post.ID, func(p *voluntree.Post) (redisstore.QueueOp, error) {
		p.Status, p.FacebookPostID, p.PublishedAt, p.Attempts = voluntree.PostPublished, d.PostID, &now, 1
		return redisstore.QueueOp{Remove: true}, nil
	})
	return err
}

// demoGraph publishes posts of the demo page in-process and hands every other page to the
// real Graph API client.
type demoGraph struct {
	pageID string
	real   *facebook.Graph
	seq    atomic.Int64
}

var (
	_ cluster.Graph          = (*demoGraph)(nil)
	_ facebook.CommentSource = (*demoGraph)(nil)
	_ cluster.Messenger      = (*demoGraph)(nil)
)

// SendMessage "sends" the demo page's Messenger messages nowhere (the demo has no Messenger:
// its volunteers use the web chat) and hands other pages' to the Graph API.
func (g *demoGraph) SendMessage(ctx context.Context, pageID, token string, m facebook.OutMessage) (facebook.SendResult, error) {
	if pageID == g.pageID {
		return facebook.SendResult{RecipientID: m.RecipientID, MessageID: "m_demo_" + strconv.FormatInt(g.seq.Add(1), 10)}, nil
	}
	return g.real.SendMessage(ctx, pageID, token, m)
}

// ReplyToComment answers demo comments nowhere, like SendMessage.
func (g *demoGraph) ReplyToComment(ctx context.Context, commentID, token, text string) (string, error) {
	if strings.HasPrefix(commentID, g.pageID+"_") {
		return commentID + "_r" + strconv.FormatInt(g.seq.Add(1), 10), nil
	}
	return g.real.ReplyToComment(ctx, commentID, token, text)
}

func (g *demoGraph) PublishPost(ctx context.Context, pageID, token string, p facebook.PostContent) (string, error) {
	if pageID == g.pageID {
		return pageID + "_" + strconv.FormatInt(time.Now().UnixMilli(), 10) + strconv.FormatInt(g.seq.Add(1), 10), nil
	}
	return g.real.PublishPost(ctx, pageID, token, p)
}

func (g *demoGraph) FeedSince(ctx context.Context, pageID, token string, since time.Time) ([]facebook.FeedPost, error) {
	if pageID == g.pageID {
		return nil, nil
	}
	return g.real.FeedSince(ctx, pageID, token, since)
}

func (g *demoGraph) Comments(ctx context.Context, postID, token, after string, limit int) (facebook.CommentsPage, error) {
	if strings.HasPrefix(postID, g.pageID+"_") {
		return facebook.CommentsPage{}, nil // demo comments arrive through the demo channel
	}
	return g.real.Comments(ctx, postID, token, after, limit)
}
