package mail

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/internal/streamworker"
	"github.com/voluntree/voluntree/redisstore"
)

// WorkerStats counts what a Worker did since it was made.
type WorkerStats struct {
	Sent    uint64 // emails sent and acknowledged
	Retried uint64 // temporary failures left for a later attempt
	Dead    uint64 // emails moved to the dead stream
}

// Worker sends the mail queue's emails: the stream worker engine (internal/streamworker:
// read, retry with backoff, claim, dead-letter) with a handler that decodes each email and
// sends it through the Sender. See the package doc for the delivery guarantee.
type Worker struct {
	w      *streamworker.Worker
	sender Sender
	log    *slog.Logger
}

// NewWorker returns a worker; Run runs it. A configuration Validate rejects makes Run fail.
func NewWorker(rdb redis.UniversalClient, keys redisstore.Keys, sender Sender, cfg WorkerConfig, log *slog.Logger) *Worker {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mw := &Worker{sender: sender, log: log.With("component", "mail", "consumer", cfg.Consumer)}
	mw.w = streamworker.New(rdb, streamworker.Config{
		Name: "mail", Stream: keys.MailQueue(), Group: keys.MailGroup(), Consumer: cfg.Consumer,
		DeadStream: keys.MailDead(), DeadMaxLen: DeadMaxLen, DeleteOnAck: true,
		Block: cfg.Block, ClaimIdle: cfg.ClaimIdle, MaxAttempts: cfg.MaxAttempts,
		BaseDelay: cfg.BaseDelay, MaxDelay: cfg.MaxDelay, HandleTimeout: cfg.SendTimeout,
	}, mw, cfg.Metrics, log)
	return mw
}

// Engine returns the stream worker that runs this worker's loop (actors.StreamReader runs it
// as a supervised actor).
func (w *Worker) Engine() *streamworker.Worker { return w.w }

// Stats returns the worker's counters.
func (w *Worker) Stats() WorkerStats {
	s := w.w.Stats()
	return WorkerStats{Sent: s.Done, Retried: s.Retried, Dead: s.Dead}
}

// Run sends emails until ctx ends, then returns nil once the email in hand is dealt with
// (a Send cut short stays pending and is retried later). It fails only for an invalid
// configuration. Call it once per Worker.
func (w *Worker) Run(ctx context.Context) error { return w.w.Run(ctx) }

// Handle sends the email of one queue entry.
func (w *Worker) Handle(ctx context.Context, x streamworker.Entry) error {
	e, err := decode(x.Values)
	if err != nil {
		return streamworker.Permanent(fmt.Errorf("undecodable entry: %w", err))
	}
	if err := w.sender.Send(ctx, e); err != nil {
		return err // Permanent is streamworker's: a permanent failure is dead-lettered at once
	}
	w.log.Info("email sent", "action", "send", "entry", x.ID, "email", e.ID, "deliveries", x.Deliveries)
	return nil
}
