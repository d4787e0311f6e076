package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voluntree/voluntree"
)

// Messages of the batcher and inference actors. They never cross nodes (each node batches its
// own requests), so they are plain structs rather than protobuf messages.

// classifyRequest asks the batcher to classify req.texts; the answer goes to req.reply.
type classifyRequest struct {
	req *pendingRequest
}

// pendingRequest is one Classify call. Only the batcher actor touches results/remaining.
type pendingRequest struct {
	ctx       context.Context
	texts     []string
	urgent    bool // do not wait for other callers' texts (see batchQueue)
	results   []voluntree.Prediction
	remaining int
	reply     chan classifyReply // buffered(1); receives exactly one reply
}

type classifyReply struct {
	preds []voluntree.Prediction
	err   error
}

// finish answers the request; only the first answer counts (after a restart a request can be
// failed by more than one path).
func (r *pendingRequest) finish(preds []voluntree.Prediction, err error) {
	select {
	case r.reply <- classifyReply{preds: preds, err: err}:
	default:
	}
}

// flushTick wakes the batcher when the oldest item's max delay is reached. gen tells a stale
// tick (for a deadline that has since changed) from the current one.
type flushTick struct {
	gen uint64
}

// runBatch asks the inference actor to run one batch.
type runBatch struct {
	texts []string
}

// batchDone is the inference actor's answer to runBatch. worker tells a current worker's
// answer from that of a worker stopped by a restart, which may still arrive.
type batchDone struct {
	worker   *actor.PID
	preds    []voluntree.Prediction
	err      error
	duration time.Duration
}
