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

// BenchmarkPredict measures the whole model path (featurize, pad, libtorch forward, softmax)
// per batch size; items/s is the figure to compare across sizes.
func BenchmarkPredict(b *testing.B) {
	benchThreads(b)
	m, err := LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for _, size := range []int{1, 8, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			texts := benchTexts(b, size)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Predict(ctx, texts); err != nil {
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
	benchThreads(b)
	m, err := LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for _, size := range []int{1, 8, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			feats := featurizeAll(m.feat, benchTexts(b, size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.forwardFeatures(feats); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
