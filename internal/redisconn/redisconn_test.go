package redisconn

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/voluntree/voluntree/internal/redistest"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		url    string
		mode   Mode
		addrs  string
		check  func(t *testing.T, tg Target)
		errHas string
	}{
		{url: "redis://127.0.0.1:6379", mode: Standalone, addrs: "127.0.0.1:6379"},
		{url: "redis://u:secret@db.example:6380/2?pool_size=7&dial_timeout=2s", mode: Standalone, addrs: "db.example:6380",
			check: func(t *testing.T, tg Target) {
				if o := tg.simple; o.DB != 2 || o.PoolSize != 7 || o.DialTimeout != 2*time.Second || o.Username != "u" || o.Password != "secret" {
					t.Errorf("options %+v", o)
				}
			}},
		{url: "rediss://db.example:6380", mode: Standalone, addrs: "db.example:6380",
			check: func(t *testing.T, tg Target) {
				if tg.simple.TLSConfig == nil {
					t.Error("rediss without TLS")
				}
			}},
		{url: "unix:///run/redis/redis.sock?db=3", mode: Standalone, addrs: "/run/redis/redis.sock",
			check: func(t *testing.T, tg Target) {
				if tg.simple.Network != "unix" || tg.simple.DB != 3 {
					t.Errorf("network %q db %d", tg.simple.Network, tg.simple.DB)
				}
			}},
		{url: "redis-sentinel://:pw@s1:26379,s2:26379,s3:26379/1?master=mymaster&sentinel_password=spw&read_timeout=1s",
			mode: Sentinel, addrs: "s1:26379,s2:26379,s3:26379",
			check: func(t *testing.T, tg Target) {
				o := tg.opts
				if o.MasterName != "mymaster" || o.Password != "pw" || o.SentinelPassword != "spw" || o.DB != 1 || o.ReadTimeout != time.Second {
					t.Errorf("options %+v", o)
				}
				if got := strings.Join(o.Addrs, ","); got != "s1:26379,s2:26379,s3:26379" {
					t.Errorf("sentinels %s", got)
				}
				if tg.String() != "sentinel s1:26379,s2:26379,s3:26379 master mymaster" {
					t.Errorf("String %q", tg.String())
				}
			}},
		{url: "rediss-sentinel://s1:26379?master_name=m", mode: Sentinel, addrs: "s1:26379",
			check: func(t *testing.T, tg Target) {
				if tg.opts.TLSConfig == nil || tg.opts.MasterName != "m" {
					t.Errorf("options %+v", tg.opts)
				}
			}},
		{url: "redis-cluster://user:pw@h1:7000,h2:7001,h3:7002?pool_size=20", mode: Cluster, addrs: "h1:7000,h2:7001,h3:7002",
			check: func(t *testing.T, tg Target) {
				o := tg.opts
				if o.Username != "user" || o.Password != "pw" || o.PoolSize != 20 || len(o.Addrs) != 3 {
					t.Errorf("options %+v", o)
				}
			}},
		{url: "redis-cluster://h1:7000/", mode: Cluster, addrs: "h1:7000"},
		{url: "localhost:6379", errHas: "not a URL"},
		{url: "http://localhost:6379", errHas: "unknown scheme"},
		{url: "redis://localhost:6379?pool_sise=3", errHas: "pool_sise"},
		{url: "redis-sentinel://s1:26379,s2:26379", errHas: "master's name"},
		{url: "redis-sentinel://s1:26379,s2?master=m", errHas: `"s2" is not a host:port`},
		{url: "redis-sentinel://s1:26379?master=m&master_name=n", errHas: "both set"},
		{url: "redis-cluster://h1:7000/3", errHas: "no database number"},
		{url: "redis-cluster://h1:7000?bogus=1", errHas: "bogus"},
		{url: "redis-cluster://:hunter2@h1:7000?bogus=1", errHas: "xxxxx"},
		{url: "redis://:hunter2#x@h:6379", errHas: "percent-encoded"},
		{url: "redis://:hunter2%zz@h:6379", errHas: "percent-encoded"},
		{url: "redis-cluster://h1:7000?read_only=true", errHas: "VOLUNTREE_REDIS_REPLICA_READS"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			tg, err := Parse(tc.url)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Parse(%q) = %v, want an error with %q", tc.url, err, tc.errHas)
				}
				if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "secret") {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.url, err)
			}
			if tg.Mode != tc.mode || strings.Join(tg.Addrs, ",") != tc.addrs {
				t.Fatalf("Parse(%q) = %s %v, want %s %s", tc.url, tg.Mode, tg.Addrs, tc.mode, tc.addrs)
			}
			if tc.check != nil {
				tc.check(t, tg)
			}
		})
	}
}

