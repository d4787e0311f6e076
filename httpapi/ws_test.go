package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/actors"
	"github.com/voluntree/voluntree/redisstore"
)

const frameWait = 15 * time.Second // longest wait for one expected frame

// wsFrame is any frame of /ws/signups: an event (type "interest", with its id) or a control
// frame ("ready", "gap").
type wsFrame struct {
	Type     string              `json:"type"`
	ID       string              `json:"id"`
	PostID   string              `json:"post_id"`
	Interest *voluntree.Interest `json:"interest"`
	Replayed *int                `json:"replayed"`
	LastID   string              `json:"last_id"`
}

func (f wsFrame) isEvent() bool { return f.Type == string(voluntree.EventInterest) }

// testWSOrg is the organization whose feed the tests' sockets open (dial gets them a ticket).
const testWSOrg = "org_ws"

// wsEnv is a node with an event hub and a store (tickets live in the store).
func wsEnv(t *testing.T, sendBuffer int, store redisstore.Config) *pipelineEnv {
	t.Helper()
	return newEnv(t, envOptions{store: store, hub: &actors.EventHubConfig{SendBuffer: sendBuffer}, admin: true})
}

// ticket returns a fresh live-feed ticket of org.
func ticket(t *testing.T, e *pipelineEnv, org string) string {
	t.Helper()
	tk, _, err := e.store.CreateWSTicket(context.Background(), org, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func wsURL(e *pipelineEnv, query url.Values) string {
	u := "ws://" + e.addr + "/ws/signups"
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// dialWith opens /ws/signups with query, adding a ticket of testWSOrg unless query has one.
func dialWith(t *testing.T, d *websocket.Dialer, e *pipelineEnv, query url.Values) *websocket.Conn {
	t.Helper()
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	if q.Get("ticket") == "" {
		q.Set("ticket", ticket(t, e, testWSOrg))
	}
	c, resp, err := d.Dial(wsURL(e, q), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %v: %v (status %d)", query, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dial(t *testing.T, e *pipelineEnv, query url.Values) *websocket.Conn {
	t.Helper()
	return dialWith(t, websocket.DefaultDialer, e, query)
}

func readFrame(t *testing.T, c *websocket.Conn) wsFrame {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(frameWait)); err != nil {
		t.Fatal(err)
	}
	typ, raw, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("frame of type %d, want text", typ)
	}
	var f wsFrame
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("frame %q: %v", truncate(raw), err)
	}
	if f.isEvent() && (f.ID == "" || f.Interest == nil || f.Interest.ID == "") {
		t.Fatalf("event frame without id or interest: %q", truncate(raw))
	}
	return f
}

// expectReady reads the next frame, which must be "ready".
func expectReady(t *testing.T, c *websocket.Conn) wsFrame {
	t.Helper()
	f := readFrame(t, c)
	if f.Type != "ready" || f.Replayed == nil {
		t.Fatalf("got %+v, want the ready frame", f)
	}
	return f
}

// expectEvents reads the next len(ids) frames, which must be exactly these events in order.
func expectEvents(t *testing.T, c *websocket.Conn, ids []string) []wsFrame {
	t.Helper()
	out := make([]wsFrame, 0, len(ids))
	for i, id := range ids {
		f := readFrame(t, c)
		if !f.isEvent() || f.ID != id {
			t.Fatalf("frame %d of %d: got %+v (id %q), want event %s", i, len(ids), f.Type, f.ID, id)
		}
		out = append(out, f)
	}
	return out
}

var interestSeq struct {
	sync.Mutex
	n int
}

func newInterest(post, text string) voluntree.Interest {
	interestSeq.Lock()
	interestSeq.n++
	n := interestSeq.n
	interestSeq.Unlock()
	now := time.Now()
	return voluntree.Interest{
		ID: fmt.Sprintf("%s_c%d", post, n), PostID: post, PageID: testPage,
		SenderID: fmt.Sprintf("u%d", n), SenderName: fmt.Sprintf("Person %d", n),
		Kind: voluntree.KindComment, Text: text, Intent: voluntree.IntentInterested,
		Confidence: 0.9, CreatedAt: now, ReceivedAt: now, RecordedAt: now,
	}
}

// recordText stores n interests of post in one Record call (the real event path: XADD to the
// log and PUBLISH, atomically) and returns their event ids in order.
func recordText(t *testing.T, e *pipelineEnv, post string, n int, text string) []string {
	t.Helper()
	ins := make([]voluntree.Interest, n)
	for i := range ins {
		ins[i] = newInterest(post, text)
	}
	res, err := e.store.Record(context.Background(), testWSOrg, post, ins)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i, r := range res {
		if r.Outcome != redisstore.NewInterest || r.EventID == "" {
			t.Fatalf("record %s: outcome %v", ins[i].ID, r.Outcome)
		}
		ids[i] = r.EventID
	}
	return ids
}

func record(t *testing.T, e *pipelineEnv, post string, n int) []string {
	t.Helper()
	return recordText(t, e, post, n, "Count me in")
}

func TestWSRejectsBadRequests(t *testing.T) {
	e := wsEnv(t, 0, redisstore.Config{})
	t.Run("plain GET", func(t *testing.T) {
		status, raw, _ := request(t, "GET", e.url("/ws/signups?ticket="+ticket(t, e, testWSOrg)), nil, nil)
		if status != 426 {
			t.Fatalf("status %d (%s), want 426", status, raw)
		}
		requireErrorBody(t, raw)
	})
	for _, q := range []url.Values{
		{"since": {"abc"}},
		{"since": {"12-x"}},
		{"tail": {"5000"}},
		{"tail": {"-1"}},
		{"tail": {"x"}},
		{"post": {strings.Repeat("p", voluntree.MaxIDLength+1)}},
		{"intent": {"maybe"}},
		{"intent": {"question,,donate"}},
	} {
		t.Run(q.Encode()[:min(20, len(q.Encode()))], func(t *testing.T) {
			q.Set("ticket", ticket(t, e, testWSOrg))
			c, resp, err := websocket.DefaultDialer.Dial(wsURL(e, q), nil)
			if err == nil {
				c.Close()
				t.Fatal("the upgrade succeeded")
			}
			if resp == nil || resp.StatusCode != 400 {
				t.Fatalf("dial: %v, resp %v; want 400", err, resp)
			}
			raw, _ := io.ReadAll(resp.Body)
			requireErrorBody(t, raw)
		})
	}
	if got := testutil.ToFloat64(e.m.WSClients); got != 0 {
		t.Fatalf("ws clients = %v after refused upgrades", got)
	}
}

func TestWSWithoutEvents(t *testing.T) {
	e := newEnv(t, envOptions{}) // no hub
	c, resp, err := websocket.DefaultDialer.Dial(wsURL(e, url.Values{"ticket": {"wst_" + strings.Repeat("a", 43)}}), nil)
	if err == nil {
		c.Close()
		t.Fatal("the upgrade succeeded without an event hub")
	}
	if resp == nil || resp.StatusCode != 503 {
		t.Fatalf("dial: %v, resp %v; want 503", err, resp)
	}
}

func TestWSLive(t *testing.T) {
	e := wsEnv(t, 0, redisstore.Config{})
	record(t, e, "P", 3) // history a live-only client does not get
	c := dial(t, e, nil)
	if r := expectReady(t, c); *r.Replayed != 0 {
		t.Fatalf("ready %+v: a client without since or tail replayed events", r)
	}
	if got := testutil.ToFloat64(e.m.WSClients); got != 1 {
		t.Fatalf("ws clients = %v, want 1", got)
	}
	ids := record(t, e, "P", 10)
	frames := expectEvents(t, c, ids)
	for _, f := range frames {
		if f.PostID != "P" || f.Interest.PostID != "P" || f.Interest.Intent != voluntree.IntentInterested {
			t.Fatalf("event %+v", f)
		}
	}
	// Nothing else was sent in between: the next frame is the next event.
	next := record(t, e, "P", 1)
	expectEvents(t, c, next)
}

func TestWSPostFilter(t *testing.T) {
	e := wsEnv(t, 0, redisstore.Config{})
	a := dial(t, e, url.Values{"post": {"A"}})
	all := dial(t, e, nil)
	expectReady(t, a)
	expectReady(t, all)
	var wantA, wantAll []string
	for range 5 {
		ida := record(t, e, "A", 2)
		idb := record(t, e, "B", 3)
		wantA = append(wantA, ida...)
		wantAll = append(append(wantAll, ida...), idb...)
	}
	last := record(t, e, "A", 1)
	wantA = append(wantA, last...)
	wantAll = append(wantAll, last...)
	for _, f := range expectEvents(t, a, wantA) {
		if f.PostID != "A" {
			t.Fatalf("?post=A received an event of post %q", f.PostID)
		}
	}
	expectEvents(t, all, wantAll)
}

// recordMix stores, in one Record call, two interests, two questions and a donation offer of
// post, and returns the event ids of each intent.
func recordMix(t *testing.T, e *pipelineEnv, post string) map[voluntree.Intent][]string {
	t.Helper()
	var ins []voluntree.Interest
	for _, in := range []voluntree.Intent{voluntree.IntentInterested, voluntree.IntentQuestion, voluntree.IntentInterested,
		voluntree.IntentQuestion, voluntree.IntentDonate} {
		x := newInterest(post, "text of "+string(in))
		x.Intent = in
		ins = append(ins, x)
	}
	res, err := e.store.Record(context.Background(), testWSOrg, post, ins)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[voluntree.Intent][]string)
	for i, r := range res {
		if r.EventID == "" {
			t.Fatalf("record %s (%s): outcome %v without event", ins[i].ID, ins[i].Intent, r.Outcome)
		}
		out[ins[i].Intent] = append(out[ins[i].Intent], r.EventID)
	}
	return out
}

