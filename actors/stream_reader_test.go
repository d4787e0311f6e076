package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/internal/streamworker"
)

// flakyRunner fails its first runs (an error, then a panic) and then reads until stopped.
type flakyRunner struct {
	runs, finished atomic.Int64
}

func (r *flakyRunner) Run(ctx context.Context) error {
	switch r.runs.Add(1) {
	case 1:
		return errors.New("redis went away")
	case 2:
		panic("a bug in the loop")
	}
	<-ctx.Done()
	r.finished.Add(1)
	return nil
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStreamReaderRestartsAFailedLoop: a loop that fails or panics is restarted by the
// reader's supervisor; Stop ends the running loop.
func TestStreamReaderRestartsAFailedLoop(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := NewSystem(logger, nil)
	defer system.Shutdown()
	r := &flakyRunner{}
	sr, err := StartStreamReader(system, "flaky", r, logger)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the third run", func() bool { return r.runs.Load() == 3 })
	if got := sr.Restarts(); got != 2 {
		t.Fatalf("restarts = %d, want 2 (an error, a panic)", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sr.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if r.finished.Load() != 1 || r.runs.Load() != 3 {
		t.Fatalf("after Stop: %d runs, %d finished; want 3 runs, the last one finished", r.runs.Load(), r.finished.Load())
	}
}

// TestStreamReaderRunsAStreamWorker: the reader actor runs a real stream worker against
// Redis: entries are handled and acknowledged, and a stop leaves nothing pending.
func TestStreamReaderRunsAStreamWorker(t *testing.T) {
	rdb, prefix := redisSrv.Client(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := NewSystem(logger, nil)
	defer system.Shutdown()
	ctx := t.Context()
	var handled atomic.Int64
	w := streamworker.New(rdb, streamworker.Config{Name: "jobs", Stream: prefix + ":jobs", Group: "g",
		Consumer: "c1", DeadStream: prefix + ":jobs:dead", Block: 10 * time.Millisecond, ClaimIdle: time.Second},
		streamworker.HandlerFunc(func(ctx context.Context, e streamworker.Entry) error {
			if e.Field("n") == "" {
				return streamworker.Permanent(errors.New("no n"))
			}
			handled.Add(1)
			return nil
		}), nil, logger)
	sr, err := StartStreamReader(system, "jobs", w, logger)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		vals := []any{"n", i}
		if i == 7 {
			vals = []any{"x", i}
		}
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: prefix + ":jobs", Values: vals}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "19 entries handled and one dead", func() bool { return w.Stats().Done == 19 && w.Stats().Dead == 1 })
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := sr.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	pend, err := rdb.XPending(ctx, prefix+":jobs", "g").Result()
	if err != nil || pend.Count != 0 {
		t.Fatalf("pending after stop: %+v %v", pend, err)
	}
	dead, err := rdb.XRange(ctx, prefix+":jobs:dead", "-", "+").Result()
	if err != nil || len(dead) != 1 || dead[0].Values["x"] != "7" || dead[0].Values["error"] != "no n" {
		t.Fatalf("dead stream: %+v %v", dead, err)
	}
}
