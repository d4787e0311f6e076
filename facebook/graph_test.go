package facebook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/internal/fakegraph"
)

const (
	appID     = "app-1"
	appSecret = "app-secret"
	pageToken = "tok-p1"
)

// newFake starts a fake Graph API with page p1 and stops it with the test.
func newFake(t *testing.T, cfg fakegraph.Config) *fakegraph.Server {
	t.Helper()
	if cfg.AppID == "" {
		cfg.AppID, cfg.AppSecret = appID, appSecret
	}
	fg := fakegraph.New(cfg)
	t.Cleanup(fg.Close)
	fg.AddPage("p1", "Food bank", pageToken)
	return fg
}

// newGraph returns a client of baseURL with millisecond backoffs; edit adjusts the config.
func newGraph(t *testing.T, baseURL string, edit func(*facebook.GraphConfig)) *facebook.Graph {
	t.Helper()
	cfg := facebook.GraphConfig{
		BaseURL: baseURL, AppID: appID, AppSecret: appSecret,
		BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	g, err := facebook.NewGraph(cfg)
	if err != nil {
		t.Fatalf("NewGraph: %v", err)
	}
	return g
}

func asGraphError(t *testing.T, err error) *facebook.GraphError {
	t.Helper()
	var ge *facebook.GraphError
	if !errors.As(err, &ge) {
		t.Fatalf("error %v (%T) is not a *GraphError", err, err)
	}
	return ge
}

func TestNewGraphValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  facebook.GraphConfig
		ok   bool
	}{
		{"defaults", facebook.GraphConfig{}, true},
		{"version", facebook.GraphConfig{Version: "v19.0"}, true},
		{"version without v", facebook.GraphConfig{Version: "23.0"}, false},
		{"version without minor", facebook.GraphConfig{Version: "v23"}, false},
		{"version letters", facebook.GraphConfig{Version: "vX.0"}, false},
		{"version suffix", facebook.GraphConfig{Version: "v23.0/x"}, false},
		{"base URL scheme", facebook.GraphConfig{BaseURL: "ftp://graph.example"}, false},
		{"base URL relative", facebook.GraphConfig{BaseURL: "graph.example"}, false},
		{"attempts", facebook.GraphConfig{MaxAttempts: -1}, false},
		{"delays", facebook.GraphConfig{BaseDelay: time.Minute, MaxDelay: time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := facebook.NewGraph(tc.cfg)
			if tc.ok && err != nil {
				t.Fatalf("NewGraph: %v", err)
			}
			if !tc.ok && !errors.Is(err, facebook.ErrGraphConfig) {
				t.Fatalf("NewGraph = %v, want ErrGraphConfig", err)
			}
		})
	}
}

