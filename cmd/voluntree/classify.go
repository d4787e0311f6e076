package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/ml"
)

// classifyBatch is how many lines go through the model at once.
const classifyBatch = 64

type classifyLine struct {
	Text       string           `json:"text"`
	Intent     voluntree.Intent `json:"intent"`
	Confidence float32          `json:"confidence"`
}

// runClassify implements `voluntree classify`: one text per stdin line, one JSON line out per
// text, in order. A line over the API's length limit stops the run with an error naming it,
// after every earlier line's result has been printed.
func runClassify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("classify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelPath := fs.String("model", os.Getenv("VOLUNTREE_MODEL"), "model file (default: the shipped model; env VOLUNTREE_MODEL)")
	threads := fs.Int("torch-threads", 1, "libtorch intra-op threads")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q: texts are read from stdin", fs.Args())}
	}
	if err := ml.SetThreads(*threads); err != nil {
		return usageError{err}
	}
	model, err := ml.Open(*modelPath)
	if err != nil {
		return err
	}
	defer model.Close()

	out := bufio.NewWriter(stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		preds, err := model.Predict(ctx, batch)
		if err != nil {
			return err
		}
		for i, p := range preds {
			if err := enc.Encode(classifyLine{Text: batch[i], Intent: p.Intent, Confidence: p.Confidence}); err != nil {
				return fmt.Errorf("write result: %w", err)
			}
		}
		batch = batch[:0]
		return out.Flush()
	}
	// The longest valid line is MaxTextRunes 4-byte characters; the scanner stops on a longer
	// one with ErrTooLong, reported with its line number like any other too-long line.
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 4096), 4*voluntree.MaxTextRunes+2)
	line := 1
	for ; sc.Scan(); line++ {
		text := sc.Text()
		if n := len([]rune(text)); n > voluntree.MaxTextRunes {
			if err := flush(); err != nil {
				return err
			}
			return fmt.Errorf("line %d: text has %d characters, the limit is %d", line, n, voluntree.MaxTextRunes)
		}
		batch = append(batch, text)
		if len(batch) == classifyBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if ferr := flush(); ferr != nil {
			return ferr
		}
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: text is longer than %d characters", line, voluntree.MaxTextRunes)
		}
		return fmt.Errorf("read stdin: %w", err)
	}
	return flush()
}
