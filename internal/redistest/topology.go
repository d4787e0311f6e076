package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/voluntree/voluntree/internal/redisproc"
)

// Cluster is a real Redis Cluster on loopback: three masters and a replica of each, formed by
// `redis-cli --cluster create`, as operators make one.
type Cluster struct {
	Nodes []*redisproc.Server
	dir   string
}

// StartCluster starts six cluster-enabled redis-servers in a temporary directory, forms the
// cluster and waits until every node reports it healthy.
func StartCluster(ctx context.Context) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "redistest-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	var addrs []string
	for i := range 6 {
		srv, err := redisproc.Start(ctx, redisproc.Config{Dir: filepath.Join(dir, fmt.Sprint(i)), Cluster: true})
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, srv)
		addrs = append(addrs, srv.Addr())
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("redistest: redis-cli is not installed (apt-get install redis-tools): %w", err)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redistest: redis-cli --cluster create: %w: %s", err, out)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// WaitHealthy waits until every node sees all six nodes, every slot served and the state ok,
// every slot range with its replica, and every replica's link to its master up.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		rdb := redis.NewClient(&redis.Options{Addr: n.Addr()})
		err := waitFor(ctx, func() (bool, error) {
			info, err := rdb.ClusterInfo(ctx).Result()
			if err != nil {
				return false, err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") ||
				!strings.Contains(info, "cluster_known_nodes:6") {
				return false, nil
			}
			// Clients learn replicas from CLUSTER SLOTS: every range must list its replica.
			slots, err := rdb.ClusterSlots(ctx).Result()
			if err != nil || len(slots) != 3 {
				return false, err
			}
			for _, sl := range slots {
				if len(sl.Nodes) != 2 {
					return false, nil
				}
			}
			// A replica serves reads only once its link to the master is up.
			role, err := rdb.Do(ctx, "ROLE").Slice()
			if err != nil || len(role) == 0 {
				return false, err
			}
			return role[0] == "master" || (len(role) > 3 && role[3] == "connected"), nil
		})
		rdb.Close()
		if err != nil {
			return fmt.Errorf("redistest: cluster node %s not healthy: %w", n.Addr(), err)
		}
	}
	return nil
}

// URL is the cluster's redis-cluster:// URL with every node as a seed.
func (c *Cluster) URL() string {
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.Addr())
	}
	return "redis-cluster://" + strings.Join(addrs, ",")
}

// Failover promotes the replica of the master serving key (CLUSTER FAILOVER on the replica:
// a coordinated failover, the master pauses its clients until the replica has caught up) and
// waits until every node serves key's slot from the new master. It returns the old and new
// masters' addresses.
func (c *Cluster) Failover(ctx context.Context, key string) (from, to string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	seed := redis.NewClient(&redis.Options{Addr: c.Nodes[0].Addr()})
	defer seed.Close()
	slot, err := seed.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return "", "", fmt.Errorf("redistest: CLUSTER KEYSLOT: %w", err)
	}
	owner := func(rdb *redis.Client) (master, replica string, err error) {
		slots, err := rdb.ClusterSlots(ctx).Result()
		if err != nil {
			return "", "", err
		}
		for _, sl := range slots {
			if int64(sl.Start) <= slot && slot <= int64(sl.End) && len(sl.Nodes) > 0 {
				master = sl.Nodes[0].Addr
				if len(sl.Nodes) > 1 {
					replica = sl.Nodes[1].Addr
				}
				return master, replica, nil
			}
		}
		return "", "", fmt.Errorf("slot %d has no master", slot)
	}
	from, replica, err := owner(seed)
	if err != nil || replica == "" {
		return "", "", fmt.Errorf("redistest: the master of %s has no replica: %v", key, err)
	}
	rep := redis.NewClient(&redis.Options{Addr: replica})
	defer rep.Close()
	if err := rep.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
		return "", "", fmt.Errorf("redistest: CLUSTER FAILOVER on %s: %w", replica, err)
	}
	err = waitFor(ctx, func() (bool, error) {
		for _, n := range c.Nodes {
			rdb := redis.NewClient(&redis.Options{Addr: n.Addr()})
			m, _, err := owner(rdb)
			rdb.Close()
			if err != nil || m != replica {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return "", "", fmt.Errorf("redistest: %s did not take over slot %d: %w", replica, slot, err)
	}
	return from, replica, nil
}

// Stop stops every node and removes the directory.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
	os.RemoveAll(c.dir)
}

// SentinelMaster is the master name the sentinels of StartSentinel monitor.
const SentinelMaster = "voluntree"

// Sentinel is a real Sentinel deployment on loopback: a master, a replica of it and three
// sentinels with a quorum of two.
type Sentinel struct {
	Master, Replica *redisproc.Server
	Sentinels       []*redisproc.Server
	dir             string
}

// StartSentinel starts the master, its replica and three sentinels, and waits until the
// replica follows the master and every sentinel knows the replica and the other two
// sentinels (so that a failover can be agreed).
func StartSentinel(ctx context.Context) (*Sentinel, error) {
	dir, err := os.MkdirTemp("", "redistest-sentinel-")
	if err != nil {
		return nil, err
	}
	s := &Sentinel{dir: dir}
	if s.Master, err = redisproc.Start(ctx, redisproc.Config{Dir: filepath.Join(dir, "master")}); err != nil {
		s.Stop()
		return nil, err
	}
	host, port, _ := strings.Cut(s.Master.Addr(), ":")
	if s.Replica, err = redisproc.Start(ctx, redisproc.Config{Dir: filepath.Join(dir, "replica"),
		Args: []string{"--replicaof", host, port}}); err != nil {
		s.Stop()
		return nil, err
	}
	conf := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s 2\nsentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 10000\nsentinel parallel-syncs %[1]s 1\n", SentinelMaster, host, port)
	for i := range 3 {
		sen, err := redisproc.Start(ctx, redisproc.Config{Dir: filepath.Join(dir, fmt.Sprint("sentinel", i)), Sentinel: conf})
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.Sentinels = append(s.Sentinels, sen)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	replica := redis.NewClient(&redis.Options{Addr: s.Replica.Addr()})
	err = waitFor(wctx, func() (bool, error) {
		role, err := replica.Do(wctx, "ROLE").Slice()
		return err == nil && len(role) > 3 && role[3] == "connected", err
	})
	replica.Close()
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("redistest: the replica's link to the master is not up: %w", err)
	}
	for _, sen := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sen.Addr()})
		err := waitFor(wctx, func() (bool, error) {
			replicas, err := sc.Replicas(wctx, SentinelMaster).Result()
			if err != nil {
				return false, err
			}
			peers, err := sc.Sentinels(wctx, SentinelMaster).Result()
			if err != nil {
				return false, err
			}
			return len(replicas) == 1 && len(peers) == 2, nil
		})
		sc.Close()
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("redistest: sentinel %s does not know the replica and its peers: %w", sen.Addr(), err)
		}
	}
	return s, nil
}

