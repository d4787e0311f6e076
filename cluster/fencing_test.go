package cluster

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/redisstore"
)

// TestTwoActivationsCannotOverwriteEachOther plays a topology change: the same conversation
// grain active twice (on the node that owned it and on the one that owns it now). The second
// activation writes first; the first one's write, based on the state before, is refused
// instead of overwriting it, and its messages — redelivered — are applied to the stored state.
func TestTwoActivationsCannotOverwriteEachOther(t *testing.T) {
	e := requireEnv(t)
	u := uid(t)
	deps := e.grainDeps()
	id := voluntree.ConversationID("page"+u, "s"+u)
	msg := func(mid string) *grainpb.ConversationRequest {
		return &grainpb.ConversationRequest{Messages: []*grainpb.Classified{{Id: mid, Kind: "comment", PageId: "page" + u,
			PostId: "page" + u + "_1", SenderId: "s" + u, Intent: "question"}}}
	}
	old := &conversationGrain{deps: deps, id: id}
	if err := old.load(); err != nil {
		t.Fatal(err)
	}
	cur := &conversationGrain{deps: deps, id: id}
	if _, err := cur.Handle(msg("a"), nil); err != nil {
		t.Fatal(err)
	}
	stale := testutil.ToFloat64(e.metrics.StaleWrites.WithLabelValues("conversation"))
	if _, err := old.Handle(msg("b"), nil); !errors.Is(err, redisstore.ErrStaleConversation) {
		t.Fatalf("the stale activation's write: %v, want refused", err)
	}
	if got := testutil.ToFloat64(e.metrics.StaleWrites.WithLabelValues("conversation")) - stale; got != 1 {
		t.Fatalf("stale writes counted %v, want 1", got)
	}
	if st := conversationState(t, e, id); st.Messages != 1 || len(st.RecentIds) != 1 || st.RecentIds[0] != "a" {
		t.Fatalf("stored state %+v: want only a's message (b's write refused)", st)
	}
	// b redelivered to the stale activation: it reads the stored state again and applies b.
	if _, err := old.Handle(msg("b"), nil); err != nil {
		t.Fatal(err)
	}
	if st := conversationState(t, e, id); st.Messages != 2 || len(st.RecentIds) != 2 {
		t.Fatalf("stored state %+v: want a and b", st)
	}
	// And the other activation, now behind, is refused in turn.
	if _, err := cur.Handle(msg("c"), nil); !errors.Is(err, redisstore.ErrStaleConversation) {
		t.Fatalf("the other activation's write: %v, want refused", err)
	}
}

// TestStaleSaveWritesNothing: a refused save leaves the state, the outbox and the stage counts
// as they were.
func TestStaleSaveWritesNothing(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	u := uid(t)
	id := voluntree.ConversationID("page"+u, "s"+u)
	v, err := e.store.SaveConversationEffects(ctx, id, "", 0, []byte("one"), nil, "", StageInvited)
	if err != nil || v != 1 {
		t.Fatalf("first save: version %d, %v", v, err)
	}
	stages, _ := e.store.ConversationStages(ctx)
	effects, _ := e.store.EffectsLength(ctx)
	v, err = e.store.SaveConversationEffects(ctx, id, "", 0, []byte("two"), []byte("batch"), StageInvited, StageEmail)
	if !errors.Is(err, redisstore.ErrStaleConversation) || v != 1 {
		t.Fatalf("save at version 0 over version 1: %d, %v", v, err)
	}
	b, ver, err := e.store.LoadConversationVersion(ctx, id)
	if err != nil || string(b) != "one" || ver != 1 {
		t.Fatalf("state %q version %d, %v; want one at 1", b, ver, err)
	}
	after, _ := e.store.ConversationStages(ctx)
	if n, _ := e.store.EffectsLength(ctx); n != effects || after[StageEmail] != stages[StageEmail] || after[StageInvited] != stages[StageInvited] {
		t.Fatalf("a refused save changed the outbox (%d → %d) or the stages (%v → %v)", effects, n, stages, after)
	}
}
