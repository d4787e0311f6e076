package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/internal/fakegraph"
	"github.com/voluntree/voluntree/redisstore"
)

// publishEnv is serve on the package's Redis and a fake Graph API, with an organization, its
// admin token (made by the CLI) and a connected page.
type publishEnv struct {
	graph  *fakegraph.Server
	store  *redisstore.Store
	prefix string
	token  string
	page   string
	pageTk string
	signup string
	env    []string
}

func newPublishEnv(t *testing.T, prefix string, extra ...string) *publishEnv {
	t.Helper()
	g := fakegraph.New(fakegraph.Config{AppSecret: e2eSecret})
	t.Cleanup(g.Close)
	rdb, _ := redisSrv.Client(t)
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	e := &publishEnv{graph: g, store: st, prefix: prefix, page: "4242", pageTk: "page-token-4242"}
	code, out, errOut := runCLI(t, "", "admin", "create-token", "-org", "acme", "-create-org", "Acme",
		"-redis-url", redisSrv.URL(t), "-redis-prefix", prefix)
	if code != 0 || !strings.HasPrefix(out, "vt_") {
		t.Fatalf("admin create-token: exit %d, %q %q", code, out, errOut)
	}
	e.token = strings.TrimSpace(out)
	g.AddPage(e.page, "Acme page", e.pageTk)
	if err := st.SavePage(context.Background(), voluntree.Page{ID: e.page, OrgID: "acme", Name: "Acme page", AccessToken: e.pageTk}); err != nil {
		t.Fatal(err)
	}
	e.env = append([]string{"VOLUNTREE_REDIS_URL=" + redisSrv.URL(t), "VOLUNTREE_REDIS_PREFIX=" + prefix,
		"VOLUNTREE_FB_APP_SECRET=" + e2eSecret, "VOLUNTREE_FB_GRAPH_URL=" + g.URL}, extra...)
	return e
}

// api calls the admin API with the environment's token.
func (e *publishEnv) api(t *testing.T, n *node, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	return n.api(t, method, path, e.token, b, "")
}

func (e *publishEnv) createSignup(t *testing.T, n *node) string {
	t.Helper()
	code, su := e.api(t, n, "POST", "/api/v1/signups", map[string]any{"title": "River cleanup", "time_zone": "UTC",
		"slots": []map[string]any{{"date": "2030-06-01", "start": "09:00", "end": "12:00", "required": 10}}})
	if code != 201 {
		t.Fatalf("create signup: %d %v", code, su)
	}
	return su["id"].(string)
}

