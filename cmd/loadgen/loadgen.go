package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
)

// `loadgen` drives a running server the way Facebook would, open loop: comment i is
// due at start + i/rate whatever the server does, one comment per signed webhook call, and
// every comment is a text the server's own model classifies `interested`, so each
// acknowledged comment must come back exactly once as an "interest" event on /ws/signups.
// Latencies are measured from the due time (no coordinated omission), figures exclude the
// warmup, and the exit status is 1 when an acknowledged comment was lost or an event
// duplicated.

const (
	loadgenLate           = 10 * time.Millisecond // a send this much after its due time is late
	loadgenRequestTimeout = 10 * time.Second      // one webhook or classify call
	loadgenReadyWait      = 2 * time.Second       // for the WebSocket's "ready" frame
	loadgenFeedPing       = time.Second           // the live feed's ping period
	loadgenFeedDead       = 3 * time.Second       // no frame or pong for this long: the feed is dead
	loadgenInterruptDrain = 2 * time.Second       // drain cap after Ctrl-C
	loadgenSettle         = time.Second           // extra wait for duplicates once all arrived
	loadgenMaxComments    = 10_000_000            // rate × (warmup + duration) cap (memory)
	loadgenMinTexts       = 5
	loadgenMinRate        = 0.01
	loadgenMaxRate        = 1e6
	loadgenMaxPageID      = 200
	loadgenBenchRequests  = 200000
	loadgenBenchPipeline  = 16
	loadgenRunIDLen       = 8
)

// loadgenTexts are volunteer-interest comments as people write them (typos included). Before
// a run they go through /api/v1/classify and only the ones the server calls `interested` are
// sent, so that every comment is expected to produce exactly one event.
var loadgenTexts = []string{
	"Count me in!",
	"I'd love to help out on Saturday",
	"Sign me up please",
	"I want to volunteer",
	"Put me down for the morning shift",
	"I can help!",
	"Me and my sister would love to volunteer",
	"Id love to help",
	"count me in 🙌",
	"I'm interested in volunteering",
	"Sign me up!",
	"I would like to join",
	"Yes! I'll be there to help",
	"I can come and help with the setup",
	"Happy to help, sign me up",
	"I'm available, count me in",
	"interested!",
	"I'd like to volunteer for this",
	"I want to sign up to help",
	"I volunteer!",
	"Please add me to the volunteer list",
	"I'll help out",
	"Definitely in, see you there",
	"wanna help!! sign me up",
	"Count me and my husband in",
	"I'm down to help",
	"I'd be glad to volunteer on Sunday",
	"Add me as a volunteer please",
	"I want to join the cleanup crew",
	"I'd love to be part of this, sign me up",
	"Ill be there to help",
	"sign me upp",
	"I'm keen to volunteer",
	"Put my name down please",
	"I can volunteer a few hours",
	"Yes please, I'd like to help",
	"Interested in helping out!",
	"I'll bring a friend and we'll both help",
	"Im in!",
	"Voluntering sounds great, count me in",
	"id like to volunter pls sign me up",
	"I can help in the afternoon, count me in",
}

type loadgenConfig struct {
	URL         string
	Endpoints   loadgenEndpoints
	Secret      []byte
	Rate        float64 // comments per second
	Duration    time.Duration
	Warmup      time.Duration
	Posts       int
	Senders     int
	Page        string
	Concurrency int
	Drain       time.Duration
	RedisURL    string
	JSON        bool
	Token       string   // admin API token of the page's organization: buys the live-feed ticket
	MetricsTok  string   // Bearer token of /metrics, when the server requires one
	Nodes       []string // /metrics URLs of every node (CPU, comments, batches); default: -url's
	Reconnect   bool     // reconnect a dropped feed with since (a node went away behind an ingress)
}

// runLoadgen implements `loadgen`.
func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseLoadgenFlags(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		// The tool's own collector pauses and assists land in the latencies it measures
		// (BENCHMARKS.md); its heap is small.
		debug.SetGCPercent(800)
	}
	return loadgenRun(ctx, cfg, stdout, stderr)
}