// expectFrames reads the next len(ids) frames, which must be events (of any type) with these
// ids in order.
func expectFrames(t *testing.T, c *websocket.Conn, ids []string) []wsFrame {
	t.Helper()
	out := make([]wsFrame, 0, len(ids))
	for i, id := range ids {
		f := readFrame(t, c)
		if f.ID != id {
			t.Fatalf("frame %d of %d: got %+v (id %q), want event %s", i, len(ids), f.Type, f.ID, id)
		}
		out = append(out, f)
	}
	return out
}

// TestWSIntentFilter: a feed shows interests only unless it asks for intents; a feed asking
// for questions gets their message events (live and replayed) and no interest; "all" gets
// every message in order.
func TestWSIntentFilter(t *testing.T) {
	e := wsEnv(t, 0, redisstore.Config{})
	def := dial(t, e, nil)
	questions := dial(t, e, url.Values{"intent": {"question"}})
	all := dial(t, e, url.Values{"intent": {"all"}})
	for _, c := range []*websocket.Conn{def, questions, all} {
		expectReady(t, c)
	}
	var wantDef, wantQ, wantAll []string
	for range 3 {
		m := recordMix(t, e, "P")
		wantDef = append(wantDef, m[voluntree.IntentInterested]...)
		wantQ = append(wantQ, m[voluntree.IntentQuestion]...)
		// One Record call: the log holds them in the call's order.
		ids := append(append(append([]string{}, m[voluntree.IntentInterested]...), m[voluntree.IntentQuestion]...), m[voluntree.IntentDonate]...)
		slices.SortFunc(ids, redisstore.CompareIDs)
		wantAll = append(wantAll, ids...)
	}
	last := record(t, e, "P", 1)
	wantDef, wantAll = append(wantDef, last...), append(wantAll, last...)
	expectEvents(t, def, wantDef) // interests only, and nothing in between
	for _, f := range expectFrames(t, questions, wantQ) {
		if f.Type != string(voluntree.EventMessage) || f.Interest == nil || f.Interest.Intent != voluntree.IntentQuestion || f.PostID != "P" {
			t.Fatalf("?intent=question got %+v", f)
		}
	}
	// Nothing else reached the questions' feed (not the last interest): its next frame is the
	// next question.
	nextMix := recordMix(t, e, "P")
	expectFrames(t, questions, nextMix[voluntree.IntentQuestion])
	frames := expectFrames(t, all, wantAll)
	counts := map[string]int{}
	for _, f := range frames {
		counts[f.Type+"/"+string(f.Interest.Intent)]++
	}
	if counts["interest/interested"] != 7 || counts["message/question"] != 6 || counts["message/donate"] != 3 {
		t.Fatalf("?intent=all got %v", counts)
	}
	// A replay applies the same filter.
	r := dial(t, e, url.Values{"intent": {"question,donate"}, "tail": {"100"}})
	var wantR []string
	for _, id := range wantAll {
		if !slices.Contains(wantDef, id) {
			wantR = append(wantR, id)
		}
	}
	wantR = append(append(wantR, nextMix[voluntree.IntentQuestion]...), nextMix[voluntree.IntentDonate]...)
	slices.SortFunc(wantR, redisstore.CompareIDs)
	expectFrames(t, r, wantR)
	if f := expectReady(t, r); *f.Replayed != len(wantAll)+5 {
		t.Fatalf("ready frame replayed %d, want %d (the filtered events count as read)", *f.Replayed, len(wantAll)+5)
	}
}

