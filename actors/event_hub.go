package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/redisstore"
)

// Event hub defaults.
const (
	DefaultSendBuffer = 4096 // frames (~2 MB) queued for one socket before it counts as too slow
	DefaultMaxSockets = 1000 // sockets of one node: what its event fan-out may hold is this × SendBuffer frames
	MaxTail           = 1000
	// maxReplays bounds the replays reading the events logs at once: after a Pub/Sub
	// reconnect every socket replays, and they queue here rather than all hit Redis together.
	maxReplays = 16
)

// EventHubConfig configures an EventHub.
type EventHubConfig struct {
	SendBuffer int    // frames queued per connection
	MaxSockets int    // connections at once; past it Subscribe answers EOVERLOADED
	Name       string // hub actor name, default "events"
}

// EventSource is what the hub reads: every organization's events channel (one Redis Pub/Sub
// pattern subscription, whose channels name their organization) and, to catch up, each
// organization's replay log (voluntree.EventReplayer). redisstore.Store implements it.
type EventSource interface {
	voluntree.EventReplayer
	SubscribeAllEvents(ctx context.Context) *redis.PubSub
	OrgOfChannel(channel string) (string, bool)
}

// EventHub fans events out to this node's WebSocket connections. A loop (outside any actor)
// reads every organization's events channel (one pattern subscription) and sends each event,
// with its organization, to the hub actor, which forwards it to the connection actors of that
// organization only. After a Pub/Sub reconnect each connection replays what it missed from
// its organization's log, so live sockets see no gap.
type EventHub struct {
	system  *actor.ActorSystem
	pid     *actor.PID
	store   EventSource
	cfg     EventHubConfig
	metrics *metrics.Metrics
	log     *slog.Logger

	cancel  context.CancelFunc
	done    chan struct{}
	ready   chan struct{} // closed once subscribed
	once    sync.Once
	sockets atomic.Int64  // open subscriptions
	replays chan struct{} // a slot per replay reading Redis
}

// NewEventHub spawns the hub actor and starts the Pub/Sub loop; it returns once subscribed.
func NewEventHub(ctx context.Context, system *actor.ActorSystem, store EventSource, cfg EventHubConfig, m *metrics.Metrics, logger *slog.Logger) (*EventHub, error) {
	if cfg.SendBuffer == 0 {
		cfg.SendBuffer = DefaultSendBuffer
	}
	if cfg.Name == "" {
		cfg.Name = "events"
	}
	if cfg.MaxSockets == 0 {
		cfg.MaxSockets = DefaultMaxSockets
	}
	if cfg.SendBuffer < 1 || cfg.MaxSockets < 1 {
		return nil, fmt.Errorf("actors: send buffer and max sockets must be positive, got %d and %d", cfg.SendBuffer, cfg.MaxSockets)
	}
	h := &EventHub{system: system, store: store, cfg: cfg, metrics: m,
		log: logger.With("component", "events"), done: make(chan struct{}), ready: make(chan struct{}),
		replays: make(chan struct{}, maxReplays)}
	props := actor.PropsFromProducer(func() actor.Actor {
		return &hubActor{conns: make(map[string]map[*actor.PID]struct{}), orgOf: make(map[*actor.PID]string)}
	}, actor.WithGuardian(restartStrategy()))
	pid, err := system.Root.SpawnNamed(props, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("actors: spawn event hub: %w", err)
	}
	h.pid = pid
	lctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		h.listen(lctx)
	}()
	select {
	case <-h.ready:
		return h, nil
	case <-ctx.Done():
		h.Stop(context.Background())
		return nil, fmt.Errorf("actors: subscribe to events: %w", ctx.Err())
	}
}

// Full reports whether the node has as many sockets as it takes (checked before an upgrade;
// Subscribe checks again).
func (h *EventHub) Full() bool { return h.sockets.Load() >= int64(h.cfg.MaxSockets) }

