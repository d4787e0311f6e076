package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // reversed: summarizeLatencies sorts
	}
	cases := []struct {
		name    string
		samples []time.Duration
		want    latencySummary
	}{
		{"none", nil, latencySummary{}},
		{"one", ms(7), latencySummary{N: 1, P50: 7 * time.Millisecond, P95: 7 * time.Millisecond, P99: 7 * time.Millisecond, Max: 7 * time.Millisecond}},
		{"1..100", ms(hundred...), latencySummary{N: 100, P50: 50 * time.Millisecond, P95: 95 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}},
		{"1..10", ms(3, 1, 2, 10, 9, 8, 7, 6, 5, 4), latencySummary{N: 10, P50: 5 * time.Millisecond, P95: 10 * time.Millisecond, P99: 10 * time.Millisecond, Max: 10 * time.Millisecond}},
		{"outlier", ms(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1000), latencySummary{N: 20, P50: time.Millisecond, P95: time.Millisecond, P99: time.Second, Max: time.Second}},
	}
	for _, c := range cases {
		if got := summarizeLatencies(c.samples); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
	// Nearest rank: the smallest sample with at least p% of the samples at or below it.
	sorted := ms(hundred...)
	slices.Sort(sorted)
	for p := 1; p <= 100; p++ {
		if got, want := percentile(sorted, float64(p)), time.Duration(p)*time.Millisecond; got != want {
			t.Errorf("p%d of 1..100 = %v, want %v", p, got, want)
		}
	}
	if got := percentile(ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 99.9); got != 20*time.Millisecond {
		t.Errorf("p99.9 of 20 samples = %v, want the max", got)
	}
	b, err := json.Marshal(latencySummary{N: 2, P50: 1500 * time.Microsecond, P95: 2 * time.Millisecond, P99: 2 * time.Millisecond, Max: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"n":2,"p50_ms":1.5,"p95_ms":2,"p99_ms":2,"max_ms":3000}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
}

func TestScheduleOffsetsAndCounts(t *testing.T) {
	if got := scheduleOffset(0, 1000); got != 0 {
		t.Errorf("offset(0) = %v", got)
	}
	if got := scheduleOffset(1500, 1000); got != 1500*time.Millisecond {
		t.Errorf("offset(1500) at 1000/s = %v", got)
	}
	if got := scheduleOffset(2, 3); got != 666666666 {
		t.Errorf("offset(2) at 3/s = %v", got)
	}
	cases := []struct {
		rate float64
		d    time.Duration
		want int
	}{
		{1000, time.Second, 1000},
		{1000, 3 * time.Second, 3000},
		{1000, 0, 0},
		{1000, time.Nanosecond, 1},
		{3, time.Second, 3},
		{0.5, 3 * time.Second, 2}, // due at 0s and 2s
		{0.5, 4 * time.Second, 2}, // 4s is the next one: not before 4s
		{5000, 33 * time.Second, 165000},
		{7, 1500 * time.Millisecond, 11},
		{0.01, 100 * time.Second, 1},
	}
	for _, c := range cases {
		got := scheduleCount(c.rate, c.d)
		if got != c.want {
			t.Errorf("scheduleCount(%v, %v) = %d, want %d", c.rate, c.d, got, c.want)
		}
	}
	// The defining property on awkward rates: offset(n-1) < d <= offset(n), and offsets grow.
	for _, rate := range []float64{0.3, 1, 3, 7, 999.9, 1000, 4321.5, 1e6} {
		for _, d := range []time.Duration{time.Millisecond, 333 * time.Millisecond, time.Second, 3 * time.Second, 61 * time.Second} {
			n := scheduleCount(rate, d)
			if n > 0 && scheduleOffset(n-1, rate) >= d {
				t.Errorf("rate %v, %v: comment %d due at %v, not before", rate, d, n-1, scheduleOffset(n-1, rate))
			}
			if scheduleOffset(n, rate) < d {
				t.Errorf("rate %v, %v: comment %d due at %v, before", rate, d, n, scheduleOffset(n, rate))
			}
		}
		for i := 1; i < 5000; i++ {
			if scheduleOffset(i, rate) < scheduleOffset(i-1, rate) {
				t.Fatalf("rate %v: offsets decrease at %d", rate, i)
			}
		}
	}
}

func TestLoadgenFlags(t *testing.T) {
	env := func(secret string) func(string) string {
		return func(k string) string {
			if k == "VOLUNTREE_FB_APP_SECRET" {
				return secret
			}
			return ""
		}
	}
	var stderr bytes.Buffer
	c, err := parseLoadgenFlags(nil, env("s3cret"), &stderr)
	if err != nil {
		t.Fatalf("defaults with the env secret: %v", err)
	}
	if string(c.Secret) != "s3cret" || c.Rate != 1000 || c.Duration != 30*time.Second || c.Warmup != 3*time.Second ||
		c.Posts != 10 || c.Senders != 10000 || c.Page != "loadgen-page" || c.Concurrency != 512 || c.Drain != 10*time.Second ||
		c.RedisURL != "" || c.JSON {
		t.Errorf("defaults: %+v", c)
	}
	if c.Endpoints.Webhook != "http://127.0.0.1:8080/webhooks/facebook" || c.Endpoints.Signups != "ws://127.0.0.1:8080/ws/signups" {
		t.Errorf("default endpoints: %+v", c.Endpoints)
	}
	c, err = parseLoadgenFlags([]string{"-secret", "flag", "-rate", "5000", "-duration", "60s", "-warmup", "0", "-json",
		"-redis-url", "redis://:pw@127.0.0.1:6379/2", "-url", "https://example.org/vt/"}, env("env"), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Secret) != "flag" || c.Rate != 5000 || c.Warmup != 0 || !c.JSON || c.Endpoints.Signups != "wss://example.org/vt/ws/signups" {
		t.Errorf("flags: %+v", c)
	}

	bad := []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", "-secret is required"},
		{[]string{"-rate", "0"}, "s", "-rate"},
		{[]string{"-rate", "-5"}, "s", "-rate"},
		{[]string{"-rate", "NaN"}, "s", "-rate"},
		{[]string{"-rate", "2e6"}, "s", "-rate"},
		{[]string{"-duration", "0s"}, "s", "-duration"},
		{[]string{"-warmup", "-1s"}, "s", "-warmup"},
		{[]string{"-drain", "-1s"}, "s", "-drain"},
		{[]string{"-posts", "0"}, "s", "-posts"},
		{[]string{"-senders", "0"}, "s", "-senders"},
		{[]string{"-concurrency", "0"}, "s", "-concurrency"},
		{[]string{"-page", ""}, "s", "-page"},
		{[]string{"-page", "a page"}, "s", "-page"},
		{[]string{"-page", "{x}"}, "s", "-page"},
		{[]string{"-url", "ftp://h"}, "s", "scheme"},
		{[]string{"-url", "127.0.0.1:8080"}, "s", "-url"},
		{[]string{"-url", "http://"}, "s", "no host"},
		{[]string{"-url", "http://h/?a=b"}, "s", "query"},
		{[]string{"-redis-url", "mysql://h"}, "s", "-redis-url"},
		{[]string{"-rate", "1e6", "-duration", "1h"}, "s", "comments"},
		{[]string{"-rate", "0.01", "-duration", "10s", "-warmup", "1s"}, "s", "measured window"},
		{[]string{"extra"}, "s", "unexpected arguments"},
		{[]string{"-nope"}, "s", "not defined"},
	}
	for _, b := range bad {
		stderr.Reset()
		_, err := parseLoadgenFlags(b.args, env(b.env), &stderr)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: got %v, want a usage error", b.args, err)
			continue
		}
		if !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: error %q does not mention %q", b.args, err, b.want)
		}
	}
	stderr.Reset()
	_, err = parseLoadgenFlags([]string{"-h"}, env("s"), &stderr)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "-concurrency") {
		t.Errorf("-h: %v\n%s", err, stderr.String())
	}
	// Wired into the command: a bad flag is exit status 2.
	var out bytes.Buffer
	stderr.Reset()
	if code := run(context.Background(), []string{"-rate", "0", "-secret", "s"}, &out, &stderr); code != 2 {
		t.Errorf("run loadgen -rate 0: exit %d, want 2 (%s)", code, stderr.String())
	}
}

