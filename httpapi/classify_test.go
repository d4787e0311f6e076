package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/metrics"
)

// fakeClassifier answers "interested" for every text, or err; it counts calls.
type fakeClassifier struct {
	err   error
	calls int
}

func (f *fakeClassifier) Classify(_ context.Context, texts []string) ([]voluntree.Prediction, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	out := make([]voluntree.Prediction, len(texts))
	for i := range texts {
		out[i] = voluntree.Prediction{Intent: voluntree.IntentInterested, Confidence: 0.9,
			Scores: map[voluntree.Intent]float32{voluntree.IntentInterested: 0.9, voluntree.IntentOther: 0.1}}
	}
	return out, nil
}

func newTestServer(c voluntree.Classifier) (*Server, *metrics.Metrics) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	return New(Config{Classifier: c, Metrics: m, Gatherer: reg}), m
}

func do(t *testing.T, s *Server, method, path, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.App().Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: response is not JSON: %q", method, path, raw)
	}
	return resp.StatusCode, out, resp.Header
}

func jsonTexts(texts ...string) string {
	b, _ := json.Marshal(map[string]any{"texts": texts})
	return string(b)
}

func TestClassifyValidation(t *testing.T) {
	many := make([]string, 257)
	for i := range many {
		many[i] = "hi"
	}
	cases := []struct {
		name, body string
		status     int
		errHas     string
	}{
		{"not JSON", "texts=hello", 400, "JSON"},
		{"empty body", "", 400, "JSON"},
		{"array instead of object", `["hi"]`, 400, "JSON"},
		{"texts missing", `{"text":["hi"]}`, 400, "texts: required"},
		{"texts null", `{"texts":null}`, 400, "texts: required"},
		{"texts not strings", `{"texts":[1,2]}`, 400, "JSON"},
		{"empty list", `{"texts":[]}`, 400, "at least one"},
		{"too many", jsonTexts(many...), 400, "at most 256"},
		{"too long", jsonTexts("ok", strings.Repeat("é", 5001)), 400, "texts[1]: at most 5000 characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc := &fakeClassifier{}
			s, _ := newTestServer(fc)
			status, body, _ := do(t, s, "POST", "/api/v1/classify", tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d (%v)", status, tc.status, body)
			}
			if msg, _ := body["error"].(string); !strings.Contains(msg, tc.errHas) {
				t.Fatalf("error %q does not mention %q", msg, tc.errHas)
			}
			if fc.calls != 0 {
				t.Fatal("an invalid request reached the classifier")
			}
		})
	}
}

func TestClassifyLimitsAreInclusive(t *testing.T) {
	many := make([]string, 256)
	for i := range many {
		many[i] = strings.Repeat("x", 4000) // 256 texts in 1 MiB
	}
	s, _ := newTestServer(&fakeClassifier{})
	status, body, _ := do(t, s, "POST", "/api/v1/classify", jsonTexts(many...))
	if status != 200 {
		t.Fatalf("256 texts of 4,000 characters: status %d %v", status, body)
	}
	if n := len(body["results"].([]any)); n != 256 {
		t.Fatalf("%d results", n)
	}
	status, body, _ = do(t, s, "POST", "/api/v1/classify", jsonTexts(strings.Repeat("é", 5000)))
	if status != 200 {
		t.Fatalf("a text of 5,000 characters: status %d %v", status, body)
	}
	// A body of exactly 1 MiB.
	b := jsonTexts("count me in")
	b = strings.Repeat(" ", DefaultBodyLimit-len(b)) + b
	if status, body, _ = do(t, s, "POST", "/api/v1/classify", b); status != 200 {
		t.Fatalf("a body of 1 MiB: status %d %v", status, body)
	}
}

func TestClassifyResponseShape(t *testing.T) {
	s, m := newTestServer(&fakeClassifier{})
	status, body, _ := do(t, s, "POST", "/api/v1/classify", jsonTexts("count me in", "me too"))
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	results := body["results"].([]any)
	if len(results) != 2 {
		t.Fatalf("%d results", len(results))
	}
	r := results[0].(map[string]any)
	if r["intent"] != "interested" || r["confidence"].(float64) < 0.89 || r["scores"].(map[string]any)["other"] == nil {
		t.Fatalf("result %v", r)
	}
	if got := testutil.ToFloat64(m.HTTPRequests.WithLabelValues("/api/v1/classify", "POST", "200")); got != 1 {
		t.Fatalf("http_requests_total{route=/api/v1/classify,status=200} = %v", got)
	}
}

