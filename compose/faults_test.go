// Package compose holds the deployment users run (docker-compose.yml, the node's Dockerfile,
// haproxy, Prometheus and Grafana provisioning) and its fault tests: the real cluster in
// containers, loaded through the ingress, while nodes are killed, cut off, restarted one by
// one and Redis is killed.
//
// The tests need the node image and the registry-free bases: `make compose-test` builds them
// (scripts/docker-base.sh, compose/Dockerfile) and runs this package with
// VOLUNTREE_COMPOSE_IMAGE set; `make test` does that after the other packages. Without the
// variable the tests skip.
package compose

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/internal/fakegraph"
	"github.com/voluntree/voluntree/redisstore"
)

const (
	appSecret = "faults-app-secret"
	pageID    = "lg-page"
	pageToken = "lg-page-token"
	// claimIdle is the compose default (docker-compose.yml): a dead node's pending entries wait
	// this long before a survivor takes them.
	claimIdle = 10 * time.Second
	// lagRecovery is issue 13's bound: after a kill, the backlog is back to nothing within it.
	lagRecovery = 30 * time.Second
	// loadgenPosts is the loadgen's -posts (its default).
	loadgenPosts = 10
)

var nodes = []string{"node1", "node2", "node3"}

// stack is one compose project: its own network, volumes and containers, removed at the end.
type stack struct {
	t       testing.TB
	project string
	image   string
	dir     string   // compose/
	files   []string // -f arguments
	env     []string
	port    int // the ingress on the host
	rdb     *redis.Client
	graph   *fakegraph.Server
	token   string // admin API token of the loadgen's organization
}

func newStack(t testing.TB) *stack {
	image := os.Getenv("VOLUNTREE_COMPOSE_IMAGE")
	if image == "" {
		t.Skip("VOLUNTREE_COMPOSE_IMAGE is not set: `make compose-test` (part of `make test`) builds the image and runs these tests")
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, image: image, dir: dir, project: fmt.Sprintf("vtfaults%d", os.Getpid())}

	// The fake Graph API (private replies) runs here; the nodes reach it through the host's
	// gateway, so it listens on every interface behind a reverse proxy.
	s.graph = fakegraph.New(fakegraph.Config{})
	t.Cleanup(s.graph.Close)
	s.graph.AddPage(pageID, "Loadgen page", pageToken)
	target, _ := url.Parse(s.graph.URL)
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}
	go proxy.Serve(ln)
	t.Cleanup(func() { proxy.Close() })
	graphPort := ln.Addr().(*net.TCPAddr).Port

	ports := freePorts(t, 2)
	s.port = ports[0]
	override := fmt.Sprintf(`version: "2.4"
x-faults: &faults
  environment:
    VOLUNTREE_FB_GRAPH_URL: http://host.docker.internal:%d
  extra_hosts:
    - "host.docker.internal:host-gateway"
services:
  node1: *faults
  node2: *faults
  node3: *faults
  redis:
    ports:
      - "127.0.0.1:%d:6379"
`, graphPort, ports[1])
	overridePath := filepath.Join(t.TempDir(), "faults.yml")
	if err := os.WriteFile(overridePath, []byte(override), 0o644); err != nil {
		t.Fatal(err)
	}
	s.files = []string{"-f", filepath.Join(dir, "docker-compose.yml"), "-f", filepath.Join(dir, "docker-compose.test.yml"), "-f", overridePath}
	s.env = append(os.Environ(),
		"VOLUNTREE_IMAGE="+image,
		"VOLUNTREE_PORT="+strconv.Itoa(s.port),
		"VOLUNTREE_FB_APP_SECRET="+appSecret,
		"VOLUNTREE_CLAIM_IDLE="+claimIdle.String(),
		"VOLUNTREE_DEMO=off",
	)
	t.Cleanup(s.down)
	s.compose(t, 3*time.Minute, "up", "-d", "--no-color", "redis", "node1", "node2", "node3", "ingress")

	s.rdb = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", ports[1])})
	t.Cleanup(func() { s.rdb.Close() })
	s.waitMembers(t, nodes, 3, 2*time.Minute)
	s.waitIngress(t)
	// As Facebook does for an app subscribed to message_echoes, the fake posts an echo of each
	// message it accepted to the webhook, through the ingress: an effect whose node died after
	// the send finds its echo and is not sent again.
	s.graph.SetWebhook(fmt.Sprintf("http://127.0.0.1:%d/webhooks/facebook", s.port), appSecret)

	redisFlag := "-redis-url=redis://redis:6379/0"
	out := s.execNode(t, "node1", "voluntree", "admin", "create-token", "-org", "faults", "-create-org", "Faults", redisFlag)
	s.token = strings.TrimSpace(out)
	if !strings.HasPrefix(s.token, "vt_") {
		t.Fatalf("admin create-token: %q", out)
	}
	tokenFile := "/tmp/page-token"
	s.execNode(t, "node1", "sh", "-c", "printf %s "+pageToken+" > "+tokenFile)
	if out := s.execNode(t, "node1", "voluntree", "admin", "add-page", "-org", "faults", "-page", pageID,
		"-access-token-file", tokenFile, redisFlag); !strings.Contains(out, "connected") {
		t.Fatalf("admin add-page: %q", out)
	}
	s.publishPosts(t)
	return s
}