func parseLoadgenFlags(args []string, getenv func(string) string, stderr io.Writer) (loadgenConfig, error) {
	var c loadgenConfig
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: loadgen [flags]

Open-loop load test of a running server: signed Facebook comment webhooks at -rate per second,
each expected back exactly once as an "interest" event on /ws/signups. Progress goes to stderr,
the report to stdout; exit status 1 when an acknowledged comment was lost or an event duplicated.

flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "server base URL (the WebSocket URL is derived from it)")
	secret := fs.String("secret", "", "Facebook app secret that signs the webhooks (default: env VOLUNTREE_FB_APP_SECRET)")
	fs.Float64Var(&c.Rate, "rate", 1000, "target comments per second (open loop)")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "measured sending time, after the warmup")
	fs.DurationVar(&c.Warmup, "warmup", 3*time.Second, "sending time before the measured window (excluded from the figures)")
	fs.IntVar(&c.Posts, "posts", 10, "posts the comments are spread over")
	fs.IntVar(&c.Senders, "senders", 10000, "distinct commenters")
	fs.StringVar(&c.Page, "page", "loadgen-page", "page id of the webhooks")
	fs.IntVar(&c.Concurrency, "concurrency", 512, "max in-flight webhook requests")
	fs.DurationVar(&c.Drain, "drain", 10*time.Second, "max wait for outstanding events after the last send")
	fs.StringVar(&c.RedisURL, "redis-url", "", "also measure raw XADD/s of this Redis with redis-benchmark (e.g. redis://127.0.0.1:6379)")
	fs.BoolVar(&c.JSON, "json", false, "also print the report as JSON: JSON to stdout, the text report to stderr")
	fs.StringVar(&c.Token, "token", "", "admin API token of the organization that owns -page: it buys the live-feed ticket (default: env VOLUNTREE_ADMIN_TOKEN; without one, the feed is opened without a ticket, as servers before tickets allowed)")
	fs.BoolVar(&c.Reconnect, "reconnect", true, "when the live feed drops (its node went away behind an ingress), connect again with since= and go on; false: stop the run")
	nodes := fs.String("nodes", "", "comma-separated base URLs of every node of the cluster, for each one's CPU, comments and model batches (default: -url)")
	fs.StringVar(&c.MetricsTok, "metrics-token", "", "Bearer token of the server's /metrics, for the memory figures (default: env VOLUNTREE_METRICS_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return c, usageError{err}
	}
	bad := func(format string, a ...any) (loadgenConfig, error) {
		return c, usageError{fmt.Errorf(format, a...)}
	}
	if fs.NArg() > 0 {
		return bad("unexpected arguments %q", fs.Args())
	}
	if *secret == "" {
		*secret = getenv("VOLUNTREE_FB_APP_SECRET")
	}
	if c.Token == "" {
		c.Token = getenv("VOLUNTREE_ADMIN_TOKEN")
	}
	if c.MetricsTok == "" {
		c.MetricsTok = getenv("VOLUNTREE_METRICS_TOKEN")
	}
	if *secret == "" {
		return bad("-secret is required (or set VOLUNTREE_FB_APP_SECRET): the server rejects unsigned webhooks")
	}
	c.Secret = []byte(*secret)
	ep, err := newLoadgenEndpoints(c.URL)
	if err != nil {
		return c, usageError{err}
	}
	c.Endpoints = ep
	c.Nodes = []string{ep.Metrics}
	if *nodes != "" {
		c.Nodes = nil
		for _, n := range splitList(*nodes) {
			nep, err := newLoadgenEndpoints(n)
			if err != nil {
				return c, usageError{fmt.Errorf("-nodes: %w", err)}
			}
			c.Nodes = append(c.Nodes, nep.Metrics)
		}
	}
	switch {
	case math.IsNaN(c.Rate) || c.Rate < loadgenMinRate || c.Rate > loadgenMaxRate:
		return bad("-rate must be between %g and %g comments per second, not %v", loadgenMinRate, loadgenMaxRate, c.Rate)
	case c.Duration <= 0:
		return bad("-duration must be positive, not %v", c.Duration)
	case c.Warmup < 0:
		return bad("-warmup must not be negative, not %v", c.Warmup)
	case c.Drain < 0:
		return bad("-drain must not be negative, not %v", c.Drain)
	case c.Posts < 1:
		return bad("-posts must be at least 1, not %d", c.Posts)
	case c.Senders < 1:
		return bad("-senders must be at least 1, not %d", c.Senders)
	case c.Concurrency < 1 || c.Concurrency > 100000:
		return bad("-concurrency must be between 1 and 100000, not %d", c.Concurrency)
	case c.Page == "" || len(c.Page) > loadgenMaxPageID || strings.ContainsAny(c.Page, " \t\r\n{}"):
		return bad("-page %q is not a page id: 1 to %d bytes, no spaces or braces", c.Page, loadgenMaxPageID)
	}
	total := c.Warmup + c.Duration
	if total < c.Duration { // overflow
		return bad("-warmup + -duration is too long")
	}
	if n := c.Rate * total.Seconds(); n > loadgenMaxComments {
		return bad("-rate × (-warmup + -duration) = %.0f comments, more than the %d one run can track", n, loadgenMaxComments)
	}
	if scheduleCount(c.Rate, total) <= scheduleCount(c.Rate, c.Warmup) {
		return bad("no comment is due in the measured window at -rate %v for -duration %v", c.Rate, c.Duration)
	}
	if c.RedisURL != "" {
		if _, err := redis.ParseURL(c.RedisURL); err != nil {
			return bad("-redis-url: %v", err)
		}
	}
	return c, nil
}

