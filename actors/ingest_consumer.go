package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/internal/retry"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/redisstore"
)

// Processor applies ingest messages' effects durably (cluster.Router does: classify, then
// grains). It returns one error per message; nil means the effects are stored and the entry
// may be acknowledged. It must be idempotent: an entry can be delivered more than once.
type Processor interface {
	Process(ctx context.Context, msgs []voluntree.Message) []error
}

// Ingest consumer defaults.
const (
	DefaultReadCount      = 256
	DefaultReadBlock      = 100 * time.Millisecond
	DefaultClaimIdle      = 30 * time.Second
	DefaultMaxDeliveries  = 5
	DefaultProcessTimeout = 30 * time.Second
	DefaultMinBatch       = 32
)

// IngestConfig configures an IngestConsumer.
type IngestConfig struct {
	Consumer       string        // consumer name in the group; one per node, stable across restarts
	ReadCount      int           // entries per read
	Block          time.Duration // longest wait of one read (short: blocking reads ignore ctx)
	ClaimIdle      time.Duration // entries pending this long under any consumer are reclaimed
	ClaimEvery     time.Duration // how often to look for them; default min(ClaimIdle/2, 5s)
	MaxDeliveries  int           // an entry failing this many deliveries is dead-lettered
	ProcessTimeout time.Duration // one batch's processing
	MinBatch       int           // a read with fewer entries waits Linger for more (0: no linger)
	Linger         time.Duration
}

func (c *IngestConfig) setDefaults() {
	if c.ReadCount == 0 {
		c.ReadCount = DefaultReadCount
	}
	if c.Block == 0 {
		c.Block = DefaultReadBlock
	}
	if c.ClaimIdle == 0 {
		c.ClaimIdle = DefaultClaimIdle
	}
	if c.ClaimEvery == 0 {
		c.ClaimEvery = min(c.ClaimIdle/2, 5*time.Second)
	}
	if c.MaxDeliveries == 0 {
		c.MaxDeliveries = DefaultMaxDeliveries
	}
	if c.ProcessTimeout == 0 {
		c.ProcessTimeout = DefaultProcessTimeout
	}
	if c.MinBatch == 0 {
		c.MinBatch = DefaultMinBatch
	}
}

// Validate reports an unusable configuration.
func (c IngestConfig) Validate() error {
	switch {
	case c.Consumer == "":
		return errors.New("actors: ingest consumer name is required")
	case c.ReadCount < 1:
		return fmt.Errorf("actors: ingest read count must be positive, got %d", c.ReadCount)
	case c.Block < time.Millisecond:
		return fmt.Errorf("actors: ingest read block must be at least 1ms, got %s", c.Block)
	case c.ClaimIdle < 10*time.Millisecond:
		return fmt.Errorf("actors: claim idle time must be at least 10ms, got %s", c.ClaimIdle)
	case c.MaxDeliveries < 1:
		return fmt.Errorf("actors: max deliveries must be positive, got %d", c.MaxDeliveries)
	case c.ProcessTimeout < time.Millisecond:
		return fmt.Errorf("actors: ingest process timeout must be at least 1ms, got %s", c.ProcessTimeout)
	case c.ClaimEvery < 0:
		return fmt.Errorf("actors: claim interval must not be negative, got %s", c.ClaimEvery)
	case c.Linger < 0 || c.Linger > time.Second:
		return fmt.Errorf("actors: linger must be between 0 and 1s, got %s", c.Linger)
	case c.Linger >= c.ClaimIdle/3:
		// Lingering entries are delivered but not yet in flight: they must not look idle.
		return fmt.Errorf("actors: linger (%s) must be under a third of the claim idle time (%s)", c.Linger, c.ClaimIdle)
	}
	return nil
}

// IngestConsumer is the node's reader of the ingest stream: a loop whose blocking reads never
// run in an actor's Receive; serve runs it as a supervised StreamReader actor (Run). It reads new
// entries with its consumer group, re-reads its own pending entries after a restart,
// reclaims entries left idle by dead consumers, hands each batch to the Processor (which
// feeds the batching actor and the grains), and acknowledges entries only once their effects
// are durable. An entry that fails MaxDeliveries deliveries, or can never be decoded, goes to
// the dead-letter stream with its error.
type IngestConsumer struct {
	store   *redisstore.Store
	proc    Processor
	cfg     IngestConfig
	metrics *metrics.Metrics
	log     *slog.Logger

	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	started bool

	// Entries in the pipeline, by id, with when they were delivered. They stay pending
	// while in flight: the loop keeps their idle time short (XCLAIM JUSTID, which does not
	// count as a delivery) so that no consumer — this one included — reclaims them.
	mu       sync.Mutex
	inflight map[string]time.Time
}

// NewIngestConsumer returns a consumer; Start runs it.
func NewIngestConsumer(store *redisstore.Store, proc Processor, cfg IngestConfig, m *metrics.Metrics, logger *slog.Logger) (*IngestConsumer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &IngestConsumer{
		store: store, proc: proc, cfg: cfg, metrics: m,
		log:      logger.With("component", "ingest", "consumer", cfg.Consumer),
		done:     make(chan struct{}),
		inflight: make(map[string]time.Time),
	}, nil
}

// Start runs the loop until Stop. It may be called once.
func (c *IngestConsumer) Start() {
	if c.started {
		panic("actors: IngestConsumer.Start called twice")
	}
	c.started = true
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		defer close(c.done)
		c.run(ctx)
	}()
}

// Run runs the loop until ctx ends, then returns once the batches in hand are processed and
// acknowledged: the Runner a StreamReader actor supervises (serve runs the consumer that way).
// Use either Run or Start/Stop.
func (c *IngestConsumer) Run(ctx context.Context) error {
	c.run(ctx)
	return nil
}

