package streamworker_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/internal/redistest"
	"github.com/voluntree/voluntree/internal/streamworker"
)

var redisSrv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &redisSrv) }

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRetryAfterBackoff: a failed entry is handed over again once its backoff has passed, with
// its delivery count, while new entries keep flowing.
func TestRetryAfterBackoff(t *testing.T) {
	rdb, prefix := redisSrv.Client(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var calls atomic.Int64
	var secondDelivery atomic.Int64
	w := streamworker.New(rdb, streamworker.Config{Name: "t", Stream: prefix + "s", Group: "g", Consumer: "c",
		DeadStream: prefix + "dead", Block: 200 * time.Millisecond, ClaimIdle: time.Minute, MaxAttempts: 12,
		BaseDelay: 300 * time.Millisecond, MaxDelay: 30 * time.Second},
		streamworker.HandlerFunc(func(ctx context.Context, e streamworker.Entry) error {
			if e.Field("k") == "flaky" {
				if calls.Add(1) == 1 {
					return errors.New("first time fails")
				}
				secondDelivery.Store(e.Deliveries)
			}
			return nil
		}), nil, nil)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	start := time.Now()
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: prefix + "s", Values: []any{"k", "flaky"}})
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: prefix + "s", Values: []any{"k", "ok"}})
	waitFor(t, "the retry", 5*time.Second, func() bool { return w.Stats().Done == 2 })
	if took := time.Since(start); took < 300*time.Millisecond || secondDelivery.Load() != 2 || w.Stats().Retried != 1 {
		t.Fatalf("retried after %s on delivery %d, stats %+v", took, secondDelivery.Load(), w.Stats())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// env is one test's stream, with helpers.
type env struct {
	t      *testing.T
	rdb    redis.UniversalClient
	stream string
	dead   string
}

func newEnv(t *testing.T) *env {
	rdb, prefix := redisSrv.Client(t)
	return &env{t: t, rdb: rdb, stream: prefix + "s", dead: prefix + "dead"}
}

func (e *env) config(consumer string) streamworker.Config {
	return streamworker.Config{Name: "t", Stream: e.stream, Group: "g", Consumer: consumer, DeadStream: e.dead,
		Block: 20 * time.Millisecond, ClaimIdle: time.Minute, MaxAttempts: 3,
		BaseDelay: 20 * time.Millisecond, MaxDelay: time.Second}
}

func (e *env) add(n int, k string) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		id, err := e.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: e.stream, Values: []any{"k", k, "i", i}}).Result()
		if err != nil {
			e.t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// pending is the group's count of delivered, unacknowledged entries.
func (e *env) pending() int64 {
	e.t.Helper()
	p, err := e.rdb.XPending(context.Background(), e.stream, "g").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Count
}

func (e *env) deadLetters() []redis.XMessage {
	e.t.Helper()
	xs, err := e.rdb.XRange(context.Background(), e.dead, "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return xs
}

// run runs w until the test ends, and checks Run's result then.
func run(t *testing.T, w *streamworker.Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// asyncHandler finishes each batch in a goroutine of its own after hold, counting deliveries
// per entry, batch sizes and the most batches in flight at once.
type asyncHandler struct {
	hold                  time.Duration
	mu                    sync.Mutex
	calls                 map[string]int
	sizes                 []int
	inflight, maxInflight int
	fail                  func(e streamworker.Entry) error
}

func (h *asyncHandler) HandleBatch(ctx context.Context, entries []streamworker.Entry, done func([]error)) {
	h.mu.Lock()
	h.sizes = append(h.sizes, len(entries))
	h.inflight++
	h.maxInflight = max(h.maxInflight, h.inflight)
	for _, e := range entries {
		h.calls[e.ID]++
	}
	h.mu.Unlock()
	go func() {
		time.Sleep(h.hold)
		errs := make([]error, len(entries))
		for i, e := range entries {
			if h.fail != nil {
				errs[i] = h.fail(e)
			}
		}
		h.mu.Lock()
		h.inflight--
		h.mu.Unlock()
		done(errs)
	}()
}

func (h *asyncHandler) snapshot() (calls map[string]int, sizes []int, maxInflight int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.calls), slices.Clone(h.sizes), h.maxInflight
}

// TestBatchesArePipelined: a BatchHandler gets a read's entries together, several batches are
// in flight at once, and every entry is handled and acknowledged exactly once.
func TestBatchesArePipelined(t *testing.T) {
	e := newEnv(t)
	ids := e.add(400, "x")
	h := &asyncHandler{hold: 30 * time.Millisecond, calls: map[string]int{}}
	cfg := e.config("c")
	cfg.ReadCount = 32
	w := streamworker.NewBatch(e.rdb, cfg, h, nil, nil)
	run(t, w)
	waitFor(t, "400 acknowledged", 10*time.Second, func() bool { return w.Stats().Done == 400 })
	calls, sizes, maxInflight := h.snapshot()
	for _, id := range ids {
		if calls[id] != 1 {
			t.Fatalf("entry %s handled %d times", id, calls[id])
		}
	}
	if slices.Max(sizes) != 32 || maxInflight < 2 {
		t.Fatalf("batch sizes %v, at most %d in flight: want full batches of 32, several in flight", sizes, maxInflight)
	}
	if n := e.pending(); n != 0 {
		t.Fatalf("%d entries still pending", n)
	}
}

// TestClaimsADeadConsumersEntries: entries a dead consumer read are taken over once idle for
// ClaimIdle, with their delivery count, in batches.
func TestClaimsADeadConsumersEntries(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.rdb.XGroupCreateMkStream(ctx, e.stream, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	ids := e.add(50, "orphan")
	readAt := time.Now()
	if err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "dead",
		Streams: []string{e.stream, ">"}, Count: 100, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	deliveries := map[string]int64{}
	first := map[string]time.Time{}
	cfg := e.config("alive")
	cfg.ClaimIdle, cfg.ClaimEvery, cfg.ReadCount = 200*time.Millisecond, 20*time.Millisecond, 16
	w := streamworker.New(e.rdb, cfg, streamworker.HandlerFunc(func(ctx context.Context, x streamworker.Entry) error {
		mu.Lock()
		defer mu.Unlock()
		deliveries[x.ID] = x.Deliveries
		if _, ok := first[x.ID]; !ok {
			first[x.ID] = time.Now()
		}
		return nil
	}), nil, nil)
	run(t, w)
	waitFor(t, "50 acknowledged", 10*time.Second, func() bool { return w.Stats().Done == 50 })
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if deliveries[id] != 2 || first[id].Sub(readAt) < 190*time.Millisecond {
			t.Fatalf("entry %s: delivery %d, %s after the dead read; want the 2nd, after ClaimIdle", id, deliveries[id], first[id].Sub(readAt))
		}
	}
	if s := w.Stats(); s.Claimed != 50 || s.Retried != 0 || s.Dead != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestEntriesInFlightAreNotTakenAgain: a batch held for several ClaimIdle periods is neither
// claimed by its own worker nor by a peer, nor retried: it is touched while in flight.
func TestEntriesInFlightAreNotTakenAgain(t *testing.T) {
	e := newEnv(t)
	e.add(3, "slow")
	h := &asyncHandler{hold: 600 * time.Millisecond, calls: map[string]int{}}
	cfg := e.config("c1")
	cfg.ClaimIdle, cfg.ClaimEvery, cfg.ReadCount = 120*time.Millisecond, 10*time.Millisecond, 8
	cfg.BaseDelay, cfg.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	w := streamworker.NewBatch(e.rdb, cfg, h, nil, nil)
	run(t, w)
	peerCfg := cfg
	peerCfg.Consumer = "c2"
	peer := streamworker.NewBatch(e.rdb, peerCfg, h, nil, nil)
	run(t, peer)
	waitFor(t, "3 acknowledged", 10*time.Second, func() bool { return w.Stats().Done+peer.Stats().Done == 3 })
	calls, _, _ := h.snapshot()
	for id, n := range calls {
		if n != 1 {
			t.Fatalf("entry %s handed over %d times while in flight", id, n)
		}
	}
	if c := w.Stats().Claimed + peer.Stats().Claimed; c != 0 {
		t.Fatalf("%d in-flight entries claimed", c)
	}
}

// TestDeadLetters: a permanent failure goes to the dead stream at once, with the entry's
// values; a failure that persists goes after MaxAttempts deliveries; the others are done.
func TestDeadLetters(t *testing.T) {
	e := newEnv(t)
	perm := e.add(1, "perm")[0]
	flaky := e.add(1, "always")[0]
	e.add(5, "ok")
	h := &asyncHandler{calls: map[string]int{}, fail: func(x streamworker.Entry) error {
		switch x.Field("k") {
		case "perm":
			return streamworker.Permanent(errors.New("cannot ever work"))
		case "always":
			return errors.New("down")
		}
		return nil
	}}
	cfg := e.config("c")
	cfg.ReadCount = 4
	w := streamworker.NewBatch(e.rdb, cfg, h, nil, nil)
	run(t, w)
	waitFor(t, "2 dead letters", 10*time.Second, func() bool { return w.Stats().Dead == 2 })
	dead := e.deadLetters()
	byEntry := map[string]map[string]any{}
	for _, x := range dead {
		byEntry[x.Values["entry"].(string)] = x.Values
	}
	if d := byEntry[perm]; d == nil || d["error"] != "cannot ever work" || d["deliveries"] != "1" || d["k"] != "perm" {
		t.Fatalf("permanent failure's dead letter %v", d)
	}
	if d := byEntry[flaky]; d == nil || d["error"] != "gave up after 3 attempts: down" || d["deliveries"] != "3" || d["k"] != "always" {
		t.Fatalf("persistent failure's dead letter %v", d)
	}
	calls, _, _ := h.snapshot()
	if calls[perm] != 1 || calls[flaky] != 3 {
		t.Fatalf("permanent failure handled %d times, persistent one %d; want 1 and 3", calls[perm], calls[flaky])
	}
	if s := w.Stats(); s.Done != 5 || s.Retried != 2 {
		t.Fatalf("stats %+v, want 5 done, 2 retried", s)
	}
	if n, _ := e.rdb.XLen(context.Background(), e.stream).Result(); n != 5 {
		t.Fatalf("stream holds %d entries, want the 5 done (dead-lettered ones are removed)", n)
	}
}

// TestStopFinishesTheBatchInHand: Run returns once the batch it handed over is done and
// acknowledged, and a handler's panic is a failure of its batch, retried.
func TestStopFinishesTheBatchInHand(t *testing.T) {
	e := newEnv(t)
	e.add(2, "x")
	h := &asyncHandler{hold: 300 * time.Millisecond, calls: map[string]int{}}
	cfg := e.config("c")
	cfg.ReadCount = 10
	w := streamworker.NewBatch(e.rdb, cfg, h, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, "the batch handed over", 5*time.Second, func() bool { _, sizes, _ := h.snapshot(); return len(sizes) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Done != 2 || e.pending() != 0 {
		t.Fatalf("after Run returned: stats %+v, %d pending; want the batch in hand acknowledged", s, e.pending())
	}

	var panics atomic.Int64
	e.add(1, "boom")
	w2 := streamworker.New(e.rdb, cfg, streamworker.HandlerFunc(func(ctx context.Context, x streamworker.Entry) error {
		if panics.Add(1) == 1 {
			panic("handler bug")
		}
		return nil
	}), nil, nil)
	run(t, w2)
	waitFor(t, "the entry done after the panic", 5*time.Second, func() bool { return w2.Stats().Done == 1 })
	if s := w2.Stats(); s.Retried != 1 || panics.Load() != 2 {
		t.Fatalf("stats %+v after %d calls; want one retry after the panic", s, panics.Load())
	}
}