// loadgenEndpoints are the server's URLs, derived from -url.
type loadgenEndpoints struct {
	Webhook  string
	Classify string
	Signups  string // ws:// or wss://
	API      string // the admin API's base: /api/v1
	Metrics  string
}

func newLoadgenEndpoints(base string) (loadgenEndpoints, error) {
	u, err := url.Parse(base)
	if err != nil {
		return loadgenEndpoints{}, fmt.Errorf("-url: %w", err)
	}
	var wsScheme string
	switch u.Scheme {
	case "http":
		wsScheme = "ws"
	case "https":
		wsScheme = "wss"
	default:
		return loadgenEndpoints{}, fmt.Errorf("-url %q: the scheme must be http or https", base)
	}
	if u.Host == "" {
		return loadgenEndpoints{}, fmt.Errorf("-url %q: no host", base)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return loadgenEndpoints{}, fmt.Errorf("-url %q: give the base URL only, without query or fragment", base)
	}
	prefix := strings.TrimRight(u.Path, "/")
	at := func(scheme, path string) string {
		v := *u
		v.Scheme, v.Path, v.RawPath = scheme, prefix+path, ""
		return v.String()
	}
	return loadgenEndpoints{
		Webhook:  at(u.Scheme, "/webhooks/facebook"),
		Classify: at(u.Scheme, "/api/v1/classify"),
		Signups:  at(wsScheme, "/ws/signups"),
		API:      at(u.Scheme, "/api/v1"),
		Metrics:  at(u.Scheme, "/metrics"),
	}, nil
}

// loadgenNames builds the ids of one run: posts <page>_<n>, comments
// <post>_<run id><seq>, senders lg<run id>-<k>. A comment id maps back to its seq.
type loadgenNames struct {
	Page    string
	RunID   string // loadgenRunIDLen characters of [0-9a-z]
	Posts   int
	Senders int
}

func newLoadgenRunID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, loadgenRunIDLen)
	rand.Read(b) // never fails (crypto/rand)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (n loadgenNames) postID(i int) string {
	return n.Page + "_" + strconv.Itoa(i%n.Posts+1)
}

func (n loadgenNames) commentID(i int) string {
	return n.postID(i) + "_" + n.RunID + strconv.Itoa(i)
}

// sender spreads comments over the senders pseudo-randomly (a multiplicative hash), so that
// consecutive comments come from different people, as on a busy post.
func (n loadgenNames) sender(i int) (id, name string) {
	k := int(uint64(i) * 2654435761 % uint64(n.Senders))
	return "lg" + n.RunID + "-" + strconv.Itoa(k), "Loadgen Volunteer " + strconv.Itoa(k)
}

