package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// Events are per organization: each has its own capped replay log (a stream) and Pub/Sub
// channel, so that a feed can only ever read its own organization's events.

// DecodeEvent decodes an event as published on a Pub/Sub channel.
func DecodeEvent(payload string) (voluntree.Event, error) {
	var ev voluntree.Event
	if err := json.Unmarshal([]byte(payload), &ev); err != nil {
		return ev, fmt.Errorf("redisstore: decode event: %w", err)
	}
	if ev.ID == "" {
		return ev, errors.New("redisstore: event without id")
	}
	return ev, nil
}

// EventsAfter returns up to count of org's events with ids greater than after, oldest first.
// after "" reads from the beginning of the log.
func (s *Store) EventsAfter(ctx context.Context, org, after string, count int64) (Replay, error) {
	key := s.keys.OrgEvents(org)
	start := "-"
	if after != "" {
		start = "(" + after
	}
	res, err := s.rdb.XRangeN(ctx, key, start, "+", count).Result()
	if err != nil {
		return Replay{}, fmt.Errorf("redisstore: replay events: %w", err)
	}
	var r Replay
	if after != "" {
		// The log is capped: when an entry newer than after was ever removed, the reader
		// missed events.
		info, err := s.rdb.XInfoStream(ctx, key).Result()
		if err != nil && !isNoStream(err) {
			return Replay{}, fmt.Errorf("redisstore: replay events: %w", err)
		}
		if err == nil && missedAfter(info, after) {
			r.Gap = true
		}
	}
	for _, x := range res {
		ev, err := eventFromEntry(x)
		if err != nil {
			return Replay{}, err
		}
		r.Events = append(r.Events, ev)
	}
	return r, nil
}

// missedAfter reports whether entries newer than after were removed from the stream.
// max-deleted-entry-id only covers XDEL: Redis 7 does not update it when MAXLEN/XTRIM trims
// the stream. Trimming removes the oldest entries, so a reader whose after is older than the
// oldest entry left, in a stream that lost entries, may have missed some (a reader that saw
// exactly the newest trimmed entry is reported too: it reloads for nothing, but never misses).
func missedAfter(info *redis.XInfoStream, after string) bool {
	if info.MaxDeletedEntryID != "" && CompareIDs(info.MaxDeletedEntryID, after) > 0 {
		return true
	}
	if info.EntriesAdded <= info.Length { // nothing was ever removed
		return false
	}
	oldest := info.FirstEntry.ID
	if oldest == "" { // every entry was removed
		oldest = info.LastGeneratedID
	}
	return CompareIDs(oldest, after) > 0
}

// LastEventID returns the id of org's newest event, "" when there is none.
func (s *Store) LastEventID(ctx context.Context, org string) (string, error) {
	res, err := s.rdb.XRevRangeN(ctx, s.keys.OrgEvents(org), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("redisstore: last event: %w", err)
	}
	if len(res) == 0 {
		return "", nil
	}
	return res[0].ID, nil
}

func eventFromEntry(x redis.XMessage) (voluntree.Event, error) {
	data, _ := x.Values["data"].(string)
	var ev voluntree.Event
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		return ev, fmt.Errorf("redisstore: event %s: %w", x.ID, err)
	}
	ev.ID = x.ID
	return ev, nil
}

// SubscribeAllEvents subscribes to every organization's events channel (a pattern
// subscription); OrgOfChannel tells a message's organization. The caller reads with Receive
// and closes it.
func (s *Store) SubscribeAllEvents(ctx context.Context) *redis.PubSub {
	return s.rdb.PSubscribe(ctx, s.keys.EventsChannelPattern())
}

// OrgOfChannel returns the organization whose events channel this is.
func (s *Store) OrgOfChannel(channel string) (string, bool) {
	return s.keys.OrgOfEventsChannel(channel)
}

// TailScanLimit bounds how many of an organization's newest events EventIDBeforeLastMatching
// reads looking for matches: a feed whose filter matches little starts from there.
const TailScanLimit = 10_000

