package httpapi_test

import (
	"context"
	"encoding/json"
	"github.com/voluntree/voluntree/actors"
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// adminToken creates organization org with an admin API token.
func adminToken(t *testing.T, e *pipelineEnv, org string) string {
	t.Helper()
	ctx := context.Background()
	if err := e.store.CreateOrg(ctx, voluntree.Organization{ID: org, Name: "Org " + org}); err != nil {
		t.Fatal(err)
	}
	token, _, err := e.store.CreateAdminToken(ctx, org, redisstore.TokenOptions{Label: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// apiTicket gets a ticket the way clients do: POST /api/v1/ws-tickets with a Bearer token.
func apiTicket(t *testing.T, e *pipelineEnv, token string) string {
	t.Helper()
	status, raw, h := request(t, "POST", e.url("/api/v1/ws-tickets"), nil, map[string]string{"Authorization": "Bearer " + token})
	if status != 200 {
		t.Fatalf("POST /api/v1/ws-tickets: %d %s", status, raw)
	}
	var out struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Ticket == "" || out.ExpiresIn != 60 {
		t.Fatalf("ticket response %s (%v): want {\"ticket\", \"expires_in\": 60}", raw, err)
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("ticket response Cache-Control %q, want no-store", h.Get("Cache-Control"))
	}
	return out.Ticket
}

// refused dials and expects the upgrade to be refused with status and a JSON error.
func refused(t *testing.T, e *pipelineEnv, query url.Values, status int) string {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(wsURL(e, query), nil)
	if err == nil {
		c.Close()
		t.Fatalf("the upgrade with %v succeeded, want %d", query, status)
	}
	if resp == nil || resp.StatusCode != status {
		t.Fatalf("dial %v: %v, resp %v; want %d", query, err, resp, status)
	}
	raw, _ := io.ReadAll(resp.Body)
	return requireErrorBody(t, raw)
}

func TestWSNeedsATicket(t *testing.T) {
	e := wsEnv(t, 0, redisstore.Config{})
	token := adminToken(t, e, "org_a")

	if msg := refused(t, e, nil, 401); !strings.Contains(msg, "/api/v1/ws-tickets") {
		t.Errorf("anonymous upgrade: %q, want it to say where tickets come from", msg)
	}
	refused(t, e, url.Values{"ticket": {"nonsense"}}, 401)
	refused(t, e, url.Values{"ticket": {"wst_" + strings.Repeat("A", 43)}}, 401) // well-formed, unknown

	// A ticket works once.
	tk := apiTicket(t, e, token)
	c := dialWith(t, websocket.DefaultDialer, e, url.Values{"ticket": {tk}})
	expectReady(t, c)
	refused(t, e, url.Values{"ticket": {tk}}, 401)

	// A malformed request does not use up the ticket.
	tk = apiTicket(t, e, token)
	refused(t, e, url.Values{"ticket": {tk}, "tail": {"-1"}}, 400)
	expectReady(t, dialWith(t, websocket.DefaultDialer, e, url.Values{"ticket": {tk}}))

	// Tickets need an admin API token.
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer vt_unknown"}, {"Authorization": "Basic eDp5"}} {
		status, raw, _ := request(t, "POST", e.url("/api/v1/ws-tickets"), nil, h)
		if status != 401 {
			t.Fatalf("POST /api/v1/ws-tickets with %v: %d %s, want 401", h, status, raw)
		}
		requireErrorBody(t, raw)
	}
}

// TestWSOrganizationIsolation: two organizations live at once. Every socket of one gets all of
// its own events, live and replayed from 0-0, and none of the other's.
func TestWSOrganizationIsolation(t *testing.T) {
	e := wsEnv(t, 1<<12, redisstore.Config{})
	orgs := []string{"org_a", "org_b"}
	tokens := map[string]string{}
	for _, org := range orgs {
		tokens[org] = adminToken(t, e, org)
	}
	// Events recorded before any socket: replayed from 0-0 only.
	want := map[string][]string{}
	record := func(org, post string, n int) {
		ins := make([]voluntree.Interest, n)
		for i := range ins {
			ins[i] = newInterest(post, "I'm in ("+org+")")
		}
		res, err := e.store.Record(context.Background(), org, post, ins)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			want[org] = append(want[org], r.EventID)
		}
		ev := voluntree.Event{Type: voluntree.EventPost, PostID: "po_" + post, Post: &voluntree.PostUpdate{ID: "po_" + post, Status: voluntree.PostPublished}}
		id, err := e.store.AppendEvent(context.Background(), org, ev)
		if err != nil {
			t.Fatal(err)
		}
		want[org] = append(want[org], id)
	}
	record("org_a", "A", 5)
	record("org_b", "B", 7)
	before := map[string]int{"org_a": len(want["org_a"]), "org_b": len(want["org_b"])}

	type sock struct {
		org    string
		replay bool
		c      *websocket.Conn
	}
	var socks []sock
	for _, org := range orgs {
		for _, replay := range []bool{false, true} {
			q := url.Values{"ticket": {apiTicket(t, e, tokens[org])}}
			if replay {
				q.Set("since", "0-0")
			}
			socks = append(socks, sock{org, replay, dialWith(t, websocket.DefaultDialer, e, q)})
		}
	}
	// Live: interleaved, on the same post ids across organizations.
	for i := range 20 {
		record(orgs[i%2], "P", 3)
	}
	for _, s := range socks {
		expected := want[s.org]
		if !s.replay {
			expected = expected[before[s.org]:]
		}
		var got []string
		ready := false
		for len(got) < len(expected) || !ready {
			f := readFrame(t, s.c)
			switch f.Type {
			case "ready":
				ready = true
			case "interest", "post":
				got = append(got, f.ID)
				if f.Interest != nil && !strings.Contains(f.Interest.Text, "("+s.org+")") {
					t.Fatalf("%s socket got another organization's interest: %+v", s.org, f.Interest)
				}
			default:
				t.Fatalf("%s socket: unexpected frame %+v", s.org, f)
			}
			if len(got) > len(expected) {
				break
			}
		}
		if !slices.Equal(got, expected) {
			t.Fatalf("%s socket (replay %v): got %d events %v..., want %d", s.org, s.replay, len(got), got[:min(3, len(got))], len(expected))
		}
	}
	// Nothing more arrives: one more event of each organization is the next frame of each.
	last := map[string][]string{}
	for _, org := range orgs {
		n := len(want[org])
		record(org, "Q", 1)
		last[org] = want[org][n:]
	}
	for _, s := range socks {
		for i, id := range last[s.org] {
			if f := readFrame(t, s.c); f.ID != id {
				t.Fatalf("%s socket: frame %d after the run is %s (%s), want %s", s.org, i, f.ID, f.Type, id)
			}
		}
	}
}

// TestWSSocketBound: a node takes MaxSockets live feeds; past it the upgrade gets 503 with
// Retry-After (what a node's fan-out may hold is bounded), and a closed socket frees its place.
func TestWSSocketBound(t *testing.T) {
	e := newEnv(t, envOptions{hub: &actors.EventHubConfig{MaxSockets: 2}, admin: true})
	a := dial(t, e, nil)
	expectReady(t, a)
	expectReady(t, dial(t, e, nil))
	c, resp, err := websocket.DefaultDialer.Dial(wsURL(e, url.Values{"ticket": {ticket(t, e, testWSOrg)}}), nil)
	if err == nil {
		c.Close()
		t.Fatal("a third socket was taken")
	}
	if resp == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third socket: %v %v, want 503 with Retry-After", resp, err)
	}
	a.Close()
	eventually(t, 10*time.Second, "a place freed", func() bool { return !e.hub.Full() })
	expectReady(t, dial(t, e, nil))
}
