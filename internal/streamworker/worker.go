// Package streamworker is Voluntree's one consumer-group worker for Redis streams of jobs:
// emails (mail) and side effects (effects: Messenger messages, private replies, bookings). It
// reads new entries with its consumer group, retries its own pending entries with
// exponential backoff (after a restart too), claims entries left idle past ClaimIdle by a
// worker that died, hands each entry to a Handler, and acknowledges it once handled. Attempts
// are counted by the stream's delivery count, so restarts keep the count. A permanent failure
// (Permanent), an entry without values, or MaxAttempts failed attempts move the entry to the
// dead stream with its error.
//
// Delivery is at least once: a crash between a handler's success and the acknowledgement
// hands the entry to a handler again. Handlers make their side effect idempotent (an email's
// Message-ID, an effect's id sent as Messenger metadata and reconciled with echoes).
//
// A Worker is a plain loop (Run); actors.StreamReader runs it as a supervised actor, which is
// how serve runs every stream.
package streamworker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/internal/retry"
)

// Entry is one stream entry handed to a Handler.
type Entry struct {
	ID         string
	Values     map[string]any
	Deliveries int64 // 1 on the first delivery
}

// Field returns the string value of field k ("" when missing).
func (e Entry) Field(k string) string {
	s, _ := e.Values[k].(string)
	return s
}

// Handler does the job of one entry. A nil error acknowledges the entry; an error for which
// IsPermanent is true dead-letters it; any other error leaves it pending for a retry.
type Handler interface {
	Handle(ctx context.Context, e Entry) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, e Entry) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, e Entry) error { return f(ctx, e) }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that IsPermanent reports true: retrying cannot fix it. Permanent(nil)
// is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err (or an error it wraps) is permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Defaults of Config.
const (
	DefaultBlock         = time.Second
	DefaultClaimIdle     = time.Minute
	DefaultMaxAttempts   = 5
	DefaultBaseDelay     = time.Second
	DefaultMaxDelay      = time.Minute
	DefaultHandleTimeout = 30 * time.Second // or ClaimIdle/2 when that is shorter
	DefaultDeadMaxLen    = 10000
)

// bookkeepingTimeout bounds the Redis writes after a handler ran, which run even when Run's
// context has ended (a job done must be acknowledged).
const bookkeepingTimeout = 5 * time.Second

// Config configures a Worker.
type Config struct {
	Name          string // the stream's short name in metrics and logs: mail, effects
	Stream        string // the stream's key
	Group         string // the consumer group
	Consumer      string // name in the group, stable across restarts (the node's name)
	DeadStream    string // where given-up entries go, with their error
	DeadMaxLen    int64  // the dead stream is trimmed to about this many entries
	DeleteOnAck   bool   // delete an entry once acknowledged (keeps a job queue short)
	Block         time.Duration
	ClaimIdle     time.Duration // an entry pending this long under any consumer is taken over
	MaxAttempts   int           // deliveries before an entry goes to the dead stream
	BaseDelay     time.Duration // wait after the first failure, doubling after each
	MaxDelay      time.Duration // longest wait between attempts
	HandleTimeout time.Duration // one Handle; under ClaimIdle so that no peer claims it meanwhile
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = c.Stream
	}
	if c.Block == 0 {
		c.Block = DefaultBlock
	}
	if c.ClaimIdle == 0 {
		c.ClaimIdle = DefaultClaimIdle
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = DefaultBaseDelay
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = max(DefaultMaxDelay, c.BaseDelay)
	}
	if c.HandleTimeout == 0 {
		c.HandleTimeout = min(DefaultHandleTimeout, c.ClaimIdle/2)
	}
	if c.DeadMaxLen == 0 {
		c.DeadMaxLen = DefaultDeadMaxLen
	}
}

// Validate reports an unusable configuration.
func (c Config) Validate() error {
	switch {
	case c.Stream == "" || c.Group == "" || c.DeadStream == "":
		return errors.New("streamworker: stream, group and dead stream are required")
	case c.Consumer == "":
		return fmt.Errorf("streamworker %s: consumer name is required", c.Name)
	case c.Block < time.Millisecond:
		return fmt.Errorf("streamworker %s: read block must be at least 1ms, got %s", c.Name, c.Block)
	case c.ClaimIdle < 10*time.Millisecond:
		return fmt.Errorf("streamworker %s: claim idle time must be at least 10ms, got %s", c.Name, c.ClaimIdle)
	case c.MaxAttempts < 1:
		return fmt.Errorf("streamworker %s: max attempts must be positive, got %d", c.Name, c.MaxAttempts)
	case c.BaseDelay < time.Millisecond:
		return fmt.Errorf("streamworker %s: base retry delay must be at least 1ms, got %s", c.Name, c.BaseDelay)
	case c.MaxDelay < c.BaseDelay:
		return fmt.Errorf("streamworker %s: max retry delay %s is under the base delay %s", c.Name, c.MaxDelay, c.BaseDelay)
	case c.HandleTimeout < time.Millisecond || c.HandleTimeout >= c.ClaimIdle:
		return fmt.Errorf("streamworker %s: handle timeout %s must be at least 1ms and under the claim idle time %s", c.Name, c.HandleTimeout, c.ClaimIdle)
	}
	return nil
}

