package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/internal/retry"
	"github.com/voluntree/voluntree/redisstore"
)

// bookkeepingTimeout bounds the Redis writes after a Send, which run even when Run's
// context has ended (an email sent must be acknowledged).
const bookkeepingTimeout = 5 * time.Second

// WorkerStats counts what a Worker did since it was made.
type WorkerStats struct {
	Sent    uint64 // emails sent and acknowledged
	Retried uint64 // temporary failures left for a later attempt
	Dead    uint64 // emails moved to the dead stream
}

// Worker is the sender loop (the asynq "janitor" shape): it reads new emails with the
// consumer group, retries its own pending ones with exponential backoff (after a restart
// too), claims emails left idle past ClaimIdle by a dead sender, and sends each through the
// Sender. Attempts are counted by the stream's delivery count. See the package doc for the
// delivery guarantee.
type Worker struct {
	rdb    redis.UniversalClient
	keys   redisstore.Keys
	sender Sender
	cfg    WorkerConfig
	cfgErr error
	log    *slog.Logger

	sent, retried, dead atomic.Uint64

	nextRetry time.Time // when an own pending email is next due; owned by Run
}

// NewWorker returns a worker; Run runs it. A configuration Validate rejects makes Run fail.
func NewWorker(rdb redis.UniversalClient, keys redisstore.Keys, sender Sender, cfg WorkerConfig, log *slog.Logger) *Worker {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{
		rdb: rdb, keys: keys, sender: sender, cfg: cfg, cfgErr: cfg.Validate(),
		log: log.With("component", "mail", "consumer", cfg.Consumer),
	}
}

// Stats returns the worker's counters.
func (w *Worker) Stats() WorkerStats {
	return WorkerStats{Sent: w.sent.Load(), Retried: w.retried.Load(), Dead: w.dead.Load()}
}

// Run sends emails until ctx ends, then returns nil once the email in hand is dealt with
// (a Send cut short stays pending and is retried later). It fails only for an invalid
// configuration. Call it once per Worker.
func (w *Worker) Run(ctx context.Context) error {
	if w.cfgErr != nil {
		return w.cfgErr
	}
	bo := retry.New()
	for ctx.Err() == nil {
		if err := w.ensureGroup(ctx); err != nil {
			w.log.Error("mail consumer group", "action", "start", "error", err)
			bo.Wait(ctx)
			continue
		}
		break
	}
	claimEvery := min(w.cfg.ClaimIdle/2, 5*time.Second)
	var nextClaim time.Time
	w.nextRetry = time.Time{} // own pending emails from a previous run: look now
	for ctx.Err() == nil {
		if !time.Now().Before(nextClaim) {
			if err := w.claimAbandoned(ctx); err != nil && ctx.Err() == nil {
				w.log.Error("claim idle emails", "action", "claim", "error", err)
			}
			nextClaim = time.Now().Add(claimEvery)
		}
		if !time.Now().Before(w.nextRetry) {
			w.nextRetry = time.Now().Add(w.cfg.MaxDelay) // a rescan now and then, whatever happens
			if err := w.retryOwn(ctx); err != nil && ctx.Err() == nil {
				w.log.Error("retry pending emails", "action", "retry", "error", err)
				w.retryIn(w.cfg.BaseDelay)
			}
		}
		block := min(w.cfg.Block, time.Until(nextClaim), time.Until(w.nextRetry))
		x, ok, err := w.readNew(ctx, max(block, time.Millisecond)) // BLOCK 0 would wait forever
		if err != nil {
			if ctx.Err() == nil {
				w.log.Error("read mail queue", "action", "read", "error", err)
				if isNoGroup(err) { // the stream was deleted: make it again
					_ = w.ensureGroup(ctx)
				}
				bo.Wait(ctx)
			}
			continue
		}
		bo.Reset()
		if ok {
			w.process(ctx, x, 1)
		}
	}
	return nil
}

