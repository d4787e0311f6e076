// Package streamworker is Voluntree's one consumer-group worker for Redis streams: the
// ingest stream (webhook messages, in pipelined batches), emails (mail) and side effects
// (effects: Messenger messages, private replies, bookings). It reads new entries with its
// consumer group, retries its own pending entries with exponential backoff (after a restart
// too), claims entries left idle past ClaimIdle by a worker that died, hands entries to a
// handler, and acknowledges each once handled. Attempts are counted by the stream's delivery
// count, so restarts keep the count. A permanent failure (Permanent) or MaxAttempts failed
// attempts move the entry to the dead stream with its error.
//
// A Handler takes one entry at a time. A BatchHandler takes a read's entries together and may
// keep several batches in flight (the ingest pipeline classifies batch n+1 while batch n is
// in the grains): it reports each batch's outcome through a callback, and the worker keeps
// the entries it holds from looking idle to its peers until then.
//
// Delivery is at least once: a crash between a handler's success and the acknowledgement
// hands the entry to a handler again. Handlers make their side effect idempotent (an email's
// Message-ID, an effect's id sent as Messenger metadata and reconciled with echoes, a
// message's id in the conversation's state).
//
// A Worker is a plain loop (Run); actors.StreamReader runs it as a supervised actor, which is
// how serve runs every stream.
package streamworker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
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

// BatchHandler does the jobs of a batch of entries (one read). HandleBatch may return before
// the work is done, so that the worker reads the next batch meanwhile; it blocks while it has
// no room for more, which is the worker's backpressure. It calls done exactly once, with one
// error per entry (nil acknowledges, as for Handler), from any goroutine. ctx ends after
// HandleTimeout, or when Run's context ends: a job cut short by a stop stays pending for the
// next run, without counting as a failure. A handler that would rather finish what it took
// (the ingest pipeline) detaches from ctx.
type BatchHandler interface {
	HandleBatch(ctx context.Context, entries []Entry, done func(errs []error))
}

// single runs a Handler as a BatchHandler: one entry after the other, done before returning.
type single struct{ h Handler }

func (s single) HandleBatch(ctx context.Context, entries []Entry, done func([]error)) {
	errs := make([]error, len(entries))
	for i, e := range entries {
		errs[i] = handleOne(ctx, s.h, e)
	}
	done(errs)
}

// handleOne calls h; a panic is a failure of this entry, not of the worker.
func handleOne(ctx context.Context, h Handler, e Entry) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return h.Handle(ctx, e)
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
	DefaultReadCount     = 1
	DefaultBlock         = time.Second
	DefaultClaimIdle     = time.Minute
	DefaultMaxAttempts   = 5
	DefaultBaseDelay     = time.Second
	DefaultMaxDelay      = time.Minute
	DefaultHandleTimeout = 30 * time.Second
	DefaultDeadMaxLen    = 10000
)

// bookkeepingTimeout bounds the Redis writes after a handler ran, which run even when Run's
// context has ended (a job done must be acknowledged).
const bookkeepingTimeout = 5 * time.Second