// TestWSTailCountsTheFeedsMessages: ?tail=N replays from the N-th last message the feed shows,
// however many events of other intents came after it.
func TestWSTailCountsTheFeedsMessages(t *testing.T) {
	e := wsEnv(t, 0, redisstore.Config{})
	older := record(t, e, "P", 1)
	last2 := record(t, e, "P", 2)
	qs := make([]voluntree.Interest, 60) // questions crowd the log's tail
	for i := range qs {
		qs[i] = newInterest("P", "when does it start?")
		qs[i].Intent = voluntree.IntentQuestion
	}
	if _, err := e.store.Record(context.Background(), testWSOrg, "P", qs); err != nil {
		t.Fatal(err)
	}
	c := dial(t, e, url.Values{"tail": {"2"}})
	var got []string
	for {
		f := readFrame(t, c)
		if f.Type == "ready" {
			break
		}
		if f.Type != string(voluntree.EventInterest) {
			t.Fatalf("a feed of signups got %+v", f)
		}
		got = append(got, f.ID)
	}
	if !slices.Equal(got, last2) || slices.Contains(got, older[0]) {
		t.Fatalf("tail=2 replayed the interests %q of P, want %q", got, last2)
	}
}

func TestWSReconnectWithSince(t *testing.T) {
	e := wsEnv(t, 0, redisstore.Config{})
	c := dial(t, e, nil)
	expectReady(t, c)
	first := record(t, e, "P", 3)
	got := expectEvents(t, c, first)
	lastSeen := got[len(got)-1].ID
	c.Close()

	missed := record(t, e, "P", 7) // while the client is away
	c = dial(t, e, url.Values{"since": {lastSeen}})
	expectEvents(t, c, missed)
	r := expectReady(t, c)
	if *r.Replayed != 7 || r.LastID != missed[6] {
		t.Fatalf("ready %+v, want replayed 7 and last_id %s", r, missed[6])
	}
	live := record(t, e, "P", 1)
	expectEvents(t, c, live)
}

