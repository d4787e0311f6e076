package ml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Dims are the sizes of the intent network and how it pools a text's features.
type Dims struct {
	Buckets int64  `json:"buckets"`           // rows of the embedding table (= featurizer buckets)
	Embed   int64  `json:"embed"`             // embedding width (= Classes when Hidden is 0)
	Hidden  int64  `json:"hidden"`            // hidden layer width; 0 = none, the pooled vector is the logits
	Classes int64  `json:"classes"`           // output columns (6)
	Pooling string `json:"pooling,omitempty"` // PoolMean or PoolTFIDF
}

// How a text's feature vectors are pooled into one.
const (
	// PoolMean, the first models' pooling (their files name none): the mean of the features'
	// vectors, each alike.
	PoolMean = "mean"
	// PoolTFIDF weighs each feature by its inverse document frequency in the training texts
	// (stored in the model as the tensor "idf"), normalises the word-level and the character
	// features apart to unit length, and sums: a rare word outweighs the character n-grams
	// that every text shares, and a long text does not drown its few telling words.
	PoolTFIDF = "tfidf"
)

// network is the intent classifier, fastText-like:
//
//	feature bags -> embedding_bag [B,E] -> Linear(E,H) -> ReLU -> Linear(H,C)
//
// or, without a hidden layer (a linear model over the pooled features), embedding_bag [B,C]
// plus a bias. Index 0 is never produced by the featurizer (it is TorchScript's padding).
type network struct {
	dims                Dims
	emb, w1, b1, w2, b2 *ts.Tensor // emb [V,E], w1 [E,H], b1 [H], w2 [H,C], b2 [C]
	// With PoolTFIDF: idf [V], kept in Go for the blocks' norms; the embedding table scaled
	// row by row by it (emb·idf), made once when serving; and, when training, idf as a [V,1]
	// tensor to scale emb with at every step.
	idf    []float32
	table  *ts.Tensor
	idfCol *ts.Tensor
}

// tensorNames is the order in which a model file stores the tensors of d.
func (d Dims) tensorNames() []string {
	names := []string{"emb", "w1", "b1", "w2", "b2"}
	if d.Hidden == 0 {
		names = []string{"emb", "b2"}
	}
	if d.Pooling == PoolTFIDF {
		names = append(names, "idf")
	}
	return names
}

// trainable reports whether the named tensor is learnt (idf is counted from the data).
func trainable(name string) bool { return name != "idf" }

func (d Dims) shapes() map[string][]int64 {
	return map[string][]int64{
		"emb": {d.Buckets, d.Embed}, "w1": {d.Embed, d.Hidden}, "b1": {d.Hidden},
		"w2": {d.Hidden, d.Classes}, "b2": {d.Classes}, "idf": {d.Buckets},
	}
}

// check reports dims no network has.
func (d Dims) check() error {
	switch {
	case d.Buckets < 2 || d.Embed < 1 || d.Hidden < 0 || d.Classes < 1 || d.Buckets > 1<<26 || d.Embed > 4096 || d.Hidden > 4096:
		return fmt.Errorf("ml: implausible model dims %+v", d)
	case d.Hidden == 0 && d.Embed != d.Classes:
		return fmt.Errorf("ml: a model without a hidden layer needs embed = classes, got %+v", d)
	case d.Pooling != "" && d.Pooling != PoolMean && d.Pooling != PoolTFIDF:
		return fmt.Errorf("ml: unknown pooling %q", d.Pooling)
	}
	return nil
}

func (n *network) params() map[string]**ts.Tensor {
	return map[string]**ts.Tensor{"emb": &n.emb, "w1": &n.w1, "b1": &n.b1, "w2": &n.w2, "b2": &n.b2}
}

