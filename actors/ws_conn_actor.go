package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// SubscribeOptions says which events a socket wants.
type SubscribeOptions struct {
	Org    string // the organization whose events these are (required: a feed is never global)
	PostID string // only this post's events; "" for all
	// Intents are the intents of the messages wanted: interests for IntentInterested, message
	// events for the others. None: interests only (message events are for feeds that ask).
	Intents []voluntree.Intent
	Since   string // replay every event after this id first
	Tail    int    // or replay from the Tail-th last message the feed shows (ignored when Since is set)
}

// Drop reasons of a Subscription.
const (
	DropSlow    = "slow"     // the send buffer filled up: the client does not read
	DropStopped = "stopping" // the node is shutting down
)

// Subscription is one socket's feed: frames (JSON text) to write, in order, by exactly one
// writer. Done is closed when the server drops the socket (Reason says why).
type Subscription struct {
	frames chan []byte
	done   chan struct{}
	once   sync.Once
	reason string
	pid    *actor.PID
	system *actor.ActorSystem
}

// Frames returns the frames to write.
func (s *Subscription) Frames() <-chan []byte { return s.frames }

// Done is closed when the server drops the subscription.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Reason says why Done was closed.
func (s *Subscription) Reason() string {
	<-s.done
	return s.reason
}

func (s *Subscription) drop(reason string) {
	s.once.Do(func() { s.reason = reason; close(s.done) })
}

// Close ends the subscription (the client went away).
func (s *Subscription) Close() {
	s.drop("closed")
	s.system.Root.Stop(s.pid)
}

// Subscribe starts a connection actor for one socket. The actor registers with the hub
// before it reads the replay log, buffers live events while replaying, and then sends only
// live events newer than the last replayed one: no gap, no duplicate.
func (h *EventHub) Subscribe(ctx context.Context, opts SubscribeOptions) (*Subscription, error) {
	if err := ValidateSubscribe(opts); err != nil {
		return nil, err
	}
	select {
	case <-h.done:
		return nil, voluntree.Errorf(voluntree.EUNAVAILABLE, "events are shutting down")
	default:
	}
	if n := h.sockets.Add(1); n > int64(h.cfg.MaxSockets) {
		h.sockets.Add(-1)
		e := voluntree.Errorf(voluntree.EOVERLOADED, "this node has %d live feeds open, its most; retry later", h.cfg.MaxSockets)
		e.RetryAfter = 5 * time.Second
		return nil, e
	}
	sub := &Subscription{frames: make(chan []byte, h.cfg.SendBuffer), done: make(chan struct{}), system: h.system}
	props := actor.PropsFromProducer(func() actor.Actor {
		return &connActor{hub: h, sub: sub, opts: opts}
	})
	h.metrics.WSClients.Inc() // before the actor exists: its Stopped decrements
	sub.pid = h.system.Root.Spawn(props)
	return sub, nil
}

// Wants reports whether an event passes the options' filters, which are filters of messages:
// an interest or message event must be of the post and (message events) of an intent asked
// for. The organization's other events (posts' statuses, bookings, notices, volunteers) pass:
// the dashboard's management views follow them whatever the feed shows.
func (o SubscribeOptions) Wants(h voluntree.EventHeader) bool {
	if !isMessage(h) {
		return true
	}
	if o.PostID != "" && h.PostID != o.PostID {
		return false
	}
	if h.Type == voluntree.EventInterest {
		return len(o.Intents) == 0 || slices.Contains(o.Intents, voluntree.IntentInterested)
	}
	return slices.Contains(o.Intents, h.Intent)
}

// isMessage reports the events of a message: an interest, or a message of another intent.
func isMessage(h voluntree.EventHeader) bool {
	return h.Type == voluntree.EventInterest || h.Type == voluntree.EventMessage
}

// tailMatch says which events a tail counts: the messages the feed shows (its other events
// since the N-th last of those come along).
func (o SubscribeOptions) tailMatch(h voluntree.EventHeader) bool { return isMessage(h) && o.Wants(h) }

// ValidateSubscribe checks options before a socket is upgraded.
func ValidateSubscribe(opts SubscribeOptions) error {
	if opts.Org == "" {
		return voluntree.Errorf(voluntree.EUNAUTHORIZED, "a live feed belongs to an organization")
	}
	if opts.Tail < 0 || opts.Tail > MaxTail {
		return voluntree.Errorf(voluntree.EINVALID, "tail must be between 0 and %d", MaxTail)
	}
	if opts.Since != "" && !validStreamID(opts.Since) {
		return voluntree.Errorf(voluntree.EINVALID, "since %q is not an event id (like 1732262400000-0)", opts.Since)
	}
	if len(opts.PostID) > voluntree.MaxIDLength {
		return voluntree.Errorf(voluntree.EINVALID, "post is not a post id")
	}
	return nil
}

