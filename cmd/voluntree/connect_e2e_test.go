package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/voluntree/voluntree/internal/fakegraph"
	"github.com/voluntree/voluntree/internal/smtpsink"
)

// TestConnectPageEndToEnd: an organization made by the CLI verifies its email with the code
// mailed through SMTP (to the test's SMTP sink), connects a page through the Facebook Login flow of the
// fake Graph API, and publishes a post to it with the stored page token.
func TestConnectPageEndToEnd(t *testing.T) {
	g := fakegraph.New(fakegraph.Config{AppID: "e2e-app", AppSecret: e2eSecret, RequireAppSecretProof: true})
	t.Cleanup(g.Close)
	g.AddPage("777", "River page", "tok-777")
	g.SetDialogUser("user-777", "777")
	sink, err := smtpsink.Start(smtpsink.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	const prefix = "e2e-connect"
	code, out, errOut := runCLI(t, "", "admin", "create-token", "-org", "river", "-create-org", "River Friends",
		"-redis-url", redisSrv.URL(t), "-redis-prefix", prefix)
	if code != 0 {
		t.Fatalf("admin create-token: exit %d, %q %q", code, out, errOut)
	}
	e := &publishEnv{token: strings.TrimSpace(out)}
	n := startServe(t, "VOLUNTREE_REDIS_URL="+redisSrv.URL(t), "VOLUNTREE_REDIS_PREFIX="+prefix,
		"VOLUNTREE_FB_APP_SECRET="+e2eSecret, "VOLUNTREE_FB_APP_ID=e2e-app",
		"VOLUNTREE_FB_GRAPH_URL="+g.URL, "VOLUNTREE_FB_DIALOG_URL="+g.URL,
		"VOLUNTREE_SMTP_URL="+sink.URL()+"?from="+url.QueryEscape("noreply@voluntree.example"))

	status, me := e.api(t, n, "GET", "/api/v1/me", nil)
	features, _ := me["features"].(map[string]any)
	if status != 200 || features["facebook_login"] != true || features["outbox"] != false || features["email"] != true {
		t.Fatalf("GET /me: %d %v", status, me)
	}
	if status, body := e.api(t, n, "POST", "/api/v1/pages/connect", nil); status != 409 {
		t.Fatalf("connect before the email is verified: %d %v", status, body)
	}
	if status, body := e.api(t, n, "POST", "/api/v1/me/email", map[string]string{"email": "admin@river.example"}); status != 202 {
		t.Fatalf("send code: %d %v", status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := sink.Wait(ctx, 1)
	if err != nil {
		t.Fatalf("waiting for the code email: %v", err)
	}
	text, _ := msgs[0].Text()
	m := regexp.MustCompile(`code is: (\d{6})`).FindStringSubmatch(text)
	if m == nil || msgs[0].To[0] != "admin@river.example" {
		t.Fatalf("code email to %v: %q", msgs[0].To, text)
	}
	emailCode := m[1]
	if status, _ := e.api(t, n, "GET", "/api/v1/outbox", nil); status != 404 {
		t.Fatalf("outbox with SMTP: %d, want 404", status)
	}
	if status, body := e.api(t, n, "POST", "/api/v1/me/email/verify", map[string]string{"code": emailCode}); status != 200 || body["verified_at"] == nil {
		t.Fatalf("verify: %d %v", status, body)
	}

	// The browser: POST /pages/connect (keeps its cookie), the dialog, back to the callback,
	// on to the dashboard.
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	req, _ := http.NewRequest("POST", n.base+"/api/v1/pages/connect", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var start struct{ URL string }
	decodeBody(t, resp, &start)
	if resp.StatusCode != 200 || !strings.HasPrefix(start.URL, g.URL+"/v23.0/dialog/oauth?") {
		t.Fatalf("connect: %d %+v", resp.StatusCode, start)
	}
	resp, err = client.Get(start.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 303 || loc.Query().Get("facebook") != "connected" || loc.Query().Get("pages") != "1" ||
		loc.Scheme+"://"+loc.Host != n.base {
		t.Fatalf("callback: %d, Location %s\n%s", resp.StatusCode, loc, n.log())
	}
	_, pages := e.api(t, n, "GET", "/api/v1/pages", nil)
	if items, _ := pages["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != "777" {
		t.Fatalf("pages: %v", pages)
	}

	// The stored page token publishes.
	e.page = "777"
	signup := e.createSignup(t, n)
	status, post := e.api(t, n, "POST", "/api/v1/posts", map[string]any{"signup_id": signup, "page_id": "777", "message": "Volunteers wanted"})
	if status != 201 {
		t.Fatalf("create post: %d %v", status, post)
	}
	waitRedis(t, func() bool { return len(g.Posts("777")) == 1 }, "the post on the connected page")
	n.stop(t)
}

func decodeBody(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode response: %v", err)
	}
}
