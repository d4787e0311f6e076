package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/voluntree/voluntree/cluster/grainpb"
)

// Defaults of SchedulerConfig.
const (
	DefaultSchedulerTick        = 250 * time.Millisecond
	DefaultSchedulerLease       = 3 * time.Minute
	DefaultSchedulerConcurrency = 8
)

// SchedulerConfig tunes a Scheduler.
type SchedulerConfig struct {
	Tick        time.Duration // how often the publish queue is looked at
	Lease       time.Duration // a claimed post comes due again after this (its publisher died)
	Concurrency int           // posts published at once by this node
	// RetryAfterError: a publication that failed without recording an outcome (the grain
	// could not reach Redis, or timed out) is tried again after this.
	RetryAfterError time.Duration
}

func (c *SchedulerConfig) setDefaults() {
	if c.Tick == 0 {
		c.Tick = DefaultSchedulerTick
	}
	if c.Lease == 0 {
		c.Lease = DefaultSchedulerLease
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultSchedulerConcurrency
	}
	if c.RetryAfterError == 0 {
		c.RetryAfterError = 5 * time.Second
	}
}

// Scheduler claims the posts that are due in the publish queue and publishes them. Every node runs one; a claim is atomic, so each due post goes to one node, and a
// claim is a lease, so a post whose node died comes due again. It runs outside any actor.
type Scheduler struct {
	node *Node
	cfg  SchedulerConfig
	log  *slog.Logger
}

// NewScheduler returns the scheduler of node.
func NewScheduler(node *Node, cfg SchedulerConfig) *Scheduler {
	cfg.setDefaults()
	return &Scheduler{node: node, cfg: cfg, log: node.cfg.Logger.With("component", "scheduler")}
}

// Run publishes due posts until ctx ends, then waits for the publications under way.
func (s *Scheduler) Run(ctx context.Context) error {
	store, m := s.node.cfg.Store, s.node.cfg.Metrics
	// A publication must finish well within its lease, or a second claim could overlap it.
	timeout := min(s.node.cfg.Publish.Timeout+5*time.Second, s.cfg.Lease-time.Second)
	var wg sync.WaitGroup
	defer wg.Wait()
	free := make(chan struct{}, s.cfg.Concurrency)
	for range s.cfg.Concurrency {
		free <- struct{}{}
	}
	tick := time.NewTicker(s.cfg.Tick)
	defer tick.Stop()
	var lastGauge time.Time
	for {
		if time.Since(lastGauge) > 5*time.Second {
			if n, err := store.QueueLength(ctx); err == nil {
				m.PublishQueue.Set(float64(n))
			}
			lastGauge = time.Now()
		}
		if n := len(free); n > 0 {
			ids, err := store.ClaimDuePosts(ctx, time.Now(), s.cfg.Lease, n)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("claim due posts", "action", "schedule", "error", err)
			}
			for _, id := range ids {
				<-free
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { free <- struct{}{} }()
					s.publish(id, timeout)
				}()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// publish makes one publish attempt of post id in the scheduler's own goroutine: the Graph API
// is called outside any actor. The claim's lease keeps other nodes off the post meanwhile.
func (s *Scheduler) publish(id string, timeout time.Duration) {
	start := time.Now()
	p := s.node.publisher
	outcome := "ok"
	var err error
	var resp *grainpb.PublishResponse
	if p == nil {
		err = errors.New("cluster: publishing is not configured on this node")
	} else {
		type result struct {
			resp *grainpb.PublishResponse
			err  error
		}
		done := make(chan result, 1)
		go func() { r, e := p.publish(id); done <- result{r, e} }()
		select {
		case r := <-done:
			resp, err = r.resp, r.err
		case <-time.After(timeout):
			err = fmt.Errorf("publish %s: no outcome within %s", id, timeout)
		}
	}
	if err != nil {
		outcome = "error"
		// Try again soon (the lease has kept others off it).
		s.log.Warn("publish", "action", "schedule", "post", id, "error", err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.node.cfg.Store.Requeue(ctx, id, time.Now().Add(s.cfg.RetryAfterError)); err != nil {
			s.log.Warn("requeue", "action", "schedule", "post", id, "error", err)
		}
	} else {
		s.log.Debug("publish", "action", "schedule", "post", id, "status", resp.Status)
	}
	s.node.cfg.Metrics.GrainRequest.WithLabelValues("post_publish", outcome).Observe(time.Since(start).Seconds())
}