// publishPosts creates a signup and publishes the loadgen's posts for it through the API (the
// fake Graph gives them the ids the loadgen comments on: lg-page_1 to lg-page_<posts>), so
// that every interested commenter is invited with a private reply: the side effect whose
// duplicates the tests look for.
func (s *stack) publishPosts(t testing.TB) {
	t.Helper()
	var su struct {
		ID string `json:"id"`
	}
	s.api(t, "POST", "/api/v1/signups", map[string]any{"title": "Fault drill", "time_zone": "UTC",
		"slots": []map[string]any{{"id": "s1", "date": "2031-05-03", "start": "09:00", "end": "12:00", "title": "Morning", "required": 100000}}}, &su)
	for i := 1; i <= loadgenPosts; i++ {
		var post struct {
			ID string `json:"id"`
		}
		s.api(t, "POST", "/api/v1/posts", map[string]any{"signup_id": su.ID, "page_id": pageID, "message": "Volunteers wanted"}, &post)
		want := fmt.Sprintf("%s_%d", pageID, i)
		var got string
		waitFor(t, 30*time.Second, "post "+post.ID+" to be published", func() bool {
			var p struct {
				FB string `json:"facebook_post_id"`
			}
			s.api(t, "GET", "/api/v1/posts/"+post.ID, nil, &p)
			got = p.FB
			return got != ""
		})
		if got != want {
			t.Fatalf("post %d was published as %s, the loadgen comments on %s", i, got, want)
		}
	}
}

// api calls the admin API through the ingress with the organization's token.
func (s *stack) api(t testing.TB, method, path string, body, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.port, path), r)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
}

// down removes what the project made: containers (loadgens too), its network and volumes.
func (s *stack) down() {
	if s.t.Failed() {
		for _, n := range append(slices.Clone(nodes), "redis", "ingress") {
			out, _ := exec.Command("docker", "logs", "--tail", "40", s.container(n)).CombinedOutput()
			s.t.Logf("== last logs of %s\n%s", n, out)
		}
	}
	ids, _ := exec.Command("docker", "ps", "-aq", "--filter", "name="+s.project+"_lg").Output()
	for _, id := range strings.Fields(string(ids)) {
		exec.Command("docker", "rm", "-f", id).Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-compose", append(append([]string{"-p", s.project}, s.files...), "down", "-v", "--remove-orphans", "-t", "5")...)
	cmd.Env = s.env
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Errorf("docker-compose down: %v\n%s", err, out)
	}
}