// Stats counts what a Worker did since it was made.
type Stats struct {
	Done    uint64 // entries handled and acknowledged
	Retried uint64 // failures left for a later attempt
	Dead    uint64 // entries moved to the dead stream
	Claimed uint64 // entries taken over from an idle consumer
}

// Metrics are the collectors a Worker records into, labelled by stream (metrics.Metrics has
// them: StreamEntries, StreamDuration).
type Metrics struct {
	Entries  *prometheus.CounterVec   // by stream, outcome: done, retry, dead, claimed
	Duration *prometheus.HistogramVec // one Handle, by stream
}

// Worker is one consumer of a job stream. Run it once.
type Worker struct {
	rdb     redis.UniversalClient
	cfg     Config
	cfgErr  error
	handler Handler
	metrics *Metrics
	log     *slog.Logger

	done, retried, dead, claimed atomic.Uint64

	nextRetry time.Time // when an own pending entry is next due; owned by Run
}

// New returns a worker; Run runs it. A configuration Validate rejects makes Run fail.
func New(rdb redis.UniversalClient, cfg Config, h Handler, m *Metrics, log *slog.Logger) *Worker {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{
		rdb: rdb, cfg: cfg, cfgErr: cfg.Validate(), handler: h, metrics: m,
		log: log.With("component", cfg.Name, "consumer", cfg.Consumer),
	}
}

// Validate reports the configuration error that makes Run fail, if any.
func (w *Worker) Validate() error { return w.cfgErr }

// Stats returns the worker's counters.
func (w *Worker) Stats() Stats {
	return Stats{Done: w.done.Load(), Retried: w.retried.Load(), Dead: w.dead.Load(), Claimed: w.claimed.Load()}
}

// Run handles entries until ctx ends, then returns nil once the entry in hand is dealt with
// (a Handle cut short stays pending and is retried later). It fails only for an invalid
// configuration.
func (w *Worker) Run(ctx context.Context) error {
	if w.cfgErr != nil {
		return w.cfgErr
	}
	bo := retry.New()
	for ctx.Err() == nil {
		if err := w.ensureGroup(ctx); err != nil {
			w.log.Error("consumer group", "action", "start", "error", err)
			bo.Wait(ctx)
			continue
		}
		break
	}
	claimEvery := min(w.cfg.ClaimIdle/2, 5*time.Second)
	var nextClaim time.Time
	w.nextRetry = time.Time{} // own pending entries from a previous run: look now
	for ctx.Err() == nil {
		if !time.Now().Before(nextClaim) {
			if err := w.claimAbandoned(ctx); err != nil && ctx.Err() == nil {
				w.log.Error("claim idle entries", "action", "claim", "error", err)
			}
			nextClaim = time.Now().Add(claimEvery)
		}
		if !time.Now().Before(w.nextRetry) {
			w.nextRetry = time.Now().Add(w.cfg.MaxDelay) // a rescan now and then, whatever happens
			if err := w.retryOwn(ctx); err != nil && ctx.Err() == nil {
				w.log.Error("retry pending entries", "action", "retry", "error", err)
				w.retryIn(w.cfg.BaseDelay)
			}
		}
		block := min(w.cfg.Block, time.Until(nextClaim), time.Until(w.nextRetry))
		x, ok, err := w.readNew(ctx, max(block, time.Millisecond)) // BLOCK 0 would wait forever
		if err != nil {
			if ctx.Err() == nil {
				w.log.Error("read stream", "action", "read", "error", err)
				if isNoGroup(err) { // the stream was deleted: make it again
					_ = w.ensureGroup(ctx)
				}
				bo.Wait(ctx)
			}
			continue
		}
		bo.Reset()
		if ok {
			w.process(ctx, x, 1)
		}
	}
	return nil
}

