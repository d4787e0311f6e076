package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// SlotFills counts the people booked on each of a signup's slots.
func (s *Store) SlotFills(ctx context.Context, su *voluntree.Signup) ([]voluntree.SlotFill, error) {
	pipe := s.ro.Pipeline()
	cmds := make([]*redis.IntCmd, len(su.Slots))
	for i, sl := range su.Slots {
		cmds[i] = pipe.ZCard(ctx, s.keys.SlotBooked(su.ID, sl.ID))
	}
	if _, err := pipe.Exec(ctx); err != nil && len(cmds) > 0 {
		return nil, fmt.Errorf("redisstore: slot fills: %w", err)
	}
	fills := make([]voluntree.SlotFill, len(su.Slots))
	for i, sl := range su.Slots {
		fills[i] = voluntree.SlotFill{Slot: sl, Filled: int(cmds[i].Val())}
	}
	return fills, nil
}

// SignupsOverview returns, for each signup, its slots' fills and how many people entered its
// conversation flow, in one round trip (a page of the signups list).
func (s *Store) SignupsOverview(ctx context.Context, sus []voluntree.Signup) ([][]voluntree.SlotFill, []int64, error) {
	pipe := s.ro.Pipeline()
	booked := make([][]*redis.IntCmd, len(sus))
	people := make([]*redis.IntCmd, len(sus))
	for i := range sus {
		booked[i] = make([]*redis.IntCmd, len(sus[i].Slots))
		for j, sl := range sus[i].Slots {
			booked[i][j] = pipe.ZCard(ctx, s.keys.SlotBooked(sus[i].ID, sl.ID))
		}
		people[i] = pipe.ZCard(ctx, s.keys.SignupPeople(sus[i].ID))
	}
	if len(sus) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, nil, fmt.Errorf("redisstore: signups overview: %w", err)
		}
	}
	fills := make([][]voluntree.SlotFill, len(sus))
	counts := make([]int64, len(sus))
	for i := range sus {
		fills[i] = make([]voluntree.SlotFill, len(sus[i].Slots))
		for j, sl := range sus[i].Slots {
			fills[i][j] = voluntree.SlotFill{Slot: sl, Filled: int(booked[i][j].Val())}
		}
		counts[i] = people[i].Val()
	}
	return fills, counts, nil
}

// SlotInterests lists the interests of the people booked on a slot, in booking order (a
// person booked from the web chat has no interest and is left out of the page's items).
func (s *Store) SlotInterests(ctx context.Context, su *voluntree.Signup, slotID string, offset, limit int) (Page[voluntree.Interest], error) {
	signupID := su.ID
	key := s.keys.SlotBooked(signupID, slotID)
	return listIndex(ctx, s, key, offset, limit, func(ctx context.Context, people []string) ([]voluntree.Interest, error) {
		out := make([]voluntree.Interest, 0, len(people))
		if len(people) == 0 {
			return out, nil
		}
		raws, err := s.ro.HMGet(ctx, s.keys.SignupBookings(signupID), people...).Result()
		if err != nil {
			return nil, fmt.Errorf("redisstore: slot bookings: %w", err)
		}
		for _, raw := range raws {
			str, _ := raw.(string)
			var rec BookingRecord
			if json.Unmarshal([]byte(str), &rec) != nil || rec.PostKey == "" || rec.Interest == "" {
				continue
			}
			ins, err := s.interestsByID(ctx, su.OrgID, rec.PostKey, []string{rec.Interest})
			if err != nil {
				return nil, err
			}
			out = append(out, ins...)
		}
		return out, nil
	})
}

