package actors

import (
	"testing"
	"time"
)

func req(n int) *pendingRequest {
	return &pendingRequest{texts: make([]string, n)}
}

func TestBatchQueuePolicy(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type push struct {
		at, n int
	}
	cases := []struct {
		name      string
		pushes    []push
		checkAt   int
		wantDue   bool
		wantTake  int
		wantLeft  int
		wantDeadl int // ms; -1 when empty after take
	}{
		{"lone item waits for max delay", []push{{0, 1}}, 4, false, 0, 1, 5},
		{"lone item is due at max delay", []push{{0, 1}}, 5, true, 1, 0, -1},
		{"deadline counts from the first item", []push{{0, 1}, {4, 1}}, 5, true, 2, 0, -1},
		{"a full batch is due at once", []push{{0, 8}}, 0, true, 8, 0, -1},
		{"more than a batch leaves the rest", []push{{0, 5}, {1, 6}}, 1, true, 8, 3, 6},
		{"rest keeps its own enqueue time", []push{{0, 8}, {3, 2}}, 3, true, 8, 2, 8},
		{"empty queue is never due", nil, 100, false, 0, 0, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := batchQueue{maxBatch: 8, maxDelay: 5 * time.Millisecond, maxQueue: 100}
			for _, p := range tc.pushes {
				if !q.push(ms(p.at), req(p.n)) {
					t.Fatalf("push refused")
				}
			}
			if got := q.due(ms(tc.checkAt)); got != tc.wantDue {
				t.Fatalf("due at %dms = %v, want %v", tc.checkAt, got, tc.wantDue)
			}
			if !tc.wantDue {
				if tc.wantLeft > 0 && !q.deadline().Equal(ms(tc.wantDeadl)) {
					t.Fatalf("deadline %v, want %dms", q.deadline().Sub(t0), tc.wantDeadl)
				}
				return
			}
			if got := len(q.take()); got != tc.wantTake {
				t.Fatalf("took %d, want %d", got, tc.wantTake)
			}
			if q.len() != tc.wantLeft {
				t.Fatalf("%d left, want %d", q.len(), tc.wantLeft)
			}
			if tc.wantDeadl < 0 {
				if !q.deadline().IsZero() {
					t.Fatalf("deadline %v on an empty queue", q.deadline())
				}
			} else if !q.deadline().Equal(ms(tc.wantDeadl)) {
				t.Fatalf("next deadline %v, want %dms", q.deadline().Sub(t0), tc.wantDeadl)
			}
		})
	}
}

func TestBatchQueueBoundsAndOrder(t *testing.T) {
	now := time.Now()
	q := batchQueue{maxBatch: 4, maxDelay: time.Millisecond, maxQueue: 6}
	a, b, c := req(3), req(3), req(1)
	if !q.push(now, a) || !q.push(now, b) {
		t.Fatal("6 items must fit a queue of 6")
	}
	if q.push(now, c) {
		t.Fatal("a 7th item was accepted: the queue is unbounded")
	}
	if q.len() != 6 {
		t.Fatalf("a refused request changed the queue: len %d", q.len())
	}
	first := q.take()
	want := []struct {
		r   *pendingRequest
		idx int
	}{{a, 0}, {a, 1}, {a, 2}, {b, 0}}
	for i, w := range want {
		if first[i].req != w.r || first[i].index != w.idx {
			t.Fatalf("item %d is (%p,%d), want FIFO order", i, first[i].req, first[i].index)
		}
	}
	if rest := q.drain(); len(rest) != 2 || rest[0].req != b || rest[1].index != 2 || q.len() != 0 {
		t.Fatalf("drain returned %d items, queue %d", len(rest), q.len())
	}
}

func TestBatchQueueUrgentFlushes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q := batchQueue{maxBatch: 8, maxDelay: 5 * time.Millisecond, maxQueue: 100}
	q.push(t0, req(2)) // an ordinary request: would wait for the max delay
	if q.due(t0) {
		t.Fatal("ordinary request due at once")
	}
	urgent := req(10)
	urgent.urgent = true
	q.push(t0, urgent)
	for i, want := range []int{8, 4} { // everything up to the urgent request's last text, in max-size batches
		if !q.due(t0) {
			t.Fatalf("batch %d not due", i)
		}
		if got := len(q.take()); got != want {
			t.Fatalf("batch %d has %d items, want %d", i, got, want)
		}
	}
	q.push(t0, req(1))
	if q.due(t0) {
		t.Fatal("the flush outlived the urgent request's texts")
	}
}
