package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// recordScript records classified messages of one post, once per message id: it counts each
// one's intent and, for an interest on an organization's page, stores the interest hash,
// indexes it for the post and for the organization's stats, appends the event to the
// organization's replay log and publishes it, all atomically. A redelivered message finds its
// id in the classified hash and changes nothing, so its event is published exactly once. A
// message of another intent on an organization's page is counted and its message event
// appended and published the same way (feeds filtered by intent show it); it is not stored.
// Messages on a page of no organization are only counted: nobody may see them. One call takes
// a whole batch of the post's messages (one script run, one transaction in the AOF).
//
// Every key is in the organization's slot ({org:O}):
// KEYS[1] -> {org:O}:post:P:classified  (hash message id → intent)
// KEYS[2] -> {org:O}:post:P:intents     (hash intent → count)
// KEYS[3] -> {org:O}:post:P:interests   (sorted set: message id by recording time)
// KEYS[4] -> {org:O}:events stream (field "data": the event's JSON without its id)
// KEYS[5] -> {org:O}:interests      (sorted set: "<conversation>|<message id>" by time)
// KEYS[6] -> {org:O}:volunteers     (sorted set: conversation by first interest time)
// KEYS[7] -> {org:O}:daily (hash "<UTC day>|<intent>" → messages that day)
// KEYS[8...] -> {org:O}:post:P:interest:<message id> (hash), one per message to store, in order
// ARGV[1] -> events stream approximate max length
// ARGV[2] -> the organization's Pub/Sub channel
// ARGV[3] -> number of messages; then for each message 10 values and its hash's fields:
//
//	id, intent, "1" to store an interest, "2" to count and publish a message event (another
//	intent on an organization's page) or "0" to count only, recording time (unix ms),
//	event JSON ({"type":...}), time expressed (unix ms), organization index member,
//	conversation id, the daily count's field ("" for none), number of hash field/value
//	values; then those values
//
// Returns, per message, the event id of a new interest, "c" and its message event's id for
// another new message ("c" alone: no event), "d" for a message recorded before.
var recordScript = newScript(`
local maxlen, channel, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
local a, k = 4, 8
for i = 1, n do
  local id, intent, store, nf = ARGV[a], ARGV[a+1], ARGV[a+2], tonumber(ARGV[a+9])
  if redis.call('HSETNX', KEYS[1], id, intent) == 0 then
    out[i] = 'd'
  else
    redis.call('HINCRBY', KEYS[2], intent, 1)
    if ARGV[a+8] ~= '' then redis.call('HINCRBY', KEYS[7], ARGV[a+8], 1) end
    if store == '2' then
      local eid = redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'data', ARGV[a+4])
      redis.call('PUBLISH', channel, '{"id":"' .. eid .. '",' .. string.sub(ARGV[a+4], 2))
      out[i] = 'c' .. eid
    elseif store ~= '1' then
      out[i] = 'c'
    else
      redis.call('HSET', KEYS[k], unpack(ARGV, a+10, a+9+nf))
      redis.call('ZADD', KEYS[3], ARGV[a+3], id)
      redis.call('ZADD', KEYS[5], 'NX', ARGV[a+5], ARGV[a+6])
      redis.call('ZADD', KEYS[6], 'LT', ARGV[a+5], ARGV[a+7])
      local eid = redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'data', ARGV[a+4])
      redis.call('PUBLISH', channel, '{"id":"' .. eid .. '",' .. string.sub(ARGV[a+4], 2))
      out[i] = eid
    end
  end
  if store == '1' then k = k + 1 end
  a = a + 10 + nf
end
return out
`)

// PageInbox is the post key of interests that came through Messenger from someone whose
// conversation never named a post: they are kept per page.
func PageInbox(pageID string) string { return "page:" + pageID }

