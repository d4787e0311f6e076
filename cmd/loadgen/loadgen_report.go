package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// loadgenCounts are the outcomes of a range of comments.
type loadgenCounts struct {
	Sent       int            `json:"sent"`
	Acked      int            `json:"acked"`
	Rejected   int            `json:"rejected"`
	RejectedBy map[string]int `json:"rejected_by_status,omitempty"` // "503", "error" (no response)
	Events     int            `json:"events"`                       // comments with at least one event
	Lost       int            `json:"lost"`                         // acked, no event
	Duplicated int            `json:"duplicated"`                   // events beyond the first per comment
	Unexpected int            `json:"events_for_rejected"`          // events of comments not acked
	LateSends  int            `json:"late_sends"`                   // sent > 10 ms after due
	// NoRetryAfter: refusals (HTTP 429 or 5xx) without Retry-After, which Facebook would
	// retry blindly; a server that sheds load well has none.
	NoRetryAfter int `json:"refused_without_retry_after"`
}

type loadgenBench struct {
	Addr       string  `json:"addr,omitempty"`
	XADDPerSec float64 `json:"xadd_per_s,omitempty"`
	Ratio      float64 `json:"sustained_to_raw,omitempty"`
	Error      string  `json:"error,omitempty"`
}

type loadgenReport struct {
	RunID       string  `json:"run_id"`
	URL         string  `json:"url"`
	TargetRate  float64 `json:"target_rate"`
	Warmup      float64 `json:"warmup_s"`
	Duration    float64 `json:"duration_s"`
	Window      float64 `json:"measured_window_s"` // Duration, or less when stopped early
	Posts       int     `json:"posts"`
	Senders     int     `json:"senders"`
	Concurrency int     `json:"concurrency"`
	Texts       int     `json:"texts"`
	Stopped     string  `json:"stopped,omitempty"` // why the run ended early

	Total    loadgenCounts `json:"total"`    // warmup included
	Measured loadgenCounts `json:"measured"` // comments due in the measured window

	// Sustained: events of the comments whose webhook call started in the measured window
	// (whenever the event arrived, drain included) ÷ the window. Sends are open loop at
	// TargetRate, so a server that answers the webhook slower than that sends fewer.
	Sustained float64 `json:"sustained_events_per_s"`
	// Delivered: events (of any comment of the run) received in the window ÷ the window; a
	// pipeline that acks fast but processes slower than TargetRate shows here.
	Delivered float64 `json:"delivered_events_per_s"`

	E2E latencySummary `json:"e2e_latency"` // due time → WebSocket event, measured window
	Ack latencySummary `json:"ack_latency"` // request start → 200, measured window

	ForeignEvents  int            `json:"foreign_events"`
	Reconnects     int            `json:"feed_reconnects,omitempty"` // the live feed dropped and was resumed with since
	ControlFrames  map[string]int `json:"control_frames,omitempty"`
	BadFrames      int            `json:"bad_frames,omitempty"`
	TransportError string         `json:"first_transport_error,omitempty"`

	Redis  *loadgenBench  `json:"redis_benchmark,omitempty"`
	Memory *loadgenMemory `json:"node_rss,omitempty"` // the node's resident memory (its /metrics)
	// Nodes: every node's CPU, comments and the model's batches over the run (their /metrics).
	Nodes *loadgenNodes `json:"cluster,omitempty"`

	// StartedUnixMs is when comment 0 was due (wall clock), the zero of Timeline: a fault
	// injected at a known time can be matched to the comments due after it.
	StartedUnixMs int64 `json:"started_unix_ms"`
	// Timeline: the comments of each second of due time, warmup included.
	Timeline []loadgenSecond `json:"timeline,omitempty"`
}

