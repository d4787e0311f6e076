package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The effects outbox. A conversation grain's transition writes its new state and appends its
// effects (one entry, field "b": the protobuf EffectBatch) in one MULTI/EXEC, so an effect
// exists exactly when the state that caused it does. The effects worker reads the stream with
// the group EffectsGroup (internal/streamworker) and marks each effect it performed, so a
// redelivered batch skips what was done.

// How long the worker's marks are kept: longer than any redelivery (the dead stream takes an
// entry after a few minutes of attempts) and than Messenger's echo delay.
const effectMarkTTL = 7 * 24 * time.Hour

// saveConversationScript writes a conversation's state if its version is the one the writer
// read, appends its effects batch to its partition's outbox, and moves it between stages in
// the partition's count, in one script (atomic, one round trip). Every key is in the
// conversation's partition (one Redis Cluster slot).
// KEYS[1] -> {effects:N}:conv:C (state), KEYS[2] -> {effects:N}:conv:C:v (version),
// KEYS[3] -> {effects:N} stream, KEYS[4] -> {effects:N}:stages
// ARGV[1] -> the version read, ARGV[2] -> state, ARGV[3] -> effects batch ("" none),
// ARGV[4] -> conversation id, ARGV[5] -> from stage, ARGV[6] -> to stage ("" : not counted)
// Returns the new version, or -1 - the stored version when it is not ARGV[1].
var saveConversationScript = newScript(`
local v = tonumber(redis.call('GET', KEYS[2]) or '0')
if v ~= tonumber(ARGV[1]) then return -1 - v end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], v + 1)
if ARGV[3] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'b', ARGV[3], 'c', ARGV[4])
end
if ARGV[5] ~= ARGV[6] then
  if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[5], -1) end
  if ARGV[6] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[6], 1) end
end
return v + 1
`)

// SaveConversationEffects stores a conversation's state — if version is still the stored one
// (the version LoadConversationVersion gave), else ErrStaleConversation — appends its effects
// batch to the outbox (batch nil: none), and moves the conversation from stage from to stage
// to in the count of conversations by stage ("" on either side: not counted there), all in one
// script. It returns the new version.
//
// A conversation counted in a stage is among its signup's people (signupID, kept once, by the
// time it first did): the signup's volunteer list. That index is in the signup's slot, so it
// is written right after the script, in the same pipeline; it is idempotent, and written again
// by every save of a counted conversation, so a save whose connection broke in between is
// made good by the conversation's next one.
func (s *Store) SaveConversationEffects(ctx context.Context, conversationID, signupID string, version int64, state, batch []byte, from, to string) (int64, error) {
	part := ConversationPartition(conversationID)
	keys := []string{s.keys.Conversation(conversationID), s.keys.ConversationVersion(conversationID),
		s.keys.EffectsPartition(part), s.keys.ConversationStages(part)}
	args := []any{version, state, batch, conversationID, from, to}
	if batch == nil {
		args[2] = ""
	}
	join := signupID != "" && to != ""
	var cmd *redis.Cmd
	var people *redis.IntCmd
	if err := s.co.do(ctx, func(p redis.Pipeliner) {
		cmd = saveConversationScript.EvalSha(ctx, p, keys, args...)
		if join {
			people = p.ZAddNX(ctx, s.keys.SignupPeople(signupID), redis.Z{Score: float64(time.Now().UnixMilli()), Member: conversationID})
		}
	}); err != nil {
		return 0, fmt.Errorf("redisstore: save conversation %s: %w", conversationID, err)
	}
	cmds := []*redis.Cmd{cmd}
	if err := s.retryNoScript(ctx, saveConversationScript, cmds, func(int) ([]string, []any) { return keys, args }); err != nil {
		return 0, fmt.Errorf("redisstore: save conversation %s: %w", conversationID, err)
	}
	v, err := cmds[0].Int64()
	if err != nil {
		return 0, fmt.Errorf("redisstore: save conversation %s: %w", conversationID, err)
	}
	if v < 0 {
		return -1 - v, fmt.Errorf("save conversation %s at version %d (stored: %d): %w", conversationID, version, -1-v, ErrStaleConversation)
	}
	if people != nil && people.Err() != nil {
		return 0, fmt.Errorf("redisstore: save conversation %s: the signup's people: %w", conversationID, people.Err())
	}
	return v, nil
}

// ConversationStages returns how many conversations are in each stage (the sum over the
// partitions, one round trip).
func (s *Store) ConversationStages(ctx context.Context) (map[string]int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, ConversationPartitions)
	for i := range cmds {
		cmds[i] = pipe.HGetAll(ctx, s.keys.ConversationStages(i))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redisstore: conversation stages: %w", err)
	}
	out := make(map[string]int64)
	for _, c := range cmds {
		for k, v := range c.Val() {
			n, _ := strconv.ParseInt(v, 10, 64)
			out[k] += n
		}
	}
	return out, nil
}