func (s *stack) compose(t testing.TB, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-compose", append(append([]string{"-p", s.project}, s.files...), args...)...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func docker(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// container is the name docker-compose gives a service's (only) container.
func (s *stack) container(service string) string { return s.project + "_" + service + "_1" }

func (s *stack) execNode(t testing.TB, node string, args ...string) string {
	t.Helper()
	return docker(t, append([]string{"exec", s.container(node)}, args...)...)
}

// metrics scrapes a node's /metrics from inside its container: name → the sum of its samples.
// A node that does not answer gives nil.
func (s *stack) metrics(node string) map[string]float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "exec", s.container(node), "curl", "-fsS", "-m", "2", "http://127.0.0.1:8080/metrics").Output()
	if err != nil {
		return nil
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			m[name] += v
		}
	}
	return m
}

// grainHistogram scrapes a node's grain request histogram (voluntree_grain_request_duration_
// seconds): upper bound → cumulative count, over every kind and outcome. nil: no answer.
func (s *stack) grainHistogram(node string) map[float64]float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "exec", s.container(node), "curl", "-fsS", "-m", "2", "http://127.0.0.1:8080/metrics").Output()
	if err != nil {
		return nil
	}
	h := map[float64]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "voluntree_grain_request_duration_seconds_bucket{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `le="`)
		le, _, _ := strings.Cut(rest, `"`)
		bound, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		f := strings.Fields(line)
		v, err2 := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil && err2 == nil {
			h[bound] += v
		}
	}
	return h
}

// grainP99Between is the upper bound (a bucket's) of the p99 duration of the grain requests
// the nodes completed between the two scrapes, and their number: how long a grain took to
// answer, requests released from a departed member and sent again included. A node whose
// scrape failed is left out; requests still waiting at the second scrape are not counted.
func grainP99Between(before, after []map[float64]float64) (bound, n float64) {
	delta := map[float64]float64{}
	for i := range after {
		if i >= len(before) || before[i] == nil || after[i] == nil {
			continue // a scrape failed: this node's window is unknown, it is left out
		}
		for le, v := range after[i] {
			delta[le] += v - before[i][le]
		}
	}
	n = delta[math.Inf(1)]
	if n == 0 {
		return 0, 0
	}
	bounds := slices.Sorted(maps.Keys(delta))
	for _, le := range bounds {
		if delta[le] >= 0.99*n {
			return le, n
		}
	}
	return math.Inf(1), n
}

// waitFor polls cond every 100 ms until it holds or d passes; it returns when it held.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitMembers waits until each of the nodes sees n members.
func (s *stack) waitMembers(t testing.TB, on []string, n int, d time.Duration) time.Time {
	t.Helper()
	return waitFor(t, d, fmt.Sprintf("%v to see %d members", on, n), func() bool {
		for _, node := range on {
			if m := s.metrics(node); m == nil || m["voluntree_cluster_members"] != float64(n) {
				return false
			}
		}
		return true
	})
}

