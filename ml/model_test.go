package ml

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/voluntree/voluntree"
)

// Texts written for this test, not in the dataset: the shipped model must get them right.
var unseen = []struct {
	text   string
	intent voluntree.Intent
}{
	{"Yes!! Put me and my sister down for the Sunday afternoon shift 🙌", voluntree.IntentInterested},
	{"i can help out, i have a pickup truck if u need one", voluntree.IntentInterested},
	{"Do volunteers need to bring their own gloves and trash bags?", voluntree.IntentQuestion},
	{"what's the address for the warehouse", voluntree.IntentQuestion},
	{"Can I venmo you guys? I'd like to chip in $25", voluntree.IntentDonate},
	{"I have a bunch of winter jackets my kids outgrew, where can I drop them?", voluntree.IntentDonate},
	{"So sorry, I'm sick and won't make it tomorrow", voluntree.IntentDecline},
	{"please remove me from this list", voluntree.IntentDecline},
	{"Thank you all for everything you do for our town ❤️", voluntree.IntentThanks},
	{"Amazing job everyone, so proud of this community!", voluntree.IntentThanks},
	{"😂😂😂", voluntree.IntentOther},
	{"Win a free iPhone!!! click the link in my bio", voluntree.IntentOther},
}

// openDefault loads the shipped model, closed when the test ends.
func openDefault(t *testing.T) *Native {
	t.Helper()
	m, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// validationReport scores m on the validation split.
func validationReport(t *testing.T, m Model) *Report {
	t.Helper()
	valid, err := LoadExamples("data/valid.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Evaluate(context.Background(), m, valid)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestDefaultModelClassifiesUnseenTexts(t *testing.T) {
	m := openDefault(t)
	texts := make([]string, len(unseen))
	for i, u := range unseen {
		texts[i] = u.text
	}
	preds, err := m.Predict(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(preds) != len(texts) {
		t.Fatalf("%d predictions for %d texts", len(preds), len(texts))
	}
	right := 0
	for i, p := range preds {
		var sum float32
		for _, s := range p.Scores {
			sum += s
		}
		if len(p.Scores) != 6 || math.Abs(float64(sum)-1) > 1e-4 || p.Scores[p.Intent] != p.Confidence {
			t.Fatalf("prediction %d is not a distribution over six intents: %+v", i, p)
		}
		if p.Intent == unseen[i].intent {
			right++
		} else {
			t.Logf("miss: %q -> %s, want %s", unseen[i].text, p, unseen[i].intent)
		}
	}
	if right < len(unseen)-1 {
		t.Fatalf("%d/%d unseen texts right, want at least %d", right, len(unseen), len(unseen)-1)
	}
}

func TestDefaultModelMeetsItsValidationFigures(t *testing.T) {
	m := openDefault(t)
	rep := validationReport(t, m)
	stored := m.Info().Training.Validation
	// Another CPU may pick other vector instructions and flip a near-tie: allow 2 of 427.
	if stored == nil || math.Abs(rep.Accuracy-stored.Accuracy) > 0.005 {
		t.Fatalf("accuracy %.4f differs from the figure stored in the model file (%v)", rep.Accuracy, stored)
	}
	if rep.MacroF1 < 0.85 {
		t.Fatalf("macro-F1 %.3f on validation, want >= 0.85", rep.MacroF1)
	}
	if rep.ECE > 0.1 {
		t.Fatalf("expected calibration error %.3f: confidences do not track accuracy", rep.ECE)
	}
}

func TestBatchingDoesNotChangePredictions(t *testing.T) {
	m := openDefault(t)
	texts := []string{"ok", "Count me in for the 9am slot please, I will bring my brother along too", "🔥"}
	batch, err := m.Predict(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		one, err := m.Predict(context.Background(), []string{text})
		if err != nil {
			t.Fatal(err)
		}
		for in, s := range one[0].Scores {
			if math.Abs(float64(s-batch[i].Scores[in])) > 1e-5 {
				t.Fatalf("%q: %s score %.6f alone, %.6f in a padded batch", text, in, s, batch[i].Scores[in])
			}
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	m := openDefault(t)
	path := filepath.Join(t.TempDir(), "m.vtm")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	if loaded.Info().Kind != "native" || !slices.Equal(loaded.Info().Labels, m.Info().Labels) {
		t.Fatalf("info %+v", loaded.Info())
	}
	texts := []string{"sign me up", "where do i park"}
	a, _ := m.Predict(context.Background(), texts)
	b, err := loaded.Predict(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i].Intent != b[i].Intent || a[i].Confidence != b[i].Confidence {
			t.Fatalf("text %d: %v before save, %v after", i, a[i], b[i])
		}
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(DefaultModelPath[len("ml/"):])
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":     {},
		"text":      []byte("hello"),
		"truncated": good[:len(good)/2],
		"trailing":  append(slices.Clone(good), 0),
		"bad zip":   []byte("PK\x03\x04 not really a zip"),
	}
	for name, data := range cases {
		path := filepath.Join(dir, name)
		os.WriteFile(path, data, 0o644)
		if m, err := Load(path); err == nil {
			m.Close()
			t.Errorf("%s: Load succeeded, want an error", name)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: Load succeeded")
	}
}

func TestPredictEmptyBatch(t *testing.T) {
	m := openDefault(t)
	preds, err := m.Predict(context.Background(), nil)
	if err != nil || len(preds) != 0 {
		t.Fatalf("Predict(nil) = %v, %v", preds, err)
	}
}

func TestPredictAfterCloseFails(t *testing.T) {
	m, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, err := m.Predict(context.Background(), []string{"x"}); err != ErrClosed {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

// The TorchScript file and its golden predictions come from ml/testdata/make_torchscript.py
// (PyTorch 1.13, `make testdata`): the same featurizer in Python, a model trained in PyTorch.
func TestTorchScriptModelServesThroughTheModelInterface(t *testing.T) {
	var golden struct {
		Texts    []string    `json:"texts"`
		Features [][]int64   `json:"features"`
		Probs    [][]float64 `json:"probs"`
		Accuracy float64     `json:"valid_accuracy"`
	}
	data, err := os.ReadFile("testdata/intent_small_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultFeaturizerConfig()
	for i, text := range golden.Texts {
		if got := cfg.Featurize(text); !slices.Equal(got, golden.Features[i]) {
			t.Fatalf("text %d %q: Go features differ from the Python featurizer's", i, text)
		}
	}
	m, err := Load("testdata/intent_small.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Info().Kind != "torchscript" {
		t.Fatalf("kind %q, want torchscript", m.Info().Kind)
	}
	preds, err := m.Predict(context.Background(), golden.Texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range preds {
		for j, in := range voluntree.Intents() {
			if d := math.Abs(float64(p.Scores[in]) - golden.Probs[i][j]); d > 1e-5 {
				t.Fatalf("text %d %q: %s = %.6f, PyTorch said %.6f", i, golden.Texts[i], in, p.Scores[in], golden.Probs[i][j])
			}
		}
	}
	rep := validationReport(t, m)
	if math.Abs(rep.Accuracy-golden.Accuracy) > 0.005 {
		t.Fatalf("validation accuracy through gotch %.4f, PyTorch measured %.4f", rep.Accuracy, golden.Accuracy)
	}
}

func TestTrainIsDeterministicAndLearns(t *testing.T) {
	train, err := LoadExamples("data/train.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	valid, err := LoadExamples("data/valid.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{ArchLinear, ArchMLP} {
		t.Run(arch, func(t *testing.T) {
			cfg := TrainConfig{Arch: arch, Seed: 3, Epochs: 3, Embed: 16, Hidden: 16}
			var epochs []int
			a, err := Train(context.Background(), cfg, train, valid, func(p Progress) { epochs = append(epochs, p.Epoch) })
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := Train(context.Background(), cfg, train, valid, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if !slices.Equal(epochs, []int{1, 2, 3}) {
				t.Fatalf("progress reported epochs %v", epochs)
			}
			if got := a.Info().Training.Arch; got != arch {
				t.Fatalf("model file says architecture %q", got)
			}
			ra, rb := a.Info().Training.Validation, b.Info().Training.Validation
			if ra.Accuracy != rb.Accuracy || !slices.EqualFunc(ra.Confusion, rb.Confusion, slices.Equal) {
				t.Fatalf("same seed, different models: %.4f vs %.4f", ra.Accuracy, rb.Accuracy)
			}
			if ra.Accuracy < 0.6 {
				t.Fatalf("3 epochs reach %.3f validation accuracy, want >= 0.6 (chance is 0.17)", ra.Accuracy)
			}
		})
	}
}

func TestLoadExamplesRejectsUnknownIntent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(path, []byte(`{"text":"hi","intent":"other"}`+"\n"+`{"text":"x","intent":"maybe"}`+"\n"), 0o644)
	if _, err := LoadExamples(path); err == nil {
		t.Fatal("want an error naming line 2")
	}
}

// tamper rewrites the JSON header of a model file.
func tamper(t *testing.T, good []byte, edit func(h *fileHeader)) []byte {
	t.Helper()
	h, vals, err := readModel(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	edit(&h)
	var buf bytes.Buffer
	if err := writeModel(&buf, h, vals); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLoadRejectsHostileHeaders(t *testing.T) {
	good, err := os.ReadFile("models/intent.vtm")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(h *fileHeader){
		"negative shape": func(h *fileHeader) { h.Tensors[1].Shape = []int64{-1, 64} },
		"huge dims":      func(h *fileHeader) { h.Dims.Buckets = 1 << 40; h.Featurizer.Buckets = 1 << 40 },
		"shape not dims": func(h *fileHeader) { h.Tensors[0].Shape = []int64{2, 2} },
		"missing tensor": func(h *fileHeader) { h.Tensors = h.Tensors[:len(h.Tensors)-1] },
		"hidden layer":   func(h *fileHeader) { h.Dims.Hidden = 3 },
		"pooling":        func(h *fileHeader) { h.Dims.Pooling = "max" },
		"wrong labels":   func(h *fileHeader) { h.Labels[0], h.Labels[1] = h.Labels[1], h.Labels[0] },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			data := tamper(t, good, edit)
			if m, err := LoadNative(name, data); err == nil {
				m.Close()
				t.Fatal("loaded")
			}
		})
	}
}

func TestSetThreads(t *testing.T) {
	// libtorch's count belongs to the OS thread that sets it (OpenMP): set and read it on one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer SetThreads(Threads())
	for _, n := range []int{2, 1} {
		if err := SetThreads(n); err != nil {
			t.Fatal(err)
		}
		if got := Threads(); got != n {
			t.Fatalf("Threads() = %d after SetThreads(%d)", got, n)
		}
	}
	if SetThreads(0) == nil {
		t.Fatal("SetThreads(0) accepted")
	}
}

// A libtorch error inside the forward pass must come back as an error: gotch's Must* helpers
// would log.Fatal and take the server down with one bad batch.
func TestLibtorchErrorsAreReturnedNotFatal(t *testing.T) {
	dims := Dims{Buckets: 10, Embed: 4, Hidden: 4, Classes: 6} // 10 rows; features index up to 65,535
	net, err := newNetwork(dims, initialValues(dims, 1))
	if err != nil {
		t.Fatal(err)
	}
	m := &Native{feat: DefaultFeaturizerConfig(), net: net, info: Info{Labels: make([]string, 6)}}
	defer m.Close()
	if _, err := m.Predict(context.Background(), []string{"count me in for saturday"}); err == nil {
		t.Fatal("out-of-range embedding indices gave no error")
	}
	if _, err := m.Predict(context.Background(), []string{"and again"}); err == nil {
		t.Fatal("second call gave no error")
	}
}