func TestLoadgenEndpoints(t *testing.T) {
	cases := []struct{ base, webhook, classify, ws string }{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/webhooks/facebook", "http://127.0.0.1:8080/api/v1/classify", "ws://127.0.0.1:8080/ws/signups"},
		{"http://h:1/", "http://h:1/webhooks/facebook", "http://h:1/api/v1/classify", "ws://h:1/ws/signups"},
		{"https://h/a/b//", "https://h/a/b/webhooks/facebook", "https://h/a/b/api/v1/classify", "wss://h/a/b/ws/signups"},
		{"http://[::1]:8080", "http://[::1]:8080/webhooks/facebook", "http://[::1]:8080/api/v1/classify", "ws://[::1]:8080/ws/signups"},
	}
	for _, c := range cases {
		ep, err := newLoadgenEndpoints(c.base)
		if err != nil {
			t.Errorf("%s: %v", c.base, err)
			continue
		}
		if ep.Webhook != c.webhook || ep.Classify != c.classify || ep.Signups != c.ws {
			t.Errorf("%s: %+v", c.base, ep)
		}
	}
}

func TestLoadgenNames(t *testing.T) {
	n := loadgenNames{Page: "my_page", RunID: "ab12cd34", Posts: 3, Senders: 5}
	seen := map[string]bool{}
	senders := map[string]bool{}
	posts := map[string]bool{}
	for i := range 1000 {
		id := n.commentID(i)
		if seen[id] {
			t.Fatalf("comment id %q repeats", id)
		}
		seen[id] = true
		if got, ok := n.seq(id); !ok || got != i {
			t.Fatalf("seq(%q) = %d, %v; want %d", id, got, ok, i)
		}
		c := n.comment(i, []string{"a", "b"}, time.Unix(1700000000, 0))
		if c.CommentID != id || !strings.HasPrefix(id, c.PostID+"_") || !strings.HasPrefix(c.PostID, "my_page_") || c.CreatedTime != 1700000000 {
			t.Fatalf("comment %d: %+v", i, c)
		}
		senders[c.From.ID] = true
		posts[c.PostID] = true
		// The server's parser must take it as it is.
		body, _ := json.Marshal(facebook.CommentPayload(n.Page, c))
		msgs, err := facebook.ParseWebhook(body, time.Now())
		if err != nil || len(msgs) != 1 || msgs[0].ID != id || msgs[0].PostID != c.PostID || msgs[0].SenderID != c.From.ID {
			t.Fatalf("comment %d: parsed as %+v, %v", i, msgs, err)
		}
	}
	if len(senders) != 5 || len(posts) != 3 {
		t.Errorf("%d senders, %d posts; want 5 and 3", len(senders), len(posts))
	}
	if got := n.commentID(42); got != "my_page_1_ab12cd3442" {
		t.Errorf("commentID(42) = %q", got)
	}
	for _, id := range []string{"", "x", "my_page_1_zz12cd3442", "my_page_1_ab12cd34", "my_page_1_ab12cd34x", "my_page_1_ab12cd34-1",
		"my_page_1_ab12cd34+1", "my_page_2_ab12cd3442", "my_page_1_ab12cd34042", "my_page_1_ab12cd3499999999999999999999999"} {
		if i, ok := n.seq(id); ok {
			t.Errorf("seq(%q) = %d, want not of this run", id, i)
		}
	}
	if a, b := newLoadgenRunID(), newLoadgenRunID(); len(a) != loadgenRunIDLen || a == b || strings.ContainsAny(a, "_-") {
		t.Errorf("run ids %q %q", a, b)
	}
}