func TestPublishPostText(t *testing.T) {
	t.Parallel()
	fg := newFake(t, fakegraph.Config{})
	g := newGraph(t, fg.URL, nil)
	id, err := g.PublishPost(t.Context(), "p1", pageToken, facebook.PostContent{Message: "Volunteers wanted", Link: "https://example.org/x"})
	if err != nil {
		t.Fatalf("PublishPost: %v", err)
	}
	posts := fg.Posts("p1")
	if len(posts) != 1 || posts[0].ID != id || !strings.HasPrefix(id, "p1_") {
		t.Fatalf("id %q, posts %+v", id, posts)
	}
	if p := posts[0]; p.Message != "Volunteers wanted" || p.Link != "https://example.org/x" || p.PhotoID != "" {
		t.Fatalf("post %+v", p)
	}
	if n := len(fg.Calls()); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

func TestPublishPostInvalid(t *testing.T) {
	t.Parallel()
	fg := newFake(t, fakegraph.Config{})
	g := newGraph(t, fg.URL, nil)
	for _, p := range []facebook.PostContent{
		{},
		{Message: "x", Link: "https://example.org", PhotoURL: "https://example.org/a.jpg"},
		{Message: "x", Photo: []byte("jpg"), PhotoURL: "https://example.org/a.jpg"},
	} {
		if _, err := g.PublishPost(t.Context(), "p1", pageToken, p); !errors.Is(err, facebook.ErrInvalidPost) {
			t.Errorf("PublishPost(%+v) = %v, want ErrInvalidPost", p, err)
		}
	}
	if _, err := g.PublishPost(t.Context(), "p1", "", facebook.PostContent{Message: "x"}); !errors.Is(err, facebook.ErrInvalidArgument) {
		t.Errorf("PublishPost without token = %v, want ErrInvalidArgument", err)
	}
	if n := len(fg.Calls()); n != 0 {
		t.Fatalf("%d calls, want none", n)
	}
}

func TestPublishPostPhoto(t *testing.T) {
	t.Parallel()
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 1000)...)
	for _, tc := range []struct {
		name     string
		content  facebook.PostContent
		wantName string
		wantURL  string
	}{
		{"bytes", facebook.PostContent{Message: "Flyer", Photo: png, PhotoName: "flyer.png"}, "flyer.png", ""},
		{"bytes default name", facebook.PostContent{Message: "Flyer", Photo: png}, "photo.jpg", ""},
		{"url", facebook.PostContent{Message: "Flyer", PhotoURL: "https://cdn.example.org/f.jpg"}, "", "https://cdn.example.org/f.jpg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fg := newFake(t, fakegraph.Config{})
			g := newGraph(t, fg.URL, nil)
			id, err := g.PublishPost(t.Context(), "p1", pageToken, tc.content)
			if err != nil {
				t.Fatalf("PublishPost: %v", err)
			}
			photos, posts := fg.Photos("p1"), fg.Posts("p1")
			if len(photos) != 1 || len(posts) != 1 {
				t.Fatalf("photos %+v, posts %+v", photos, posts)
			}
			ph, post := photos[0], posts[0]
			if post.ID != id || post.PhotoID != ph.ID || post.Message != "Flyer" {
				t.Fatalf("post %+v (id %q), photo id %s", post, id, ph.ID)
			}
			if ph.Name != tc.wantName || ph.URL != tc.wantURL || (tc.wantURL == "" && !bytes.Equal(ph.Data, png)) {
				t.Fatalf("photo %q %q %d bytes", ph.Name, ph.URL, len(ph.Data))
			}
			calls := fg.Calls()
			if len(calls) != 2 || calls[0].Path != "/p1/photos" || calls[1].Path != "/p1/feed" {
				t.Fatalf("calls %+v", calls)
			}
			if calls[0].Form.Get("published") != "false" {
				t.Fatalf("photo uploaded with published=%q", calls[0].Form.Get("published"))
			}
			if got, want := calls[1].Form.Get("attached_media[0]"), `{"media_fbid":"`+ph.ID+`"}`; got != want {
				t.Fatalf("attached_media[0] = %s, want %s", got, want)
			}
		})
	}
}

func TestAppSecretProof(t *testing.T) {
	t.Parallel()
	fg := newFake(t, fakegraph.Config{AppID: appID, AppSecret: appSecret, RequireAppSecretProof: true})
	ctx := t.Context()

	if _, err := newGraph(t, fg.URL, nil).Comments(ctx, "p1_1", pageToken, "", 10); err != nil {
		t.Fatalf("Comments: %v", err)
	}
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write([]byte(pageToken))
	if got, want := fg.Calls()[0].Form.Get("appsecret_proof"), hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Fatalf("appsecret_proof = %q, want %q", got, want)
	}

	for _, tc := range []struct{ secret, want string }{
		{"wrong-secret", "Invalid appsecret_proof provided in the API argument"},
		{"", "API calls from the server require an appsecret_proof argument"},
	} {
		g := newGraph(t, fg.URL, func(c *facebook.GraphConfig) { c.AppSecret = tc.secret })
		before := fg.CountCalls("/comments")
		_, err := g.Comments(ctx, "p1_1", pageToken, "", 10)
		if ge := asGraphError(t, err); ge.Code != 100 || ge.Message != tc.want || ge.HTTPStatus != 400 {
			t.Fatalf("secret %q: %+v", tc.secret, ge)
		}
		if n := fg.CountCalls("/comments") - before; n != 1 {
			t.Fatalf("secret %q: %d calls, want 1 (not retried)", tc.secret, n)
		}
	}
}

