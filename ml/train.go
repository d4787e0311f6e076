package ml

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/voluntree/voluntree"
)

// TrainConfig sets up a training run. Zero fields take the defaults below.
type TrainConfig struct {
	Seed           uint64
	Epochs         int
	BatchSize      int
	LearningRate   float64
	WeightDecay    float64
	Embed, Hidden  int64
	FeatureDropout float64 // share of features dropped per training item
	AugmentProb    float64 // share of training items replaced by a noisy variant each epoch
	Featurizer     FeaturizerConfig
}

// Training defaults, chosen on the training split by cross-checking generalisation to texts
// outside the dataset (see README), not by tuning on the validation split.
const (
	DefaultSeed           = 7
	DefaultEpochs         = 20
	DefaultBatchSize      = 32
	DefaultLearningRate   = 0.002
	DefaultWeightDecay    = 1e-4
	DefaultEmbed          = 16
	DefaultHidden         = 64
	DefaultFeatureDropout = 0.2
	DefaultAugmentProb    = 0.5
)

func (c *TrainConfig) setDefaults() {
	if c.Seed == 0 {
		c.Seed = DefaultSeed
	}
	if c.Epochs == 0 {
		c.Epochs = DefaultEpochs
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.LearningRate == 0 {
		c.LearningRate = DefaultLearningRate
	}
	if c.WeightDecay == 0 {
		c.WeightDecay = DefaultWeightDecay
	}
	if c.Embed == 0 {
		c.Embed = DefaultEmbed
	}
	if c.Hidden == 0 {
		c.Hidden = DefaultHidden
	}
	if c.FeatureDropout == 0 {
		c.FeatureDropout = DefaultFeatureDropout
	}
	if c.AugmentProb == 0 {
		c.AugmentProb = DefaultAugmentProb
	}
	if c.Featurizer == (FeaturizerConfig{}) {
		c.Featurizer = DefaultFeaturizerConfig()
	}
}

// Validate reports settings that cannot train.
func (c TrainConfig) Validate() error {
	switch {
	case c.Epochs < 1 || c.BatchSize < 1:
		return errors.New("ml: epochs and batch size must be positive")
	case c.LearningRate <= 0:
		return errors.New("ml: learning rate must be positive")
	case c.FeatureDropout < 0 || c.FeatureDropout >= 1 || c.AugmentProb < 0 || c.AugmentProb > 1:
		return errors.New("ml: dropout must be in [0,1) and augment probability in [0,1]")
	}
	return c.Featurizer.Validate()
}

// Progress is reported after every epoch.
type Progress struct {
	Epoch, Epochs int
	Loss          float64 // mean training loss of the epoch
	Elapsed       time.Duration
}

// Train fits a new native model on train and scores it on valid. It is deterministic for a
// given seed: initial weights, shuffling, augmentation and dropout all come from the seed.
func Train(ctx context.Context, cfg TrainConfig, train, valid []Example, progress func(Progress)) (*Native, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(train) == 0 {
		return nil, errors.New("ml: no training examples")
	}
	intents := voluntree.Intents()
	col := make(map[voluntree.Intent]int64)
	for i, in := range intents {
		col[in] = int64(i)
	}
	dims := Dims{Buckets: int64(cfg.Featurizer.Buckets), Embed: cfg.Embed, Hidden: cfg.Hidden, Classes: int64(len(intents))}

	vals, err := fit(ctx, cfg, dims, train, col, progress)
	if err != nil {
		return nil, err
	}
	net, err := newNetwork(dims, vals)
	if err != nil {
		return nil, err
	}
	labels := make([]string, len(intents))
	for i, in := range intents {
		labels[i] = string(in)
	}
	m := &Native{
		info: Info{Kind: "native", Labels: labels, Featurizer: cfg.Featurizer, Dims: &dims,
			Training: &TrainingInfo{Seed: cfg.Seed, Epochs: cfg.Epochs, TrainedAt: time.Now().UTC(), TrainItems: len(train)}},
		feat: cfg.Featurizer,
		net:  net,
	}
	if len(valid) > 0 {
		rep, err := Evaluate(ctx, m, valid)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.info.Training.Validation = rep
	}
	return m, nil
}

// fit runs the optimisation on one locked OS thread (autograd state is per thread) and
// returns the trained parameter values. Every native object it makes (parameters, optimizer
// state, per-batch tensors) is freed before it returns, on success or error.
func fit(ctx context.Context, cfg TrainConfig, dims Dims, train []Example, col map[voluntree.Intent]int64, progress func(Progress)) (map[string][]float32, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev := ts.MustGradSetEnabled(true)
	defer ts.MustGradSetEnabled(prev)

	net := &network{dims: dims}
	defer net.drop()
	init := initialValues(dims, cfg.Seed)
	shapes := dims.shapes()
	params := make([]ts.Tensor, 0, len(tensorNames))
	for _, name := range tensorNames {
		p, err := ts.MustOfSlice(init[name]).MustView(shapes[name], true).SetRequiresGrad(true, true)
		if err != nil {
			return nil, fmt.Errorf("ml: parameter %s: %w", name, err)
		}
		*net.params()[name] = p
		params = append(params, *p)
	}
	opt, err := ts.AdamW(cfg.LearningRate, 0.9, 0.999, cfg.WeightDecay)
	if err != nil {
		return nil, fmt.Errorf("ml: optimizer: %w", err)
	}
	defer opt.Drop()
	if err := opt.AddParameters(params); err != nil {
		return nil, fmt.Errorf("ml: optimizer: %w", err)
	}

	rng := rand.New(rand.NewPCG(cfg.Seed, 0x7472616e))
	order := make([]int, len(train))
	for i := range order {
		order[i] = i
	}
	start := time.Now()
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var lossSum float64
		batches := 0
		for b := 0; b < len(order); b += cfg.BatchSize {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			ids := order[b:min(b+cfg.BatchSize, len(order))]
			feats := make([][]int64, len(ids))
			targets := make([]int64, len(ids))
			for i, id := range ids {
				text := train[id].Text
				if rng.Float64() < cfg.AugmentProb {
					text = augment(rng, text)
				}
				feats[i] = dropFeatures(rng, cfg.Featurizer.Featurize(text), cfg.FeatureDropout)
				targets[i] = col[train[id].Intent]
			}
			loss, err := step(net, opt, feats, targets)
			if err != nil {
				return nil, err
			}
			lossSum += loss
			batches++
		}
		if progress != nil {
			progress(Progress{Epoch: epoch, Epochs: cfg.Epochs, Loss: lossSum / float64(batches), Elapsed: time.Since(start)})
		}
	}
	return net.values(), nil
}

