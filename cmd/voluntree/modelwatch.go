package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/ml"
	"github.com/voluntree/voluntree/redisstore"
)

// modelCheckInterval is how often a node compares its model version with the registry's
// promoted one, besides the Pub/Sub announcement: it covers an announcement missed while the
// subscription was reconnecting.
const modelCheckInterval = 5 * time.Second

// modelWatcher keeps a node on the registry's promoted model version: at start, on each
// announcement of a promotion, and every modelCheckInterval.
type modelWatcher struct {
	store   *redisstore.Store
	model   *ml.Swappable
	m       *metrics.Metrics
	log     *slog.Logger
	mu      sync.Mutex // one switch at a time
	failed  string     // the sha256 of a version that did not load: not tried again
	version string     // label of the version served (for the metric)
	sha     string
	node    string    // this node's name, in the registry's list of nodes
	since   time.Time // when it started serving version
}

// report records in the registry which version this node serves.
func (w *modelWatcher) report(ctx context.Context) {
	w.mu.Lock()
	n := redisstore.ModelNode{Node: w.node, Version: w.version, SHA256: w.sha, Since: w.since}
	w.mu.Unlock()
	if err := w.store.ReportModelNode(ctx, n); err != nil && ctx.Err() == nil {
		w.log.Debug("model version report", "action", "report_model", "error", err)
	}
}

// sync switches to the promoted version when it is not the one served.
func (w *modelWatcher) sync(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	tag, sha, err := w.store.PromotedModel(ctx)
	if err != nil || tag == "" || (tag == w.version && sha == w.sha) || sha == w.failed {
		return err
	}
	start := time.Now()
	v, data, err := w.store.ModelFile(ctx, tag)
	if errors.Is(err, redisstore.ErrModelChecksum) {
		w.failed = sha // damaged in Redis: fetching it again would not help
		w.m.ModelSwaps.WithLabelValues("failed").Inc()
		w.log.Error("promoted model is damaged in the registry: serving the previous one", "action", "swap_model", "tag", tag, "error", err)
		return err
	}
	if err != nil {
		return err // Redis: tried again at the next check
	}
	if v.SHA256 != sha {
		return fmt.Errorf("model %s changed while it was fetched", tag)
	}
	m, err := loadModelBytes(tag, data)
	var local *os.PathError
	if errors.As(err, &local) {
		return err // the temporary copy (a full disk?): tried again at the next check
	}
	if err != nil {
		w.failed = sha // this version is broken here: not tried again until another is promoted
		w.m.ModelSwaps.WithLabelValues("failed").Inc()
		w.log.Error("promoted model does not load: serving the previous one", "action", "swap_model", "tag", tag, "error", err)
		return err
	}
	info := m.Info()
	if err := w.model.Swap(m, tag); err != nil {
		w.log.Warn("closing the replaced model", "action", "swap_model", "error", err)
	}
	w.m.ModelVersion.Reset()
	w.m.ModelVersion.WithLabelValues(tag, sha).Set(1)
	w.m.ModelInfo.Reset()
	w.m.ModelInfo.WithLabelValues(info.Kind, info.Path).Set(1)
	w.m.ModelSwaps.WithLabelValues("ok").Inc()
	w.log.Info("serving the promoted model", "action", "swap_model", "tag", tag, "sha256", sha, "kind", info.Kind,
		"previous", w.version, "took_ms", time.Since(start).Milliseconds())
	w.version, w.sha, w.failed, w.since = tag, sha, "", time.Now().UTC()
	return nil
}

// loadModelBytes loads a model file held in memory from a private copy on disk (libtorch reads
// TorchScript archives from a path).
func loadModelBytes(tag string, data []byte) (ml.Model, error) {
	dir, err := os.MkdirTemp("", "voluntree-model-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // a loaded model keeps no reference to its file
	path := filepath.Join(dir, "registry:"+tag)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, err
	}
	return ml.Load(path)
}

// run follows the registry until ctx ends.
func (w *modelWatcher) run(ctx context.Context) {
	sub := w.store.Client().Subscribe(ctx, w.store.Keys().ModelChannel())
	defer sub.Close()
	announced := sub.Channel()
	w.report(ctx)
	tick := time.NewTicker(modelCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-announced:
		case <-tick.C:
		}
		if err := w.sync(ctx); err != nil && ctx.Err() == nil {
			w.log.Debug("model version check", "action", "check_model", "error", err)
		}
		w.report(ctx)
	}
}
