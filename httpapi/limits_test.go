package httpapi

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/voluntree/voluntree/metrics"
)

// serveOn runs cfg on a loopback listener (real peer addresses, unlike App().Test).
func serveOn(t *testing.T, cfg Config) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Metrics, cfg.Gatherer = metrics.New(reg), reg
	s := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	return "http://" + ln.Addr().String()
}

func post(t *testing.T, url, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestClassifyRateLimit: each client has its own bucket of texts; past it, 429 with
// Retry-After and a JSON error, and the classifier is not called.
func TestClassifyRateLimit(t *testing.T) {
	fc := &fakeClassifier{}
	base := serveOn(t, Config{Classifier: fc, ClassifyRate: 1, ClassifyBurst: 10})
	url := base + "/api/v1/classify"
	if resp, body := post(t, url, `{"texts": "not a list"}`, nil); resp.StatusCode != 400 {
		t.Fatalf("an invalid body: %d %s", resp.StatusCode, body) // invalid input costs nothing
	}
	texts := jsonTexts("a", "b", "c", "d", "e", "f", "g", "h", "i")
	if resp, body := post(t, url, texts, nil); resp.StatusCode != 200 {
		t.Fatalf("9 texts of a burst of 10: %d %s", resp.StatusCode, body)
	}
	resp, body := post(t, url, jsonTexts("j", "k"), nil)
	if resp.StatusCode != 429 || !strings.Contains(body, `"error"`) {
		t.Fatalf("past the burst: %d %s, want 429 with a JSON error", resp.StatusCode, body)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > 2 {
		t.Fatalf("Retry-After %q, want 1-2 s (one text missing at one a second)", resp.Header.Get("Retry-After"))
	}
	if fc.calls != 1 {
		t.Fatalf("the classifier was called %d times, want 1", fc.calls)
	}
}

// TestClassifyRateLimitPerForwardedClient: behind a trusted proxy, the client is the one
// X-Forwarded-For names; from anyone else the header is ignored.
func TestClassifyRateLimitPerForwardedClient(t *testing.T) {
	url := serveOn(t, Config{Classifier: &fakeClassifier{}, ClassifyRate: 1, ClassifyBurst: 2,
		TrustedProxies: []string{"127.0.0.1"}}) + "/api/v1/classify"
	two := jsonTexts("a", "b")
	for _, client := range []string{"203.0.113.1", "203.0.113.2"} {
		if resp, body := post(t, url, two, map[string]string{"X-Forwarded-For": client}); resp.StatusCode != 200 {
			t.Fatalf("client %s: %d %s", client, resp.StatusCode, body)
		}
	}
	if resp, _ := post(t, url, two, map[string]string{"X-Forwarded-For": "203.0.113.1"}); resp.StatusCode != 429 {
		t.Fatalf("client 1 again: %d, want 429", resp.StatusCode)
	}
	// The client cannot choose its bucket: what it writes is left of what the proxy adds.
	for _, fake := range []string{"198.51.100.7", "198.51.100.8"} {
		if resp, _ := post(t, url, two, map[string]string{"X-Forwarded-For": fake + ", 203.0.113.1"}); resp.StatusCode != 429 {
			t.Fatalf("client 1 with a made-up address %s in front: %d, want 429", fake, resp.StatusCode)
		}
	}
	// Behind two proxies, the client is the address the first trusted one saw.
	if resp, _ := post(t, url, two, map[string]string{"X-Forwarded-For": "203.0.113.1, 127.0.0.1"}); resp.StatusCode != 429 {
		t.Fatalf("client 1 through two proxies: %d, want 429", resp.StatusCode)
	}
	// An IPv6 client is its /64.
	if resp, _ := post(t, url, two, map[string]string{"X-Forwarded-For": "2001:db8:1:2::1"}); resp.StatusCode != 200 {
		t.Fatalf("an IPv6 client: %d, want 200", resp.StatusCode)
	}
	if resp, _ := post(t, url, two, map[string]string{"X-Forwarded-For": "2001:db8:1:2:ffff::9"}); resp.StatusCode != 429 {
		t.Fatalf("another address of the same /64: %d, want 429", resp.StatusCode)
	}

	direct := serveOn(t, Config{Classifier: &fakeClassifier{}, ClassifyRate: 1, ClassifyBurst: 2}) + "/api/v1/classify"
	post(t, direct, two, map[string]string{"X-Forwarded-For": "203.0.113.1"})
	if resp, _ := post(t, direct, two, map[string]string{"X-Forwarded-For": "203.0.113.9"}); resp.StatusCode != 429 {
		t.Fatalf("an untrusted X-Forwarded-For changed the client: %d, want 429", resp.StatusCode)
	}
}

func TestMetricsToken(t *testing.T) {
	base := serveOn(t, Config{Classifier: &fakeClassifier{}, MetricsToken: "s3cr3t"})
	get := func(auth string) int {
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for auth, want := range map[string]int{"": 401, "Bearer nope": 401, "Basic s3cr3t": 401, "Bearer s3cr3t": 200, "bearer s3cr3t": 200} {
		if got := get(auth); got != want {
			t.Errorf("GET /metrics with %q: %d, want %d", auth, got, want)
		}
	}
	open := serveOn(t, Config{Classifier: &fakeClassifier{}})
	if resp, err := http.Get(open + "/metrics"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics without a token configured: %v %v", resp, err)
	}
}

// TestOversizedRequestsGetTheirAnswer: a request the server answers before reading it whole
// (a 431 for headers over 8 KiB, a 413 for a body over the limit) gets that answer, never a
// reset connection, even while the client is still sending; 16 clients at once.
func TestOversizedRequestsGetTheirAnswer(t *testing.T) {
	base := serveOn(t, Config{Classifier: &fakeClassifier{}, BodyLimit: 64 << 10})
	type attempt struct {
		name   string
		path   string
		header string
		body   int
		want   int
	}
	attempts := []attempt{
		{"a 30 KB header and a body", "/api/v1/classify", strings.Repeat("x", 30000), 60000, 431},
		{"a 20 KB URL", "/api/v1/classify?q=" + strings.Repeat("a", 20000), "", 100, 431},
		{"a 200 KB body", "/api/v1/classify", "", 200000, 413},
	}
	var mu sync.Mutex
	failures := map[string][]string{}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for i := range 60 {
				a := attempts[(w+i)%len(attempts)]
				req, _ := http.NewRequest("POST", base+a.path, strings.NewReader(strings.Repeat("b", a.body)))
				if a.header != "" {
					req.Header.Set("X-Filler", a.header)
				}
				resp, err := client.Do(req)
				got := ""
				switch {
				case err != nil:
					got = err.Error()
				case resp.StatusCode != a.want:
					got = resp.Status
				}
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if got != "" {
					mu.Lock()
					failures[a.name] = append(failures[a.name], got)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for name, errs := range failures {
		t.Errorf("%s: %d of 320 without their answer, first: %.300s", name, len(errs), errs[0])
	}
}