// EffectsLength is the number of effect batches in the outbox's partitions.
func (s *Store) EffectsLength(ctx context.Context) (int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, ConversationPartitions)
	for i := range cmds {
		cmds[i] = pipe.XLen(ctx, s.keys.EffectsPartition(i))
	}
	if _, err := pipe.Exec(ctx); err != nil && !isNoStream(err) {
		return 0, fmt.Errorf("redisstore: effects length: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// EffectDone reports whether the effect was performed.
func (s *Store) EffectDone(ctx context.Context, effectID string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.keys.EffectDone(effectID)).Result()
	if err != nil {
		return false, fmt.Errorf("redisstore: effect done: %w", err)
	}
	return n == 1, nil
}

// MarkEffectDone records that the effect was performed, with its outcome.
func (s *Store) MarkEffectDone(ctx context.Context, effectID, outcome string) error {
	if err := s.rdb.Set(ctx, s.keys.EffectDone(effectID), outcome, effectMarkTTL).Err(); err != nil {
		return fmt.Errorf("redisstore: mark effect done: %w", err)
	}
	return nil
}

// MarkEchoed records the message_echoes webhook of a sent message by its metadata (our effect
// id). It reports whether it was the first echo of it.
func (s *Store) MarkEchoed(ctx context.Context, effectID, messageID string) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.keys.EffectEcho(effectID), messageID, effectMarkTTL).Result()
	if err != nil {
		return false, fmt.Errorf("redisstore: mark echoed: %w", err)
	}
	return ok, nil
}

// Echoed returns the message id of the effect's echo ("" when none arrived).
func (s *Store) Echoed(ctx context.Context, effectID string) (string, error) {
	mid, err := s.rdb.Get(ctx, s.keys.EffectEcho(effectID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redisstore: echoed: %w", err)
	}
	return mid, nil
}

// MarkAttempt records, before a send, that the effect's message is about to go (write-ahead:
// a crash between the send and its acknowledgement leaves this mark). It returns when the
// earlier attempt started and whether this call made the mark (false: an earlier attempt may
// have sent the message).
func (s *Store) MarkAttempt(ctx context.Context, effectID string, at time.Time) (time.Time, bool, error) {
	key := s.keys.EffectAmbiguous(effectID)
	old, err := s.rdb.SetArgs(ctx, key, at.UnixMilli(), redis.SetArgs{Mode: "NX", Get: true, TTL: effectMarkTTL}).Result()
	if errors.Is(err, redis.Nil) {
		return at, true, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("redisstore: mark attempt: %w", err)
	}
	ms, err := strconv.ParseInt(old, 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("redisstore: attempt mark %q: %w", old, err)
	}
	return time.UnixMilli(ms), false, nil
}

// RestartAttempt moves the attempt mark to at: a resend after the echo wait.
func (s *Store) RestartAttempt(ctx context.Context, effectID string, at time.Time) error {
	if err := s.rdb.Set(ctx, s.keys.EffectAmbiguous(effectID), at.UnixMilli(), effectMarkTTL).Err(); err != nil {
		return fmt.Errorf("redisstore: restart attempt: %w", err)
	}
	return nil
}

// ClearAttempt forgets an attempt that certainly did not send (a refusal, a throttle), so
// that its retry need not wait for an echo.
func (s *Store) ClearAttempt(ctx context.Context, effectID string) error {
	if err := s.rdb.Del(ctx, s.keys.EffectAmbiguous(effectID)).Err(); err != nil {
		return fmt.Errorf("redisstore: clear attempt: %w", err)
	}
	return nil
}

// MarkUndeliverable records why a conversation's person could not be reached.
func (s *Store) MarkUndeliverable(ctx context.Context, conversationID, reason string, code int, dropped bool) error {
	key := s.keys.ConversationDelivery(conversationID)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "error", reason, "code", code, "at", time.Now().UTC().Format(time.RFC3339Nano))
		if dropped {
			p.HIncrBy(ctx, key, "dropped", 1)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: mark undeliverable: %w", err)
	}
	return nil
}

// ConversationDelivery returns what is known of reaching a conversation's person.
func (s *Store) ConversationDelivery(ctx context.Context, conversationID string) (Delivery, error) {
	h, err := s.rdb.HGetAll(ctx, s.keys.ConversationDelivery(conversationID)).Result()
	if err != nil {
		return Delivery{}, fmt.Errorf("redisstore: delivery: %w", err)
	}
	d := Delivery{Error: h["error"]}
	d.Code, _ = strconv.Atoi(h["code"])
	d.Dropped, _ = strconv.ParseInt(h["dropped"], 10, 64)
	d.At, _ = time.Parse(time.RFC3339Nano, h["at"])
	return d, nil
}

