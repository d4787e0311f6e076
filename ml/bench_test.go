package ml

import (
	"context"
	"fmt"
	"testing"
)

// benchThreads uses one libtorch thread, as serve does by default (VOLUNTREE_TORCH_THREADS).
func benchThreads(b *testing.B) {
	if err := SetThreads(1); err != nil {
		b.Fatal(err)
	}
}

// benchTexts are validation texts, cycled: realistic lengths and content.
func benchTexts(b *testing.B, n int) []string {
	b.Helper()
	valid, err := LoadExamples("data/valid.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = valid[i%len(valid)].Text
	}
	return out
}

// BenchmarkPredict measures the whole model path (featurize, libtorch forward, softmax)
// per batch size; items/s is the figure to compare across sizes.
func BenchmarkPredict(b *testing.B) {
	benchBySize(b, func(m *Native, texts []string) func() error {
		ctx := context.Background()
		return func() error { _, err := m.Predict(ctx, texts); return err }
	})
}

// benchBySize runs the operation that prepare returns for batches of 1, 8, 64 and 256
// validation texts, reporting items/s.
func benchBySize(b *testing.B, prepare func(m *Native, texts []string) func() error) {
	benchThreads(b)
	m, err := LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for _, size := range []int{1, 8, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			run := prepare(m, benchTexts(b, size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "items/s")
		})
	}
}

// BenchmarkFeaturize is the Go-side share of BenchmarkPredict, per text.
func BenchmarkFeaturize(b *testing.B) {
	texts := benchTexts(b, 256)
	cfg := DefaultFeaturizerConfig()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cfg.Featurize(texts[i%len(texts)])
	}
}

// BenchmarkForward is the libtorch share of BenchmarkPredict: the model's forward pass and
// softmax on already-featurized batches (as the batcher's worker runs them).
func BenchmarkForward(b *testing.B) {
	benchBySize(b, func(m *Native, texts []string) func() error {
		feats := featurizeAll(m.feat, texts)
		return func() error { _, err := m.forwardFeatures(feats); return err }
	})
}