// waitIngress waits until the ingress answers /healthz from the host.
func (s *stack) waitIngress(t testing.TB) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	waitFor(t, time.Minute, "the ingress to answer /healthz", func() bool {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// backlog is the ingest consumer group's state: entries delivered and not acknowledged
// (pending, per consumer), entries not yet delivered (lag), and the age of the oldest entry
// in either.
type backlog struct {
	Pending    int64
	ByConsumer map[string]int64
	Lag        int64
	Oldest     time.Duration
}

func (s *stack) backlog(ctx context.Context) (backlog, error) {
	const stream, group = "voluntree:{ingest}", "pipeline"
	var b backlog
	groups, err := s.rdb.XInfoGroups(ctx, stream).Result()
	if err != nil {
		return b, err
	}
	var last string
	for _, g := range groups {
		if g.Name == group {
			b.Lag, last = g.Lag, g.LastDeliveredID
		}
	}
	p, err := s.rdb.XPending(ctx, stream, group).Result()
	if err != nil {
		return b, err
	}
	b.Pending, b.ByConsumer = p.Count, p.Consumers
	now := time.Now()
	age := func(id string) time.Duration {
		ms, _, _ := strings.Cut(id, "-")
		v, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			return 0
		}
		return now.Sub(time.UnixMilli(v))
	}
	if p.Count > 0 {
		b.Oldest = age(p.Lower)
	}
	if b.Lag > 0 && last != "" {
		next, err := s.rdb.XRangeN(ctx, stream, "("+last, "+", 1).Result()
		if err == nil && len(next) == 1 {
			b.Oldest = max(b.Oldest, age(next[0].ID))
		}
	}
	return b, nil
}

// waitBacklogClear waits until no ingest entry older than a second waits and node (if set)
// holds nothing pending: the backlog a fault left is worked off.
func (s *stack) waitBacklogClear(t testing.TB, node string, d time.Duration) time.Time {
	t.Helper()
	var last backlog
	var lastErr error
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		b, err := s.backlog(ctx)
		cancel()
		last, lastErr = b, err
		if err == nil && b.Oldest < time.Second && (node == "" || b.ByConsumer[node] == 0) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for the ingest backlog to clear: %+v %v", d, last, lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// report is what the tests read of the loadgen's JSON report.
type report struct {
	Total struct {
		Sent       int `json:"sent"`
		Acked      int `json:"acked"`
		Rejected   int `json:"rejected"`
		Events     int `json:"events"`
		Lost       int `json:"lost"`
		Duplicated int `json:"duplicated"`
	} `json:"total"`
	Sustained  float64  `json:"sustained_events_per_s"`
	Delivered  float64  `json:"delivered_events_per_s"`
	E2E        latency  `json:"e2e_latency"`
	Ack        latency  `json:"ack_latency"`
	Reconnects int      `json:"feed_reconnects"`
	Stopped    string   `json:"stopped"`
	StartedMs  int64    `json:"started_unix_ms"`
	Timeline   []second `json:"timeline"`
	Cluster    struct {
		AvgBatch float64 `json:"avg_model_batch"`
		Nodes    []struct {
			Metrics    string  `json:"metrics_url"`
			Comments   float64 `json:"comments"`
			CPUPer1000 float64 `json:"cpu_s_per_1000"`
		} `json:"nodes"`
	} `json:"cluster"`
}

type latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

type second struct {
	T     int     `json:"t"`
	Sent  int     `json:"sent"`
	Acked int     `json:"acked"`
	Lost  int     `json:"lost"`
	E2E   latency `json:"e2e_latency"`
}

// worstP99After is the highest per-second e2e p99 of the comments due in [from, from+d): an
// upper bound of their p99 (no second has more than 1 % above it, so neither has their union).
func (r report) worstP99After(from time.Time, d time.Duration) (ms float64, comments int) {
	start := time.UnixMilli(r.StartedMs)
	first := int(math.Ceil(from.Sub(start).Seconds()))
	last := first + int(d.Seconds())
	for _, sec := range r.Timeline {
		if sec.T >= first && sec.T < last {
			ms = max(ms, sec.E2E.P99)
			comments += sec.E2E.N
		}
	}
	return ms, comments
}

func (r report) String() string {
	return fmt.Sprintf("sent %d, acked %d, rejected %d, lost %d, duplicated %d; e2e p50 %.1f ms p99 %.0f ms max %.0f ms; ack p99 %.0f ms; feed reconnects %d",
		r.Total.Sent, r.Total.Acked, r.Total.Rejected, r.Total.Lost, r.Total.Duplicated, r.E2E.P50, r.E2E.P99, r.E2E.Max, r.Ack.P99, r.Reconnects)
}

type loadRun struct {
	rep    report
	err    error
	stderr string
}

// loadgen runs the load generator in a container on the project's network, against the
// ingress, with every node for the per-node figures.
func (s *stack) loadgen(t testing.TB, name string, args ...string) <-chan loadRun {
	t.Helper()
	var urls []string
	for _, n := range nodes {
		urls = append(urls, "http://"+n+":8080")
	}
	cname := s.project + "_lg_" + name
	argv := append([]string{"run", "--rm", "--name", cname, "--network", s.project + "_default", "--entrypoint", "loadgen", s.image,
		"-url", "http://ingress:8080", "-secret", appSecret, "-token", s.token, "-page", pageID, "-json",
		"-nodes", strings.Join(urls, ","), "-drain", "90s"}, args...)
	done := make(chan loadRun, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "docker", argv...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var r loadRun
		r.stderr = stderr.String()
		// The whole report (its per-second timeline) stays for a look after the run.
		if dir := filepath.Join(s.dir, "..", ".build", "artifacts"); os.MkdirAll(dir, 0o755) == nil {
			os.WriteFile(filepath.Join(dir, "faults-"+name+".json"), stdout.Bytes(), 0o644)
		}
		if jerr := json.Unmarshal(stdout.Bytes(), &r.rep); jerr != nil {
			r.err = errors.Join(err, fmt.Errorf("no JSON report: %w: %s", jerr, stdout.String()))
		} else if err != nil {
			r.err = err
		}
		done <- r
	}()
	return done
}

// result waits for a loadgen run and checks what every fault test must reach: each
// acknowledged comment came back exactly once, and most comments were acknowledged.
func result(t testing.TB, done <-chan loadRun, minSent int, minAcked float64) report {
	t.Helper()
	r := <-done
	t.Logf("loadgen: %s", r.rep)
	if r.rep.Total.Sent < minSent {
		t.Fatalf("the loadgen sent %d comments, want at least %d: %v\n%s", r.rep.Total.Sent, minSent, r.err, r.stderr)
	}
	if r.rep.Total.Lost != 0 || r.rep.Total.Duplicated != 0 || r.rep.Stopped != "" {
		t.Errorf("%d acknowledged comments lost, %d events duplicated (stopped: %q): %v\n%s",
			r.rep.Total.Lost, r.rep.Total.Duplicated, r.rep.Stopped, r.err, r.stderr)
	}
	if acked := float64(r.rep.Total.Acked) / float64(r.rep.Total.Sent); acked < minAcked {
		t.Errorf("only %.1f %% of the comments were acknowledged, want %.0f %%", 100*acked, 100*minAcked)
	}
	return r.rep
}

// feedNode is the node holding the loadgen's live feed (its only WebSocket client).
func (s *stack) feedNode(t testing.TB) string {
	t.Helper()
	var holder string
	waitFor(t, 30*time.Second, "the loadgen's feed on a node, and grains on every node", func() bool {
		holder = ""
		for _, n := range nodes {
			m := s.metrics(n)
			if m == nil || m["voluntree_grains_active"] == 0 {
				return false
			}
			if m["voluntree_ws_clients"] >= 1 {
				holder = n
			}
		}
		return holder != ""
	})
	return holder
}

// effects is what the fake Graph saw: private replies sent, Send API calls refused.
type effects struct{ sent, refused int }

// effectsDone checks the private replies of one run, given what the fake had seen before it:
// every reply the nodes sent went to a different comment, none was tried twice (Graph refuses
// a second private reply to one comment with code 10900: a refused call is a duplicate
// attempt), and the effects outbox's partitions hold nothing pending once the run drained.
func (s *stack) effectsDone(t testing.TB, before effects) effects {
	t.Helper()
	waitFor(t, time.Minute, "the effects stream to have nothing pending", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		keys := redisstore.NewKeys("")
		for part := range redisstore.ConversationPartitions {
			p, err := s.rdb.XPending(ctx, keys.EffectsPartition(part), keys.EffectsGroup()).Result()
			if err != nil && !strings.Contains(err.Error(), "NOGROUP") || err == nil && p.Count > 0 {
				return false
			}
		}
		return true
	})
	sent := s.graph.SentMessages(pageID)
	seen := map[string]bool{}
	for _, m := range sent {
		if m.CommentID != "" && seen[m.CommentID] {
			t.Errorf("two private replies to comment %s", m.CommentID)
		}
		seen[m.CommentID] = true
	}
	now := effects{sent: len(sent)}
	for _, c := range s.graph.Calls() {
		if c.Method == http.MethodPost && c.Path == "/"+pageID+"/messages" && c.Status != http.StatusOK {
			now.refused++
		}
	}
	if d := now.refused - before.refused; d != 0 {
		t.Errorf("%d Send API calls were refused: second attempts of a private reply (Graph answers 10900)", d)
	}
	if now.sent <= before.sent {
		t.Errorf("no private reply was sent in this run (%d before, %d now)", before.sent, now.sent)
	}
	return now
}

// freePorts returns n TCP ports free on loopback right now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out
}