// step runs one optimisation step on a batch and returns its loss.
func step(net *network, opt *ts.COptimizer, feats [][]int64, targets []int64) (float64, error) {
	flat, offsets := bagInputs(feats)
	defer flat.MustDrop()
	defer offsets.MustDrop()
	tgt := ts.MustOfSlice(targets)
	defer tgt.MustDrop()
	logits, err := net.forward(flat, offsets)
	if err != nil {
		return 0, err
	}
	defer logits.MustDrop()
	loss := crossEntropy(logits, tgt)
	defer loss.MustDrop()
	if err := opt.ZeroGrad(); err != nil {
		return 0, fmt.Errorf("ml: zero grad: %w", err)
	}
	if err := loss.Backward(); err != nil {
		return 0, fmt.Errorf("ml: backward: %w", err)
	}
	if err := opt.Step(); err != nil {
		return 0, fmt.Errorf("ml: optimizer step: %w", err)
	}
	return loss.Float64Values()[0], nil
}

// crossEntropy is the mean cross-entropy of logits against target intents. (gotch's
// CrossEntropyForLogits leaks its undefined weight tensor on every call.) Label smoothing was
// measured and left out: the plain loss already gives calibrated confidences (validation ECE
// 0.04; with smoothing 0.1, 0.15), see Report.ECE.
func crossEntropy(logits, targets *ts.Tensor) *ts.Tensor {
	logp := logits.MustLogSoftmax(-1, gotch.Float, false)
	noWeight := ts.NewTensor()
	defer noWeight.MustDrop()
	return logp.MustNllLoss(targets, noWeight, 1, -100, true)
}
