package mail

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/internal/streamworker"
	"github.com/voluntree/voluntree/redisstore"
)

// Sender delivers one email. An error for which IsPermanent is true means the email can
// never be delivered (the worker gives it up); any other error is retried.
type Sender interface {
	Send(ctx context.Context, e Email) error
}

// Permanent wraps err so that IsPermanent reports true: for Senders to tell the worker not
// to retry. Permanent(nil) is nil.
func Permanent(err error) error { return streamworker.Permanent(err) }

// IsPermanent reports whether err (or an error it wraps) is a permanent delivery failure.
func IsPermanent(err error) bool { return streamworker.IsPermanent(err) }

// OutboxSender "sends" an email by keeping it in a capped Redis list (Keys.MailOutbox,
// newest first, OutboxMax long): the embedded default, where no SMTP server is configured,
// shows those emails (verification codes) on its first page. Queue.Outbox reads them.
type OutboxSender struct {
	rdb  redis.UniversalClient
	keys redisstore.Keys
}

// NewOutboxSender returns the sender writing to keys.MailOutbox().
func NewOutboxSender(rdb redis.UniversalClient, keys redisstore.Keys) *OutboxSender {
	return &OutboxSender{rdb: rdb, keys: keys}
}

// Send pushes e onto the outbox and trims it to OutboxMax, atomically.
func (s *OutboxSender) Send(ctx context.Context, e Email) error {
	b, err := json.Marshal(e)
	if err != nil {
		return Permanent(fmt.Errorf("mail: encode email %s: %w", e.ID, err))
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, s.keys.MailOutbox(), b)
		p.LTrim(ctx, s.keys.MailOutbox(), 0, OutboxMax-1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("mail: outbox %s: %w", e.ID, err)
	}
	return nil
}
