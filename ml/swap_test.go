package ml

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
)

// slowModel blocks each Predict until release is closed, and fails after Close.
type slowModel struct {
	intent  voluntree.Intent
	started chan struct{}
	release chan struct{}
	closed  atomic.Bool
}

func (m *slowModel) Predict(ctx context.Context, texts []string) ([]voluntree.Prediction, error) {
	if m.started != nil {
		close(m.started)
		<-m.release
	}
	if m.closed.Load() {
		return nil, ErrClosed
	}
	out := make([]voluntree.Prediction, len(texts))
	for i := range out {
		out[i] = voluntree.Prediction{Intent: m.intent, Confidence: 1}
	}
	return out, nil
}
func (m *slowModel) Info() Info   { return Info{Kind: string(m.intent)} }
func (m *slowModel) Close() error { m.closed.Store(true); return nil }

// A swap waits for the batch in flight, which finishes on the old model; the old model is
// closed after it, and the next batch runs on the new one.
func TestSwapWaitsForTheBatchInFlight(t *testing.T) {
	old := &slowModel{intent: voluntree.IntentQuestion, started: make(chan struct{}), release: make(chan struct{})}
	s := NewSwappable(old, "v1")
	got := make(chan error, 1)
	go func() {
		preds, err := s.Predict(context.Background(), []string{"a"})
		if err == nil && preds[0].Intent != voluntree.IntentQuestion {
			t.Errorf("the batch in flight ran on %s", preds[0].Intent)
		}
		got <- err
	}()
	<-old.started
	swapped := make(chan struct{})
	go func() { s.Swap(&slowModel{intent: voluntree.IntentThanks}, "v2"); close(swapped) }()
	select {
	case <-swapped:
		t.Fatal("Swap returned while a batch ran on the old model")
	case <-time.After(50 * time.Millisecond): // proving a negative: nothing to wait on
	}
	close(old.release)
	if err := <-got; err != nil {
		t.Fatalf("the batch in flight failed: %v", err)
	}
	<-swapped
	if !old.closed.Load() {
		t.Fatal("the replaced model was not closed")
	}
	preds, err := s.Predict(context.Background(), []string{"b"})
	if err != nil || preds[0].Intent != voluntree.IntentThanks || s.Version() != "v2" || s.Info().Kind != string(voluntree.IntentThanks) {
		t.Fatalf("after the swap: %v %v version %s", preds, err, s.Version())
	}
}
