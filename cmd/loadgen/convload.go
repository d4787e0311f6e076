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
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/internal/fakegraph"
	"github.com/voluntree/voluntree/internal/redisproc"
	"github.com/voluntree/voluntree/internal/smtpsink"
	"github.com/voluntree/voluntree/redisstore"
)

// loadgen conversations drives simulated volunteers through the whole conversation against a
// serve it starts itself, with its own Redis, fake Graph API (Send API, echoes) and SMTP sink:
// Messenger volunteers comment, get the private reply, confirm, give their email, type the
// code the sink received and tap a slot; web chat volunteers do the same over /ws/chat. It
// can SIGKILL serve mid-run and start it again. It reports completed, lost and duplicated
// conversations, overbooked slots, and the latency from an inbound message to the bot's
// answer (the Send API call, or the web chat frame).

type convloadConfig struct {
	volunteers  int
	webchat     float64 // share of web chat volunteers
	rate        float64 // inbound messages a second, all volunteers together
	concurrency int
	slots       int
	capacity    int
	killAfter   time.Duration
	timeout     time.Duration
	redisFsync  string
	jsonOut     string
	serveArgs   string
	serveBin    string // the voluntree binary
}

// voluntreeBinary is the voluntree binary to start: flag's, else voluntree next to this
// executable (bin/), else the one on PATH.
func voluntreeBinary(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "voluntree"); fileExists(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath("voluntree")
	if err != nil {
		return "", usageError{fmt.Errorf("no voluntree binary next to loadgen or on PATH: pass -voluntree bin/voluntree")}
	}
	return p, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

type convReport struct {
	Volunteers    int                  `json:"volunteers"`
	Messenger     int                  `json:"messenger"`
	WebChat       int                  `json:"webchat"`
	Booked        int64                `json:"booked"`
	Waitlisted    int64                `json:"waitlisted"`
	Lost          int64                `json:"lost"`
	Duplicates    int                  `json:"duplicate_messages"`
	Overbooked    int                  `json:"overbooked_slots"`
	SlotsBooked   int64                `json:"slots_booked"`
	Capacity      int                  `json:"capacity"`
	Inbound       int64                `json:"inbound_messages"`
	Seconds       float64              `json:"seconds"`
	InboundRate   float64              `json:"inbound_per_second"`
	Latency       latencies            `json:"latency_ms"`
	LatencyNoKill latencies            `json:"latency_ms_outside_restart"`
	Steps         map[string]latencies `json:"latency_ms_by_step"`
	Killed        bool                 `json:"killed"`
	Downtime      float64              `json:"restart_seconds,omitempty"`
}

type latencies struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func summarize(ds []time.Duration) latencies {
	if len(ds) == 0 {
		return latencies{}
	}
	slices.Sort(ds)
	q := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
	}
	return latencies{N: len(ds), P50: q(.50), P95: q(.95), P99: q(.99), Max: float64(ds[len(ds)-1].Microseconds()) / 1000}
}

