package actors

import (
	"context"
	"fmt"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/internal/streamworker"
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

	ctx  context.Context
	done func(errs []error) // reports the outcome per stream entry to the engine
	errs []error            // per stream entry: Errs land at idx, decoding failures are here already
	idx  []int              // stream entry index of each message
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

// startPipeline starts one goroutine per stage and one that reports outcomes; batches sent to
// the returned channel flow through them in order. Closing it drains the pipeline; the
// returned done channel closes when the last batch is reported.
func (c *IngestConsumer) startPipeline() (chan<- *Batch, <-chan struct{}) {
	in := make(chan *Batch)
	next := (<-chan *Batch)(in)
	for _, st := range c.stages {
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
			for i, err := range b.Errs {
				b.errs[b.idx[i]] = err
			}
			b.done(b.errs) // the engine acknowledges, retries or dead-letters
		}
	}()
	return in, done
}

// HandleBatch is the engine's BatchHandler: it decodes a read's entries (an undecodable one
// fails for good) and sends the messages into the pipeline. It blocks while the first stage
// is busy, which is the consumer's backpressure: it reads no faster than the stages go.
func (c *IngestConsumer) HandleBatch(ctx context.Context, entries []streamworker.Entry, done func([]error)) {
	// A batch taken is finished even when the consumer is stopping: its effects are on their
	// way, and acknowledging them now saves a redelivery.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.processTimeout)
	b := &Batch{ctx: ctx, done: func(errs []error) { cancel(); done(errs) }, errs: make([]error, len(entries)),
		Msgs: make([]voluntree.Message, 0, len(entries)), idx: make([]int, 0, len(entries))}
	for i, e := range entries {
		m, err := redisstore.DecodeEntry(e.Values)
		if err != nil {
			b.errs[i] = streamworker.Permanent(fmt.Errorf("undecodable entry: %w", err))
			continue
		}
		b.Msgs = append(b.Msgs, m)
		b.idx = append(b.idx, i)
	}
	if len(b.Msgs) == 0 {
		b.done(b.errs)
		return
	}
	b.Errs = make([]error, len(b.Msgs))
	select {
	case c.in <- b:
	case <-ctx.Done(): // the pipeline stayed busy for the whole ProcessTimeout: try again later
		for i := range b.errs {
			if b.errs[i] == nil {
				b.errs[i] = fmt.Errorf("actors: pipeline busy: %w", ctx.Err())
			}
		}
		b.done(b.errs)
	}
}
