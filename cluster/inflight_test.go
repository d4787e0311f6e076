package cluster

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/voluntree/voluntree/cluster/grainpb"
)

// A grain request in flight when a member leaves is sent again at once, instead of waiting out
// the request timeout while the pipeline behind it waits too.
func TestRequestsInFlightAreSentAgainWhenAMemberLeaves(t *testing.T) {
	e := requireEnv(t)
	system := e.node.c.ActorSystem
	// A request whose member died: its future would wait a minute for an answer.
	dead := actor.NewFuture(system, time.Minute)
	retried := make(chan struct{}, 1)
	call := &grainCall{kind: "post", key: "p1", start: time.Now(), future: dead,
		retry: func() (any, error) { retried <- struct{}{}; return &grainpb.RecordResponse{}, nil }}
	e.router.track(call)
	before := testutil.ToFloat64(e.metrics.GrainRequestsReleased)

	type answer struct {
		res any
		err error
	}
	done := make(chan answer, 1)
	go func() { res, err := e.router.await(call); done <- answer{res, err} }()

	// A topology change without a departure releases nothing.
	system.EventStream.Publish(&protocluster.ClusterTopology{TopologyHash: 1})
	select {
	case a := <-done:
		t.Fatalf("the request returned on a topology change with no member gone: %+v", a)
	case <-time.After(200 * time.Millisecond):
	}
	system.EventStream.Publish(&protocluster.ClusterTopology{TopologyHash: 2,
		Left: []*protocluster.Member{{Id: "gone", Host: "10.0.0.9", Port: 7000, Kinds: []string{"Post"}}}})
	select {
	case a := <-done:
		if _, ok := a.res.(*grainpb.RecordResponse); !ok || a.err != nil {
			t.Fatalf("released request: %T %v, want the retry's answer", a.res, a.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request still waits for its dead member after the member left")
	}
	select {
	case <-retried:
	default:
		t.Fatal("the released request was not sent again")
	}
	if got := testutil.ToFloat64(e.metrics.GrainRequestsReleased) - before; got != 1 {
		t.Errorf("voluntree_grain_requests_released_total rose by %v, want 1", got)
	}
	// Answered requests are no longer tracked: the next departure releases nothing.
	e.router.node.inflight.mu.Lock()
	n := len(e.router.node.inflight.futures)
	e.router.node.inflight.mu.Unlock()
	if n != 0 {
		t.Errorf("%d futures still tracked after their answers", n)
	}
}
