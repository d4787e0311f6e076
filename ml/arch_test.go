package ml

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/voluntree/voluntree"
)

// The TF-IDF pooling runs as a bag per block over the idf-scaled table; this checks it against
// the definition computed in Go: per block, the sum of idf·row over the block's idf norm,
// summed over the blocks, plus the bias.
func TestTFIDFPoolingIsTheDefinition(t *testing.T) {
	cfg := DefaultFeaturizerConfig()
	d := Dims{Buckets: int64(cfg.Buckets), Embed: 6, Hidden: 0, Classes: 6, Pooling: PoolTFIDF}
	rng := rand.New(rand.NewPCG(1, 2))
	vals := map[string][]float32{"emb": make([]float32, d.Buckets*d.Embed), "b2": make([]float32, d.Classes), "idf": make([]float32, d.Buckets)}
	for _, v := range vals {
		for i := range v {
			v[i] = float32(rng.Float64())
		}
	}
	for i := range vals["idf"] {
		vals["idf"][i] = 1 + 5*vals["idf"][i] // an idf is at least 1
	}
	net, err := newNetwork(d, vals)
	if err != nil {
		t.Fatal(err)
	}
	m := &Native{feat: cfg, net: net, info: Info{Labels: make([]string, 6)}}
	defer m.Close()
	texts := []string{"count me in for saturday!", "🔥", "", "Where do I drop off the coats? My kids outgrew them"}
	bags := featurizeAll(cfg, texts)
	rows, err := m.forwardFeatures(bags)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bags {
		want := make([]float64, d.Classes)
		from := 0
		for _, end := range b.ends {
			var norm float64
			for _, f := range b.idx[from:end] {
				norm += float64(vals["idf"][f]) * float64(vals["idf"][f])
			}
			for _, f := range b.idx[from:end] {
				for c := range want {
					want[c] += float64(vals["idf"][f]) * float64(vals["emb"][f*d.Embed+int64(c)]) / math.Sqrt(norm)
				}
			}
			from = end
		}
		var z float64
		for c := range want {
			want[c] = math.Exp(want[c] + float64(vals["b2"][c]))
			z += want[c]
		}
		for c, p := range rows[i] {
			if math.Abs(float64(p)-want[c]/z) > 1e-5 {
				t.Fatalf("%q: class %d probability %.6f, want %.6f", texts[i], c, p, want[c]/z)
			}
		}
	}
}

