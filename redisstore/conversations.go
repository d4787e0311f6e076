package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// LoadConversation returns a conversation's stored state, nil when it has none.
func (s *Store) LoadConversation(ctx context.Context, conversationID string) ([]byte, error) {
	b, _, err := s.LoadConversationVersion(ctx, conversationID)
	return b, err
}

// LoadConversationVersion returns a conversation's state (nil when there is none) and its
// version, for a fenced save (SaveConversationEffects).
func (s *Store) LoadConversationVersion(ctx context.Context, conversationID string) ([]byte, int64, error) {
	var state, ver *redis.StringCmd
	if err := s.co.do(ctx, func(p redis.Pipeliner) {
		state = p.Get(ctx, s.keys.Conversation(conversationID))
		ver = p.Get(ctx, s.keys.ConversationVersion(conversationID))
	}); err != nil {
		return nil, 0, fmt.Errorf("redisstore: load conversation: %w", err)
	}
	b, err := state.Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("redisstore: load conversation: %w", err)
	}
	v, err := ver.Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("redisstore: load conversation version: %w", err)
	}
	return b, v, nil
}

// SaveConversation stores a conversation's state, unfenced (a new version all the same).
func (s *Store) SaveConversation(ctx context.Context, conversationID string, state []byte) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.keys.Conversation(conversationID), state, 0)
		p.Incr(ctx, s.keys.ConversationVersion(conversationID))
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: save conversation: %w", err)
	}
	return nil
}

// SignupPeople returns a page of a signup's people, oldest first, with their states (one
// round trip for the page) and how many there are.
func (s *Store) SignupPeople(ctx context.Context, signupID string, offset, limit int) ([]SignupPerson, int, error) {
	key := s.keys.SignupPeople(signupID)
	pipe := s.rdb.Pipeline()
	total := pipe.ZCard(ctx, key)
	page := pipe.ZRangeWithScores(ctx, key, int64(offset), int64(offset+limit-1))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, fmt.Errorf("redisstore: people of %s: %w", signupID, err)
	}
	zs := page.Val()
	out := make([]SignupPerson, len(zs))
	if len(zs) == 0 {
		return out, int(total.Val()), nil
	}
	keys := make([]string, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		out[i] = SignupPerson{ConversationID: id, JoinedAt: time.UnixMilli(int64(z.Score)).UTC()}
		keys[i] = s.keys.Conversation(id)
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("redisstore: states of %s's people: %w", signupID, err)
	}
	for i, c := range cmds {
		if b, err := c.Bytes(); err == nil {
			out[i].State = b
		}
	}
	return out, int(total.Val()), nil
}
