package ml

import (
	"context"
	"fmt"
)

// Check loads the model file at path and scores it on the shipped validation set: what the
// model registry requires of a version before it is pushed or promoted. It fails when the
// model does not load or its accuracy is below floor, saying why.
func Check(ctx context.Context, path string, floor float64) (Info, *Report, error) {
	m, err := Load(path)
	if err != nil {
		return Info{}, nil, fmt.Errorf("refused: the model does not load: %w", err)
	}
	defer m.Close()
	valid, err := ValidationSet()
	if err != nil {
		return Info{}, nil, err
	}
	r, err := Evaluate(ctx, m, valid)
	if err != nil {
		return Info{}, nil, fmt.Errorf("refused: the model fails on the validation set: %w", err)
	}
	if r.Accuracy < floor {
		return m.Info(), r, fmt.Errorf("refused: accuracy %.4f on the shipped validation set is below the floor %.4f", r.Accuracy, floor)
	}
	return m.Info(), r, nil
}
