package ml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Dims are the sizes of the intent network.
type Dims struct {
	Buckets int64 `json:"buckets"` // rows of the embedding table (= featurizer buckets)
	Embed   int64 `json:"embed"`   // embedding width
	Hidden  int64 `json:"hidden"`  // hidden layer width
	Classes int64 `json:"classes"` // output columns (6)
}

// network is the intent classifier, fastText-like with one hidden layer:
//
//	feature bags -> embedding_bag mean [B,E] -> Linear(E,H) -> ReLU -> Linear(H,C)
//
// Index 0 is never produced by the featurizer (it is TorchScript's padding); its row is zero.
type network struct {
	dims                Dims
	emb, w1, b1, w2, b2 *ts.Tensor // emb [V,E], w1 [E,H], b1 [H], w2 [H,C], b2 [C]
}

// tensorNames is the order in which parameters are stored in a model file.
var tensorNames = []string{"emb", "w1", "b1", "w2", "b2"}

func (d Dims) shapes() map[string][]int64 {
	return map[string][]int64{
		"emb": {d.Buckets, d.Embed}, "w1": {d.Embed, d.Hidden}, "b1": {d.Hidden},
		"w2": {d.Hidden, d.Classes}, "b2": {d.Classes},
	}
}

func (n *network) params() map[string]**ts.Tensor {
	return map[string]**ts.Tensor{"emb": &n.emb, "w1": &n.w1, "b1": &n.b1, "w2": &n.w2, "b2": &n.b2}
}

// initialValues returns seeded initial parameter values: small normal embeddings (zero padding
// row), Kaiming-uniform linear weights, zero biases.
func initialValues(d Dims, seed uint64) map[string][]float32 {
	rng := rand.New(rand.NewPCG(seed, 0x766f6c756e74))
	vals := make(map[string][]float32)
	emb := make([]float32, d.Buckets*d.Embed)
	for i := d.Embed; i < int64(len(emb)); i++ {
		emb[i] = float32(rng.NormFloat64() * 0.1)
	}
	vals["emb"] = emb
	uniform := func(n, fanIn int64) []float32 {
		bound := math.Sqrt(6.0 / float64(fanIn))
		out := make([]float32, n)
		for i := range out {
			out[i] = float32((rng.Float64()*2 - 1) * bound)
		}
		return out
	}
	vals["w1"] = uniform(d.Embed*d.Hidden, d.Embed)
	vals["b1"] = make([]float32, d.Hidden)
	vals["w2"] = uniform(d.Hidden*d.Classes, d.Hidden)
	vals["b2"] = make([]float32, d.Classes)
	return vals
}

// newNetwork builds a network from parameter values (no gradients).
func newNetwork(d Dims, vals map[string][]float32) (*network, error) {
	return onThread(func() (*network, error) { return buildNetwork(d, vals) })
}

func buildNetwork(d Dims, vals map[string][]float32) (*network, error) {
	n := &network{dims: d}
	shapes := d.shapes()
	for _, name := range tensorNames {
		v, shape := vals[name], shapes[name]
		if want := numel(shape); int64(len(v)) != want {
			n.drop()
			return nil, fmt.Errorf("ml: tensor %s has %d values, want %d", name, len(v), want)
		}
		t, err := ts.OfSlice(v)
		if err != nil {
			n.drop()
			return nil, fmt.Errorf("ml: tensor %s: %w", name, err)
		}
		*n.params()[name] = t.MustView(shape, true)
	}
	return n, nil
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, s := range shape {
		n *= s
	}
	return n
}

// values copies the parameters out to Go slices.
func (n *network) values() map[string][]float32 {
	out := make(map[string][]float32)
	for name, p := range n.params() {
		v := make([]float32, (*p).Numel())
		(*p).MustCopyData(v, uint((*p).Numel()))
		out[name] = v
	}
	return out
}

func (n *network) drop() {
	for _, p := range n.params() {
		if *p != nil {
			(*p).MustDrop()
			*p = nil
		}
	}
}