// Stop ends the Pub/Sub loop and the hub actor; open subscriptions see their Done channel.
func (h *EventHub) Stop(ctx context.Context) error {
	h.once.Do(h.cancel)
	select {
	case <-h.done:
	case <-ctx.Done():
		return fmt.Errorf("actors: stop event hub: %w", ctx.Err())
	}
	return h.system.Root.StopFuture(h.pid).Wait()
}

// pubsubQuiet is how long the subscription may stay silent before the loop pings it; a
// second silent period (no pong) means the connection is dead (half-open connections are
// otherwise noticed only by TCP keepalive, minutes later): it subscribes again.
const pubsubQuiet = 15 * time.Second

// listen reads the events channels until ctx ends. go-redis resubscribes by itself after a
// connection loss; every subscription confirmation after the first makes the connections
// replay from the last event they saw, since Pub/Sub drops what is published while nobody
// listens.
func (h *EventHub) listen(ctx context.Context) {
	var mu sync.Mutex
	ps := h.store.SubscribeAllEvents(ctx)
	current := func() *redis.PubSub { mu.Lock(); defer mu.Unlock(); return ps }
	defer func() { current().Close() }()
	go func() { <-ctx.Done(); current().Close() }() // Receive does not return on ctx alone
	subscribed := false
	quiet := 0
	for ctx.Err() == nil {
		msg, err := current().ReceiveTimeout(ctx, pubsubQuiet)
		if err != nil {
			var ne net.Error
			switch {
			case ctx.Err() != nil || errors.Is(err, redis.ErrClosed):
			case errors.As(err, &ne) && ne.Timeout():
				if quiet++; quiet < 2 {
					_ = current().Ping(ctx)
					continue
				}
				h.log.Warn("events subscription silent: subscribing again", "action", "resubscribe")
				mu.Lock()
				ps.Close()
				ps = h.store.SubscribeAllEvents(ctx)
				mu.Unlock()
				quiet = 0
			default:
				h.log.Warn("events subscription", "action", "receive", "error", err)
				time.Sleep(100 * time.Millisecond) // go-redis reconnects on the next Receive
			}
			continue
		}
		quiet = 0
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "psubscribe" {
				continue
			}
			if !subscribed {
				subscribed = true
				close(h.ready)
				continue
			}
			h.log.Info("events resubscribed: sockets replay what they missed", "action", "resubscribe")
			h.system.Root.Send(h.pid, &resync{})
		case *redis.Message:
			org, ok := h.store.OrgOfChannel(m.Channel)
			if !ok {
				continue
			}
			ev, err := redisstore.DecodeEventHeader(m.Payload)
			if err != nil {
				h.log.Warn("events: bad payload", "action", "receive", "org", org, "error", err)
				continue
			}
			h.system.Root.Send(h.pid, &eventPublished{org: org, hdr: ev, frame: []byte(m.Payload)})
		}
	}
}

// hubActor keeps this node's connection actors by organization and forwards each event to
// the connections of its organization only.
type hubActor struct {
	conns map[string]map[*actor.PID]struct{} // by organization
	orgOf map[*actor.PID]string
}

func (a *hubActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *eventPublished:
		for pid := range a.conns[msg.org] {
			ctx.Send(pid, msg)
		}
	case *registerConn:
		set := a.conns[msg.org]
		if set == nil {
			set = make(map[*actor.PID]struct{})
			a.conns[msg.org] = set
		}
		set[msg.pid] = struct{}{}
		a.orgOf[msg.pid] = msg.org
		ctx.Watch(msg.pid)
		ctx.Respond(&connRegistered{})
	case *resync:
		for _, set := range a.conns {
			for pid := range set {
				ctx.Send(pid, msg)
			}
		}
	case *actor.Terminated:
		org := a.orgOf[msg.Who]
		delete(a.orgOf, msg.Who)
		if set := a.conns[org]; set != nil {
			delete(set, msg.Who)
			if len(set) == 0 {
				delete(a.conns, org)
			}
		}
	case *actor.Stopping: // node shutting down: drop every socket (clients reconnect elsewhere)
		for pid := range a.orgOf {
			ctx.Stop(pid)
		}
	}
}