// TestWSReconnectWhileRecording: events are recorded at full speed before, during and after
// a reconnect; what the client received over both connections is every event exactly once,
// in order.
func TestWSReconnectWhileRecording(t *testing.T) {
	// A large send buffer: this test is about the replay/live handover, not slow clients.
	e := wsEnv(t, 1<<14, redisstore.Config{})
	c := dial(t, e, nil)
	expectReady(t, c)

	var (
		mu       sync.Mutex
		recorded []string
		recErr   error
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20000 {
			select {
			case <-stop:
				return
			default:
			}
			res, err := e.store.Record(context.Background(), testWSOrg, "P", []voluntree.Interest{newInterest("P", "in")})
			mu.Lock()
			if err != nil || res[0].Outcome != redisstore.NewInterest {
				recErr = fmt.Errorf("record: %v %v", err, res)
				mu.Unlock()
				return
			}
			recorded = append(recorded, res[0].EventID)
			mu.Unlock()
		}
	}()
	stopRecorder := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}
	defer stopRecorder()

	var received []string
	for len(received) < 50 {
		if f := readFrame(t, c); f.isEvent() {
			received = append(received, f.ID)
		} else {
			t.Fatalf("unexpected %q frame on a live connection", f.Type)
		}
	}
	c.Close()
	mu.Lock()
	before := len(recorded)
	mu.Unlock()

	c = dial(t, e, url.Values{"since": {received[len(received)-1]}})
	ready, afterReady := false, 0
	for {
		f := readFrame(t, c)
		switch {
		case f.Type == "ready":
			if ready {
				t.Fatal("two ready frames")
			}
			ready = true
		case f.isEvent():
			received = append(received, f.ID)
			if ready {
				afterReady++
			}
		default:
			t.Fatalf("unexpected %q frame", f.Type)
		}
		if afterReady == 50 {
			break
		}
	}
	stopRecorder()
	if recErr != nil {
		t.Fatal(recErr)
	}
	if before >= len(recorded)-50 {
		t.Fatalf("the recorder did not keep going during the reconnect (%d then %d)", before, len(recorded))
	}
	for received[len(received)-1] != recorded[len(recorded)-1] {
		f := readFrame(t, c)
		if !f.isEvent() {
			t.Fatalf("unexpected %q frame", f.Type)
		}
		received = append(received, f.ID)
	}
	if !slices.Equal(received, recorded) {
		seen := map[string]int{}
		for _, id := range received {
			seen[id]++
		}
		for i, id := range recorded {
			if seen[id] != 1 {
				t.Errorf("event %d (%s) received %d times", i, id, seen[id])
			}
		}
		t.Fatalf("received %d events, recorded %d: not the same sequence", len(received), len(recorded))
	}
	t.Logf("%d events, reconnect after %d", len(recorded), before)
}

