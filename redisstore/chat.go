package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// The web chat channel: people without Facebook talk to the same conversation flow from a
// public page. A session token (random, stored as its hash, an hour) names the conversation
// "webchat:<session id>" and the signup it is about. The conversation's messages, both ways,
// are kept in a capped stream (its history, replayed after a reconnect with the id of the
// last message seen) and published on the conversation's chat channel for the open sockets.

// Web chat limits.
const (
	ChatTokenPrefix = "wct_"
	ChatSessionTTL  = time.Hour
	ChatHistoryMax  = 500 // messages kept per conversation
	chatTokenLen    = len(ChatTokenPrefix) + 43
)

// CreateChatSession starts a web chat session (a new conversation) and returns its token.
func (s *Store) CreateChatSession(ctx context.Context, sess ChatSession) (string, ChatSession, error) {
	if sess.ID == "" {
		sess.ID = voluntree.NewID("wc_")
	}
	return s.storeChatSession(ctx, sess)
}

func (s *Store) storeChatSession(ctx context.Context, sess ChatSession) (string, ChatSession, error) {
	token, err := newToken(ChatTokenPrefix)
	if err != nil {
		return "", sess, err
	}
	sess.ExpiresAt = time.Now().Add(ChatSessionTTL).UTC()
	if err := s.rdb.Set(ctx, s.keys.ChatSession(HashToken(token)), mustJSON(sess), ChatSessionTTL).Err(); err != nil {
		return "", sess, fmt.Errorf("redisstore: store chat session: %w", err)
	}
	return token, sess, nil
}

// ChatSessionOf returns the session of a token; EUNAUTHORIZED for a malformed, unknown or
// expired one.
func (s *Store) ChatSessionOf(ctx context.Context, token string) (ChatSession, error) {
	var sess ChatSession
	if !validChatToken(token) {
		return sess, voluntree.Errorf(voluntree.EUNAUTHORIZED, "malformed chat token: get one from POST /api/v1/chat/sessions")
	}
	b, err := s.rdb.Get(ctx, s.keys.ChatSession(HashToken(token))).Bytes()
	if errors.Is(err, redis.Nil) {
		return sess, voluntree.Errorf(voluntree.EUNAUTHORIZED, "unknown or expired chat token: start a new session or refresh it in time")
	}
	if err != nil {
		return sess, fmt.Errorf("redisstore: chat session: %w", err)
	}
	if err := json.Unmarshal(b, &sess); err != nil {
		return sess, fmt.Errorf("redisstore: decode chat session: %w", err)
	}
	if time.Now().After(sess.ExpiresAt) {
		return ChatSession{}, voluntree.Errorf(voluntree.EUNAUTHORIZED, "expired chat token")
	}
	return sess, nil
}

// RefreshChatSession swaps a valid token for a new one of the same session (another hour);
// the old token stops working.
func (s *Store) RefreshChatSession(ctx context.Context, token string) (string, ChatSession, error) {
	sess, err := s.ChatSessionOf(ctx, token)
	if err != nil {
		return "", sess, err
	}
	if err := s.rdb.Del(ctx, s.keys.ChatSession(HashToken(token))).Err(); err != nil {
		return "", sess, fmt.Errorf("redisstore: refresh chat session: %w", err)
	}
	return s.storeChatSession(ctx, sess)
}

func validChatToken(s string) bool { return tokenFormat(s, ChatTokenPrefix, chatTokenLen) }

// appendChatScript appends a message to a conversation's history and publishes it, once per
// dedupe key (an effect redelivered after a crash appends nothing).
//
// KEYS[1] history stream, KEYS[2] dedupe key ("" for none)
// ARGV: message JSON without id, max length, channel, dedupe TTL (s)
var appendChatScript = newScript(`
if KEYS[2] ~= '' and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then
  return false
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'm', ARGV[1])
redis.call('PUBLISH', ARGV[3], '{"id":"' .. id .. '",' .. string.sub(ARGV[1], 2))
return id
`)

// AppendChat adds m to a conversation's history and publishes it on its channel; dedupe (an
// effect id) makes a repeat a no-op. It returns the message's id ("" for a repeat).
func (s *Store) AppendChat(ctx context.Context, conversationID string, m ChatMessage, dedupe string) (string, error) {
	m.ID = ""
	if m.At.IsZero() {
		m.At = time.Now().UTC()
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("redisstore: encode chat message: %w", err)
	}
	dk := ""
	if dedupe != "" {
		dk = s.keys.ChatDedupe(conversationID, dedupe)
	}
	res, err := appendChatScript.Run(ctx, s.rdb, []string{s.keys.ChatHistory(conversationID), dk},
		string(b), ChatHistoryMax, s.keys.ChatChannel(conversationID), int64(effectMarkTTL/time.Second)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redisstore: append chat message: %w", err)
	}
	id, _ := res.(string)
	return id, nil
}

// ChatHistory returns a conversation's messages after id after ("" or "0": from the start),
// oldest first, at most count.
func (s *Store) ChatHistory(ctx context.Context, conversationID, after string, count int64) ([]ChatMessage, error) {
	start := "-"
	if after != "" && after != "0" && after != "0-0" {
		start = "(" + after
	}
	xs, err := s.rdb.XRangeN(ctx, s.keys.ChatHistory(conversationID), start, "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: chat history: %w", err)
	}
	out := make([]ChatMessage, 0, len(xs))
	for _, x := range xs {
		raw, _ := x.Values["m"].(string)
		var m ChatMessage
		if json.Unmarshal([]byte(raw), &m) != nil {
			continue
		}
		m.ID = x.ID
		out = append(out, m)
	}
	return out, nil
}

// SubscribeChats subscribes to every conversation's chat channel (one subscription a node).
func (s *Store) SubscribeChats(ctx context.Context) *redis.PubSub {
	return s.rdb.PSubscribe(ctx, globEscape(s.keys.prefix)+":chat:*")
}

// ConversationOfChatChannel returns the conversation of a chat channel.
func (s *Store) ConversationOfChatChannel(channel string) (string, bool) {
	return strings.CutPrefix(channel, s.keys.prefix+":chat:")
}
