// Package redisstore keeps Voluntree's state in Redis: the ingest stream and its consumer
// group, interests and per-post counts, the events replay log and Pub/Sub channel, and
// conversation state. Every key is built in keys.go.
//
//	st, err := redisstore.New(rdb, redisstore.Config{})
//	ids, err := st.Enqueue(ctx, msgs)             // webhook: durable before the 200
//	entries, err := st.ReadNew(ctx, "node-1", 256, 100*time.Millisecond)
package redisstore

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Config.
const (
	DefaultIngestMaxLen = 1_000_000
	DefaultEventsMaxLen = 20_000         // per organization: what a dashboard can catch up on after a disconnect
	DefaultDedupeTTL    = 36 * time.Hour // Facebook retries a webhook for up to 36 hours
)

// Config configures a Store.
type Config struct {
	Prefix       string        // key prefix; "" is DefaultPrefix
	IngestMaxLen int64         // approximate cap of the ingest stream (MAXLEN ~)
	EventsMaxLen int64         // approximate cap of each organization's events replay log
	DedupeTTL    time.Duration // how long an accepted message id is remembered
	// IngestShards is the number of ingest streams, the pages spread over them (default 1:
	// the one stream of before). Raise it to spread the ingest over a Redis Cluster's nodes;
	// lowering it strands the entries of the shards left out.
	IngestShards int
	// WaitReplicas, when positive, makes an append to the ingest stream succeed only once
	// that many replicas have it (WAIT, up to WaitTimeout): a webhook's 200 then survives a
	// failover to one of them. 0 acknowledges what the master has (asynchronous replication:
	// a failover can lose the last writes, BENCHMARKS.md).
	WaitReplicas int
	WaitTimeout  time.Duration // default DefaultWaitTimeout
}

// DefaultWaitTimeout bounds a WAIT for replicas: past it the append counts as failed (503,
// Facebook retries; the retry is deduplicated and waits again).
const DefaultWaitTimeout = time.Second

func (c *Config) setDefaults() {
	if c.IngestMaxLen == 0 {
		c.IngestMaxLen = DefaultIngestMaxLen
	}
	if c.EventsMaxLen == 0 {
		c.EventsMaxLen = DefaultEventsMaxLen
	}
	if c.DedupeTTL == 0 {
		c.DedupeTTL = DefaultDedupeTTL
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
	if c.IngestShards == 0 {
		c.IngestShards = 1
	}
}

// MaxIngestShards bounds Config.IngestShards: every node reads every shard.
const MaxIngestShards = 256

// Validate reports an unusable configuration.
func (c Config) Validate() error {
	switch {
	case c.WaitReplicas < 0 || c.WaitTimeout < time.Millisecond:
		return fmt.Errorf("redisstore: replicas to wait for must be 0 or more and the wait at least 1ms, got %d and %s", c.WaitReplicas, c.WaitTimeout)
	case c.IngestMaxLen < 1000:
		return fmt.Errorf("redisstore: ingest max length must be at least 1000, got %d", c.IngestMaxLen)
	case c.EventsMaxLen < 100:
		return fmt.Errorf("redisstore: events max length must be at least 100, got %d", c.EventsMaxLen)
	case c.IngestShards < 1 || c.IngestShards > MaxIngestShards:
		return fmt.Errorf("redisstore: ingest shards must be 1 to %d, got %d", MaxIngestShards, c.IngestShards)
	case c.DedupeTTL < time.Second:
		return fmt.Errorf("redisstore: dedupe TTL must be at least 1s, got %s", c.DedupeTTL)
	}
	return nil
}

// Store is Voluntree's Redis state. It is safe for concurrent use.
type Store struct {
	rdb  redis.UniversalClient
	ro   redis.UniversalClient // reports' reads (stats.go): a replica's lag is fine there
	keys Keys
	cfg  Config
	co   *coalescer // grains' commands share pipelines
	in   *coalescer // webhook appends, apart: their latency is the webhook's answer time
	wait *replicaWait
}

// Coalescing: workers running pipelines at once, and commands per pipeline at most.
const (
	coalesceWorkers = 4
	coalesceMax     = 512
)

// Option changes how New makes a Store.
type Option func(*Store)

// WithReader sends the reports' reads (statistics, fills, overviews: what a dashboard shows,
// never what a decision is made on) to r, a client that reads from replicas.
func WithReader(r redis.UniversalClient) Option { return func(s *Store) { s.ro = r } }

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, cfg Config, opts ...Option) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{rdb: rdb, ro: rdb, keys: NewKeys(cfg.Prefix), cfg: cfg,
		co: newCoalescer(rdb, coalesceWorkers, coalesceMax),
		in: newCoalescer(rdb, coalesceWorkers, coalesceMax)}
	s.wait = &replicaWait{rdb: rdb, replicas: cfg.WaitReplicas, timeout: cfg.WaitTimeout}
	for n := range cfg.IngestShards {
		s.wait.fences = append(s.wait.fences, s.keys.IngestShardFence(n))
	}
	s.in.wait = s.wait
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Close stops the store's pipeline workers (not the Redis client, which the caller owns).
func (s *Store) Close() { s.co.close(); s.in.close() }

// Keys returns the store's key builder.
func (s *Store) Keys() Keys { return s.keys }

// Client returns the Redis client (for Pub/Sub subscriptions and health checks).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// IngestMaxLen is the ingest stream's approximate cap.
func (s *Store) IngestMaxLen() int64 { return s.cfg.IngestMaxLen }
