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
	fs.StringVar(&cfg.Arch, "arch", ml.ArchLinear, "model architecture: linear (TF-IDF, linear SVM, calibrated) or mlp (mean of embeddings, hidden layer)")
	fs.Uint64Var(&cfg.Seed, "seed", ml.DefaultSeed, "random seed (weights, shuffling, augmentation)")
	fs.IntVar(&cfg.Epochs, "epochs", 0, "training epochs (0: the architecture's default)")
	fs.Float64Var(&cfg.LearningRate, "lr", 0, "AdamW learning rate (0: the architecture's default)")
	fs.Float64Var(&cfg.WeightDecay, "weight-decay", 0, "AdamW weight decay (0: the architecture's default)")
	fs.Int64Var(&cfg.Embed, "embed", ml.DefaultEmbed, "embedding width (mlp)")
	fs.Int64Var(&cfg.Hidden, "hidden", ml.DefaultHidden, "hidden layer width (mlp)")
	fs.Float64Var(&cfg.FeatureDropout, "feature-dropout", ml.DefaultFeatureDropout, "share of features dropped per training item")
	fs.Float64Var(&cfg.AugmentProb, "augment", ml.DefaultAugmentProb, "share of training items replaced by a noisy variant each epoch")
	fs.IntVar(&cfg.CalibrationFolds, "calibration-folds", ml.DefaultCalibrationFolds, "fit the confidence scale on this many folds of the training split (0: none)")
	cfg.Featurizer = ml.DefaultFeaturizerConfig()
	fs.IntVar(&cfg.Featurizer.Buckets, "buckets", ml.DefaultBuckets, "feature hash buckets (embedding rows)")
	fs.IntVar(&cfg.Featurizer.CharMin, "char-min", ml.DefaultCharMin, "shortest character n-gram")
	fs.IntVar(&cfg.Featurizer.CharMax, "char-max", ml.DefaultCharMax, "longest character n-gram")
	folds := fs.Int("cv", 0, "instead of training the model, score these settings by k-fold cross-validation on the training split")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	train, err := ml.LoadExamples(*trainPath)
	if err != nil {
		return err
	}
	if *folds > 0 {
		fmt.Fprintf(stderr, "cross-validating on %d examples in %d folds (seed %d)\n", len(train), *folds, cfg.Seed)
		scores, err := ml.CrossValidate(ctx, cfg, train, *folds)
		if err != nil {
			return err
		}
		sum := 0.0
		for _, s := range scores {
			sum += s
		}
		fmt.Fprintf(stdout, "cross-validation accuracy %.3f  folds %.3f\n", sum/float64(len(scores)), scores)
		return nil
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
