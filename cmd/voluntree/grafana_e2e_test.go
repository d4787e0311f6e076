package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// grafanaDashboard is what the test reads of compose/grafana/dashboards/voluntree.json.
type grafanaDashboard struct {
	UID    string         `json:"uid"`
	Title  string         `json:"title"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaPanel struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// TestGrafanaDashboardQueriesReturnSeries: Grafana is not in Debian, so its provisioning is
// checked here and its dashboard's every query is evaluated against a real Prometheus
// (Debian's) scraping two real nodes after a load: every query must parse and return series —
// a renamed metric or a wrong label fails it.
func TestGrafanaDashboardQueriesReturnSeries(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "compose", "grafana", "dashboards", "voluntree.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash grafanaDashboard
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	// The provisioning: the datasource uid the panels name, the folder the provider reads, the
	// compose mounts that put them there.
	ds, _ := os.ReadFile(filepath.Join("..", "..", "compose", "grafana", "provisioning", "datasources", "prometheus.yml"))
	prov, _ := os.ReadFile(filepath.Join("..", "..", "compose", "grafana", "provisioning", "dashboards", "voluntree.yml"))
	compose, _ := os.ReadFile(filepath.Join("..", "..", "compose", "docker-compose.yml"))
	for what, c := range map[string]bool{
		"datasource uid prometheus":           strings.Contains(string(ds), "uid: prometheus"),
		"datasource URL":                      strings.Contains(string(ds), "url: http://prometheus:9090"),
		"dashboards provider path":            strings.Contains(string(prov), "path: /var/lib/grafana/dashboards"),
		"compose mounts the dashboards there": strings.Contains(string(compose), "./grafana/dashboards:/var/lib/grafana/dashboards"),
		"compose mounts the provisioning":     strings.Contains(string(compose), "./grafana/provisioning:/etc/grafana/provisioning"),
		"dashboard uid":                       dash.UID == "voluntree",
	} {
		if !c {
			t.Errorf("grafana provisioning: %s", what)
		}
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "prometheus" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %q, %d queries", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("%d queries in the dashboard", len(exprs))
	}

	// Two nodes under a short load, scraped every second by Prometheus.
	const prefix = "e2e-grafana"
	token := orgWithPages(t, prefix, "acme", "grafana-page")
	nodes, _ := clusterNodes(t, prefix, 2, "VOLUNTREE_MAIL_OUTBOX=on")
	promURL := startPrometheus(t, nodes)
	done := startLoadgen(t, nodes[0], token, "grafana-page", "-rate", "100", "-warmup", "1s", "-duration", "4s",
		"-posts", "5", "-senders", "300", "-drain", "30s")
	loadgenResult(t, done, 400)
	query := func(expr string) (int, error) {
		resp, err := http.Get(promURL + "/api/v1/query?query=" + url.QueryEscape(strings.ReplaceAll(expr, "$instance", ".*")))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var out struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return 0, err
		}
		if out.Status != "success" {
			return 0, fmt.Errorf("%s", out.Error)
		}
		return len(out.Data.Result), nil
	}
	// Rates need two scrapes of a series: a counter born during the load (its first webhook)
	// needs a second scrape after it. Every query gets until the deadline to return series.
	failing := map[string]string{}
	for _, e := range exprs {
		failing[e] = "not asked yet"
	}
	deadline := time.Now().Add(45 * time.Second)
	for len(failing) > 0 && time.Now().Before(deadline) {
		for e := range failing {
			n, err := query(e)
			switch {
			case err != nil:
				failing[e] = err.Error()
			case n == 0:
				failing[e] = "no series"
			default:
				delete(failing, e)
			}
		}
		if len(failing) > 0 {
			time.Sleep(500 * time.Millisecond) // the next scrape; bounded by the deadline
		}
	}
	for e, why := range failing {
		t.Errorf("query %s: %s", e, why)
	}
}

// startPrometheus runs Debian's prometheus scraping the nodes every second, and returns its
// URL once it answers.
func startPrometheus(t *testing.T, nodes []*node) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus (Debian's package, installed by make test): %v", err)
	}
	dir := t.TempDir()
	var targets []string
	for _, n := range nodes {
		targets = append(targets, strconv.Quote(strings.TrimPrefix(n.base, "http://")))
	}
	cfg := "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: voluntree\n    static_configs:\n      - targets: [" +
		strings.Join(targets, ", ") + "]\n"
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePorts(t, 1)[0]
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port))
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	u := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(u + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return u
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Fatalf("prometheus not ready within 30 s: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond) // polling its readiness, with a deadline
	}
}