// URL is the deployment's redis-sentinel:// URL.
func (s *Sentinel) URL() string {
	var addrs []string
	for _, sen := range s.Sentinels {
		addrs = append(addrs, sen.Addr())
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "?master=" + SentinelMaster
}

// MasterAddr asks a sentinel which server is the master now.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0].Addr()})
	defer sc.Close()
	hp, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil {
		return "", err
	}
	return strings.Join(hp, ":"), nil
}

// Failover makes the sentinels promote the replica (SENTINEL FAILOVER) and waits until they
// name a new master and it accepts writes.
func (s *Sentinel) Failover(ctx context.Context) (string, error) {
	before, err := s.MasterAddr(ctx)
	if err != nil {
		return "", err
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0].Addr()})
	defer sc.Close()
	if err := sc.Failover(ctx, SentinelMaster).Err(); err != nil {
		return "", fmt.Errorf("redistest: SENTINEL FAILOVER: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var after string
	err = waitFor(ctx, func() (bool, error) {
		if after, err = s.MasterAddr(ctx); err != nil || after == before {
			return false, err
		}
		rdb := redis.NewClient(&redis.Options{Addr: after})
		defer rdb.Close()
		role, err := rdb.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master", nil
	})
	if err != nil {
		return "", fmt.Errorf("redistest: no new master after SENTINEL FAILOVER: %w", err)
	}
	return after, nil
}

// Stop stops every process and removes the directory.
func (s *Sentinel) Stop() {
	for _, sen := range s.Sentinels {
		sen.Stop()
	}
	for _, srv := range []*redisproc.Server{s.Replica, s.Master} {
		if srv != nil {
			srv.Stop()
		}
	}
	os.RemoveAll(s.dir)
}

// waitFor polls cond every 20 ms until it holds or ctx ends; the last error is reported.
func waitFor(ctx context.Context, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// SentinelFor starts a Sentinel deployment for t, stopped when t ends. Without redis-server
// t is skipped, except under CI=true where it fails.
func SentinelFor(t testing.TB) *Sentinel {
	t.Helper()
	s, err := StartSentinel(context.Background())
	if err != nil {
		missing(t, err)
	}
	t.Cleanup(s.Stop)
	return s
}

// ClusterFor starts a Redis Cluster for t, stopped when t ends (skipped as SentinelFor).
func ClusterFor(t testing.TB) *Cluster {
	t.Helper()
	c, err := StartCluster(context.Background())
	if err != nil {
		missing(t, err)
	}
	t.Cleanup(c.Stop)
	return c
}

// missing fails t, or skips it when err is a missing program outside CI.
func missing(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "true" && (errors.Is(err, redisproc.ErrNotInstalled) || strings.Contains(err.Error(), "not installed")) {
		t.Skip(err)
	}
	t.Fatal(err)
}

// CommandCalls is how many times the server at addr ran cmd (INFO commandstats), failing t
// when it does not answer.
func CommandCalls(t testing.TB, addr, cmd string) int {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			var n int
			fmt.Sscanf(rest, "%d", &n)
			return n
		}
	}
	return 0
}
