package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// chatClient is a web chat socket.
type chatClient struct {
	t      *testing.T
	c      *websocket.Conn
	frames chan map[string]any
	closed chan error
	seen   []map[string]any
}

func dialChat(t *testing.T, n *node, token, since string) (*chatClient, error) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(n.base, "http") + "/ws/chat?token=" + token + "&since=" + since
	c, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		return nil, err
	}
	cc := &chatClient{t: t, c: c, frames: make(chan map[string]any, 256), closed: make(chan error, 1)}
	go func() {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				cc.closed <- err
				close(cc.frames)
				return
			}
			var f map[string]any
			if json.Unmarshal(b, &f) == nil {
				cc.frames <- f
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return cc, nil
}

func (cc *chatClient) send(frame map[string]string) {
	cc.t.Helper()
	b, _ := json.Marshal(frame)
	if err := cc.c.WriteMessage(websocket.TextMessage, b); err != nil {
		cc.t.Fatal(err)
	}
}

// await returns the next frame from the bot whose text contains s.
func (cc *chatClient) await(s string) map[string]any {
	cc.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case f, ok := <-cc.frames:
			if !ok {
				cc.t.Fatalf("socket closed waiting for %q: %v", s, <-cc.closed)
			}
			cc.seen = append(cc.seen, f)
			if f["from"] != "volunteer" && strings.Contains(f["text"].(string), s) {
				return f
			}
		case <-timeout:
			var got []string
			for _, f := range cc.seen {
				got = append(got, f["from"].(string)+": "+f["text"].(string))
			}
			cc.t.Fatalf("no frame containing %q; got %q", s, got)
		}
	}
}

func optionPayload(t *testing.T, f map[string]any, i int) string {
	t.Helper()
	opts, _ := f["options"].([]any)
	if len(opts) <= i {
		t.Fatalf("frame has %d options, want option %d: %v", len(opts), i, f)
	}
	return opts[i].(map[string]any)["payload"].(string)
}