// initialValues returns seeded initial parameter values: small normal embeddings (zero padding
// row), Kaiming-uniform linear weights, zero biases. A linear model starts at zero.
func initialValues(d Dims, seed uint64) map[string][]float32 {
	rng := rand.New(rand.NewPCG(seed, 0x766f6c756e74))
	vals := make(map[string][]float32)
	emb := make([]float32, d.Buckets*d.Embed)
	if d.Hidden > 0 {
		for i := d.Embed; i < int64(len(emb)); i++ {
			emb[i] = float32(rng.NormFloat64() * 0.1)
		}
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
	if d.Hidden > 0 {
		vals["w1"] = uniform(d.Embed*d.Hidden, d.Embed)
		vals["b1"] = make([]float32, d.Hidden)
		vals["w2"] = uniform(d.Hidden*d.Classes, d.Hidden)
	}
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
	for _, name := range d.tensorNames() {
		v, shape := vals[name], shapes[name]
		if want := numel(shape); int64(len(v)) != want {
			n.drop()
			return nil, fmt.Errorf("ml: tensor %s has %d values, want %d", name, len(v), want)
		}
		lo, hi := float32(-maxWeight), float32(maxWeight)
		if !trainable(name) {
			lo, hi = 1, maxIDF
		}
		for _, w := range v {
			if !(w >= lo && w <= hi) { // NaN fails both
				n.drop()
				return nil, fmt.Errorf("ml: tensor %s holds %v, want values in [%g, %g]", name, w, lo, hi)
			}
		}
		if !trainable(name) {
			n.idf = slices.Clone(v)
			continue
		}
		t, err := ts.OfSlice(v)
		if err != nil {
			n.drop()
			return nil, fmt.Errorf("ml: tensor %s: %w", name, err)
		}
		*n.params()[name] = t.MustView(shape, true)
	}
	if d.Pooling == PoolTFIDF {
		emb := vals["emb"]
		scaled := make([]float32, len(emb))
		for i := range scaled {
			scaled[i] = emb[i] * n.idf[int64(i)/d.Embed]
		}
		t, err := ts.OfSlice(scaled)
		if err == nil {
			n.table, err = t.View([]int64{d.Buckets, d.Embed}, true)
		}
		if err != nil {
			n.drop()
			return nil, fmt.Errorf("ml: idf table: %w", err)
		}
	}
	return n, nil
}

// Bounds on a model file's values. Trained weights stay far inside ±maxWeight; the bound
// keeps every sum of a forward pass finite in float32, so a hostile or corrupt file is refused
// at load instead of serving NaN. An idf is ln((1+n)/(1+df))+1: at least 1, and 64 would take
// 10^27 training texts.
const (
	maxWeight = 1e6
	maxIDF    = 64
)

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
	if n.idf != nil {
		out["idf"] = slices.Clone(n.idf)
	}
	for name, p := range n.params() {
		if *p == nil {
			continue
		}
		v := make([]float32, (*p).Numel())
		(*p).MustCopyData(v, uint((*p).Numel()))
		out[name] = v
	}
	return out
}

func (n *network) drop() {
	for _, t := range []**ts.Tensor{&n.table, &n.idfCol} {
		if *t != nil {
			(*t).MustDrop()
			*t = nil
		}
	}
	for _, p := range n.params() {
		if *p != nil {
			(*p).MustDrop()
			*p = nil
		}
	}
}

