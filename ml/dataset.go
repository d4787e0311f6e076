package ml

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/voluntree/voluntree"
)

// Example is one labelled text of the dataset (ml/data/*.jsonl).
type Example struct {
	Text   string           `json:"text"`
	Intent voluntree.Intent `json:"intent"`
}

// LoadExamples reads a JSON-lines dataset and rejects unknown intents with the line number.
func LoadExamples(path string) ([]Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ml: open dataset: %w", err)
	}
	defer f.Close()
	return readExamples(path, f)
}

// ValidationSet is the shipped validation set (ml/data/valid.jsonl, embedded): what the model
// registry scores every pushed model on.
func ValidationSet() ([]Example, error) {
	return readExamples("embedded:ml/data/valid.jsonl", bytes.NewReader(validationJSONL))
}

//go:embed data/valid.jsonl
var validationJSONL []byte

func readExamples(path string, r io.Reader) ([]Example, error) {
	var out []Example
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var ex Example
		if err := json.Unmarshal(sc.Bytes(), &ex); err != nil {
			return nil, fmt.Errorf("ml: %s:%d: %w", path, line, err)
		}
		if _, err := voluntree.ParseIntent(string(ex.Intent)); err != nil {
			return nil, fmt.Errorf("ml: %s:%d: %w", path, line, err)
		}
		out = append(out, ex)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ml: read dataset: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ml: %s holds no examples", path)
	}
	return out, nil
}
