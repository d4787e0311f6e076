package actors

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// inferenceActor runs one batch at a time through the model. It is a child of the batcher so
// the blocking cgo call happens in its own mailbox goroutine: the batcher keeps queueing while
// a batch runs, and no other actor waits on libtorch.
type inferenceActor struct {
	model  Predictor
	logger *slog.Logger
}

func (a *inferenceActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *runBatch:
		done := a.onRunBatch(msg)
		done.worker = ctx.Self()
		ctx.Send(ctx.Parent(), done)
	}
}

func (a *inferenceActor) onRunBatch(msg *runBatch) (done *batchDone) {
	start := time.Now()
	defer func() {
		// A panic inside the model fails this batch, not the process; the actor stays up.
		if r := recover(); r != nil {
			a.logger.Error("model panicked", "action", "infer", "panic", fmt.Sprint(r))
			done = &batchDone{err: fmt.Errorf("actors: model panicked: %v", r), duration: time.Since(start)}
		}
	}()
	preds, err := a.model.Predict(context.Background(), msg.texts)
	if err == nil && len(preds) != len(msg.texts) {
		err = fmt.Errorf("actors: model returned %d predictions for %d texts", len(preds), len(msg.texts))
	}
	return &batchDone{preds: preds, err: err, duration: time.Since(start)}
}
