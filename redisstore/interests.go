package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// recordScript records one classified message for a post, once per message id: it counts the
// intent and, for an interest of an organization's page, stores the interest hash, indexes it
// for the post and for the organization's stats, appends the event to the organization's
// replay log and publishes it, all atomically. A redelivered message finds its id in the
// classified hash and changes nothing, so the event is published exactly once. Messages on a
// page of no organization are only counted: nobody may see them.
//
// KEYS[1] -> {post:P}:classified  (hash message id → intent)
// KEYS[2] -> {post:P}:intents     (hash intent → count)
// KEYS[3] -> {post:P}:interest:<message id> (hash)
// KEYS[4] -> {post:P}:interests   (sorted set: message id by recording time)
// KEYS[5] -> {org:O}:events stream
// KEYS[6] -> org:O:interests      (sorted set: "<conversation>|<post key>|<message id>" by time)
// KEYS[7] -> org:O:volunteers     (sorted set: conversation by first interest time)
// ARGV[1] -> message id
// ARGV[2] -> intent
// ARGV[3] -> "1" to store an interest, "0" to count only
// ARGV[4] -> recording time, unix ms (index score)
// ARGV[5] -> event JSON without its id: {"type":...}
// ARGV[6] -> events stream approximate max length
// ARGV[7] -> the organization's Pub/Sub channel
// ARGV[8] -> post id of the event ("" for page-level interests)
// ARGV[9] -> time the interest was expressed, unix ms (organization index score)
// ARGV[10] -> organization interest index member
// ARGV[11] -> conversation id
// ARGV[12...] -> the interest hash's field/value pairs
// Returns the event id for a new interest, "counted" for another new message, false for a
// message recorded before.
var recordScript = newScript(`
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return false
end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if ARGV[3] ~= '1' then
  return 'counted'
end
redis.call('HSET', KEYS[3], unpack(ARGV, 12))
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[6], 'NX', ARGV[9], ARGV[10])
redis.call('ZADD', KEYS[7], 'LT', ARGV[9], ARGV[11])
local id = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', 'type', 'interest', 'post', ARGV[8], 'data', ARGV[5])
redis.call('PUBLISH', ARGV[7], '{"id":"' .. id .. '",' .. string.sub(ARGV[5], 2))
return id
`)

// Outcome says what recording a classified message did.
type Outcome int

// Outcomes of Record.
const (
	Duplicate   Outcome = iota // recorded before: nothing changed
	Counted                    // a new message of another intent, or of no organization: counted
	NewInterest                // a new interest: stored, indexed, event published
)

// Recorded is the outcome of one message of Record.
type Recorded struct {
	Outcome Outcome
	EventID string // NewInterest only
}

// PageInbox is the post key of interests that came through Messenger from someone whose
// conversation never named a post: they are kept per page.
func PageInbox(pageID string) string { return "page:" + pageID }

