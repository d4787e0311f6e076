package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/redisstore"
)

const e2eSecret = "e2e-app-secret"

// pipelineNode starts serve on the package's Redis with its own key prefix and a webhook
// secret, and returns it with a client for checking what landed in Redis.
func pipelineNode(t testing.TB, prefix string, extra ...string) (*node, redis.UniversalClient, redisstore.Keys) {
	t.Helper()
	rdb, _ := redisSrv.Client(t)
	env := append([]string{"VOLUNTREE_REDIS_URL=" + redisSrv.URL(t), "VOLUNTREE_REDIS_PREFIX=" + prefix,
		"VOLUNTREE_FB_APP_SECRET=" + e2eSecret, "VOLUNTREE_FB_VERIFY_TOKEN=e2e-verify"}, extra...)
	n := startServe(t, env...)
	return n, rdb, redisstore.NewKeys(prefix)
}

func (n *node) webhook(t *testing.T, body []byte, signature string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.base+"/webhooks/facebook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set(facebook.SignatureHeader, signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func signed(t *testing.T, p any) ([]byte, string) {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b, facebook.Sign([]byte(e2eSecret), b)
}

// orgWithPages creates organization org under prefix with the CLI, connects pages to it (the
// CLI's add-page) and returns an admin API token of it.
func orgWithPages(t *testing.T, prefix, org string, pages ...string) string {
	t.Helper()
	flags := []string{"-redis-url", redisSrv.URL(t), "-redis-prefix", prefix}
	code, out, errOut := runCLI(t, "", append([]string{"admin", "create-token", "-org", org, "-create-org", "Org " + org}, flags...)...)
	if code != 0 || !strings.HasPrefix(out, "vt_") {
		t.Fatalf("admin create-token: exit %d, %q %q", code, out, errOut)
	}
	for _, p := range pages {
		code, out, errOut := runCLI(t, "", append([]string{"admin", "add-page", "-org", org, "-page", p}, flags...)...)
		if code != 0 || !strings.Contains(out, "connected") {
			t.Fatalf("admin add-page %s: exit %d, %q %q", p, code, out, errOut)
		}
	}
	return strings.TrimSpace(out)
}

