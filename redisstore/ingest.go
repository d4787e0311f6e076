package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
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
	err := s.in.doFenced(ctx, s.fencesOf(msgs), func(pipe redis.Pipeliner) {
		for i, m := range msgs {
			if args[i] != nil {
				cmds[i] = enqueueScript.EvalSha(ctx, pipe, s.enqueueKeys(m), ttl, maxLen, args[i])
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
		return s.enqueueKeys(msgs[i]), []any{ttl, maxLen, args[i]}
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

// enqueueKeys are the enqueue script's keys for m: its page's shard's dedupe key and stream.
func (s *Store) enqueueKeys(m voluntree.Message) []string {
	shard := s.ShardOf(m.PageID)
	return []string{s.keys.IngestSeen(shard, m.ID), s.keys.IngestShard(shard)}
}

// fencesOf returns the fences of the shards msgs go to (nil unless replicas are waited for).
func (s *Store) fencesOf(msgs []voluntree.Message) []string {
	if s.cfg.WaitReplicas <= 0 {
		return nil
	}
	out := make([]string, 0, 1)
	for _, m := range msgs {
		if f := s.keys.IngestShardFence(s.ShardOf(m.PageID)); !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// IngestShards is the number of ingest stream shards (Config.IngestShards).
func (s *Store) IngestShards() int { return s.cfg.IngestShards }

// ShardOf is the ingest shard of a page's messages: FNV-1a of the page id, modulo the shards.
// A page stays on one shard, so its messages (and each of its conversations) keep their order.
func (s *Store) ShardOf(pageID string) int {
	if s.cfg.IngestShards <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(pageID))
	return int(h.Sum32() % uint32(s.cfg.IngestShards))
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

// DeadLetters returns up to count dead-lettered entries, oldest first in each shard (shard 0
// first): each has the original entry id ("entry"), message ("m"), "error" and "deliveries".
func (s *Store) DeadLetters(ctx context.Context, count int64) ([]map[string]any, error) {
	var out []map[string]any
	for shard := range s.cfg.IngestShards {
		if int64(len(out)) >= count {
			break
		}
		res, err := s.rdb.XRangeN(ctx, s.keys.IngestDead(shard), "-", "+", count-int64(len(out))).Result()
		if err != nil {
			return nil, fmt.Errorf("redisstore: dead letters: %w", err)
		}
		for _, x := range res {
			out = append(out, x.Values)
		}
	}
	return out, nil
}

// IngestStats is what the metrics sampler reports about the ingest streams (all shards).
type IngestStats struct {
	Length     int64 // entries in the streams
	Pending    int64 // delivered and not acknowledged
	Lag        int64 // never delivered to the group (-1 when Redis cannot tell for a shard)
	DeadLength int64 // entries in the dead-letter streams
	Rejected   int64 // entries in the rejected-events stream
	// MaxBacklog is the largest backlog (pending and lag) of one shard: each shard is capped
	// at Config.IngestMaxLen on its own.
	MaxBacklog int64
}

// Stats reads the ingest streams' lengths, the group's pending counts and lags, and the
// lengths of the dead-letter and rejected-events streams, in one round trip.
func (s *Store) Stats(ctx context.Context) (IngestStats, error) {
	var st IngestStats
	pipe := s.rdb.Pipeline()
	n := s.cfg.IngestShards
	xlen, dead := make([]*redis.IntCmd, n), make([]*redis.IntCmd, n)
	groups := make([]*redis.XInfoGroupsCmd, n)
	for i := range n {
		xlen[i] = pipe.XLen(ctx, s.keys.IngestShard(i))
		dead[i] = pipe.XLen(ctx, s.keys.IngestDead(i))
		groups[i] = pipe.XInfoGroups(ctx, s.keys.IngestShard(i))
	}
	rejected := pipe.XLen(ctx, s.keys.IngestRejected())
	if _, err := pipe.Exec(ctx); err != nil && !isNoStream(err) {
		return st, fmt.Errorf("redisstore: stats: %w", err)
	}
	st.Rejected = rejected.Val()
	for i := range n {
		st.Length += xlen[i].Val()
		st.DeadLength += dead[i].Val()
		pending, lag := int64(0), int64(-1)
		for _, g := range groups[i].Val() {
			if g.Name == s.keys.IngestGroup() {
				pending, lag = g.Pending, g.Lag
			}
		}
		st.Pending += pending
		switch {
		case st.Lag < 0:
		case lag < 0:
			st.Lag = -1
		default:
			st.Lag += lag
		}
		st.MaxBacklog = max(st.MaxBacklog, pending+max(lag, 0))
	}
	return st, nil
}

func isNoStream(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// CompareIDs orders two stream ids ("ms-seq"): -1, 0 or 1.
func CompareIDs(a, b string) int { return streamworker.CompareIDs(a, b) }
