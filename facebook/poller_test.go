package facebook_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/internal/fakegraph"
	"github.com/voluntree/voluntree/internal/redistest"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/redisstore"
)

var redisSrv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &redisSrv) }

var pollSeq atomic.Int64

// pollEnv is one poller test: a store under the test's prefix, a fake Graph API with one
// page, and a published post on it.
type pollEnv struct {
	store  *redisstore.Store
	graph  *fakegraph.Server
	client *facebook.Graph
	m      *metrics.Metrics
	page   string
	token  string
	post   voluntree.Post
}

func newPollEnv(t *testing.T) *pollEnv {
	t.Helper()
	rdb, prefix := redisSrv.Client(t)
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: strings.TrimSuffix(prefix, ":")})
	if err != nil {
		t.Fatal(err)
	}
	g := fakegraph.New(fakegraph.Config{MaxPageSize: 25})
	t.Cleanup(g.Close)
	client, err := facebook.NewGraph(facebook.GraphConfig{BaseURL: g.URL, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := pollSeq.Add(1)
	e := &pollEnv{store: st, graph: g, client: client, m: metrics.New(prometheus.NewRegistry()),
		page: fmt.Sprintf("70%d", n), token: fmt.Sprintf("tok%d", n)}
	g.AddPage(e.page, "Page", e.token)
	ctx := context.Background()
	if err := st.CreateOrg(ctx, voluntree.Organization{ID: "o1", Name: "O"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SavePage(ctx, voluntree.Page{ID: e.page, OrgID: "o1", Name: "Page", AccessToken: e.token}); err != nil {
		t.Fatal(err)
	}
	fbID, err := client.PublishPost(ctx, e.page, e.token, facebook.PostContent{Message: "Help us"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	e.post = voluntree.Post{ID: "po_1", OrgID: "o1", SignupID: "su_1", PageID: e.page, Message: "Help us",
		Status: voluntree.PostScheduled, PublishAt: &now, CreatedAt: now, UpdatedAt: now}
	if err := st.CreatePost(ctx, e.post); err != nil {
		t.Fatal(err)
	}
	if e.post, err = st.UpdatePost(ctx, "po_1", func(p *voluntree.Post) (redisstore.QueueOp, error) {
		p.Status, p.FacebookPostID, p.PublishedAt = voluntree.PostPublished, fbID, &now
		return redisstore.QueueOp{Remove: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *pollEnv) poller(interval time.Duration) *facebook.Poller {
	return facebook.NewPoller(e.store, e.client, e.m, facebook.PollerConfig{Interval: interval, Node: "n1"}, nil)
}

// ingested returns the ingest stream's messages by id that no earlier call returned (read with
// a consumer group of the test's own).
func ingested(t *testing.T, st *redisstore.Store) map[string]voluntree.Message {
	t.Helper()
	ctx := context.Background()
	rdb, k := st.Client(), st.Keys()
	if err := rdb.XGroupCreateMkStream(ctx, k.Ingest(), "test", "0").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		t.Fatal(err)
	}
	out := map[string]voluntree.Message{}
	for {
		res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "test", Consumer: "reader",
			Streams: []string{k.Ingest(), ">"}, Count: 500, Block: -1}).Result() // -1: no BLOCK (0 would block forever)
		if errors.Is(err, redis.Nil) || err == nil && len(res) == 0 {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(res[0].Messages) == 0 {
			return out
		}
		for _, x := range res[0].Messages {
			m, err := redisstore.DecodeEntry(x.Values)
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := out[m.ID]; dup {
				t.Errorf("message %s enqueued twice", m.ID)
			}
			out[m.ID] = m
		}
	}
}

// TestPollerEnqueuesUnseenComments: comments already accepted through the webhook are not
// enqueued again; the others are, once, as comments of the post from the poll source.
func TestPollerEnqueuesUnseenComments(t *testing.T) {
	t.Parallel()
	e := newPollEnv(t)
	ctx := context.Background()
	var webhook []voluntree.Message
	for i := range 60 {
		c := fakegraph.Comment{Message: fmt.Sprintf("comment %d", i), FromID: fmt.Sprintf("u%d", i), FromName: "Person"}
		e.graph.AddComment(e.post.FacebookPostID, c)
	}
	e.graph.AddComment(e.post.FacebookPostID, fakegraph.Comment{Message: "Thanks all!", FromID: e.page, FromName: "Page"})
	// The webhook delivered the first 20 (same ids as Graph's).
	page, err := e.client.Comments(ctx, e.post.FacebookPostID, e.token, "", 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range page.Comments {
		webhook = append(webhook, voluntree.Message{ID: c.ID, Kind: voluntree.KindComment, Source: voluntree.SourceWebhook,
			PageID: e.page, PostID: e.post.FacebookPostID, SenderID: c.From.ID, Text: c.Message, CreatedAt: c.CreatedTime, ReceivedAt: time.Now()})
	}
	if _, err := e.store.Enqueue(ctx, webhook); err != nil {
		t.Fatal(err)
	}
	p := e.poller(time.Minute)
	if err := p.PollPost(ctx, e.post.ID); err != nil {
		t.Fatal(err)
	}
	got := ingested(t, e.store)
	if len(got) != 60 {
		t.Fatalf("ingest stream has %d messages, want 60 (20 by webhook + 40 polled)", len(got))
	}
	polled := 0
	for _, m := range got {
		if m.Source == voluntree.SourcePoll {
			polled++
			if m.PostID != e.post.FacebookPostID || m.PageID != e.page || m.Kind != voluntree.KindComment || m.SenderID == "" {
				t.Errorf("polled message %+v", m)
			}
		}
		if m.SenderID == e.page {
			t.Errorf("the page's own comment was enqueued")
		}
	}
	if polled != 40 {
		t.Errorf("%d polled messages, want 40", polled)
	}
	if v := testutil.ToFloat64(e.m.PollComments.WithLabelValues("duplicate")); v != 20 {
		t.Errorf("duplicates counted %v, want 20", v)
	}
	// The cursor moved: the next round (lock released) fetches only what is new.
	rdbDel(t, e)
	e.graph.AddComment(e.post.FacebookPostID, fakegraph.Comment{Message: "late", FromID: "u-late", FromName: "Late"})
	before := e.graph.CountCalls("GET /" + e.post.FacebookPostID + "/comments")
	if err := p.PollPost(ctx, e.post.ID); err != nil {
		t.Fatal(err)
	}
	if n := e.graph.CountCalls("GET /"+e.post.FacebookPostID+"/comments") - before; n != 1 {
		t.Errorf("second round made %d Graph calls, want 1 (from the cursor)", n)
	}
	if got := ingested(t, e.store); len(got) != 1 {
		t.Errorf("second round enqueued %d, want 1", len(got))
	}
}

// rdbDel releases the post's poll lock (as its expiry would).
func rdbDel(t *testing.T, e *pollEnv) {
	t.Helper()
	ok, err := e.store.UnlockPoll(context.Background(), e.post.ID, "n1")
	if err != nil || !ok {
		t.Fatalf("unlock: %v %v", ok, err)
	}
}

func TestPollerLockSkipsPostPolledElsewhere(t *testing.T) {
	t.Parallel()
	e := newPollEnv(t)
	ctx := context.Background()
	e.graph.AddComment(e.post.FacebookPostID, fakegraph.Comment{Message: "hi", FromID: "u1", FromName: "A"})
	if ok, err := e.store.LockPoll(ctx, e.post.ID, "other-node", time.Minute); err != nil || !ok {
		t.Fatal("could not take the lock")
	}
	if err := e.poller(time.Minute).PollPost(ctx, e.post.ID); err != nil {
		t.Fatal(err)
	}
	if n := e.graph.CountCalls("/comments"); n != 0 {
		t.Errorf("%d Graph calls while another node holds the lock, want 0", n)
	}
}

func TestPollerBacksOffWhenThrottled(t *testing.T) {
	t.Parallel()
	e := newPollEnv(t)
	ctx := context.Background()
	// The client retries a throttled call once (MaxAttempts 2); the poller sees it fail after.
	e.graph.FailNext("/comments", 2, fakegraph.Throttled(32))
	p := e.poller(time.Minute)
	if err := p.PollPost(ctx, e.post.ID); err != nil {
		t.Fatal(err)
	}
	rdbDel(t, e)
	if err := p.PollPost(ctx, e.post.ID); err != nil {
		t.Fatal(err)
	}
	if n := e.graph.CountCalls("/comments"); n != 2 {
		t.Errorf("%d comment calls, want 2 (the client's two attempts): the page is paused after throttling", n)
	}
	if v := testutil.ToFloat64(e.m.PollRequests.WithLabelValues("throttled")); v != 1 {
		t.Errorf("throttled counted %v, want 1", v)
	}
}
