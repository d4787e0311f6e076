package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/voluntree/voluntree/ml"
)

// runEvaluate implements `voluntree evaluate FILE.jsonl...`: score a model on labelled texts.
func runEvaluate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("evaluate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelPath := fs.String("model", os.Getenv("VOLUNTREE_MODEL"), "model file (default: the shipped model; env VOLUNTREE_MODEL)")
	misses := fs.Bool("misses", false, "also print every misclassified text")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() == 0 {
		return usageError{fmt.Errorf("name at least one labelled JSON-lines file, e.g. ml/data/valid.jsonl")}
	}
	model, err := ml.Open(*modelPath)
	if err != nil {
		return err
	}
	defer model.Close()
	for _, path := range fs.Args() {
		examples, err := ml.LoadExamples(path)
		if err != nil {
			return err
		}
		rep, err := ml.Evaluate(ctx, model, examples)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s:\n", path)
		rep.Print(stdout)
		if *misses {
			if err := printMisses(ctx, stdout, model, examples); err != nil {
				return err
			}
		}
	}
	return nil
}

func printMisses(ctx context.Context, w io.Writer, model ml.Model, examples []ml.Example) error {
	texts := make([]string, len(examples))
	for i, ex := range examples {
		texts[i] = ex.Text
	}
	for start := 0; start < len(texts); start += 256 {
		end := min(start+256, len(texts))
		preds, err := model.Predict(ctx, texts[start:end])
		if err != nil {
			return err
		}
		for i, p := range preds {
			if ex := examples[start+i]; p.Intent != ex.Intent {
				fmt.Fprintf(w, "  %-10s as %-10s %.2f  %q\n", ex.Intent, p.Intent, p.Confidence, ex.Text)
			}
		}
	}
	return nil
}