func TestThrottledCallRetried(t *testing.T) {
	t.Parallel()
	fg := newFake(t, fakegraph.Config{})
	fg.AddComment("p1_1", fakegraph.Comment{Message: "count me in", FromID: "u1", FromName: "Ann"})
	fg.FailNext("GET /p1_1/comments", 2, fakegraph.Throttled(613))
	page, err := newGraph(t, fg.URL, nil).Comments(t.Context(), "p1_1", pageToken, "", 10)
	if err != nil {
		t.Fatalf("Comments: %v", err)
	}
	if len(page.Comments) != 1 {
		t.Fatalf("comments %+v", page.Comments)
	}
	var statuses []int
	for _, c := range fg.Calls() {
		statuses = append(statuses, c.Status)
	}
	if !slices.Equal(statuses, []int{400, 400, 200}) {
		t.Fatalf("statuses %v, want 400 400 200", statuses)
	}
}

func TestRetriesGiveUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	fg := newFake(t, fakegraph.Config{})
	fg.FailUntil("/comments", time.Now().Add(time.Hour), fakegraph.Throttled(17))
	g := newGraph(t, fg.URL, func(c *facebook.GraphConfig) { c.MaxAttempts = 3 })
	_, err := g.Comments(t.Context(), "p1_1", pageToken, "", 10)
	if ge := asGraphError(t, err); !ge.Throttled() || ge.Code != 17 || !facebook.IsRetryable(err) {
		t.Fatalf("error %v", err)
	}
	if n := fg.CountCalls("/comments"); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
}

func TestPermanentErrorNotRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code int
		msg  string
	}{
		{100, "(#100) Invalid parameter"},
		{200, "(#200) Requires pages_read_engagement permission to manage the object"},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			t.Parallel()
			fg := newFake(t, fakegraph.Config{})
			fg.FailNext("/comments", 1, fakegraph.Permanent(tc.code, tc.msg))
			_, err := newGraph(t, fg.URL, nil).Comments(t.Context(), "p1_1", pageToken, "", 10)
			ge := asGraphError(t, err)
			if ge.Code != tc.code || ge.Message != tc.msg || ge.HTTPStatus != 400 || ge.FBTraceID == "" {
				t.Fatalf("GraphError %+v", ge)
			}
			if facebook.IsRetryable(err) || ge.Throttled() {
				t.Fatalf("%v: retryable", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q lacks the message", err)
			}
			if n := fg.CountCalls("/comments"); n != 1 {
				t.Fatalf("%d calls, want 1", n)
			}
		})
	}
}

func TestPublishServerErrorNotRetried(t *testing.T) {
	t.Parallel()
	fg := newFake(t, fakegraph.Config{})
	g := newGraph(t, fg.URL, nil)
	ctx := t.Context()
	fg.FailNext("POST /p1/feed", 1, fakegraph.ServerError())
	start := time.Now()
	_, err := g.PublishPost(ctx, "p1", pageToken, facebook.PostContent{Message: "Hello", PhotoURL: "https://cdn.example.org/a.jpg"})
	if ge := asGraphError(t, err); ge.HTTPStatus != 500 || ge.Code != 2 {
		t.Fatalf("GraphError %+v", ge)
	}
	if !facebook.IsRetryable(err) {
		t.Fatalf("%v: not retryable", err)
	}
	if n := fg.CountCalls("POST /p1/feed"); n != 1 {
		t.Fatalf("%d feed calls, want 1", n)
	}
	if posts := fg.Posts("p1"); len(posts) != 0 {
		t.Fatalf("posts %+v after a failed call", posts)
	}
	// The caller checks the feed, then publishes again.
	feed, err := g.FeedSince(ctx, "p1", pageToken, start.Add(-time.Minute))
	if err != nil || len(feed) != 0 {
		t.Fatalf("FeedSince = %+v, %v", feed, err)
	}
	id, err := g.PublishPost(ctx, "p1", pageToken, facebook.PostContent{Message: "Hello", PhotoURL: "https://cdn.example.org/a.jpg"})
	if err != nil {
		t.Fatalf("PublishPost again: %v", err)
	}
	if posts := fg.Posts("p1"); len(posts) != 1 || posts[0].ID != id {
		t.Fatalf("posts %+v, id %s", posts, id)
	}
}

