package main

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/voluntree/voluntree/internal/fakegraph"
)

// TestConnectPageEndToEnd: an organization made by the CLI verifies its email with the code
// from the outbox (serve without SMTP), connects a page through the Facebook Login flow of the
// fake Graph API, and publishes a post to it with the stored page token.
func TestConnectPageEndToEnd(t *testing.T) {
	g := fakegraph.New(fakegraph.Config{AppID: "e2e-app", AppSecret: e2eSecret, RequireAppSecretProof: true})
	t.Cleanup(g.Close)
	g.AddPage("777", "River page", "tok-777")
	g.SetDialogUser("user-777", "777")
	const prefix = "e2e-connect"
	code, out, errOut := runCLI(t, "", "admin", "create-token", "-org", "river", "-create-org", "River Friends",
		"-redis-url", redisSrv.URL(t), "-redis-prefix", prefix)
	if code != 0 {
		t.Fatalf("admin create-token: exit %d, %q %q", code, out, errOut)
	}
	e := &publishEnv{token: strings.TrimSpace(out)}
	n := startServe(t, "VOLUNTREE_REDIS_URL="+redisSrv.URL(t), "VOLUNTREE_REDIS_PREFIX="+prefix,
		"VOLUNTREE_FB_APP_SECRET="+e2eSecret, "VOLUNTREE_FB_APP_ID=e2e-app",
		"VOLUNTREE_FB_GRAPH_URL="+g.URL, "VOLUNTREE_FB_DIALOG_URL="+g.URL)

	status, me := e.api(t, n, "GET", "/api/v1/me", nil)
	features, _ := me["features"].(map[string]any)
	if status != 200 || features["facebook_login"] != true || features["outbox"] != true || features["email"] != true {
		t.Fatalf("GET /me: %d %v", status, me)
	}
	if status, body := e.api(t, n, "POST", "/api/v1/pages/connect", nil); status != 409 {
		t.Fatalf("connect before the email is verified: %d %v", status, body)
	}
	if status, body := e.api(t, n, "POST", "/api/v1/me/email", map[string]string{"email": "admin@river.example"}); status != 202 {
		t.Fatalf("send code: %d %v", status, body)
	}
	var emailCode string
	codeRE := regexp.MustCompile(`code is: (\d{6})`)
	waitRedis(t, func() bool {
		_, box := e.api(t, n, "GET", "/api/v1/outbox", nil)
		items, _ := box["items"].([]any)
		if len(items) == 0 {
			return false
		}
		m := items[0].(map[string]any)
		if got := codeRE.FindStringSubmatch(m["text"].(string)); got != nil && m["to"] == "admin@river.example" {
			emailCode = got[1]
		}
		return emailCode != ""
	}, "the code in the outbox")
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