// TestWebChatToBookedSlot: a person without Facebook opens the signup's chat and goes through
// the same flow — confirm, email, code, slot — to a booking; a bad token closes with 1008; a
// refreshed token replaces the old one; a reconnect with since replays what was missed, with
// no gap and no repeat.
func TestWebChatToBookedSlot(t *testing.T) {
	e := newPublishEnv(t, "e2e-webchat", "VOLUNTREE_MAIL_OUTBOX=on", "VOLUNTREE_POLL_INTERVAL=0")
	n := startServe(t, e.env...)
	code, su := e.api(t, n, "POST", "/api/v1/signups", map[string]any{"title": "Food bank", "time_zone": "America/New_York",
		"facts": "We sort donations in the warehouse on Main Street. Wear closed shoes.",
		"slots": []map[string]any{{"id": "sat", "date": "2030-03-02", "start": "10:00", "end": "13:00", "required": 4}}})
	if code != 201 {
		t.Fatalf("create signup: %d %v", code, su)
	}
	// A bad token: the socket closes with 1008.
	bad, err := dialChat(t, n, "wct_nope", "")
	if err != nil {
		t.Fatal(err)
	}
	var ce *websocket.CloseError
	if err := <-bad.closed; !errors.As(err, &ce) || ce.Code != 1008 {
		t.Fatalf("bad token: %v, want close 1008", err)
	}
	code, sess := n.post(t, "/api/v1/chat/sessions", `{"signup_id":"`+su["id"].(string)+`","name":"Grace Hopper"}`)
	if code != 201 || sess["expires_in"] != float64(3600) || !strings.HasPrefix(sess["token"].(string), "wct_") {
		t.Fatalf("create session: %d %v", code, sess)
	}
	if code, out := n.post(t, "/api/v1/chat/sessions", `{"signup_id":"su_nope","name":"X"}`); code != 404 || out["error"] == nil {
		t.Fatalf("session for no signup: %d %v", code, out)
	}
	token := sess["token"].(string)
	cc, err := dialChat(t, n, token, "")
	if err != nil {
		t.Fatal(err)
	}
	ask := cc.await(`Would you like to volunteer for "Food bank"?`)
	cc.send(map[string]string{"payload": optionPayload(t, ask, 0), "text": "Yes, count me in"})
	cc.await("What's your email address?")
	cc.send(map[string]string{"text": "Which shoes should I wear?"})
	cc.await("Wear closed shoes.")
	cc.send(map[string]string{"text": "grace@example.org"})
	cc.await("We've sent a 6-digit code to grace@example.org")

	// The token is refreshed; the old one no longer opens the chat.
	code, ref := n.post(t, "/api/v1/chat/sessions/refresh", `{"token":"`+token+`"}`)
	if code != 200 || ref["token"] == token || ref["conversation_id"] != sess["conversation_id"] {
		t.Fatalf("refresh: %d %v", code, ref)
	}
	old, _ := dialChat(t, n, token, "")
	if err := <-old.closed; !errors.As(err, &ce) || ce.Code != 1008 {
		t.Fatalf("old token after refresh: %v, want 1008", err)
	}
	token = ref["token"].(string)

	code6 := outboxCode(t, e.store.Client(), e.prefix, "grace@example.org", "")
	// Disconnect, and send the code from a second socket: the first one's reconnect with since
	// gets exactly what it missed.
	lastSeen := cc.seen[len(cc.seen)-1]["id"].(string)
	cc.c.Close()
	cc2, err := dialChat(t, n, token, lastSeen)
	if err != nil {
		t.Fatal(err)
	}
	cc2.send(map[string]string{"text": code6})
	slots := cc2.await("Which slot suits you?")
	cc2.send(map[string]string{"payload": optionPayload(t, slots, 0), "text": "Sat 2 Mar 10:00"})
	cc2.await("You're booked: Sat 2 Mar 2030, 10:00–13:00 (America/New_York)")
	ids := map[string]bool{}
	prev := lastSeen
	for _, f := range cc2.seen {
		id := f["id"].(string)
		if ids[id] || !streamAfter(id, prev) {
			t.Fatalf("frame %s repeated or out of order after %s: %v", id, prev, f)
		}
		ids[id], prev = true, id
	}
	if f := cc2.seen[0]; f["from"] != "volunteer" || f["text"] != code6 {
		t.Fatalf("the first frame after since is the code sent: %v", f)
	}
	rec, ok, err := e.store.Booking(context.Background(), su["id"].(string), sess["conversation_id"].(string))
	if err != nil || !ok || rec.SlotID != "sat" || rec.Channel != "webchat" || rec.Name != "Grace Hopper" {
		t.Fatalf("booking %+v %v %v", rec, ok, err)
	}
	// A message resent with its id (a client that missed the echo) is taken once (another
	// person's session: the rate limit is per session).
	_, sess2 := n.post(t, "/api/v1/chat/sessions", `{"signup_id":"`+su["id"].(string)+`","name":"Ada"}`)
	cc3, err := dialChat(t, n, sess2["token"].(string), "")
	if err != nil {
		t.Fatal(err)
	}
	cc3.await("Would you like to volunteer")
	cc3.send(map[string]string{"id": "resend-1", "text": "Where do we meet?"})
	cc3.send(map[string]string{"id": "resend-1", "text": "Where do we meet?"})
	cc3.send(map[string]string{"id": "after-1", "text": "Bye"})
	echoes := 0
	for deadline := time.After(10 * time.Second); ; {
		select {
		case f := <-cc3.frames:
			cc3.seen = append(cc3.seen, f)
			if f["client_id"] == "resend-1" {
				echoes++
			}
			if msg, _ := f["error"].(string); msg != "" {
				t.Fatalf("error frame: %s", msg)
			}
		case <-deadline:
			t.Fatal("no echo of the message after the resent one")
		}
		if cc3.seen[len(cc3.seen)-1]["client_id"] == "after-1" {
			break
		}
	}
	if echoes != 1 {
		t.Fatalf("a message resent with its id was echoed %d times", echoes)
	}
	// Too fast: the session's rate limit answers with an error frame.
	for range 8 {
		cc2.send(map[string]string{"text": "thanks!"})
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f := <-cc2.frames:
			if msg, _ := f["error"].(string); strings.Contains(msg, "slow down") {
				n.stop(t)
				return
			}
		case <-timeout:
			t.Fatal("no rate-limit error frame")
		}
	}
}

// streamAfter reports whether Redis stream id a comes after b.
func streamAfter(a, b string) bool {
	var am, as, bm, bs int64
	if _, err := fmt.Sscanf(a, "%d-%d", &am, &as); err != nil {
		return false
	}
	if _, err := fmt.Sscanf(b, "%d-%d", &bm, &bs); err != nil {
		return true
	}
	return am > bm || am == bm && as > bs
}