func TestCommentsPaging(t *testing.T) {
	t.Parallel()
	fg := newFake(t, fakegraph.Config{})
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, i := range []int{3, 0, 6, 1, 5, 2, 4} { // added out of order: Graph sorts by time
		c := fakegraph.Comment{
			ID: fmt.Sprintf("c%d", i), Message: fmt.Sprintf("comment %d", i),
			FromID: fmt.Sprintf("u%d", i), FromName: fmt.Sprintf("User %d", i),
			CreatedTime: t0.Add(time.Duration(i) * time.Minute),
		}
		switch i {
		case 3:
			c.ParentID = "c1"
		case 5:
			c.FromID, c.FromName = "", ""
		}
		fg.AddComment("p1_9", c)
	}
	g := newGraph(t, fg.URL, nil)
	ctx := t.Context()
	var got []facebook.GraphComment
	var more []bool
	after := ""
	for range 3 {
		page, err := g.Comments(ctx, "p1_9", pageToken, after, 3)
		if err != nil {
			t.Fatalf("Comments after %q: %v", after, err)
		}
		if page.After == "" {
			t.Fatalf("page without an After cursor: %+v", page)
		}
		got = append(got, page.Comments...)
		more = append(more, page.More)
		after = page.After
	}
	if !slices.Equal(more, []bool{true, true, false}) {
		t.Fatalf("More = %v", more)
	}
	if len(got) != 7 {
		t.Fatalf("%d comments, want 7", len(got))
	}
	for i, c := range got {
		if c.ID != fmt.Sprintf("c%d", i) || !c.CreatedTime.Equal(t0.Add(time.Duration(i)*time.Minute)) {
			t.Errorf("comment %d: %+v", i, c)
		}
	}
	if got[3].ParentID != "c1" || got[2].ParentID != "" {
		t.Errorf("parents: %q %q", got[3].ParentID, got[2].ParentID)
	}
	if got[5].From != nil || got[0].From == nil || *got[0].From != (facebook.GraphUser{ID: "u0", Name: "User 0"}) {
		t.Errorf("from: %+v %+v", got[5].From, got[0].From)
	}
	if n := fg.CountCalls("GET /p1_9/comments"); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}

	// The last page's cursor gives the comments made since.
	fg.AddComment("p1_9", fakegraph.Comment{ID: "c7", Message: "late", FromID: "u7", CreatedTime: t0.Add(time.Hour)})
	page, err := g.Comments(ctx, "p1_9", pageToken, after, 3)
	if err != nil || len(page.Comments) != 1 || page.Comments[0].ID != "c7" || page.More {
		t.Fatalf("Comments since the last cursor = %+v, %v", page, err)
	}
}

func TestFeedSince(t *testing.T) {
	t.Parallel()
	fg := newFake(t, fakegraph.Config{MaxPageSize: 2}) // 5 posts: 3 pages
	g := newGraph(t, fg.URL, nil)
	ctx := t.Context()
	start := time.Now()
	var ids []string
	for i := range 5 {
		id, err := g.PublishPost(ctx, "p1", pageToken, facebook.PostContent{Message: fmt.Sprintf("post %d", i)})
		if err != nil {
			t.Fatalf("PublishPost: %v", err)
		}
		ids = append(ids, id)
	}
	feed, err := g.FeedSince(ctx, "p1", pageToken, start.Add(-time.Second))
	if err != nil {
		t.Fatalf("FeedSince: %v", err)
	}
	var got []string
	for _, p := range feed {
		got = append(got, p.ID)
		if p.CreatedTime.Before(start.Truncate(time.Second)) || p.Message == "" {
			t.Errorf("post %+v", p)
		}
	}
	slices.Reverse(ids)
	if !slices.Equal(got, ids) {
		t.Fatalf("FeedSince = %v, want newest first %v", got, ids)
	}
	if n := fg.CountCalls("GET /p1/feed"); n != 3 {
		t.Fatalf("%d feed calls, want 3", n)
	}
	if feed, err := g.FeedSince(ctx, "p1", pageToken, time.Now().Add(time.Hour)); err != nil || len(feed) != 0 {
		t.Fatalf("FeedSince(future) = %+v, %v", feed, err)
	}
}

func TestFeedSinceStopsAfterTenPages(t *testing.T) {
	t.Parallel()
	fg := newFake(t, fakegraph.Config{MaxPageSize: 1})
	g := newGraph(t, fg.URL, nil)
	for i := range 12 {
		if _, err := g.PublishPost(t.Context(), "p1", pageToken, facebook.PostContent{Message: fmt.Sprint(i)}); err != nil {
			t.Fatalf("PublishPost: %v", err)
		}
	}
	feed, err := g.FeedSince(t.Context(), "p1", pageToken, time.Time{})
	if err != nil || len(feed) != 10 {
		t.Fatalf("FeedSince = %d posts, %v; want 10", len(feed), err)
	}
}