func TestLoadgenParseBench(t *testing.T) {
	out := "XADD k * f v: rps=0.0 (overall: nan) avg_msec=nan (overall: nan)\r" +
		"XADD k * f v: rps=61234.0 (overall: 61234.0) avg_msec=1.2 (overall: 1.2)\r" +
		"                                                              \r" +
		"XADD k * f v: 63492.06 requests per second, p50=1.159 msec\n"
	got, err := parseBenchRPS(out)
	if err != nil || got != 63492.06 {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := parseBenchRPS("Could not connect to Redis at 127.0.0.1:1: Connection refused\n"); err == nil ||
		!strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("no rate: %v", err)
	}
}

func TestLoadgenRedisBenchArgs(t *testing.T) {
	cases := []struct{ url, want string }{
		{"redis://127.0.0.1:6379", "-h 127.0.0.1 -p 6379"},
		{"redis://:pw@h:7000/3", "-h h -p 7000 -a pw --dbnum 3"},
		{"redis://u:pw@h:7000", "-h h -p 7000 -a pw --user u"},
		{"rediss://h:6380", "-h h -p 6380 --tls --sni h"},
		{"unix:///run/redis.sock", "-s /run/redis.sock"},
	}
	for _, c := range cases {
		opts, err := redis.ParseURL(c.url)
		if err != nil {
			t.Fatal(err)
		}
		args, err := redisBenchArgs(opts, "loadgen:bench:x")
		if err != nil {
			t.Fatal(err)
		}
		want := c.want + " -P 16 -n 200000 -q XADD loadgen:bench:x * f v"
		if got := strings.Join(args, " "); got != want {
			t.Errorf("%s:\n got %s\nwant %s", c.url, got, want)
		}
	}
	if got := redactRedisURL("redis://:pw@h:1"); strings.Contains(got, "pw") {
		t.Errorf("redacted: %s", got)
	}
}