// seq returns the sequence number of a comment id of this run.
func (n loadgenNames) seq(commentID string) (int, bool) {
	k := strings.LastIndexByte(commentID, '_')
	if k < 0 {
		return 0, false
	}
	digits, ok := strings.CutPrefix(commentID[k+1:], n.RunID)
	if !ok || digits == "" || digits[0] < '0' || digits[0] > '9' {
		return 0, false
	}
	v, err := strconv.ParseUint(digits, 10, 62)
	if err != nil || n.commentID(int(v)) != commentID {
		return 0, false
	}
	return int(v), true
}

// comment is the webhook change of comment i, written at created.
func (n loadgenNames) comment(i int, texts []string, created time.Time) facebook.ChangeValue {
	sid, sname := n.sender(i)
	return facebook.ChangeValue{
		CommentID:   n.commentID(i),
		PostID:      n.postID(i),
		From:        &facebook.User{ID: sid, Name: sname},
		Message:     texts[i%len(texts)],
		CreatedTime: created.Unix(),
	}
}

// Bits of lgComment.state: whoever sets the second bit counts the comment as matched.
const (
	lgAcked uint32 = 1 << iota
	lgEvent
)

// lgStatusError is the status of a webhook call that got no HTTP response.
const lgStatusError = -1

// lgComment is what happened to one comment. Worker fields are written by the one worker that
// sent it, reader fields by the WebSocket reader; both are read once those goroutines ended.
// state is the only field shared while running.
type lgComment struct {
	sentNs  int64 // worker: when the request started, ns since loadgen.base
	ackNs   int64 // worker: request start to response
	status  int32 // worker: HTTP status, lgStatusError, 0 = never sent
	retry   bool  // worker: a refusal carried Retry-After
	events  int32 // reader: events received for it
	eventNs int64 // reader: when the first event arrived, ns since loadgen.base
	state   atomic.Uint32
}

type loadgen struct {
	cfg    loadgenConfig
	names  loadgenNames
	texts  []string
	client *http.Client
	stderr io.Writer

	base    time.Time    // zero of every *Ns
	startNs atomic.Int64 // when comment 0 was due, ns since base
	n       int          // comments of a complete run
	first   int          // first comment of the measured window
	recs    []lgComment

	sent, finished, acked, rejected, matched, events atomic.Int64

	// reader only, read after it ended
	foreign, badFrames int
	control            map[string]int
	lastID             string // the newest event id read: where a reconnected feed resumes (since)
	reconnects         int

	mu       sync.Mutex
	recent   []time.Duration // e2e latencies of events since the last progress line
	firstErr string          // first transport error of a webhook call
}

func newLoadgen(cfg loadgenConfig, runID string, texts []string, stderr io.Writer) *loadgen {
	n := scheduleCount(cfg.Rate, cfg.Warmup+cfg.Duration)
	return &loadgen{
		cfg:     cfg,
		names:   loadgenNames{Page: cfg.Page, RunID: runID, Posts: cfg.Posts, Senders: cfg.Senders},
		texts:   texts,
		client:  newLoadgenClient(cfg.Concurrency),
		stderr:  stderr,
		base:    time.Now(),
		n:       n,
		first:   scheduleCount(cfg.Rate, cfg.Warmup),
		recs:    make([]lgComment, n),
		control: map[string]int{},
	}
}

func newLoadgenClient(conns int) *http.Client {
	return &http.Client{
		Timeout: loadgenRequestTimeout,
		Transport: &http.Transport{
			Proxy:               nil, // measure the server, not a proxy
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 5 * time.Second,
			DisableCompression:  true,
		},
	}
}

func (g *loadgen) since() int64 { return int64(time.Since(g.base)) }

// dueNs is when comment i was due, ns since base.
func (g *loadgen) dueNs(i int) int64 { return g.startNs.Load() + int64(scheduleOffset(i, g.cfg.Rate)) }