// loadgenSecond is what happened to the comments due in one second [T, T+1) of the run.
type loadgenSecond struct {
	T      int            `json:"t"` // seconds after StartedUnixMs
	Sent   int            `json:"sent"`
	Acked  int            `json:"acked"`
	Lost   int            `json:"lost"`
	Dup    int            `json:"duplicated"`
	E2E    latencySummary `json:"e2e_latency"`
	AckP99 float64        `json:"ack_p99_ms"`
}

// timeline cuts comments [0, end) into seconds of due time.
func (g *loadgen) timeline(end int) []loadgenSecond {
	var out []loadgenSecond
	for i := 0; i < end; {
		sec := len(out)
		to := min(end, scheduleCount(g.cfg.Rate, time.Duration(sec+1)*time.Second))
		s := loadgenSecond{T: sec}
		var e2e, ack []time.Duration
		for ; i < to; i++ {
			rec := &g.recs[i]
			if rec.status == 0 {
				continue
			}
			s.Sent++
			if rec.events > 1 {
				s.Dup += int(rec.events) - 1
			}
			if rec.status != http.StatusOK {
				continue
			}
			s.Acked++
			ack = append(ack, time.Duration(rec.ackNs))
			if rec.events == 0 {
				s.Lost++
			} else {
				e2e = append(e2e, time.Duration(rec.eventNs-g.dueNs(i)))
			}
		}
		s.E2E = summarizeLatencies(e2e)
		s.AckP99 = float64(summarizeLatencies(ack).P99) / 1e6
		out = append(out, s)
	}
	return out
}

// report computes the figures once every goroutine that writes recs has ended: scheduled
// comments were handed out, the scheduler returned at schedEndNs, stopped says why the run
// ended early ("" if it did not).
func (g *loadgen) report(scheduled int, schedEndNs int64, stopped string) *loadgenReport {
	cfg := g.cfg
	r := &loadgenReport{
		RunID: g.names.RunID, URL: cfg.URL, TargetRate: cfg.Rate,
		Warmup: cfg.Warmup.Seconds(), Duration: cfg.Duration.Seconds(),
		Posts: cfg.Posts, Senders: cfg.Senders, Concurrency: cfg.Concurrency, Texts: len(g.texts),
		Stopped: stopped, ForeignEvents: g.foreign, Reconnects: g.reconnects, BadFrames: g.badFrames, TransportError: g.firstErr,
	}
	if len(g.control) > 0 {
		r.ControlFrames = g.control
	}
	// The window is [warmup, warmup + duration) after the start, cut short when the
	// scheduler stopped early (Ctrl-C, WebSocket lost) at schedEndNs.
	window := cfg.Duration
	if scheduled < g.n {
		window = time.Duration(schedEndNs - g.startNs.Load() - int64(cfg.Warmup))
		window = max(0, min(cfg.Duration, window))
	}
	r.Window = window.Seconds()
	end := min(scheduled, g.n)
	mEnd := max(g.first, end)
	r.Total = g.count(0, end)
	r.Measured = g.count(g.first, mEnd)

	var e2e, ack []time.Duration
	for i := g.first; i < mEnd; i++ {
		rec := &g.recs[i]
		if rec.status == http.StatusOK {
			ack = append(ack, time.Duration(rec.ackNs))
			if rec.events > 0 {
				e2e = append(e2e, time.Duration(rec.eventNs-g.dueNs(i)))
			}
		}
	}
	r.E2E, r.Ack = summarizeLatencies(e2e), summarizeLatencies(ack)
	r.StartedUnixMs = g.base.Add(time.Duration(g.startNs.Load())).UnixMilli()
	r.Timeline = g.timeline(end)

	if window > 0 {
		from := g.startNs.Load() + int64(cfg.Warmup)
		to := from + int64(window)
		sustained, delivered := 0, 0
		for i := range end {
			rec := &g.recs[i]
			if rec.events == 0 {
				continue
			}
			if rec.sentNs >= from && rec.sentNs < to {
				sustained++
			}
			if rec.eventNs >= from && rec.eventNs < to {
				delivered++
			}
		}
		r.Sustained = float64(sustained) / window.Seconds()
		r.Delivered = float64(delivered) / window.Seconds()
	}
	return r
}