// OrgStats computes an organization's stats over [from, to). Posts and signups are read in
// full (an organization has hundreds, not millions); interests come from the time index.
func (s *Store) OrgStats(ctx context.Context, orgID string, from, to time.Time) (voluntree.Stats, error) {
	st := voluntree.Stats{From: from, To: to, PostsByStatus: map[voluntree.PostStatus]int{}}
	signups, err := s.Signups(ctx, orgID, 0, 1<<30)
	if err != nil {
		return st, err
	}
	for _, su := range signups.Items {
		if !su.Disabled && signupActiveIn(&su, from, to) {
			st.ActiveSignups++
		}
	}
	posts, err := s.Posts(ctx, orgID, 0, 1<<30)
	if err != nil {
		return st, err
	}
	for _, p := range posts.Items {
		st.PostsByStatus[p.Status]++
		if p.PublishedAt != nil && !p.PublishedAt.Before(from) && p.PublishedAt.Before(to) {
			st.Posts++
		}
	}
	lo, hi := strconv.FormatInt(from.UnixMilli(), 10), "("+strconv.FormatInt(to.UnixMilli(), 10)
	members, err := s.ro.ZRangeByScore(ctx, s.keys.OrgInterests(orgID), &redis.ZRangeBy{Min: lo, Max: hi}).Result()
	if err != nil {
		return st, fmt.Errorf("redisstore: org interests: %w", err)
	}
	st.Interests = len(members)
	people := make(map[string]bool)
	for _, m := range members {
		conv, _, _ := strings.Cut(m, "|")
		people[conv] = true
	}
	st.Volunteers = len(people)
	n, err := s.ro.ZCount(ctx, s.keys.OrgVolunteers(orgID), lo, hi).Result()
	if err != nil {
		return st, fmt.Errorf("redisstore: org volunteers: %w", err)
	}
	st.NewVolunteers = int(n)
	return st, nil
}

// signupActiveIn reports whether one of the signup's slots starts in [from, to).
func signupActiveIn(su *voluntree.Signup, from, to time.Time) bool {
	loc, err := time.LoadLocation(su.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	for _, sl := range su.Slots {
		t, err := sl.StartTime(loc)
		if err == nil && !t.Before(from) && t.Before(to) {
			return true
		}
	}
	return false
}

// DailyIntents are the intents the daily counts keep, in display order.
var DailyIntents = []voluntree.Intent{voluntree.IntentInterested, voluntree.IntentQuestion, voluntree.IntentDonate,
	voluntree.IntentDecline, voluntree.IntentThanks, voluntree.IntentOther}

// OrgDaily returns an organization's messages by intent on each of days (YYYY-MM-DD, UTC), in
// one command.
func (s *Store) OrgDaily(ctx context.Context, orgID string, days []string) ([]map[voluntree.Intent]int64, error) {
	out := make([]map[voluntree.Intent]int64, len(days))
	if len(days) == 0 {
		return out, nil
	}
	fields := make([]string, 0, len(days)*len(DailyIntents))
	for _, d := range days {
		for _, in := range DailyIntents {
			fields = append(fields, d+"|"+string(in))
		}
	}
	vals, err := s.ro.HMGet(ctx, s.keys.OrgDaily(orgID), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: daily counts of %s: %w", orgID, err)
	}
	for i := range days {
		out[i] = make(map[voluntree.Intent]int64, len(DailyIntents))
		for j, in := range DailyIntents {
			if v, ok := vals[i*len(DailyIntents)+j].(string); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[i][in] = n
			}
		}
	}
	return out, nil
}

// BookingsByDay counts the bookings of signups made on each UTC day (YYYY-MM-DD), reading
// every signup's bookings in one round trip.
func (s *Store) BookingsByDay(ctx context.Context, signupIDs []string) (map[string]int, error) {
	out := map[string]int{}
	if len(signupIDs) == 0 {
		return out, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(signupIDs))
	_, err := s.ro.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range signupIDs {
			cmds[i] = p.HGetAll(ctx, s.keys.SignupBookings(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: bookings: %w", err)
	}
	for _, c := range cmds {
		for _, raw := range c.Val() {
			if rec, err := decodeJSON[BookingRecord](raw, "booking"); err == nil && !rec.At.IsZero() {
				out[rec.At.UTC().Format(time.DateOnly)]++
			}
		}
	}
	return out, nil
}
