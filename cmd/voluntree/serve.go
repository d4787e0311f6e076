package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/actors"
	"github.com/voluntree/voluntree/httpapi"
	"github.com/voluntree/voluntree/internal/logging"
	"github.com/voluntree/voluntree/internal/redisproc"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/ml"
)

// serveConfig is everything `voluntree serve` reads from its environment and flags.
type serveConfig struct {
	Addr      string
	RedisURL  string
	DataDir   string
	ModelPath string
	Node      string
	Threads   int
	LogLevel  slog.Level
	Batcher   actors.BatcherConfig
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func parseServeFlags(args []string, stderr io.Writer) (serveConfig, error) {
	host, _ := os.Hostname()
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", envOr("VOLUNTREE_ADDR", ":8080"), "HTTP listen address (env VOLUNTREE_ADDR)")
	fs.StringVar(&c.RedisURL, "redis-url", envOr("VOLUNTREE_REDIS_URL", ""), "Redis URL; empty starts a private redis-server under -data (env VOLUNTREE_REDIS_URL)")
	fs.StringVar(&c.DataDir, "data", envOr("VOLUNTREE_DATA_DIR", "./data"), "data directory of the embedded redis-server (env VOLUNTREE_DATA_DIR)")
	fs.StringVar(&c.ModelPath, "model", envOr("VOLUNTREE_MODEL", ""), "intent model file; empty uses the shipped model (env VOLUNTREE_MODEL)")
	fs.StringVar(&c.Node, "node", envOr("VOLUNTREE_NODE", host), "node name in logs and metrics (env VOLUNTREE_NODE)")
	threads, err := strconv.Atoi(envOr("VOLUNTREE_TORCH_THREADS", "1"))
	if err != nil {
		return c, usageError{fmt.Errorf("VOLUNTREE_TORCH_THREADS: %w", err)}
	}
	fs.IntVar(&c.Threads, "torch-threads", threads, "libtorch intra-op threads (env VOLUNTREE_TORCH_THREADS)")
	level := fs.String("log-level", envOr("VOLUNTREE_LOG_LEVEL", "info"), "debug, info, warn or error (env VOLUNTREE_LOG_LEVEL)")
	fs.IntVar(&c.Batcher.MaxBatch, "max-batch", actors.DefaultMaxBatch, "texts per model batch")
	fs.DurationVar(&c.Batcher.MaxDelay, "max-delay", actors.DefaultMaxDelay, "longest wait of a queued text before a partial batch runs")
	fs.IntVar(&c.Batcher.MaxQueue, "max-queue", actors.DefaultMaxQueue, "texts queued at most before requests are refused (503)")
	if err := fs.Parse(args); err != nil {
		return c, usageError{err}
	}
	if fs.NArg() > 0 {
		return c, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if err := c.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, usageError{fmt.Errorf("-log-level: %w", err)}
	}
	if c.Batcher.MaxQueue < voluntree.MaxClassifyTexts {
		return c, usageError{fmt.Errorf("-max-queue %d cannot hold one full classify request (%d texts)", c.Batcher.MaxQueue, voluntree.MaxClassifyTexts)}
	}
	if c.Threads < 1 {
		return c, usageError{fmt.Errorf("-torch-threads must be at least 1, got %d", c.Threads)}
	}
	return c, nil
}

// runServe starts the node and blocks until ctx ends, then shuts down in reverse order.
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := logging.New(stderr, cfg.LogLevel, cfg.Node)
	log := logger.With("component", "serve")

	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	mp, err := metrics.NewMeterProvider(reg)
	if err != nil {
		return err
	}
	otel.SetMeterProvider(mp) // Proto.Actor reads the global provider; main is the one place for globals
	defer mp.Shutdown(context.Background())

	redisURL := cfg.RedisURL
	if redisURL == "" {
		srv, err := redisproc.Start(ctx, redisproc.Config{Dir: cfg.DataDir, AppendOnly: true})
		if err != nil {
			return fmt.Errorf("embedded redis: %w", err)
		}
		defer func() {
			if err := srv.Stop(); err != nil {
				log.Error("embedded redis stop", "action", "stop", "error", err)
			}
		}()
		redisURL = srv.URL()
		log.Info("embedded redis-server started", "action", "start_redis", "addr", srv.Addr(), "dir", cfg.DataDir)
	}
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return usageError{fmt.Errorf("VOLUNTREE_REDIS_URL: %w", err)}
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", opts.Addr, err)
	}

	if err := ml.SetThreads(cfg.Threads); err != nil {
		return err
	}
	model, err := ml.Open(cfg.ModelPath)
	if err != nil {
		return err
	}
	defer model.Close()
	info := model.Info()
	m.ModelInfo.WithLabelValues(info.Kind, info.Path).Set(1)
	log.Info("model loaded", "action", "load_model", "kind", info.Kind, "path", info.Path)

	system := actors.NewSystem(logger, mp)
	defer func() {
		// Shutdown can hang after a peer died (FACTS): bound it.
		done := make(chan struct{})
		go func() { system.Shutdown(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			log.Warn("actor system shutdown timed out", "action", "stop")
		}
	}()
	batcher, err := actors.NewBatcher(system, model, cfg.Batcher, m, logger)
	if err != nil {
		return err
	}

	api := httpapi.New(httpapi.Config{
		Classifier: batcher,
		Metrics:    m,
		Gatherer:   reg,
		Logger:     logger,
		Health: []httpapi.HealthCheck{
			{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
			{Name: "classifier", Check: batcher.Healthy},
		},
	})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	log.Info("listening", "action", "listen", "addr", ln.Addr().String())
	serveErr := make(chan error, 1)
	go func() { serveErr <- api.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "action", "shutdown")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := api.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("http shutdown", "action", "shutdown", "error", err)
	}
	if err := batcher.Stop(sctx); err != nil {
		log.Error("batcher stop", "action", "shutdown", "error", err)
	}
	return nil
}