// Messages of the hub and connection actors (local only: plain structs).
type (
	eventPublished struct {
		org   string
		hdr   voluntree.EventHeader
		frame []byte
	}
	registerConn struct {
		org string
		pid *actor.PID
	}
	connRegistered struct{}
	// resync tells connections that live events may have been missed (the Pub/Sub connection
	// was lost): each replays its organization's log from the last event it saw.
	resync     struct{}
	replayPage struct {
		start  string // the id the replay starts after (first page only)
		events []voluntree.Event
		gap    bool
		final  bool
		err    error
	}
)

type connState int

const (
	stateRegistering connState = iota
	stateReplaying
	stateLive
)

// connActor feeds one Subscription.
type connActor struct {
	hub      *EventHub
	sub      *Subscription
	opts     SubscribeOptions
	state    connState
	last     string            // id of the newest event sent (or skipped by the filter)
	buffered []*eventPublished // live events that arrived during the replay
	replayed int
	ready    bool // the "ready" frame was sent (after the first replay)
	resync   bool // a resync came during a replay: replay again before going live
	cancel   context.CancelFunc
	// Replay flow control: one page at a time, and a deadline for the whole replay.
	nextPage    chan<- struct{}
	replayUntil time.Time
}

func (a *connActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		ctx.Request(a.hub.pid, &registerConn{org: a.opts.Org, pid: ctx.Self()})
	case *connRegistered:
		a.state = stateReplaying
		a.startReplay(ctx, a.opts.Since, true)
	case *resync:
		switch a.state {
		case stateLive:
			a.state = stateReplaying
			a.startReplay(ctx, a.last, false)
		case stateReplaying:
			a.resync = true
		}
	case *replayPage:
		a.onReplay(ctx, msg)
	case *eventPublished:
		switch a.state {
		case stateLive:
			a.send(ctx, msg.hdr, msg.frame)
		default:
			a.buffered = append(a.buffered, msg)
			if len(a.buffered) > 4*a.hub.cfg.SendBuffer {
				// The replay is behind the live events (a burst, or the hub's own backlog): the
				// log has them, so forget them and read it again once this page run ends. The
				// client is not the slow one; replayStall and replayBudget still bound it.
				a.buffered = nil
				a.resync = true
			}
		}
	case *actor.Stopping:
		if a.cancel != nil {
			a.cancel()
		}
	case *actor.Stopped:
		a.sub.drop(DropStopped)
		a.hub.metrics.WSClients.Dec()
		a.hub.sockets.Add(-1)
	}
}

// startReplay reads the organization's log after `after` in a goroutine (blocking I/O stays
// out of Receive) and sends the pages back to this actor. The first replay of a socket starts
// where its options say: after Since, before the last Tail messages it shows, or at the newest
// event.
func (a *connActor) startReplay(ctx actor.Context, after string, first bool) {
	if a.cancel != nil {
		a.cancel()
	}
	rctx, cancel := context.WithTimeout(context.Background(), replayBudget)
	a.cancel = cancel
	a.replayUntil = time.Now().Add(replayBudget)
	next := make(chan struct{}, 1) // the actor asks for the next page: one page in flight
	a.nextPage = next
	self, root, store, opts := ctx.Self(), a.hub.system.Root, a.hub.store, a.opts
	reportGap := !first || opts.Since != ""
	slots := a.hub.replays
	// read runs one Redis read of the replay holding a slot: a bounded number of replays read
	// at once, and a replay waiting on its client holds none.
	read := func(f func() error) error {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			return f()
		case <-rctx.Done():
			return rctx.Err()
		}
	}
	go func() {
		defer cancel()
		if first && after == "" {
			err := read(func() (err error) {
				if opts.Tail > 0 {
					after, err = store.EventIDBeforeLastMatching(rctx, opts.Org, opts.Tail, opts.tailMatch)
				} else {
					after, err = store.LastEventID(rctx, opts.Org)
				}
				return err
			})
			if err != nil {
				root.Send(self, &replayPage{err: err, final: true})
				return
			}
		}
		const page = 500
		start := after
		for {
			var r voluntree.Replay
			err := read(func() (err error) {
				r, err = store.EventsAfter(rctx, opts.Org, after, page)
				return err
			})
			if err != nil {
				root.Send(self, &replayPage{err: err, final: true})
				return
			}
			final := len(r.Events) < page
			root.Send(self, &replayPage{start: start, events: r.Events, gap: r.Gap && reportGap && after == start, final: final})
			if final {
				return
			}
			select { // flow control: the next page once this one is queued for the socket
			case <-next:
			case <-rctx.Done():
				return
			}
			after = r.Events[len(r.Events)-1].ID
		}
	}()
}