// TestFaultsUnderLoad runs the fault tests of the compose cluster one after the other on one
// stack, each under its own loadgen run through the ingress at a fixed rate: a node killed
// (the one holding the live feed: its WebSocket client resumes through the ingress with
// since), a node cut off from the network and reconnected, a rolling restart of all three,
// and Redis killed and started again. Each must lose and duplicate nothing.
func TestFaultsUnderLoad(t *testing.T) {
	s := newStack(t)
	// 200 comments/s: each one also brings its private reply and that reply's echo webhook, which
	// at 300/s kept this 2-core machine (three nodes, Redis, haproxy, the loadgen) near capacity.
	const rate = "200"
	var replies effects
	var figures []string
	record := func(format string, a ...any) { figures = append(figures, fmt.Sprintf(format, a...)) } // subtests run one by one
	t.Cleanup(func() {
		t.Logf("figures:\n  %s", strings.Join(figures, "\n  "))
	})

	// kill SIGKILLs a node under load: feed picks the node holding the loadgen's live feed or
	// one that does not.
	kill := func(t *testing.T, name string, feed bool) {
		done := s.loadgen(t, name, "-rate", rate, "-warmup", "2s", "-duration", "25s")
		holder := s.feedNode(t)
		victim := holder
		if !feed {
			victim = nodes[(slices.Index(nodes, holder)+1)%len(nodes)]
		}
		var survivors []string
		for _, n := range nodes {
			if n != victim {
				survivors = append(survivors, n)
			}
		}
		time.Sleep(3 * time.Second) // the fault lands mid-run, not in its first seconds
		killed := time.Now()
		docker(t, "kill", s.container(victim))
		changed := s.waitMembers(t, survivors, 2, 30*time.Second)
		var before []map[float64]float64
		for _, n := range survivors {
			before = append(before, s.grainHistogram(n))
		}
		clear := s.waitBacklogClear(t, victim, 2*lagRecovery)
		time.Sleep(time.Until(changed.Add(10 * time.Second))) // the window measured, not a synchronisation
		var after []map[float64]float64
		for _, n := range survivors {
			after = append(after, s.grainHistogram(n))
		}
		grainP99, grainN := grainP99Between(before, after)
		rep := result(t, done, 4500, 0.95)
		switch {
		case feed && rep.Reconnects < 1:
			t.Errorf("the feed was on %s, which was killed, yet the loadgen did not reconnect", victim)
		case !feed && rep.Reconnects != 0:
			t.Errorf("the feed was on %s, %s was killed, yet the feed reconnected %d times", holder, victim, rep.Reconnects)
		}
		if lag := clear.Sub(killed); lag > lagRecovery {
			t.Errorf("the backlog cleared %v after the kill, issue 13 wants at most %v", lag, lagRecovery)
		}
		reach, n := rep.worstP99After(changed, 10*time.Second)
		record("%s: kill %s (feed on %s): members 2 after %v, backlog clear after %v; %s; comments due in the 10 s after the change: e2e p99 ≤ %.0f ms (n=%d); grain requests completed in the 10 s after the change: p99 ≤ %g s (n=%.0f)",
			name, victim, holder, changed.Sub(killed).Round(time.Millisecond), clear.Sub(killed).Round(time.Millisecond), rep, reach, n, grainP99, grainN)
		if grainN == 0 || grainP99 > 1 {
			t.Errorf("grain requests completed in the 10 s after the change: p99 ≤ %g s (n=%.0f), issue 13 wants a grain reachable again within 1 s", grainP99, grainN)
		}
		replies = s.effectsDone(t, replies)
		docker(t, "start", s.container(victim))
		s.waitMembers(t, nodes, 3, 2*time.Minute)
	}
	t.Run("KillANode", func(t *testing.T) { kill(t, "kill", false) })
	t.Run("KillTheFeedsNode", func(t *testing.T) { kill(t, "kill-feed", true) })

	t.Run("PartitionOneNode", func(t *testing.T) {
		network := s.project + "_default"
		done := s.loadgen(t, "partition", "-rate", rate, "-warmup", "2s", "-duration", "35s")
		// A node the feed is not on: the figures are the pipeline's, not the feed's (a feed on
		// a cut node resumes when its pings go unanswered; KillTheFeedsNode covers resuming).
		holder := s.feedNode(t)
		victim := nodes[(slices.Index(nodes, holder)+1)%len(nodes)]
		var survivors []string
		for _, n := range nodes {
			if n != victim {
				survivors = append(survivors, n)
			}
		}
		time.Sleep(3 * time.Second)
		cut := time.Now()
		docker(t, "network", "disconnect", network, s.container(victim))
		changed := s.waitMembers(t, survivors, 2, 30*time.Second)
		var before []map[float64]float64
		for _, n := range survivors {
			before = append(before, s.grainHistogram(n))
		}
		// Cut for 10 s, then back under its name.
		time.Sleep(time.Until(cut.Add(10 * time.Second)))
		var after []map[float64]float64
		for _, n := range survivors {
			after = append(after, s.grainHistogram(n))
		}
		grainP99, grainN := grainP99Between(before, after)
		docker(t, "network", "connect", "--alias", victim, network, s.container(victim))
		healed := time.Now()
		back := s.waitMembers(t, nodes, 3, 2*time.Minute)
		// The survivors keep the cut node's member id on their block list for good (FACTS): it
		// is back only because its guard saw itself left out, drained, exited and compose
		// started it again with a new member id.
		if restarts := strings.TrimSpace(docker(t, "inspect", "-f", "{{.RestartCount}}", s.container(victim))); restarts == "0" {
			t.Errorf("%s is back among 3 members without a restart: its old member id was not blocked?", victim)
		}
		clear := s.waitBacklogClear(t, "", 2*lagRecovery)
		rep := result(t, done, 6000, 0.95)
		reach, n := rep.worstP99After(changed, 5*time.Second)
		record("partition %s for 10 s: survivors at 2 members after %v, 3 members %v after the heal, backlog clear %v after the heal; %s; comments due in the 5 s after the change: e2e p99 ≤ %.0f ms (n=%d); grain requests the survivors completed while it was cut: p99 ≤ %g s (n=%.0f)",
			victim, changed.Sub(cut).Round(time.Millisecond), back.Sub(healed).Round(time.Millisecond), clear.Sub(healed).Round(time.Millisecond), rep, reach, n, grainP99, grainN)
		// A figure, not a requirement here: the survivors see a cut node only after ~3 s (a
		// kill: ~1 s), and the requests that waited on it until then complete in the window
		// with their whole wait, which puts the p99 near 1 s by construction (0.2 s and 1 s
		// in two runs, BENCHMARKS.md). The kills above require it.
		if grainN == 0 {
			t.Errorf("no grain request completed on the survivors while %s was cut", victim)
		}
		replies = s.effectsDone(t, replies)
	})

	t.Run("RollingRestart", func(t *testing.T) {
		done := s.loadgen(t, "rolling", "-rate", rate, "-warmup", "2s", "-duration", "45s")
		s.feedNode(t)
		var steps []string
		for _, n := range nodes {
			start := time.Now()
			s.compose(t, time.Minute, "restart", "-t", "30", n)
			s.waitMembers(t, nodes, 3, 2*time.Minute)
			steps = append(steps, fmt.Sprintf("%s %v", n, time.Since(start).Round(100*time.Millisecond)))
		}
		s.waitBacklogClear(t, "", 2*lagRecovery)
		rep := result(t, done, 8000, 0.95)
		record("rolling restart (%s): %s", strings.Join(steps, ", "), rep)
		replies = s.effectsDone(t, replies)
	})

	t.Run("KillRedis", func(t *testing.T) {
		done := s.loadgen(t, "redis", "-rate", rate, "-warmup", "2s", "-duration", "30s")
		s.feedNode(t)
		time.Sleep(3 * time.Second)
		killed := time.Now()
		docker(t, "kill", s.container("redis"))
		time.Sleep(2 * time.Second) // down for a while: webhooks are refused, consumers wait
		docker(t, "start", s.container("redis"))
		clear := s.waitBacklogClear(t, "", 2*lagRecovery)
		// Webhooks are refused while Redis is away (and while the nodes reconnect): Facebook
		// sends them again; what was acknowledged must all come back.
		rep := result(t, done, 5000, 0.7)
		if rep.Total.Rejected == 0 {
			t.Errorf("no webhook was refused while Redis was down: was it down?")
		}
		record("Redis killed (SIGKILL, AOF fsync always) for 2 s: backlog clear %v after the kill; %s",
			clear.Sub(killed).Round(time.Millisecond), rep)
		replies = s.effectsDone(t, replies)
	})
}

