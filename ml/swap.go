package ml

import (
	"context"
	"sync"

	"github.com/voluntree/voluntree"
)

// Swappable is a Model whose underlying model can be replaced while it serves: a batch runs
// whole on the model it started with, the next one on the new model, and the old model is
// closed once its last batch is done. Nothing in flight fails or is dropped.
type Swappable struct {
	mu      sync.RWMutex // Predict holds it shared for a batch; Swap exclusively for the switch
	cur     Model
	version string
}

// NewSwappable serves m, known as version.
func NewSwappable(m Model, version string) *Swappable {
	return &Swappable{cur: m, version: version}
}

// Predict implements Model on the current model.
func (s *Swappable) Predict(ctx context.Context, texts []string) ([]voluntree.Prediction, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Predict(ctx, texts)
}

// Info implements Model: the current model's.
func (s *Swappable) Info() Info {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Info()
}

// Version is the current model's version.
func (s *Swappable) Version() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version
}

// Swap makes m, known as version, the model of the next batches. It waits for the batch in
// flight, then closes the model it replaced.
func (s *Swappable) Swap(m Model, version string) error {
	s.mu.Lock()
	old := s.cur
	s.cur, s.version = m, version
	s.mu.Unlock()
	return old.Close()
}

// Close closes the current model.
func (s *Swappable) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Close()
}
