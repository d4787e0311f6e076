package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// AddSlotVolunteer records that the interest (of post postKey) chose a slot of a signup.
func (s *Store) AddSlotVolunteer(ctx context.Context, signupID, slotID, postKey, interestID string, at time.Time) error {
	err := s.rdb.ZAddNX(ctx, s.keys.SlotVolunteers(signupID, slotID),
		redis.Z{Score: ms(at), Member: postKey + "|" + interestID}).Err()
	if err != nil {
		return fmt.Errorf("redisstore: add slot volunteer: %w", err)
	}
	return nil
}

// SlotFills counts the volunteers of each of a signup's slots.
func (s *Store) SlotFills(ctx context.Context, su *voluntree.Signup) ([]voluntree.SlotFill, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(su.Slots))
	for i, sl := range su.Slots {
		cmds[i] = pipe.ZCard(ctx, s.keys.SlotVolunteers(su.ID, sl.ID))
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

// SlotInterests lists the interests that chose a slot, oldest first.
func (s *Store) SlotInterests(ctx context.Context, signupID, slotID string, offset, limit int) (Page[voluntree.Interest], error) {
	key := s.keys.SlotVolunteers(signupID, slotID)
	return listIndex(ctx, s, key, offset, limit, func(ctx context.Context, members []string) ([]voluntree.Interest, error) {
		out := make([]voluntree.Interest, 0, len(members))
		for _, m := range members {
			postKey, id, ok := strings.Cut(m, "|")
			if !ok {
				continue
			}
			ins, err := s.interestsByID(ctx, postKey, []string{id})
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
	members, err := s.rdb.ZRangeByScore(ctx, s.keys.OrgInterests(orgID), &redis.ZRangeBy{Min: lo, Max: hi}).Result()
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
	n, err := s.rdb.ZCount(ctx, s.keys.OrgVolunteers(orgID), lo, hi).Result()
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
