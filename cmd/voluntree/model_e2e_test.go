package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The model registry from the command line, and a node switching versions while it
// classifies without a pause: every request answered, the new version served within 5 s of
// promote, rollback included.
func TestModelRegistryHotSwap(t *testing.T) {
	const prefix = "e2e-models"
	shipped := "../../ml/models/intent.vtm"
	flags := []string{"-redis-url", redisSrv.URL(t), "-redis-prefix", prefix}
	model := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, "", append(append([]string{"model"}, args...), flags...)...)
	}
	// Refusals: a file that is no model, a model below the floor, a bad tag.
	junk := filepath.Join(t.TempDir(), "junk.vtm")
	os.WriteFile(junk, []byte("not a model"), 0o600)
	if code, _, errOut := model("push", junk, "-tag", "junk"); code != 1 || !strings.Contains(errOut, "refused: the model does not load") {
		t.Fatalf("push junk: exit %d, %q", code, errOut)
	}
	if code, _, errOut := model("push", shipped, "-tag", "strict", "-min-accuracy", "0.99"); code != 1 ||
		!strings.Contains(errOut, "is below the floor 0.9900") {
		t.Fatalf("push below the floor: exit %d, %q", code, errOut)
	}
	if code, _, errOut := model("push", shipped, "-tag", "no/slash"); code != 2 || !strings.Contains(errOut, "model tag") {
		t.Fatalf("push with a bad tag: exit %d, %q", code, errOut)
	}
	for _, tag := range []string{"v2", "v3"} {
		if code, out, errOut := model("push", shipped, "-tag", tag, "-note", "the shipped one again"); code != 0 ||
			!strings.Contains(out, "model "+tag+" pushed: native") || !strings.Contains(out, "accuracy 0.9") {
			t.Fatalf("push %s: exit %d, %q %q", tag, code, out, errOut)
		}
	}
	if code, _, errOut := model("push", shipped, "-tag", "v2"); code != 1 || !strings.Contains(errOut, "already pushed") {
		t.Fatalf("push v2 again: exit %d, %q", code, errOut)
	}
	code, out, errOut := model("list")
	if code != 0 || !strings.Contains(out, "v3") || !strings.Contains(out, "v2") || strings.Contains(out, "junk") {
		t.Fatalf("list: exit %d, %q %q", code, out, errOut)
	}

	token := func(org string) string {
		t.Helper()
		code, out, errOut := runCLI(t, "", append([]string{"admin", "create-token", "-org", org, "-create-org", "Org " + org}, flags...)...)
		if code != 0 {
			t.Fatalf("create-token %s: exit %d, %q", org, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	opsToken, otherToken := token("ops"), token("other")
	n := startServe(t, "VOLUNTREE_REDIS_URL="+redisSrv.URL(t), "VOLUNTREE_REDIS_PREFIX="+prefix, "VOLUNTREE_CLASSIFY_RATE=0",
		"VOLUNTREE_OPERATOR_ORG=ops")
	defer n.stop(t)
	if !n.serves(t, "file") {
		t.Fatal("before any promotion the node does not serve its file's model")
	}

	// Classify without a pause through every switch.
	var ok, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	body, _ := json.Marshal(map[string]any{"texts": []string{"count me in!", "where do I park?", "no thanks", "sure, I'll bring my truck"}})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Post(n.base+"/api/v1/classify", "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				var res struct {
					Results []struct{ Intent string } `json:"results"`
				}
				json.NewDecoder(resp.Body).Decode(&res)
				resp.Body.Close()
				if resp.StatusCode != 200 || len(res.Results) != 4 || res.Results[0].Intent != "interested" {
					failed.Add(1)
					lastErr.Store(fmt.Sprintf("%d %+v", resp.StatusCode, res))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	switchTo := func(want string, args ...string) {
		t.Helper()
		start := time.Now()
		if code, out, errOut := model(args...); code != 0 {
			t.Fatalf("model %v: exit %d, %q %q", args, code, out, errOut)
		}
		deadline := start.Add(5 * time.Second)
		for !n.serves(t, want) {
			if time.Now().After(deadline) {
				t.Fatalf("the node does not serve %s 5 s after `model %s`\n%s", want, strings.Join(args, " "), n.log())
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("FIGURE model %s: served %s after %d ms", strings.Join(args, " "), want, time.Since(start).Milliseconds())
	}
	switchTo("v2", "promote", "v2")
	switchTo("v3", "promote", "v3")
	switchTo("v2", "rollback")
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || ok.Load() < 20 {
		t.Fatalf("classify through the switches: %d answered, %d failed (last: %v)", ok.Load(), failed.Load(), lastErr.Load())
	}
	t.Logf("FIGURE model switches: %d classify requests answered, 0 failed", ok.Load())

	// The admin API, for the operator organization's owners only.
	call := func(method, path, tok string) (int, map[string]any) {
		t.Helper()
		return n.api(t, method, path, tok, nil, "")
	}
	if code, out := call("GET", "/api/v1/models", otherToken); code != 403 || out["error"] == nil {
		t.Fatalf("GET /api/v1/models by another organization's owner: %d %v", code, out)
	}
	if code, out := call("POST", "/api/v1/models/v3/promote", otherToken); code != 403 {
		t.Fatalf("promote by another organization's owner: %d %v", code, out)
	}
	code, listed := call("GET", "/api/v1/models", opsToken)
	if code != 200 || len(listed["versions"].([]any)) != 2 {
		t.Fatalf("GET /api/v1/models: %d %v", code, listed)
	}
	if nodes := listed["nodes"].([]any); len(nodes) != 1 || nodes[0].(map[string]any)["version"] != "v2" {
		t.Fatalf("the nodes' versions: %v", listed["nodes"])
	}
	if code, out := call("POST", "/api/v1/models/nope/promote", opsToken); code != 404 {
		t.Fatalf("promote an unknown version: %d %v", code, out)
	}
	start := time.Now()
	if code, out := call("POST", "/api/v1/models/v3/promote", opsToken); code != 200 || out["previous"] != "v2" {
		t.Fatalf("promote v3 through the API: %d %v", code, out)
	}
	for !n.serves(t, "v3") {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the node does not serve v3 5 s after the API's promote")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, body := n.get(t, "/healthz"); !strings.Contains(string(body), `"model":"v3"`) {
		t.Fatalf("/healthz does not name the model served: %s", body)
	}
	if code, out := call("POST", "/api/v1/models/rollback", opsToken); code != 200 || out["promoted"] != "v2" {
		t.Fatalf("rollback through the API: %d %v", code, out)
	}

	if code, _, errOut := model("rm", "v2"); code != 1 || !strings.Contains(errOut, "is the promoted one") {
		t.Fatalf("rm the promoted version: exit %d, %q", code, errOut)
	}
	if code, out, errOut := model("rm", "v3"); code != 0 || !strings.Contains(out, "model v3 removed") {
		t.Fatalf("rm v3: exit %d, %q %q", code, out, errOut)
	}
	code, out, _ = model("list", "-json")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"tag":"v2"`) || !strings.Contains(out, `"promoted":true`) {
		t.Fatalf("list -json after rm: %q", out)
	}
}

// serves reports whether the node's /metrics name version as the model it serves.
func (n *node) serves(t *testing.T, version string) bool {
	t.Helper()
	_, body := n.get(t, "/metrics")
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, `voluntree_model_version_info{`) && strings.Contains(line, `version="`+version+`"`) &&
			strings.HasSuffix(line, " 1") {
			return true
		}
	}
	return false
}

// TestModelSwapUnderLoad promotes, promotes again and rolls back while the loadgen posts
// comments at VOLUNTREE_SWAP_RATE a second (default 500; `make model-swap-bench` runs 2,500)
// to a cluster of VOLUNTREE_SWAP_NODES nodes (default 1; the bench runs 1 and 3): every
// acknowledged comment is classified and delivered exactly once, no batch is refused or
// fails, and every node serves each switch within 5 s.
func TestModelSwapUnderLoad(t *testing.T) {
	rate := os.Getenv("VOLUNTREE_SWAP_RATE")
	if rate == "" {
		rate = "500"
	}
	nodes := 1
	if v := os.Getenv("VOLUNTREE_SWAP_NODES"); v != "" {
		var err error
		if nodes, err = strconv.Atoi(v); err != nil || nodes < 1 {
			t.Fatalf("VOLUNTREE_SWAP_NODES=%q: want a count", v)
		}
	}
	const prefix, page = "e2e-swapload", "swp"
	token := orgWithPages(t, prefix, "swapload", page)
	flags := []string{"-redis-url", redisSrv.URL(t), "-redis-prefix", prefix}
	model := func(args ...string) {
		t.Helper()
		if code, out, errOut := runCLI(t, "", append(append([]string{"model"}, args...), flags...)...); code != 0 {
			t.Fatalf("model %v: exit %d, %q %q", args, code, out, errOut)
		}
	}
	for _, tag := range []string{"v2", "v3"} {
		model("push", "../../ml/models/intent.vtm", "-tag", tag)
	}
	var ns []*node
	if nodes == 1 {
		n, _, _ := pipelineNode(t, prefix)
		ns = []*node{n}
	} else {
		ns, _ = clusterNodes(t, prefix, nodes)
	}
	defer func() {
		for _, n := range ns {
			n.stop(t)
		}
	}()
	n := ns[0] // the loadgen's webhooks go to the first node; every node classifies
	done := startLoadgen(t, n, token, page, "-rate", rate, "-duration", "15s", "-warmup", "2s", "-posts", "3")
	sum := func(name string, labels ...string) float64 {
		total := 0.0
		for _, nd := range ns {
			total += metricSum(t, nd, name, labels...)
		}
		return total
	}
	classified := func() float64 { return sum("voluntree_batcher_items_total") }
	for _, step := range []struct {
		want string
		args []string
	}{{"v2", []string{"promote", "v2"}}, {"v3", []string{"promote", "v3"}}, {"v2", []string{"rollback"}}} {
		before := classified()
		waitRedis(t, func() bool { return classified() > before+500 }, "500 more comments classified")
		start := time.Now()
		model(step.args...)
		deadline := start.Add(5 * time.Second)
		served := make([]time.Duration, len(ns))
		for left := len(ns); left > 0; {
			for i, nd := range ns {
				if served[i] == 0 && nd.serves(t, step.want) {
					served[i] = time.Since(start)
					left--
				}
			}
			if left > 0 && time.Now().After(deadline) {
				t.Fatalf("nodes serving %s 5 s after `model %s` under load: %v (0: not yet)", step.want, strings.Join(step.args, " "), served)
			}
			time.Sleep(20 * time.Millisecond)
		}
		ms := make([]string, len(served))
		for i, d := range served {
			ms[i] = strconv.FormatInt(d.Milliseconds(), 10)
		}
		t.Logf("FIGURE swap under %s/s on %d node(s): model %s served after [%s] ms", rate, len(ns), strings.Join(step.args, " "), strings.Join(ms, ", "))
	}
	rep := loadgenResult(t, done, 1000)
	if r := sum("voluntree_batcher_rejected_items_total"); r != 0 {
		t.Fatalf("%v texts refused by the batchers during the switches", r)
	}
	if f := sum("voluntree_model_swaps_total", `result="failed"`); f != 0 {
		t.Fatalf("%v switches failed", f)
	}
	t.Logf("FIGURE swap under %s/s on %d node(s): %d sent, %d acknowledged, 0 lost, 0 duplicated, 0 refused; e2e p99 %.1f ms",
		rate, len(ns), rep.Total.Sent, rep.Total.Acked, rep.E2E.P99)
}