func (w *Worker) ensureGroup(ctx context.Context) error {
	err := w.rdb.XGroupCreateMkStream(ctx, w.keys.MailQueue(), w.keys.MailGroup(), "0").Err()
	if err != nil && !isBusyGroup(err) {
		return fmt.Errorf("mail: create consumer group: %w", err)
	}
	return nil
}

// readNew reads one email never delivered before, waiting up to block.
func (w *Worker) readNew(ctx context.Context, block time.Duration) (redis.XMessage, bool, error) {
	res, err := w.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: w.keys.MailGroup(), Consumer: w.cfg.Consumer,
		Streams: []string{w.keys.MailQueue(), ">"}, Count: 1, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return redis.XMessage{}, false, nil
	}
	if err != nil {
		return redis.XMessage{}, false, fmt.Errorf("mail: read queue: %w", err)
	}
	for _, st := range res {
		for _, x := range st.Messages {
			return x, true, nil
		}
	}
	return redis.XMessage{}, false, nil
}

// retryOwn sends this consumer's pending emails whose backoff has passed (emails that failed
// for a while, or that a previous run of this consumer read and never acknowledged), and
// moves nextRetry to when the next one is due.
func (w *Worker) retryOwn(ctx context.Context) error {
	const page = 100
	start := "-"
	for ctx.Err() == nil {
		pend, err := w.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: w.keys.MailQueue(), Group: w.keys.MailGroup(), Consumer: w.cfg.Consumer,
			Start: start, End: "+", Count: page,
		}).Result()
		if err != nil {
			return fmt.Errorf("mail: pending emails: %w", err)
		}
		for _, p := range pend {
			wait := w.delay(p.RetryCount)
			if p.Idle < wait {
				w.retryIn(wait - p.Idle)
				continue
			}
			// MinIdle makes the claim fail if a peer (or a concurrent scan) took it meanwhile.
			msgs, err := w.rdb.XClaim(ctx, &redis.XClaimArgs{
				Stream: w.keys.MailQueue(), Group: w.keys.MailGroup(), Consumer: w.cfg.Consumer,
				MinIdle: wait, Messages: []string{p.ID},
			}).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return fmt.Errorf("mail: claim pending email: %w", err)
			}
			for _, x := range msgs { // none when acknowledged or deleted meanwhile
				w.process(ctx, x, p.RetryCount+1)
			}
		}
		if len(pend) < page {
			return nil
		}
		start = "(" + pend[len(pend)-1].ID
	}
	return nil
}

// claimAbandoned takes over emails pending for ClaimIdle under any consumer (a sender that
// died, or this one when its backoff outgrew ClaimIdle) and sends them, one at a time; at
// most 100 per call, so new emails keep flowing.
func (w *Worker) claimAbandoned(ctx context.Context) error {
	start := "0-0"
	for range 100 {
		if ctx.Err() != nil {
			return nil
		}
		msgs, next, err := w.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: w.keys.MailQueue(), Group: w.keys.MailGroup(), Consumer: w.cfg.Consumer,
			MinIdle: w.cfg.ClaimIdle, Start: start, Count: 1,
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("mail: claim idle emails: %w", err)
		}
		for _, x := range msgs {
			n, err := w.deliveries(ctx, x.ID)
			if err != nil {
				return err
			}
			w.log.Info("claimed an idle email", "action", "claim", "entry", x.ID, "deliveries", n)
			w.process(ctx, x, n)
		}
		if next == "" || next == "0-0" {
			return nil
		}
		start = next
	}
	return nil
}

// deliveries returns how often the entry id, pending under this consumer, was delivered.
func (w *Worker) deliveries(ctx context.Context, id string) (int64, error) {
	pend, err := w.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: w.keys.MailQueue(), Group: w.keys.MailGroup(), Consumer: w.cfg.Consumer,
		Start: id, End: id, Count: 1,
	}).Result()
	if err != nil {
		return 0, fmt.Errorf("mail: pending deliveries: %w", err)
	}
	if len(pend) == 0 {
		return 1, nil
	}
	return pend[0].RetryCount, nil
}

