package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/metrics"
)

// Predictor runs one batch through a model (ml.Model satisfies it).
type Predictor interface {
	Predict(ctx context.Context, texts []string) ([]voluntree.Prediction, error)
}

// Clock tells the time; tests inject their own.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Batcher defaults.
const (
	DefaultMaxBatch = 64
	DefaultMaxDelay = 5 * time.Millisecond
	DefaultMaxQueue = 8192
)

// BatcherConfig configures the batching inference actor.
type BatcherConfig struct {
	MaxBatch int           // texts per model call
	MaxDelay time.Duration // longest wait of the oldest queued text before a partial batch runs
	MaxQueue int           // texts queued at most; more are refused with EOVERLOADED
	Clock    Clock
	Name     string // actor name, default "batcher"
}

func (c *BatcherConfig) setDefaults() {
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = DefaultMaxDelay
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.Name == "" {
		c.Name = "batcher"
	}
}

// Validate reports an unusable configuration.
func (c BatcherConfig) Validate() error {
	switch {
	case c.MaxBatch < 1:
		return fmt.Errorf("actors: max batch must be positive, got %d", c.MaxBatch)
	case c.MaxDelay < 0:
		return fmt.Errorf("actors: max delay must not be negative, got %s", c.MaxDelay)
	case c.MaxQueue < c.MaxBatch:
		return fmt.Errorf("actors: max queue (%d) must hold at least one batch (%d)", c.MaxQueue, c.MaxBatch)
	}
	return nil
}

// Batcher is the typed front of the batching inference actor: callers use Classify and never
// handle a PID. It implements voluntree.Classifier.
type Batcher struct {
	system  *actor.ActorSystem
	pid     *actor.PID
	cfg     BatcherConfig
	metrics *metrics.Metrics
	done    chan struct{} // closed when the actor has stopped, by Stop or by its supervisor
}

var _ voluntree.Classifier = (*Batcher)(nil)

// NewBatcher spawns the batcher actor (and its inference child) on system's root, supervised
// by the system's guardian strategy (see NewSystem).
func NewBatcher(system *actor.ActorSystem, model Predictor, cfg BatcherConfig, m *metrics.Metrics, logger *slog.Logger) (*Batcher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger = logger.With("component", "batcher")
	done := make(chan struct{})
	var once sync.Once
	stopped := func() { once.Do(func() { close(done) }) }
	props := actor.PropsFromProducer(func() actor.Actor {
		return newBatcherActor(cfg, model, m, logger, stopped)
	}, actor.WithGuardian(restartStrategy()))
	pid, err := system.Root.SpawnNamed(props, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("actors: spawn batcher: %w", err)
	}
	return &Batcher{system: system, pid: pid, cfg: cfg, metrics: m, done: done}, nil
}

// Healthy reports an error once the batcher has stopped (for /healthz).
func (b *Batcher) Healthy(context.Context) error {
	select {
	case <-b.done:
		return voluntree.Errorf(voluntree.EUNAVAILABLE, "classifier is stopped")
	default:
		return nil
	}
}

// Classify classifies texts in order, sharing model batches with concurrent callers. It
// returns an EOVERLOADED error at once when the queue is full, and ctx's error when ctx ends
// first.
func (b *Batcher) Classify(ctx context.Context, texts []string) ([]voluntree.Prediction, error) {
	return b.classify(ctx, texts, false)
}

// ClassifyNow is Classify for callers that batch their texts themselves (the ingest
// pipeline): their texts, and whatever is queued before them, run without waiting for the
// max delay. Batches are still at most the max batch size.
func (b *Batcher) ClassifyNow(ctx context.Context, texts []string) ([]voluntree.Prediction, error) {
	return b.classify(ctx, texts, true)
}

func (b *Batcher) classify(ctx context.Context, texts []string, urgent bool) ([]voluntree.Prediction, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	if len(texts) > b.cfg.MaxQueue {
		return nil, voluntree.Errorf(voluntree.EINVALID, "%d texts exceed the classifier queue (%d)", len(texts), b.cfg.MaxQueue)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.Healthy(ctx); err != nil {
		return nil, err
	}
	req := &pendingRequest{ctx: ctx, texts: texts, urgent: urgent, reply: make(chan classifyReply, 1)}
	b.system.Root.Send(b.pid, &classifyRequest{req: req})
	select {
	case r := <-req.reply:
		return r.preds, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.done: // stopped while (or before) our message was in its mailbox
		select {
		case r := <-req.reply:
			return r.preds, r.err
		default:
			return nil, voluntree.Errorf(voluntree.EUNAVAILABLE, "classifier is stopped")
		}
	}
}

// Stop stops the batcher; queued requests fail with EUNAVAILABLE.
func (b *Batcher) Stop(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- b.system.Root.StopFuture(b.pid).Wait() }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, actor.ErrTimeout) {
			return fmt.Errorf("actors: stop batcher: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
