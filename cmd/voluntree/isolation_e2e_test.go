package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/voluntree/voluntree/facebook"
)

// TestOrganizationsLiveAtOnce tries the live feed from outside, as a stranger would: two
// organizations, each with its page, get comments through signed webhooks at the same time.
// Every socket of one organization gets all of its own events and none of the other's, live
// and replayed from 0-0; a socket without a ticket gets 401; a used ticket is refused; and a
// comment on a page no organization connected reaches no feed.
func TestOrganizationsLiveAtOnce(t *testing.T) {
	const prefix = "e2e-orgs"
	tokens := map[string]string{
		"north": orgWithPages(t, prefix, "north", "501"),
		"south": orgWithPages(t, prefix, "south", "502"),
	}
	pageOf := map[string]string{"north": "501", "south": "502"}
	n, _, _ := pipelineNode(t, prefix)
	wsURL := "ws" + strings.TrimPrefix(n.base, "http") + "/ws/signups"

	// Strangers.
	for _, q := range []string{"", "?since=0-0", "?ticket=wst_" + strings.Repeat("x", 43)} {
		_, resp, err := websocket.DefaultDialer.Dial(wsURL+q, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a socket without a valid ticket (%q): %v %v, want 401", q, resp, err)
		}
	}
	used := feedTicket(t, n, tokens["north"])
	c, _, err := websocket.DefaultDialer.Dial(wsURL+"?ticket="+used, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL+"?ticket="+used, nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a used ticket: %v, want 401", err)
	}

	send := func(org string, i int) string {
		page := pageOf[org]
		id := fmt.Sprintf("%s_1_%d", page, i)
		b, sig := signed(t, facebook.CommentPayload(page, facebook.ChangeValue{CommentID: id, PostID: page + "_1",
			From: &facebook.User{ID: fmt.Sprintf("%s-u%d", org, i), Name: "Person of " + org}, Message: "Count me in for Saturday!",
			CreatedTime: time.Now().Unix()}))
		if status, out := n.webhook(t, b, sig); status != 200 || out["accepted"] != float64(1) {
			t.Fatalf("comment %s: %d %v", id, status, out)
		}
		return id
	}
	want := map[string][]string{}
	// Before any socket: replayed from 0-0 only.
	for i := range 5 {
		for _, org := range []string{"north", "south"} {
			want[org] = append(want[org], send(org, i))
		}
	}
	before := map[string]int{"north": 5, "south": 5}
	for _, org := range []string{"north", "south"} { // recorded before the live sockets open
		probe := dialEvents(t, n, tokens[org], "&since=0-0")
		probe.waitFor(t, 20*time.Second, org+"'s first events", hasIDs(want[org]...))
		probe.conn.Close()
	}
	type sock struct {
		org    string
		replay bool
		ws     *wsClient
	}
	var socks []sock
	for _, org := range []string{"north", "south"} {
		socks = append(socks, sock{org, false, dialEvents(t, n, tokens[org], "")},
			sock{org, true, dialEvents(t, n, tokens[org], "&since=0-0")})
	}
	for i := 5; i < 30; i++ {
		for _, org := range []string{"north", "south"} {
			want[org] = append(want[org], send(org, i))
		}
	}
	// A page nobody connected: counted, on no feed.
	b, sig := signed(t, facebook.CommentPayload("503", facebook.ChangeValue{CommentID: "503_1_1", PostID: "503_1",
		From: &facebook.User{ID: "x", Name: "Nobody's"}, Message: "Count me in!", CreatedTime: time.Now().Unix()}))
	if status, _ := n.webhook(t, b, sig); status != 200 {
		t.Fatalf("comment on an unowned page: %d", status)
	}
	// A sentinel per organization after it: once it arrives, anything else would have too.
	for _, org := range []string{"north", "south"} {
		want[org] = append(want[org], send(org, 99))
	}
	for _, s := range socks {
		expected := want[s.org]
		if !s.replay {
			expected = expected[before[s.org]:]
		}
		evs := s.ws.waitFor(t, 20*time.Second, s.org+"'s sentinel", hasIDs(expected[len(expected)-1]))
		var got []string
		for _, ev := range evs {
			got = append(got, messageID(ev))
		}
		if strings.Join(got, ",") != strings.Join(expected, ",") {
			t.Fatalf("%s socket (replay %v): got %d events %v, want %d %v", s.org, s.replay, len(got), got, len(expected), expected)
		}
	}
	// The unowned comment's post grain may answer after the sentinels' (grains run at once).
	waitRedis(t, func() bool {
		status, metricsText := n.get(t, "/metrics")
		return status == 200 && strings.Contains(string(metricsText), "voluntree_pipeline_unowned_messages_total 1")
	}, "/metrics counting the unowned comment")
	n.stop(t)
}
