package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/internal/redisconn"
	"github.com/voluntree/voluntree/internal/redistest"
	"github.com/voluntree/voluntree/redisstore"
)

// hmgetCalls is how many HMGETs a server ran (INFO commandstats).
func hmgetCalls(ctx context.Context, t *testing.T, addr string) int {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_hmget:calls="); ok {
			var n int
			fmt.Sscanf(rest, "%d", &n)
			return n
		}
	}
	return 0
}

// With replica reads, the reports read from the replica and the rest from the master.
func TestReportsReadFromReplicas(t *testing.T) {
	ctx := testCtx(t)
	dep, err := redistest.StartSentinel(ctx)
	if err != nil {
		if os.Getenv("CI") != "true" && strings.Contains(err.Error(), "not installed") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer dep.Stop()
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
	onMaster, onReplica := hmgetCalls(ctx, t, dep.Master.Addr()), hmgetCalls(ctx, t, dep.Replica.Addr())
	for range 10 {
		if _, err := st.OrgDaily(ctx, testOrg, []string{"2026-11-30", "2026-12-01"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := hmgetCalls(ctx, t, dep.Replica.Addr()) - onReplica; n != 10 {
		t.Errorf("the replica ran %d of the reports' 10 HMGETs", n)
	}
	if n := hmgetCalls(ctx, t, dep.Master.Addr()) - onMaster; n != 0 {
		t.Errorf("the master ran %d of the reports' HMGETs", n)
	}
}
