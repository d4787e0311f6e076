package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// Booking. A slot has three sorted sets of people (conversation ids), all under the signup's
// hash tag so that one script holds a slot's whole state: booked (by booking time), holds (a
// place offered to someone from the waitlist, by expiry) and waitlist (by joining time). The
// invariant, kept by running every change as one script: booked + holds ≤ the slot's
// capacity, whatever the concurrency. A person is booked at most once per slot (set members),
// and the signup's bookings hash says which slot each person holds.
//
// Every change first sweeps the slot: expired holds are dropped, and while places are free
// the first people waiting are offered one (a hold of HoldFor). Who got an offer is returned,
// for the caller to tell them.

// DefaultHoldFor is how long a place offered from the waitlist is kept for that person.
const DefaultHoldFor = 2 * time.Hour

// sweepLua drops a slot's expired holds and offers free places to the first people waiting.
// Locals expected: booked, waitlist, holds keys, cap, now, holdms; appends to offered.
const sweepLua = `
local function sweep(booked, waitlist, holds, cap, now, holdms, offered)
  redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
  while redis.call('ZCARD', booked) + redis.call('ZCARD', holds) < cap do
    local first = redis.call('ZPOPMIN', waitlist)
    if #first == 0 then break end
    redis.call('ZADD', holds, now + holdms, first[1])
    offered[#offered+1] = first[1]
  end
end
`

// bookScript books a person on a slot, or puts them on its waitlist.
//
// KEYS[1] booked, KEYS[2] waitlist, KEYS[3] holds (of the slot), KEYS[4] the signup's bookings
// ARGV: person, slot id, capacity, now (unix ms), hold (ms), booking record (JSON)
// Returns {status, position, offered...}: status "booked" or "waitlisted".
var bookScript = newScript(sweepLua + `
local person, slot, cap, now, holdms = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local offered = {}
sweep(KEYS[1], KEYS[2], KEYS[3], cap, now, holdms, offered)
local function result(status, pos)
  local out = {status, pos}
  for _, p in ipairs(offered) do out[#out+1] = p end
  return out
end
if redis.call('ZSCORE', KEYS[1], person) then
  return result('booked', 0)
end
local held = redis.call('ZREM', KEYS[3], person) == 1
if held or redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[3]) < cap then
  redis.call('ZADD', KEYS[1], now, person)
  redis.call('ZREM', KEYS[2], person)
  redis.call('HSET', KEYS[4], person, ARGV[6])
  return result('booked', 0)
end
if not redis.call('ZSCORE', KEYS[2], person) then
  -- After the last one waiting, even within one millisecond: first come, first offered.
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  local score = now
  if #last == 2 and tonumber(last[2]) >= now then score = tonumber(last[2]) + 1 end
  redis.call('ZADD', KEYS[2], score, person)
end
return result('waitlisted', redis.call('ZRANK', KEYS[2], person) + 1)
`)

// cancelScript takes a person off a slot (booked, held or waiting), then sweeps it.
//
// KEYS as bookScript's. ARGV: person, slot id, capacity, now (unix ms), hold (ms)
// Returns {removed (0 or 1), offered...}.
var cancelScript = newScript(sweepLua + `
local person, slot, cap, now, holdms = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local removed = redis.call('ZREM', KEYS[1], person) + redis.call('ZREM', KEYS[3], person) + redis.call('ZREM', KEYS[2], person)
local rec = redis.call('HGET', KEYS[4], person)
if rec and cjson.decode(rec)['slot_id'] == slot then
  redis.call('HDEL', KEYS[4], person)
end
local offered = {}
sweep(KEYS[1], KEYS[2], KEYS[3], cap, now, holdms, offered)
local out = {math.min(removed, 1)}
for _, p in ipairs(offered) do out[#out+1] = p end
return out
`)

func (s *Store) slotKeys(signupID, slotID string) []string {
	return []string{s.keys.SlotBooked(signupID, slotID), s.keys.SlotWaitlist(signupID, slotID),
		s.keys.SlotHolds(signupID, slotID), s.keys.SignupBookings(signupID)}
}