func (w *Worker) ensureGroup(ctx context.Context) error {
	err := w.rdb.XGroupCreateMkStream(ctx, w.cfg.Stream, w.cfg.Group, "0").Err()
	if err != nil && !IsBusyGroup(err) {
		return fmt.Errorf("streamworker %s: create consumer group: %w", w.cfg.Name, err)
	}
	return nil
}

// readNew reads one entry never delivered before, waiting up to block.
func (w *Worker) readNew(ctx context.Context, block time.Duration) (redis.XMessage, bool, error) {
	res, err := w.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: w.cfg.Group, Consumer: w.cfg.Consumer,
		Streams: []string{w.cfg.Stream, ">"}, Count: 1, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return redis.XMessage{}, false, nil
	}
	if err != nil {
		return redis.XMessage{}, false, fmt.Errorf("streamworker %s: read: %w", w.cfg.Name, err)
	}
	for _, st := range res {
		for _, x := range st.Messages {
			return x, true, nil
		}
	}
	return redis.XMessage{}, false, nil
}

// retryOwn handles this consumer's pending entries whose backoff has passed (entries that
// failed for a while, or that a previous run of this consumer read and never acknowledged),
// and moves nextRetry to when the next one is due.
func (w *Worker) retryOwn(ctx context.Context) error {
	const page = 100
	start := "-"
	for ctx.Err() == nil {
		pend, err := w.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: w.cfg.Stream, Group: w.cfg.Group, Consumer: w.cfg.Consumer,
			Start: start, End: "+", Count: page,
		}).Result()
		if err != nil {
			return fmt.Errorf("streamworker %s: pending entries: %w", w.cfg.Name, err)
		}
		for _, p := range pend {
			wait := w.delay(p.RetryCount)
			if p.Idle < wait {
				w.retryIn(wait - p.Idle)
				continue
			}
			// MinIdle makes the claim fail if a peer (or a concurrent scan) took it meanwhile.
			msgs, err := w.rdb.XClaim(ctx, &redis.XClaimArgs{
				Stream: w.cfg.Stream, Group: w.cfg.Group, Consumer: w.cfg.Consumer,
				MinIdle: wait, Messages: []string{p.ID},
			}).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return fmt.Errorf("streamworker %s: claim pending entry: %w", w.cfg.Name, err)
			}
			for _, x := range msgs { // none when acknowledged or deleted meanwhile
				w.process(ctx, x, p.RetryCount+1)
			}
		}
		if len(pend) < page {
			return nil
		}
		start = "(" + pend[len(pend)-1].ID
	}
	return nil
}

// claimAbandoned takes over entries pending for ClaimIdle under any consumer (a worker that
// died, or this one when its backoff outgrew ClaimIdle) and handles them, one at a time; at
// most 100 per call, so new entries keep flowing.
func (w *Worker) claimAbandoned(ctx context.Context) error {
	start := "0-0"
	for range 100 {
		if ctx.Err() != nil {
			return nil
		}
		msgs, next, err := w.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: w.cfg.Stream, Group: w.cfg.Group, Consumer: w.cfg.Consumer,
			MinIdle: w.cfg.ClaimIdle, Start: start, Count: 1,
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("streamworker %s: claim idle entries: %w", w.cfg.Name, err)
		}
		for _, x := range msgs {
			n, err := w.deliveries(ctx, x.ID)
			if err != nil {
				return err
			}
			w.claimed.Add(1)
			w.count("claimed")
			w.log.Info("claimed an idle entry", "action", "claim", "entry", x.ID, "deliveries", n)
			w.process(ctx, x, n)
		}
		if next == "" || next == "0-0" {
			return nil
		}
		start = next
	}
	return nil
}

// deliveries returns how often the entry id, pending under this consumer, was delivered.
func (w *Worker) deliveries(ctx context.Context, id string) (int64, error) {
	pend, err := w.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: w.cfg.Stream, Group: w.cfg.Group, Consumer: w.cfg.Consumer,
		Start: id, End: id, Count: 1,
	}).Result()
	if err != nil {
		return 0, fmt.Errorf("streamworker %s: pending deliveries: %w", w.cfg.Name, err)
	}
	if len(pend) == 0 {
		return 1, nil
	}
	return pend[0].RetryCount, nil
}