func TestClassifierErrorsMapToStatuses(t *testing.T) {
	cases := []struct {
		err        error
		status     int
		retryAfter string
		msg        string
	}{
		{voluntree.Errorf(voluntree.EOVERLOADED, "queue full"), 503, "1", "queue full"},
		{voluntree.Errorf(voluntree.EUNAVAILABLE, "stopping"), 503, "", "stopping"},
		{context.DeadlineExceeded, 504, "", "timed out"},
		{io.ErrUnexpectedEOF, 500, "", "internal error"}, // details stay in logs
		{voluntree.Errorf("new_code", "unmapped"), 500, "", "unmapped"},
	}
	for _, tc := range cases {
		s, _ := newTestServer(&fakeClassifier{err: tc.err})
		status, body, hdr := do(t, s, "POST", "/api/v1/classify", jsonTexts("x"))
		if status != tc.status || hdr.Get("Retry-After") != tc.retryAfter || !strings.Contains(body["error"].(string), tc.msg) {
			t.Errorf("%v: status %d retry-after %q body %v", tc.err, status, hdr.Get("Retry-After"), body)
		}
	}
}

func TestUnknownRoutesAndMethodsAreJSON(t *testing.T) {
	s, m := newTestServer(&fakeClassifier{})
	status, body, _ := do(t, s, "GET", "/api/v1/nope", "")
	if status != 404 || body["error"] == nil {
		t.Fatalf("status %d body %v", status, body)
	}
	status, body, _ = do(t, s, "GET", "/api/v1/classify", "")
	if status != 404 && status != 405 || body["error"] == nil {
		t.Fatalf("GET classify: status %d body %v", status, body)
	}
	if got := testutil.ToFloat64(m.HTTPRequests.WithLabelValues("unmatched", "GET", "404")); got < 1 {
		t.Fatal("unmatched routes must share one label value")
	}
}

func TestHealthz(t *testing.T) {
	reg := prometheus.NewRegistry()
	var redisErr error
	s := New(Config{Classifier: &fakeClassifier{}, Metrics: metrics.New(reg), Gatherer: reg,
		Health: []HealthCheck{{Name: "redis", Check: func(context.Context) error { return redisErr }}}})
	status, body, _ := do(t, s, "GET", "/healthz", "")
	if status != 200 || body["status"] != "ok" {
		t.Fatalf("%d %v", status, body)
	}
	redisErr = io.EOF
	status, body, _ = do(t, s, "GET", "/healthz", "")
	// Why a check fails is for the logs: the answer only says it is unavailable.
	if status != 503 || body["checks"].(map[string]any)["redis"] != "unavailable" || strings.Contains(fmt.Sprint(body), "EOF") {
		t.Fatalf("%d %v", status, body)
	}
}

func TestDashboardIsServed(t *testing.T) {
	s, _ := newTestServer(&fakeClassifier{})
	for path, want := range map[string]string{"/": `<ol id="signups"`, "/app.js": "/ws/signups", "/style.css": "{"} {
		resp, err := s.App().Test(httptest.NewRequest("GET", path, nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(raw), want) {
			t.Fatalf("GET %s = %d, %d bytes, lacking %q", path, resp.StatusCode, len(raw), want)
		}
	}
}

func TestBodyOverLimitIs413(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Config{Classifier: &fakeClassifier{}, Metrics: metrics.New(reg), Gatherer: reg, BodyLimit: 1024})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	resp, err := http.Post("http://"+ln.Addr().String()+"/api/v1/classify", "application/json",
		strings.NewReader(jsonTexts(strings.Repeat("a", 2000))))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("413 body is not JSON: %v", err)
	}
	if resp.StatusCode != 413 || body["error"] == nil {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
}