func runConvload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen conversations", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c convloadConfig
	fs.IntVar(&c.volunteers, "volunteers", 1000, "simulated volunteers")
	fs.Float64Var(&c.webchat, "webchat", 0.5, "share of them on the web chat (the rest on Messenger)")
	fs.Float64Var(&c.rate, "rate", 500, "inbound messages a second, every volunteer together")
	fs.IntVar(&c.concurrency, "concurrency", 400, "volunteers in a conversation at once")
	fs.IntVar(&c.slots, "slots", 20, "slots of the signup")
	fs.IntVar(&c.capacity, "capacity", 0, "places per slot (0: 80% of the volunteers, spread over the slots: the rest are waitlisted)")
	fs.DurationVar(&c.killAfter, "kill-after", 0, "SIGKILL serve this long into the run and start it again (0: never)")
	fs.DurationVar(&c.timeout, "timeout", 90*time.Second, "a volunteer waiting this long for an answer is lost")
	fs.StringVar(&c.redisFsync, "redis-fsync", "always", "AOF fsync of the private redis-server: always or everysec")
	fs.StringVar(&c.jsonOut, "json", "", "write the report as JSON to this file too")
	fs.StringVar(&c.serveArgs, "serve-args", "", "extra flags for serve, space-separated")
	fs.StringVar(&c.serveBin, "voluntree", "", "the voluntree binary whose serve it starts (default: voluntree next to this loadgen, else on PATH)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if c.volunteers < 1 || c.rate <= 0 || c.concurrency < 1 || c.slots < 1 || c.webchat < 0 || c.webchat > 1 {
		return usageError{errors.New("-volunteers, -rate, -concurrency and -slots must be positive, -webchat in [0, 1]")}
	}
	if c.capacity == 0 {
		c.capacity = max(1, c.volunteers*8/10/c.slots)
	}
	cl, err := startConvload(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer cl.close()
	rep, err := cl.run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "conversations: %d volunteers (%d Messenger, %d web chat) in %.1f s, %d inbound messages (%.0f/s)\n",
		rep.Volunteers, rep.Messenger, rep.WebChat, rep.Seconds, rep.Inbound, rep.InboundRate)
	fmt.Fprintf(stdout, "outcome:       %d booked, %d waitlisted, %d lost; %d duplicate messages; %d overbooked slots (%d booked of %d places)\n",
		rep.Booked, rep.Waitlisted, rep.Lost, rep.Duplicates, rep.Overbooked, rep.SlotsBooked, rep.Capacity)
	l := rep.Latency
	fmt.Fprintf(stdout, "inbound → answer (ms): p50 %.1f  p95 %.1f  p99 %.1f  max %.1f  (n=%d)\n", l.P50, l.P95, l.P99, l.Max, l.N)
	var names []string
	for k := range rep.Steps {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		l := rep.Steps[k]
		fmt.Fprintf(stdout, "  %-22s p50 %.1f  p95 %.1f  p99 %.1f  (n=%d)\n", k, l.P50, l.P95, l.P99, l.N)
	}
	if rep.Killed {
		l = rep.LatencyNoKill
		fmt.Fprintf(stdout, "  outside the restart:  p50 %.1f  p95 %.1f  p99 %.1f  max %.1f  (n=%d); serve was down %.1f s\n", l.P50, l.P95, l.P99, l.Max, l.N, rep.Downtime)
	}
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(c.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if rep.Lost > 0 || rep.Duplicates > 0 || rep.Overbooked > 0 {
		return fmt.Errorf("%d lost conversations, %d duplicate messages, %d overbooked slots", rep.Lost, rep.Duplicates, rep.Overbooked)
	}
	return nil
}

// convload is one run: the processes and fakes, and what the volunteers wait for.
type convload struct {
	cfg    convloadConfig
	log    io.Writer
	dir    string
	redis  *redisproc.Server
	graph  *fakegraph.Server
	sink   *smtpsink.Sink
	serve  *exec.Cmd
	exited chan error
	env    []string
	base   string
	token  string
	signup string
	fbPost string
	client *http.Client

	mu      sync.Mutex
	waiters map[string]chan time.Time   // by PSID: the arrival time of each message sent to it
	sent    map[string][]fakegraph.Sent // by PSID
	codes   map[string]string           // by email address

	pace     chan struct{}
	inbound  atomic.Int64
	booked   atomic.Int64
	waitlist atomic.Int64
	lost     atomic.Int64

	lmu       sync.Mutex
	steps     map[string][]time.Duration
	lat       []time.Duration
	latNoKill []time.Duration
	killFrom  time.Time
	killTo    time.Time
}

const convSecret = "convload-secret"
const convPage = "777000"