func loadgenRun(ctx context.Context, cfg loadgenConfig, stdout, stderr io.Writer) error {
	if cfg.RedisURL != "" {
		if _, err := exec.LookPath("redis-benchmark"); err != nil {
			return fmt.Errorf("-redis-url needs redis-benchmark (Debian: redis-tools): %w", err)
		}
	}
	client := newLoadgenClient(4)
	client.Timeout = 30 * time.Second // the first batch may load the model
	texts, err := loadgenPickTexts(ctx, client, cfg.Endpoints.Classify, loadgenTexts, stderr)
	client.CloseIdleConnections()
	if err != nil {
		return err
	}
	ticket := ""
	if cfg.Token != "" {
		if ticket, err = loadgenTicket(ctx, client, cfg.Endpoints, cfg.Token, cfg.Page); err != nil {
			return err
		}
	}
	g := newLoadgen(cfg, newLoadgenRunID(), texts, stderr)
	defer g.client.CloseIdleConnections()

	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 64 << 10}
	conn, resp, err := dialer.DialContext(ctx, withTicket(cfg.Endpoints.Signups, ticket), nil)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized && ticket == "" {
			return fmt.Errorf("subscribe to %s: HTTP %s: the feed needs a ticket: pass -token with an admin API token of the organization that owns -page %s (voluntree admin create-token -org ID)",
				cfg.Endpoints.Signups, resp.Status, cfg.Page)
		}
		if resp != nil {
			return fmt.Errorf("subscribe to %s: HTTP %s: %w", cfg.Endpoints.Signups, resp.Status, err)
		}
		return fmt.Errorf("subscribe to %s: %w", cfg.Endpoints.Signups, err)
	}
	conn.SetReadLimit(4 << 20)
	ready := make(chan struct{})
	wsDone := make(chan struct{})
	var wsErr error
	var closing atomic.Bool
	var connMu sync.Mutex // guards conn: the feed replaces it when it reconnects
	current := func() *websocket.Conn { connMu.Lock(); defer connMu.Unlock(); return conn }
	go func() {
		defer close(wsDone)
		c, first := conn, ready
		for {
			err := g.read(c, first)
			first = nil
			if closing.Load() {
				return
			}
			if !cfg.Reconnect {
				wsErr = err
				return
			}
			// The feed dropped (its node went away): connect again, resuming after the last
			// event read, so the events published meanwhile are replayed and none is missed.
			next, rerr := g.reconnect(ctx, &dialer, client, cfg, &closing, err)
			if rerr != nil {
				if !closing.Load() {
					wsErr = fmt.Errorf("%w; reconnecting: %w", err, rerr)
				}
				return
			}
			connMu.Lock()
			conn, c = next, next
			connMu.Unlock()
			if closing.Load() {
				next.Close()
				return
			}
		}
	}()
	stopWS := func() {
		closing.Store(true)
		c := current()
		c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.Close()
		<-wsDone
	}
	select {
	case <-ready:
	case <-time.After(loadgenReadyWait):
		fmt.Fprintf(stderr, "loadgen: no \"ready\" frame on %s within %v; starting anyway\n", cfg.Endpoints.Signups, loadgenReadyWait)
	case <-wsDone:
		current().Close()
		return fmt.Errorf("%s closed before the run: %w", cfg.Endpoints.Signups, wsErr)
	case <-ctx.Done():
		stopWS()
		return ctx.Err()
	}

	fmt.Fprintf(stderr, "loadgen run %s: %g comments/s for %v warmup + %v measured, %d posts, %d senders, %d texts, concurrency %d → %s\n",
		g.names.RunID, cfg.Rate, cfg.Warmup, cfg.Duration, cfg.Posts, cfg.Senders, len(texts), cfg.Concurrency, cfg.Endpoints.Webhook)

	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	go func() {
		select {
		case <-wsDone:
			cancelRun(fmt.Errorf("%s closed during the run: %w", cfg.Endpoints.Signups, wsErr))
		case <-runCtx.Done():
		}
	}()

	progressDone := make(chan struct{})
	progressStop := make(chan struct{})
	rss := &rssSampler{url: cfg.Endpoints.Metrics, token: cfg.MetricsTok, client: newLoadgenClient(2)}
	rssCtx, stopRSS := context.WithCancel(context.Background())
	rssDone := make(chan struct{})
	go func() { defer close(rssDone); rss.run(rssCtx, time.Second, g.since) }()
	nodeClient := newLoadgenClient(len(cfg.Nodes))
	nodesBefore, nodeErrs := nodeSnapshots(ctx, nodeClient, cfg.Nodes, cfg.MetricsTok)
	nodesFrom := time.Now()
	g.startNs.Store(g.since())
	go func() {
		defer close(progressDone)
		g.progress(progressStop)
	}()
	jobs := make(chan int)
	var workers sync.WaitGroup
	for range cfg.Concurrency {
		workers.Go(func() {
			for i := range jobs {
				g.send(i)
			}
		})
	}
	scheduled := g.schedule(runCtx, jobs)
	schedEnd := g.since()
	workers.Wait()

	stopped := ""
	drain := cfg.Drain
	drainCtx := runCtx
	switch {
	case ctx.Err() != nil:
		stopped = "interrupted"
		drain = min(drain, loadgenInterruptDrain)
		drainCtx = context.Background() // still collect what is on its way, briefly
	case runCtx.Err() != nil:
		stopped = context.Cause(runCtx).Error()
	}
	if stopped == "" || stopped == "interrupted" {
		if !g.drain(drainCtx, drain, wsDone) && ctx.Err() != nil && stopped == "" {
			stopped = "interrupted while draining"
		}
	}
	close(progressStop)
	<-progressDone
	stopRSS()
	<-rssDone
	select {
	case <-wsDone:
		if stopped == "" && wsErr != nil {
			stopped = fmt.Sprintf("%s closed while draining: %v", cfg.Endpoints.Signups, wsErr)
		}
	default:
	}
	stopWS()

	nodesAfter, afterErrs := nodeSnapshots(context.Background(), nodeClient, cfg.Nodes, cfg.MetricsTok)
	for i, err := range afterErrs {
		if nodeErrs[i] == nil {
			nodeErrs[i] = err
		}
	}
	rep := g.report(scheduled, schedEnd, stopped)
	rep.Nodes = summarizeNodes(cfg.Nodes, nodesBefore, nodesAfter, nodeErrs, time.Since(nodesFrom))
	from := g.startNs.Load() + int64(cfg.Warmup)
	rep.Memory = rss.summary(from, from+int64(time.Duration(rep.Window*float64(time.Second))))
	var problems []string
	if cfg.RedisURL != "" && stopped == "" {
		fmt.Fprintf(stderr, "loadgen: redis-benchmark XADD on %s ...\n", redactRedisURL(cfg.RedisURL))
		bench, err := loadgenRedisBench(ctx, cfg.RedisURL, "loadgen:bench:"+g.names.RunID)
		if err != nil {
			problems = append(problems, err.Error())
			bench = &loadgenBench{Error: err.Error()}
		} else if bench.XADDPerSec > 0 {
			bench.Ratio = rep.Sustained / bench.XADDPerSec
		}
		rep.Redis = bench
	}
	if cfg.JSON {
		rep.print(stderr)
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	} else {
		rep.print(stdout)
	}
	return rep.verdict(problems)
}

