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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/voluntree/voluntree/internal/redistest"
)

var (
	// redisSrv is the package's Redis: one server, or the Redis Cluster or Sentinel deployment
	// $VOLUNTREE_TEST_REDIS names (`make test` runs the pipeline's suite on each).
	redisSrv *redistest.Deployment
	binary   string // bin/voluntree built for these tests
	loadgen  string // bin/loadgen (cmd/loadgen), next to it
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "voluntree-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "voluntree")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build voluntree: %v\n%s", err, out)
		os.Exit(1)
	}
	loadgen = filepath.Join(dir, "loadgen")
	if out, err := exec.Command("go", "build", "-o", loadgen, "../loadgen").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build loadgen: %v\n%s", err, out)
		os.Exit(1)
	}
	redisSrv = redistest.StartDeployment()
	code := m.Run()
	redisSrv.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is a running `voluntree serve` child process.
type node struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	mu     sync.Mutex
	lines  []map[string]any
	raw    bytes.Buffer
	exited chan error
}

func startServe(t testing.TB, env ...string) *node {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), append([]string{"VOLUNTREE_ADDR=127.0.0.1:0", "VOLUNTREE_NODE=e2e"}, env...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{cmd: cmd, exited: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			n.mu.Lock()
			n.raw.Write(append(sc.Bytes(), '\n'))
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				n.lines = append(n.lines, rec)
				if rec["action"] == "listen" {
					addr <- rec["addr"].(string)
				}
			} else {
				n.lines = append(n.lines, map[string]any{"not_json": sc.Text()})
			}
			n.mu.Unlock()
		}
		n.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	select {
	case a := <-addr:
		n.base = "http://" + a
	case err := <-n.exited:
		t.Fatalf("serve exited before listening: %v\n%s", err, n.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not listen within 60s\n%s", n.log())
	}
	return n
}

func (n *node) log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.raw.String()
}

// stop sends SIGTERM and waits for a clean exit.
func (n *node) stop(t testing.TB) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.exited:
		if err != nil {
			t.Fatalf("serve exited with %v\n%s", err, n.log())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop within 20s of SIGTERM\n%s", n.log())
	}
}

