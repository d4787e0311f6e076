package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/internal/streamworker"
	"github.com/voluntree/voluntree/redisstore"
)

// Queue and list sizes.
const (
	QueueMaxLen = 100000 // the mail stream is trimmed to about this many entries
	DeadMaxLen  = 10000  // the dead stream, likewise
	OutboxMax   = 100    // the outbox list keeps the newest this many
)

// Queue is the producers' side of the mail stream.
type Queue struct {
	rdb  redis.UniversalClient
	keys redisstore.Keys
}

// NewQueue returns the queue under keys.
func NewQueue(rdb redis.UniversalClient, keys redisstore.Keys) *Queue {
	return &Queue{rdb: rdb, keys: keys}
}

// Enqueue validates e and appends it to the mail stream, creating the stream and its
// consumer group when missing. It assigns an ID (random hex) when e has none and a
// CreatedAt when zero, and returns the ID. When it returns nil the email is as durable as
// Redis's persistence makes it.
func (q *Queue) Enqueue(ctx context.Context, e Email) (string, error) {
	if e.ID == "" {
		e.ID = newID()
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now().UTC()
	}
	if err := e.Validate(); err != nil {
		return "", err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("mail: encode email %s: %w", e.ID, err)
	}
	pipe := q.rdb.Pipeline()
	group := pipe.XGroupCreateMkStream(ctx, q.keys.MailQueue(), q.keys.MailGroup(), "0")
	add := pipe.XAdd(ctx, &redis.XAddArgs{
		Stream: q.keys.MailQueue(), MaxLen: QueueMaxLen, Approx: true, Values: []any{"m", b},
	})
	_, _ = pipe.Exec(ctx) // each command's error is checked below
	if err := add.Err(); err != nil {
		if gerr := group.Err(); gerr != nil && !streamworker.IsBusyGroup(gerr) {
			err = fmt.Errorf("%w (creating the consumer group: %w)", err, gerr)
		}
		return "", fmt.Errorf("mail: enqueue %s: %w", e.ID, err)
	}
	// The email is queued. Had creating the group failed, the worker creates it when it
	// starts (from the stream's beginning) or when a read finds it missing; failing here
	// would make the caller enqueue the email twice.
	return e.ID, nil
}

// Outbox returns up to limit emails the OutboxSender "sent", newest first (limit ≤ 0 or
// past OutboxMax means OutboxMax).
func (q *Queue) Outbox(ctx context.Context, limit int) ([]Email, error) {
	if limit <= 0 || limit > OutboxMax {
		limit = OutboxMax
	}
	raws, err := q.rdb.LRange(ctx, q.keys.MailOutbox(), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("mail: read outbox: %w", err)
	}
	out := make([]Email, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal([]byte(raw), &out[i]); err != nil {
			return nil, fmt.Errorf("mail: decode outbox email: %w", err)
		}
	}
	return out, nil
}

// DeadEmail is one entry of the dead stream.
type DeadEmail struct {
	EntryID    string    // the mail stream entry it was
	Email      Email     // zero when the entry could not be decoded
	Raw        string    // the entry's email JSON as queued
	Error      string    // why it was given up
	Deliveries int64     // times it was delivered to a sender
	At         time.Time // when it was given up
}

// Dead returns up to limit dead emails, newest first.
func (q *Queue) Dead(ctx context.Context, limit int) ([]DeadEmail, error) {
	if limit <= 0 {
		limit = 100
	}
	res, err := q.rdb.XRevRangeN(ctx, q.keys.MailDead(), "+", "-", int64(limit)).Result()
	if err != nil {
		return nil, fmt.Errorf("mail: read dead emails: %w", err)
	}
	out := make([]DeadEmail, len(res))
	for i, x := range res {
		str := func(k string) string { s, _ := x.Values[k].(string); return s }
		d := DeadEmail{EntryID: str("entry"), Raw: str("m"), Error: str("error")}
		d.Deliveries, _ = strconv.ParseInt(str("deliveries"), 10, 64)
		d.At, _ = time.Parse(time.RFC3339Nano, str("at"))
		_ = json.Unmarshal([]byte(d.Raw), &d.Email) // zero when undecodable
		out[i] = d
	}
	return out, nil
}

var errNoMessageField = errors.New(`entry has no email field "m"`)

// decode returns the email of a stream entry, or why it can never be sent.
func decode(values map[string]any) (Email, error) {
	var e Email
	raw, ok := values["m"].(string)
	if !ok {
		return e, errNoMessageField
	}
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return e, fmt.Errorf("email JSON: %w", err)
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	if e.ID == "" {
		return e, errors.New("email has no id")
	}
	return e, nil
}
