package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/internal/streamworker"
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
	DefaultRetryDelay     = time.Second
)

// IngestConfig configures an IngestConsumer.
type IngestConfig struct {
	Consumer       string        // consumer name in the group; one per node, stable across restarts
	Shard          int           // the ingest stream shard read (redisstore.Keys.IngestShard)
	ReadCount      int           // entries per read
	Block          time.Duration // longest wait of one read (short: blocking reads ignore ctx)
	ClaimIdle      time.Duration // entries pending this long under any consumer are reclaimed
	ClaimEvery     time.Duration // how often to look for them; default min(ClaimIdle/2, 5s)
	MaxDeliveries  int           // an entry failing this many deliveries is dead-lettered
	RetryDelay     time.Duration // wait before a failed entry's next delivery, doubling up to a minute
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
	if c.MaxDeliveries == 0 {
		c.MaxDeliveries = DefaultMaxDeliveries
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.ProcessTimeout == 0 {
		c.ProcessTimeout = DefaultProcessTimeout
	}
	if c.MinBatch == 0 {
		c.MinBatch = DefaultMinBatch
	}
}

// streamConfig is the stream worker configuration of the ingest stream.
func (c IngestConfig) streamConfig(keys redisstore.Keys) streamworker.Config {
	return streamworker.Config{
		Name: "ingest", Stream: keys.IngestShard(c.Shard), Group: keys.IngestGroup(), Consumer: c.Consumer,
		DeadStream: keys.IngestDead(c.Shard), ReadCount: c.ReadCount, MinBatch: c.MinBatch, Linger: c.Linger,
		Block: c.Block, ClaimIdle: c.ClaimIdle, ClaimEvery: c.ClaimEvery, MaxAttempts: c.MaxDeliveries,
		BaseDelay: c.RetryDelay, MaxDelay: max(time.Minute, c.RetryDelay), HandleTimeout: c.ProcessTimeout,
	}
}

// IngestConsumer is the node's reader of the ingest stream: the stream worker engine
// (internal/streamworker, which also runs the mail and effects streams) with the ingest
// pipeline as its batch handler. serve runs it as a supervised StreamReader actor (Run). The
// engine reads batches with the consumer group, re-reads its own pending entries after a
// restart, retries failed entries with backoff, reclaims entries left idle by dead consumers,
// and acknowledges entries only once their effects are durable; the pipeline decodes each
// batch and takes it through the Processor's stages (classify, then grains), several batches
// at once. An entry that fails MaxDeliveries deliveries, or can never be decoded, goes to the
// dead-letter stream with its error.
type IngestConsumer struct {
	worker         *streamworker.Worker
	stages         []Stage
	processTimeout time.Duration
	log            *slog.Logger

	in chan<- *Batch // the running pipeline's first stage; set by Run, used by HandleBatch

	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	started bool
}

// IngestStream is the ingest stream's Redis side (redisstore.Store implements it): the client
// and key names the stream worker reads with, and how many shards the stream has.
type IngestStream interface {
	Client() redis.UniversalClient
	Keys() redisstore.Keys
	IngestShards() int
}

// NewIngestConsumer returns a consumer; Run (or Start) runs it.
func NewIngestConsumer(store IngestStream, proc Processor, cfg IngestConfig, m *metrics.Metrics, logger *slog.Logger) (*IngestConsumer, error) {
	cfg.setDefaults()
	if cfg.Consumer == "" {
		return nil, errors.New("actors: ingest consumer name is required")
	}
	if cfg.Shard < 0 || cfg.Shard >= store.IngestShards() {
		return nil, fmt.Errorf("actors: ingest shard %d out of 0..%d", cfg.Shard, store.IngestShards()-1)
	}
	c := &IngestConsumer{stages: stagesOf(proc), processTimeout: cfg.ProcessTimeout,
		log: logger.With("component", "ingest", "consumer", cfg.Consumer, "shard", cfg.Shard)}
	var sm *streamworker.Metrics
	if m != nil {
		sm = &streamworker.Metrics{Entries: m.StreamEntries, Duration: m.StreamDuration, BatchSize: m.StreamBatchSize}
	}
	c.worker = streamworker.NewBatch(store.Client(), cfg.streamConfig(store.Keys()), c, sm, logger)
	if err := c.worker.Validate(); err != nil {
		return nil, fmt.Errorf("actors: ingest consumer: %w", err)
	}
	return c, nil
}

// Engine returns the stream worker that runs the consumer.
func (c *IngestConsumer) Engine() *streamworker.Worker { return c.worker }

// Run runs the consumer until ctx ends, then returns once the batches in hand are processed
// and acknowledged: the Runner a StreamReader actor supervises. Use either Run or Start/Stop.
func (c *IngestConsumer) Run(ctx context.Context) error {
	in, drained := c.startPipeline()
	c.in = in
	err := c.worker.Run(ctx) // returns once every batch it handed over is done
	close(in)
	<-drained
	return err
}

// Start runs the consumer until Stop. It may be called once.
func (c *IngestConsumer) Start() {
	if c.started {
		panic("actors: IngestConsumer.Start called twice")
	}
	c.started = true
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		if err := c.Run(ctx); err != nil {
			c.log.Error("ingest consumer", "action", "read", "error", err)
		}
	}()
}

// Stop ends the consumer after the batches in hand are processed and acknowledged, or when
// ctx ends.
func (c *IngestConsumer) Stop(ctx context.Context) error {
	if c.cancel == nil {
		return nil
	}
	c.once.Do(c.cancel)
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("actors: stop ingest consumer: %w", ctx.Err())
	}
}