// Config configures a Worker.
type Config struct {
	Name          string // the stream's short name in metrics and logs: ingest, mail, effects
	Stream        string // the stream's key
	Group         string // the consumer group
	Consumer      string // name in the group, stable across restarts (the node's name)
	DeadStream    string // where given-up entries go, with their error
	DeadMaxLen    int64  // the dead stream is trimmed to about this many entries
	DeleteOnAck   bool   // delete an entry once acknowledged (keeps a job queue short)
	ReadCount     int    // entries per read, handed over as one batch
	MinBatch      int    // a read with fewer entries waits Linger for more (0: no linger)
	Linger        time.Duration
	Block         time.Duration // longest wait of one read (short: a blocking read ignores ctx)
	ClaimIdle     time.Duration // an entry pending this long under any consumer is taken over
	ClaimEvery    time.Duration // how often to look for such entries; default min(ClaimIdle/2, 5s)
	MaxAttempts   int           // deliveries before an entry goes to the dead stream
	BaseDelay     time.Duration // wait after the first failure, doubling after each
	MaxDelay      time.Duration // longest wait between attempts
	HandleTimeout time.Duration // one batch (one entry for a Handler); entries in hand stay fresh meanwhile
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = c.Stream
	}
	if c.ReadCount == 0 {
		c.ReadCount = DefaultReadCount
	}
	if c.Block == 0 {
		c.Block = DefaultBlock
	}
	if c.ClaimIdle == 0 {
		c.ClaimIdle = DefaultClaimIdle
	}
	if c.ClaimEvery == 0 {
		c.ClaimEvery = min(c.ClaimIdle/2, 5*time.Second)
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
		c.HandleTimeout = DefaultHandleTimeout
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
	case c.ReadCount < 1:
		return fmt.Errorf("streamworker %s: read count must be positive, got %d", c.Name, c.ReadCount)
	case c.MinBatch < 0:
		return fmt.Errorf("streamworker %s: min batch must not be negative, got %d", c.Name, c.MinBatch)
	case c.Block < time.Millisecond:
		return fmt.Errorf("streamworker %s: read block must be at least 1ms, got %s", c.Name, c.Block)
	case c.ClaimIdle < 10*time.Millisecond:
		return fmt.Errorf("streamworker %s: claim idle time must be at least 10ms, got %s", c.Name, c.ClaimIdle)
	case c.ClaimEvery < 0:
		return fmt.Errorf("streamworker %s: claim interval must not be negative, got %s", c.Name, c.ClaimEvery)
	case c.Linger < 0 || c.Linger > time.Second:
		return fmt.Errorf("streamworker %s: linger must be between 0 and 1s, got %s", c.Name, c.Linger)
	case c.Linger >= c.ClaimIdle/3:
		// Lingering entries are delivered but not yet in flight: they must not look idle.
		return fmt.Errorf("streamworker %s: linger (%s) must be under a third of the claim idle time (%s)", c.Name, c.Linger, c.ClaimIdle)
	case c.MaxAttempts < 1:
		return fmt.Errorf("streamworker %s: max attempts must be positive, got %d", c.Name, c.MaxAttempts)
	case c.BaseDelay < time.Millisecond:
		return fmt.Errorf("streamworker %s: base retry delay must be at least 1ms, got %s", c.Name, c.BaseDelay)
	case c.MaxDelay < c.BaseDelay:
		return fmt.Errorf("streamworker %s: max retry delay %s is under the base delay %s", c.Name, c.MaxDelay, c.BaseDelay)
	case c.HandleTimeout < time.Millisecond:
		return fmt.Errorf("streamworker %s: handle timeout must be at least 1ms, got %s", c.Name, c.HandleTimeout)
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
// them: StreamEntries, StreamDuration, StreamBatchSize). BatchSize may be nil.
type Metrics struct {
	Entries   *prometheus.CounterVec   // by stream, outcome: read, done, retry, dead, claimed
	Duration  *prometheus.HistogramVec // one batch (one job for a Handler), by stream
	BatchSize *prometheus.HistogramVec // entries per batch, by stream
}

// Worker is one consumer of a stream. Run runs it; after Run returns it may run again (a
// supervisor's restart), never twice at once.
type Worker struct {
	rdb     redis.UniversalClient
	cfg     Config
	cfgErr  error
	handler BatchHandler
	log     *slog.Logger

	// Resolved collectors; nil without metrics.
	mRead, mDone, mRetry, mDead, mClaimed prometheus.Counter
	mDuration, mBatchSize                 prometheus.Observer

	done, retried, dead, claimed atomic.Uint64

	batches sync.WaitGroup // batches handed to the handler and not yet done

	mu sync.Mutex
	// Entries handed to the handler and not yet done, with when they were last made to look
	// busy. They stay pending meanwhile; touch keeps their idle time short (XCLAIM JUSTID,
	// which is not a delivery) so that no consumer takes them over, and the retry scan skips
	// them.
	inflight  map[string]inflightEntry
	nextRetry time.Time // when an own pending entry is next due
}

// inflightEntry is an entry handed over: when, and when it was last made to look busy.
type inflightEntry struct{ start, touched time.Time }

// New returns a worker that hands entries to h one at a time; Run runs it. A configuration
// Validate rejects makes Run fail.
func New(rdb redis.UniversalClient, cfg Config, h Handler, m *Metrics, log *slog.Logger) *Worker {
	return NewBatch(rdb, cfg, single{h}, m, log)
}

// NewBatch returns a worker that hands each read's entries to h together.
func NewBatch(rdb redis.UniversalClient, cfg Config, h BatchHandler, m *Metrics, log *slog.Logger) *Worker {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Worker{
		rdb: rdb, cfg: cfg, cfgErr: cfg.Validate(), handler: h,
		log:      log.With("component", cfg.Name, "consumer", cfg.Consumer),
		inflight: make(map[string]inflightEntry),
	}
	if m != nil {
		w.mRead = m.Entries.WithLabelValues(cfg.Name, "read")
		w.mDone = m.Entries.WithLabelValues(cfg.Name, "done")
		w.mRetry = m.Entries.WithLabelValues(cfg.Name, "retry")
		w.mDead = m.Entries.WithLabelValues(cfg.Name, "dead")
		w.mClaimed = m.Entries.WithLabelValues(cfg.Name, "claimed")
		w.mDuration = m.Duration.WithLabelValues(cfg.Name)
		if m.BatchSize != nil {
			w.mBatchSize = m.BatchSize.WithLabelValues(cfg.Name)
		}
	}
	return w
}

// Validate reports the configuration error that makes Run fail, if any.
func (w *Worker) Validate() error { return w.cfgErr }

// Config returns the configuration with its defaults filled in.
func (w *Worker) Config() Config { return w.cfg }

// Stats returns the worker's counters.
func (w *Worker) Stats() Stats {
	return Stats{Done: w.done.Load(), Retried: w.retried.Load(), Dead: w.dead.Load(), Claimed: w.claimed.Load()}
}

// Run handles entries until ctx ends, then returns nil once every batch it handed over is done
// and acknowledged. It fails only for an invalid configuration.
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
	// Entries in flight are kept fresh on a ticker of their own, until the last batch is
	// done: Run itself may be blocked handing a batch to a busy handler.
	touchCtx, stopTouch := context.WithCancel(context.WithoutCancel(ctx))
	touchDone := make(chan struct{})
	go func() {
		defer close(touchDone)
		// An entry is touched within 2 × ClaimIdle/6 of entering the handler, and it was
		// read at most Linger (< ClaimIdle/3) before: it never idles past ClaimIdle.
		t := time.NewTicker(max(min(w.cfg.ClaimEvery, w.cfg.ClaimIdle/6), time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-touchCtx.Done():
				return
			case <-t.C:
				w.touch(touchCtx)
			}
		}
	}()
	defer func() {
		w.batches.Wait()
		stopTouch()
		<-touchDone
	}()

	w.mu.Lock()
	w.nextRetry = time.Time{} // own pending entries from a previous run: look now
	w.mu.Unlock()
	var nextClaim time.Time
	for ctx.Err() == nil {
		if !time.Now().Before(nextClaim) {
			more, err := w.claimAbandoned(ctx)
			if err != nil && ctx.Err() == nil {
				w.log.Error("claim idle entries", "action", "claim", "error", err)
			}
			nextClaim = time.Now().Add(w.cfg.ClaimEvery)
			if more {
				nextClaim = time.Now()
			}
		}
		if !time.Now().Before(w.retryAt()) {
			w.setRetryAt(time.Now().Add(w.cfg.MaxDelay)) // a rescan now and then, whatever happens
			if err := w.retryOwn(ctx); err != nil && ctx.Err() == nil {
				w.log.Error("retry pending entries", "action", "retry", "error", err)
				w.retryIn(w.cfg.BaseDelay)
			}
		}
		block := min(w.cfg.Block, time.Until(nextClaim), time.Until(w.retryAt()))
		xs, err := w.readNew(ctx, w.cfg.ReadCount, max(block, time.Millisecond)) // BLOCK 0 would wait forever
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
		w.submit(ctx, w.linger(ctx, xs), nil)
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

// readNew reads up to count entries never delivered before, waiting up to block for the
// first (a negative block does not wait).
func (w *Worker) readNew(ctx context.Context, count int, block time.Duration) ([]redis.XMessage, error) {
	res, err := w.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: w.cfg.Group, Consumer: w.cfg.Consumer,
		Streams: []string{w.cfg.Stream, ">"}, Count: int64(count), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("streamworker %s: read: %w", w.cfg.Name, err)
	}
	if len(res) == 0 {
		return nil, nil
	}
	return res[0].Messages, nil
}

// linger tops up a small read: when fewer than MinBatch entries came, it waits until Linger
// after the read and takes what arrived meanwhile (one more read, no blocking). Fewer, larger
// batches cost fewer round trips and wake-ups per entry.
func (w *Worker) linger(ctx context.Context, xs []redis.XMessage) []redis.XMessage {
	if w.cfg.Linger <= 0 || len(xs) == 0 || len(xs) >= w.cfg.MinBatch || len(xs) >= w.cfg.ReadCount {
		return xs
	}
	t := time.NewTimer(w.cfg.Linger)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return xs
	case <-t.C:
	}
	more, err := w.readNew(ctx, w.cfg.ReadCount-len(xs), -1)
	if err != nil {
		w.log.Warn("read stream", "action", "read", "error", err) // the next read retries
		return xs
	}
	return append(xs, more...)
}

