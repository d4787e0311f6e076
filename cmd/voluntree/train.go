package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/voluntree/voluntree/ml"
)

// runTrain implements `voluntree train`: fit the intent model, print validation scores, save.
func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	trainPath := fs.String("train", "ml/data/train.jsonl", "training split (JSON lines)")
	validPath := fs.String("valid", "ml/data/valid.jsonl", "validation split (JSON lines)")
	out := fs.String("out", "ml/models/intent.vtm", "where to write the model file")
	var cfg ml.TrainConfig
	fs.Uint64Var(&cfg.Seed, "seed", ml.DefaultSeed, "random seed (weights, shuffling, augmentation)")
	fs.IntVar(&cfg.Epochs, "epochs", ml.DefaultEpochs, "training epochs")
	fs.Float64Var(&cfg.LearningRate, "lr", ml.DefaultLearningRate, "AdamW learning rate")
	fs.Int64Var(&cfg.Embed, "embed", ml.DefaultEmbed, "embedding width")
	fs.Int64Var(&cfg.Hidden, "hidden", ml.DefaultHidden, "hidden layer width")
	cfg.Featurizer = ml.DefaultFeaturizerConfig()
	fs.IntVar(&cfg.Featurizer.Buckets, "buckets", ml.DefaultBuckets, "feature hash buckets (embedding rows)")
	fs.IntVar(&cfg.Featurizer.CharMin, "char-min", ml.DefaultCharMin, "shortest character n-gram")
	fs.IntVar(&cfg.Featurizer.CharMax, "char-max", ml.DefaultCharMax, "longest character n-gram")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	train, err := ml.LoadExamples(*trainPath)
	if err != nil {
		return err
	}
	valid, err := ml.LoadExamples(*validPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "training on %d examples, validating on %d (seed %d)\n", len(train), len(valid), cfg.Seed)
	m, err := ml.Train(ctx, cfg, train, valid, func(p ml.Progress) {
		fmt.Fprintf(stderr, "epoch %2d/%d  loss %.4f  %s\n", p.Epoch, p.Epochs, p.Loss, p.Elapsed.Round(1e7))
	})
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintln(stdout, "validation:")
	m.Info().Training.Validation.Print(stdout)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := m.Save(*out); err != nil {
		return err
	}
	st, err := os.Stat(*out)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s (%.1f MB)\n", *out, float64(st.Size())/1e6)
	return nil
}
