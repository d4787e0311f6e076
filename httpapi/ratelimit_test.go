package httpapi

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(10, 20, 3) // 10 tokens/s, burst 20, 3 clients
	l.now = func() time.Time { return now }
	if ok, _ := l.take("a", 20); !ok {
		t.Fatal("a full bucket refused its burst")
	}
	ok, wait := l.take("a", 5)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("empty bucket: ok %v, retry after %s; want refused, 500ms", ok, wait)
	}
	if ok, _ := l.take("b", 1); !ok {
		t.Fatal("another client was refused: buckets are per client")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.take("a", 5); !ok {
		t.Fatal("refused after the wait it was told")
	}
	// A cost above the burst is charged as the burst: possible with a full bucket.
	if ok, _ := l.take("c", 1000); !ok {
		t.Fatal("a large request on a full bucket was refused")
	}
	if ok, wait := l.take("c", 1000); ok || wait != 2*time.Second {
		t.Fatalf("a large request on an empty bucket: %v, %s; want refused, 2s (a full burst)", ok, wait)
	}
	// A fourth client: the buckets that refilled are forgotten, the others kept.
	now = now.Add(3 * time.Second)
	l.take("a", 20) // a is empty again (spent now), b and c are full
	if ok, _ := l.take("d", 1); !ok {
		t.Fatal("a new client was refused")
	}
	if _, kept := l.buckets["a"]; !kept || len(l.buckets) != 2 {
		t.Fatalf("after eviction: %d buckets (a kept: %v), want a and d", len(l.buckets), kept)
	}
	if ok, _ := l.take("a", 1); ok {
		t.Fatal("eviction refilled a client that was still limited")
	}
}
