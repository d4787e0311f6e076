package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	// wait, when set, ends every pipeline with WAIT: its callers succeed only once that many
	// replicas have the pipeline's writes (set before the first do).
	wait *replicaWait
}

// ErrNotReplicated: the writes are on the master, but fewer replicas than asked for
// acknowledged them in time. They may still be lost in a failover; the caller does not
// acknowledge them (a retry is deduplicated and waits again).
var ErrNotReplicated = errors.New("redisstore: fewer replicas than required acknowledged the write")

// replicaWait makes writes wait until enough replicas have them (Config.WaitReplicas). WAIT
// covers the connection's own writes: a write to a fence key first makes it cover a pipeline
// that wrote nothing (duplicates) too, and what the master had before, since a replica's
// offset only goes forward.
//
// On one server (or Sentinel's master) the fence and the WAIT end the pipeline, on its
// connection. A Redis Cluster spreads a pipeline over its masters, and WAIT has no key to be
// routed by: after the pipeline, each master holding an ingest shard the pipeline wrote to gets
// its own fence (in that shard's slot) and WAIT on one of its connections, all at once. Its
// fence is written after the pipeline's writes there, so the WAIT covers them; a master whose
// replica is down fails only the webhooks of its own shards.
type replicaWait struct {
	rdb      redis.UniversalClient
	replicas int
	timeout  time.Duration
	fences   []string // one per ingest shard (Keys.IngestShardFence)
}

// queue adds the fence and WAIT to a pipeline (one server), or returns nil.
func (w *replicaWait) queue(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	if w == nil || w.replicas <= 0 {
		return nil
	}
	if _, ok := w.rdb.(*redis.ClusterClient); ok {
		return nil
	}
	pipe.Incr(ctx, w.fences[0])
	return pipe.Do(ctx, "WAIT", w.replicas, w.timeout.Milliseconds())
}

// done reads the WAIT queue added (one server), or waits on the masters of fences, the fences
// of the shards written (Redis Cluster; nil: every shard's).
func (w *replicaWait) done(ctx context.Context, queued *redis.Cmd, fences []string) error {
	if w == nil || w.replicas <= 0 {
		return nil
	}
	cc, ok := w.rdb.(*redis.ClusterClient)
	if !ok {
		return waitErr(queued, w.replicas)
	}
	if fences == nil {
		fences = w.fences
	}
	masters := map[string]string{} // master address → a fence it holds
	clients := map[string]*redis.Client{}
	for _, f := range fences {
		c, err := cc.MasterForKey(ctx, f)
		if err != nil {
			return fmt.Errorf("%w: the master of %s: %w", ErrNotReplicated, f, err)
		}
		addr := c.Options().Addr
		if _, ok := masters[addr]; !ok {
			masters[addr], clients[addr] = f, c
		}
	}
	errs := make(chan error, len(masters))
	for addr, f := range masters {
		go func() {
			var cmd *redis.Cmd
			_, err := clients[addr].Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Incr(ctx, f)
				cmd = p.Do(ctx, "WAIT", w.replicas, w.timeout.Milliseconds())
				return nil
			})
			if err != nil && cmd.Err() == nil {
				err = fmt.Errorf("%w: fence on %s: %w", ErrNotReplicated, addr, err)
			} else {
				err = waitErr(cmd, w.replicas)
			}
			errs <- err
		}()
	}
	var first error
	for range masters {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
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
	queue  func(redis.Pipeliner)
	fences []string // the ingest shards' fences of the keys queue writes (replicaWait)
	done   chan error
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
	return c.doFenced(ctx, nil, queue)
}

// doFenced is do for writes to the ingest shards whose fences are given: on Redis Cluster,
// only their masters are waited on for replicas.
func (c *coalescer) doFenced(ctx context.Context, fences []string, queue func(redis.Pipeliner)) error {
	op := &pipeOp{queue: queue, fences: fences, done: make(chan error, 1)}
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
		w := c.wait.queue(ctx, pipe)
		var fences []string
		if c.wait != nil && c.wait.replicas > 0 {
			fences = batchFences(batch)
		}
		// Each command carries its own error (redis.Nil, a script error, or the connection's
		// failure): callers read them. Exec's own return is the first of those.
		_, _ = pipe.Exec(ctx)
		err := c.wait.done(ctx, w, fences)
		cancel()
		for _, op := range batch {
			op.done <- err
		}
	}
}

// batchFences is the union of a batch's fences (nil when an op did not name its own: all).
func batchFences(batch []*pipeOp) []string {
	var out []string
	for _, op := range batch {
		if op.fences == nil {
			return nil
		}
		for _, f := range op.fences {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
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