// TestLoadgenRedisBench runs the real redis-benchmark against a private redis-server.
func TestLoadgenRedisBench(t *testing.T) {
	if testing.Short() {
		t.Skip("runs redis-benchmark")
	}
	for _, bin := range []string{"redis-server", "redis-benchmark"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := exec.Command("redis-server", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	url := fmt.Sprintf("redis://127.0.0.1:%d", port)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer rdb.Close()
	ctx := context.Background()
	for i := 0; rdb.Ping(ctx).Err() != nil; i++ {
		if i > 100 {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, err := loadgenRedisBench(ctx, url, "loadgen:bench:test")
	if err != nil {
		t.Fatal(err)
	}
	if b.XADDPerSec <= 0 || b.Addr != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Errorf("bench %+v", b)
	}
	if n := rdb.Exists(ctx, "loadgen:bench:test").Val(); n != 0 {
		t.Errorf("the benchmark key was not deleted")
	}
	if _, err := loadgenRedisBench(ctx, "redis://127.0.0.1:1", "k"); err == nil {
		t.Errorf("no error for a closed port")
	}
}

// fakeServer plays the server's contract: classify, signed webhooks, /ws/signups events.
type fakeServer struct {
	secret []byte
	// hooks, by the 1-based number of the webhook call
	status func(n int64) int    // reply status (200 = enqueue)
	events func(n int64) int    // events published for an enqueued comment
	delay  func() time.Duration // before the event
	slow   time.Duration        // before the webhook's answer
	calls  atomic.Int64
	others sync.Map // texts classified other: never to be sent

	mu   sync.Mutex
	subs map[chan []byte]chan struct{} // subscriber → closed to drop its socket
	log  [][]byte                      // every event frame published, for ?since=
	wg   sync.WaitGroup
	// dropAt: after webhook call dropAt, every open socket is cut (a node of a cluster died).
	dropAt int64

	// With token set, /ws/signups needs a ticket bought with it, for an organization that
	// owns page (as serve's feed does).
	token, page string
	tickets     sync.Map
}

func newFakeServer(t *testing.T, secret string) (*fakeServer, *httptest.Server) {
	f := &fakeServer{
		secret: []byte(secret),
		status: func(int64) int { return 200 },
		events: func(int64) int { return 1 },
		delay:  func() time.Duration { return time.Millisecond },
		subs:   map[chan []byte]chan struct{}{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/classify", f.classify)
	mux.HandleFunc("POST /webhooks/facebook", f.webhook)
	mux.HandleFunc("GET /ws/signups", f.signups)
	mux.HandleFunc("GET /api/v1/me", f.admin(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"org":{"id":"org_lg"}}`))
	}))
	mux.HandleFunc("GET /api/v1/pages", f.admin(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"items":[{"id":"other"},{"id":%q}],"total":2}`, f.page)
	}))
	mux.HandleFunc("POST /api/v1/ws-tickets", f.admin(func(w http.ResponseWriter, _ *http.Request) {
		tk := fmt.Sprintf("wst_%d", f.calls.Add(0)+time.Now().UnixNano())
		f.tickets.Store(tk, true)
		fmt.Fprintf(w, `{"ticket":%q,"expires_in":60}`, tk)
	}))
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.5e+08\n"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		f.wg.Wait()
	})
	return f, srv
}