// retryOwn hands over again this consumer's pending entries whose backoff has passed (entries
// that failed, or that a previous run of this consumer read and never acknowledged), in
// batches, and moves the next scan to when the next one is due. Entries in flight are skipped.
func (w *Worker) retryOwn(ctx context.Context) error {
	page := int64(max(100, w.cfg.ReadCount))
	start := "-"
	for ctx.Err() == nil {
		pend, err := w.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: w.cfg.Stream, Group: w.cfg.Group, Consumer: w.cfg.Consumer,
			Start: start, End: "+", Count: page,
		}).Result()
		if err != nil {
			return fmt.Errorf("streamworker %s: pending entries: %w", w.cfg.Name, err)
		}
		var due []redis.XPendingExt
		w.mu.Lock()
		for _, p := range pend {
			if _, busy := w.inflight[p.ID]; busy {
				continue
			}
			if wait := w.delay(p.RetryCount); p.Idle < wait {
				w.retryInLocked(wait - p.Idle)
				continue
			}
			due = append(due, p)
		}
		w.mu.Unlock()
		for len(due) > 0 {
			n := min(len(due), w.cfg.ReadCount)
			xs, deliveries, err := w.claimDue(ctx, due[:n])
			if err != nil {
				return err
			}
			w.submit(ctx, xs, deliveries)
			due = due[n:]
		}
		if int64(len(pend)) < page {
			return nil
		}
		start = "(" + pend[len(pend)-1].ID
	}
	return nil
}

