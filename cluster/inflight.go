package cluster

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// A grain request in flight to a member that dies gets no answer: its future waits the whole
// request timeout (5 s), and the ingest pipeline, which keeps a consumer's batches in stream
// order, waits with it — every message behind it is late by as much. When the cluster sees a
// member leave, the node releases the requests still in flight: each one's future completes
// empty at once and the router sends the request again, to wherever the grain lives now (the
// left member's cached grain addresses are dropped first). The request may also have reached
// a live grain; grains handle a repeated request as a redelivery (idempotent), so the cost of
// releasing every request rather than only the dead member's is a few repeated requests per
// topology change.

// inflight is the set of grain requests awaiting an answer.
type inflight struct {
	mu      sync.Mutex
	futures map[*actor.Future]struct{}
}

func (f *inflight) add(fut *actor.Future) {
	f.mu.Lock()
	if f.futures == nil {
		f.futures = map[*actor.Future]struct{}{}
	}
	f.futures[fut] = struct{}{}
	f.mu.Unlock()
}

func (f *inflight) remove(fut *actor.Future) {
	f.mu.Lock()
	delete(f.futures, fut)
	f.mu.Unlock()
}

// release completes every tracked future empty (Result returns nil, nil) and forgets them.
func (f *inflight) release(root *actor.RootContext) int {
	f.mu.Lock()
	futures := f.futures
	f.futures = nil
	f.mu.Unlock()
	for fut := range futures {
		root.Stop(fut.PID()) // a future's Stop completes it (under its lock) unless it is done
	}
	return len(futures)
}

// watchTopology releases the requests in flight whenever a member leaves.
func (n *Node) watchTopology() {
	system := n.c.ActorSystem
	n.topologySub = system.EventStream.Subscribe(func(evt any) {
		t, ok := evt.(*protocluster.ClusterTopology)
		if !ok || len(t.Left) == 0 {
			return
		}
		for _, m := range t.Left {
			n.c.PidCache.RemoveByMember(m) // the cluster does it too; the order of handlers is not promised
		}
		if released := n.inflight.release(system.Root); released > 0 {
			n.log.Info("a member left: grain requests in flight sent again", "action", "release_requests",
				"released", released, "left", len(t.Left), "members", len(t.Members))
			n.cfg.Metrics.GrainRequestsReleased.Add(float64(released))
		}
	})
}