// forward returns logits [B,C] for a bag of features per row: flat holds every row's indices
// back to back, offsets [B] where each row starts. embedding_bag takes the mean per row with
// no padding, so a long comment in a batch costs only its own features. It uses gotch's
// error-returning calls: its Must* variants log.Fatal, and a failed batch must not end the
// server.
func (n *network) forward(flat, offsets *ts.Tensor) (*ts.Tensor, error) {
	none := ts.NewTensor() // undefined tensor: no per-sample weights
	mean, o1, o2, o3, err := ts.EmbeddingBag(n.emb, flat, offsets, false, embeddingBagMean, false, none, false)
	none.MustDrop()
	if err != nil {
		return nil, fmt.Errorf("ml: embedding_bag: %w", err)
	}
	for _, t := range []*ts.Tensor{o1, o2, o3} {
		t.MustDrop()
	}
	// Each call with del=true frees its receiver, on success or error.
	h, err := mean.Matmul(n.w1, true)
	if err == nil {
		h, err = h.Add(n.b1, true)
	}
	if err == nil {
		h, err = h.Relu(true)
	}
	if err == nil {
		h, err = h.Matmul(n.w2, true)
	}
	if err == nil {
		h, err = h.Add(n.b2, true)
	}
	if err != nil {
		return nil, fmt.Errorf("ml: forward: %w", err)
	}
	return h, nil
}

// embeddingBagMean is mode 1 of aten::embedding_bag (0 sum, 1 mean, 2 max).
const embeddingBagMean = 1

// bagInputs packs per-text feature indices into embedding_bag's flat indices and offsets.
// Every text has at least one feature (the featurizer always emits shape features).
func bagInputs(feats [][]int64) (flat, offsets *ts.Tensor) {
	total := 0
	for _, f := range feats {
		total += len(f)
	}
	all := make([]int64, 0, total)
	offs := make([]int64, len(feats))
	for i, f := range feats {
		offs[i] = int64(len(all))
		all = append(all, f...)
	}
	return ts.MustOfSlice(all), ts.MustOfSlice(offs)
}

// padIndices packs per-text feature indices into a [B,L] int64 tensor padded with 0: the
// input of TorchScript models.
func padIndices(feats [][]int64) *ts.Tensor {
	width := 1
	for _, f := range feats {
		width = max(width, len(f))
	}
	flat := make([]int64, len(feats)*width)
	for i, f := range feats {
		copy(flat[i*width:], f)
	}
	return ts.MustOfSlice(flat).MustView([]int64{int64(len(feats)), int64(width)}, true)
}

// softmaxRows turns logits [B,C] into per-row probabilities in Go.
func softmaxRows(logits *ts.Tensor, classes int) ([][]float32, error) {
	probs, err := logits.Softmax(-1, gotch.Float, false)
	if err != nil {
		return nil, fmt.Errorf("ml: softmax: %w", err)
	}
	defer probs.MustDrop()
	flat := make([]float32, probs.Numel())
	if err := probs.CopyData(flat, probs.Numel()); err != nil {
		return nil, fmt.Errorf("ml: read probabilities: %w", err)
	}
	rows := make([][]float32, len(flat)/classes)
	for i := range rows {
		rows[i] = flat[i*classes : (i+1)*classes]
	}
	return rows, nil
}

// onThread runs fn on one OS thread. Every gotch call must: gotch keeps the last libtorch
// error in a thread-local slot that it reads after the call, and Go may move a goroutine to
// another thread between the two (the error is then lost, or surfaces in an unrelated call).
func onThread[T any](fn func() (T, error)) (T, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return fn()
}

// withoutGrad runs fn on one OS thread with autograd off (grad mode is thread-local too).
func withoutGrad[T any](fn func() (T, error)) (T, error) {
	return onThread(func() (T, error) {
		prev := ts.MustGradSetEnabled(false)
		defer ts.MustGradSetEnabled(prev)
		return fn()
	})
}
