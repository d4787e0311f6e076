package facebook

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/metrics"
)

// The comment poller is the safety net under the webhook: Facebook drops webhook calls now and
// then (and stops calling an endpoint that failed for a while), so published posts' comments
// are also fetched from the Graph API periodically. A polled comment enters the ingest stream
// through the same Enqueue as a webhook's, whose dedupe key is the comment id: a comment seen
// by both paths takes effect once.

// CommentSource is what polling needs of the Graph API (*Graph has it).
type CommentSource interface {
	Comments(ctx context.Context, postID, token, after string, limit int) (CommentsPage, error)
}

// Defaults of PollerConfig.
const (
	DefaultPollInterval = 60 * time.Second
	DefaultPollWindow   = 7 * 24 * time.Hour
	DefaultPollPageSize = 100
	DefaultPollMaxPages = 50
	DefaultPollWorkers  = 4
)

// PollerConfig tunes a Poller.
type PollerConfig struct {
	Interval time.Duration // between two polls of one post
	Window   time.Duration // posts published longer ago than this are no longer polled
	PageSize int           // comments per Graph call
	MaxPages int           // Graph calls per post and round, at most
	Workers  int           // posts polled at once
	Node     string        // this node's name (owner of the per-post poll lock)
}

func (c *PollerConfig) setDefaults() {
	if c.Interval == 0 {
		c.Interval = DefaultPollInterval
	}
	if c.Window == 0 {
		c.Window = DefaultPollWindow
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPollPageSize
	}
	if c.MaxPages == 0 {
		c.MaxPages = DefaultPollMaxPages
	}
	if c.Workers == 0 {
		c.Workers = DefaultPollWorkers
	}
	if c.Node == "" {
		c.Node = "node"
	}
}

// Poller fetches the comments of published posts and enqueues the unseen ones. Every node may
// run one: a per-post lock makes one node poll a post per round.
type Poller struct {
	store   voluntree.CommentPollStore
	graph   CommentSource
	metrics *metrics.Metrics
	cfg     PollerConfig
	log     *slog.Logger

	mu        sync.Mutex
	throttled map[string]pageBackoff // by page id: Graph's rate limits are per page
}

type pageBackoff struct {
	until time.Time
	delay time.Duration
}

// NewPoller returns a poller.
func NewPoller(store voluntree.CommentPollStore, graph CommentSource, m *metrics.Metrics, cfg PollerConfig, log *slog.Logger) *Poller {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Poller{store: store, graph: graph, metrics: m, cfg: cfg, log: log.With("component", "poller"),
		throttled: make(map[string]pageBackoff)}
}

// Run polls every Interval until ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		p.Round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Round polls every post published within the window once (those whose lock it gets).
func (p *Poller) Round(ctx context.Context) {
	ids, err := p.store.PublishedSince(ctx, time.Now().Add(-p.cfg.Window))
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("list published posts", "action", "poll", "error", err)
		}
		return
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(p.cfg.Workers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if err := p.PollPost(ctx, id); err != nil && ctx.Err() == nil {
					p.log.Warn("poll post", "action", "poll", "post", id, "error", err)
				}
			}
		}()
	}
	for _, id := range ids {
		select {
		case work <- id:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

// PollPost fetches one post's comments after its cursor and enqueues the ones not seen yet.
func (p *Poller) PollPost(ctx context.Context, postID string) error {
	post, err := p.store.Post(ctx, postID)
	if err != nil {
		return err
	}
	if post.FacebookPostID == "" {
		return nil
	}
	if p.backingOff(post.PageID) {
		return nil
	}
	// The lock lasts most of an interval: another node's round in the same interval skips it.
	ok, err := p.store.LockPoll(ctx, postID, p.cfg.Node, p.cfg.Interval*9/10)
	if err != nil || !ok {
		return err
	}
	page, err := p.store.Page(ctx, post.PageID)
	if err != nil {
		return err
	}
	cursor, err := p.store.PollCursor(ctx, postID)
	if err != nil {
		return err
	}
	for range p.cfg.MaxPages {
		cp, err := p.graph.Comments(ctx, post.FacebookPostID, page.AccessToken, cursor, p.cfg.PageSize)
		if err != nil {
			var ge *GraphError
			if errors.As(err, &ge) && ge.Throttled() {
				p.metrics.PollRequests.WithLabelValues("throttled").Inc()
				p.backOff(post.PageID)
				return nil
			}
			p.metrics.PollRequests.WithLabelValues("error").Inc()
			return err
		}
		p.metrics.PollRequests.WithLabelValues("ok").Inc()
		p.recovered(post.PageID)
		if err := p.enqueue(ctx, &post, cp.Comments); err != nil {
			return err
		}
		// The cursor moves only once the page's comments are durable in the stream.
		if cp.After != "" && cp.After != cursor {
			cursor = cp.After
			if err := p.store.SetPollCursor(ctx, postID, cursor); err != nil {
				return err
			}
		}
		if !cp.More {
			return nil
		}
	}
	return nil
}

func (p *Poller) enqueue(ctx context.Context, post *voluntree.Post, comments []GraphComment) error {
	now := time.Now().UTC()
	msgs := make([]voluntree.Message, 0, len(comments))
	for _, c := range comments {
		if c.From == nil || c.From.ID == "" || c.From.ID == post.PageID {
			// Meta hides the author of some comments; the page's own replies are not volunteers.
			p.metrics.PollComments.WithLabelValues("skipped").Inc()
			continue
		}
		m := voluntree.Message{
			ID: c.ID, Kind: voluntree.KindComment, Source: voluntree.SourcePoll,
			PageID: post.PageID, PostID: post.FacebookPostID, ParentID: c.ParentID,
			SenderID: c.From.ID, SenderName: c.From.Name, Text: c.Message,
			CreatedAt: c.CreatedTime.UTC(), ReceivedAt: now,
		}
		if m.ParentID == "" {
			m.ParentID = post.FacebookPostID
		}
		if err := m.Validate(); err != nil {
			p.metrics.PollComments.WithLabelValues("skipped").Inc()
			p.log.Warn("skip polled comment", "action", "poll", "comment", c.ID, "error", err)
			continue
		}
		msgs = append(msgs, m)
	}
	res, err := p.store.Enqueue(ctx, msgs)
	if err != nil {
		return err
	}
	for i, r := range res {
		switch {
		case r.Err != nil:
			p.metrics.PollComments.WithLabelValues("skipped").Inc()
			p.log.Warn("skip polled comment", "action", "poll", "comment", msgs[i].ID, "error", r.Err)
		case r.ID == "":
			p.metrics.PollComments.WithLabelValues("duplicate").Inc()
		default:
			p.metrics.PollComments.WithLabelValues("new").Inc()
		}
	}
	return nil
}

func (p *Poller) backingOff(pageID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Now().Before(p.throttled[pageID].until)
}

// backOff doubles a throttled page's pause, from one interval up to 16.
func (p *Poller) backOff(pageID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.throttled[pageID]
	b.delay = min(max(2*b.delay, p.cfg.Interval), 16*p.cfg.Interval)
	b.until = time.Now().Add(b.delay)
	p.throttled[pageID] = b
	p.log.Warn("page throttled by the Graph API, polling paused", "action", "poll", "page", pageID, "for", b.delay)
}

func (p *Poller) recovered(pageID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.throttled, pageID)
}
