package ml

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/voluntree/voluntree"
)

// ErrClosed is returned by Predict after Close.
var ErrClosed = errors.New("ml: model is closed")

// Model classifies a batch of texts in one forward pass. Implementations are safe for
// concurrent use; the batching actor calls Predict from one goroutine at a time.
type Model interface {
	Predict(ctx context.Context, texts []string) ([]voluntree.Prediction, error)
	Info() Info
	Close() error
}

// Info describes a loaded model.
type Info struct {
	Kind       string           `json:"kind"` // "native" or "torchscript"
	Path       string           `json:"path"`
	Labels     []string         `json:"labels"`
	Featurizer FeaturizerConfig `json:"featurizer"`
	Dims       *Dims            `json:"dims,omitempty"`
	Training   *TrainingInfo    `json:"training,omitempty"`
}

// Load opens a model file by its content: a native Voluntree model (written by `voluntree
// train`) or a TorchScript module exported from PyTorch (a zip archive).
func Load(path string) (Model, error) {
	head, err := readHead(path, len(modelMagic))
	if err != nil {
		return nil, fmt.Errorf("ml: open model: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, []byte(modelMagic)):
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("ml: open model: %w", err)
		}
		return LoadNative(path, data)
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return LoadTorchScript(path, DefaultFeaturizerConfig()) // libtorch reads the archive itself
	default:
		return nil, fmt.Errorf("ml: %s is neither a Voluntree model nor a TorchScript archive", path)
	}
}

// readHead returns up to n first bytes of the file at path.
func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, n)
	m, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return head[:m], nil
}

// Native is a model trained by `voluntree train` and run through gotch.
type Native struct {
	info Info
	feat FeaturizerConfig
	mu   sync.RWMutex // Predict reads net; Close frees it only when no Predict runs
	net  *network
}

// LoadNative decodes a native model file held in data; path is only reported in Info.
func LoadNative(path string, data []byte) (*Native, error) {
	h, vals, err := readModel(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	if err := checkLabels(h.Labels); err != nil {
		return nil, err
	}
	if err := h.Featurizer.Validate(); err != nil {
		return nil, err
	}
	if h.Dims.Buckets != int64(h.Featurizer.Buckets) || h.Dims.Classes != int64(len(h.Labels)) {
		return nil, fmt.Errorf("ml: model dims %+v do not match featurizer or labels", h.Dims)
	}
	net, err := newNetwork(h.Dims, vals)
	if err != nil {
		return nil, err
	}
	d := h.Dims
	return &Native{
		info: Info{Kind: "native", Path: path, Labels: h.Labels, Featurizer: h.Featurizer, Dims: &d, Training: h.Training},
		feat: h.Featurizer,
		net:  net,
	}, nil
}

func checkLabels(labels []string) error {
	var want []string
	for _, in := range voluntree.Intents() {
		want = append(want, string(in))
	}
	if !slices.Equal(labels, want) {
		return fmt.Errorf("ml: model labels %v, want %v", labels, want)
	}
	return nil
}

// Info implements Model.
func (m *Native) Info() Info { return m.info }

// Predict implements Model.
func (m *Native) Predict(ctx context.Context, texts []string) ([]voluntree.Prediction, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.net == nil {
		return nil, ErrClosed
	}
	if len(texts) == 0 {
		return nil, nil // gotch's Must* helpers would log.Fatal on an empty tensor
	}
	rows, err := m.forwardFeatures(featurizeAll(m.feat, texts))
	if err != nil {
		return nil, err
	}
	return predictions(rows), nil
}

// forwardFeatures runs featurized texts through libtorch and returns probabilities.
func (m *Native) forwardFeatures(bags []bag) ([][]float32, error) {
	return withoutGrad(func() ([][]float32, error) {
		in := bagInputs(bags, m.net.idf)
		defer in.drop()
		logits, err := m.net.forward(in)
		if err != nil {
			return nil, err
		}
		defer logits.MustDrop()
		return softmaxRows(logits, len(m.info.Labels))
	})
}

// Save writes the model to path.
func (m *Native) Save(path string) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.net == nil {
		return ErrClosed
	}
	vals, _ := onThread(func() (map[string][]float32, error) { return m.net.values(), nil })
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("ml: save model: %w", err)
	}
	err = writeModel(f, m.header(), vals)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("ml: save model: %w", cerr)
	}
	return err
}

func (m *Native) header() fileHeader {
	h := fileHeader{Labels: m.info.Labels, Featurizer: m.feat, Dims: m.net.dims, Training: m.info.Training}
	shapes := m.net.dims.shapes()
	for _, name := range m.net.dims.tensorNames() {
		h.Tensors = append(h.Tensors, tensorEntry{Name: name, Shape: shapes[name]})
	}
	return h
}

// Close frees the tensors. Predict fails afterwards.
func (m *Native) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.net != nil {
		onThread(func() (struct{}, error) { m.net.drop(); return struct{}{}, nil })
		m.net = nil
	}
	return nil
}

// featurizeAll featurizes texts; each text yields at least one feature (a shape feature).
// (Splitting large batches over cores was measured slower: the featurizer's allocations
// already keep the other core busy with GC.)
func featurizeAll(cfg FeaturizerConfig, texts []string) []bag {
	out := make([]bag, len(texts))
	for i, t := range texts {
		out[i] = featurize(cfg, t)
	}
	return out
}

// featurize is one text's bag.
func featurize(cfg FeaturizerConfig, text string) bag {
	var b bag
	b.idx, b.ends = cfg.FeaturizeBlocks(text)
	return b
}

func predictions(rows [][]float32) []voluntree.Prediction {
	intents := voluntree.Intents()
	out := make([]voluntree.Prediction, len(rows))
	for i, row := range rows {
		p := voluntree.Prediction{Scores: make(map[voluntree.Intent]float32, len(intents))}
		for j, v := range row {
			p.Scores[intents[j]] = v
			if v > p.Confidence || j == 0 {
				p.Intent, p.Confidence = intents[j], v
			}
		}
		out[i] = p
	}
	return out
}
