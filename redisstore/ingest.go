package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/internal/streamworker"
)

// enqueueScript appends a message to the ingest stream unless its id was accepted within the
// dedupe TTL. Both steps are one atomic script, so a failure can never leave an id marked as
// seen without its entry (which would drop Facebook's retry).
//
// KEYS[1] -> {ingest}:seen:<id>
// KEYS[2] -> {ingest} stream
// ARGV[1] -> dedupe TTL (seconds)
// ARGV[2] -> approximate max length of the stream
// ARGV[3] -> message JSON
// Returns the new entry id, or false for a duplicate.
var enqueueScript = newScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return false
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'm', ARGV[3])
`)

// Enqueued is the outcome of one message of Enqueue.
type Enqueued struct {
	ID  string // the stream entry id; "" for a duplicate or a refused message
	Err error  // EINVALID: this message cannot be stored for its own content (refused alone)
}

// Enqueue appends msgs to the ingest stream in one round trip, skipping ids accepted before
// (within the dedupe TTL). It returns each message's outcome; its error is for the store
// failing (Redis down), never for one message. When it returns no error, every message with
// an id is durable as far as Redis's persistence is configured (the embedded default fsyncs
// every write before answering).
func (s *Store) Enqueue(ctx context.Context, msgs []voluntree.Message) ([]Enqueued, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	ttl := strconv.FormatInt(int64(s.cfg.DedupeTTL/time.Second), 10)
	maxLen := strconv.FormatInt(s.cfg.IngestMaxLen, 10)
	out := make([]Enqueued, len(msgs))
	args := make([][]byte, len(msgs))
	for i, m := range msgs {
		b, err := EncodeMessage(m)
		if err != nil {
			out[i].Err = err
			continue
		}
		args[i] = b
	}
	cmds := make([]*redis.Cmd, len(msgs))
	err := s.in.do(ctx, func(pipe redis.Pipeliner) {
		for i, m := range msgs {
			if args[i] != nil {
				cmds[i] = enqueueScript.EvalSha(ctx, pipe, []string{s.keys.IngestSeen(m.ID), s.keys.Ingest()}, ttl, maxLen, args[i])
			}
		}
	})
	// A failed WAIT (Config.WaitReplicas) is the answer unless the appends are run again
	// below (a Redis that lost its scripts): that run waits itself, and covers these writes too.
	notReplicated := errors.Is(err, ErrNotReplicated)
	if err != nil && !notReplicated {
		return nil, fmt.Errorf("redisstore: enqueue: %w", err)
	}
	again := slices.ContainsFunc(cmds, func(c *redis.Cmd) bool { return c != nil && isNoScript(c.Err()) })
	err = s.retryNoScript(ctx, enqueueScript, cmds, func(i int) ([]string, []any) {
		return []string{s.keys.IngestSeen(msgs[i].ID), s.keys.Ingest()}, []any{ttl, maxLen, args[i]}
	})
	if err == nil && notReplicated && !again {
		err = ErrNotReplicated
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: enqueue: %w", err)
	}
	for i, c := range cmds {
		if c == nil {
			continue
		}
		id, err := c.Text()
		switch {
		case errors.Is(err, redis.Nil): // a duplicate
		case err != nil:
			return nil, fmt.Errorf("redisstore: enqueue %s: %w", msgs[i].ID, err)
		default:
			out[i].ID = id
		}
	}
	return out, nil
}

// EncodeMessage is a message as the ingest stream stores it (JSON). It fails, with EINVALID,
// only for a message that cannot be represented (a time past year 9999, say), which
// voluntree.Message.Validate refuses first.
func EncodeMessage(m voluntree.Message) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, voluntree.Errorf(voluntree.EINVALID, "message %.64q cannot be stored: %v", m.ID, err)
	}
	return b, nil
}

// DecodeMessage reads a message as EncodeMessage wrote it and validates it.
func DecodeMessage(b []byte) (voluntree.Message, error) {
	var m voluntree.Message
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("message JSON: %w", err)
	}
	return m, m.Validate()
}

// DecodeEntry reads the message of an ingest stream entry's fields.
func DecodeEntry(values map[string]any) (voluntree.Message, error) {
	raw, ok := values["m"].(string)
	if !ok {
		return voluntree.Message{}, errors.New("entry has no message field \"m\"")
	}
	return DecodeMessage([]byte(raw))
}

// DeadLetters returns up to count dead-lettered entries, oldest first: each has the original
// entry id ("entry"), message ("m"), "error" and "deliveries".
func (s *Store) DeadLetters(ctx context.Context, count int64) ([]map[string]any, error) {
	res, err := s.rdb.XRangeN(ctx, s.keys.DeadLetter(), "-", "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: dead letters: %w", err)
	}
	out := make([]map[string]any, len(res))
	for i, x := range res {
		out[i] = x.Values
	}
	return out, nil
}

// IngestStats is what the metrics sampler reports about the ingest stream.
type IngestStats struct {
	Length     int64 // entries in the stream
	Pending    int64 // delivered and not acknowledged
	Lag        int64 // never delivered to the group (-1 when Redis cannot tell)
	DeadLength int64 // entries in the dead-letter stream
	Rejected   int64 // entries in the rejected-events stream
}

// Stats reads the ingest stream's length, the group's pending count and lag, and the lengths
// of the dead-letter and rejected-events streams.
func (s *Store) Stats(ctx context.Context) (IngestStats, error) {
	var st IngestStats
	pipe := s.rdb.Pipeline()
	xlen := pipe.XLen(ctx, s.keys.Ingest())
	dead := pipe.XLen(ctx, s.keys.DeadLetter())
	rejected := pipe.XLen(ctx, s.keys.IngestRejected())
	groups := pipe.XInfoGroups(ctx, s.keys.Ingest())
	if _, err := pipe.Exec(ctx); err != nil && !isNoStream(err) {
		return st, fmt.Errorf("redisstore: stats: %w", err)
	}
	st.Length, st.DeadLength, st.Rejected, st.Lag = xlen.Val(), dead.Val(), rejected.Val(), -1
	for _, g := range groups.Val() {
		if g.Name == s.keys.IngestGroup() {
			st.Pending, st.Lag = g.Pending, g.Lag
		}
	}
	return st, nil
}

func isNoStream(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// CompareIDs orders two stream ids ("ms-seq"): -1, 0 or 1.
func CompareIDs(a, b string) int { return streamworker.CompareIDs(a, b) }
