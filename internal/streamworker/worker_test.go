package streamworker_test

import (
	"context"
	"errors"
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