// Book books person on a slot of capacity places, or waitlists them when it is full. It is
// idempotent: booking a booked person answers Booked again. holdFor ≤ 0 is DefaultHoldFor.
func (s *Store) Book(ctx context.Context, signupID, slotID string, capacity int, person string, rec BookingRecord, holdFor time.Duration) (BookResult, error) {
	if holdFor <= 0 {
		holdFor = DefaultHoldFor
	}
	rec.SlotID = slotID
	if rec.At.IsZero() {
		rec.At = time.Now().UTC()
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return BookResult{}, fmt.Errorf("redisstore: encode booking: %w", err)
	}
	vals, err := s.runSlotScript(ctx, bookScript, signupID, slotID, person, capacity, holdFor, b)
	if err != nil {
		return BookResult{}, fmt.Errorf("redisstore: book %s on %s/%s: %w", person, signupID, slotID, err)
	}
	if len(vals) < 2 {
		return BookResult{}, fmt.Errorf("redisstore: book: unexpected reply %v", vals)
	}
	status, _ := vals[0].(string)
	pos, _ := vals[1].(int64)
	return BookResult{Status: BookingStatus(status), Position: int(pos), Offered: strs(vals[2:])}, nil
}

// CancelBooking takes person off a slot — booked, offered or waiting — and offers a freed
// place to the first person waiting. It reports whether the person was there, and who got
// an offer.
func (s *Store) CancelBooking(ctx context.Context, signupID, slotID string, capacity int, person string, holdFor time.Duration) (bool, []string, error) {
	if holdFor <= 0 {
		holdFor = DefaultHoldFor
	}
	vals, err := s.runSlotScript(ctx, cancelScript, signupID, slotID, person, capacity, holdFor)
	if err != nil {
		return false, nil, fmt.Errorf("redisstore: cancel booking of %s on %s/%s: %w", person, signupID, slotID, err)
	}
	if len(vals) < 1 {
		return false, nil, fmt.Errorf("redisstore: cancel booking: unexpected reply %v", vals)
	}
	removed, _ := vals[0].(int64)
	return removed == 1, strs(vals[1:]), nil
}

func (s *Store) runSlotScript(ctx context.Context, sc *script, signupID, slotID, person string, capacity int, holdFor time.Duration, extra ...any) ([]any, error) {
	args := append([]any{person, slotID, capacity, time.Now().UnixMilli(), holdFor.Milliseconds()}, extra...)
	res, err := sc.Run(ctx, s.rdb, s.slotKeys(signupID, slotID), args...).Result()
	if err != nil {
		return nil, err
	}
	vals, _ := res.([]any)
	return vals, nil
}

func strs(vals []any) []string {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// SlotBookingCounts reads the counts of every slot of a signup.
func (s *Store) SlotBookingCounts(ctx context.Context, su *voluntree.Signup) (map[string]SlotCounts, error) {
	pipe := s.rdb.Pipeline()
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	cmds := make([][3]*redis.IntCmd, len(su.Slots))
	for i, sl := range su.Slots {
		cmds[i] = [3]*redis.IntCmd{
			pipe.ZCard(ctx, s.keys.SlotBooked(su.ID, sl.ID)),
			pipe.ZCount(ctx, s.keys.SlotHolds(su.ID, sl.ID), "("+now, "+inf"),
			pipe.ZCard(ctx, s.keys.SlotWaitlist(su.ID, sl.ID)),
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && len(su.Slots) > 0 {
		return nil, fmt.Errorf("redisstore: slot counts: %w", err)
	}
	out := make(map[string]SlotCounts, len(su.Slots))
	for i, sl := range su.Slots {
		out[sl.ID] = SlotCounts{Booked: int(cmds[i][0].Val()), Held: int(cmds[i][1].Val()), Waiting: int(cmds[i][2].Val())}
	}
	return out, nil
}

// SlotCountsOf reads one slot's counts.
func (s *Store) SlotCountsOf(ctx context.Context, signupID, slotID string) (SlotCounts, error) {
	counts, err := s.SlotBookingCounts(ctx, &voluntree.Signup{ID: signupID, Slots: []voluntree.Slot{{ID: slotID}}})
	if err != nil {
		return SlotCounts{}, err
	}
	return counts[slotID], nil
}

// Booking returns person's booking in a signup (ok false when none).
func (s *Store) Booking(ctx context.Context, signupID, person string) (BookingRecord, bool, error) {
	raw, err := s.rdb.HGet(ctx, s.keys.SignupBookings(signupID), person).Result()
	if err == redis.Nil {
		return BookingRecord{}, false, nil
	}
	if err != nil {
		return BookingRecord{}, false, fmt.Errorf("redisstore: booking: %w", err)
	}
	var rec BookingRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return BookingRecord{}, false, fmt.Errorf("redisstore: decode booking: %w", err)
	}
	return rec, true, nil
}
