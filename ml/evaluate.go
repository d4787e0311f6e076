package ml

import (
	"context"
	"fmt"
	"io"
	"math"
	"text/tabwriter"

	"github.com/voluntree/voluntree"
)

// Score is precision, recall and F1 of one intent.
type Score struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"`
}

// Report is a model's quality on a labelled set.
type Report struct {
	Items    int     `json:"items"`
	Accuracy float64 `json:"accuracy"`
	MacroF1  float64 `json:"macro_f1"`
	// ECE is the expected calibration error over 10 confidence bins: how far the reported
	// confidence is from the accuracy at that confidence (0 = calibrated).
	ECE       float64          `json:"ece"`
	MeanConf  float64          `json:"mean_confidence"`
	PerIntent map[string]Score `json:"per_intent"`
	// Confusion[i][j]: items of intent i predicted as j, in voluntree.Intents() order.
	Confusion [][]int `json:"confusion"`
}

// Evaluate classifies examples in batches of 256 and scores the predictions.
func Evaluate(ctx context.Context, m Model, examples []Example) (*Report, error) {
	intents := voluntree.Intents()
	col := make(map[voluntree.Intent]int)
	for i, in := range intents {
		col[in] = i
	}
	conf := make([][]int, len(intents))
	for i := range conf {
		conf[i] = make([]int, len(intents))
	}
	var bins [10]struct {
		n       int
		correct int
		conf    float64
	}
	for start := 0; start < len(examples); start += 256 {
		batch := examples[start:min(start+256, len(examples))]
		texts := make([]string, len(batch))
		for i, ex := range batch {
			texts[i] = ex.Text
		}
		preds, err := m.Predict(ctx, texts)
		if err != nil {
			return nil, fmt.Errorf("ml: evaluate: %w", err)
		}
		for i, p := range preds {
			conf[col[batch[i].Intent]][col[p.Intent]]++
			bin := 9
			if c := p.Confidence; c >= 0 && c < 1 { // NaN takes the last bin rather than an index out of range
				bin = int(c * 10)
			}
			b := &bins[bin]
			b.n++
			b.conf += float64(p.Confidence)
			if p.Intent == batch[i].Intent {
				b.correct++
			}
		}
	}
	r := scoreConfusion(conf)
	for _, b := range bins {
		if b.n > 0 && r.Items > 0 {
			r.ECE += float64(b.n) / float64(r.Items) * math.Abs(float64(b.correct)/float64(b.n)-b.conf/float64(b.n))
			r.MeanConf += b.conf / float64(r.Items)
		}
	}
	return r, nil
}

func scoreConfusion(conf [][]int) *Report {
	r := &Report{PerIntent: make(map[string]Score), Confusion: conf}
	correct := 0
	for i, in := range voluntree.Intents() {
		tp, fp, fn := conf[i][i], 0, 0
		for j := range conf {
			r.Items += conf[i][j]
			if j != i {
				fn += conf[i][j]
				fp += conf[j][i]
			}
		}
		correct += tp
		s := Score{Support: tp + fn, Precision: ratio(tp, tp+fp), Recall: ratio(tp, tp+fn)}
		if s.Precision+s.Recall > 0 {
			s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
		}
		r.PerIntent[string(in)] = s
		r.MacroF1 += s.F1 / float64(len(conf))
	}
	r.Accuracy = ratio(correct, r.Items)
	return r
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Print writes the report as a table.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "intent\tprecision\trecall\tf1\tsupport\t")
	for _, in := range voluntree.Intents() {
		s := r.PerIntent[string(in)]
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%d\t\n", in, s.Precision, s.Recall, s.F1, s.Support)
	}
	tw.Flush()
	fmt.Fprintf(w, "accuracy %.3f  macro-F1 %.3f  mean confidence %.3f  ECE %.3f  (%d items)\n",
		r.Accuracy, r.MacroF1, r.MeanConf, r.ECE, r.Items)
}
