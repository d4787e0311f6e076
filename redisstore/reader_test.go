package redisstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/internal/redisconn"
	"github.com/voluntree/voluntree/internal/redistest"
	"github.com/voluntree/voluntree/redisstore"
)

// With replica reads, the reports read from the replica and the rest from the master.
func TestReportsReadFromReplicas(t *testing.T) {
	ctx := testCtx(t)
	dep := redistest.SentinelFor(t)
	conns, err := redisconn.Open(redisconn.Config{URL: dep.URL(), ReplicaReads: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()
	st, err := redisstore.New(conns.Primary, redisstore.Config{}, redisstore.WithReader(conns.Reader))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	onMaster, onReplica := redistest.CommandCalls(t, dep.Master.Addr(), "hmget"), redistest.CommandCalls(t, dep.Replica.Addr(), "hmget")
	for range 10 {
		if _, err := st.OrgDaily(ctx, testOrg, []string{"2026-11-30", "2026-12-01"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := redistest.CommandCalls(t, dep.Replica.Addr(), "hmget") - onReplica; n != 10 {
		t.Errorf("the replica ran %d of the reports' 10 HMGETs", n)
	}
	if n := redistest.CommandCalls(t, dep.Master.Addr(), "hmget") - onMaster; n != 0 {
		t.Errorf("the master ran %d of the reports' HMGETs", n)
	}
}

// With WaitReplicas, an append no replica acknowledged fails (the webhook answers 503) though
// the master has it; on a master with a replica it succeeds.
func TestEnqueueWaitsForReplicas(t *testing.T) {
	ctx := testCtx(t)
	// One more replica than the package's deployment has (a standalone server has none).
	want := 1
	if redisSrv.Mode != "standalone" {
		want = 2
	}
	st, rdb := newStore(t, redisstore.Config{WaitReplicas: want, WaitTimeout: 20 * time.Millisecond})
	_, err := st.Enqueue(ctx, []voluntree.Message{comment("w1")})
	if !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("Enqueue without a replica = %v, want ErrNotReplicated", err)
	}
	if n := rdb.XLen(ctx, st.Keys().Ingest()).Val(); n != 1 {
		t.Fatalf("the master holds %d entries, want the 1 appended", n)
	}
	// Facebook's retry: deduplicated, and still not acknowledged while no replica has it.
	if _, err := st.Enqueue(ctx, []voluntree.Message{comment("w1")}); !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("the retry = %v, want ErrNotReplicated", err)
	}

	dep := redistest.SentinelFor(t)
	master := redis.NewClient(&redis.Options{Addr: dep.Master.Addr()})
	defer master.Close()
	st2, err := redisstore.New(master, redisstore.Config{WaitReplicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	res, err := st2.Enqueue(ctx, []voluntree.Message{comment("w2"), comment("w3")})
	if err != nil || len(res) != 2 || res[0].ID == "" || res[1].ID == "" {
		t.Fatalf("Enqueue with a replica = %+v, %v", res, err)
	}
	replica := redis.NewClient(&redis.Options{Addr: dep.Replica.Addr()})
	defer replica.Close()
	if n := replica.XLen(ctx, st2.Keys().Ingest()).Val(); n != 2 {
		t.Fatalf("the replica holds %d entries once Enqueue returned, want 2", n)
	}
}