// claimDue claims pending entries whose backoff has passed, in one round trip. Each claim's
// MinIdle is the entry's own wait, so an entry a peer (or a concurrent scan) took meanwhile
// stays where it is.
func (w *Worker) claimDue(ctx context.Context, due []redis.XPendingExt) ([]redis.XMessage, []int64, error) {
	cmds := make([]*redis.XMessageSliceCmd, len(due))
	_, err := w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, d := range due {
			cmds[i] = p.XClaim(ctx, &redis.XClaimArgs{
				Stream: w.cfg.Stream, Group: w.cfg.Group, Consumer: w.cfg.Consumer,
				MinIdle: w.delay(d.RetryCount), Messages: []string{d.ID},
			})
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("streamworker %s: claim pending entries: %w", w.cfg.Name, err)
	}
	var xs []redis.XMessage
	var deliveries []int64
	for i, c := range cmds {
		for _, x := range c.Val() { // none when acknowledged, deleted or taken meanwhile
			xs = append(xs, x)
			deliveries = append(deliveries, due[i].RetryCount+1)
		}
	}
	return xs, deliveries, nil
}

// claimAbandoned takes over entries pending for ClaimIdle under any consumer (a worker that
// died, or this one when its backoff outgrew ClaimIdle) and hands them over in batches. It
// reports whether more may be waiting: it stops after a few batches so that new entries keep
// flowing.
func (w *Worker) claimAbandoned(ctx context.Context) (bool, error) {
	start := "0-0"
	for range 4 {
		if ctx.Err() != nil {
			return false, nil
		}
		xs, next, err := w.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: w.cfg.Stream, Group: w.cfg.Group, Consumer: w.cfg.Consumer,
			MinIdle: w.cfg.ClaimIdle, Start: start, Count: int64(w.cfg.ReadCount),
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return false, fmt.Errorf("streamworker %s: claim idle entries: %w", w.cfg.Name, err)
		}
		w.mu.Lock()
		own := xs[:0]
		for _, x := range xs {
			if _, busy := w.inflight[x.ID]; !busy { // a touch failed: it is ours and in hand
				own = append(own, x)
			}
		}
		w.mu.Unlock()
		if len(own) > 0 {
			deliveries, err := w.deliveries(ctx, own)
			if err != nil {
				return false, err
			}
			w.claimed.Add(uint64(len(own)))
			addTo(w.mClaimed, len(own))
			w.log.Info("claimed idle entries", "action", "claim", "entries", len(own), "first", own[0].ID)
			w.submit(ctx, own, deliveries)
		}
		if next == "" || next == "0-0" {
			return false, nil
		}
		start = next
	}
	return true, nil
}