// loadgenPickTexts classifies candidates on the server and keeps the ones it calls interested.
func loadgenPickTexts(ctx context.Context, client *http.Client, classifyURL string, candidates []string, stderr io.Writer) ([]string, error) {
	body, err := json.Marshal(map[string][]string{"texts": candidates})
	if err != nil {
		return nil, fmt.Errorf("encode texts: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, classifyURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("classify texts: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("classify texts at %s: %w", classifyURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("classify texts at %s: read response: %w", classifyURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("classify texts at %s: HTTP %s: %s", classifyURL, resp.Status, bytes.TrimSpace(data[:min(len(data), 300)]))
	}
	var out struct {
		Results []struct {
			Intent     voluntree.Intent `json:"intent"`
			Confidence float64          `json:"confidence"`
		} `json:"results"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("classify texts at %s: decode response: %w", classifyURL, err)
	}
	if len(out.Results) != len(candidates) {
		return nil, fmt.Errorf("classify texts at %s: %d results for %d texts", classifyURL, len(out.Results), len(candidates))
	}
	var keep []string
	for i, r := range out.Results {
		if r.Intent == voluntree.IntentInterested {
			keep = append(keep, candidates[i])
		} else {
			fmt.Fprintf(stderr, "loadgen: not sending %q: classified %s (%.2f)\n", candidates[i], r.Intent, r.Confidence)
		}
	}
	fmt.Fprintf(stderr, "loadgen: %d of %d built-in texts classified interested\n", len(keep), len(candidates))
	if len(keep) < loadgenMinTexts {
		return nil, fmt.Errorf("only %d of the %d built-in texts are classified interested by %s, need at least %d: is the right model loaded?",
			len(keep), len(candidates), classifyURL, loadgenMinTexts)
	}
	return keep, nil
}

// schedule hands each comment to a worker at its due time and returns how many it handed out.
// It never waits for the server: when every worker is busy the comment waits for one, and its
// latency still counts from its due time. It stops early when ctx is done.
func (g *loadgen) schedule(ctx context.Context, jobs chan<- int) int {
	defer close(jobs)
	start := g.base.Add(time.Duration(g.startNs.Load()))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := 0; i < g.n; i++ {
		if wait := time.Until(start.Add(scheduleOffset(i, g.cfg.Rate))); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return i
			}
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			return i
		}
	}
	return g.n
}

// send posts comment i as one signed webhook call and records the outcome.
func (g *loadgen) send(i int) {
	rec := &g.recs[i]
	due := g.base.Add(time.Duration(g.dueNs(i)))
	body, err := json.Marshal(facebook.CommentPayload(g.cfg.Page, g.names.comment(i, g.texts, due)))
	status := lgStatusError
	retry := false
	sent := g.since()
	g.sent.Add(1)
	if err == nil {
		status, retry, err = g.post(body)
	}
	rec.sentNs, rec.ackNs, rec.status, rec.retry = sent, g.since()-sent, int32(status), retry
	if status == http.StatusOK {
		g.acked.Add(1)
		if rec.state.Or(lgAcked)&lgEvent != 0 {
			g.matched.Add(1)
		}
	} else {
		g.rejected.Add(1)
	}
	if err != nil {
		g.mu.Lock()
		if g.firstErr == "" {
			g.firstErr = err.Error()
		}
		g.mu.Unlock()
	}
	g.finished.Add(1)
}

// post sends one webhook call: its status, and whether a refusal said when to retry.
func (g *loadgen) post(body []byte) (int, bool, error) {
	req, err := http.NewRequest(http.MethodPost, g.cfg.Endpoints.Webhook, bytes.NewReader(body))
	if err != nil {
		return lgStatusError, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(facebook.SignatureHeader, facebook.Sign(g.cfg.Secret, body))
	resp, err := g.client.Do(req)
	if err != nil {
		return lgStatusError, false, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // drain: keep the connection
	resp.Body.Close()
	if err != nil {
		return lgStatusError, false, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After") != "", nil
}

// lgFrame is the part of a /ws/signups frame the reader needs.
type lgFrame struct {
	ID       string `json:"id"`
	LastID   string `json:"last_id"`
	Type     string `json:"type"`
	Interest *struct {
		ID string `json:"id"`
	} `json:"interest"`
}

// reconnect dials the feed again after it dropped with cause, resuming after the last event
// read (a fresh ticket each time), with a backoff, for up to a minute.
func (g *loadgen) reconnect(ctx context.Context, dialer *websocket.Dialer, client *http.Client, cfg loadgenConfig, closing *atomic.Bool, cause error) (*websocket.Conn, error) {
	g.reconnects++
	fmt.Fprintf(g.stderr, "loadgen: the live feed dropped (%v): reconnecting after %s\n", cause, cmp.Or(g.lastID, "the start"))
	deadline := time.Now().Add(time.Minute)
	delay := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay): // a retry's backoff
		}
		if closing.Load() {
			return nil, errors.New("stopping")
		}
		delay = min(2*delay, 2*time.Second)
		ticket := ""
		var err error
		if cfg.Token != "" {
			ticket, err = loadgenTicket(ctx, client, cfg.Endpoints, cfg.Token, cfg.Page)
		}
		if err == nil {
			u := withTicket(cfg.Endpoints.Signups, ticket)
			if g.lastID != "" {
				sep := "?"
				if strings.Contains(u, "?") {
					sep = "&"
				}
				u += sep + "since=" + url.QueryEscape(g.lastID)
			}
			var c *websocket.Conn
			if c, _, err = dialer.DialContext(ctx, u, nil); err == nil {
				c.SetReadLimit(4 << 20)
				return c, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, err
		}
	}
}

// read records every interest event of this run until the connection fails; ready is closed
// on the first "ready" frame.
//
// A feed whose node is cut off (a partition) fails silently: no close, no reset. The reader
// pings every loadgenFeedPing and gives the connection up when nothing, pongs included, came
// for loadgenFeedDead, so that it resumes elsewhere within seconds.
func (g *loadgen) read(conn *websocket.Conn, ready chan struct{}) error {
	alive := func() { conn.SetReadDeadline(time.Now().Add(loadgenFeedDead)) }
	alive()
	conn.SetPongHandler(func(string) error { alive(); return nil })
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(loadgenFeedPing)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				// WriteControl may run concurrently with the reader.
				_ = conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(loadgenFeedPing))
			}
		}
	}()
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		alive()
		now := g.since()
		if typ != websocket.TextMessage {
			continue
		}
		var f lgFrame
		if err := json.Unmarshal(data, &f); err != nil {
			g.badFrames++
			continue
		}
		if f.ID != "" {
			g.lastID = f.ID
		} else if f.Type == "ready" && f.LastID != "" && g.lastID == "" {
			g.lastID = f.LastID
		}
		if f.Type != string(voluntree.EventInterest) {
			g.control[f.Type]++
			if f.Type == "ready" && ready != nil {
				close(ready)
				ready = nil
			}
			continue
		}
		if f.Interest == nil {
			g.badFrames++
			continue
		}
		i, ok := g.names.seq(f.Interest.ID)
		if !ok || i >= len(g.recs) {
			g.foreign++ // another run, the replay log, real traffic
			continue
		}
		rec := &g.recs[i]
		rec.events++
		if rec.events > 1 {
			continue
		}
		rec.eventNs = now
		g.events.Add(1)
		if rec.state.Or(lgEvent)&lgAcked != 0 {
			g.matched.Add(1)
		}
		g.mu.Lock()
		g.recent = append(g.recent, time.Duration(now-g.dueNs(i)))
		g.mu.Unlock()
	}
}

// drain waits until every acknowledged comment has its event (then loadgenSettle more, for
// late duplicates), limit passed, ctx is done or the WebSocket failed. It reports whether
// it ended on its own (everything arrived or limit passed).
func (g *loadgen) drain(ctx context.Context, limit time.Duration, wsDone <-chan struct{}) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for g.matched.Load() < g.acked.Load() {
		select {
		case <-tick.C:
		case <-deadline.C:
			return true
		case <-ctx.Done():
			return false
		case <-wsDone:
			return false
		}
	}
	settle := time.NewTimer(min(limit, loadgenSettle))
	defer settle.Stop()
	select {
	case <-settle.C:
	case <-deadline.C:
	case <-ctx.Done():
	case <-wsDone:
	}
	return true
}

// progress prints one line a second to stderr until stop is closed.
func (g *loadgen) progress(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastSent int64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		elapsed := time.Duration(g.since() - g.startNs.Load())
		phase := "drain"
		switch {
		case elapsed < g.cfg.Warmup:
			phase = "warmup"
		case elapsed < g.cfg.Warmup+g.cfg.Duration:
			phase = "measure"
		}
		g.mu.Lock()
		recent := g.recent
		g.recent = nil
		g.mu.Unlock()
		p99 := "-"
		if len(recent) > 0 {
			slices.Sort(recent)
			p99 = fmtLatency(percentile(recent, 99))
		}
		sent, finished := g.sent.Load(), g.finished.Load()
		fmt.Fprintf(g.stderr, "%7.1fs %-7s sent/s %6d  acked %8d  rejected %6d  events %8d  in-flight %5d  e2e p99(1s) %s\n",
			elapsed.Seconds(), phase, sent-lastSent, g.acked.Load(), g.rejected.Load(), g.events.Load(), sent-finished, p99)
		lastSent = sent
	}
}
