package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// The rejected-events stream keeps what the webhook refused for its own content, with the raw
// JSON, for operators (`voluntree admin rejected`): a bad event is answered 200 with the rest
// of its delivery (Facebook would retry a refused delivery for 36 hours), and this is where
// it can still be looked at. It is capped, and so is each raw event.
const (
	RejectedMaxLen = 10_000
	MaxRejectedRaw = 16 << 10
)

// Reject appends refused events to the rejected-events stream in one round trip.
func (s *Store) Reject(ctx context.Context, rs []Rejection) error {
	if len(rs) == 0 {
		return nil
	}
	err := s.in.doFenced(ctx, []string{s.keys.IngestFence()}, func(pipe redis.Pipeliner) { // {ingest}'s slot
		for _, r := range rs {
			raw, cut := r.Raw, r.Cut
			if len(raw) > MaxRejectedRaw {
				raw, cut = validPrefix(raw, MaxRejectedRaw), true
			}
			at := r.At
			if at.IsZero() {
				at = time.Now()
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.IngestRejected(), MaxLen: RejectedMaxLen, Approx: true,
				Values: []any{"reason", r.Reason, "error", r.Error, "source", r.Source, "raw", raw,
					"truncated", strconv.FormatBool(cut), "at", at.UTC().Format(time.RFC3339Nano)}})
		}
	})
	if err != nil {
		return fmt.Errorf("redisstore: reject: %w", err)
	}
	return nil
}

// RejectedEvents returns up to n refused events, newest first.
func (s *Store) RejectedEvents(ctx context.Context, n int64) ([]Rejection, error) {
	res, err := s.rdb.XRevRangeN(ctx, s.keys.IngestRejected(), "+", "-", n).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: rejected events: %w", err)
	}
	out := make([]Rejection, len(res))
	for i, x := range res {
		str := func(k string) string { v, _ := x.Values[k].(string); return v }
		at, _ := time.Parse(time.RFC3339Nano, str("at"))
		out[i] = Rejection{ID: x.ID, Reason: str("reason"), Error: str("error"), Source: str("source"),
			Raw: str("raw"), Cut: str("truncated") == "true", At: at}
	}
	return out, nil
}

// validPrefix cuts s to at most n bytes without splitting a UTF-8 sequence.
func validPrefix(s string, n int) string {
	s = s[:n]
	for range utf8.UTFMax - 1 { // a sequence cut short ends in at most 3 bytes
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
