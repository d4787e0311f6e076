package httpapi

import (
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// limiter is a token bucket per client: each client may spend rate tokens a second, and save
// up to burst. It keeps at most maxClients buckets: at that size it forgets the full ones (an
// idle client's bucket is full, so forgetting it changes nothing) and, if that frees less
// than a tenth, all of them, so the scan runs once per tenth of maxClients new clients at
// most. A flood of addresses can only make the limit more lenient for a while, never stricter
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

// clientKey is who a request counts for in the rate limits: its peer address, or, when the
// peer is a trusted proxy, the rightmost address of X-Forwarded-For that is not one (the
// leftmost ones are whatever the client wrote). An IPv6 client is its /64, since one host
// holds a whole /64 and would otherwise have endless fresh buckets.
func (s *Server) clientKey(c *fiber.Ctx) string {
	ip := net.ParseIP(c.Context().RemoteIP().String())
	if ip != nil && len(s.proxies) > 0 && inNets(ip, s.proxies) {
		hops := strings.Split(c.Get(fiber.HeaderXForwardedFor), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop := net.ParseIP(strings.TrimSpace(hops[i]))
			if hop == nil {
				break // a malformed entry: nothing left of it can be trusted
			}
			ip = hop
			if !inNets(hop, s.proxies) {
				break
			}
		}
	}
	if ip == nil {
		return c.IP()
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// parseNets reads IPs and CIDRs; an IP is its own /32 or /128. Malformed entries are skipped.
func parseNets(list []string) []*net.IPNet {
	var out []*net.IPNet
	for _, p := range list {
		p = strings.TrimSpace(p)
		if _, n, err := net.ParseCIDR(p); err == nil {
			out = append(out, n)
		} else if ip := net.ParseIP(p); ip != nil {
			bits := 8 * len(ip.To16())
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		}
	}
	return out
}

func inNets(ip net.IP, nets []*net.IPNet) bool {
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
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
	if len(l.buckets) > l.maxClients*9/10 {
		clear(l.buckets)
	}
}