// Record records classified messages of one post (postKey: the post id, or PageInbox) of
// organization org in one round trip. interests are the messages as they will be stored; a
// message whose intent is not interested is only counted, and so is every message when org
// is "" (a page no organization connected).
func (s *Store) Record(ctx context.Context, org, postKey string, interests []voluntree.Interest) ([]Recorded, error) {
	if len(interests) == 0 {
		return nil, nil
	}
	maxLen := strconv.FormatInt(s.cfg.EventsMaxLen, 10)
	type call struct {
		keys []string
		args []any
	}
	calls := make([]call, len(interests))
	events, channel := s.keys.OrgEvents(org), s.keys.OrgEventsChannel(org)
	orgInterests, orgVolunteers := s.keys.OrgInterests(org), s.keys.OrgVolunteers(org)
	for i, in := range interests {
		keys := []string{
			s.keys.PostClassified(postKey), s.keys.PostIntents(postKey),
			s.keys.Interest(postKey, in.ID), s.keys.PostInterests(postKey), events,
			orgInterests, orgVolunteers,
		}
		store := "0"
		var event []byte
		var fields []any
		var expressed int64
		var member, conv string
		if in.Intent == voluntree.IntentInterested && org != "" {
			store = "1"
			ev := voluntree.Event{Type: voluntree.EventInterest, PostID: in.PostID, Interest: &in}
			b, err := json.Marshal(ev) // no id yet (omitempty): the script puts it in front
			if err != nil {
				return nil, fmt.Errorf("redisstore: encode event: %w", err)
			}
			event = b
			fields = interestFields(in)
			at := in.CreatedAt
			if at.IsZero() {
				at = in.RecordedAt
			}
			expressed = at.UnixMilli()
			conv = voluntree.ConversationID(in.PageID, in.SenderID)
			member = conv + "|" + postKey + "|" + in.ID
		}
		args := append([]any{in.ID, string(in.Intent), store, in.RecordedAt.UnixMilli(), event, maxLen,
			channel, in.PostID, expressed, member, conv}, fields...)
		calls[i] = call{keys: keys, args: args}
	}
	cmds := make([]*redis.Cmd, len(interests))
	err := s.co.do(ctx, func(pipe redis.Pipeliner) {
		for i, c := range calls {
			cmds[i] = recordScript.EvalSha(ctx, pipe, c.keys, c.args...)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: record: %w", err)
	}
	err = s.retryNoScript(ctx, recordScript, cmds, func(i int) ([]string, []any) { return calls[i].keys, calls[i].args })
	if err != nil {
		return nil, fmt.Errorf("redisstore: record: %w", err)
	}
	out := make([]Recorded, len(interests))
	for i, c := range cmds {
		v, err := c.Text()
		switch {
		case errors.Is(err, redis.Nil):
			out[i] = Recorded{Outcome: Duplicate}
		case err != nil:
			return nil, fmt.Errorf("redisstore: record %s: %w", interests[i].ID, err)
		case v == "counted":
			out[i] = Recorded{Outcome: Counted}
		default:
			out[i] = Recorded{Outcome: NewInterest, EventID: v}
		}
	}
	return out, nil
}

func interestFields(in voluntree.Interest) []any {
	return []any{
		"id", in.ID, "post_id", in.PostID, "page_id", in.PageID,
		"sender_id", in.SenderID, "sender_name", in.SenderName, "kind", string(in.Kind),
		"text", in.Text, "intent", string(in.Intent),
		"confidence", strconv.FormatFloat(float64(in.Confidence), 'f', 4, 32),
		"created_at", in.CreatedAt.UTC().Format(time.RFC3339Nano),
		"received_at", in.ReceivedAt.UTC().Format(time.RFC3339Nano),
		"recorded_at", in.RecordedAt.UTC().Format(time.RFC3339Nano),
	}
}

// PostCounts is what a post's classified messages add up to.
type PostCounts struct {
	Intents   map[voluntree.Intent]int64
	Interests int64
}

// Counts returns a post's message counts by intent and its number of interests.
func (s *Store) Counts(ctx context.Context, postKey string) (PostCounts, error) {
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, s.keys.PostIntents(postKey))
	n := pipe.ZCard(ctx, s.keys.PostInterests(postKey))
	if _, err := pipe.Exec(ctx); err != nil {
		return PostCounts{}, fmt.Errorf("redisstore: counts: %w", err)
	}
	pc := PostCounts{Intents: make(map[voluntree.Intent]int64), Interests: n.Val()}
	for k, v := range h.Val() {
		c, _ := strconv.ParseInt(v, 10, 64)
		pc.Intents[voluntree.Intent(k)] = c
	}
	return pc, nil
}

// Interests returns a post's interests in recording order, from offset, at most limit.
func (s *Store) Interests(ctx context.Context, postKey string, offset, limit int64) ([]voluntree.Interest, error) {
	if limit <= 0 { // ZRANGE offset offset-1 would be the whole index from offset 0
		return nil, nil
	}
	offset = max(offset, 0) // a negative offset would count from the end
	ids, err := s.rdb.ZRange(ctx, s.keys.PostInterests(postKey), offset, offset+limit-1).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: interests: %w", err)
	}
	return s.interestsByID(ctx, postKey, ids)
}

// InterestCount returns how many interests a post has.
func (s *Store) InterestCount(ctx context.Context, postKey string) (int, error) {
	n, err := s.rdb.ZCard(ctx, s.keys.PostInterests(postKey)).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore: interest count: %w", err)
	}
	return int(n), nil
}

// interestsByID loads a post's interests by message id, skipping ids with no interest.
func (s *Store) interestsByID(ctx context.Context, postKey string, ids []string) ([]voluntree.Interest, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, s.keys.Interest(postKey, id))
	}
	if _, err := pipe.Exec(ctx); err != nil && len(ids) > 0 {
		return nil, fmt.Errorf("redisstore: interests: %w", err)
	}
	out := make([]voluntree.Interest, 0, len(ids))
	for _, c := range cmds {
		h := c.Val()
		if len(h) == 0 {
			continue
		}
		conf, _ := strconv.ParseFloat(h["confidence"], 32)
		in := voluntree.Interest{
			ID: h["id"], PostID: h["post_id"], PageID: h["page_id"], SenderID: h["sender_id"],
			SenderName: h["sender_name"], Kind: voluntree.MessageKind(h["kind"]), Text: h["text"],
			Intent: voluntree.Intent(h["intent"]), Confidence: float32(conf),
		}
		in.CreatedAt, _ = time.Parse(time.RFC3339Nano, h["created_at"])
		in.ReceivedAt, _ = time.Parse(time.RFC3339Nano, h["received_at"])
		in.RecordedAt, _ = time.Parse(time.RFC3339Nano, h["recorded_at"])
		out = append(out, in)
	}
	return out, nil
}
