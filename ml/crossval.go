package ml

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"

	"github.com/voluntree/voluntree"
)

// CrossValidate scores training settings on the training texts alone: it splits train into k
// folds, trains on k-1 and scores the one left out, k times, and returns each fold's accuracy.
// This is how settings are compared without looking at the validation set, which stays the
// one unbiased figure. A text's fold is a hash of the text, so the folds do not depend on the
// file's order or on the seed.
func CrossValidate(ctx context.Context, cfg TrainConfig, train []Example, k int) ([]float64, error) {
	if k < 2 || k > len(train) {
		return nil, errors.New("ml: cross-validation needs 2 to len(train) folds")
	}
	cfg.CalibrationFolds = 0 // a scale changes no prediction
	folds := splitFolds(train, k)
	for i, f := range folds {
		if len(f) == 0 {
			return nil, fmt.Errorf("ml: cross-validation fold %d of %d is empty: use fewer folds", i+1, k)
		}
	}
	scores := make([]float64, k)
	for i := range folds {
		m, err := Train(ctx, cfg, allBut(folds, i), folds[i], nil)
		if err != nil {
			return nil, fmt.Errorf("ml: cross-validation fold %d: %w", i+1, err)
		}
		scores[i] = m.Info().Training.Validation.Accuracy
		m.Close()
	}
	return scores, nil
}

// splitFolds puts each text in one of k folds by a hash of the text.
func splitFolds(train []Example, k int) [][]Example {
	folds := make([][]Example, k)
	for _, ex := range train {
		h := fnv.New32a()
		h.Write([]byte(ex.Text))
		f := h.Sum32() % uint32(k)
		folds[f] = append(folds[f], ex)
	}
	return folds
}

// allBut joins every fold but the i-th.
func allBut(folds [][]Example, i int) []Example {
	var rest []Example
	for j, f := range folds {
		if j != i {
			rest = append(rest, f...)
		}
	}
	return rest
}

// calibrationScale returns the factor s that calibrates softmax(s·logits) (temperature
// scaling): it trains on k-1 folds of train, takes the log-probabilities of the fold left out,
// k times, and minimises their negative log-likelihood over s. softmax(s·log p) = softmax(s·z)
// for logits z, and the likelihood is log-concave in s, so a golden-section search finds it.
func calibrationScale(ctx context.Context, cfg TrainConfig, train []Example, k int) (float64, error) {
	if k > len(train) {
		return 0, errors.New("ml: more calibration folds than training texts")
	}
	cfg.CalibrationFolds = 0
	intents := voluntree.Intents()
	col := make(map[voluntree.Intent]int, len(intents))
	for i, in := range intents {
		col[in] = i
	}
	var logp [][]float64
	var target []int
	folds := splitFolds(train, k)
	for i, fold := range folds {
		if len(fold) == 0 {
			continue
		}
		m, err := Train(ctx, cfg, allBut(folds, i), nil, nil)
		if err != nil {
			return 0, fmt.Errorf("ml: calibration fold %d: %w", i+1, err)
		}
		for start := 0; start < len(fold); start += 256 {
			batch := fold[start:min(start+256, len(fold))]
			texts := make([]string, len(batch))
			for j, ex := range batch {
				texts[j] = ex.Text
			}
			rows, err := m.forwardFeatures(featurizeAll(m.feat, texts))
			if err != nil {
				m.Close()
				return 0, err
			}
			for j, row := range rows {
				lp := make([]float64, len(row))
				for c, p := range row {
					lp[c] = math.Log(max(float64(p), 1e-30))
				}
				logp = append(logp, lp)
				target = append(target, col[batch[j].Intent])
			}
		}
		m.Close()
	}
	nll := func(s float64) float64 {
		var sum float64
		for i, lp := range logp {
			top := math.Inf(-1)
			for _, v := range lp {
				top = max(top, s*v)
			}
			var z float64
			for _, v := range lp {
				z += math.Exp(s*v - top)
			}
			sum += top + math.Log(z) - s*lp[target[i]]
		}
		return sum / float64(len(logp))
	}
	// Golden-section search over log s in [log 1/20, log 50].
	lo, hi := math.Log(0.05), math.Log(50)
	g := (math.Sqrt(5) - 1) / 2
	a, b := hi-g*(hi-lo), lo+g*(hi-lo)
	fa, fb := nll(math.Exp(a)), nll(math.Exp(b))
	for hi-lo > 1e-4 {
		if fa < fb {
			hi, b, fb = b, a, fa
			a = hi - g*(hi-lo)
			fa = nll(math.Exp(a))
		} else {
			lo, a, fa = a, b, fb
			b = lo + g*(hi-lo)
			fb = nll(math.Exp(b))
		}
	}
	return math.Exp((lo + hi) / 2), nil
}