// feedTicket buys a live-feed ticket with an admin API token.
func feedTicket(t *testing.T, n *node, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.base+"/api/v1/ws-tickets", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Ticket string `json:"ticket"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Ticket == "" {
		t.Fatalf("POST /api/v1/ws-tickets: %d %+v %v", resp.StatusCode, out, err)
	}
	return out.Ticket
}

// wsClient collects the events of one /ws/signups connection.
type wsClient struct {
	conn   *websocket.Conn
	mu     sync.Mutex
	events []map[string]any
	ready  chan map[string]any
	closed chan struct{}
}

// dialEvents opens the live feed of the token's organization; query adds parameters ("&since=…").
func dialEvents(t *testing.T, n *node, token, query string) *wsClient {
	t.Helper()
	url := "ws" + strings.TrimPrefix(n.base, "http") + "/ws/signups?ticket=" + feedTicket(t, n, token) + query
	conn, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	c := &wsClient{conn: conn, ready: make(chan map[string]any, 1), closed: make(chan struct{})}
	go func() {
		defer close(c.closed)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var frame map[string]any
			if json.Unmarshal(data, &frame) != nil {
				continue
			}
			switch frame["type"] {
			case "ready":
				c.ready <- frame
			case "interest":
				c.mu.Lock()
				c.events = append(c.events, frame)
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { conn.Close() })
	select {
	case <-c.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("no ready frame within 10s")
	}
	return c
}

// waitFor returns the events once cond holds for them, failing after the deadline.
func (c *wsClient) waitFor(t *testing.T, d time.Duration, what string, cond func([]map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		evs := append([]map[string]any(nil), c.events...)
		c.mu.Unlock()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: have %d events", what, len(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func messageID(ev map[string]any) string {
	in, _ := ev["interest"].(map[string]any)
	id, _ := in["id"].(string)
	return id
}

func hasIDs(ids ...string) func([]map[string]any) bool {
	return func(evs []map[string]any) bool {
		seen := map[string]bool{}
		for _, ev := range evs {
			seen[messageID(ev)] = true
		}
		for _, id := range ids {
			if !seen[id] {
				return false
			}
		}
		return true
	}
}

func TestWebhookToWebSocket(t *testing.T) {
	token := orgWithPages(t, "e2e-flow", "flow", "p1", "p2")
	n, rdb, keys := pipelineNode(t, "e2e-flow")
	ctx := context.Background()

	// The subscription handshake.
	status, body := n.get(t, "/webhooks/facebook?hub.mode=subscribe&hub.verify_token=e2e-verify&hub.challenge=12345")
	if status != 200 || string(body) != "12345" {
		t.Fatalf("verify: %d %q", status, body)
	}
	if status, _ := n.get(t, "/webhooks/facebook?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"); status != 403 {
		t.Fatalf("verify with a wrong token: %d, want 403", status)
	}

	ws := dialEvents(t, n, token, "")
	now := time.Now().Unix()
	// Meta's shapes: two entries (two pages) in one call, feed comments and Messenger events.
	payload := map[string]any{"object": "page", "entry": []any{
		map[string]any{"id": "p1", "time": now, "changes": []any{
			map[string]any{"field": "feed", "value": map[string]any{"item": "comment", "verb": "add",
				"comment_id": "p1_10_1", "post_id": "p1_10", "parent_id": "p1_10",
				"from": map[string]any{"id": "u1", "name": "Ada"}, "message": "Sign me up for Saturday morning!", "created_time": now}},
			map[string]any{"field": "feed", "value": map[string]any{"item": "comment", "verb": "add",
				"comment_id": "p1_10_2", "post_id": "p1_10", "parent_id": "p1_10",
				"from": map[string]any{"id": "u2", "name": "Bo"}, "message": "What time does it start?", "created_time": now}},
			map[string]any{"field": "feed", "value": map[string]any{"item": "reaction", "verb": "add", "post_id": "p1_10"}},
		}},
		map[string]any{"id": "p2", "time": now, "changes": []any{
			map[string]any{"field": "feed", "value": map[string]any{"item": "comment", "verb": "add",
				"comment_id": "p2_20_1", "post_id": "p2_20", "parent_id": "p2_20",
				"from": map[string]any{"id": "u3", "name": "Cy"}, "message": "Count me in, I'd love to help!", "created_time": now}},
			map[string]any{"field": "feed", "value": map[string]any{"item": "comment", "verb": "add",
				"comment_id": "p2_20_2", "post_id": "p2_20", "parent_id": "p2_20",
				"from": map[string]any{"id": "u4", "name": "Di"}, "message": "Sorry, I can't make it", "created_time": now}},
		}, "messaging": []any{
			map[string]any{"sender": map[string]any{"id": "u3"}, "recipient": map[string]any{"id": "p2"}, "timestamp": now * 1000,
				"message": map[string]any{"mid": "m.p2.1", "text": "I want to volunteer too, sign me up"}},
			map[string]any{"sender": map[string]any{"id": "p2"}, "recipient": map[string]any{"id": "u3"}, "timestamp": now * 1000,
				"message": map[string]any{"mid": "m.p2.echo", "text": "Thanks! Sign up here", "is_echo": true}},
		}},
	}}
	b, sig := signed(t, payload)
	status, out := n.webhook(t, b, sig)
	if status != 200 || out["accepted"] != float64(5) {
		t.Fatalf("webhook: %d %v, want 200 with 5 accepted", status, out)
	}
	evs := ws.waitFor(t, 10*time.Second, "three signups", hasIDs("p1_10_1", "p2_20_1", "m.p2.1"))
	for _, ev := range evs {
		in := ev["interest"].(map[string]any)
		if in["intent"] != "interested" || ev["id"] == "" {
			t.Errorf("event %v", ev)
		}
	}
	byID := map[string]map[string]any{}
	for _, ev := range evs {
		byID[messageID(ev)] = ev["interest"].(map[string]any)
	}
	if byID["m.p2.1"]["post_id"] != "p2_20" || byID["p1_10_1"]["sender_name"] != "Ada" {
		t.Errorf("Messenger signup not attributed to the sender's post, or names lost: %v", byID)
	}
	// The other intents are counted per post, without events.
	waitRedis(t, func() bool {
		q, _ := rdb.HGet(ctx, keys.PostIntents("flow", "p1_10"), "question").Int()
		d, _ := rdb.HGet(ctx, keys.PostIntents("flow", "p2_20"), "decline").Int()
		return q == 1 && d == 1
	}, "question and decline counted")

	// Redelivery: the same call twice more changes nothing.
	for range 2 {
		status, out = n.webhook(t, b, sig)
		if status != 200 || out["accepted"] != float64(0) || out["duplicates"] != float64(5) {
			t.Fatalf("redelivery: %d %v", status, out)
		}
	}
	// A sentinel after the redeliveries: once it arrives, any duplicate would have too.
	sb, ssig := signed(t, facebook.CommentPayload("p1", facebook.ChangeValue{CommentID: "p1_10_9", PostID: "p1_10",
		From: &facebook.User{ID: "u9", Name: "Ed"}, Message: "Count me in!", CreatedTime: now}))
	if status, out := n.webhook(t, sb, ssig); status != 200 {
		t.Fatalf("sentinel: %d %v", status, out)
	}
	evs = ws.waitFor(t, 10*time.Second, "the sentinel", hasIDs("p1_10_9"))
	if len(evs) != 4 {
		t.Fatalf("got %d events, want 4 (3 signups + sentinel, no duplicates): %v", len(evs), evs)
	}

	// Rejected calls enqueue nothing.
	before, _ := rdb.XLen(ctx, keys.Ingest()).Result()
	for _, tc := range []struct {
		name   string
		body   []byte
		sig    string
		status int
	}{
		{"no signature", b, "", 401},
		{"wrong signature", b, facebook.Sign([]byte("other secret"), b), 403},
		{"tampered body", append(bytes.Clone(b[:len(b)-1]), ' '), sig, 403},
		{"malformed", []byte(`{"object":"page","entry":[`), facebook.Sign([]byte(e2eSecret), []byte(`{"object":"page","entry":[`)), 400},
		{"not a page", []byte(`{"object":"user","entry":[]}`), facebook.Sign([]byte(e2eSecret), []byte(`{"object":"user","entry":[]}`)), 400},
	} {
		status, out := n.webhook(t, tc.body, tc.sig)
		if status != tc.status || out["error"] == nil {
			t.Errorf("%s: %d %v, want %d with an error", tc.name, status, out, tc.status)
		}
	}
	// A body over 1 MiB is refused on its Content-Length, before it is sent.
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /webhooks/facebook HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1<<20+1)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 413 {
		t.Errorf("oversize: %v %v, want 413 before the body", resp, err)
	}
	conn.Close()
	if after, _ := rdb.XLen(ctx, keys.Ingest()).Result(); after != before {
		t.Fatalf("rejected calls changed the ingest stream: %d -> %d", before, after)
	}

	status, metricsText := n.get(t, "/metrics")
	if status != 200 {
		t.Fatalf("metrics %d", status)
	}
	for _, name := range []string{
		`voluntree_webhook_events_total{kind="comment"} 5`, `voluntree_webhook_events_total{kind="message"} 1`,
		`voluntree_webhook_duplicates_total 10`, `voluntree_webhook_rejected_total{reason="bad_signature"} 2`,
		`voluntree_pipeline_signups_total 4`, `voluntree_pipeline_messages_total{intent="question"} 1`,
		"voluntree_pipeline_end_to_end_seconds_bucket", "voluntree_ingest_stream_length", "voluntree_ingest_consumer_lag",
		"voluntree_ingest_pending", "voluntree_ws_clients 1", "voluntree_grain_request_duration_seconds_bucket",
	} {
		if !bytes.Contains(metricsText, []byte(name)) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	promtoolCheck(t, metricsText)
	n.stop(t)
}

func waitRedis(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKilledNodeLosesNothing kills serve with SIGKILL while comments are in flight, starts
// it again, and checks that every acknowledged comment became exactly one signup and one
// event: the restarted node re-reads what the dead one read but never acknowledged.
func TestKilledNodeLosesNothing(t *testing.T) {
	const total = 300
	token := orgWithPages(t, "e2e-kill", "kill", "k")
	n, rdb, keys := pipelineNode(t, "e2e-kill")
	ws := dialEvents(t, n, token, "")
	var acked []string
	send := func(n *node, i int) bool {
		id := fmt.Sprintf("k_1_%d", i)
		b, sig := signed(t, facebook.CommentPayload("k", facebook.ChangeValue{CommentID: id, PostID: "k_1",
			From: &facebook.User{ID: fmt.Sprintf("u%d", i%50), Name: "Vol"}, Message: "Sign me up for Saturday morning!",
			CreatedTime: time.Now().Unix()}))
		req, _ := http.NewRequest(http.MethodPost, n.base+"/webhooks/facebook", bytes.NewReader(b))
		req.Header.Set(facebook.SignatureHeader, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false // the node is gone: this one was never acknowledged
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			acked = append(acked, id)
		}
		return resp.StatusCode == 200
	}
	i := 0
	for ; i < total/2; i++ {
		send(n, i)
	}
	ws.waitFor(t, 10*time.Second, "some events", func(evs []map[string]any) bool { return len(evs) >= 20 })
	n.cmd.Process.Kill() // SIGKILL: no shutdown, no acknowledgement of the batch in hand
	<-n.exited
	ws.conn.Close()
	<-ws.closed
	ws.mu.Lock()
	first := append([]map[string]any(nil), ws.events...)
	ws.mu.Unlock()
	last := first[len(first)-1]["id"].(string)

	n2 := startServe(t, "VOLUNTREE_REDIS_URL="+redisSrv.URL(t), "VOLUNTREE_REDIS_PREFIX=e2e-kill",
		"VOLUNTREE_FB_APP_SECRET="+e2eSecret)
	ws2 := dialEvents(t, n2, token, "&since="+last)
	for ; i < total; i++ {
		send(n2, i)
	}
	second := ws2.waitFor(t, 20*time.Second, "every acknowledged comment", func(evs []map[string]any) bool {
		return len(first)+len(evs) >= len(acked)
	})
	seen := map[string]int{}
	for _, ev := range append(first, second...) {
		seen[messageID(ev)]++
	}
	for _, id := range acked {
		if seen[id] != 1 {
			t.Errorf("comment %s: %d events, want exactly 1", id, seen[id])
		}
	}
	if len(seen) != len(acked) {
		t.Errorf("%d distinct events for %d acknowledged comments", len(seen), len(acked))
	}
	if n, _ := rdb.ZCard(context.Background(), keys.PostInterests("kill", "k_1")).Result(); n != int64(len(acked)) {
		t.Errorf("%d interests stored for %d acknowledged comments", n, len(acked))
	}
	n2.stop(t)
}

// TestPageListsSignupsInABrowser posts a comment through the demo channel and reads the first
// page's DOM in headless Chromium, opened with the demo organization's token: the signup is
// listed (replayed over the WebSocket, with a ticket the page bought) and the connection
// reached the live state. Without a token the page says how to get one.
func TestPageListsSignupsInABrowser(t *testing.T) {
	browser := requireChromium(t)
	n, _, _ := pipelineNode(t, "e2e-page", "VOLUNTREE_DEMO=on")
	code, out, errOut := runCLI(t, "", "admin", "create-token", "-org", "demo", "-redis-url", redisSrv.URL(t), "-redis-prefix", "e2e-page")
	if code != 0 {
		t.Fatalf("admin create-token: exit %d, %q %q", code, out, errOut)
	}
	token := strings.TrimSpace(out)
	ws := dialEvents(t, n, token, "")
	status, posted := n.post(t, "/api/v1/demo/comments", `{"name":"Ada Lovelace","text":"Count me in for Saturday!"}`)
	if status != 202 {
		t.Fatalf("demo comment: %d %v", status, posted)
	}
	id := posted["message_id"].(string)
	ws.waitFor(t, 10*time.Second, "the demo signup", hasIDs(id))

	dom := renderedDOM(t, browser, n.base+"/#token="+token)
	for _, want := range []string{`data-message-id="` + id + `"`, "Ada Lovelace", "Count me in for Saturday!",
		`id="conn-status"`, `data-state="live"`, `id="demo-form"`} {
		if !bytes.Contains(dom, []byte(want)) {
			t.Errorf("rendered page lacks %s", want)
		}
	}
	// Without a token: no feed, and the ways to sign in.
	dom = renderedDOM(t, browser, n.base+"/")
	if bytes.Contains(dom, []byte(`data-message-id="`+id+`"`)) {
		t.Error("the page shows signups without a token")
	}
	for _, want := range []string{`data-state="signed-out"`, "voluntree admin login-link -org demo", "voluntree admin create-token -org demo"} {
		if !bytes.Contains(dom, []byte(want)) {
			t.Errorf("the page without a token lacks %s", want)
		}
	}
	// A one-time sign-in link: the browser posts it, gets its session cookie, and the page
	// runs on the session (its feed ticket bought with the session's CSRF token).
	code, out, errOut = runCLI(t, "", "admin", "login-link", "-org", "demo", "-public-url", n.base,
		"-redis-url", redisSrv.URL(t), "-redis-prefix", "e2e-page")
	if code != 0 || !strings.HasPrefix(out, n.base+"/auth/link?token=vl_") {
		t.Fatalf("admin login-link: exit %d, %q %q", code, out, errOut)
	}
	dom = renderedDOM(t, browser, strings.TrimSpace(out))
	for _, want := range []string{`data-message-id="` + id + `"`, `data-state="live"`, "signed in as Demo owner (owner)", ">sign out<"} {
		if !bytes.Contains(dom, []byte(want)) {
			t.Errorf("the page signed in with a link lacks %s", want)
		}
	}
	n.stop(t)
}
