package redistest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DeploymentEnv names the Redis deployment a suite runs on (Deployment): "" or "standalone"
// for one server, "cluster" for a Redis Cluster (3 masters, 3 replicas), "sentinel" for a
// Sentinel deployment (a master, a replica, 3 sentinels). `make test` runs the store's suite
// on each.
const DeploymentEnv = "VOLUNTREE_TEST_REDIS"

// Deployment is the Redis a package's suite runs on, as $VOLUNTREE_TEST_REDIS says, or the
// reason there is none.
type Deployment struct {
	Mode string  // standalone, cluster or sentinel
	srv  *Server // standalone: its Client
	cl   *Cluster
	se   *Sentinel
	err  error
	seq  atomic.Int64 // the cluster's and Sentinel's test prefixes
}

// StartDeployment starts the deployment $VOLUNTREE_TEST_REDIS names.
func StartDeployment() *Deployment {
	d := &Deployment{Mode: os.Getenv(DeploymentEnv)}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	switch d.Mode {
	case "", "standalone":
		d.Mode = "standalone"
		d.srv = Start()
		d.err = d.srv.err
	case "cluster":
		d.cl, d.err = StartCluster(ctx)
	case "sentinel":
		d.se, d.err = StartSentinel(ctx)
	default:
		d.err = fmt.Errorf("redistest: %s=%q: want standalone, cluster or sentinel", DeploymentEnv, d.Mode)
	}
	return d
}

// Stop stops the deployment's processes and removes their directories.
func (d *Deployment) Stop() {
	switch {
	case d.srv != nil:
		d.srv.Stop()
	case d.cl != nil:
		d.cl.Stop()
	case d.se != nil:
		d.se.Stop()
	}
}

// Cluster is the deployment's cluster (nil unless Mode is cluster).
func (d *Deployment) Cluster() *Cluster { return d.cl }

// URL is the deployment's URL (redis://, redis-cluster:// or redis-sentinel://).
func (d *Deployment) URL(t testing.TB) string {
	t.Helper()
	d.require(t)
	switch {
	case d.cl != nil:
		return d.cl.URL()
	case d.se != nil:
		return d.se.URL()
	}
	return d.srv.URL(t)
}

// Client returns a client of the deployment and a key prefix unique to this test
// ("test:<name>:<n>:"); the client is closed and the prefix's keys deleted (on every master)
// when the test ends.
func (d *Deployment) Client(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	d.require(t)
	if d.srv != nil {
		return d.srv.Client(t)
	}
	var rdb redis.UniversalClient
	switch {
	case d.cl != nil:
		var addrs []string
		for _, n := range d.cl.Nodes {
			addrs = append(addrs, n.Addr())
		}
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	case d.se != nil:
		var addrs []string
		for _, s := range d.se.Sentinels {
			addrs = append(addrs, s.Addr())
		}
		rdb = redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: addrs})
	}
	prefix := fmt.Sprintf("test:%s:%d:", strings.ReplaceAll(t.Name(), "/", "."), d.seq.Add(1))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		clean := func(ctx context.Context, c *redis.Client) error {
			iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				c.Del(ctx, iter.Val())
			}
			return iter.Err()
		}
		switch c := rdb.(type) {
		case *redis.ClusterClient:
			_ = c.ForEachMaster(ctx, clean)
		case *redis.Client:
			_ = clean(ctx, c)
		}
		rdb.Close()
	})
	return rdb, prefix
}

func (d *Deployment) require(t testing.TB) {
	t.Helper()
	if d.err != nil {
		missing(t, d.err)
	}
}

// MainDeployment is a package's TestMain for a suite that runs on any deployment: it starts
// the one $VOLUNTREE_TEST_REDIS names into *d, runs the tests, stops it and exits with the
// tests' status.
func MainDeployment(m *testing.M, d **Deployment) {
	*d = StartDeployment()
	code := m.Run()
	(*d).Stop()
	os.Exit(code)
}