func TestWSTail(t *testing.T) {
	e := wsEnv(t, 0, redisstore.Config{})
	ids := record(t, e, "P", 10)
	c := dial(t, e, url.Values{"tail": {"4"}})
	expectEvents(t, c, ids[6:])
	if r := expectReady(t, c); *r.Replayed != 4 || r.LastID != ids[9] {
		t.Fatalf("ready %+v", r)
	}
	more := record(t, e, "P", 2)
	expectEvents(t, c, more)

	// More than the log holds: all of it.
	c2 := dial(t, e, url.Values{"tail": {"50"}})
	expectEvents(t, c2, append(ids, more...))
	expectReady(t, c2)
}

func TestWSGap(t *testing.T) {
	e := wsEnv(t, 0, redisstore.Config{EventsMaxLen: 100})
	var ids []string
	for range 4 {
		ids = append(ids, record(t, e, "P", 100)...)
	}
	kept, err := e.rdb.XLen(context.Background(), e.store.Keys().OrgEvents(testWSOrg)).Result()
	if err != nil || kept >= 400 || kept < 100 {
		t.Fatalf("events log holds %d (%v): the cap did not trim", kept, err)
	}

	c := dial(t, e, url.Values{"since": {ids[0]}})
	if f := readFrame(t, c); f.Type != "gap" {
		t.Fatalf("first frame %+v, want gap", f)
	}
	// Then what the log still holds: the newest kept events, in order, and ready.
	expectEvents(t, c, ids[400-kept:])
	expectReady(t, c)

	// A client whose last id is still in the log sees no gap.
	c = dial(t, e, url.Values{"since": {ids[389]}})
	expectEvents(t, c, ids[390:])
	expectReady(t, c)
	c = dial(t, e, url.Values{"since": {ids[399]}})
	if r := expectReady(t, c); *r.Replayed != 0 {
		t.Fatalf("ready %+v", r)
	}
}

