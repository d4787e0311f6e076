package httpapi

import (
	"sync"
	"time"
)

// limiter is a token bucket per client: each client may spend rate tokens a second, and save
// up to burst. It keeps at most maxClients buckets: past that it forgets the full ones (an
// idle client's bucket is full, so forgetting it changes nothing), and when every one is in
// use it starts over, which a flood of addresses can only make more lenient, never stricter
// for a real client than a fresh bucket.
type limiter struct {
	rate, burst float64
	maxClients  int
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst, maxClients int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), maxClients: maxClients, now: time.Now,
		buckets: make(map[string]*bucket)}
}

// take spends cost tokens of client's bucket. When there are not enough, it spends nothing
// and says how long until there are. A cost above the burst is charged as the burst.
func (l *limiter) take(client string, cost float64) (ok bool, retryAfter time.Duration) {
	cost = min(cost, l.burst)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[client]
	if b == nil {
		if len(l.buckets) >= l.maxClients {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[client] = b
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed*l.rate)
		b.last = now
	}
	if b.tokens >= cost {
		b.tokens -= cost
		return true, 0
	}
	return false, time.Duration((cost - b.tokens) / l.rate * float64(time.Second))
}

// evict forgets the buckets that have refilled; if none has, all of them.
func (l *limiter) evict(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= l.maxClients {
		clear(l.buckets)
	}
}
