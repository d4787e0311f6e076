package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// Runner is a blocking reader loop: a stream worker (internal/streamworker, mail.Worker) or
// the ingest consumer's. Run returns nil once ctx has ended; an error or a panic is a failure
// the reader's supervisor answers with a restart. Run is called again after a restart.
type Runner interface {
	Run(ctx context.Context) error
}

// StreamReader is one reader actor per stream and consumer, supervised: the design card's
// "supervised actors consume from Redis Lists/Streams". The actor owns a goroutine that runs
// the Runner's blocking reads — never Receive, which stays free for the system's messages.
// When Run fails or panics, the goroutine tells the actor, which fails in turn: the guardian's
// strategy (restart, up to 10 times a minute) restarts it, and the restarted actor runs the
// loop again. Stopping the actor ends the loop after the job in hand.
type StreamReader struct {
	system   *actor.ActorSystem
	pid      *actor.PID
	restarts *atomic.Int64
}

// readerFailed tells the reader actor its loop failed.
type readerFailed struct{ err error }

type streamReaderActor struct {
	name     string
	runner   Runner
	log      *slog.Logger
	restarts *atomic.Int64

	cancel context.CancelFunc
	done   chan struct{}
}

// StartStreamReader spawns the reader actor named name (one per stream and consumer) on
// system's root and starts its loop.
func StartStreamReader(system *actor.ActorSystem, name string, r Runner, logger *slog.Logger) (*StreamReader, error) {
	restarts := new(atomic.Int64)
	props := actor.PropsFromProducer(func() actor.Actor {
		return &streamReaderActor{name: name, runner: r, restarts: restarts,
			log: logger.With("component", "stream_reader", "reader", name)}
	}, actor.WithGuardian(restartStrategy()))
	pid, err := system.Root.SpawnNamed(props, "reader/"+name)
	if err != nil {
		return nil, fmt.Errorf("actors: spawn reader %s: %w", name, err)
	}
	return &StreamReader{system: system, pid: pid, restarts: restarts}, nil
}

// Restarts returns how often the supervisor restarted the reader.
func (s *StreamReader) Restarts() int64 { return s.restarts.Load() }

// Stop ends the loop once the job in hand is dealt with, bounded by ctx.
func (s *StreamReader) Stop(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.system.Root.StopFuture(s.pid).Wait() }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, actor.ErrTimeout) {
			return fmt.Errorf("actors: stop reader: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *streamReaderActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx.ActorSystem(), ctx.Self())
	case readerFailed:
		a.log.Error("reader loop failed", "action", "read", "error", m.err)
		panic(fmt.Errorf("reader %s: %w", a.name, m.err)) // the supervisor restarts us
	case *actor.Restarting:
		a.restarts.Add(1)
		a.stop()
	case *actor.Stopping:
		a.stop()
	}
}

// start runs the loop in a goroutine of the actor's own; its failure comes back as a message.
func (a *streamReaderActor) start(system *actor.ActorSystem, self *actor.PID) {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan struct{})
	go func() {
		defer close(a.done)
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return a.runner.Run(ctx)
		}()
		if ctx.Err() != nil {
			return // stopped or restarting: not a failure
		}
		if err == nil {
			err = errors.New("the loop returned before it was stopped")
		}
		system.Root.Send(self, readerFailed{err: err})
	}()
}

// stop cancels the loop and waits for it to finish the job in hand.
func (a *streamReaderActor) stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	<-a.done
	a.cancel = nil
}