// TestWSLongReplay: a replay longer than the send buffer (a client reconnecting after a
// while, or asking for the maximum tail on a node run with a small -ws-send-buffer) is
// delivered whole to a client that reads: a replay arrives as one burst, which says nothing
// about the client being slow. (At 2,500 events/s a dashboard away for two seconds misses
// more than DefaultSendBuffer events; dropped on reconnect, it could never catch up.)
func TestWSLongReplay(t *testing.T) {
	t.Run("since, default buffer", func(t *testing.T) {
		e := wsEnv(t, 0, redisstore.Config{}) // DefaultSendBuffer
		start := record(t, e, "P", 1)
		var ids []string
		for len(ids) < 2*actors.DefaultSendBuffer+100 {
			ids = append(ids, record(t, e, "P", 500)...)
		}
		c := dial(t, e, url.Values{"since": {start[0]}})
		expectEvents(t, c, ids)
		if r := expectReady(t, c); *r.Replayed != len(ids) {
			t.Fatalf("ready %+v, want replayed %d", r, len(ids))
		}
		if got := testutil.ToFloat64(e.m.WSDropped.WithLabelValues(actors.DropSlow)); got != 0 {
			t.Fatalf("a reading client was dropped as slow")
		}
	})
	t.Run("max tail, small buffer", func(t *testing.T) {
		e := wsEnv(t, 64, redisstore.Config{})
		var ids []string
		for len(ids) < actors.MaxTail+50 {
			ids = append(ids, record(t, e, "P", 350)...)
		}
		c := dial(t, e, url.Values{"tail": {fmt.Sprint(actors.MaxTail)}})
		expectEvents(t, c, ids[len(ids)-actors.MaxTail:])
		expectReady(t, c)
		if got := testutil.ToFloat64(e.m.WSDropped.WithLabelValues(actors.DropSlow)); got != 0 {
			t.Fatalf("a reading client was dropped as slow")
		}
	})
}

// smallBufferDialer dials with a 4 KiB socket receive buffer, so that a client that does not
// read fills the kernel's buffers quickly.
func smallBufferDialer() *websocket.Dialer {
	d := *websocket.DefaultDialer
	nd := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	d.NetDialContext = nd.DialContext
	return &d
}

