package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/internal/fakegraph"
	"github.com/voluntree/voluntree/redisstore"
)

// publishFixture is one test's organization, page (on the fake Graph API) and signup.
type publishFixture struct {
	e      *testEnv
	org    string
	page   string
	token  string
	signup voluntree.Signup
}

func newPublishFixture(t *testing.T) *publishFixture {
	t.Helper()
	e := requireEnv(t)
	id := uid(t)
	f := &publishFixture{e: e, org: "org" + id, page: "9" + strings.TrimPrefix(id, "t") + "00", token: "page-token-" + id}
	ctx := testCtx(t)
	if err := e.store.CreateOrg(ctx, voluntree.Organization{ID: f.org, Name: "Org " + id}); err != nil {
		t.Fatal(err)
	}
	e.graph.AddPage(f.page, "Page "+id, f.token)
	if err := e.store.SavePage(ctx, voluntree.Page{ID: f.page, OrgID: f.org, Name: "Page", AccessToken: f.token}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	f.signup = voluntree.Signup{ID: "su_" + id, OrgID: f.org, Title: "Cleanup", TimeZone: "UTC",
		Slots:     []voluntree.Slot{{ID: "a", Date: "2030-05-04", Start: "09:00", End: "12:00", Title: "Morning", Required: 5}},
		CreatedAt: now, UpdatedAt: now}
	if err := e.store.CreateSignup(ctx, f.signup); err != nil {
		t.Fatal(err)
	}
	return f
}

// post creates a scheduled post due at at.
func (f *publishFixture) post(t *testing.T, msg string, at time.Time, mutate ...func(*voluntree.Post)) voluntree.Post {
	t.Helper()
	now := time.Now().UTC()
	p := voluntree.Post{ID: voluntree.NewID("po_"), OrgID: f.org, SignupID: f.signup.ID, PageID: f.page,
		Message: msg, Status: voluntree.PostScheduled, PublishAt: &at, CreatedAt: now, UpdatedAt: now}
	for _, m := range mutate {
		m(&p)
	}
	if err := f.e.store.CreatePost(testCtx(t), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// runScheduler runs a scheduler of the test node until the test ends.
func runScheduler(t *testing.T, e *testEnv) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		NewScheduler(e.node, SchedulerConfig{Tick: 20 * time.Millisecond, RetryAfterError: 100 * time.Millisecond}).Run(ctx)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// waitPost polls the post until cond holds (the scheduler works asynchronously).
func waitPost(t *testing.T, e *testEnv, id string, within time.Duration, cond func(voluntree.Post) bool) voluntree.Post {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		p, err := e.store.Post(testCtx(t), id)
		if err == nil && cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("post %s: condition not met within %s; last: %+v (err %v)", id, within, p, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

func published(p voluntree.Post) bool { return p.Status == voluntree.PostPublished }

func TestPublishNowWithSummaryAndPhoto(t *testing.T) {
	t.Parallel()
	f := newPublishFixture(t)
	runScheduler(t, f.e)
	ctx := testCtx(t)
	if _, err := f.e.store.Book(ctx, f.signup.ID, "a", 5, "p:c1", redisstore.BookingRecord{}, 0); err != nil {
		t.Fatal(err)
	}
	p := f.post(t, "Join us!", time.Now(), func(p *voluntree.Post) {
		p.AppendSummary, p.PhotoURL = true, "https://example.org/beach.jpg"
	})
	got := waitPost(t, f.e, p.ID, 10*time.Second, published)
	posts := f.e.graph.Posts(f.page)
	if len(posts) != 1 {
		t.Fatalf("page has %d posts, want 1: %+v", len(posts), posts)
	}
	if got.FacebookPostID != posts[0].ID {
		t.Errorf("facebook post id %q, page has %q", got.FacebookPostID, posts[0].ID)
	}
	want := "Join us!\n\n• Sat 4 May 2030, 09:00–12:00 (Morning): 1 of 5 filled"
	if posts[0].Message != want {
		t.Errorf("published text %q, want %q", posts[0].Message, want)
	}
	if posts[0].PhotoID == "" {
		t.Error("the photo is not attached")
	}
	if _, queued, _ := f.e.store.QueuedAt(ctx, p.ID); queued {
		t.Error("a published post is still queued")
	}
	if id, _ := f.e.store.PostIDByFacebookID(ctx, got.FacebookPostID); id != p.ID {
		t.Errorf("facebook id maps to %q, want %q", id, p.ID)
	}
	// Status changes were announced: publishing, then published.
	r, err := f.e.store.EventsAfter(ctx, f.org, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	var statuses []voluntree.PostStatus
	for _, ev := range r.Events {
		if ev.Type == voluntree.EventPost && ev.PostID == p.ID {
			statuses = append(statuses, ev.Post.Status)
		}
	}
	if strings.Join(toStrings(statuses), ",") != "publishing,published" {
		t.Errorf("post events %v, want publishing then published", statuses)
	}
}

func toStrings(ss []voluntree.PostStatus) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

func TestScheduledPostWaitsForItsTime(t *testing.T) {
	t.Parallel()
	f := newPublishFixture(t)
	runScheduler(t, f.e)
	at := time.Now().Add(1500 * time.Millisecond)
	p := f.post(t, "Later", at)
	got := waitPost(t, f.e, p.ID, 10*time.Second, published)
	if got.PublishedAt.Before(at) {
		t.Errorf("published at %s, before its time %s", got.PublishedAt, at)
	}
	if late := got.PublishedAt.Sub(at); late > 2*time.Second {
		t.Errorf("published %s after its time, want within 2s", late)
	}
	if n := len(f.e.graph.Posts(f.page)); n != 1 {
		t.Errorf("page has %d posts, want 1", n)
	}
}

func TestPermanentErrorFailsWithGraphMessage(t *testing.T) {
	t.Parallel()
	f := newPublishFixture(t)
	f.e.graph.FailNext("POST /"+f.page+"/feed", 1, fakegraph.Permanent(200, "(#200) The user hasn't authorized the application to perform this action"))
	runScheduler(t, f.e)
	p := f.post(t, "Nope", time.Now())
	got := waitPost(t, f.e, p.ID, 10*time.Second, func(p voluntree.Post) bool { return p.Status == voluntree.PostFailed })
	if got.ErrorCode != 200 || !strings.Contains(got.Error, "hasn't authorized") {
		t.Errorf("error %d %q, want Graph's code 200 and message", got.ErrorCode, got.Error)
	}
	if got.Attempts != 1 {
		t.Errorf("attempts %d, want 1 (no retry on a permanent error)", got.Attempts)
	}
	if n := f.e.graph.CountCalls("POST /" + f.page + "/feed"); n != 1 {
		t.Errorf("%d feed calls, want 1", n)
	}
}

func TestThrottledPostIsRetried(t *testing.T) {
	t.Parallel()
	f := newPublishFixture(t)
	f.e.graph.FailNext("POST /"+f.page+"/feed", 2, fakegraph.Throttled(32))
	runScheduler(t, f.e)
	p := f.post(t, "Busy page", time.Now())
	got := waitPost(t, f.e, p.ID, 20*time.Second, published)
	if got.Attempts != 3 {
		t.Errorf("attempts %d, want 3", got.Attempts)
	}
	if n := len(f.e.graph.Posts(f.page)); n != 1 {
		t.Errorf("page has %d posts, want 1", n)
	}
}

// TestOutageEveryPostPublishedOnce: the Graph API answers 500 for 30 s; every queued post is
// published after it recovers, none twice.
func TestOutageEveryPostPublishedOnce(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("30 s outage")
	}
	f := newPublishFixture(t)
	outage := 30 * time.Second
	end := time.Now().Add(outage)
	f.e.graph.FailUntil("POST /"+f.page+"/feed", end, fakegraph.ServerError())
	runScheduler(t, f.e)
	var ids []string
	for i := range 12 {
		ids = append(ids, f.post(t, "Post "+string(rune('A'+i)), time.Now()).ID)
	}
	for _, id := range ids {
		got := waitPost(t, f.e, id, outage+20*time.Second, published)
		if got.PublishedAt.Before(end) {
			t.Errorf("post %s published during the outage", id)
		}
	}
	posts := f.e.graph.Posts(f.page)
	if len(posts) != len(ids) {
		t.Fatalf("page has %d posts, want %d", len(posts), len(ids))
	}
	seen := map[string]bool{}
	for _, p := range posts {
		if seen[p.Message] {
			t.Errorf("%q published twice", p.Message)
		}
		seen[p.Message] = true
	}
}

// TestUnconfirmedAttemptIsAdopted: a publish call created the post but its answer was lost
// (here: the node "died" after marking the attempt). The next attempt finds the post on the
// page instead of publishing it again.
func TestUnconfirmedAttemptIsAdopted(t *testing.T) {
	t.Parallel()
	f := newPublishFixture(t)
	ctx := testCtx(t)
	p := f.post(t, "Already there", time.Now().Add(time.Hour))
	// The lost attempt: the post exists on Facebook; ours is "publishing", unconfirmed.
	fb, err := facebookClient(f.e).PublishPost(ctx, f.page, f.token, postContent("Already there"))
	if err != nil {
		t.Fatal(err)
	}
	attempt := time.Now().UTC()
	if _, err := f.e.store.UpdatePost(ctx, p.ID, func(q *voluntree.Post) (redisstore.QueueOp, error) {
		q.Status, q.Attempts, q.LastAttemptAt, q.PublishedText, q.Unconfirmed = voluntree.PostPublishing, 1, &attempt, "Already there", true
		return redisstore.QueueOp{Add: true, At: time.Now()}, nil
	}); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, f.e)
	got := waitPost(t, f.e, p.ID, 10*time.Second, published)
	if got.FacebookPostID != fb {
		t.Errorf("facebook post %q, want the adopted %q", got.FacebookPostID, fb)
	}
	if n := len(f.e.graph.Posts(f.page)); n != 1 {
		t.Errorf("page has %d posts, want 1", n)
	}
}

func TestCanceledPostIsNotPublished(t *testing.T) {
	t.Parallel()
	f := newPublishFixture(t)
	ctx := testCtx(t)
	p := f.post(t, "Changed my mind", time.Now().Add(300*time.Millisecond))
	if _, err := f.e.store.UpdatePost(ctx, p.ID, func(q *voluntree.Post) (redisstore.QueueOp, error) {
		q.Status, q.PublishAt = voluntree.PostDraft, nil
		return redisstore.QueueOp{Remove: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, f.e)
	// A later post of the same page proves the scheduler ran past the canceled one's time.
	later := f.post(t, "Still on", time.Now().Add(600*time.Millisecond))
	waitPost(t, f.e, later.ID, 10*time.Second, published)
	got, _ := f.e.store.Post(ctx, p.ID)
	if got.Status != voluntree.PostDraft {
		t.Errorf("canceled post is %s, want draft", got.Status)
	}
	if n := len(f.e.graph.Posts(f.page)); n != 1 {
		t.Errorf("page has %d posts, want 1", n)
	}
}

func facebookClient(e *testEnv) *facebook.Graph {
	g, err := facebook.NewGraph(facebook.GraphConfig{BaseURL: e.graph.URL, AppSecret: "cluster-test-secret"})
	if err != nil {
		panic(err)
	}
	return g
}

func postContent(msg string) facebook.PostContent { return facebook.PostContent{Message: msg} }
