package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/metrics"
)

// Publishing. An admin post waits in the publish queue (a Redis sorted set by due time). The
// Scheduler of every node claims due posts — a claim moves the post's score to the end of a
// lease, so the post comes due again if the node dies — and asks the post's grain to publish
// it. The grain calls the Graph API once per claim and records the outcome: published (the
// post leaves the queue), a retryable failure (requeued after an exponential backoff with
// jitter) or a permanent one (failed, with the Graph API's message).
//
// A publish call that did not answer (5xx, timeout, crash) may still have created the post on
// Facebook, and Graph has no idempotency key. Such an attempt leaves the post "unconfirmed";
// the next attempt first looks for the exact text on the page's feed and adopts that post
// instead of publishing it twice.

// Graph is what publishing needs of the Graph API (*facebook.Graph has it).
type Graph interface {
	PublishPost(ctx context.Context, pageID, pageToken string, p facebook.PostContent) (string, error)
	FeedSince(ctx context.Context, pageID, pageToken string, since time.Time) ([]facebook.FeedPost, error)
}

// Defaults of PublishConfig.
const (
	DefaultPublishBaseDelay = time.Second
	DefaultPublishMaxDelay  = 30 * time.Second
	DefaultPublishRetryFor  = 24 * time.Hour
	DefaultPublishTimeout   = 60 * time.Second
)

// PublishConfig tunes publishing.
type PublishConfig struct {
	BaseDelay time.Duration // first retry delay (doubled per attempt, with jitter)
	MaxDelay  time.Duration // longest retry delay
	RetryFor  time.Duration // a post still failing this long after its first attempt fails
	Timeout   time.Duration // one publish attempt, Graph calls included
}

func (c *PublishConfig) setDefaults() {
	if c.BaseDelay == 0 {
		c.BaseDelay = DefaultPublishBaseDelay
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = DefaultPublishMaxDelay
	}
	if c.RetryFor == 0 {
		c.RetryFor = DefaultPublishRetryFor
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultPublishTimeout
	}
}

// publisher publishes admin posts for the post grains of one node.
type publisher struct {
	store   Store
	graph   Graph
	metrics *metrics.Metrics
	cfg     PublishConfig
	log     *slog.Logger
	now     func() time.Time
}

// unconfirmedWindow is how far before an unconfirmed attempt the feed is searched for it.
const unconfirmedWindow = 10 * time.Minute

// publish makes one publish attempt of post id and reports the post's status afterwards.
func (p *publisher) publish(id string) (*grainpb.PublishResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	defer cancel()
	post, err := p.store.Post(ctx, id)
	if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
		return &grainpb.PublishResponse{}, p.store.Dequeue(ctx, id) // deleted meanwhile
	}
	if err != nil {
		return nil, err
	}
	if post.Status != voluntree.PostScheduled && post.Status != voluntree.PostPublishing {
		// Published, failed, or back to draft: nothing to do, and no reason to stay queued.
		return &grainpb.PublishResponse{Status: string(post.Status), FacebookPostId: post.FacebookPostID}, p.store.Dequeue(ctx, id)
	}
	page, err := p.store.Page(ctx, post.PageID)
	if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
		return p.fail(ctx, id, 0, fmt.Sprintf("page %s is not connected", post.PageID))
	}
	if err != nil {
		return nil, err
	}
	if !page.TokenExpiresAt.IsZero() && p.now().After(page.TokenExpiresAt) {
		return p.fail(ctx, id, 190, "the page access token expired: reconnect the page")
	}
	if p.graph == nil {
		return p.fail(ctx, id, 0, "no Graph API is configured (VOLUNTREE_FB_GRAPH_URL)")
	}

	// An earlier attempt that never answered may have created the post: look for it first.
	if post.Unconfirmed && post.PublishedText != "" && post.LastAttemptAt != nil {
		feed, err := p.graph.FeedSince(ctx, page.ID, page.AccessToken, post.LastAttemptAt.Add(-unconfirmedWindow))
		if err != nil {
			return p.retry(ctx, id, err, true) // can't tell: publishing now could duplicate it
		}
		for _, f := range feed {
			if f.Message == post.PublishedText {
				return p.succeed(ctx, id, f.ID, "adopted")
			}
		}
	}

	content := facebook.PostContent{Message: post.Message, PhotoURL: post.PhotoURL}
	if post.AppendSummary {
		su, err := p.store.Signup(ctx, post.SignupID)
		if err != nil {
			return nil, err
		}
		fills, err := p.store.SlotFills(ctx, &su)
		if err != nil {
			return nil, err
		}
		content.Message = voluntree.PostText(&post, &su, fills)
	}
	// Record the attempt before making it: if this node dies during the call, the next
	// attempt knows it may have happened.
	attempt := p.now().UTC()
	marked, err := p.store.UpdatePost(ctx, id, func(q *voluntree.Post) (voluntree.QueueOp, error) {
		if q.Status != voluntree.PostScheduled && q.Status != voluntree.PostPublishing {
			return voluntree.QueueOp{}, voluntree.Errorf(voluntree.ECONFLICT, "post %s is %s", id, q.Status)
		}
		q.Status = voluntree.PostPublishing
		q.Attempts++
		q.LastAttemptAt = &attempt
		q.PublishedText = content.Message
		q.Unconfirmed = true
		return voluntree.QueueOp{}, nil
	})
	if voluntree.ErrorCode(err) == voluntree.ECONFLICT {
		return &grainpb.PublishResponse{Status: string(post.Status)}, nil // canceled meanwhile
	}
	if err != nil {
		return nil, err
	}
	if post.Status != voluntree.PostPublishing {
		p.event(ctx, &marked)
	}
	fbID, err := p.graph.PublishPost(ctx, page.ID, page.AccessToken, content)
	if err == nil {
		return p.succeed(ctx, id, fbID, "published")
	}
	var ge *facebook.GraphError
	isGraph := errors.As(err, &ge)
	if facebook.IsRetryable(err) {
		// A throttled call was refused before doing anything; any other failure may have.
		return p.retry(ctx, id, err, !(isGraph && ge.Throttled()))
	}
	code, msg := 0, err.Error()
	if isGraph {
		code, msg = ge.Code, ge.Message
	}
	return p.fail(ctx, id, code, msg)
}