// TestScheduledPostPublishedOnceAcrossRestart: a post scheduled for T, the node killed before
// T and started again: the post is on the page within 2 s after T, exactly once.
func TestScheduledPostPublishedOnceAcrossRestart(t *testing.T) {
	e := newPublishEnv(t, "e2e-publish")
	n := startServe(t, e.env...)
	if code, _ := e.api(t, n, "GET", "/api/v1/me", nil); code != 200 {
		t.Fatalf("GET /me with the CLI's token: %d", code)
	}
	signup := e.createSignup(t, n)
	at := time.Now().Add(4 * time.Second).UTC().Truncate(time.Millisecond)
	code, post := e.api(t, n, "POST", "/api/v1/posts", map[string]any{"signup_id": signup, "page_id": e.page,
		"message": "Saturday cleanup: who's in?", "publish_at": at.Format(time.RFC3339Nano)})
	if code != 201 || post["status"] != "scheduled" {
		t.Fatalf("create post: %d %v", code, post)
	}
	n.cmd.Process.Kill()
	<-n.exited
	n2 := startServe(t, e.env...)
	deadline := time.Now().Add(at.Sub(time.Now()) + 10*time.Second)
	for len(e.graph.Posts(e.page)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	posts := e.graph.Posts(e.page)
	if len(posts) != 1 {
		t.Fatalf("page has %d posts, want 1", len(posts))
	}
	if late := posts[0].CreatedTime.Sub(at); late < 0 || late > 2*time.Second {
		t.Errorf("published %s after its time, want within [0, 2s]", late)
	}
	id := post["id"].(string)
	waitRedis(t, func() bool {
		_, p := e.api(t, n2, "GET", "/api/v1/posts/"+id, nil)
		return p["status"] == "published" && p["facebook_post_id"] == posts[0].ID
	}, "the post marked published")
	// Out of the publish queue, nothing can publish it again.
	if _, queued, err := e.store.QueuedAt(context.Background(), id); err != nil || queued {
		t.Errorf("published post still queued (%v)", err)
	}
	if got := len(e.graph.Posts(e.page)); got != 1 {
		t.Errorf("page has %d posts, want 1", got)
	}
	n2.stop(t)
}

// TestWebhookAndPollingTakeEffectOnce: 1,000 comments on 10 published posts; the webhook
// delivers 600 of them, the poller finds all 1,000: each is classified and counted once.
func TestWebhookAndPollingTakeEffectOnce(t *testing.T) {
	const posts, perPost, byWebhook = 10, 100, 60
	e := newPublishEnv(t, "e2e-poll", "VOLUNTREE_POLL_INTERVAL=1s")
	n := startServe(t, e.env...)
	signup := e.createSignup(t, n)
	var fbIDs []string
	for i := range posts {
		code, p := e.api(t, n, "POST", "/api/v1/posts", map[string]any{"signup_id": signup, "page_id": e.page,
			"message": fmt.Sprintf("Post %d: volunteers wanted", i)})
		if code != 201 {
			t.Fatalf("create post: %d %v", code, p)
		}
		id := p["id"].(string)
		var fb string
		waitRedis(t, func() bool {
			_, got := e.api(t, n, "GET", "/api/v1/posts/"+id, nil)
			fb, _ = got["facebook_post_id"].(string)
			return got["status"] == "published"
		}, "post published")
		fbIDs = append(fbIDs, fb)
	}
	texts := []string{"Count me in!", "What time does it start?", "Can't make it, sorry", "Thank you all!"}
	for pi, fb := range fbIDs {
		var changes []facebook.ChangeValue
		for i := range perPost {
			c := fakegraph.Comment{ID: fmt.Sprintf("%s_c%d", fb, i), Message: texts[i%len(texts)],
				FromID: fmt.Sprintf("u%d_%d", pi, i), FromName: "Volunteer", CreatedTime: time.Now()}
			e.graph.AddComment(fb, c)
			if i < byWebhook {
				changes = append(changes, facebook.ChangeValue{Item: "comment", Verb: "add", CommentID: c.ID, PostID: fb,
					ParentID: fb, From: &facebook.User{ID: c.FromID, Name: c.FromName}, Message: c.Message,
					CreatedTime: c.CreatedTime.Unix()})
			}
		}
		for i := 0; i < len(changes); i += 20 {
			b, sig := signed(t, facebook.CommentPayload(e.page, changes[i:i+20]...))
			if code, body := n.webhook(t, b, sig); code != 200 {
				t.Fatalf("webhook: %d %v", code, body)
			}
		}
	}
	keys := redisstore.NewKeys(e.prefix)
	rdb, _ := redisSrv.Client(t)
	ctx := context.Background()
	classified := func() (total, counted int64) {
		for _, fb := range fbIDs {
			total += rdb.HLen(ctx, keys.PostClassified("acme", fb)).Val()
			for _, v := range rdb.HGetAll(ctx, keys.PostIntents("acme", fb)).Val() {
				var c int64
				fmt.Sscan(v, &c)
				counted += c
			}
		}
		return total, counted
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		total, _ := classified()
		if total == posts*perPost {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d comments classified\n%s", total, posts*perPost, n.log())
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	// Another poll round finds nothing new; the counts must not move.
	polls := e.graph.CountCalls("/comments")
	waitRedis(t, func() bool { return e.graph.CountCalls("/comments") >= polls+posts }, "another poll round")
	total, counted := classified()
	if total != posts*perPost || counted != posts*perPost {
		t.Errorf("classified %d distinct comments counted %d times, want %d and %d", total, counted, posts*perPost, posts*perPost)
	}
	for _, fb := range fbIDs {
		interests := rdb.ZCard(ctx, keys.PostInterests("acme", fb)).Val()
		if interests < 1 || interests > perPost {
			t.Errorf("post %s: %d interests", fb, interests)
		}
	}
	n.stop(t)
}