// BenchmarkOneAgainstThreeNodes runs the same loadgen, over capacity, through the ingress
// against the three nodes and then against one (node2 and node3 stopped), in one sitting, and
// reports the events/s each delivered: what the cluster's overhead costs and what a node adds
// on this machine. Issue 13 wants three nodes at 80 % of one node's rate or more.
//
//	make compose-bench [BENCH_RATE=3500]
func BenchmarkOneAgainstThreeNodes(b *testing.B) {
	s := newStack(b)
	rate := os.Getenv("VOLUNTREE_BENCH_RATE")
	if rate == "" {
		rate = "3500"
	}
	run := func(name string) report {
		r := <-s.loadgen(b, name, "-rate", rate, "-warmup", "3s", "-duration", "20s", "-drain", "30s")
		if r.rep.Total.Sent == 0 {
			b.Fatalf("loadgen %s: %v\n%s", name, r.err, r.stderr)
		}
		b.Logf("%s: %s; sustained %.0f/s, delivered %.0f/s, avg model batch %.1f", name, r.rep, r.rep.Sustained, r.rep.Delivered, r.rep.Cluster.AvgBatch)
		for _, n := range r.rep.Cluster.Nodes {
			b.Logf("  %s: %.0f comments, %.2f CPU s per 1,000", n.Metrics, n.Comments, n.CPUPer1000)
		}
		return r.rep
	}
	var three, one report
	for range b.N {
		three = run("three-nodes")
		s.compose(b, time.Minute, "stop", "-t", "30", "node2", "node3")
		s.waitMembers(b, []string{"node1"}, 1, time.Minute)
		one = run("one-node")
		s.compose(b, time.Minute, "start", "node2", "node3")
		s.waitMembers(b, nodes, 3, 2*time.Minute)
	}
	b.ReportMetric(three.Delivered, "3-nodes-events/s")
	b.ReportMetric(one.Delivered, "1-node-events/s")
	if one.Delivered > 0 {
		b.ReportMetric(100*three.Delivered/one.Delivered, "3-to-1-%")
	}
	b.ReportMetric(0, "ns/op")
}