func (f *fakeServer) classify(w http.ResponseWriter, r *http.Request) {
	var in struct{ Texts []string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	type result struct {
		Intent     voluntree.Intent `json:"intent"`
		Confidence float32          `json:"confidence"`
	}
	out := struct {
		Results []result `json:"results"`
	}{}
	for i := range in.Texts {
		intent := voluntree.IntentInterested
		if i%4 == 3 { // the model disagrees with some: they must not be sent
			intent = voluntree.IntentOther
			f.others.Store(in.Texts[i], true)
		}
		out.Results = append(out.Results, result{intent, 0.9})
	}
	json.NewEncoder(w).Encode(out)
}

func (f *fakeServer) webhook(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := facebook.VerifySignature(f.secret, body, r.Header.Get(facebook.SignatureHeader)); err != nil {
		http.Error(w, `{"error":"bad signature"}`, 403)
		return
	}
	msgs, err := facebook.ParseWebhook(body, time.Now())
	if err != nil || len(msgs) != 1 {
		http.Error(w, fmt.Sprintf(`{"error":%q}`, fmt.Sprint(len(msgs), err)), 400)
		return
	}
	n := f.calls.Add(1)
	if n == f.dropAt {
		f.mu.Lock()
		for ch, kick := range f.subs {
			close(kick)
			delete(f.subs, ch)
		}
		f.mu.Unlock()
	}
	time.Sleep(f.slow)
	if st := f.status(n); st != 200 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":"overloaded"}`, st)
		return
	}
	m := msgs[0]
	if _, bad := f.others.Load(m.Text); bad {
		http.Error(w, "a text the model does not call interested was sent", 400)
		return
	}
	frame, _ := json.Marshal(voluntree.Event{ID: fmt.Sprintf("%d-0", n), Type: voluntree.EventInterest, PostID: m.PostID,
		Interest: &voluntree.Interest{ID: m.ID, PostID: m.PostID, PageID: m.PageID, SenderID: m.SenderID, Kind: m.Kind,
			Text: m.Text, Intent: voluntree.IntentInterested, Confidence: 0.9, ReceivedAt: m.ReceivedAt}})
	copies := f.events(n)
	f.wg.Add(1)
	time.AfterFunc(f.delay(), func() {
		defer f.wg.Done()
		for range copies {
			f.publish(frame)
		}
	})
	w.WriteHeader(200)
}

func (f *fakeServer) publish(frame []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, frame)
	for ch := range f.subs {
		select {
		case ch <- frame:
		default:
			panic("fake subscriber too slow")
		}
	}
}

func (f *fakeServer) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if f.token == "" || r.Header.Get("Authorization") != "Bearer "+f.token {
			http.Error(w, `{"error":"unknown admin API token"}`, 401)
			return
		}
		h(w, r)
	}
}

func (f *fakeServer) signups(w http.ResponseWriter, r *http.Request) {
	if f.token != "" {
		if _, ok := f.tickets.LoadAndDelete(r.URL.Query().Get("ticket")); !ok {
			http.Error(w, `{"error":"a ticket is required"}`, 401)
			return
		}
	}
	conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, kick := make(chan []byte, 1<<16), make(chan struct{})
	since := r.URL.Query().Get("since")
	f.mu.Lock()
	var replay [][]byte
	if since != "" { // the events published after since's, in publication order
		for i := len(f.log) - 1; i >= 0; i-- {
			if bytes.Contains(f.log[i], []byte(`"id":"`+since+`"`)) {
				replay = append(replay, f.log[i+1:]...)
				break
			}
		}
	}
	f.subs[ch] = kick
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}()
	if since == "" {
		// What a real server may send besides this run's events: control frames, older events.
		conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ready","replayed":1,"last_id":"1-0"}`))
		conn.WriteMessage(websocket.TextMessage, []byte(`{"id":"1-0","type":"interest","post_id":"p","interest":{"id":"p_zzzzzzzz7","post_id":"p"}}`))
		conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"gap"}`))
	} else {
		for _, fr := range replay {
			conn.WriteMessage(websocket.TextMessage, fr)
		}
		conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ready","replayed":`+strconv.Itoa(len(replay))+`}`))
	}
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	for {
		select {
		case frame := <-ch:
			if err := conn.WriteMessage(websocket.TextMessage, frame); err != nil {
				return
			}
		case <-gone:
			return
		case <-kick:
			conn.UnderlyingConn().Close() // no close frame: the node is gone
			return
		}
	}
}