// process hands entry x, on its deliveries-th delivery, to the handler and records the
// outcome: acknowledged, left pending for a retry, or dead.
func (w *Worker) process(ctx context.Context, x redis.XMessage, deliveries int64) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if x.Values == nil { // deleted while pending: nothing left to do
		w.ack(bctx, x.ID)
		return
	}
	log := w.log.With("entry", x.ID, "deliveries", deliveries)
	if deliveries > int64(w.cfg.MaxAttempts) { // its workers kept stopping mid-job
		w.deadLetter(bctx, x, deliveries, fmt.Errorf("delivered %d times without a result (max attempts %d)", deliveries, w.cfg.MaxAttempts))
		return
	}
	hctx, hcancel := context.WithTimeout(ctx, w.cfg.HandleTimeout)
	start := time.Now()
	err := w.handle(hctx, Entry{ID: x.ID, Values: x.Values, Deliveries: deliveries})
	hcancel()
	if w.metrics != nil {
		w.metrics.Duration.WithLabelValues(w.cfg.Name).Observe(time.Since(start).Seconds())
	}
	switch {
	case err == nil:
		if w.ack(bctx, x.ID) {
			w.done.Add(1)
			w.count("done")
		}
	case ctx.Err() != nil:
		// Stopping: the entry stays pending and is retried after the restart.
		log.Info("job interrupted by shutdown", "action", "handle", "error", err)
	case IsPermanent(err):
		w.deadLetter(bctx, x, deliveries, err)
	case deliveries >= int64(w.cfg.MaxAttempts):
		w.deadLetter(bctx, x, deliveries, fmt.Errorf("gave up after %d attempts: %w", deliveries, err))
	default:
		wait := w.delay(deliveries)
		w.retried.Add(1)
		w.count("retry")
		w.retryIn(wait)
		log.Warn("job failed, will retry", "action", "handle", "retry_in", wait, "error", err)
	}
}

// handle calls the handler; a panic is a failure of this entry, not of the worker.
func (w *Worker) handle(ctx context.Context, e Entry) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return w.handler.Handle(ctx, e)
}

func (w *Worker) count(outcome string) {
	if w.metrics != nil {
		w.metrics.Entries.WithLabelValues(w.cfg.Name, outcome).Inc()
	}
}

// delay is the wait after the n-th failed delivery: BaseDelay doubling, up to MaxDelay.
func (w *Worker) delay(n int64) time.Duration {
	d := w.cfg.BaseDelay
	for i := int64(1); i < n && d < w.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, w.cfg.MaxDelay)
}

// retryIn brings the next own-pending scan forward to d from now.
func (w *Worker) retryIn(d time.Duration) {
	if at := time.Now().Add(d); at.Before(w.nextRetry) {
		w.nextRetry = at
	}
}

// ack acknowledges an entry (and deletes it, with DeleteOnAck).
func (w *Worker) ack(ctx context.Context, id string) bool {
	_, err := w.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, w.cfg.Stream, w.cfg.Group, id)
		if w.cfg.DeleteOnAck {
			p.XDel(ctx, w.cfg.Stream, id)
		}
		return nil
	})
	if err != nil {
		// It stays pending: the retry scan hands it over again (at least once).
		w.log.Error("acknowledge entry", "action", "ack", "entry", id, "error", err)
		return false
	}
	return true
}

// deadLetter moves entry x to the dead stream with its error and removes it from the stream,
// atomically (both keys must share a hash tag).
func (w *Worker) deadLetter(ctx context.Context, x redis.XMessage, deliveries int64, cause error) {
	vals := []any{"entry", x.ID, "error", cause.Error(), "deliveries", deliveries,
		"at", time.Now().UTC().Format(time.RFC3339Nano)}
	for k, v := range x.Values {
		switch k {
		case "entry", "error", "deliveries", "at":
		default:
			vals = append(vals, k, v)
		}
	}
	_, err := w.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: w.cfg.DeadStream, MaxLen: w.cfg.DeadMaxLen, Approx: true, Values: vals})
		p.XAck(ctx, w.cfg.Stream, w.cfg.Group, x.ID)
		p.XDel(ctx, w.cfg.Stream, x.ID)
		return nil
	})
	if err != nil {
		w.log.Error("dead-letter entry", "action", "dead_letter", "entry", x.ID, "error", err)
		return
	}
	w.dead.Add(1)
	w.count("dead")
	w.log.Warn("job given up", "action", "dead_letter", "entry", x.ID, "deliveries", deliveries, "error", cause)
}

// IsBusyGroup reports the error of creating a consumer group that exists.
func IsBusyGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") }

// isNoGroup reports a read of a group (or stream) that no longer exists, wrapped or not.
func isNoGroup(err error) bool { return err != nil && strings.Contains(err.Error(), "NOGROUP") }