// deliveries returns how often each entry of xs, pending under this consumer, was delivered.
func (w *Worker) deliveries(ctx context.Context, xs []redis.XMessage) ([]int64, error) {
	lo, hi := xs[0].ID, xs[0].ID
	for _, x := range xs[1:] {
		if CompareIDs(x.ID, lo) < 0 {
			lo = x.ID
		}
		if CompareIDs(x.ID, hi) > 0 {
			hi = x.ID
		}
	}
	pend, err := w.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: w.cfg.Stream, Group: w.cfg.Group, Consumer: w.cfg.Consumer,
		Start: lo, End: hi, Count: int64(len(xs)) + 1024, Idle: -1,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("streamworker %s: pending deliveries: %w", w.cfg.Name, err)
	}
	counts := make(map[string]int64, len(pend))
	for _, p := range pend {
		counts[p.ID] = p.RetryCount
	}
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = max(counts[x.ID], 1)
	}
	return out, nil
}

// submit hands entries xs over as one batch: deliveries[i] is xs[i]'s delivery count (nil:
// all first deliveries). Entries trimmed away while pending are acknowledged, and entries past
// MaxAttempts go to the dead stream, first. It returns when the handler has taken the batch.
func (w *Worker) submit(ctx context.Context, xs []redis.XMessage, deliveries []int64) {
	if len(xs) == 0 {
		return
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	var gone []string
	entries := make([]Entry, 0, len(xs))
	for i, x := range xs {
		n := int64(1)
		if deliveries != nil {
			n = deliveries[i]
		}
		switch {
		case x.Values == nil: // trimmed or deleted while pending: nothing left to do
			gone = append(gone, x.ID)
		case n > int64(w.cfg.MaxAttempts): // its workers kept stopping mid-job
			w.deadLetter(bctx, x.ID, x.Values, n, fmt.Errorf("delivered %d times without a result (max attempts %d)", n, w.cfg.MaxAttempts))
		default:
			entries = append(entries, Entry{ID: x.ID, Values: x.Values, Deliveries: n})
		}
	}
	w.ack(bctx, gone)
	if len(entries) == 0 {
		return
	}
	addTo(w.mRead, len(entries))
	if w.mBatchSize != nil {
		w.mBatchSize.Observe(float64(len(entries)))
	}
	start := time.Now()
	w.mu.Lock()
	for _, e := range entries {
		w.inflight[e.ID] = inflightEntry{start: start, touched: start}
	}
	w.mu.Unlock()
	w.batches.Add(1)
	hctx, hcancel := context.WithTimeout(ctx, w.cfg.HandleTimeout)
	var once sync.Once
	done := func(errs []error) {
		once.Do(func() {
			hcancel()
			w.finish(entries, errs, start, ctx.Err() != nil)
			w.batches.Done()
		})
	}
	defer func() {
		if r := recover(); r != nil {
			done(fill(len(entries), fmt.Errorf("handler panic: %v", r)))
		}
	}()
	w.handler.HandleBatch(hctx, entries, done)
}

func fill(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// finish records a batch's outcome: successes acknowledged in one call, failures left pending
// for a retry after their backoff, or dead-lettered. Failures once Run is stopping are jobs
// cut short: they stay pending for the next run, counting nothing.
func (w *Worker) finish(entries []Entry, errs []error, start time.Time, stopping bool) {
	if w.mDuration != nil {
		w.mDuration.Observe(time.Since(start).Seconds())
	}
	if len(errs) != len(entries) { // a broken handler must not get entries acknowledged
		errs = fill(len(entries), fmt.Errorf("handler returned %d results for %d entries", len(errs), len(entries)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), bookkeepingTimeout)
	defer cancel()
	acks := make([]string, 0, len(entries))
	var failed []string
	for i, e := range entries {
		err := errs[i]
		switch {
		case err == nil:
			acks = append(acks, e.ID)
		case stopping && !IsPermanent(err):
			w.log.Info("job interrupted by shutdown", "action", "handle", "entry", e.ID, "error", err)
		case IsPermanent(err):
			w.deadLetter(ctx, e.ID, e.Values, e.Deliveries, err)
		case e.Deliveries >= int64(w.cfg.MaxAttempts):
			w.deadLetter(ctx, e.ID, e.Values, e.Deliveries, fmt.Errorf("gave up after %d attempts: %w", e.Deliveries, err))
		default:
			wait := w.delay(e.Deliveries)
			failed = append(failed, e.ID)
			w.retried.Add(1)
			addTo(w.mRetry, 1)
			w.retryIn(wait)
			w.log.Warn("job failed, will retry", "action", "handle", "entry", e.ID,
				"deliveries", e.Deliveries, "retry_in", wait, "error", err)
		}
	}
	if w.ack(ctx, acks) {
		w.done.Add(uint64(len(acks)))
		addTo(w.mDone, len(acks))
	}
	// The backoff counts from the failure: the entries' idle time starts again now (it was
	// kept short while they were in flight).
	w.touchIDs(ctx, failed)
	// Forgotten only now: a failed entry is due for the retry scan from here on.
	w.mu.Lock()
	for _, e := range entries {
		delete(w.inflight, e.ID)
	}
	w.mu.Unlock()
}

// touch resets the idle time of entries in flight for a sixth of ClaimIdle, so that a slow
// batch is not mistaken for a dead consumer's. An entry in flight past HandleTimeout and
// ClaimIdle more is no longer kept: its handler is stuck, and a peer may take it over.
func (w *Worker) touch(ctx context.Context) {
	var ids []string
	now := time.Now()
	cutoff := now.Add(-w.cfg.ClaimIdle / 6)
	stuck := now.Add(-w.cfg.HandleTimeout - w.cfg.ClaimIdle)
	w.mu.Lock()
	for id, in := range w.inflight {
		if in.touched.Before(cutoff) && in.start.After(stuck) {
			ids = append(ids, id)
			in.touched = now
			w.inflight[id] = in
		}
	}
	w.mu.Unlock()
	w.touchIDs(ctx, ids)
}

// touchIDs resets the idle time of pending entries without counting a delivery.
func (w *Worker) touchIDs(ctx context.Context, ids []string) {
	if len(ids) == 0 {
		return
	}
	err := w.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
		Stream: w.cfg.Stream, Group: w.cfg.Group, Consumer: w.cfg.Consumer, MinIdle: 0, Messages: ids,
	}).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		w.log.Warn("touch entries in flight", "action", "claim", "entries", len(ids), "error", err)
	}
}

