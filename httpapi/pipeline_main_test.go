package httpapi_test

// Shared set-up of the live-pipeline tests (webhook, demo, WebSocket): a private redis-server
// for the package, and per test a Store under the test's own key prefix, optionally an
// EventHub on its own actor system, and the real HTTP server on a loopback port.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/actors"
	"github.com/voluntree/voluntree/httpapi"
	"github.com/voluntree/voluntree/internal/redistest"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/redisstore"
)

var redisSrv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &redisSrv) }

// nopClassifier satisfies Config.Classifier; these tests never classify.
type nopClassifier struct{}

func (nopClassifier) Classify(context.Context, []string) ([]voluntree.Prediction, error) {
	return nil, voluntree.Errorf(voluntree.EUNAVAILABLE, "no classifier in this test")
}

// pipelineEnv is one test's running node: store, optional event hub, HTTP server.
type pipelineEnv struct {
	store *redisstore.Store
	rdb   *redis.Client
	reg   *prometheus.Registry
	m     *metrics.Metrics
	hub   *actors.EventHub
	addr  string // host:port of the HTTP server
	srv   *httpapi.Server

	stopHubOnce sync.Once
	stopHubErr  error
}

// stopHub stops the event hub once (tests may stop it before the clean-up does).
func (e *pipelineEnv) stopHub(ctx context.Context) error {
	e.stopHubOnce.Do(func() { e.stopHubErr = e.hub.Stop(ctx) })
	return e.stopHubErr
}

type envOptions struct {
	store  redisstore.Config      // Prefix is set to the test's prefix
	hub    *actors.EventHubConfig // nil: no event hub (Config.Events stays nil)
	config func(*httpapi.Config)  // adjusts the server's Config after the defaults
	admin  bool                   // Config.Store set: the admin API and live-feed tickets
}

// newEnv starts a node for t. Everything is stopped when t ends: the hub first (its sockets
// get their close frames), then the HTTP server, the actor system and the Redis client.
func newEnv(t *testing.T, o envOptions) *pipelineEnv {
	t.Helper()
	rdb, prefix := redisSrv.Client(t)
	o.store.Prefix = strings.TrimSuffix(prefix, ":")
	store, err := redisstore.New(rdb, o.store)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	e := &pipelineEnv{store: store, rdb: rdb, reg: reg, m: metrics.New(reg)}
	logger := slog.New(slog.DiscardHandler)

	cfg := httpapi.Config{
		Classifier:     nopClassifier{},
		Metrics:        e.m,
		Gatherer:       reg,
		Logger:         logger,
		Ingest:         store,
		RequestTimeout: 20 * time.Second,
	}
	var system interface{ Shutdown() }
	if o.hub != nil {
		sys := actors.NewSystem(logger, nil)
		system = sys
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		hub, err := actors.NewEventHub(ctx, sys, store, *o.hub, e.m, logger)
		cancel()
		if err != nil {
			sys.Shutdown()
			t.Fatal(err)
		}
		e.hub = hub
		cfg.Events = hub
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	cfg.PublicURL = "http://" + e.addr
	if o.admin {
		cfg.Store = store
	}
	if o.config != nil {
		o.config(&cfg)
	}
	srv := httpapi.New(cfg)
	e.srv = srv
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if e.hub != nil {
			if err := e.stopHub(ctx); err != nil {
				t.Errorf("stop event hub: %v", err)
			}
		}
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		_ = ln.Close() // a Shutdown racing Serve's start does not close ln
		<-served
		if system != nil {
			system.Shutdown()
		}
	})
	return e
}

func (e *pipelineEnv) url(path string) string { return "http://" + e.addr + path }

// ingestLen is the number of entries in the ingest stream (0 when it does not exist).
func (e *pipelineEnv) ingestLen(t *testing.T) int64 {
	t.Helper()
	n, err := e.rdb.XLen(context.Background(), e.store.Keys().Ingest()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ingestMessages decodes every entry's message (field "m") of the ingest stream, in order.
func (e *pipelineEnv) ingestMessages(t *testing.T) []voluntree.Message {
	t.Helper()
	xs, err := e.rdb.XRange(context.Background(), e.store.Keys().Ingest(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]voluntree.Message, 0, len(xs))
	for _, x := range xs {
		raw, ok := x.Values["m"].(string)
		if !ok {
			t.Fatalf("ingest entry %s has no field \"m\": %v", x.ID, x.Values)
		}
		var m voluntree.Message
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatalf("ingest entry %s: %v", x.ID, err)
		}
		out = append(out, m)
	}
	return out
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// request sends one request and returns the status, the raw body and the headers.
func request(t *testing.T, method, url string, body []byte, header map[string]string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, raw, resp.Header
}

// decodeObject decodes a JSON object response, failing t when it is not one.
func decodeObject(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response is not a JSON object: %q", truncate(raw))
	}
	return out
}

// requireErrorBody checks the API's error shape: {"error": "<non-empty>"}.
func requireErrorBody(t *testing.T, raw []byte) string {
	t.Helper()
	body := decodeObject(t, raw)
	msg, _ := body["error"].(string)
	if msg == "" || len(body) != 1 {
		t.Fatalf("error response %q, want {\"error\": \"...\"}", truncate(raw))
	}
	return msg
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}
