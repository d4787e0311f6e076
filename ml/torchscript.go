package ml

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/sugarme/gotch/ts"
	"github.com/voluntree/voluntree"
)

// TorchScript is a model exported from PyTorch with torch.jit.script or torch.jit.trace.
//
// Contract: forward(indices) takes an int64 tensor [B, L] of feature indices made by the
// default featurizer (0 = padding, to be ignored) and returns float logits [B, 6] in the
// column order of voluntree.Intents(). ml/testdata/make_torchscript.py makes such a file.
type TorchScript struct {
	info Info
	feat FeaturizerConfig
	mu   sync.RWMutex // as in Native
	mod  *ts.CModule
}

// LoadTorchScript loads a TorchScript file and checks its output shape with a probe batch.
func LoadTorchScript(path string, feat FeaturizerConfig) (*TorchScript, error) {
	if err := feat.Validate(); err != nil {
		return nil, err
	}
	mod, err := onThread(func() (*ts.CModule, error) {
		mod, err := ts.ModuleLoad(path)
		if err != nil {
			return nil, err
		}
		mod.SetEval()
		return mod, ts.TorchErr()
	})
	if err != nil {
		return nil, fmt.Errorf("ml: load torchscript %s: %w", path, err)
	}
	var labels []string
	for _, in := range voluntree.Intents() {
		labels = append(labels, string(in))
	}
	m := &TorchScript{info: Info{Kind: "torchscript", Path: path, Labels: labels, Featurizer: feat}, feat: feat, mod: mod}
	if _, err := m.Predict(context.Background(), []string{"probe", "a second probe text"}); err != nil {
		m.Close()
		return nil, fmt.Errorf("ml: torchscript %s does not follow the model contract: %w", path, err)
	}
	return m, nil
}

// Info implements Model.
func (m *TorchScript) Info() Info { return m.info }

// Predict implements Model.
func (m *TorchScript) Predict(ctx context.Context, texts []string) ([]voluntree.Prediction, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.mod == nil {
		return nil, ErrClosed
	}
	if len(texts) == 0 {
		return nil, nil
	}
	feats := featurizeAll(m.feat, texts)
	rows, err := withoutGrad(func() ([][]float32, error) {
		idx := padIndices(feats)
		defer idx.MustDrop()
		logits, err := m.mod.Forward(idx)
		if err != nil {
			return nil, fmt.Errorf("ml: torchscript forward: %w", err)
		}
		defer logits.MustDrop()
		shape, err := logits.Size()
		if err != nil {
			return nil, fmt.Errorf("ml: torchscript output: %w", err)
		}
		if want := []int64{int64(len(texts)), int64(len(m.info.Labels))}; !slices.Equal(shape, want) {
			return nil, fmt.Errorf("ml: torchscript output shape %v, want %v", shape, want)
		}
		return softmaxRows(logits, len(m.info.Labels))
	})
	if err != nil {
		return nil, err
	}
	return predictions(rows), nil
}

// Close frees the module.
func (m *TorchScript) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mod != nil {
		onThread(func() (struct{}, error) { m.mod.Drop(); return struct{}{}, nil })
		m.mod = nil
	}
	return nil
}
