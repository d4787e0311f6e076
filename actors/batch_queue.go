package actors

import (
	"time"
)

// batchQueue is the batching policy of the batcher actor, free of actors and timers so it can
// be tested with an injected clock. Items wait in FIFO order; a batch is due when
//   - maxBatch items are queued (under load batches fill to the max), or
//   - the oldest queued item has waited maxDelay (a lone request at idle waits at most that), or
//   - an urgent request was queued (a caller that batched its texts itself, like the ingest
//     pipeline, has nothing to wait for): everything up to its last text is due at once.
//
// The queue holds at most maxQueue items; push refuses more (back-pressure).
type batchQueue struct {
	maxBatch int
	maxDelay time.Duration
	maxQueue int
	items    []queuedItem
	flush    int // items at the head that are due now (up to the last urgent request's)
}

type queuedItem struct {
	req      *pendingRequest
	index    int // position of the text in req.texts
	enqueued time.Time
}

// push queues every text of req at time now, or none when they do not fit.
func (q *batchQueue) push(now time.Time, req *pendingRequest) bool {
	if len(q.items)+len(req.texts) > q.maxQueue {
		return false
	}
	for i := range req.texts {
		q.items = append(q.items, queuedItem{req: req, index: i, enqueued: now})
	}
	if req.urgent {
		q.flush = len(q.items)
	}
	return true
}

func (q *batchQueue) len() int { return len(q.items) }

// due reports whether a batch should be taken at time now.
func (q *batchQueue) due(now time.Time) bool {
	if len(q.items) == 0 {
		return false
	}
	return len(q.items) >= q.maxBatch || q.flush > 0 || !now.Before(q.deadline())
}

// deadline is when the oldest queued item's wait reaches maxDelay; zero when empty.
func (q *batchQueue) deadline() time.Time {
	if len(q.items) == 0 {
		return time.Time{}
	}
	return q.items[0].enqueued.Add(q.maxDelay)
}

// take removes and returns up to maxBatch items, oldest first.
func (q *batchQueue) take() []queuedItem {
	n := min(len(q.items), q.maxBatch)
	batch := make([]queuedItem, n)
	copy(batch, q.items[:n])
	rest := copy(q.items, q.items[n:])
	clear(q.items[rest:])
	q.items = q.items[:rest]
	q.flush = max(0, q.flush-n)
	return batch
}

// drain removes and returns everything.
func (q *batchQueue) drain() []queuedItem {
	all := q.items
	q.items, q.flush = nil, 0
	return all
}