func addTo(c prometheus.Counter, n int) {
	if c != nil && n > 0 {
		c.Add(float64(n))
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

func (w *Worker) retryAt() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nextRetry
}

func (w *Worker) setRetryAt(t time.Time) {
	w.mu.Lock()
	w.nextRetry = t
	w.mu.Unlock()
}

// retryIn brings the next own-pending scan forward to d from now.
func (w *Worker) retryIn(d time.Duration) {
	w.mu.Lock()
	w.retryInLocked(d)
	w.mu.Unlock()
}

func (w *Worker) retryInLocked(d time.Duration) {
	if at := time.Now().Add(d); at.Before(w.nextRetry) {
		w.nextRetry = at
	}
}

// ack acknowledges entries (and deletes them, with DeleteOnAck) in one transaction. It
// reports whether that worked; entries it could not acknowledge stay pending and are handed
// over again (at least once).
func (w *Worker) ack(ctx context.Context, ids []string) bool {
	if len(ids) == 0 {
		return true
	}
	_, err := w.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, w.cfg.Stream, w.cfg.Group, ids...)
		if w.cfg.DeleteOnAck {
			p.XDel(ctx, w.cfg.Stream, ids...)
		}
		return nil
	})
	if err != nil {
		w.log.Error("acknowledge entries", "action", "ack", "entries", len(ids), "first", ids[0], "error", err)
		return false
	}
	return true
}

