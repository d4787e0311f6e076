package redistest

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

var srv *Server

func TestMain(m *testing.M) {
	srv = Start()
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}

func TestClientsArePrefixedAndIsolated(t *testing.T) {
	ctx := context.Background()
	a, pa := srv.Client(t)
	b, pb := srv.Client(t)
	if pa == pb || !strings.HasPrefix(pa, "test:TestClientsArePrefixedAndIsolated:") {
		t.Fatalf("prefixes %q and %q must differ and name the test", pa, pb)
	}
	if err := a.Set(ctx, pa+"k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, pa+"k").Result(); err != nil || got != "a" {
		t.Fatalf("same server expected: got %q, %v", got, err)
	}
	if n, _ := b.Exists(ctx, pb+"k").Result(); n != 0 {
		t.Fatalf("key under another prefix exists")
	}
	// A real server: a command mocks rarely get right.
	if v, err := a.XAdd(ctx, &redis.XAddArgs{Stream: pa + "s", Values: map[string]any{"f": "v"}}).Result(); err != nil || v == "" {
		t.Fatalf("XADD: %q %v", v, err)
	}
}

func TestPersistenceIsOff(t *testing.T) {
	rdb, _ := srv.Client(t)
	cfg, err := rdb.ConfigGet(context.Background(), "appendonly").Result()
	if err != nil || cfg["appendonly"] != "no" {
		t.Fatalf("appendonly = %v (%v), want no", cfg, err)
	}
}