// forward returns logits [B,C] for a batch of bags. embedding_bag pools with no padding, so a
// long comment in a batch costs only its own features. It uses gotch's error-returning calls:
// its Must* variants log.Fatal, and a failed batch must not end the server.
func (n *network) forward(in batchInputs) (*ts.Tensor, error) {
	pooled, err := n.pool(in)
	if err != nil {
		return nil, err
	}
	if n.dims.Hidden == 0 {
		h, err := pooled.Add(n.b2, true)
		if err != nil {
			return nil, fmt.Errorf("ml: forward: %w", err)
		}
		return h, nil
	}
	// Each call with del=true frees its receiver, on success or error.
	h, err := pooled.Matmul(n.w1, true)
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

// pool returns each text's pooled features [B,E].
//
// PoolMean is embedding_bag's mean. PoolTFIDF is, per text, the sum over its blocks of the
// block's idf-weighted vectors over the block's idf norm: embedding_bag sums each block (a
// bag of its own) over the idf-scaled table, and the sums are scaled and added up per text.
// (embedding_bag's per-sample weights do the same in one call, but their CPU kernel took
// twice as long for a batch of 256.)
func (n *network) pool(in batchInputs) (*ts.Tensor, error) {
	none := ts.NewTensor() // undefined tensor: no per-sample weights
	defer none.MustDrop()
	table, mode := n.emb, int64(embeddingBagMean)
	if n.dims.Pooling == PoolTFIDF {
		table, mode = n.table, embeddingBagSum
		if table == nil { // training: the scaling is part of the graph
			t, err := n.emb.Mul(n.idfCol, false)
			if err != nil {
				return nil, fmt.Errorf("ml: idf table: %w", err)
			}
			defer t.MustDrop()
			table = t
		}
	}
	pooled, o1, o2, o3, err := ts.EmbeddingBag(table, in.flat, in.offsets, false, mode, false, none, false)
	if err != nil {
		return nil, fmt.Errorf("ml: embedding_bag: %w", err)
	}
	for _, t := range []*ts.Tensor{o1, o2, o3} {
		t.MustDrop()
	}
	if n.dims.Pooling != PoolTFIDF {
		return pooled, nil
	}
	pooled, err = pooled.Mul(in.scales, true)
	if err == nil {
		pooled, err = pooled.View([]int64{in.texts, blocks, n.dims.Embed}, true)
	}
	if err == nil {
		pooled, err = pooled.SumDimIntlist([]int64{1}, false, gotch.Float, true)
	}
	if err != nil {
		return nil, fmt.Errorf("ml: tfidf pooling: %w", err)
	}
	return pooled, nil
}

// Modes of aten::embedding_bag.
const (
	embeddingBagSum  = 0
	embeddingBagMean = 1
)

// bag is one text's feature indices and where each block of them ends (FeaturizeBlocks).
type bag struct {
	idx  []int64
	ends [blocks]int
}

// batchInputs are a batch's tensors: every text's indices back to back (flat), where each bag
// starts (offsets: a bag per text, or with PoolTFIDF a bag per block of each text), and with
// PoolTFIDF each block's scale [B*blocks,1].
type batchInputs struct {
	texts                 int64
	flat, offsets, scales *ts.Tensor
}

func (in batchInputs) drop() {
	for _, t := range []*ts.Tensor{in.flat, in.offsets, in.scales} {
		if t != nil {
			t.MustDrop()
		}
	}
}

// bagInputs packs bags for forward. With idf (PoolTFIDF), each block is a bag and its scale
// is one over the L2 norm of its features' idfs, so that the block's TF-IDF vector has unit
// length (a feature appears once per text: its term frequency is 1). Every text has at least
// one feature (the featurizer always emits shape features); an empty block sums to zero.
func bagInputs(bags []bag, idf []float32) batchInputs {
	total := 0
	for _, b := range bags {
		total += len(b.idx)
	}
	all := make([]int64, 0, total)
	perText := 1
	if idf != nil {
		perText = blocks
	}
	offs := make([]int64, 0, len(bags)*perText)
	var scales []float32
	if idf != nil {
		scales = make([]float32, 0, len(bags)*blocks)
	}
	for _, b := range bags {
		if idf == nil {
			offs = append(offs, int64(len(all)))
			all = append(all, b.idx...)
			continue
		}
		from := 0
		for _, end := range b.ends {
			offs = append(offs, int64(len(all)))
			var ss float64
			for _, i := range b.idx[from:end] {
				w := float64(idf[i])
				ss += w * w
			}
			all = append(all, b.idx[from:end]...)
			scale := float32(0)
			if ss > 0 {
				scale = float32(1 / math.Sqrt(ss))
			}
			scales = append(scales, scale)
			from = end
		}
	}
	in := batchInputs{texts: int64(len(bags)), flat: ts.MustOfSlice(all), offsets: ts.MustOfSlice(offs)}
	if idf != nil {
		in.scales = ts.MustOfSlice(scales).MustView([]int64{int64(len(scales)), 1}, true)
	}
	return in
}

// padIndices packs per-text feature indices into a [B,L] int64 tensor padded with 0: the
// input of TorchScript models.
func padIndices(bags []bag) *ts.Tensor {
	width := 1
	for _, b := range bags {
		width = max(width, len(b.idx))
	}
	flat := make([]int64, len(bags)*width)
	for i, b := range bags {
		copy(flat[i*width:], b.idx)
	}
	return ts.MustOfSlice(flat).MustView([]int64{int64(len(bags)), int64(width)}, true)
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
