package actors

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/metrics"
)

// batcherActor gathers classify requests from many senders into model batches (see
// batchQueue for the policy) and hands one batch at a time to its inference child. Its
// Receive never blocks: inference runs in the child, timers fire from time.AfterFunc.
type batcherActor struct {
	cfg     BatcherConfig
	model   Predictor
	metrics *metrics.Metrics
	logger  *slog.Logger

	queue    batchQueue
	worker   *actor.PID
	inFlight []queuedItem    // the batch the worker is running; nil when idle
	current  *pendingRequest // the request being handled, failed too if handling panics
	stopping bool
	stopped  func() // called once the actor has stopped for good

	timer    *time.Timer
	timerGen uint64
	timerAt  time.Time
}

func newBatcherActor(cfg BatcherConfig, model Predictor, m *metrics.Metrics, logger *slog.Logger, stopped func()) *batcherActor {
	return &batcherActor{
		cfg: cfg, model: model, metrics: m, logger: logger, stopped: stopped,
		queue: batchQueue{maxBatch: cfg.MaxBatch, maxDelay: cfg.MaxDelay, maxQueue: cfg.MaxQueue},
	}
}

func (a *batcherActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.onStarted(ctx)
	case *classifyRequest:
		a.current = msg.req
		a.onClassify(ctx, msg)
		a.current = nil
	case *flushTick:
		if msg.gen == a.timerGen {
			a.timerAt = time.Time{}
			a.dispatch(ctx)
		}
	case *batchDone:
		a.onBatchDone(ctx, msg)
	case *actor.Restarting:
		a.failAll(voluntree.Errorf(voluntree.EUNAVAILABLE, "classifier is restarting"))
	case *actor.Stopping:
		a.stopping = true
		a.failAll(voluntree.Errorf(voluntree.EUNAVAILABLE, "classifier is stopping"))
	case *actor.Stopped:
		a.stopped()
	}
}

func (a *batcherActor) onStarted(ctx actor.Context) {
	props := actor.PropsFromProducer(func() actor.Actor {
		return &inferenceActor{model: a.model, logger: a.logger}
	})
	a.worker = ctx.Spawn(props)
	a.logger.Info("batcher started", "action", "start", "max_batch", a.cfg.MaxBatch,
		"max_delay", a.cfg.MaxDelay.String(), "max_queue", a.cfg.MaxQueue)
}

func (a *batcherActor) onClassify(ctx actor.Context, msg *classifyRequest) {
	req := msg.req
	if a.stopping {
		req.finish(nil, voluntree.Errorf(voluntree.EUNAVAILABLE, "classifier is stopping"))
		return
	}
	if !a.queue.push(a.cfg.Clock.Now(), req) {
		a.metrics.BatcherRequests.WithLabelValues("overloaded").Inc()
		a.metrics.BatcherRejected.Add(float64(len(req.texts)))
		req.finish(nil, voluntree.Errorf(voluntree.EOVERLOADED,
			"classifier overloaded: %d texts queued, limit %d; retry later", a.queue.len(), a.cfg.MaxQueue))
		return
	}
	req.results = make([]voluntree.Prediction, len(req.texts))
	req.remaining = len(req.texts)
	a.metrics.QueueDepth.Set(float64(a.queue.len()))
	a.dispatch(ctx)
}

// dispatch starts a batch when the worker is idle and one is due, else arms the timer for
// the oldest item's deadline.
func (a *batcherActor) dispatch(ctx actor.Context) {
	if a.inFlight != nil {
		return // onBatchDone calls dispatch again
	}
	now := a.cfg.Clock.Now()
	for a.queue.due(now) {
		batch := a.dropCanceled(a.queue.take())
		if len(batch) == 0 {
			continue
		}
		texts := make([]string, len(batch))
		for i, it := range batch {
			texts[i] = it.req.texts[it.index]
			a.metrics.QueueDelay.Observe(now.Sub(it.enqueued).Seconds())
		}
		a.inFlight = batch
		a.metrics.BatchSize.Observe(float64(len(batch)))
		a.metrics.QueueDepth.Set(float64(a.queue.len()))
		ctx.Send(a.worker, &runBatch{texts: texts})
		return
	}
	a.metrics.QueueDepth.Set(float64(a.queue.len()))
	if a.queue.len() > 0 {
		a.armTimer(ctx, a.queue.deadline())
	}
}

// dropCanceled finishes the requests whose caller gave up and returns the other items.
func (a *batcherActor) dropCanceled(batch []queuedItem) []queuedItem {
	kept := batch[:0]
	for _, it := range batch {
		if err := it.req.ctx.Err(); err != nil {
			if it.req.remaining > 0 {
				it.req.remaining = 0
				a.metrics.BatcherRequests.WithLabelValues("canceled").Inc()
				it.req.finish(nil, err)
			}
			continue
		}
		if it.req.remaining > 0 {
			kept = append(kept, it)
		}
	}
	return kept
}

func (a *batcherActor) armTimer(ctx actor.Context, at time.Time) {
	if !a.timerAt.IsZero() && !at.Before(a.timerAt) {
		return // an earlier or equal wake-up is already set
	}
	if a.timer != nil {
		a.timer.Stop()
	}
	a.timerGen++
	a.timerAt = at
	gen, self, root := a.timerGen, ctx.Self(), ctx.ActorSystem().Root
	a.timer = time.AfterFunc(at.Sub(a.cfg.Clock.Now()), func() { root.Send(self, &flushTick{gen: gen}) })
}

func (a *batcherActor) onBatchDone(ctx actor.Context, msg *batchDone) {
	if a.inFlight == nil || !msg.worker.Equal(a.worker) {
		return // from a worker stopped by a restart: its requests were failed then
	}
	batch := a.inFlight
	a.inFlight = nil
	a.metrics.InferenceDuration.Observe(msg.duration.Seconds())
	if msg.err != nil {
		a.logger.Error("batch failed", "action", "infer", "batch_size", len(batch), "error", msg.err)
	}
	for i, it := range batch {
		r := it.req
		if r.remaining == 0 {
			continue // already failed or canceled
		}
		if msg.err != nil {
			r.remaining = 0
			a.metrics.BatcherRequests.WithLabelValues("error").Inc()
			r.finish(nil, msg.err)
			continue
		}
		r.results[it.index] = msg.preds[i]
		r.remaining--
		if r.remaining == 0 {
			a.metrics.BatcherRequests.WithLabelValues("ok").Inc()
			a.metrics.BatcherItems.Add(float64(len(r.texts)))
			r.finish(r.results, nil)
		}
	}
	a.dispatch(ctx)
}

// failAll answers every queued and in-flight request with err.
func (a *batcherActor) failAll(err error) {
	if a.timer != nil {
		a.timer.Stop()
	}
	for _, it := range append(a.inFlight, a.queue.drain()...) {
		if it.req.remaining > 0 {
			it.req.remaining = 0
			a.metrics.BatcherRequests.WithLabelValues("error").Inc()
			it.req.finish(nil, err)
		}
	}
	if a.current != nil { // handling it panicked: it may not be queued
		a.current.finish(nil, err)
		a.current = nil
	}
	a.inFlight = nil
	a.metrics.QueueDepth.Set(0)
}