// TestChatPageInABrowser: a session started (as the page's #name= link does) greets the person;
// the chat page, opened in headless Chromium with the session's token, shows the bot's
// greeting and its answers as buttons, over its socket. (The rest of the flow is
// TestWebChatToBookedSlot's, over the same socket.)
func TestChatPageInABrowser(t *testing.T) {
	browser := requireChromium(t)
	e := newPublishEnv(t, "e2e-chat-page", "VOLUNTREE_POLL_INTERVAL=0")
	n := startServe(t, e.env...)
	code, su := e.api(t, n, "POST", "/api/v1/signups", map[string]any{"title": "Soup kitchen", "time_zone": "UTC",
		"slots": []map[string]any{{"date": "2030-03-02", "start": "10:00", "end": "13:00", "required": 4}}})
	if code != 201 {
		t.Fatalf("create signup: %d %v", code, su)
	}
	code, sess := n.post(t, "/api/v1/chat/sessions", `{"signup_id":"`+su["id"].(string)+`","name":"Grace"}`)
	if code != 201 {
		t.Fatalf("session: %d %v", code, sess)
	}
	cc, err := dialChat(t, n, sess["token"].(string), "")
	if err != nil {
		t.Fatal(err)
	}
	cc.await("Would you like to volunteer") // in the history: the page reads it before its socket opens
	if status, body := n.get(t, "/api/v1/chat/history?token="+sess["token"].(string)); status != 200 || !bytes.Contains(body, []byte("Would you like to volunteer")) {
		t.Fatalf("history: %d %s", status, body)
	}
	if status, _ := n.get(t, "/api/v1/chat/history?token=wct_nope"); status != 401 {
		t.Fatalf("history with a bad token: %d", status)
	}
	dom := renderedDOM(t, browser, n.base+"/chat/"+su["id"].(string)+"#token="+sess["token"].(string))
	for _, want := range []string{`data-from="bot"`, "Hi Grace! Thanks for stopping by.",
		`Would you like to volunteer for "Soup kitchen"?`, `<button type="button">Yes, count me in</button>`} {
		if !bytes.Contains(dom, []byte(want)) {
			t.Errorf("the chat page lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
	// An unknown signup: the start form says so.
	dom = renderedDOM(t, browser, n.base+"/chat/su_nope#name=Grace")
	if !bytes.Contains(dom, []byte("no such signup")) && !bytes.Contains(dom, []byte("not found")) {
		t.Errorf("the chat page of an unknown signup says nothing useful:\n%s", dom)
	}
	n.stop(t)
}

// TestDemoChatFillsTheDashboard: on the demo, a newcomer books a slot of the demo signup in the
// web chat (the code read from the demo organization's outbox); the dashboard, opened in
// Chromium with the demo organization's token, shows the booking and the slot's count.
func TestDemoChatFillsTheDashboard(t *testing.T) {
	browser := requireChromium(t)
	const prefix = "e2e-demo-chat"
	n, _, _ := pipelineNode(t, prefix, "VOLUNTREE_DEMO=on", "VOLUNTREE_MAIL_OUTBOX=on")
	code, out, errOut := runCLI(t, "", "admin", "create-token", "-org", "demo", "-redis-url", redisSrv.URL(t), "-redis-prefix", prefix)
	if code != 0 {
		t.Fatalf("admin create-token: exit %d, %q %q", code, out, errOut)
	}
	token := strings.TrimSpace(out)
	status, info := n.get(t, "/api/v1/demo")
	if status != 200 || !bytes.Contains(info, []byte(`"chat_url":"/chat/su_demo"`)) {
		t.Fatalf("demo info %d %s", status, info)
	}
	code, sess := n.post(t, "/api/v1/chat/sessions", `{"signup_id":"su_demo","name":"Newcomer"}`)
	if code != 201 {
		t.Fatalf("session: %d %v", code, sess)
	}
	cc, err := dialChat(t, n, sess["token"].(string), "")
	if err != nil {
		t.Fatal(err)
	}
	ask := cc.await("Would you like to volunteer")
	cc.send(map[string]string{"payload": optionPayload(t, ask, 0), "id": "d1"})
	cc.await("What's your email address?")
	cc.send(map[string]string{"text": "newcomer@example.org", "id": "d2"})
	cc.await("We've sent a 6-digit code")
	rdb, _ := redisSrv.Client(t)
	code6 := outboxCode(t, rdb, prefix, "newcomer@example.org", "demo")
	cc.send(map[string]string{"text": code6, "id": "d3"})
	slots := cc.await("Which slot suits you?")
	cc.send(map[string]string{"payload": optionPayload(t, slots, 0), "id": "d4"})
	cc.await("You're booked")
	dom := renderedDOM(t, browser, n.base+"/#token="+token)
	if !bytes.Contains(dom, []byte("Newcomer booked Litter picking: 1 of 12 filled")) {
		t.Errorf("the dashboard does not show the booking:\n%s", grepDOM(dom, "activity"))
	}
	n.stop(t)
}

// grepDOM returns the lines of dom around s (for failure messages).
func grepDOM(dom []byte, s string) string {
	i := bytes.Index(dom, []byte(s))
	if i < 0 {
		return "(no " + s + ")"
	}
	return string(dom[max(0, i-200):min(len(dom), i+1500)])
}
