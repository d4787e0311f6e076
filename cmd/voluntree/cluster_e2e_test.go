package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricSum sums the samples of a metric in a node's /metrics whose labels contain every one
// of labels (`name="value"` each); -1 when the scrape fails.
func metricSum(t testing.TB, n *node, name string, labels ...string) float64 {
	t.Helper()
	status, body := n.get(t, "/metrics")
	if status != 200 {
		return -1
	}
	sum := 0.0
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// freePorts returns n TCP ports free on loopback right now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// clusterNodes starts n serve processes forming one cluster (the automanaged provider with a
// static peer list) on one Redis prefix.
func clusterNodes(t *testing.T, prefix string, n int, extra ...string) []*node {
	t.Helper()
	ports := freePorts(t, n)
	peers := make([]string, n)
	for i, p := range ports {
		peers[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	nodes := make([]*node, n)
	for i := range nodes {
		env := append([]string{"VOLUNTREE_REDIS_URL=" + redisSrv.URL(t), "VOLUNTREE_REDIS_PREFIX=" + prefix,
			"VOLUNTREE_FB_APP_SECRET=" + e2eSecret, "VOLUNTREE_DEMO=off", fmt.Sprintf("VOLUNTREE_NODE=n%d", i),
			"VOLUNTREE_CLUSTER_HEALTH_PORT=" + strconv.Itoa(ports[i]), "VOLUNTREE_CLUSTER_PEERS=" + strings.Join(peers, ",")}, extra...)
		nodes[i] = startServe(t, env...)
	}
	waitRedis(t, func() bool {
		for _, nd := range nodes {
			if metricSum(t, nd, "voluntree_cluster_members") != float64(n) {
				return false
			}
		}
		return true
	}, fmt.Sprintf("every node seeing %d members", n))
	return nodes
}

// TestClusterOfThreeLosesNothingWhenANodeDies runs three serve processes as one cluster on
// one Redis. Comments go to the first node's webhook at a fixed rate and the loadgen reads
// the first node's live feed; every node's ingest consumer takes a share of the stream and
// hosts a share of the grains. The third node is SIGKILLed mid-run: its grains reactivate on
// the survivors with their state from Redis, its pending entries are reclaimed after
// VOLUNTREE_CLAIM_IDLE, and every acknowledged comment arrives exactly once.
func TestClusterOfThreeLosesNothingWhenANodeDies(t *testing.T) {
	const prefix = "e2e-cluster"
	token := orgWithPages(t, prefix, "acme", "cluster-page")
	nodes := clusterNodes(t, prefix, 3, "VOLUNTREE_CLAIM_IDLE=3s")

	type result struct {
		code        int
		out, stderr bytes.Buffer
	}
	done := make(chan *result, 1)
	go func() {
		r := &result{}
		r.code = run(context.Background(), []string{"loadgen", "-url", nodes[0].base, "-secret", e2eSecret, "-token", token,
			"-page", "cluster-page", "-rate", "200", "-warmup", "1s", "-duration", "14s", "-posts", "20", "-senders", "2000",
			"-drain", "60s", "-json"}, nil, &r.out, &r.stderr)
		done <- r
	}()
	// The work is shared before the kill: each node has taken ingest entries and hosts grains.
	waitRedis(t, func() bool {
		for _, nd := range nodes {
			if metricSum(t, nd, "voluntree_stream_entries_total", `stream="ingest"`, `outcome="done"`) < 1 ||
				metricSum(t, nd, "voluntree_grains_active") < 1 {
				return false
			}
		}
		return true
	}, "every node consuming and hosting grains")
	victim := nodes[2]
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	waitRedis(t, func() bool {
		return metricSum(t, nodes[0], "voluntree_cluster_members") == 2 && metricSum(t, nodes[1], "voluntree_cluster_members") == 2
	}, "the survivors seeing two members")
	t.Logf("topology changed %v after the kill", time.Since(killedAt).Round(time.Millisecond))

	var r *result
	select {
	case r = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("the loadgen did not finish")
	}
	var rep loadgenReport
	if err := json.Unmarshal(r.out.Bytes(), &rep); err != nil {
		t.Fatalf("loadgen exit %d, report %q: %v\n%s", r.code, r.out.String(), err, r.stderr.String())
	}
	tot := rep.Total
	t.Logf("sent %d, acked %d, events %d, lost %d, duplicated %d; e2e p50 %v p99 %v max %v",
		tot.Sent, tot.Acked, tot.Events, tot.Lost, tot.Duplicated, rep.E2E.P50, rep.E2E.P99, rep.E2E.Max)
	if r.code != 0 || tot.Lost != 0 || tot.Duplicated != 0 || tot.Rejected != 0 || tot.Acked != tot.Sent || tot.Sent < 2500 {
		t.Fatalf("loadgen exit %d: %+v\n%s", r.code, tot, r.stderr.String())
	}
	// Nothing is left pending: the victim's entries were reclaimed and acknowledged.
	rdb, _ := redisSrv.Client(t)
	waitRedis(t, func() bool {
		p, err := rdb.XPending(context.Background(), prefix+":{ingest}", "pipeline").Result()
		return err == nil && p.Count == 0
	}, "no ingest entry pending")
}