// deadLetter moves entry id to the dead stream with its values and error and removes it from
// the stream, atomically (both keys must share a hash tag).
func (w *Worker) deadLetter(ctx context.Context, id string, values map[string]any, deliveries int64, cause error) {
	vals := []any{"entry", id, "error", cause.Error(), "deliveries", deliveries,
		"at", time.Now().UTC().Format(time.RFC3339Nano)}
	for k, v := range values {
		switch k {
		case "entry", "error", "deliveries", "at":
		default:
			vals = append(vals, k, v)
		}
	}
	_, err := w.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: w.cfg.DeadStream, MaxLen: w.cfg.DeadMaxLen, Approx: true, Values: vals})
		p.XAck(ctx, w.cfg.Stream, w.cfg.Group, id)
		p.XDel(ctx, w.cfg.Stream, id)
		return nil
	})
	if err != nil {
		w.log.Error("dead-letter entry", "action", "dead_letter", "entry", id, "error", err)
		return
	}
	w.dead.Add(1)
	addTo(w.mDead, 1)
	w.log.Warn("job given up", "action", "dead_letter", "entry", id, "deliveries", deliveries, "error", cause)
}

// IsBusyGroup reports the error of creating a consumer group that exists.
func IsBusyGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") }

// isNoGroup reports a read of a group (or stream) that no longer exists, wrapped or not.
func isNoGroup(err error) bool { return err != nil && strings.Contains(err.Error(), "NOGROUP") }

// CompareIDs orders two stream ids ("ms-seq"): -1, 0 or 1.
func CompareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	switch {
	case am != bm:
		if am < bm {
			return -1
		}
		return 1
	case as != bs:
		if as < bs {
			return -1
		}
		return 1
	}
	return 0
}

func splitID(id string) (ms, seq uint64) {
	a, b, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(a, 10, 64)
	seq, _ = strconv.ParseUint(b, 10, 64)
	return ms, seq
}