func (a *connActor) onReplay(ctx actor.Context, p *replayPage) {
	if p.err != nil {
		a.hub.log.Warn("replay failed", "action", "replay", "error", p.err)
		a.sub.drop("replay failed")
		ctx.Stop(ctx.Self())
		return
	}
	if a.last == "" {
		a.last = p.start
	}
	if p.gap {
		a.sendControl(ctx, map[string]any{"type": "gap"})
	}
	for _, ev := range p.events {
		frame, err := encodeEvent(ev)
		if err != nil {
			continue
		}
		a.replayed++
		a.send(ctx, voluntree.EventHeader{ID: ev.ID, Type: ev.Type, PostID: ev.PostID, Intent: ev.Intent}, frame)
	}
	if !p.final {
		select {
		case a.nextPage <- struct{}{}:
		default:
		}
		return
	}
	if a.resync { // live events were lost meanwhile: read the log again before the buffer
		a.resync = false
		a.startReplay(ctx, a.last, false)
		return
	}
	for _, ev := range a.buffered {
		a.send(ctx, ev.hdr, ev.frame)
	}
	a.buffered = nil
	if !a.ready {
		a.ready = true
		a.sendControl(ctx, map[string]any{"type": "ready", "replayed": a.replayed, "last_id": a.last})
	}
	a.state = stateLive
}

// send queues an event frame unless it is not newer than the last one or filtered out.
func (a *connActor) send(ctx actor.Context, h voluntree.EventHeader, frame []byte) {
	if a.last != "" && redisstore.CompareIDs(h.ID, a.last) <= 0 {
		return
	}
	a.last = h.ID
	if !a.opts.Wants(h) {
		return
	}
	a.push(ctx, frame)
}

func (a *connActor) sendControl(ctx actor.Context, v map[string]any) {
	b, _ := json.Marshal(v)
	a.push(ctx, b)
}

// replayStall is how long a frame of the replay may wait for room in the send buffer. A
// replay (pages of up to 500 events, then the live events buffered meanwhile) arrives as a
// burst that a reading client drains at its connection's speed: only a client that takes no
// frame for this long is slow.
const replayStall = 10 * time.Second

// replayBudget bounds a whole replay: a client that reads so slowly that its replay takes
// longer is dropped (and can reconnect with since). Meanwhile live events are buffered, at
// most 4×SendBuffer of them; past that they are read again from the log.
const replayBudget = time.Minute

func (a *connActor) push(ctx actor.Context, frame []byte) {
	if a.state != stateLive {
		a.pushReplay(ctx, frame)
		return
	}
	select {
	case <-a.sub.done:
	case a.sub.frames <- frame:
	default:
		a.dropSlow(ctx)
	}
}

// pushReplay queues a frame of the replay, waiting up to replayStall for room. It blocks
// this connection's actor only: the hub keeps forwarding to its mailbox, and the live events
// it buffers meanwhile stay bounded by 4×SendBuffer.
func (a *connActor) pushReplay(ctx actor.Context, frame []byte) {
	select {
	case <-a.sub.done:
		return
	case a.sub.frames <- frame:
		return
	default:
	}
	wait := min(replayStall, time.Until(a.replayUntil))
	if wait <= 0 {
		a.dropSlow(ctx)
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-a.sub.done:
	case a.sub.frames <- frame:
	case <-t.C:
		a.dropSlow(ctx)
	}
}

func (a *connActor) dropSlow(ctx actor.Context) {
	a.hub.metrics.WSDropped.WithLabelValues(DropSlow).Inc()
	a.hub.log.Info("dropping slow websocket client", "action", "drop", "buffer", cap(a.sub.frames))
	a.sub.drop(DropSlow)
	ctx.Stop(ctx.Self())
}

func encodeEvent(ev voluntree.Event) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	return b, nil
}

func validStreamID(id string) bool {
	ms, seq, ok := cutDash(id)
	return ok && allDigits(ms) && allDigits(seq)
}

func cutDash(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "0", true // "1732262400000" means 1732262400000-0
}

func allDigits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