func startConvload(ctx context.Context, c convloadConfig, logw io.Writer) (*convload, error) {
	dir, err := os.MkdirTemp("", "voluntree-convload-")
	if err != nil {
		return nil, err
	}
	cl := &convload{cfg: c, log: logw, dir: dir, waiters: map[string]chan time.Time{}, sent: map[string][]fakegraph.Sent{},
		codes: map[string]string{}, client: &http.Client{Timeout: 10 * time.Second}}
	cl.redis, err = redisproc.Start(ctx, redisproc.Config{Dir: filepath.Join(dir, "redis"), AppendOnly: true, Fsync: c.redisFsync})
	if err != nil {
		cl.close()
		return nil, err
	}
	cl.graph = fakegraph.New(fakegraph.Config{AppSecret: convSecret, OnSend: cl.onSend})
	cl.graph.AddPage(convPage, "Load test page", "page-token")
	code := regexp.MustCompile(`\d{6}`)
	cl.sink, err = smtpsink.Start(smtpsink.Config{OnMessage: func(m smtpsink.Message) {
		if c := code.FindString(m.Subject()); c != "" && len(m.To) == 1 {
			cl.mu.Lock()
			cl.codes[m.To[0]] = c
			cl.mu.Unlock()
		}
	}})
	if err != nil {
		cl.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cl.close()
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cl.base = "http://" + addr
	cl.graph.SetWebhook(cl.base+"/webhooks/facebook", convSecret)
	cl.env = append(os.Environ(), "VOLUNTREE_ADDR="+addr, "VOLUNTREE_REDIS_URL="+cl.redis.URL(), "VOLUNTREE_FB_APP_SECRET="+convSecret,
		"VOLUNTREE_FB_GRAPH_URL="+cl.graph.URL, "VOLUNTREE_SMTP_URL="+cl.sink.URL()+"?from=noreply%40load.test",
		"VOLUNTREE_POLL_INTERVAL=0", "VOLUNTREE_DEMO=off", "VOLUNTREE_NODE=convload", "VOLUNTREE_CLASSIFY_RATE=0", "VOLUNTREE_CHAT_SESSION_RATE=0", "VOLUNTREE_LOG_LEVEL=warn")
	if err := cl.startServe(ctx); err != nil {
		cl.close()
		return nil, err
	}
	if err := cl.setup(ctx); err != nil {
		cl.close()
		return nil, err
	}
	return cl, nil
}

func (cl *convload) startServe(ctx context.Context) error {
	exe, err := voluntreeBinary(cl.cfg.serveBin)
	if err != nil {
		return err
	}
	args := append([]string{"serve"}, strings.Fields(cl.cfg.serveArgs)...)
	cmd := exec.Command(exe, args...)
	cmd.Env = cl.env
	logf, err := os.OpenFile(filepath.Join(cl.dir, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	cl.serve, cl.exited = cmd, make(chan error, 1)
	go func() { cl.exited <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := cl.client.Get(cl.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case err := <-cl.exited:
			return fmt.Errorf("serve exited: %v (log: %s)", err, filepath.Join(cl.dir, "serve.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("serve did not become healthy in 90 s")
}

// setup makes the organization, page, signup and published post.
func (cl *convload) setup(ctx context.Context) error {
	rdb := redis.NewClient(&redis.Options{Addr: cl.redis.Addr()})
	defer rdb.Close()
	st, err := redisstore.New(rdb, redisstore.Config{})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.CreateOrg(ctx, voluntree.Organization{ID: "load", Name: "Load test", CreatedAt: time.Now()}); err != nil {
		return err
	}
	if cl.token, _, err = st.CreateAdminToken(ctx, "load", redisstore.TokenOptions{Label: "convload"}); err != nil {
		return err
	}
	if err := st.SavePage(ctx, voluntree.Page{ID: convPage, OrgID: "load", Name: "Load test page", AccessToken: "page-token"}); err != nil {
		return err
	}
	var slots []map[string]any
	for i := range cl.cfg.slots {
		slots = append(slots, map[string]any{"id": fmt.Sprintf("s%d", i), "date": "2031-05-03",
			"start": fmt.Sprintf("%02d:00", 6+i%16), "end": fmt.Sprintf("%02d:30", 6+i%16), "title": fmt.Sprintf("Shift %d", i), "required": cl.cfg.capacity})
	}
	var su map[string]any
	if err := cl.admin(ctx, "POST", "/api/v1/signups", map[string]any{"title": "Load test", "time_zone": "UTC",
		"facts": "Meet at the north gate. Bring gloves.", "slots": slots}, &su); err != nil {
		return err
	}
	cl.signup, _ = su["id"].(string)
	var post map[string]any
	if err := cl.admin(ctx, "POST", "/api/v1/posts", map[string]any{"signup_id": cl.signup, "page_id": convPage, "message": "Volunteers wanted"}, &post); err != nil {
		return err
	}
	for range 200 {
		var p map[string]any
		if err := cl.admin(ctx, "GET", "/api/v1/posts/"+post["id"].(string), nil, &p); err != nil {
			return err
		}
		if fb, _ := p["facebook_post_id"].(string); fb != "" {
			cl.fbPost = fb
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the post was not published")
}

func (cl *convload) admin(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(ctx, method, cl.base+path, r)
	req.Header.Set("Authorization", "Bearer "+cl.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// onSend is the fake Graph's hook (its lock held): note the message for its volunteer.
func (cl *convload) onSend(m fakegraph.Sent) {
	at := time.Now()
	cl.mu.Lock()
	cl.sent[m.RecipientID] = append(cl.sent[m.RecipientID], m)
	w := cl.waiters[m.RecipientID]
	cl.mu.Unlock()
	if w != nil {
		select {
		case w <- at:
		default:
		}
	}
}

func (cl *convload) close() {
	if cl.serve != nil && cl.serve.ProcessState == nil {
		_ = cl.serve.Process.Kill()
		<-cl.exited
	}
	if cl.graph != nil {
		cl.graph.Close()
	}
	if cl.sink != nil {
		cl.sink.Close()
	}
	if cl.redis != nil {
		_ = cl.redis.Stop()
	}
	_ = os.RemoveAll(cl.dir)
}

func (cl *convload) run(ctx context.Context) (convReport, error) {
	rep := convReport{Volunteers: cl.cfg.volunteers, Capacity: cl.cfg.slots * cl.cfg.capacity}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cl.pace = make(chan struct{})
	go func() { // inbound messages at the configured rate
		t := time.NewTicker(time.Duration(float64(time.Second) / cl.cfg.rate))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				select {
				case cl.pace <- struct{}{}:
				default:
				}
			}
		}
	}()
	start := time.Now()
	if cl.cfg.killAfter > 0 {
		go func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(cl.cfg.killAfter):
			}
			cl.lmu.Lock()
			cl.killFrom = time.Now()
			cl.lmu.Unlock()
			_ = cl.serve.Process.Kill()
			<-cl.exited
			if err := cl.startServe(ctx); err != nil {
				fmt.Fprintf(cl.log, "restart: %v\n", err)
				cancel()
				return
			}
			cl.lmu.Lock()
			cl.killTo = time.Now()
			cl.lmu.Unlock()
			fmt.Fprintf(cl.log, "serve killed at %s and back after %s\n", cl.cfg.killAfter, cl.killTo.Sub(cl.killFrom).Round(time.Millisecond))
		}()
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	webEvery := 0
	if cl.cfg.webchat > 0 {
		webEvery = int(1 / cl.cfg.webchat)
	}
	for range cl.cfg.concurrency {
		wg.Go(func() {
			for i := range jobs {
				var err error
				if webEvery > 0 && i%webEvery == 0 {
					err = cl.webVolunteer(ctx, i)
				} else {
					err = cl.messengerVolunteer(ctx, i)
				}
				if err != nil {
					cl.lost.Add(1)
					if cl.lost.Load() <= 5 {
						fmt.Fprintf(cl.log, "volunteer %d lost: %v\n", i, err)
					}
				}
			}
		})
	}
	for i := range cl.cfg.volunteers {
		if webEvery > 0 && i%webEvery == 0 {
			rep.WebChat++
		} else {
			rep.Messenger++
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	rep.Seconds = time.Since(start).Seconds()
	rep.Inbound = cl.inbound.Load()
	rep.InboundRate = float64(rep.Inbound) / rep.Seconds
	rep.Booked, rep.Waitlisted, rep.Lost = cl.booked.Load(), cl.waitlist.Load(), cl.lost.Load()
	// Duplicates: a message (its effect id) sent twice.
	seen := map[string]bool{}
	for _, m := range cl.graph.SentMessages(convPage) {
		if m.Metadata != "" && seen[m.Metadata] {
			rep.Duplicates++
		}
		seen[m.Metadata] = true
	}
	// Overbooking, read from Redis.
	rdb := redis.NewClient(&redis.Options{Addr: cl.redis.Addr()})
	defer rdb.Close()
	keys := redisstore.NewKeys("")
	for i := range cl.cfg.slots {
		n := rdb.ZCard(ctx, keys.SlotBooked(cl.signup, fmt.Sprintf("s%d", i))).Val()
		rep.SlotsBooked += n
		if n > int64(cl.cfg.capacity) {
			rep.Overbooked++
		}
	}
	cl.lmu.Lock()
	rep.Latency, rep.LatencyNoKill = summarize(cl.lat), summarize(cl.latNoKill)
	rep.Steps = map[string]latencies{}
	for k, v := range cl.steps {
		rep.Steps[k] = summarize(v)
	}
	if !cl.killFrom.IsZero() {
		rep.Killed, rep.Downtime = true, cl.killTo.Sub(cl.killFrom).Seconds()
	}
	cl.lmu.Unlock()
	return rep, nil
}

// observe records an inbound → answer latency of a step.
func (cl *convload) observe(step string, sent, answered time.Time) {
	d := answered.Sub(sent)
	cl.lmu.Lock()
	defer cl.lmu.Unlock()
	if cl.steps == nil {
		cl.steps = map[string][]time.Duration{}
	}
	cl.steps[step] = append(cl.steps[step], d)
	cl.lat = append(cl.lat, d)
	restart := !cl.killFrom.IsZero() && (cl.killTo.IsZero() || sent.Before(cl.killTo.Add(5*time.Second)) && answered.After(cl.killFrom))
	if !restart {
		cl.latNoKill = append(cl.latNoKill, d)
	}
}

func (cl *convload) paced(ctx context.Context) error {
	select {
	case <-cl.pace:
		cl.inbound.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// webhook posts a signed body until serve takes it (as Facebook retries).
func (cl *convload) webhook(ctx context.Context, p facebook.Payload) error {
	body, _ := json.Marshal(p)
	sig := facebook.Sign([]byte(convSecret), body)
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, "POST", cl.base+"/webhooks/facebook", bytes.NewReader(body))
		req.Header.Set(facebook.SignatureHeader, sig)
		req.Header.Set("Content-Type", "application/json")
		resp, err := cl.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if ctx.Err() != nil || attempt > 600 {
			return fmt.Errorf("webhook not taken: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// messengerVolunteer: comment → private reply → yes → email → code → slot → booked.
func (cl *convload) messengerVolunteer(ctx context.Context, i int) error {
	psid := fmt.Sprintf("v%d", i)
	email := psid + "@load.test"
	w := make(chan time.Time, 16)
	cl.mu.Lock()
	cl.waiters[psid] = w
	cl.mu.Unlock()
	defer func() { cl.mu.Lock(); delete(cl.waiters, psid); cl.mu.Unlock() }()
	commentID := fmt.Sprintf("%s_c%d", cl.fbPost, i)
	cl.graph.CommenterPSID(commentID, psid)
	seq := 0
	// say sends one inbound message and waits for the answer containing want.
	say := func(step string, comment bool, text, quick string, postback bool, want string) (fakegraph.Sent, error) {
		if err := cl.paced(ctx); err != nil {
			return fakegraph.Sent{}, err
		}
		seq++
		now := time.Now()
		var p facebook.Payload
		if comment {
			p = facebook.CommentPayload(convPage, facebook.ChangeValue{CommentID: commentID, PostID: cl.fbPost,
				From: &facebook.User{ID: psid, Name: "Volunteer " + psid}, Message: text, CreatedTime: now.Unix()})
		} else {
			p = facebook.MessagePayload(convPage, psid, fmt.Sprintf("m.%s.%d", psid, seq), text, quick, postback, now)
		}
		if err := cl.webhook(ctx, p); err != nil {
			return fakegraph.Sent{}, err
		}
		first := true
		deadline := time.After(cl.cfg.timeout)
		for {
			select {
			case at := <-w:
				if first {
					cl.observe("messenger "+step, now, at)
					first = false
				}
				cl.mu.Lock()
				msgs := cl.sent[psid]
				cl.mu.Unlock()
				for j := len(msgs) - 1; j >= 0; j-- {
					if containsAny(msgs[j].Text, want) && !msgs[j].Time.Before(now.Add(-time.Second)) {
						return msgs[j], nil
					}
				}
			case <-deadline:
				cl.mu.Lock()
				var got []string
				for _, m := range cl.sent[psid] {
					got = append(got, m.Text)
				}
				cl.mu.Unlock()
				return fakegraph.Sent{}, fmt.Errorf("no answer containing %q; got %q", want, got[max(0, len(got)-3):])
			case <-ctx.Done():
				return fakegraph.Sent{}, ctx.Err()
			}
		}
	}
	if _, err := say("1 comment", true, "Count me in!", "", false, "Thanks for your interest"); err != nil {
		return err
	}
	if _, err := say("2 confirm", false, "yes", "", false, "What's your email address?"); err != nil {
		return err
	}
	if _, err := say("3 email", false, email, email, false, "We've sent a 6-digit code"); err != nil {
		return err
	}
	code, err := cl.code(ctx, email)
	if err != nil {
		return err
	}
	slots, err := say("4 code", false, code, "", false, "Which slot|All slots are full")
	if err != nil {
		return err
	}
	if len(slots.QuickReplies) == 0 {
		return errors.New("no slot offered")
	}
	pick := slots.QuickReplies[i%len(slots.QuickReplies)]
	last, err := say("5 slot", false, pick.Title, pick.Payload, true, "")
	for err == nil && !strings.Contains(last.Text, "You're booked") && !strings.Contains(last.Text, "on the waitlist") {
		last, err = cl.next(ctx, w, psid, last)
	}
	if err != nil {
		return err
	}
	if strings.Contains(last.Text, "You're booked") {
		cl.booked.Add(1)
	} else {
		cl.waitlist.Add(1)
	}
	return nil
}

// next waits for the message after prev to psid.
func (cl *convload) next(ctx context.Context, w chan time.Time, psid string, prev fakegraph.Sent) (fakegraph.Sent, error) {
	deadline := time.After(cl.cfg.timeout)
	for {
		cl.mu.Lock()
		msgs := cl.sent[psid]
		cl.mu.Unlock()
		for j, m := range msgs {
			if m.MessageID == prev.MessageID && j+1 < len(msgs) {
				return msgs[j+1], nil
			}
		}
		select {
		case <-w:
		case <-deadline:
			return fakegraph.Sent{}, errors.New("no further answer")
		case <-ctx.Done():
			return fakegraph.Sent{}, ctx.Err()
		}
	}
}

// code waits for the email code sent to addr.
func (cl *convload) code(ctx context.Context, addr string) (string, error) {
	deadline := time.Now().Add(cl.cfg.timeout)
	for time.Now().Before(deadline) {
		cl.mu.Lock()
		c := cl.codes[addr]
		cl.mu.Unlock()
		if c != "" {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("no code emailed to %s", addr)
}

// webVolunteer: session → greeting → yes → email → code → slot → booked, over /ws/chat,
// reconnecting with since when the socket drops (serve killed).
func (cl *convload) webVolunteer(ctx context.Context, i int) error {
	email := fmt.Sprintf("w%d@load.test", i)
	var sess struct {
		Token string `json:"token"`
	}
	body, _ := json.Marshal(map[string]string{"signup_id": cl.signup, "name": fmt.Sprintf("Web %d", i)})
	if err := cl.paced(ctx); err != nil {
		return err
	}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		resp, err := cl.client.Post(cl.base+"/api/v1/chat/sessions", "application/json", bytes.NewReader(body))
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&sess)
			resp.Body.Close()
			if resp.StatusCode == 201 && sess.Token != "" {
				break
			}
		}
		if attempt > 600 || ctx.Err() != nil {
			return fmt.Errorf("chat session: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	frames := make(chan redisstore.ChatMessage, 64)
	var conn *websocket.Conn
	var cmu sync.Mutex
	pending := map[string][]byte{} // frames sent and not yet echoed, by their id
	last := ""
	done := make(chan struct{})
	defer close(done)
	dial := func() error {
		u := "ws" + strings.TrimPrefix(cl.base, "http") + "/ws/chat?token=" + url.QueryEscape(sess.Token) + "&since=" + url.QueryEscape(last)
		c, _, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
		if err != nil {
			return err
		}
		cmu.Lock()
		conn = c
		for _, f := range pending { // sent to a server that died before taking them
			_ = c.WriteMessage(websocket.TextMessage, f)
		}
		cmu.Unlock()
		go func() {
			defer c.Close()
			for {
				_, b, err := c.ReadMessage()
				if err != nil {
					return
				}
				var m redisstore.ChatMessage
				if json.Unmarshal(b, &m) != nil {
					continue
				}
				if m.ClientID != "" {
					cmu.Lock()
					delete(pending, m.ClientID) // taken
					cmu.Unlock()
				}
				if m.ID != "" {
					select {
					case frames <- m:
					case <-done:
						return
					}
				}
			}
		}()
		return nil
	}
	if err := dial(); err != nil {
		return err
	}
	defer func() { cmu.Lock(); conn.Close(); cmu.Unlock() }()
	// await returns the next bot frame containing want (reconnecting when the socket drops).
	var sentAt time.Time
	step := "1 greeting"
	await := func(want string) (redisstore.ChatMessage, error) {
		deadline := time.After(cl.cfg.timeout)
		first := true
		for {
			select {
			case m := <-frames:
				last = m.ID
				if m.From == "volunteer" {
					continue
				}
				if first && !sentAt.IsZero() {
					cl.observe("webchat "+step, sentAt, time.Now())
					first = false
				}
				if containsAny(m.Text, want) {
					return m, nil
				}
			case <-time.After(2 * time.Second):
				// A dropped socket (serve restarted): reconnect with since.
				cmu.Lock()
				stale := conn
				cmu.Unlock()
				if err := stale.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
					_ = dial()
				}
			case <-deadline:
				return redisstore.ChatMessage{}, fmt.Errorf("no frame containing %q", want)
			case <-ctx.Done():
				return redisstore.ChatMessage{}, ctx.Err()
			}
		}
	}
	send := func(frame map[string]string) error {
		if err := cl.paced(ctx); err != nil {
			return err
		}
		id := voluntree.NewID("")
		frame["id"] = id
		b, _ := json.Marshal(frame)
		cmu.Lock()
		pending[id] = b
		cmu.Unlock()
		for attempt := 0; ; attempt++ {
			cmu.Lock()
			c := conn
			cmu.Unlock()
			sentAt = time.Now()
			if err := c.WriteMessage(websocket.TextMessage, b); err == nil {
				return nil
			}
			if attempt > 600 || ctx.Err() != nil {
				return errors.New("could not send a frame")
			}
			time.Sleep(100 * time.Millisecond)
			_ = dial()
		}
	}
	sentAt = start
	ask, err := await("Would you like to volunteer")
	if err != nil {
		return err
	}
	if len(ask.Options) == 0 {
		return errors.New("no options with the question")
	}
	steps := []struct {
		name  string
		frame map[string]string
		want  string
	}{
		{"2 confirm", map[string]string{"payload": ask.Options[0].Payload, "text": ask.Options[0].Title}, "What's your email address?"},
		{"3 email", map[string]string{"text": email}, "We've sent a 6-digit code"},
	}
	for _, s := range steps {
		step = s.name
		if err := send(s.frame); err != nil {
			return err
		}
		if _, err := await(s.want); err != nil {
			return err
		}
	}
	code, err := cl.code(ctx, email)
	if err != nil {
		return err
	}
	step = "4 code"
	if err := send(map[string]string{"text": code}); err != nil {
		return err
	}
	slots, err := await("Which slot|All slots are full")
	if err != nil {
		return err
	}
	if len(slots.Options) == 0 {
		return errors.New("no slot offered")
	}
	o := slots.Options[i%len(slots.Options)]
	step = "5 slot"
	if err := send(map[string]string{"payload": o.Payload, "text": o.Title}); err != nil {
		return err
	}
	for {
		m, err := await("")
		if err != nil {
			return err
		}
		switch {
		case strings.Contains(m.Text, "You're booked"):
			cl.booked.Add(1)
			return nil
		case strings.Contains(m.Text, "on the waitlist"):
			cl.waitlist.Add(1)
			return nil
		}
	}
}

// containsAny reports whether s contains one of the "|"-separated wants ("" matches anything).
func containsAny(s, wants string) bool {
	for _, w := range strings.Split(wants, "|") {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