// process sends the email of entry x, on its deliveries-th delivery, and records the
// outcome: acknowledged, left pending for a retry, or dead.
func (w *Worker) process(ctx context.Context, x redis.XMessage, deliveries int64) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if x.Values == nil { // deleted while pending: nothing left to send
		w.ack(bctx, x.ID)
		return
	}
	e, err := decode(x)
	if err != nil {
		w.deadLetter(bctx, x, deliveries, fmt.Errorf("undecodable entry: %w", err))
		return
	}
	log := w.log.With("entry", x.ID, "email", e.ID, "deliveries", deliveries)
	if deliveries > int64(w.cfg.MaxAttempts) { // its senders kept stopping mid-send
		w.deadLetter(bctx, x, deliveries, fmt.Errorf("delivered %d times without a result (max attempts %d)", deliveries, w.cfg.MaxAttempts))
		return
	}
	sctx, scancel := context.WithTimeout(ctx, w.cfg.SendTimeout)
	err = w.sender.Send(sctx, e)
	scancel()
	switch {
	case err == nil:
		if w.ack(bctx, x.ID) {
			w.sent.Add(1)
			log.Info("email sent", "action", "send")
		}
	case ctx.Err() != nil:
		// Stopping: the email stays pending and is retried after the restart.
		log.Info("send interrupted by shutdown", "action", "send", "error", err)
	case IsPermanent(err):
		w.deadLetter(bctx, x, deliveries, err)
	case deliveries >= int64(w.cfg.MaxAttempts):
		w.deadLetter(bctx, x, deliveries, fmt.Errorf("gave up after %d attempts: %w", deliveries, err))
	default:
		wait := w.delay(deliveries)
		w.retried.Add(1)
		w.retryIn(wait)
		log.Warn("send failed, will retry", "action", "send", "retry_in", wait, "error", err)
	}
}

// delay is the wait after the n-th failed delivery: BaseDelay doubling, up to MaxDelay.
func (w *Worker) delay(n int64) time.Duration {
	d := w.cfg.BaseDelay
	for i := int64(1); i < n && d < w.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, w.cfg.MaxDelay)
}

// retryIn brings the next own-pending scan forward to d from now.
func (w *Worker) retryIn(d time.Duration) {
	if at := time.Now().Add(d); at.Before(w.nextRetry) {
		w.nextRetry = at
	}
}

// ack acknowledges a sent email and deletes it from the stream (keeping it short).
func (w *Worker) ack(ctx context.Context, id string) bool {
	_, err := w.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, w.keys.MailQueue(), w.keys.MailGroup(), id)
		p.XDel(ctx, w.keys.MailQueue(), id)
		return nil
	})
	if err != nil {
		// It stays pending: the retry scan sends it again (at least once).
		w.log.Error("acknowledge email", "action", "ack", "entry", id, "error", err)
		return false
	}
	return true
}

// deadLetter moves entry x to the dead stream with its error and removes it from the queue,
// atomically (the keys share the {mail} hash tag).
func (w *Worker) deadLetter(ctx context.Context, x redis.XMessage, deliveries int64, cause error) {
	raw, _ := x.Values["m"].(string)
	_, err := w.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{
			Stream: w.keys.MailDead(), MaxLen: DeadMaxLen, Approx: true,
			Values: []any{
				"entry", x.ID, "m", raw, "error", cause.Error(), "deliveries", deliveries,
				"at", time.Now().UTC().Format(time.RFC3339Nano),
			},
		})
		p.XAck(ctx, w.keys.MailQueue(), w.keys.MailGroup(), x.ID)
		p.XDel(ctx, w.keys.MailQueue(), x.ID)
		return nil
	})
	if err != nil {
		w.log.Error("dead-letter email", "action", "dead_letter", "entry", x.ID, "error", err)
		return
	}
	w.dead.Add(1)
	w.log.Warn("email given up", "action", "dead_letter", "entry", x.ID, "deliveries", deliveries, "error", cause)
}