func TestLoginDialogURL(t *testing.T) {
	t.Parallel()
	g := newGraph(t, "https://graph.example", nil)
	raw := g.LoginDialogURL("https://voluntree.example/fb/callback", "st4te", []string{"pages_manage_posts", "pages_read_engagement"})
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	if u.Scheme != "https" || u.Host != "www.facebook.com" || u.Path != "/v23.0/dialog/oauth" {
		t.Fatalf("URL %s", raw)
	}
	want := url.Values{
		"client_id": {appID}, "redirect_uri": {"https://voluntree.example/fb/callback"}, "state": {"st4te"},
		"scope": {"pages_manage_posts,pages_read_engagement"}, "response_type": {"code"},
	}
	if got := u.Query(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("query %v, want %v", got, want)
	}
}

func TestConnectPage(t *testing.T) {
	t.Parallel()
	fg := newFake(t, fakegraph.Config{AppID: appID, AppSecret: appSecret, MaxPageSize: 1})
	fg.AddPage("p2", "Shelter", "tok-p2")
	fg.AddUser("code-1", "user-tok", "p1", "p2")
	g := newGraph(t, fg.URL, nil)
	ctx := t.Context()
	const redirect = "https://voluntree.example/fb/callback"

	before := time.Now()
	tok, err := g.ExchangeCode(ctx, "code-1", redirect)
	if err != nil {
		t.Fatalf("ExchangeCode: %v", err)
	}
	exp := fakegraph.ShortUserTokenExpiresIn * time.Second
	if tok.AccessToken != "user-tok" || tok.ExpiresAt.Before(before.Add(exp)) || tok.ExpiresAt.After(time.Now().Add(exp)) {
		t.Fatalf("token %+v", tok)
	}
	form := fg.Calls()[0].Form
	if form.Get("client_id") != appID || form.Get("client_secret") != appSecret || form.Get("redirect_uri") != redirect {
		t.Fatalf("exchange form %v", form)
	}
	_, err = g.ExchangeCode(ctx, "code-1", redirect)
	if ge := asGraphError(t, err); ge.Message != "This authorization code has been used." || facebook.IsRetryable(err) {
		t.Fatalf("second exchange: %v", err)
	}

	long, err := g.LongLivedToken(ctx, tok.AccessToken)
	if err != nil {
		t.Fatalf("LongLivedToken: %v", err)
	}
	if exp := fakegraph.UserTokenExpiresIn * time.Second; long.AccessToken != "ll-user-tok" || long.ExpiresAt.Before(before.Add(exp)) {
		t.Fatalf("long-lived token %+v", long)
	}
	if form := fg.Calls()[2].Form; form.Get("grant_type") != "fb_exchange_token" || form.Get("fb_exchange_token") != "user-tok" || form.Get("client_secret") != appSecret {
		t.Fatalf("long-lived exchange form %v", form)
	}
	if _, err := g.LongLivedToken(ctx, "tok-p2"); asGraphError(t, err).Code != 190 {
		t.Fatalf("a page token exchanged as a user token: %v", err)
	}

	accounts, err := g.Accounts(ctx, long.AccessToken)
	if err != nil {
		t.Fatalf("Accounts: %v", err)
	}
	want := []facebook.PageAccount{
		{ID: "p1", Name: "Food bank", AccessToken: pageToken, Tasks: []string{"MANAGE", "CREATE_CONTENT", "MODERATE"}},
		{ID: "p2", Name: "Shelter", AccessToken: "tok-p2", Tasks: []string{"MANAGE", "CREATE_CONTENT", "MODERATE"}},
	}
	if fmt.Sprint(accounts) != fmt.Sprint(want) {
		t.Fatalf("accounts %+v, want %+v", accounts, want)
	}
	if n := fg.CountCalls("GET /me/accounts"); n != 2 {
		t.Fatalf("%d accounts calls, want 2 (one per page)", n)
	}

	if err := g.SubscribeApp(ctx, "p2", "tok-p2", nil); err != nil {
		t.Fatalf("SubscribeApp: %v", err)
	}
	if got := fg.Subscriptions("p2"); !slices.Equal(got, facebook.DefaultSubscribedFields()) {
		t.Fatalf("subscriptions %v", got)
	}
	err = g.SubscribeApp(ctx, "p2", tok.AccessToken, nil) // a user token is not a page token
	if ge := asGraphError(t, err); ge.Code != 190 {
		t.Fatalf("SubscribeApp with a user token: %v", err)
	}
}

