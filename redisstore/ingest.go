package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
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
	if err != nil {
		return nil, fmt.Errorf("redisstore: enqueue: %w", err)
	}
	err = s.retryNoScript(ctx, enqueueScript, cmds, func(i int) ([]string, []any) {
		return []string{s.keys.IngestSeen(msgs[i].ID), s.keys.Ingest()}, []any{ttl, maxLen, args[i]}
	})
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

// Entry is one ingest stream entry as a consumer sees it.
type Entry struct {
	ID         string            // stream entry id
	Message    voluntree.Message // valid when Err is nil
	Raw        map[string]any    // the entry's fields as stored (kept for the dead-letter stream)
	Err        error             // decoding failed: the entry can never succeed
	Deliveries int64             // times delivered, this one included (0 when unknown)
}

func decodeEntry(x redis.XMessage) Entry {
	e := Entry{ID: x.ID, Raw: x.Values}
	raw, ok := x.Values["m"].(string)
	if !ok {
		e.Err = errors.New("entry has no message field \"m\"")
		return e
	}
	e.Message, e.Err = DecodeMessage([]byte(raw))
	return e
}

// EnsureGroup creates the ingest consumer group (and the stream) if missing. A new group
// starts at the stream's beginning, so messages accepted before any consumer ran are read.
func (s *Store) EnsureGroup(ctx context.Context) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.keys.Ingest(), s.keys.IngestGroup(), "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("redisstore: create consumer group: %w", err)
	}
	return nil
}

// ReadNew reads up to count entries never delivered to any consumer, waiting up to block
// for the first one. Keep block short: go-redis does not interrupt a blocking read when ctx
// ends. It returns no entries and no error when block passed with nothing new.
func (s *Store) ReadNew(ctx context.Context, consumer string, count int, block time.Duration) ([]Entry, error) {
	entries, err := s.readGroup(ctx, consumer, ">", count, block)
	for i := range entries {
		entries[i].Deliveries = 1 // never delivered before: no need to ask XPENDING
	}
	return entries, err
}

// ReadOwnPending re-reads entries delivered to consumer and not acknowledged (after a restart
// under the same consumer name), oldest first, with ids greater than after ("0" to start).
func (s *Store) ReadOwnPending(ctx context.Context, consumer, after string, count int) ([]Entry, error) {
	entries, err := s.readGroup(ctx, consumer, after, count, -1)
	if err != nil {
		return nil, err
	}
	return entries, s.fillDeliveries(ctx, consumer, entries)
}

func (s *Store) readGroup(ctx context.Context, consumer, from string, count int, block time.Duration) ([]Entry, error) {
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group:    s.keys.IngestGroup(),
		Consumer: consumer,
		Streams:  []string{s.keys.Ingest(), from},
		Count:    int64(count),
		Block:    block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: read ingest: %w", err)
	}
	var out []Entry
	for _, st := range res {
		for _, x := range st.Messages {
			if x.Values == nil { // pending entry trimmed away: nothing left to process
				_ = s.rdb.XAck(ctx, s.keys.Ingest(), s.keys.IngestGroup(), x.ID).Err()
				continue
			}
			out = append(out, decodeEntry(x))
		}
	}
	return out, nil
}

// Claim takes over up to count entries that have been pending for at least minIdle under any
// consumer (a dead one, or this one after a failure), with their delivery counts.
func (s *Store) Claim(ctx context.Context, consumer string, minIdle time.Duration, count int) ([]Entry, error) {
	msgs, _, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream:   s.keys.Ingest(),
		Group:    s.keys.IngestGroup(),
		Consumer: consumer,
		MinIdle:  minIdle,
		Start:    "0",
		Count:    int64(count),
	}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: claim: %w", err)
	}
	out := make([]Entry, 0, len(msgs))
	for _, x := range msgs {
		if x.Values == nil {
			continue
		}
		out = append(out, decodeEntry(x))
	}
	return out, s.fillDeliveries(ctx, consumer, out)
}

// Touch resets the idle time of entries pending under consumer without counting a delivery
// (XCLAIM ... JUSTID), so that entries still being processed are not reclaimed.
func (s *Store) Touch(ctx context.Context, consumer string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
		Stream: s.keys.Ingest(), Group: s.keys.IngestGroup(), Consumer: consumer, MinIdle: 0, Messages: ids,
	}).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redisstore: touch pending: %w", err)
	}
	return nil
}

// fillDeliveries sets each entry's delivery count from the consumer's pending list.
func (s *Store) fillDeliveries(ctx context.Context, consumer string, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	lo, hi := entries[0].ID, entries[0].ID
	for _, e := range entries[1:] {
		if CompareIDs(e.ID, lo) < 0 {
			lo = e.ID
		}
		if CompareIDs(e.ID, hi) > 0 {
			hi = e.ID
		}
	}
	pend, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: s.keys.Ingest(), Group: s.keys.IngestGroup(), Consumer: consumer,
		Start: lo, End: hi, Count: int64(len(entries)) + 1024, Idle: -1,
	}).Result()
	if err != nil {
		return fmt.Errorf("redisstore: pending deliveries: %w", err)
	}
	counts := make(map[string]int64, len(pend))
	for _, p := range pend {
		counts[p.ID] = p.RetryCount
	}
	for i := range entries {
		entries[i].Deliveries = counts[entries[i].ID]
	}
	return nil
}

// Ack acknowledges processed entries and forgets their recorded errors.
func (s *Store) Ack(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	pipe.XAck(ctx, s.keys.Ingest(), s.keys.IngestGroup(), ids...)
	pipe.HDel(ctx, s.keys.IngestErrors(), ids...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redisstore: ack: %w", err)
	}
	return nil
}

// RecordFailure remembers why processing an entry failed; the entry stays pending and is
// retried after it has been idle long enough, and the error goes with it to the dead letters.
func (s *Store) RecordFailure(ctx context.Context, id string, cause error) error {
	if err := s.rdb.HSet(ctx, s.keys.IngestErrors(), id, cause.Error()).Err(); err != nil {
		return fmt.Errorf("redisstore: record failure: %w", err)
	}
	return nil
}

// DeadLetter moves an entry to the dead-letter stream with its error and acknowledges it,
// atomically.
func (s *Store) DeadLetter(ctx context.Context, e Entry, cause error) error {
	reason := ""
	if cause != nil {
		reason = cause.Error()
	}
	if prev, err := s.rdb.HGet(ctx, s.keys.IngestErrors(), e.ID).Result(); err == nil && reason == "" {
		reason = prev
	}
	if reason == "" { // its consumers died before they could record anything
		reason = fmt.Sprintf("delivered %d times without success (consumers died before recording an error)", e.Deliveries)
	}
	raw, _ := e.Raw["m"].(string)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.DeadLetter(), Values: []any{
			"entry", e.ID, "m", raw, "error", reason, "deliveries", e.Deliveries,
			"at", time.Now().UTC().Format(time.RFC3339Nano),
		}})
		p.XAck(ctx, s.keys.Ingest(), s.keys.IngestGroup(), e.ID)
		p.HDel(ctx, s.keys.IngestErrors(), e.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: dead-letter %s: %w", e.ID, err)
	}
	return nil
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
func CompareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	switch {
	case am != bm:
		if am < bm {
			return -1
		}
		return 1
	case as != bs:
		if as < bs {
			return -1
		}
		return 1
	}
	return 0
}

func splitID(id string) (ms, seq uint64) {
	a, b, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(a, 10, 64)
	seq, _ = strconv.ParseUint(b, 10, 64)
	return ms, seq
}
