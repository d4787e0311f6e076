package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// What every node did during a run, from counters of its /metrics read before the first send
// and after the drain: its CPU (process_cpu_seconds_total), the comments its ingest consumer
// finished (voluntree_stream_entries_total{stream="ingest",outcome="done"}) and its model
// batches (voluntree_batcher_batch_size).

// nodeCounters are the counters read off one scrape.
type nodeCounters struct {
	CPU, IngestDone, BatchSum, BatchCount float64
}

// parseNodeCounters reads the counters from a Prometheus text scrape; a counter the node does
// not export stays 0.
func parseNodeCounters(scrape []byte) nodeCounters {
	var c nodeCounters
	for line := range strings.SplitSeq(string(scrape), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		switch {
		case series == "process_cpu_seconds_total":
			c.CPU = v
		case strings.HasPrefix(series, "voluntree_stream_entries_total{") && strings.Contains(series, `stream="ingest"`) &&
			strings.Contains(series, `outcome="done"`):
			c.IngestDone += v
		case series == "voluntree_batcher_batch_size_sum":
			c.BatchSum = v
		case series == "voluntree_batcher_batch_size_count":
			c.BatchCount = v
		}
	}
	return c
}

// readNodeCounters scrapes one node's /metrics.
func readNodeCounters(ctx context.Context, client *http.Client, url, token string) (nodeCounters, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nodeCounters{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nodeCounters{}, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nodeCounters{}, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nodeCounters{}, fmt.Errorf("GET %s: HTTP %s", url, resp.Status)
	}
	return parseNodeCounters(body), nil
}

// loadgenNode is one node's share of a run.
type loadgenNode struct {
	Metrics    string  `json:"metrics_url"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Comments   float64 `json:"comments"`        // ingest entries it finished
	PerSecond  float64 `json:"comments_per_s"`  // of the run's duration, warmup and drain included
	CPUPer1000 float64 `json:"cpu_s_per_1000"`  // its CPU seconds per 1,000 comments of the whole cluster
	Error      string  `json:"error,omitempty"` // why it could not be read
}

// loadgenNodes is the nodes' part of a report.
type loadgenNodes struct {
	Nodes []loadgenNode `json:"nodes"`
	// AvgBatch is the mean model batch size over every node's batches of the run.
	AvgBatch float64 `json:"avg_model_batch"`
	Seconds  float64 `json:"seconds"` // between the two scrapes
}

// nodeSnapshots reads every node's counters at once.
func nodeSnapshots(ctx context.Context, client *http.Client, urls []string, token string) ([]nodeCounters, []error) {
	out, errs := make([]nodeCounters, len(urls)), make([]error, len(urls))
	done := make(chan struct{}, len(urls))
	for i, u := range urls {
		go func() {
			out[i], errs[i] = readNodeCounters(ctx, client, u, token)
			done <- struct{}{}
		}()
	}
	for range urls {
		<-done
	}
	return out, errs
}

// summarizeNodes turns two snapshots of every node into the report's figures.
func summarizeNodes(urls []string, before, after []nodeCounters, errs []error, elapsed time.Duration) *loadgenNodes {
	r := &loadgenNodes{Seconds: elapsed.Seconds()}
	var total, bsum, bcount float64
	for i := range urls {
		n := loadgenNode{Metrics: urls[i]}
		if errs[i] != nil {
			n.Error = errs[i].Error()
		} else {
			n.CPUSeconds = increase(before[i].CPU, after[i].CPU)
			n.Comments = increase(before[i].IngestDone, after[i].IngestDone)
			if r.Seconds > 0 {
				n.PerSecond = n.Comments / r.Seconds
			}
			total += n.Comments
			bsum += increase(before[i].BatchSum, after[i].BatchSum)
			bcount += increase(before[i].BatchCount, after[i].BatchCount)
		}
		r.Nodes = append(r.Nodes, n)
	}
	for i := range r.Nodes {
		if total > 0 && r.Nodes[i].Error == "" {
			r.Nodes[i].CPUPer1000 = r.Nodes[i].CPUSeconds / (total / 1000)
		}
	}
	if bcount > 0 {
		r.AvgBatch = bsum / bcount
	}
	return r
}

// increase is a counter's growth between two reads; a counter that went down was reset (the
// node restarted): what it counts since is its growth.
func increase(before, after float64) float64 {
	if after < before {
		return after
	}
	return after - before
}

func (r *loadgenNodes) print(w io.Writer) {
	fmt.Fprintf(w, "  model        %.1f texts per batch on average (every node, %.0f s)\n", r.AvgBatch, r.Seconds)
	for _, n := range r.Nodes {
		if n.Error != "" {
			fmt.Fprintf(w, "  node         %s: unavailable: %s\n", n.Metrics, n.Error)
			continue
		}
		fmt.Fprintf(w, "  node         %s: %.0f comments (%.0f/s), %.1f CPU s (%.2f per 1,000 comments of the cluster)\n",
			n.Metrics, n.Comments, n.PerSecond, n.CPUSeconds, n.CPUPer1000)
	}
}
