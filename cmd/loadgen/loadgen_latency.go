package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"
)

// scheduleOffset is when comment i is due, counted from the start of the run.
func scheduleOffset(i int, rate float64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / rate)
}

// scheduleCount is how many comments are due before d: the least n with
// scheduleOffset(n) >= d. It is also the index of the first comment due at or after d.
func scheduleCount(rate float64, d time.Duration) int {
	if d <= 0 {
		return 0
	}
	n := int(math.Ceil(d.Seconds() * rate))
	for n > 0 && scheduleOffset(n-1, rate) >= d {
		n--
	}
	for scheduleOffset(n, rate) < d {
		n++
	}
	return n
}

// latencySummary holds exact percentiles of recorded samples.
type latencySummary struct {
	N                  int
	P50, P95, P99, Max time.Duration
}

// summarizeLatencies sorts samples in place and returns their nearest-rank percentiles.
func summarizeLatencies(samples []time.Duration) latencySummary {
	slices.Sort(samples)
	return latencySummary{
		N:   len(samples),
		P50: percentile(samples, 50),
		P95: percentile(samples, 95),
		P99: percentile(samples, 99),
		Max: percentile(samples, 100),
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of sorted: the smallest
// sample with at least p% of the samples at or below it. It is 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(n)/100 - 1e-9))
	rank = max(1, min(n, rank))
	return sorted[rank-1]
}

// latencyJSON is latencySummary in JSON: milliseconds, to the microsecond.
type latencyJSON struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func (s latencySummary) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return json.Marshal(latencyJSON{s.N, ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max)})
}

func (s *latencySummary) UnmarshalJSON(b []byte) error {
	var j latencyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	d := func(ms float64) time.Duration { return time.Duration(math.Round(ms * 1e6)) }
	*s = latencySummary{N: j.N, P50: d(j.P50), P95: d(j.P95), P99: d(j.P99), Max: d(j.Max)}
	return nil
}

func (s latencySummary) String() string {
	if s.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s", fmtLatency(s.P50), fmtLatency(s.P95), fmtLatency(s.P99), fmtLatency(s.Max))
}

func fmtLatency(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fs", ms/1000)
	}
}