// EventIDBeforeLastMatching returns the id just before the n-th newest event of org's log that
// match accepts: replaying after it yields those n events (and the others in between). It
// returns "" when the log holds fewer (replay it all), and starts at the TailScanLimit-th newest
// event when that many were read without finding n.
func (s *Store) EventIDBeforeLastMatching(ctx context.Context, org string, n int, match func(EventHeader) bool) (string, error) {
	if n <= 0 {
		return s.LastEventID(ctx, org)
	}
	key := s.keys.OrgEvents(org)
	const page = 500
	end, found, scanned := "+", 0, 0
	for {
		res, err := s.rdb.XRevRangeN(ctx, key, end, "-", page).Result()
		if err != nil {
			return "", fmt.Errorf("redisstore: tail events: %w", err)
		}
		for i, x := range res {
			if found >= n || scanned >= TailScanLimit {
				return x.ID, nil // the one just before the last match (or the scanned window)
			}
			scanned++
			data, _ := x.Values["data"].(string)
			h, err := DecodeEventHeader(`{"id":"` + x.ID + `",` + strings.TrimPrefix(data, "{"))
			if err == nil && match(h) {
				found++
			}
			if i == len(res)-1 && len(res) == page {
				end = "(" + x.ID
			}
		}
		if len(res) < page {
			return "", nil // the whole log
		}
	}
}

// DecodeEventHeader reads only the header of a published event: the hub forwards the payload
// as it is, so decoding the whole interest would be wasted work on every event. The scripts
// publish `{"id":"<id>","type":"<type>","post_id":"<post>","intent":"<intent>",...` (the
// event's JSON with its id in front, post and intent omitted when empty); that prefix is read
// without a JSON decoder, anything else is decoded.
func DecodeEventHeader(payload string) (EventHeader, error) {
	if h, ok := fastHeader(payload); ok {
		return h, nil
	}
	var h EventHeader
	if err := json.Unmarshal([]byte(payload), &h); err != nil {
		return h, fmt.Errorf("redisstore: decode event: %w", err)
	}
	if h.ID == "" {
		return h, errors.New("redisstore: event without id")
	}
	return h, nil
}

// fastHeader reads the header of a payload as the scripts publish it. Stream ids, event
// types, intents and Facebook ids never need escaping, so a field value is the text up to the
// next quote; a backslash means an escape, and the payload goes to the JSON decoder instead.
func fastHeader(p string) (EventHeader, bool) {
	var h EventHeader
	rest, ok := strings.CutPrefix(p, `{"id":"`)
	if !ok {
		return h, false
	}
	field := func(name string) (string, bool) {
		r, ok := strings.CutPrefix(rest, `,"`+name+`":"`)
		if !ok {
			return "", true // absent here
		}
		v, after, ok := strings.Cut(r, `"`)
		if !ok || strings.Contains(v, `\`) {
			return "", false
		}
		rest = after
		return v, true
	}
	if h.ID, rest, ok = strings.Cut(rest, `"`); !ok || h.ID == "" || strings.Contains(h.ID, `\`) {
		return h, false
	}
	typ, ok := field("type")
	if !ok || typ == "" {
		return h, false
	}
	h.Type = voluntree.EventType(typ)
	if h.PostID, ok = field("post_id"); !ok {
		return h, false
	}
	intent, ok := field("intent")
	if !ok {
		return h, false
	}
	h.Intent = voluntree.Intent(intent)
	// A post or intent further on (another order) is one only the decoder can tell from the
	// nested interest's own fields.
	if (h.PostID == "" && strings.Contains(rest, `"post_id"`)) || (h.Intent == "" && strings.Contains(rest, `"intent"`) && h.Type == voluntree.EventMessage) {
		return h, false
	}
	return h, true
}

// appendEventScript appends an event to its organization's replay log and publishes it there
// with its id.
// KEYS[1] -> {org:O}:events stream
// ARGV[1] -> event JSON without id
// ARGV[2] -> max length
// ARGV[3] -> the organization's channel
var appendEventScript = redis.NewScript(`
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[1])
redis.call('PUBLISH', ARGV[3], '{"id":"' .. id .. '",' .. string.sub(ARGV[1], 2))
return id
`)

// AppendEvent appends ev to org's replay log and publishes it to every node; it returns the
// id. An event of no organization (org "") goes nowhere: "" and no error.
func (s *Store) AppendEvent(ctx context.Context, org string, ev voluntree.Event) (string, error) {
	if org == "" {
		return "", nil
	}
	ev.ID = ""
	b, err := json.Marshal(ev)
	if err != nil {
		return "", fmt.Errorf("redisstore: encode event: %w", err)
	}
	id, err := appendEventScript.Run(ctx, s.rdb, []string{s.keys.OrgEvents(org)},
		string(b), s.cfg.EventsMaxLen, s.keys.OrgEventsChannel(org)).Text()
	if err != nil {
		return "", fmt.Errorf("redisstore: append event: %w", err)
	}
	return id, nil
}