// aliasTTL: a person answers a private reply within days, not months.
const aliasTTL = 90 * 24 * time.Hour

// SetConversationAlias makes Messenger conversation alias (page:PSID) continue conversation
// target: Facebook gives a commenter another id in Messenger, learnt from the private reply.
func (s *Store) SetConversationAlias(ctx context.Context, alias, target string) error {
	if err := s.rdb.Set(ctx, s.keys.ConversationAlias(alias), target, aliasTTL).Err(); err != nil {
		return fmt.Errorf("redisstore: set conversation alias: %w", err)
	}
	return nil
}

// ConversationAliases returns the conversation each of ids continues (itself when none).
func (s *Store) ConversationAliases(ctx context.Context, ids []string) ([]string, error) {
	out := make([]string, len(ids))
	cmds := make([]*redis.StringCmd, len(ids))
	if err := s.co.do(ctx, func(p redis.Pipeliner) {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.keys.ConversationAlias(id))
		}
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: conversation aliases: %w", err)
	}
	for i, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			out[i] = ids[i]
		case err != nil:
			return nil, fmt.Errorf("redisstore: conversation alias: %w", err)
		default:
			out[i] = v
		}
	}
	return out, nil
}

// AppendEffects appends one effects batch to the outbox (an admin's message to a
// conversation: the effects worker hands it to the conversation's grain), in the partition of
// key, the conversation.
func (s *Store) AppendEffects(ctx context.Context, key string, batch []byte) error {
	stream := s.keys.EffectsPartition(ConversationPartition(key))
	if err := s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"b", batch, "c", key}}).Err(); err != nil {
		return fmt.Errorf("redisstore: append effects: %w", err)
	}
	return nil
}

// SlotPeople returns the people of a slot: booked, then held, then waiting.
func (s *Store) SlotPeople(ctx context.Context, signupID, slotID string) ([]string, error) {
	pipe := s.rdb.Pipeline()
	cmds := []*redis.StringSliceCmd{
		pipe.ZRange(ctx, s.keys.SlotBooked(signupID, slotID), 0, -1),
		pipe.ZRange(ctx, s.keys.SlotHolds(signupID, slotID), 0, -1),
		pipe.ZRange(ctx, s.keys.SlotWaitlist(signupID, slotID), 0, -1),
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redisstore: slot people: %w", err)
	}
	var out []string
	for _, c := range cmds {
		out = append(out, c.Val()...)
	}
	return out, nil
}

// parkedMax caps the effect batches parked for one page (the oldest go first).
const parkedMax = 100_000

// ParkEffects keeps an effects batch until the page is connected again (UnparkEffects).
func (s *Store) ParkEffects(ctx context.Context, pageID string, batch []byte) error {
	err := s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.EffectsParked(pageID), MaxLen: parkedMax, Approx: true,
		Values: []any{"b", batch}}).Err()
	if err != nil {
		return fmt.Errorf("redisstore: park effects: %w", err)
	}
	return nil
}

// unparkScript moves a page's parked batches back into the effects stream, in order.
// KEYS[1] parked stream, KEYS[2] effects stream; ARGV[1] the page id. Returns how many.
var unparkScript = newScript(`
local xs = redis.call('XRANGE', KEYS[1], '-', '+')
for _, x in ipairs(xs) do
  redis.call('XADD', KEYS[2], '*', 'b', x[2][2], 'c', 'page:' .. ARGV[1])
end
redis.call('DEL', KEYS[1])
return #xs
`)

// UnparkEffects resumes a page's parked effects (it was connected again); it returns how many
// batches.
func (s *Store) UnparkEffects(ctx context.Context, pageID string) (int, error) {
	n, err := unparkScript.Run(ctx, s.rdb, []string{s.keys.EffectsParked(pageID), s.keys.Effects()}, pageID).Int()
	if err != nil {
		return 0, fmt.Errorf("redisstore: unpark effects: %w", err)
	}
	return n, nil
}

// CountEmailTo counts one more email to addr in the current window and returns the count: a
// person's address cannot be flooded through the conversations (whatever the sessions).
func (s *Store) CountEmailTo(ctx context.Context, addr string, window time.Duration) (int64, error) {
	key := s.keys.MailRate(HashToken(strings.ToLower(strings.TrimSpace(addr))))
	var n *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.Incr(ctx, key)
		p.ExpireNX(ctx, key, window)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redisstore: count email: %w", err)
	}
	return n.Val(), nil
}
