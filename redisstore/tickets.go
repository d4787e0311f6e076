package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// Live-feed tickets. A WebSocket upgrade cannot carry an Authorization header from a browser,
// and a long-lived credential in a URL ends up in logs and histories; so a Bearer token (or,
// later, a browser session) buys a ticket: random, single-use, valid for a minute, stored
// only as its hash with the organization it opens.

// Ticket limits.
const (
	TicketPrefix = "wst_"
	MaxTicketTTL = time.Minute
	ticketLen    = len(TicketPrefix) + 43 // 32 random bytes, base64url without padding
)

// CreateWSTicket issues a ticket for org's live feed, valid for ttl (at most MaxTicketTTL).
func (s *Store) CreateWSTicket(ctx context.Context, org string, ttl time.Duration) (string, WSTicket, error) {
	if org == "" {
		return "", WSTicket{}, voluntree.Errorf(voluntree.EFORBIDDEN, "a live feed belongs to an organization")
	}
	ttl = min(ttl, MaxTicketTTL)
	if ttl <= 0 {
		return "", WSTicket{}, fmt.Errorf("redisstore: ticket lifetime must be positive, got %s", ttl)
	}
	ticket, err := newToken(TicketPrefix)
	if err != nil {
		return "", WSTicket{}, err
	}
	rec := WSTicket{OrgID: org, ExpiresAt: time.Now().Add(ttl).UTC()}
	if err := s.rdb.Set(ctx, s.keys.WSTicket(HashToken(ticket)), mustJSON(rec), ttl).Err(); err != nil {
		return "", WSTicket{}, fmt.Errorf("redisstore: store ticket: %w", err)
	}
	return ticket, rec, nil
}

// TakeWSTicket redeems a ticket: it returns what the ticket opens and deletes it, so a ticket
// works once. EUNAUTHORIZED for a malformed, unknown, used or expired ticket.
func (s *Store) TakeWSTicket(ctx context.Context, ticket string) (WSTicket, error) {
	var rec WSTicket
	if !ValidTicketFormat(ticket) {
		return rec, voluntree.Errorf(voluntree.EUNAUTHORIZED, "malformed ticket: get one from POST /api/v1/ws-tickets")
	}
	b, err := s.rdb.GetDel(ctx, s.keys.WSTicket(HashToken(ticket))).Bytes()
	if errors.Is(err, redis.Nil) {
		return rec, voluntree.Errorf(voluntree.EUNAUTHORIZED, "unknown, used or expired ticket: get a new one from POST /api/v1/ws-tickets")
	}
	if err != nil {
		return rec, fmt.Errorf("redisstore: take ticket: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("redisstore: decode ticket: %w", err)
	}
	if rec.OrgID == "" {
		return rec, errors.New("redisstore: decode ticket: no organization")
	}
	if time.Now().After(rec.ExpiresAt) { // Redis expiry is the rule; the clock check is a belt
		return WSTicket{}, voluntree.Errorf(voluntree.EUNAUTHORIZED, "expired ticket: get a new one from POST /api/v1/ws-tickets")
	}
	return rec, nil
}

// ValidTicketFormat reports whether s looks like a ticket (checked before any Redis call).
func ValidTicketFormat(s string) bool { return tokenFormat(s, TicketPrefix, ticketLen) }

// newToken returns prefix followed by 32 random bytes in base64url (tokenFormat's shape): the
// admin tokens, live-feed tickets and chat tokens.
func newToken(prefix string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("redisstore: random token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// tokenFormat reports whether s is prefix followed by base64url characters, n bytes in all:
// the shape of the random tokens this package issues.
func tokenFormat(s, prefix string, n int) bool {
	if len(s) != n || s[:len(prefix)] != prefix {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
