package ml

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
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

// Models written before the TF-IDF architecture name no pooling: they still load and serve.
func TestModelFilesOfTheFirstFormatLoad(t *testing.T) {
	data := tamper(t, smallModelFile(t, Dims{Buckets: 4, Embed: 2, Hidden: 3, Classes: 6}),
		func(h *fileHeader) { h.Featurizer.Buckets = 4 })
	m, err := LoadNative("first.vtm", data)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.net.dims.Pooling != "" || m.net.table != nil {
		t.Fatalf("dims %+v", m.net.dims)
	}
	preds, err := m.Predict(context.Background(), []string{"hi", "count me in"})
	if err != nil {
		t.Fatal(err)
	}
	// All weights are zero: every intent equally likely.
	for _, p := range preds {
		for in, s := range p.Scores {
			if math.Abs(float64(s)-1.0/6) > 1e-6 {
				t.Fatalf("%s scored %v, want 1/6", in, s)
			}
		}
	}
}

func TestLoadRejectsBadIDF(t *testing.T) {
	d := Dims{Buckets: 4, Embed: 6, Classes: 6, Pooling: PoolTFIDF}
	for _, bad := range []float32{float32(math.NaN()), -1, float32(math.Inf(1))} {
		vals := map[string][]float32{"emb": make([]float32, 24), "b2": make([]float32, 6), "idf": {1, 1, bad, 1}}
		if net, err := newNetwork(d, vals); err == nil {
			net.drop()
			t.Fatalf("idf %v accepted", bad)
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