func TestWSSlowClientIsDropped(t *testing.T) {
	const sendBuffer, total = 8, 3000
	e := wsEnv(t, sendBuffer, redisstore.Config{})
	slow := dialWith(t, smallBufferDialer(), e, nil) // never reads until the end
	normal := dial(t, e, nil)
	expectReady(t, normal)
	eventually(t, 10*time.Second, "both sockets subscribed", func() bool { return testutil.ToFloat64(e.m.WSClients) == 2 })

	// Events of 2 KB, in batches of the send buffer's size, each read by the normal client
	// before the next is recorded: it keeps up, the slow one does not read at all.
	text := strings.Repeat("x", 2000)
	var ids []string
	for len(ids) < total {
		batch := recordText(t, e, "P", sendBuffer, text)
		expectEvents(t, normal, batch)
		ids = append(ids, batch...)
	}
	eventually(t, 20*time.Second, "the slow client is dropped", func() bool {
		return testutil.ToFloat64(e.m.WSDropped.WithLabelValues(actors.DropSlow)) == 1
	})
	eventually(t, 20*time.Second, "ws clients back to 1", func() bool { return testutil.ToFloat64(e.m.WSClients) == 1 })

	// The normal client is still live.
	expectEvents(t, normal, record(t, e, "P", 1))

	// The slow client finally reads: an in-order prefix of the events (what the buffers held),
	// then the close frame 1008 or the end of the connection - not silence.
	var got []string
	for {
		if err := slow.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
		_, raw, err := slow.ReadMessage()
		if err != nil {
			var ne net.Error
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce):
				// 1008 when the server's close frame got through; 1006 (abnormal closure) is
				// how this client reports a connection closed without one.
				if ce.Code != websocket.ClosePolicyViolation && ce.Code != websocket.CloseAbnormalClosure {
					t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Text, websocket.ClosePolicyViolation)
				}
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("the dropped client's connection stayed open: %v", err)
			}
			t.Logf("slow client: %d events, then %v", len(got), err)
			break
		}
		var f wsFrame
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatal(err)
		}
		if f.Type == "ready" {
			continue
		}
		if len(got) >= len(ids) || f.ID != ids[len(got)] {
			t.Fatalf("slow client frame %d: %s, want %s", len(got), f.ID, ids[min(len(got), len(ids)-1)])
		}
		got = append(got, f.ID)
	}
	if len(got) >= total {
		t.Fatalf("the slow client received all %d events: it was not slow", len(got))
	}
	// One connection dropped, counted once, as slow (the reasons are exported from the start).
	nSlow, nErr := testutil.ToFloat64(e.m.WSDropped.WithLabelValues(actors.DropSlow)), testutil.ToFloat64(e.m.WSDropped.WithLabelValues("error"))
	if n := testutil.CollectAndCount(e.m.WSDropped); n != 2 || nSlow != 1 || nErr != 0 {
		t.Errorf("ws dropped: %d label sets, slow %v, error %v; want slow 1, error 0", n, nSlow, nErr)
	}
}

// TestWSStopClosesSockets: EventHub.Stop closes every open socket with 1001 going away.
// Run with -race, it also checks that no goroutine of a socket's handler outlives it: the
// sockets opened after Stop reuse the connection buffers of the closed ones.
func TestWSStopClosesSockets(t *testing.T) {
	const n = 5
	e := wsEnv(t, 0, redisstore.Config{})
	var conns []*websocket.Conn
	for range n {
		c := dial(t, e, nil)
		expectReady(t, c)
		conns = append(conns, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.stopHub(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		if err := c.SetReadDeadline(time.Now().Add(frameWait)); err != nil {
			t.Fatal(err)
		}
		_, raw, err := c.ReadMessage()
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("after Stop: %q, %v; want close 1001 going away", raw, err)
		}
	}
	eventually(t, 10*time.Second, "ws clients back to 0", func() bool { return testutil.ToFloat64(e.m.WSClients) == 0 })

	// A socket opened after Stop is told to try again later.
	for range n {
		c := dial(t, e, nil)
		if err := c.SetReadDeadline(time.Now().Add(frameWait)); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.ReadMessage()
		if !websocket.IsCloseError(err, websocket.CloseTryAgainLater) {
			t.Fatalf("socket after Stop: %v; want close 1013 try again later", err)
		}
	}
}

// TestWSSurvivesPubSubReconnect kills the hub's Pub/Sub connection (CLIENT KILL) and records
// events while it is down: they are published to nobody, and the hub replays them from the
// log once subscribed again, so the live socket still gets every event, in order. (Not
// parallel: CLIENT KILL TYPE pubsub hits every subscriber of the server.)
func TestWSSurvivesPubSubReconnect(t *testing.T) {
	e := wsEnv(t, 0, redisstore.Config{})
	c := dial(t, e, nil)
	expectReady(t, c)
	expectEvents(t, c, record(t, e, "P", 5))
	admin, _ := redisSrv.Client(t)
	if n, err := admin.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Result(); err != nil || n < 1 {
		t.Fatalf("client kill: %d, %v", n, err)
	}
	ids := record(t, e, "P", 20)
	expectEvents(t, c, ids)
}