func (n *node) get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(n.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func (n *node) post(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(n.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("POST %s: response is not JSON: %v", path, err)
	}
	return resp.StatusCode, out
}

// api calls the admin API with a bearer token: body raw (contentType, "" for JSON) or nil. It
// returns the status and the JSON answer (nil when there is none).
func (n *node) api(t testing.TB, method, path, token string, body []byte, contentType string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, n.base+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType == "" {
		contentType = "application/json"
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestServeEndToEnd(t *testing.T) {
	n := startServe(t, "VOLUNTREE_REDIS_URL="+redisSrv.URL(t))

	status, body := n.get(t, "/healthz")
	if status != 200 || !strings.Contains(string(body), `"redis":"ok"`) || !strings.Contains(string(body), `"classifier":"ok"`) {
		t.Fatalf("healthz %d %s", status, body)
	}

	texts := []string{"Sign me up for Saturday morning!", "What time does it start?", "Sorry, I can't make it",
		"where can i drop off canned food", "thank you so much ❤️", "🔥🔥🔥"}
	want := []string{"interested", "question", "decline", "donate", "thanks", "other"}
	reqBody, _ := json.Marshal(map[string]any{"texts": texts})
	status, out := n.post(t, "/api/v1/classify", string(reqBody))
	if status != 200 {
		t.Fatalf("classify %d %v", status, out)
	}
	results := out["results"].([]any)
	for i, r := range results {
		res := r.(map[string]any)
		if res["intent"] != want[i] {
			t.Errorf("%q -> %v, want %s", texts[i], res["intent"], want[i])
		}
		if len(res["scores"].(map[string]any)) != 6 {
			t.Errorf("%q: scores %v", texts[i], res["scores"])
		}
	}

	status, out = n.post(t, "/api/v1/classify", `{"texts": []}`)
	if status != 400 || out["error"] == nil {
		t.Fatalf("empty texts: %d %v", status, out)
	}

	status, metricsText := n.get(t, "/metrics")
	if status != 200 {
		t.Fatalf("metrics %d", status)
	}
	for _, name := range []string{
		"voluntree_batcher_batch_size_bucket", "voluntree_batcher_queue_delay_seconds_bucket",
		"voluntree_batcher_inference_duration_seconds_bucket", "voluntree_batcher_queue_depth",
		"voluntree_batcher_requests_total", "voluntree_batcher_rejected_items_total",
		`voluntree_http_requests_total{method="POST",route="/api/v1/classify",status="200"} 1`,
		"voluntree_http_request_duration_seconds_bucket", "voluntree_grains_active", "voluntree_model_info",
	} {
		if !bytes.Contains(metricsText, []byte(name)) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	promtoolCheck(t, metricsText)

	n.stop(t)
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, rec := range n.lines {
		if rec["node"] != "e2e" || rec["component"] == nil || rec["action"] == nil {
			t.Errorf("log line %d lacks node/component/action: %v", i, rec)
		}
	}
}

// promtoolCheck runs `promtool check metrics` (Debian package prometheus) on a scrape.
func promtoolCheck(t *testing.T, scrape []byte) {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is required under CI=true (apt-get install prometheus)")
		}
		t.Log("promtool not installed: skipping the lint of /metrics")
		return
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestServeEmbeddedRedis(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		redisSrv.URL(t) // skips, or fails under CI, like every Redis test
	}
	dataDir := t.TempDir()
	n := startServe(t, "VOLUNTREE_REDIS_URL=", "VOLUNTREE_DATA_DIR="+dataDir)
	if status, body := n.get(t, "/healthz"); status != 200 {
		t.Fatalf("healthz %d %s", status, body)
	}
	var redisAddr string
	n.mu.Lock()
	for _, rec := range n.lines {
		if rec["action"] == "start_redis" {
			redisAddr, _ = rec["addr"].(string)
		}
	}
	n.mu.Unlock()
	if redisAddr == "" {
		t.Fatalf("no start_redis log line\n%s", n.log())
	}
	n.stop(t)
	if c, err := net.DialTimeout("tcp", redisAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("the embedded redis-server on %s outlived serve", redisAddr)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "appendonlydir")); err != nil {
		t.Fatalf("no AOF under the data dir: %v", err)
	}
}

func runCLI(t testing.TB, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return runBinary(t, binary, 60*time.Second, stdin, args...)
}

// runLoadgen runs the loadgen command (its own binary) and returns its exit status, stdout
// and stderr.
func runLoadgen(t testing.TB, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	return runBinary(t, loadgen, timeout, "", args...)
}

func runBinary(t testing.TB, bin string, timeout time.Duration, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func TestClassifyCLI(t *testing.T) {
	code, out, errOut := runCLI(t, "count me in!\nwhere is the parking?\n\nCan I donate online?\n", "classify")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []struct{ text, intent string }{{"count me in!", "interested"}, {"where is the parking?", "question"}, {"", ""}, {"Can I donate online?", "donate"}}
	if len(lines) != len(want) {
		t.Fatalf("%d output lines for %d input lines:\n%s", len(lines), len(want), out)
	}
	for i, line := range lines {
		var rec struct {
			Text       string   `json:"text"`
			Intent     string   `json:"intent"`
			Confidence *float64 `json:"confidence"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %q", i, line)
		}
		if rec.Text != want[i].text || rec.Confidence == nil || (want[i].intent != "" && rec.Intent != want[i].intent) {
			t.Errorf("line %d = %+v, want text %q intent %q", i, rec, want[i].text, want[i].intent)
		}
	}
}

func TestClassifyCLIRejectsOverlongLineAfterPrintingEarlierOnes(t *testing.T) {
	code, out, errOut := runCLI(t, "hello\n"+strings.Repeat("a", 5001)+"\nlater\n", "classify")
	if code != 1 || !strings.Contains(errOut, "line 2") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, `"text":"hello"`) || strings.Contains(out, "later") {
		t.Fatalf("stdout %q: the first line's result must be printed, nothing after the bad line", out)
	}
}

func TestClassifyCLINamesAVeryLongLine(t *testing.T) {
	code, out, errOut := runCLI(t, "ok\nfine\n"+strings.Repeat("😀", 30000)+"\n", "classify")
	if code != 1 || !strings.Contains(errOut, "line 3") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if strings.Count(out, "\n") != 2 {
		t.Fatalf("stdout %q: want the two earlier results", out)
	}
}

func TestEvaluateCLI(t *testing.T) {
	code, out, errOut := runCLI(t, "", "evaluate", "-misses", "../../ml/data/valid.jsonl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"valid.jsonl:", "interested", "macro-F1", "ECE", " items)", " as "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCLIUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  string
		code int
		msg  string
	}{
		{nil, "", 2, "usage"},
		{[]string{"frobnicate"}, "", 2, "unknown command"},
		{[]string{"classify", "-nope"}, "", 2, "flag provided but not defined"},
		{[]string{"classify", "extra"}, "", 2, "stdin"},
		{[]string{"classify", "-model", "/does/not/exist"}, "", 1, "open model"},
		{[]string{"evaluate"}, "", 2, "at least one"},
		{[]string{"evaluate", "/no/such.jsonl"}, "", 1, "open dataset"},
		{[]string{"serve", "-log-level", "loud"}, "", 2, "log-level"},
		{[]string{"serve", "-max-queue", "100"}, "", 2, "max-queue"},
		{[]string{"serve", "-torch-threads", "0"}, "", 2, "torch-threads"},
		{[]string{"serve"}, "VOLUNTREE_REDIS_URL=bogus://x", 2, "VOLUNTREE_REDIS_URL"},
		{[]string{"serve"}, "VOLUNTREE_CLAIM_IDLE=soon", 2, "VOLUNTREE_CLAIM_IDLE"},
		{[]string{"serve"}, "VOLUNTREE_CLASSIFY_RATE=lots", 2, "VOLUNTREE_CLASSIFY_RATE"},
		{[]string{"serve", "-trusted-proxies", "10.0.0.0/99"}, "", 2, "trusted-proxies"},
		{[]string{"serve", "-memory-limit", "lots"}, "", 2, "memory-limit"},
		{[]string{"serve"}, "VOLUNTREE_ACTOR_METRICS=yes", 2, "VOLUNTREE_ACTOR_METRICS"},
		{[]string{"admin", "add-page", "-org", "x"}, "", 2, "-page are required"},
		{[]string{"admin", "rejected", "-n", "0"}, "", 2, "-n must be"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			cmd := exec.Command(binary, tc.args...)
			cmd.Env = append(os.Environ(), "VOLUNTREE_ADDR=127.0.0.1:0", "VOLUNTREE_DATA_DIR="+t.TempDir())
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			cmd.Stdin = strings.NewReader("")
			out, _ := cmd.CombinedOutput()
			if cmd.ProcessState.ExitCode() != tc.code || !strings.Contains(string(out), tc.msg) {
				t.Fatalf("exit %d, output %q; want exit %d mentioning %q", cmd.ProcessState.ExitCode(), out, tc.code, tc.msg)
			}
		})
	}
}

// requireChromium returns Debian's chromium, failing under CI=true and skipping elsewhere when
// it is missing.
func requireChromium(t testing.TB) string {
	t.Helper()
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is required under CI=true (apt-get install chromium)")
		}
		t.Skip("chromium not installed")
	}
	return browser
}

// renderedDOM loads url in headless Chromium and returns the DOM after the page's scripts ran
// (up to 10 s of virtual time).
func renderedDOM(t *testing.T, browser, url string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=10000", "--dump-dom", url)
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return dom
}

// TestPageClassifiesInABrowser loads / in headless Chromium (Debian's chromium) against a
// running node and reads the DOM after the page's script has called the classify API.
func TestPageClassifiesInABrowser(t *testing.T) {
	browser := requireChromium(t)
	n := startServe(t, "VOLUNTREE_REDIS_URL="+redisSrv.URL(t))
	dom := renderedDOM(t, browser, n.base+"/")
	for _, want := range []string{`class="intent interested"`, `class="intent question"`, `class="intent decline"`,
		`class="intent donate"`, `class="intent thanks"`, `class="intent other"`, "all systems ok · model file"} {
		if !bytes.Contains(dom, []byte(want)) {
			t.Errorf("rendered page lacks %s", want)
		}
	}
	n.stop(t)
}
