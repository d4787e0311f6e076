package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/internal/retry"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/redisstore"
)

// Event hub defaults.
const (
	DefaultSendBuffer = 4096 // frames (~2 MB) queued for one socket before it counts as too slow
	MaxTail           = 1000
)

// EventHubConfig configures an EventHub.
type EventHubConfig struct {
	SendBuffer int    // frames queued per connection
	Name       string // hub actor name, default "events"
}

// EventHub fans events out to this node's WebSocket connections. A loop (outside any actor)
// reads the Redis Pub/Sub channel every node publishes on and sends each event to the hub
// actor, which forwards it to one connection actor per socket. After a Pub/Sub reconnect the
// loop replays what it missed from the events log, so live sockets see no gap.
type EventHub struct {
	system  *actor.ActorSystem
	pid     *actor.PID
	store   *redisstore.Store
	cfg     EventHubConfig
	metrics *metrics.Metrics
	log     *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{} // closed once subscribed
	once   sync.Once
}

// NewEventHub spawns the hub actor and starts the Pub/Sub loop; it returns once subscribed.
func NewEventHub(ctx context.Context, system *actor.ActorSystem, store *redisstore.Store, cfg EventHubConfig, m *metrics.Metrics, logger *slog.Logger) (*EventHub, error) {
	if cfg.SendBuffer == 0 {
		cfg.SendBuffer = DefaultSendBuffer
	}
	if cfg.Name == "" {
		cfg.Name = "events"
	}
	if cfg.SendBuffer < 1 {
		return nil, fmt.Errorf("actors: send buffer must be positive, got %d", cfg.SendBuffer)
	}
	h := &EventHub{system: system, store: store, cfg: cfg, metrics: m,
		log: logger.With("component", "events"), done: make(chan struct{}), ready: make(chan struct{})}
	props := actor.PropsFromProducer(func() actor.Actor { return &hubActor{conns: make(map[*actor.PID]struct{})} },
		actor.WithGuardian(restartStrategy()))
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

// listen reads the Pub/Sub channel until ctx ends. go-redis resubscribes by itself after a
// connection loss; every subscription confirmation after the first triggers a replay from the
// last event seen, since Pub/Sub drops what is published while nobody listens.
func (h *EventHub) listen(ctx context.Context) {
	var mu sync.Mutex
	ps := h.store.Subscribe(ctx)
	current := func() *redis.PubSub { mu.Lock(); defer mu.Unlock(); return ps }
	defer func() { current().Close() }()
	go func() { <-ctx.Done(); current().Close() }() // Receive does not return on ctx alone
	last := ""
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
				ps = h.store.Subscribe(ctx)
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
			if m.Kind != "subscribe" {
				continue
			}
			if !subscribed {
				subscribed = true
				if last, err = h.store.LastEventID(ctx); err != nil {
					h.log.Warn("events: last id", "action", "subscribe", "error", err)
				}
				close(h.ready)
				continue
			}
			last = h.catchUp(ctx, last)
		case *redis.Message:
			ev, err := redisstore.DecodeEventHeader(m.Payload)
			if err != nil {
				h.log.Warn("events: bad payload", "action", "receive", "error", err)
				continue
			}
			if last != "" && redisstore.CompareIDs(ev.ID, last) <= 0 {
				continue // already replayed by catchUp
			}
			last = ev.ID
			h.system.Root.Send(h.pid, &eventPublished{id: ev.ID, postID: ev.PostID, frame: []byte(m.Payload)})
		}
	}
}

// catchUp forwards the events published after last while the subscription was down.
func (h *EventHub) catchUp(ctx context.Context, last string) string {
	backoff := retry.New()
	for attempt := 0; ctx.Err() == nil; {
		r, err := h.store.EventsAfter(ctx, last, 1000)
		if err != nil {
			// Live events wait in the subscription meanwhile; they are newer than what we
			// are replaying, so the order holds once we get through.
			if attempt++; attempt%10 == 0 {
				h.log.Error("events: catch up keeps failing", "action", "resubscribe", "attempts", attempt, "error", err)
			}
			backoff.Wait(ctx)
			continue
		}
		if r.Gap {
			h.log.Warn("events: the replay log was trimmed past the last event seen; live sockets missed some",
				"action", "resubscribe", "last", last)
		}
		for _, ev := range r.Events {
			frame, err := encodeEvent(ev)
			if err != nil {
				continue
			}
			last = ev.ID
			h.system.Root.Send(h.pid, &eventPublished{id: ev.ID, postID: ev.PostID, frame: frame})
		}
		if len(r.Events) < 1000 {
			break
		}
	}
	h.log.Info("events resubscribed", "action", "resubscribe", "last", last)
	return last
}

// hubActor keeps this node's connection actors and forwards every event to each of them.
type hubActor struct {
	conns map[*actor.PID]struct{}
}

func (a *hubActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *eventPublished:
		for pid := range a.conns {
			ctx.Send(pid, msg)
		}
	case *registerConn:
		a.conns[msg.pid] = struct{}{}
		ctx.Watch(msg.pid)
		ctx.Respond(&connRegistered{})
	case *actor.Terminated:
		delete(a.conns, msg.Who)
	case *actor.Stopping: // node shutting down: drop every socket (clients reconnect elsewhere)
		for pid := range a.conns {
			ctx.Stop(pid)
		}
	}
}