func TestCancelStopsRetries(t *testing.T) {
	t.Parallel()
	fg := newFake(t, fakegraph.Config{})
	fg.FailUntil("/comments", time.Now().Add(time.Hour), fakegraph.ServerError())
	g := newGraph(t, fg.URL, func(c *facebook.GraphConfig) { c.BaseDelay, c.MaxDelay = time.Hour, time.Hour })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := g.Comments(ctx, "p1_1", pageToken, "", 10)
		done <- err
	}()
	if err := fg.WaitCalls(t.Context(), "/comments", 1); err != nil {
		t.Fatal(err)
	}
	cancel() // while the first answer is read, or during the hour-long backoff
	err := <-done
	if !errors.Is(err, context.Canceled) || facebook.IsRetryable(err) {
		t.Fatalf("error %v: want context.Canceled, not retryable", err)
	}
	if n := fg.CountCalls("/comments"); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

func TestDeadlineIsRetryable(t *testing.T) {
	t.Parallel()
	fg := newFake(t, fakegraph.Config{})
	fg.FailUntil("/comments", time.Now().Add(time.Hour), fakegraph.ServerError())
	g := newGraph(t, fg.URL, func(c *facebook.GraphConfig) { c.BaseDelay, c.MaxDelay = time.Hour, time.Hour })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := g.Comments(ctx, "p1_1", pageToken, "", 10)
	if !errors.Is(err, context.DeadlineExceeded) || !facebook.IsRetryable(err) {
		t.Fatalf("error %v: want DeadlineExceeded, retryable (the attempt timed out)", err)
	}
}

func TestNetworkTimeoutRetryableAndRedacted(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		<-r.Context().Done() // never answers; returns when the client gives up
	}))
	t.Cleanup(srv.Close)
	g := newGraph(t, srv.URL, func(c *facebook.GraphConfig) {
		c.HTTPClient = &http.Client{Timeout: 50 * time.Millisecond}
		c.MaxAttempts = 2
	})
	_, err := g.Comments(t.Context(), "p1_1", "secret-page-token", "", 10)
	if err == nil || !facebook.IsRetryable(err) {
		t.Fatalf("error %v: want a retryable timeout", err)
	}
	if msg := err.Error(); strings.Contains(msg, "secret-page-token") || strings.Contains(msg, "appsecret_proof") {
		t.Fatalf("error leaks the query: %s", msg)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 2", n)
	}
	if _, err := g.ExchangeCode(t.Context(), "the-code", "https://x.example/cb"); err == nil || strings.Contains(err.Error(), appSecret) || strings.Contains(err.Error(), "the-code") {
		t.Fatalf("ExchangeCode error leaks the query: %v", err)
	}
}

func TestOddResponses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		calls     int32 // with MaxAttempts 3
		graph     bool  // a *GraphError
		retryable bool
		check     func(*testing.T, error)
	}{
		{name: "HTML 502", status: 502, body: "<html><body>\n  Bad   Gateway</body></html>", calls: 3, graph: true, retryable: true,
			check: func(t *testing.T, err error) {
				if ge := asGraphError(t, err); ge.Code != 0 || ge.HTTPStatus != 502 || !strings.Contains(ge.Message, "Bad Gateway") {
					t.Errorf("GraphError %+v", ge)
				}
			}},
		{name: "2xx not JSON", status: 200, body: "surprise", calls: 1,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, facebook.ErrUnexpectedResponse) {
					t.Errorf("error %v, want ErrUnexpectedResponse", err)
				}
			}},
		{name: "2xx error body", status: 200, body: `{"error":{"message":"(#100) nope","type":"OAuthException","code":100}}`, calls: 1, graph: true},
		{name: "too large", status: 200, body: `{"data":[],"x":"` + strings.Repeat("a", facebook.MaxResponseBytes) + `"}`, calls: 1,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, facebook.ErrUnexpectedResponse) {
					t.Errorf("error %v, want ErrUnexpectedResponse", err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			g := newGraph(t, srv.URL, func(c *facebook.GraphConfig) { c.MaxAttempts = 3 })
			_, err := g.Comments(t.Context(), "p1_1", pageToken, "", 10)
			if err == nil {
				t.Fatal("no error")
			}
			var ge *facebook.GraphError
			if errors.As(err, &ge) != tc.graph || facebook.IsRetryable(err) != tc.retryable {
				t.Fatalf("error %v (%T): want GraphError %v, retryable %v", err, err, tc.graph, tc.retryable)
			}
			if n := calls.Load(); n != tc.calls {
				t.Fatalf("%d calls, want %d", n, tc.calls)
			}
			if tc.check != nil {
				tc.check(t, err)
			}
		})
	}
}