func (g *loadgen) count(from, to int) loadgenCounts {
	var c loadgenCounts
	for i := from; i < to; i++ {
		rec := &g.recs[i]
		if rec.status == 0 {
			continue // never handed to a worker (stopped early)
		}
		c.Sent++
		if rec.sentNs-g.dueNs(i) > int64(loadgenLate) {
			c.LateSends++
		}
		if rec.events > 0 {
			c.Events++
			c.Duplicated += int(rec.events) - 1
		}
		if rec.status == http.StatusOK {
			c.Acked++
			if rec.events == 0 {
				c.Lost++
			}
			continue
		}
		c.Rejected++
		if c.RejectedBy == nil {
			c.RejectedBy = map[string]int{}
		}
		key := "error"
		if rec.status != lgStatusError {
			key = strconv.Itoa(int(rec.status))
		}
		if (rec.status == http.StatusTooManyRequests || rec.status >= 500) && !rec.retry {
			c.NoRetryAfter++
		}
		c.RejectedBy[key]++
		if rec.events > 0 {
			c.Unexpected++
		}
	}
	return c
}

func (r *loadgenReport) print(w io.Writer) {
	fmt.Fprintf(w, "loadgen run %s → %s\n", r.RunID, r.URL)
	fmt.Fprintf(w, "  load         open loop at %g comments/s: %gs warmup + %gs measured; %d posts, %d senders, %d texts, concurrency %d\n",
		r.TargetRate, r.Warmup, r.Duration, r.Posts, r.Senders, r.Texts, r.Concurrency)
	if r.Stopped != "" {
		fmt.Fprintf(w, "  STOPPED      %s: the measured window is %.2fs\n", r.Stopped, r.Window)
	}
	fmt.Fprintf(w, "  %-22s %10s %10s\n", "", "total", "measured")
	row := func(name string, a, b int) { fmt.Fprintf(w, "  %-22s %10d %10d\n", name, a, b) }
	t, m := r.Total, r.Measured
	row("sent", t.Sent, m.Sent)
	row("acked (200)", t.Acked, m.Acked)
	row("rejected", t.Rejected, m.Rejected)
	row("events", t.Events, m.Events)
	row("lost", t.Lost, m.Lost)
	row("duplicated", t.Duplicated, m.Duplicated)
	row("late sends (>10ms)", t.LateSends, m.LateSends)
	if t.Rejected > 0 {
		keys := make([]string, 0, len(t.RejectedBy))
		for k := range t.RejectedBy {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			name := "HTTP " + k
			if k == "error" {
				name = "no response"
			}
			parts[i] = fmt.Sprintf("%s: %d", name, t.RejectedBy[k])
		}
		fmt.Fprintf(w, "  rejected by  %s (not expected to produce events); without Retry-After: %d\n", strings.Join(parts, ", "), t.NoRetryAfter)
		if r.TransportError != "" {
			fmt.Fprintf(w, "  first error  %s\n", r.TransportError)
		}
	}
	if t.Unexpected > 0 {
		fmt.Fprintf(w, "  note         %d events for comments that were not acknowledged (e.g. a timed-out call the server did enqueue)\n", t.Unexpected)
	}
	pct := 0.0
	if r.TargetRate > 0 {
		pct = 100 * r.Sustained / r.TargetRate
	}
	fmt.Fprintf(w, "  sustained    %.1f events/s = %.1f%% of target (events of comments sent in the %.2fs measured window ÷ %.2fs; open loop at %g/s)\n",
		r.Sustained, pct, r.Window, r.Window, r.TargetRate)
	fmt.Fprintf(w, "  delivered    %.1f events/s (events received during the measured window ÷ %.2fs)\n", r.Delivered, r.Window)
	fmt.Fprintf(w, "  e2e latency  %s  (n=%d; due time → WebSocket event)\n", r.E2E, r.E2E.N)
	fmt.Fprintf(w, "  webhook ack  %s  (n=%d; request start → 200)\n", r.Ack, r.Ack.N)
	if r.Reconnects > 0 {
		fmt.Fprintf(w, "  feed         dropped and resumed with since %d times\n", r.Reconnects)
	}
	if len(r.ControlFrames) > 0 || r.ForeignEvents > 0 || r.BadFrames > 0 {
		keys := make([]string, 0, len(r.ControlFrames))
		for k := range r.ControlFrames {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys)+2)
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%q frames %d", k, r.ControlFrames[k]))
		}
		if r.ForeignEvents > 0 {
			parts = append(parts, fmt.Sprintf("events of other runs/posters %d (ignored)", r.ForeignEvents))
		}
		if r.BadFrames > 0 {
			parts = append(parts, fmt.Sprintf("undecodable frames %d", r.BadFrames))
		}
		fmt.Fprintf(w, "  websocket    %s\n", strings.Join(parts, ", "))
		if r.ControlFrames["gap"] > 0 {
			fmt.Fprintf(w, "               a \"gap\" frame means the server skipped events for this subscriber: lost may include them\n")
		}
	}
	if m := r.Memory; m != nil {
		if m.Samples == 0 {
			fmt.Fprintf(w, "  node memory  unavailable: %s\n", m.Error)
		} else {
			fmt.Fprintf(w, "  node memory  RSS peak %.0f MB, steady %.0f MB (median of the measured window; %d samples of process_resident_memory_bytes)\n",
				m.PeakBytes/1e6, m.SteadyBytes/1e6, m.Samples)
		}
	}
	if r.Nodes != nil {
		r.Nodes.print(w)
	}
	if b := r.Redis; b != nil {
		if b.Error != "" {
			fmt.Fprintf(w, "  redis XADD   failed: %s\n", b.Error)
		} else {
			fmt.Fprintf(w, "  redis XADD   %.0f/s raw (redis-benchmark -P %d -n %d on %s); sustained/raw %.4f (%.2f%%)\n",
				b.XADDPerSec, loadgenBenchPipeline, loadgenBenchRequests, b.Addr, b.Ratio, 100*b.Ratio)
		}
	}
	switch {
	case t.Lost > 0 || t.Duplicated > 0:
		fmt.Fprintf(w, "  result       FAIL: %d acknowledged comments lost, %d events duplicated\n", t.Lost, t.Duplicated)
	case r.Stopped != "":
		fmt.Fprintf(w, "  result       INCOMPLETE: no loss or duplicate seen in what ran\n")
	case t.Acked == 0:
		fmt.Fprintf(w, "  result       FAIL: no comment was acknowledged\n")
	default:
		fmt.Fprintf(w, "  result       PASS: each of the %d acknowledged comments produced exactly one event\n", t.Acked)
	}
}

// verdict is the run's error: nil only for a complete run in which every acknowledged comment
// produced exactly one event.
func (r *loadgenReport) verdict(problems []string) error {
	t := r.Total
	if t.Lost > 0 || t.Duplicated > 0 {
		problems = append([]string{fmt.Sprintf("%d acknowledged comments lost, %d events duplicated", t.Lost, t.Duplicated)}, problems...)
	}
	if t.Sent > 0 && t.Acked == 0 {
		by := make([]string, 0, len(t.RejectedBy))
		for k, v := range t.RejectedBy {
			by = append(by, fmt.Sprintf("%s: %d", k, v))
		}
		sort.Strings(by)
		problems = append(problems, fmt.Sprintf("no comment was acknowledged (%s); check -url and -secret", strings.Join(by, ", ")))
	}
	if r.Stopped != "" {
		problems = append(problems, "run stopped early: "+r.Stopped)
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}
