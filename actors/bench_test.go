package actors

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/ml"
)

func benchBatcher(b *testing.B, cfg BatcherConfig) (*Batcher, *metrics.Metrics) {
	b.Helper()
	if err := ml.SetThreads(1); err != nil { // as serve does by default
		b.Fatal(err)
	}
	model, err := ml.LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := NewSystem(logger, nil)
	m := metrics.New(prometheus.NewRegistry())
	bt, err := NewBatcher(system, model, cfg, m, logger)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		bt.Stop(context.Background())
		system.Shutdown()
		model.Close()
	})
	return bt, m
}

func histogram(b *testing.B, h prometheus.Histogram) (sum float64, count uint64) {
	var pb dto.Metric
	if err := h.Write(&pb); err != nil {
		b.Fatal(err)
	}
	return pb.GetHistogram().GetSampleSum(), pb.GetHistogram().GetSampleCount()
}

// BenchmarkSaturated: 64 senders, one text per request, as fast as they can. avg-batch is
// the mean texts per model call (target: >= 0.75 x max batch), items/s the throughput.
func BenchmarkSaturated(b *testing.B) {
	const senders, maxBatch = 64, 64
	bt, m := benchBatcher(b, BatcherConfig{MaxBatch: maxBatch, MaxDelay: 5 * time.Millisecond})
	texts := []string{"Count me in for Saturday!", "what time does it start?", "cant make it sorry", "thank u ❤️"}
	ctx := context.Background()
	// Warm up, then measure only the timed loop's batches.
	bt.Classify(ctx, texts[:1])
	sum0, count0 := histogram(b, m.BatchSize)
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := bt.Classify(ctx, texts[s%len(texts):s%len(texts)+1]); err != nil {
					b.Error(err)
					return
				}
			}
		}(s)
	}
	wg.Wait()
	b.StopTimer()
	sum, count := histogram(b, m.BatchSize)
	avg := (sum - sum0) / float64(count-count0)
	b.ReportMetric(avg, "avg-batch")
	b.ReportMetric(avg/maxBatch, "fill")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkIdleLatency: one request at a time, so every batch is a lone text that waits for
// max delay. p99-over-delay is how much later than max delay the answer came (target <= 2 ms).
func BenchmarkIdleLatency(b *testing.B) {
	const maxDelay = 5 * time.Millisecond
	bt, _ := benchBatcher(b, BatcherConfig{MaxBatch: 64, MaxDelay: maxDelay})
	ctx := context.Background()
	bt.Classify(ctx, []string{"warm up"})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := bt.Classify(ctx, []string{"is there parking near the park?"}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	b.ReportMetric(float64(p(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64((p(0.99)-maxDelay).Microseconds())/1000, "p99-over-delay-ms")
}