func TestGraphErrorRetryable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		e                    facebook.GraphError
		retryable, throttled bool
	}{
		{facebook.GraphError{HTTPStatus: 500, Code: 2}, true, false},
		{facebook.GraphError{HTTPStatus: 503}, true, false},
		{facebook.GraphError{HTTPStatus: 400, Code: 1}, true, false},
		{facebook.GraphError{HTTPStatus: 400, Code: 341}, true, false},
		{facebook.GraphError{HTTPStatus: 400, Code: 4}, true, true},
		{facebook.GraphError{HTTPStatus: 400, Code: 17}, true, true},
		{facebook.GraphError{HTTPStatus: 400, Code: 32}, true, true},
		{facebook.GraphError{HTTPStatus: 400, Code: 613}, true, true},
		{facebook.GraphError{HTTPStatus: 400, Code: 100}, false, false},
		{facebook.GraphError{HTTPStatus: 400, Code: 190}, false, false},
		{facebook.GraphError{HTTPStatus: 400, Code: 10, Subcode: 2534022}, false, false},
	} {
		if tc.e.Retryable() != tc.retryable || tc.e.Throttled() != tc.throttled {
			t.Errorf("%+v: Retryable %v Throttled %v", tc.e, tc.e.Retryable(), tc.e.Throttled())
		}
		if facebook.IsRetryable(fmt.Errorf("wrapped: %w", &tc.e)) != tc.retryable {
			t.Errorf("%+v: IsRetryable of the wrapped error differs", tc.e)
		}
	}
	if facebook.IsRetryable(nil) || facebook.IsRetryable(errors.New("x")) || facebook.IsRetryable(context.Canceled) {
		t.Error("nil, plain or canceled error is retryable")
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	const base, maxDelay = 100 * time.Millisecond, time.Second
	zero := func() float64 { return 0 }
	almostOne := func() float64 { return math.Nextafter(1, 0) }
	half := func() float64 { return 0.5 }
	for _, tc := range []struct {
		attempt int
		rnd     func() float64
		want    time.Duration
	}{
		{0, zero, 50 * time.Millisecond},
		{0, half, 75 * time.Millisecond},
		{1, zero, 100 * time.Millisecond},
		{3, zero, 400 * time.Millisecond},
		{3, almostOne, 800 * time.Millisecond},
		{4, zero, 500 * time.Millisecond}, // 1.6 s capped at 1 s
		{4, almostOne, time.Second},
		{math.MaxInt, half, 750 * time.Millisecond},
	} {
		got := facebook.Backoff(tc.attempt, base, maxDelay, tc.rnd)
		if d := got - tc.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("Backoff(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
	for attempt := range 80 {
		d := min(maxDelay, base<<min(attempt, 20))
		for range 20 {
			if got := facebook.Backoff(attempt, base, maxDelay, nil); got < d/2 || got > d {
				t.Fatalf("Backoff(%d) = %v, outside [%v, %v]", attempt, got, d/2, d)
			}
		}
	}
	if got := facebook.Backoff(3, 0, maxDelay, half); got != 0 {
		t.Errorf("Backoff with no base = %v", got)
	}
}

func ExampleGraph_PublishPost() {
	fg := fakegraph.New(fakegraph.Config{AppID: "app", AppSecret: "secret"})
	defer fg.Close()
	fg.AddPage("1234", "Food bank", "page-token")

	g, err := facebook.NewGraph(facebook.GraphConfig{BaseURL: fg.URL, AppID: "app", AppSecret: "secret"})
	if err != nil {
		fmt.Println(err)
		return
	}
	id, err := g.PublishPost(context.Background(), "1234", "page-token", facebook.PostContent{Message: "Volunteers wanted on Saturday"})
	if facebook.IsRetryable(err) {
		fmt.Println("retry later; it may have been published:", err)
		return
	}
	fmt.Println(id, err)
	// Output: 1234_1 <nil>
}
