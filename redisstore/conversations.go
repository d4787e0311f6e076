package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// LoadConversation returns a conversation's stored state, nil when it has none.
func (s *Store) LoadConversation(ctx context.Context, conversationID string) ([]byte, error) {
	var cmd *redis.StringCmd
	if err := s.co.do(ctx, func(p redis.Pipeliner) { cmd = p.Get(ctx, s.keys.Conversation(conversationID)) }); err != nil {
		return nil, fmt.Errorf("redisstore: load conversation: %w", err)
	}
	b, err := cmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: load conversation: %w", err)
	}
	return b, nil
}

// SaveConversation stores a conversation's state.
func (s *Store) SaveConversation(ctx context.Context, conversationID string, state []byte) error {
	var cmd *redis.StatusCmd
	if err := s.co.do(ctx, func(p redis.Pipeliner) { cmd = p.Set(ctx, s.keys.Conversation(conversationID), state, 0) }); err != nil {
		return fmt.Errorf("redisstore: save conversation: %w", err)
	}
	return cmdErr("save conversation", cmd)
}
