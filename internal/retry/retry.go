// Package retry paces the loops that keep trying a failing dependency (a Redis read, a
// subscription): 50 ms after the first failure, doubling up to 2 s, back to 50 ms on success.
package retry

import (
	"context"
	"time"
)

const (
	first = 50 * time.Millisecond
	limit = 2 * time.Second
)

// Backoff is the pause between failed attempts of one loop. Not safe for concurrent use.
type Backoff struct{ d time.Duration }

// New returns a Backoff at its first pause.
func New() *Backoff { return &Backoff{d: first} }

// Reset returns to the first pause (after a success).
func (b *Backoff) Reset() { b.d = first }

// Wait pauses (or returns when ctx ends) and doubles the next pause.
func (b *Backoff) Wait(ctx context.Context) {
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	b.d = min(2*b.d, limit)
}