// Record records classified messages of one post (postKey: the post id, or PageInbox) of
// organization org in one round trip. interests are the messages as they will be stored; a
// message whose intent is not interested, or that is a turn of a conversation, is counted and
// published as a message event (not stored), and every message is only counted when org is "" (a page no organization connected).
func (s *Store) Record(ctx context.Context, org, postKey string, interests []voluntree.Interest) ([]Recorded, error) {
	if len(interests) == 0 {
		return nil, nil
	}
	keys := make([]string, 7, 7+len(interests))
	keys[0], keys[1], keys[2] = s.keys.PostClassified(org, postKey), s.keys.PostIntents(org, postKey), s.keys.PostInterests(org, postKey)
	keys[3], keys[4], keys[5] = s.keys.OrgEvents(org), s.keys.OrgInterests(org), s.keys.OrgVolunteers(org)
	keys[6] = s.keys.OrgDaily(org)
	args := make([]any, 0, 3+len(interests)*(10+2*interestHashFields))
	args = append(args, strconv.FormatInt(s.cfg.EventsMaxLen, 10), s.keys.OrgEventsChannel(org), len(interests))
	for _, in := range interests {
		day := ""
		if org != "" {
			day = DailyField(in.RecordedAt, string(in.Intent))
		}
		if org == "" {
			args = append(args, in.ID, string(in.Intent), "0", 0, "", 0, "", "", day, 0)
			continue
		}
		if in.Intent != voluntree.IntentInterested || in.Turn {
			// Counted, and shown to the feeds that ask for this intent (not stored).
			ev := voluntree.Event{Type: voluntree.EventMessage, PostID: in.PostID, Intent: in.Intent, Interest: &in}
			event, err := json.Marshal(ev)
			if err != nil {
				return nil, fmt.Errorf("redisstore: encode event: %w", err)
			}
			args = append(args, in.ID, string(in.Intent), "2", 0, event, 0, "", "", day, 0)
			continue
		}
		ev := voluntree.Event{Type: voluntree.EventInterest, PostID: in.PostID, Interest: &in}
		event, err := json.Marshal(ev) // no id yet (omitempty): the script puts it in front
		if err != nil {
			return nil, fmt.Errorf("redisstore: encode event: %w", err)
		}
		at := in.CreatedAt
		if at.IsZero() {
			at = in.RecordedAt
		}
		conv := voluntree.ConversationID(in.PageID, in.SenderID)
		fields := interestFields(in)
		keys = append(keys, s.keys.Interest(org, postKey, in.ID))
		args = append(args, in.ID, string(in.Intent), "1", in.RecordedAt.UnixMilli(), event,
			at.UnixMilli(), conv+"|"+in.ID, conv, day, len(fields))
		args = append(args, fields...)
	}
	var cmd *redis.Cmd
	err := s.co.do(ctx, func(pipe redis.Pipeliner) {
		cmd = recordScript.EvalSha(ctx, pipe, keys, args...)
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: record: %w", err)
	}
	cmds := []*redis.Cmd{cmd}
	if err := s.retryNoScript(ctx, recordScript, cmds, func(int) ([]string, []any) { return keys, args }); err != nil {
		return nil, fmt.Errorf("redisstore: record: %w", err)
	}
	res, err := cmds[0].StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: record: %w", err)
	}
	if len(res) != len(interests) {
		return nil, fmt.Errorf("redisstore: record: %d outcomes for %d messages", len(res), len(interests))
	}
	out := make([]Recorded, len(interests))
	for i, v := range res {
		switch {
		case v == "d":
			out[i] = Recorded{Outcome: Duplicate}
		case strings.HasPrefix(v, "c"): // "c<event id>": counted, and its message event published
			out[i] = Recorded{Outcome: Counted, EventID: v[1:]}
		default:
			out[i] = Recorded{Outcome: NewInterest, EventID: v}
		}
	}
	return out, nil
}

// interestHashFields is the number of fields of an interest's hash.
const interestHashFields = 9

// interestFields is an interest's hash. Its id and post are in its key, and an interest's
// intent is always interested: those are not stored again (hashes written before have them).
func interestFields(in voluntree.Interest) []any {
	return []any{
		"page_id", in.PageID,
		"sender_id", in.SenderID, "sender_name", in.SenderName, "kind", string(in.Kind),
		"text", in.Text,
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

// Counts returns the message counts by intent and the number of interests of a post of
// organization orgID ("": of a page no organization connected).
func (s *Store) Counts(ctx context.Context, orgID, postKey string) (PostCounts, error) {
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, s.keys.PostIntents(orgID, postKey))
	n := pipe.ZCard(ctx, s.keys.PostInterests(orgID, postKey))
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

// Interests returns the interests of a post of organization orgID in recording order, from
// offset, at most limit.
func (s *Store) Interests(ctx context.Context, orgID, postKey string, offset, limit int64) ([]voluntree.Interest, error) {
	if limit <= 0 { // ZRANGE offset offset-1 would be the whole index from offset 0
		return nil, nil
	}
	offset = max(offset, 0) // a negative offset would count from the end
	ids, err := s.rdb.ZRange(ctx, s.keys.PostInterests(orgID, postKey), offset, offset+limit-1).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: interests: %w", err)
	}
	return s.interestsByID(ctx, orgID, postKey, ids)
}

// InterestCount returns how many interests a post of organization orgID has.
func (s *Store) InterestCount(ctx context.Context, orgID, postKey string) (int, error) {
	n, err := s.rdb.ZCard(ctx, s.keys.PostInterests(orgID, postKey)).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore: interest count: %w", err)
	}
	return int(n), nil
}

// interestsByID loads a post's interests by message id, skipping ids with no interest.
func (s *Store) interestsByID(ctx context.Context, orgID, postKey string, ids []string) ([]voluntree.Interest, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, s.keys.Interest(orgID, postKey, id))
	}
	if _, err := pipe.Exec(ctx); err != nil && len(ids) > 0 {
		return nil, fmt.Errorf("redisstore: interests: %w", err)
	}
	post := postKey
	if strings.HasPrefix(postKey, PageInbox("")) {
		post = ""
	}
	out := make([]voluntree.Interest, 0, len(ids))
	for i, c := range cmds {
		h := c.Val()
		if len(h) == 0 {
			continue
		}
		conf, _ := strconv.ParseFloat(h["confidence"], 32)
		in := voluntree.Interest{
			ID: cmp.Or(h["id"], ids[i]), PostID: cmp.Or(h["post_id"], post), PageID: h["page_id"], SenderID: h["sender_id"],
			SenderName: h["sender_name"], Kind: voluntree.MessageKind(h["kind"]), Text: h["text"],
			Intent: voluntree.Intent(cmp.Or(h["intent"], string(voluntree.IntentInterested))), Confidence: float32(conf),
		}
		in.CreatedAt, _ = time.Parse(time.RFC3339Nano, h["created_at"])
		in.ReceivedAt, _ = time.Parse(time.RFC3339Nano, h["received_at"])
		in.RecordedAt, _ = time.Parse(time.RFC3339Nano, h["recorded_at"])
		out = append(out, in)
	}
	return out, nil
}

// DailyField is the field of an organization's daily counts for what (an intent, "booked") on
// t's UTC day: "YYYY-MM-DD|what".
func DailyField(t time.Time, what string) string { return t.UTC().Format(time.DateOnly) + "|" + what }
