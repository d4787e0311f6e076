package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// coalescer merges concurrent callers' commands into shared pipelines: group commit at the
// client. Hundreds of grains each saving their state, or webhook calls each appending a
// message, become a few round trips instead of hundreds, which is most of the cost of a small
// command (two syscalls and a wake-up on each side). A worker takes the first waiting batch of
// commands, adds whatever else is already waiting, and runs them as one pipeline: nobody waits
// for a timer, so a lone caller pays nothing extra.
type coalescer struct {
	rdb     redis.UniversalClient
	ops     chan *pipeOp
	quit    chan struct{}
	wg      sync.WaitGroup
	maxCmds int
	// waitReplicas > 0 ends every pipeline with WAIT: its callers succeed only once that many
	// replicas have the pipeline's writes (set before the first do).
	waitReplicas int
	waitTimeout  time.Duration
	fence        string // the key written before the WAIT (Keys.IngestFence)
}

// ErrNotReplicated: the writes are on the master, but fewer replicas than asked for
// acknowledged them in time. They may still be lost in a failover; the caller does not
// acknowledge them (a retry is deduplicated and waits again).
var ErrNotReplicated = errors.New("redisstore: fewer replicas than required acknowledged the write")

// queueWait adds the WAIT that follows a pipeline's writes, or returns nil when none is asked
// for. WAIT covers the connection's own writes: a write to fence first makes it cover a
// pipeline that wrote nothing (duplicates) too, and what the master had before, since a
// replica's offset only goes forward.
func queueWait(ctx context.Context, pipe redis.Pipeliner, fence string, replicas int, timeout time.Duration) *redis.Cmd {
	if replicas <= 0 {
		return nil
	}
	pipe.Incr(ctx, fence)
	return pipe.Do(ctx, "WAIT", replicas, timeout.Milliseconds())
}

// waitErr reads a WAIT's answer (nil when there was none).
func waitErr(w *redis.Cmd, replicas int) error {
	if w == nil {
		return nil
	}
	n, err := w.Int()
	if err != nil {
		return fmt.Errorf("%w: WAIT: %w", ErrNotReplicated, err)
	}
	if n < replicas {
		return fmt.Errorf("%w: %d of %d", ErrNotReplicated, n, replicas)
	}
	return nil
}

type pipeOp struct {
	queue func(redis.Pipeliner)
	done  chan error
}

// errClosed is returned by calls after Close.
var errClosed = errors.New("redisstore: store is closed")

func newCoalescer(rdb redis.UniversalClient, workers, maxCmds int) *coalescer {
	c := &coalescer{rdb: rdb, ops: make(chan *pipeOp), quit: make(chan struct{}), maxCmds: maxCmds}
	for range workers {
		c.wg.Add(1)
		go c.work()
	}
	return c
}

// do queues commands through queue and waits until the pipeline carrying them has run. The
// caller reads each command's own result and error; do returns only ctx's or Close's error.
func (c *coalescer) do(ctx context.Context, queue func(redis.Pipeliner)) error {
	op := &pipeOp{queue: queue, done: make(chan error, 1)}
	select {
	case c.ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.quit:
		return errClosed
	}
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		// The pipeline still runs (and its commands take effect); the caller stops waiting.
		return ctx.Err()
	}
}

func (c *coalescer) work() {
	defer c.wg.Done()
	batch := make([]*pipeOp, 0, c.maxCmds)
	for {
		select {
		case op := <-c.ops:
			batch = append(batch[:0], op)
		case <-c.quit:
			return
		}
	more:
		for len(batch) < c.maxCmds {
			select {
			case op := <-c.ops:
				batch = append(batch, op)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		pipe := c.rdb.Pipeline()
		for _, op := range batch {
			op.queue(pipe)
		}
		w := queueWait(ctx, pipe, c.fence, c.waitReplicas, c.waitTimeout)
		// Each command carries its own error (redis.Nil, a script error, or the connection's
		// failure): callers read them. Exec's own return is the first of those.
		_, _ = pipe.Exec(ctx)
		cancel()
		err := waitErr(w, c.waitReplicas)
		for _, op := range batch {
			op.done <- err
		}
	}
}

func (c *coalescer) close() {
	close(c.quit)
	c.wg.Wait()
}

// cmdErr returns a command's error, nil for redis.Nil (a missing key is not a failure).
func cmdErr(what string, cmd redis.Cmder) error {
	if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redisstore: %s: %w", what, err)
	}
	return nil
}