// Stop ends the loop after the batch in hand is processed and acknowledged, or when ctx ends.
func (c *IngestConsumer) Stop(ctx context.Context) error {
	c.once.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
	})
	if c.cancel == nil {
		return nil
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("actors: stop ingest consumer: %w", ctx.Err())
	}
}

func (c *IngestConsumer) run(ctx context.Context) {
	in, drained := c.startPipeline()
	defer func() { close(in); <-drained }()
	// In-flight entries are kept fresh on a ticker of their own: the loop itself may be
	// blocked handing a batch to a busy pipeline, and a peer must not reclaim them then.
	touchDone := make(chan struct{})
	go func() {
		defer close(touchDone)
		// An entry is touched within ClaimIdle/6 + ClaimIdle/6 of entering the pipeline, and
		// it was read at most Linger (< ClaimIdle/3) before: it never idles past ClaimIdle.
		t := time.NewTicker(min(c.cfg.ClaimEvery, c.cfg.ClaimIdle/6))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.touchInflight(context.WithoutCancel(ctx))
			}
		}
	}()
	defer func() { <-touchDone }()
	handle := func(entries []redisstore.Entry) { c.submit(ctx, in, entries) }
	backoff := retry.New()
	for ctx.Err() == nil {
		if err := c.store.EnsureGroup(ctx); err != nil {
			c.log.Error("ingest group", "action", "start", "error", err)
			backoff.Wait(ctx)
			continue
		}
		break
	}
	// Entries this consumer read before a restart and never acknowledged: one pass over them
	// (those failing again stay pending and take the reclaim path, which counts deliveries).
	after := "0"
	for ctx.Err() == nil {
		entries, err := c.store.ReadOwnPending(ctx, c.cfg.Consumer, after, c.cfg.ReadCount)
		if err != nil {
			c.log.Error("read own pending", "action", "read", "error", err)
			backoff.Wait(ctx)
			continue
		}
		if len(entries) == 0 {
			break
		}
		c.log.Info("re-reading own pending entries", "action", "recover", "entries", len(entries))
		handle(entries)
		after = entries[len(entries)-1].ID
	}
	nextClaim := time.Now()
	for ctx.Err() == nil {
		if !time.Now().Before(nextClaim) {
			n, err := c.claim(ctx, handle)
			if err != nil {
				c.log.Error("reclaim", "action", "claim", "error", err)
			}
			if n < c.cfg.ReadCount {
				nextClaim = time.Now().Add(c.cfg.ClaimEvery)
			}
		}
		entries, err := c.store.ReadNew(ctx, c.cfg.Consumer, c.cfg.ReadCount, c.cfg.Block)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Error("read ingest", "action", "read", "error", err)
				backoff.Wait(ctx)
			}
			continue
		}
		backoff.Reset()
		entries = c.linger(ctx, entries)
		handle(entries)
	}
}

// linger tops up a small read: when fewer than MinBatch entries came, it waits until Linger
// after the read and takes what arrived meanwhile (one more read, no blocking). Fewer, larger
// batches cost fewer Redis round trips, model calls and wake-ups per message.
func (c *IngestConsumer) linger(ctx context.Context, entries []redisstore.Entry) []redisstore.Entry {
	if c.cfg.Linger <= 0 || len(entries) == 0 || len(entries) >= c.cfg.MinBatch {
		return entries
	}
	t := time.NewTimer(c.cfg.Linger)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return entries
	case <-t.C:
	}
	more, err := c.store.ReadNew(ctx, c.cfg.Consumer, c.cfg.ReadCount-len(entries), -1)
	if err != nil {
		c.log.Warn("read ingest", "action", "read", "error", err) // the next read retries
		return entries
	}
	return append(entries, more...)
}

// touchInflight resets the idle time of entries that have been in the pipeline for a sixth
// of ClaimIdle, so that a slow batch is not mistaken for a dead consumer's.
func (c *IngestConsumer) touchInflight(ctx context.Context) {
	var ids []string
	cutoff := time.Now().Add(-c.cfg.ClaimIdle / 6)
	c.mu.Lock()
	for id, at := range c.inflight {
		if at.Before(cutoff) {
			ids = append(ids, id)
			c.inflight[id] = time.Now()
		}
	}
	c.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := c.store.Touch(ctx, c.cfg.Consumer, ids...); err != nil {
		c.log.Warn("touch in-flight entries", "action", "claim", "entries", len(ids), "error", err)
	}
}

// claim takes over entries idle past ClaimIdle and processes them; it returns how many.
func (c *IngestConsumer) claim(ctx context.Context, handle func([]redisstore.Entry)) (int, error) {
	entries, err := c.store.Claim(ctx, c.cfg.Consumer, c.cfg.ClaimIdle, c.cfg.ReadCount)
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	c.metrics.IngestReclaimed.Add(float64(len(entries)))
	c.log.Info("reclaimed idle entries", "action", "claim", "entries", len(entries))
	handle(entries)
	return len(entries), nil
}

func (c *IngestConsumer) deadLetter(ctx context.Context, e redisstore.Entry, cause error) {
	if err := c.store.DeadLetter(ctx, e, cause); err != nil {
		c.log.Error("dead-letter", "action", "dead_letter", "entry", e.ID, "error", err)
		return
	}
	c.metrics.IngestDeadLetters.Inc()
	c.log.Warn("entry dead-lettered", "action", "dead_letter", "entry", e.ID,
		"deliveries", e.Deliveries, "error", cause)
}