func loadgenTestConfig(t *testing.T, base string, extra ...string) loadgenConfig {
	t.Helper()
	args := append([]string{"-url", base, "-secret", "s3cret", "-rate", "400", "-warmup", "250ms", "-duration", "1s",
		"-drain", "2s", "-posts", "3", "-senders", "50", "-concurrency", "32"}, extra...)
	cfg, err := parseLoadgenFlags(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestLoadgenFakeServerPass(t *testing.T) {
	f, srv := newFakeServer(t, "s3cret")
	f.delay = func() time.Duration { return 5 * time.Millisecond }
	var stdout, stderr bytes.Buffer
	err := loadgenRun(context.Background(), loadgenTestConfig(t, srv.URL, "-json"), &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep loadgenReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout.String())
	}
	tot, m := rep.Total, rep.Measured
	if tot.Sent != 500 || tot.Acked != 500 || tot.Events != 500 || tot.Lost != 0 || tot.Duplicated != 0 || tot.Rejected != 0 {
		t.Errorf("total %+v", tot)
	}
	if m.Sent != 400 || m.Acked != 400 || m.Events != 400 {
		t.Errorf("measured %+v", m)
	}
	if rep.Window != 1 || rep.Sustained < 390 || rep.Sustained > 410 || rep.Texts != len(loadgenTexts)-len(loadgenTexts)/4 {
		t.Errorf("window %v sustained %v texts %d", rep.Window, rep.Sustained, rep.Texts)
	}
	if rep.Delivered < 300 || rep.Delivered > 500 {
		t.Errorf("delivered %v", rep.Delivered)
	}
	if rep.E2E.N != 400 || rep.Ack.N != 400 || rep.E2E.P50 < 5*time.Millisecond || rep.E2E.Max > time.Second {
		t.Errorf("latencies e2e %+v ack %+v", rep.E2E, rep.Ack)
	}
	// The timeline cuts the run into seconds of due time: 400/s for 1.25 s.
	if len(rep.Timeline) != 2 || rep.Timeline[0].Sent != 400 || rep.Timeline[1].Sent != 100 ||
		rep.Timeline[0].E2E.N != 400 || rep.Timeline[1].E2E.N != 100 || rep.Timeline[1].T != 1 || rep.Timeline[0].Lost != 0 {
		t.Errorf("timeline %+v", rep.Timeline)
	}
	if age := time.Since(time.UnixMilli(rep.StartedUnixMs)); age < time.Second || age > time.Minute {
		t.Errorf("started %d ms: %v ago", rep.StartedUnixMs, age)
	}
	if rep.ForeignEvents != 1 || rep.ControlFrames["ready"] != 1 || rep.ControlFrames["gap"] != 1 {
		t.Errorf("foreign %d control %v", rep.ForeignEvents, rep.ControlFrames)
	}
	if f.calls.Load() != 500 {
		t.Errorf("server got %d webhooks", f.calls.Load())
	}
	text := stderr.String()
	for _, want := range []string{"PASS", "events/s = ", "% of target (events of comments sent in the 1.00s measured window", "e2e latency  p50", "not sending", "sent/s"} {
		if !strings.Contains(text, want) {
			t.Errorf("stderr lacks %q:\n%s", want, text)
		}
	}
}

func TestLoadgenFakeServerLossDuplicateReject(t *testing.T) {
	f, srv := newFakeServer(t, "s3cret")
	f.status = func(n int64) int {
		if n == 30 || n == 31 {
			return 503
		}
		return 200
	}
	f.events = func(n int64) int {
		switch n {
		case 10:
			return 0 // lost
		case 20:
			return 2 // duplicated
		}
		return 1
	}
	var stdout, stderr bytes.Buffer
	err := loadgenRun(context.Background(), loadgenTestConfig(t, srv.URL, "-drain", "300ms"), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "1 acknowledged comments lost, 1 events duplicated") {
		t.Fatalf("err %v\n%s", err, stderr.String())
	}
	row := func(name string, total int) string { return fmt.Sprintf("  %-22s %10d ", name, total) }
	for _, want := range []string{"FAIL", "HTTP 503: 2", row("sent", 500), row("acked (200)", 498), row("rejected", 2),
		row("events", 497), row("lost", 1), row("duplicated", 1)} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestLoadgenBadSecretFails(t *testing.T) {
	_, srv := newFakeServer(t, "other")
	var stdout, stderr bytes.Buffer
	cfg := loadgenTestConfig(t, srv.URL, "-duration", "200ms", "-warmup", "0s")
	err := loadgenRun(context.Background(), cfg, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "no comment was acknowledged (403: 80)") {
		t.Fatalf("err %v\n%s", err, stdout.String())
	}
}

func TestLoadgenInterrupted(t *testing.T) {
	_, srv := newFakeServer(t, "s3cret")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(700*time.Millisecond, cancel)
	var stdout, stderr bytes.Buffer
	start := time.Now()
	cfg := loadgenTestConfig(t, srv.URL, "-duration", "20s", "-drain", "10s")
	err := loadgenRun(ctx, cfg, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("err %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v after Ctrl-C", el)
	}
	text := stdout.String()
	if !strings.Contains(text, "STOPPED      interrupted") || !strings.Contains(text, "INCOMPLETE") {
		t.Errorf("report:\n%s", text)
	}
}

func TestLoadgenWebSocketRefused(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/classify", (&fakeServer{}).classify)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	err := loadgenRun(context.Background(), loadgenTestConfig(t, srv.URL), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "/ws/signups") {
		t.Fatalf("err %v", err)
	}
}

func TestLoadgenTooFewInterestedTexts(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/classify", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Texts []string }
		json.NewDecoder(r.Body).Decode(&in)
		res := make([]map[string]any, len(in.Texts))
		for i := range res {
			res[i] = map[string]any{"intent": "other", "confidence": 0.5}
		}
		res[0]["intent"] = "interested"
		json.NewEncoder(w).Encode(map[string]any{"results": res})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	err := loadgenRun(context.Background(), loadgenTestConfig(t, srv.URL), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "only 1 of the") {
		t.Fatalf("err %v", err)
	}
}

// TestLoadgenSlowServerCountsFromDueTime: a server that answers slower than the target rate
// makes comments wait for a worker; their latency counts from when they were due
// (no coordinated omission), they show up as late sends and in the sustained rate.
func TestLoadgenSlowServerCountsFromDueTime(t *testing.T) {
	f, srv := newFakeServer(t, "s3cret")
	f.slow = 20 * time.Millisecond // 2 workers: at most 100 answers/s for 200 comments/s
	var stdout bytes.Buffer
	cfg := loadgenTestConfig(t, srv.URL, "-rate", "200", "-warmup", "0s", "-duration", "1s", "-concurrency", "2", "-json")
	if err := loadgenRun(context.Background(), cfg, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	var rep loadgenReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Total.Sent != 200 || rep.Total.Lost != 0 {
		t.Errorf("total %+v: every comment is still sent, late", rep.Total)
	}
	if rep.Measured.LateSends < 150 {
		t.Errorf("%d late sends, want most of 200", rep.Measured.LateSends)
	}
	// The last comment is due at 995 ms and sent after ~2 s.
	if rep.E2E.Max < 800*time.Millisecond || rep.Ack.Max > 200*time.Millisecond {
		t.Errorf("e2e %+v (from the due time), ack %+v (from the send)", rep.E2E, rep.Ack)
	}
	if rep.Sustained > 120 || rep.Sustained < 60 {
		t.Errorf("sustained %.1f/s, want about the server's 100/s", rep.Sustained)
	}
}

// With -token, loadgen checks that the token's organization owns the page, buys a ticket and
// opens the feed with it; it also reports the node's memory from /metrics.
func TestLoadgenTicketAndMemory(t *testing.T) {
	f, srv := newFakeServer(t, "s3cret")
	f.token, f.page = "vt_lg", "lg-page"
	var stdout, stderr bytes.Buffer
	err := loadgenRun(context.Background(), loadgenTestConfig(t, srv.URL, "-json", "-token", "vt_lg", "-page", "lg-page"), &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep loadgenReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Total.Lost != 0 || rep.Total.Acked != 500 {
		t.Fatalf("total %+v", rep.Total)
	}
	if m := rep.Memory; m == nil || m.Samples < 1 || m.PeakBytes != 1.5e8 || m.SteadyBytes != 1.5e8 {
		t.Fatalf("memory %+v, want the fake's 150 MB", rep.Memory)
	}
	if !strings.Contains(stderr.String(), "RSS peak 150 MB") {
		t.Errorf("the text report lacks the memory line:\n%s", stderr.String())
	}

	// A page the organization does not own: refused before the run, saying what to do.
	stderr.Reset()
	err = loadgenRun(context.Background(), loadgenTestConfig(t, srv.URL, "-token", "vt_lg", "-page", "not-mine"), io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "voluntree admin add-page -org org_lg -page not-mine") {
		t.Fatalf("unowned page: %v", err)
	}
	// No token on a server that needs a ticket: a clear error.
	err = loadgenRun(context.Background(), loadgenTestConfig(t, srv.URL), io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "-token") {
		t.Fatalf("no token: %v", err)
	}
	// A wrong token.
	err = loadgenRun(context.Background(), loadgenTestConfig(t, srv.URL, "-token", "vt_nope", "-page", "lg-page"), io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "refused -token") {
		t.Fatalf("wrong token: %v", err)
	}
}

func TestNodeCounters(t *testing.T) {
	scrape := []byte(`# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
process_cpu_seconds_total 12.5
voluntree_stream_entries_total{outcome="done",stream="ingest"} 900
voluntree_stream_entries_total{outcome="done",stream="effects"} 40
voluntree_stream_entries_total{outcome="read",stream="ingest"} 950
voluntree_batcher_batch_size_sum 880
voluntree_batcher_batch_size_count 20
voluntree_batcher_batch_size_bucket{le="+Inf"} 20
`)
	c := parseNodeCounters(scrape)
	if c != (nodeCounters{CPU: 12.5, IngestDone: 900, BatchSum: 880, BatchCount: 20}) {
		t.Fatalf("counters %+v", c)
	}
	urls := []string{"http://a/metrics", "http://b/metrics", "http://c/metrics"}
	before := []nodeCounters{{CPU: 10, IngestDone: 100, BatchSum: 100, BatchCount: 10}, {CPU: 50, IngestDone: 1500, BatchSum: 400, BatchCount: 30}, {}}
	after := []nodeCounters{{CPU: 13, IngestDone: 1100, BatchSum: 500, BatchCount: 20}, {CPU: 2, IngestDone: 1000, BatchSum: 200, BatchCount: 10}, {}}
	r := summarizeNodes(urls, before, after, []error{nil, nil, errors.New("down")}, 10*time.Second)
	a, b := r.Nodes[0], r.Nodes[1]
	// a: 3 CPU s, 1,000 comments; b restarted (its counters went down): 2 CPU s, 1,000 comments.
	if a.CPUSeconds != 3 || a.Comments != 1000 || a.PerSecond != 100 || a.CPUPer1000 != 1.5 ||
		b.CPUSeconds != 2 || b.Comments != 1000 || b.CPUPer1000 != 1 || r.Nodes[2].Error != "down" || r.AvgBatch != 600.0/20 {
		t.Fatalf("nodes %+v, average batch %v", r.Nodes, r.AvgBatch)
	}
}

// TestLoadgenFeedReconnectsWithSince: the feed's socket is cut mid-run (its node died behind
// an ingress); the loadgen connects again with since= the last event it read, the events
// published meanwhile are replayed, and nothing is lost or counted twice.
func TestLoadgenFeedReconnectsWithSince(t *testing.T) {
	f, srv := newFakeServer(t, "s3cret")
	f.dropAt = 150
	var stdout, stderr bytes.Buffer
	if err := loadgenRun(context.Background(), loadgenTestConfig(t, srv.URL, "-json"), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep loadgenReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout.String())
	}
	if tot := rep.Total; tot.Sent != 500 || tot.Events != 500 || tot.Lost != 0 || tot.Duplicated != 0 || rep.Reconnects != 1 || rep.Stopped != "" {
		t.Fatalf("total %+v, reconnects %d, stopped %q\n%s", tot, rep.Reconnects, rep.Stopped, stderr.String())
	}
	// Without -reconnect the run stops there.
	stdout.Reset()
	stderr.Reset()
	f2, srv2 := newFakeServer(t, "s3cret")
	f2.dropAt = 150
	if err := loadgenRun(context.Background(), loadgenTestConfig(t, srv2.URL, "-json", "-reconnect=false"), &stdout, &stderr); err == nil {
		var rep loadgenReport
		json.Unmarshal(stdout.Bytes(), &rep)
		if rep.Stopped == "" {
			t.Fatalf("-reconnect=false: the run went on after the feed dropped: %+v", rep.Total)
		}
	}
}
