package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// Batch is one read of the ingest stream on its way through the stages.
type Batch struct {
	Msgs []voluntree.Message
	// Errs holds one error per message; a stage sets it when a message fails, and later
	// stages skip that message. Nil at the end means the message's effects are durable.
	Errs []error
	// Data is what a Processor's stages hand each other (classifications, routing).
	Data any

	entries []redisstore.Entry
	start   time.Time
	ctx     context.Context
	cancel  context.CancelFunc
}

// Failed reports whether message i has failed in an earlier stage.
func (b *Batch) Failed(i int) bool { return b.Errs[i] != nil }

// Stage is one step of processing a batch. Each stage runs in its own goroutine and takes the
// batches in stream order, one at a time: stage k of batch n+1 overlaps stage k+1 of batch
// n, while messages of one key (a conversation, a post) still reach each stage in order.
type Stage func(ctx context.Context, b *Batch)

// StagedProcessor is a Processor whose work is split into ordered stages; the consumer then
// pipelines batches through them instead of processing one batch at a time.
type StagedProcessor interface {
	Processor
	Stages() []Stage
}

// stagesOf returns p's stages, or one stage that calls Process.
func stagesOf(p Processor) []Stage {
	if sp, ok := p.(StagedProcessor); ok {
		return sp.Stages()
	}
	return []Stage{func(ctx context.Context, b *Batch) {
		errs := p.Process(ctx, b.Msgs)
		if len(errs) != len(b.Msgs) { // a broken Processor must not get entries acknowledged
			err := fmt.Errorf("actors: processor returned %d results for %d messages", len(errs), len(b.Msgs))
			for i := range b.Errs {
				b.Errs[i] = err
			}
			return
		}
		for i, err := range errs {
			if err != nil && b.Errs[i] == nil {
				b.Errs[i] = err
			}
		}
	}}
}

// RunStages runs a batch of messages through stages one after the other (no pipelining):
// what a StagedProcessor's Process does.
func RunStages(ctx context.Context, stages []Stage, msgs []voluntree.Message) []error {
	b := &Batch{Msgs: msgs, Errs: make([]error, len(msgs))}
	for _, st := range stages {
		st(ctx, b)
	}
	return b.Errs
}

// startPipeline starts one goroutine per stage and one that acknowledges; batches sent to
// the returned channel flow through them in order. Closing it drains the pipeline; the
// returned done channel closes when the last batch is acknowledged.
func (c *IngestConsumer) startPipeline() (chan<- *Batch, <-chan struct{}) {
	in := make(chan *Batch)
	next := (<-chan *Batch)(in)
	for _, st := range stagesOf(c.proc) {
		out := make(chan *Batch, 1)
		go func(st Stage, from <-chan *Batch, to chan<- *Batch) {
			defer close(to)
			for b := range from {
				st(b.ctx, b)
				to <- b
			}
		}(st, next, out)
		next = out
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range next {
			c.finish(b)
		}
	}()
	return in, done
}

// finish acknowledges a batch's successes in one call and deals with its failures: recorded
// for the next delivery, or dead-lettered at the last one.
func (c *IngestConsumer) finish(b *Batch) {
	defer b.cancel()
	defer c.forget(b.entries)
	// Bookkeeping gets its own deadline: a batch that succeeded late in a backed-up pipeline
	// must still be acknowledged, or it is redelivered when the system is already slow.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var acks []string
	for i, e := range b.entries {
		err := b.Errs[i]
		if err == nil {
			acks = append(acks, e.ID)
			continue
		}
		c.metrics.IngestFailures.Inc()
		c.log.Warn("entry failed", "action", "process", "entry", e.ID, "message", e.Message.ID,
			"delivery", e.Deliveries, "error", err)
		if e.Deliveries >= int64(c.cfg.MaxDeliveries) {
			c.deadLetter(ctx, e, err)
			continue
		}
		if err := c.store.RecordFailure(ctx, e.ID, err); err != nil {
			c.log.Error("record failure", "action", "process", "entry", e.ID, "error", err)
		}
	}
	if err := c.store.Ack(ctx, acks...); err != nil {
		// Effects are durable and idempotent: the entries are redelivered and change nothing.
		c.log.Error("ack", "action", "ack", "entries", len(acks), "error", err)
	}
	c.metrics.IngestBatchTime.Observe(time.Since(b.start).Seconds())
}

// submit sends one read's entries into the pipeline: undecodable ones and ones past
// MaxDeliveries go to the dead letters first. It blocks while the first stage is busy, which
// is the consumer's backpressure: it reads no faster than the stages go.
func (c *IngestConsumer) submit(parent context.Context, in chan<- *Batch, entries []redisstore.Entry) {
	if len(entries) == 0 {
		return
	}
	c.metrics.IngestRead.Add(float64(len(entries)))
	c.metrics.IngestBatchSize.Observe(float64(len(entries)))
	// A batch is finished even when the consumer is stopping: its effects are on their way,
	// and acknowledging them now saves a redelivery.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), c.cfg.ProcessTimeout)
	b := &Batch{start: time.Now(), ctx: ctx, cancel: cancel,
		entries: make([]redisstore.Entry, 0, len(entries)), Msgs: make([]voluntree.Message, 0, len(entries))}
	for _, e := range entries {
		switch {
		case e.Err != nil:
			c.deadLetter(ctx, e, fmt.Errorf("undecodable entry: %w", e.Err))
		case e.Deliveries > int64(c.cfg.MaxDeliveries):
			// Failed (or crashed its consumer) every delivery; the last recorded error, if
			// any, goes with it.
			c.deadLetter(ctx, e, nil)
		default:
			b.entries = append(b.entries, e)
			b.Msgs = append(b.Msgs, e.Message)
		}
	}
	if len(b.entries) == 0 {
		cancel()
		return
	}
	b.Errs = make([]error, len(b.Msgs))
	c.mu.Lock()
	for _, e := range b.entries {
		c.inflight[e.ID] = b.start
	}
	c.mu.Unlock()
	in <- b
}

func (c *IngestConsumer) forget(entries []redisstore.Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range entries {
		delete(c.inflight, e.ID)
	}
}