// Models written before the TF-IDF architecture name no pooling: they still load and serve
// the first network, the mean of the features' rows through a ReLU layer (computed here in Go).
func TestModelFilesOfTheFirstFormatLoad(t *testing.T) {
	cfg := DefaultFeaturizerConfig()
	d := Dims{Buckets: int64(cfg.Buckets), Embed: 3, Hidden: 4, Classes: 6}
	h := fileHeader{Labels: []string{"interested", "question", "donate", "decline", "thanks", "other"}, Featurizer: cfg, Dims: d}
	rng := rand.New(rand.NewPCG(3, 4))
	vals := map[string][]float32{}
	for _, name := range d.tensorNames() {
		shape := d.shapes()[name]
		h.Tensors = append(h.Tensors, tensorEntry{Name: name, Shape: shape})
		vals[name] = make([]float32, numel(shape))
		for i := range vals[name] {
			vals[name][i] = float32(rng.Float64()*2 - 1)
		}
	}
	var file bytes.Buffer
	if err := writeModel(&file, h, vals); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(file.Bytes(), []byte("pooling")) {
		t.Fatal("the header names a pooling: not the first format")
	}
	m, err := LoadNative("first.vtm", file.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	texts := []string{"count me in!", "where do I park?", "🔥"}
	preds, err := m.Predict(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		idx := cfg.Featurize(text)
		mean := make([]float64, d.Embed)
		for _, f := range idx {
			for e := range mean {
				mean[e] += float64(vals["emb"][f*d.Embed+int64(e)]) / float64(len(idx))
			}
		}
		hidden := make([]float64, d.Hidden)
		for j := range hidden {
			x := float64(vals["b1"][j])
			for e := range mean {
				x += mean[e] * float64(vals["w1"][int64(e)*d.Hidden+int64(j)])
			}
			hidden[j] = max(x, 0)
		}
		logits := make([]float64, d.Classes)
		var z float64
		for c := range logits {
			x := float64(vals["b2"][c])
			for j := range hidden {
				x += hidden[j] * float64(vals["w2"][int64(j)*d.Classes+int64(c)])
			}
			logits[c] = math.Exp(x)
			z += logits[c]
		}
		for c, in := range voluntree.Intents() {
			if got := preds[i].Scores[in]; math.Abs(float64(got)-logits[c]/z) > 1e-5 {
				t.Fatalf("%q: %s scored %.6f, want %.6f", text, in, got, logits[c]/z)
			}
		}
	}
}

// A file's values are bounded so that a forward pass stays finite: a hostile file that loads
// would otherwise serve NaN confidences.
func TestLoadRejectsValuesOutOfBounds(t *testing.T) {
	d := Dims{Buckets: 4, Embed: 6, Classes: 6, Pooling: PoolTFIDF}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, bad := range []struct {
		tensor string
		v      float32
	}{{"idf", nan}, {"idf", -1}, {"idf", inf}, {"idf", 1e-45}, {"idf", 0.5}, {"idf", 1e38}, {"emb", nan}, {"emb", -1e30}, {"b2", inf}} {
		vals := map[string][]float32{"emb": make([]float32, 24), "b2": make([]float32, 6), "idf": {1, 1, 1, 1}}
		vals[bad.tensor][2] = bad.v
		if net, err := newNetwork(d, vals); err == nil {
			net.drop()
			t.Fatalf("%s holding %v accepted", bad.tensor, bad.v)
		}
	}
	vals := map[string][]float32{"emb": make([]float32, 24), "b2": make([]float32, 6), "idf": {1, 2, 3, 64}}
	net, err := newNetwork(d, vals)
	if err != nil {
		t.Fatalf("in-bounds values refused: %v", err)
	}
	net.drop()
}

// Blocks survive the feature cap and feature dropout: the cap cuts the last block first, and
// a dropped bag keeps each feature in the block it came from.
func TestBlocksUnderTheCapAndDropout(t *testing.T) {
	cfg := DefaultFeaturizerConfig()
	text := "count me in for the morning shift please"
	all, allEnds := cfg.FeaturizeBlocks(text)
	if allEnds[BlockWords] == 0 || allEnds[BlockChars] != len(all) || allEnds[BlockChars] <= allEnds[BlockWords] {
		t.Fatalf("ends %v for %d features", allEnds, len(all))
	}
	cfg.MaxFeatures = allEnds[BlockWords] + 3
	capped, ends := cfg.FeaturizeBlocks(text)
	if len(capped) != cfg.MaxFeatures || ends != [blocks]int{allEnds[BlockWords], cfg.MaxFeatures} {
		t.Fatalf("capped at %d: %d features, ends %v (uncapped %v)", cfg.MaxFeatures, len(capped), ends, allEnds)
	}
	inChars := map[int64]bool{}
	for i, f := range all {
		inChars[f] = i >= allEnds[BlockWords]
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 50 {
		b := dropFeatures(rng, bag{idx: all, ends: allEnds}, 0.5)
		if b.ends[BlockChars] != len(b.idx) {
			t.Fatalf("dropped bag ends %v for %d features", b.ends, len(b.idx))
		}
		for i, f := range b.idx {
			if got := i >= b.ends[BlockWords]; got != inChars[f] {
				t.Fatalf("feature %d moved across blocks", f)
			}
		}
	}
}

// Calibration must make the linear model's confidences track its accuracy: its raw hinge
// scores give confidences near 0.5 for a model right 9 times in 10.
func TestCalibrationMakesConfidenceTrackAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 5 models")
	}
	train, valid := datasets(t)
	train = train[:1500]
	cfg := TrainConfig{Epochs: 5}
	raw, err := Train(context.Background(), cfg, train, valid, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	cfg.CalibrationFolds = 3
	cal, err := Train(context.Background(), cfg, train, valid, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cal.Close()
	r, c := raw.Info().Training.Validation, cal.Info().Training.Validation
	t.Logf("uncalibrated ECE %.3f, calibrated %.3f (scale %.2f)", r.ECE, c.ECE, cal.Info().Training.Calibration)
	if r.Accuracy != c.Accuracy {
		t.Fatalf("calibration changed accuracy: %.4f to %.4f", r.Accuracy, c.Accuracy)
	}
	if c.ECE > 0.06 || c.ECE >= r.ECE {
		t.Fatalf("calibrated ECE %.3f (uncalibrated %.3f), want <= 0.06 and lower", c.ECE, r.ECE)
	}
}

func TestCrossValidateScoresEveryFold(t *testing.T) {
	train, _ := datasets(t)
	scores, err := CrossValidate(context.Background(), TrainConfig{Epochs: 2}, train[:900], 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 3 {
		t.Fatalf("%d scores for 3 folds", len(scores))
	}
	for i, s := range scores {
		if s < 0.5 || s > 1 {
			t.Fatalf("fold %d scored %.3f, want a trained model's accuracy (chance is 0.17)", i+1, s)
		}
	}
	if _, err := CrossValidate(context.Background(), TrainConfig{}, train[:10], 1); err == nil {
		t.Fatal("1 fold accepted")
	}
	if _, err := CrossValidate(context.Background(), TrainConfig{}, train[:10], 10); err == nil {
		t.Fatal("10 folds of 10 texts accepted: some are empty")
	}
}

func datasets(t *testing.T) (train, valid []Example) {
	t.Helper()
	train, err := LoadExamples("data/train.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	valid, err = LoadExamples("data/valid.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return train, valid
}