func TestOpenAppliesConfigOverTheURL(t *testing.T) {
	c, err := Open(Config{URL: "redis://127.0.0.1:1?pool_size=5&read_timeout=9s", DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.Primary.(*redis.Client).Options()
	if o.PoolSize != 5 || o.ReadTimeout != 9*time.Second || o.DialTimeout != time.Second {
		t.Fatalf("pool %d read %s dial %s, want 5 9s 1s", o.PoolSize, o.ReadTimeout, o.DialTimeout)
	}
	c2, err := Open(Config{URL: "redis://127.0.0.1:1?pool_size=5", PoolSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got := c2.Primary.(*redis.Client).Options().PoolSize; got != 50 {
		t.Fatalf("pool %d, want the config's 50 over the URL's", got)
	}
	c3, err := Open(Config{URL: "redis://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if got := c3.Primary.(*redis.Client).Options().PoolSize; got != DefaultPoolSize {
		t.Fatalf("pool %d, want the default %d", got, DefaultPoolSize)
	}
	if _, err := Open(Config{URL: "redis://127.0.0.1:1", ReplicaReads: true}); err == nil || !strings.Contains(err.Error(), "Sentinel or Cluster") {
		t.Fatalf("replica reads on a standalone server: %v, want an error", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"redis://h:1/0", "unix:///s?db=1", "redis-sentinel://:p@a:1,b:2/3?master=m&sentinel_password=x",
		"redis-cluster://u:p@a:1,b:2?pool_size=3", "rediss-cluster://a:1", "redis://:secretpw%zz@h:1", "redis://:secretpw#@h:1", "redis-sentinel://a:1?master=m&addr=c:3", "x://", "://", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tg, err := Parse(raw)
		if err != nil {
			if strings.Contains(raw, "secretpw") && strings.Contains(err.Error(), "secretpw") {
				t.Fatalf("error shows the password: %v", err)
			}
			return
		}
		if len(tg.Addrs) == 0 || (tg.Mode == Standalone) != (tg.simple != nil) {
			t.Fatalf("Parse(%q) = %+v", raw, tg)
		}
		_ = tg.String()
	})
}

func TestStandalone(t *testing.T) {
	srv := redistest.Start()
	defer srv.Stop()
	c, err := Open(Config{URL: srv.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Primary.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Reader.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET through the reader = %q, %v", got, err)
	}
}

func TestSentinelFollowsTheMasterAndReadsFromTheReplica(t *testing.T) {
	ctx := context.Background()
	dep := redistest.SentinelFor(t)
	c, err := Open(Config{URL: dep.URL(), ReplicaReads: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Target.Mode != Sentinel {
		t.Fatalf("mode %s", c.Target.Mode)
	}
	if err := c.Primary.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Primary.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica = %d, %v", n, err)
	}
	replicaGets := redistest.CommandCalls(t, dep.Replica.Addr(), "get")
	for range 20 {
		if got, err := c.Reader.Get(ctx, "before").Result(); err != nil || got != "1" {
			t.Fatalf("GET through the reader = %q, %v", got, err)
		}
	}
	if n := redistest.CommandCalls(t, dep.Replica.Addr(), "get") - replicaGets; n == 0 {
		t.Fatal("no GET reached the replica with replica reads on")
	}

	newMaster, err := dep.Failover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if newMaster != dep.Replica.Addr() {
		t.Fatalf("new master %s, want the replica %s", newMaster, dep.Replica.Addr())
	}
	// The client follows the sentinels to the new master. Until it has switched, a write may
	// still land on the old master, which the sentinels then make a replica: such a write is
	// lost with it (asynchronous replication), so the test writes until one is on the new
	// master.
	direct := redis.NewClient(&redis.Options{Addr: newMaster})
	defer direct.Close()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		err := c.Primary.Set(ctx, "after", i, 0).Err()
		if err == nil {
			if got, _ := direct.Get(ctx, "after").Int(); got == i {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write of the client reached the new master within 15 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // a retry interval, not a synchronisation
	}
	if got, err := c.Primary.Get(ctx, "before").Result(); err != nil || got != "1" {
		t.Fatalf("the key written before the failover = %q, %v", got, err)
	}
}

func TestClusterSpreadsKeysAndReadsFromReplicas(t *testing.T) {
	ctx := context.Background()
	cl := redistest.ClusterFor(t)
	// One seed is enough: the client learns the rest from CLUSTER SLOTS.
	c, err := Open(Config{URL: "redis-cluster://" + cl.Nodes[0].Addr(), ReplicaReads: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 100 {
		if err := c.Primary.Set(ctx, fmt.Sprint("key", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	isMaster := make([]bool, len(cl.Nodes))
	for i, n := range cl.Nodes {
		rdb := redis.NewClient(&redis.Options{Addr: n.Addr()})
		role, err := rdb.Do(ctx, "ROLE").Slice()
		if err != nil {
			t.Fatal(err)
		}
		isMaster[i] = role[0] == "master"
		if keys := rdb.DBSize(ctx).Val(); isMaster[i] && keys == 0 {
			t.Errorf("master %s holds none of the 100 keys", n.Addr())
		}
		rdb.Close()
	}
	// A cross-slot command is refused: the store must never send one (keys.go).
	if err := c.Primary.MGet(ctx, "key1", "key2").Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("MGET across slots = %v, want CROSSSLOT", err)
	}
	for i, n := range cl.Nodes {
		if !isMaster[i] {
			continue
		}
		rdb := redis.NewClient(&redis.Options{Addr: n.Addr()})
		if n, err := rdb.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
			t.Fatalf("WAIT for the replica of %s = %d, %v", cl.Nodes[i].Addr(), n, err)
		}
		rdb.Close()
	}
	before := make([]int, len(cl.Nodes))
	for i, n := range cl.Nodes {
		before[i] = redistest.CommandCalls(t, n.Addr(), "get")
	}
	for i := range 100 {
		if got, err := c.Reader.Get(ctx, fmt.Sprint("key", i)).Int(); err != nil || got != i {
			t.Fatalf("GET key%d through the reader = %d, %v", i, got, err)
		}
	}
	replicaGets := 0
	for i, n := range cl.Nodes {
		if !isMaster[i] { // replication brings SETs to a replica, never GETs
			replicaGets += redistest.CommandCalls(t, n.Addr(), "get") - before[i]
		}
	}
	if replicaGets == 0 {
		t.Fatal("no GET reached a replica with replica reads on")
	}
}
