package cluster

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Excluded nodes. Proto.Actor's automanaged provider puts a member that dropped out of its
// view on a block list for good (FACTS): after a partition heals, the node that was cut off
// comes back as a cluster of its own — alone, still consuming the streams and activating the
// same grains as the others (the fenced save keeps the state right, at the cost of
// contention and latency). Its member id can only rejoin as a new one. The guard notices
// that: a node that once saw a majority of its configured peers, and now sees only a
// minority while a majority of the peers answer their health endpoint, has been left out; it
// reports it, and serve drains and exits so that it restarts with a new member id.

// guardState decides from one observation at a time (pure: tested without a cluster).
type guardState struct {
	peers       int           // configured peers, this node included
	hold        time.Duration // how long the exclusion must last
	sawMajority bool
	since       time.Time // when the current exclusion began (zero: none)
}

func (g *guardState) majority() int { return g.peers/2 + 1 }

// observe takes the member count this node sees and how many peers answer, at now, and
// reports whether the node has been left out for at least hold.
func (g *guardState) observe(members, answering int, now time.Time) bool {
	if g.peers < 2 {
		return false
	}
	if members >= g.majority() {
		g.sawMajority = true
		g.since = time.Time{}
		return false
	}
	if !g.sawMajority || answering < g.majority() {
		// Starting (the others are not up yet), or the others are really gone: this node
		// goes on with what it sees.
		g.since = time.Time{}
		return false
	}
	if g.since.IsZero() {
		g.since = now
	}
	return now.Sub(g.since) >= g.hold
}

// GuardConfig tunes Node.Guard.
type GuardConfig struct {
	Every time.Duration // between observations (default 1 s)
	Hold  time.Duration // how long an exclusion must last before it is reported (default 5 s)
}

// Guard watches this node's membership until ctx ends and calls excluded once when the node
// has been left out of the cluster its peers form (see above). Without peers it does nothing.
func (n *Node) Guard(ctx context.Context, cfg GuardConfig, excluded func(reason string)) {
	if len(n.cfg.Peers) < 2 {
		return
	}
	cfg.Every = cmp.Or(cfg.Every, time.Second)
	cfg.Hold = cmp.Or(cfg.Hold, 5*time.Second)
	g := &guardState{peers: len(n.cfg.Peers), hold: cfg.Hold}
	client := &http.Client{Timeout: cfg.Every}
	t := time.NewTicker(cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		members := len(n.Members())
		answering := 0
		if members < g.majority() {
			answering = countAnswering(ctx, client, n.cfg.Peers)
		}
		if g.observe(members, answering, time.Now()) {
			excluded(fmt.Sprintf("this node sees %d of %d members while %d peers answer: it was left out of the cluster (a partition healed); restart to rejoin with a new member id",
				members, g.peers, answering))
			return
		}
	}
}

// countAnswering asks every peer's automanaged health endpoint at once.
func countAnswering(ctx context.Context, client *http.Client, peers []string) int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := 0
	for _, p := range peers {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p+"/_health", nil)
			if err != nil {
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				mu.Lock()
				n++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return n
}