func (p *publisher) succeed(ctx context.Context, id, fbID, outcome string) (*grainpb.PublishResponse, error) {
	now := p.now().UTC()
	post, err := p.store.UpdatePost(ctx, id, func(q *voluntree.Post) (voluntree.QueueOp, error) {
		q.Status = voluntree.PostPublished
		q.FacebookPostID = fbID
		q.PublishedAt = &now
		q.Unconfirmed = false
		q.Error, q.ErrorCode = "", 0
		return voluntree.QueueOp{Remove: true}, nil
	})
	if err != nil {
		// The post exists on Facebook but is not marked: it stays unconfirmed, and the next
		// attempt adopts it from the feed.
		return nil, fmt.Errorf("cluster: mark post %s published as %s: %w", id, fbID, err)
	}
	p.metrics.PostsPublish.WithLabelValues(outcome).Inc()
	if post.PublishAt != nil {
		p.metrics.PublishDelay.Observe(now.Sub(*post.PublishAt).Seconds())
	}
	p.log.Info("post published", "action", "publish", "post", id, "facebook_post", fbID, "outcome", outcome, "attempts", post.Attempts)
	p.event(ctx, &post)
	return &grainpb.PublishResponse{Status: string(post.Status), FacebookPostId: fbID}, nil
}

func (p *publisher) retry(ctx context.Context, id string, cause error, unconfirmed bool) (*grainpb.PublishResponse, error) {
	var at time.Time
	post, err := p.store.UpdatePost(ctx, id, func(q *voluntree.Post) (voluntree.QueueOp, error) {
		first := q.CreatedAt
		if q.PublishAt != nil && q.PublishAt.After(first) {
			first = *q.PublishAt
		}
		if p.now().Sub(first) > p.cfg.RetryFor {
			q.Status, q.Error, q.Unconfirmed = voluntree.PostFailed, "gave up after "+p.cfg.RetryFor.String()+": "+cause.Error(), false
			return voluntree.QueueOp{Remove: true}, nil
		}
		q.Unconfirmed = q.Unconfirmed || unconfirmed
		q.Error = cause.Error()
		at = p.now().Add(facebook.Backoff(q.Attempts, p.cfg.BaseDelay, p.cfg.MaxDelay, rand.Float64))
		return voluntree.QueueOp{Add: true, At: at}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: requeue post %s: %w", id, err)
	}
	if post.Status == voluntree.PostFailed {
		p.metrics.PostsPublish.WithLabelValues("failed").Inc()
		p.event(ctx, &post)
		return &grainpb.PublishResponse{Status: string(post.Status)}, nil
	}
	p.metrics.PostsPublish.WithLabelValues("retry").Inc()
	p.log.Warn("publish failed, will retry", "action", "publish", "post", id, "attempts", post.Attempts,
		"retry_at", at, "error", cause)
	return &grainpb.PublishResponse{Status: string(post.Status), RetryAtUnixMilli: at.UnixMilli()}, nil
}

func (p *publisher) fail(ctx context.Context, id string, code int, msg string) (*grainpb.PublishResponse, error) {
	post, err := p.store.UpdatePost(ctx, id, func(q *voluntree.Post) (voluntree.QueueOp, error) {
		q.Status, q.Error, q.ErrorCode, q.Unconfirmed = voluntree.PostFailed, msg, code, false
		return voluntree.QueueOp{Remove: true}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: mark post %s failed: %w", id, err)
	}
	p.metrics.PostsPublish.WithLabelValues("failed").Inc()
	p.log.Warn("publish failed permanently", "action", "publish", "post", id, "code", code, "error", msg)
	p.event(ctx, &post)
	return &grainpb.PublishResponse{Status: string(post.Status)}, nil
}

// event announces the post's status; a lost announcement is logged, not retried (the post
// record is the truth, and the dashboard reloads it).
func (p *publisher) event(ctx context.Context, post *voluntree.Post) {
	if _, err := p.store.AppendEvent(ctx, post.OrgID, voluntree.PostEvent(post)); err != nil {
		p.log.Warn("post event", "action", "publish", "post", post.ID, "error", err)
	}
}
