package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/actors"
	"github.com/voluntree/voluntree/cluster"
	"github.com/voluntree/voluntree/facebook"
	"github.com/voluntree/voluntree/github"
	"github.com/voluntree/voluntree/httpapi"
	"github.com/voluntree/voluntree/internal/logging"
	"github.com/voluntree/voluntree/internal/redisconn"
	"github.com/voluntree/voluntree/internal/redisproc"
	"github.com/voluntree/voluntree/internal/streamworker"
	"github.com/voluntree/voluntree/mail"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/ml"
	"github.com/voluntree/voluntree/redisstore"
)

// defaultLinger trades a little median latency for fewer, larger pipeline batches, which cut
// the tail latencies (BENCHMARKS.md has the measurements).
const defaultLinger = 5 * time.Millisecond

// defaultGCPercent is serve's garbage-collection target unless GOGC is set.
const defaultGCPercent = 400

// defaultMemoryLimit is the Go heap's soft limit unless GOMEMLIMIT or -memory-limit is set:
// with GOGC 400 the heap may otherwise grow to five times its live size under load. The
// libraries (libtorch above all) take about as much again (BENCHMARKS.md, Memory).
const defaultMemoryLimit = 160 << 20

// serveConfig is everything `voluntree serve` reads from its environment and flags.
type serveConfig struct {
	Addr      string
	Redis     redisconn.Config
	DataDir   string
	Fsync     string
	ModelPath string
	// ModelMinAccuracy is the registry's promote floor; OperatorOrg's owners manage it.
	ModelMinAccuracy float64
	ModelTTL         time.Duration // an unpromoted version pushed through the API expires
	OperatorOrg      string
	Node             string
	Threads          int
	LogLevel         slog.Level
	Batcher          actors.BatcherConfig

	AppSecret   string
	VerifyToken string
	Demo        string // auto, on, off
	Cluster     cluster.Config
	Peers       string
	Ingest      actors.IngestConfig
	Store       redisstore.Config
	SendBuffer  int
	PprofAddr   string

	Graph        facebook.GraphConfig
	GitHub       github.Config // sign-in with GitHub (off without a client id and secret)
	SessionIdle  time.Duration
	SessionMax   time.Duration
	PollInterval time.Duration // 0: no comment polling
	PublicURL    string        // where browsers reach this server (Facebook Login redirect)
	SMTPURL      string        // "": mail goes to the outbox (Outbox on) or nowhere
	// Outbox: auto (on with the embedded Redis and no SMTP), on, off. An outbox shows each
	// organization's mail, verification codes included, to its own admins: on a shared server
	// that would let an admin verify any address, so it is for local use only.
	Outbox string

	MetricsToken    string  // Bearer token of /metrics ("": open)
	ClassifyRate    float64 // texts a second per client on /api/v1/classify (0: no limit)
	ChatSessionRate float64 // web chat sessions a second per client (0: no limit)
	ClassifyBurst   int
	TrustedProxies  string // comma-separated IPs/CIDRs whose X-Forwarded-For is believed
	ActorMetrics    bool   // Proto.Actor's own metrics (off: they leak every spawned actor)
	MemoryLimit     int64  // the Go heap's soft limit in bytes (0: none)
	MaxInflight     int    // webhook calls handled at once
	EffectsWorkers  int    // effects stream readers of this node
	EchoWait        time.Duration
}

func parseServeFlags(args []string, stderr io.Writer) (serveConfig, error) {
	s, err := newSettings(args, os.LookupEnv)
	if err != nil {
		return serveConfig{}, err
	}
	return parseServeFlagsWith(s, args, stderr)
}

// parseServeFlagsWith reads serve's flags over s (the environment, the config file, the
// defaults).
func parseServeFlagsWith(env *settings, args []string, stderr io.Writer) (serveConfig, error) {
	host, _ := os.Hostname()
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "config file of KEY=value lines with the environment's keys; the environment wins over it (env VOLUNTREE_CONFIG)")
	fs.StringVar(&c.Addr, "addr", env.str("VOLUNTREE_ADDR", ":8080"), "HTTP listen address (env VOLUNTREE_ADDR)")
	redisFlags(fs, env, &c.Redis, "empty starts a private redis-server under -data")
	fs.StringVar(&c.DataDir, "data", env.str("VOLUNTREE_DATA_DIR", "./data"), "data directory of the embedded redis-server (env VOLUNTREE_DATA_DIR)")
	fs.StringVar(&c.Fsync, "redis-fsync", env.str("VOLUNTREE_REDIS_FSYNC", "always"), "AOF fsync of the embedded redis-server: always (acknowledged = on disk) or everysec (env VOLUNTREE_REDIS_FSYNC)")
	fs.DurationVar(&c.ModelTTL, "model-ttl", env.duration("VOLUNTREE_MODEL_TTL", 7*24*time.Hour), "a model version pushed through the admin API is deleted after this long unless promoted; 0: never (env VOLUNTREE_MODEL_TTL)")
	fs.Float64Var(&c.ModelMinAccuracy, "model-min-accuracy", env.float("VOLUNTREE_MODEL_MIN_ACCURACY", defaultModelMinAccuracy), "the model registry's promote (admin API) refuses a version scoring below this accuracy on the shipped validation set (env VOLUNTREE_MODEL_MIN_ACCURACY)")
	fs.StringVar(&c.OperatorOrg, "operator-org", env.str("VOLUNTREE_OPERATOR_ORG", ""), "the organization whose owners manage the model registry through the admin API; empty: nobody does (env VOLUNTREE_OPERATOR_ORG)")
	fs.StringVar(&c.ModelPath, "model", env.str("VOLUNTREE_MODEL", ""), "intent model file; empty uses the shipped model (env VOLUNTREE_MODEL)")
	fs.StringVar(&c.Node, "node", env.str("VOLUNTREE_NODE", host), "node name in logs and metrics (env VOLUNTREE_NODE)")
	fs.IntVar(&c.Threads, "torch-threads", env.int("VOLUNTREE_TORCH_THREADS", 1), "libtorch intra-op threads (env VOLUNTREE_TORCH_THREADS)")
	level := fs.String("log-level", env.str("VOLUNTREE_LOG_LEVEL", "info"), "debug, info, warn or error (env VOLUNTREE_LOG_LEVEL)")
	fs.IntVar(&c.Batcher.MaxBatch, "max-batch", actors.DefaultMaxBatch, "texts per model batch")
	fs.DurationVar(&c.Batcher.MaxDelay, "max-delay", actors.DefaultMaxDelay, "longest wait of a queued text before a partial batch runs")
	fs.IntVar(&c.Batcher.MaxQueue, "max-queue", actors.DefaultMaxQueue, "texts queued at most before requests are refused (503)")
	fs.StringVar(&c.AppSecret, "fb-app-secret", env.str("VOLUNTREE_FB_APP_SECRET", ""), "Facebook app secret: verifies webhook signatures (env VOLUNTREE_FB_APP_SECRET)")
	fs.StringVar(&c.VerifyToken, "fb-verify-token", env.str("VOLUNTREE_FB_VERIFY_TOKEN", ""), "token of the webhook subscription handshake (env VOLUNTREE_FB_VERIFY_TOKEN)")
	fs.StringVar(&c.Demo, "demo", env.str("VOLUNTREE_DEMO", "auto"), "demo channel: on, off, or auto (on with the embedded redis) (env VOLUNTREE_DEMO)")
	fs.StringVar(&c.Cluster.Host, "cluster-host", env.str("VOLUNTREE_CLUSTER_HOST", cluster.DefaultHost), "address other cluster members reach this node at (env VOLUNTREE_CLUSTER_HOST)")
	fs.StringVar(&c.Cluster.Advertise, "cluster-advertise", env.str("VOLUNTREE_CLUSTER_ADVERTISE", ""), "host[:port] other members reach this node at, when not -cluster-host (containers: the service name) (env VOLUNTREE_CLUSTER_ADVERTISE)")
	fs.IntVar(&c.Cluster.Port, "cluster-port", env.int("VOLUNTREE_CLUSTER_PORT", 0), "cluster remoting port; 0 picks a free one (env VOLUNTREE_CLUSTER_PORT)")
	fs.IntVar(&c.Cluster.HealthPort, "cluster-health-port", env.int("VOLUNTREE_CLUSTER_HEALTH_PORT", 0), "cluster membership (automanaged) port; 0 picks a free one (env VOLUNTREE_CLUSTER_HEALTH_PORT)")
	fs.StringVar(&c.Peers, "cluster-peers", env.str("VOLUNTREE_CLUSTER_PEERS", ""), "comma-separated host:health-port of every member; empty: a one-node cluster (env VOLUNTREE_CLUSTER_PEERS)")
	fs.DurationVar(&c.Ingest.ClaimIdle, "claim-idle", env.duration("VOLUNTREE_CLAIM_IDLE", actors.DefaultClaimIdle), "ingest entries pending this long under a dead consumer are reclaimed (env VOLUNTREE_CLAIM_IDLE)")
	fs.DurationVar(&c.Ingest.Linger, "ingest-linger", defaultLinger, "a consumer read with fewer than -ingest-min-batch entries waits this long for more (0: never)")
	fs.IntVar(&c.Ingest.MinBatch, "ingest-min-batch", actors.DefaultMinBatch, "see -ingest-linger")
	fs.IntVar(&c.Ingest.MaxDeliveries, "max-deliveries", actors.DefaultMaxDeliveries, "an ingest entry failing this many deliveries goes to the dead-letter stream")
	fs.StringVar(&c.Store.Prefix, "redis-prefix", env.str("VOLUNTREE_REDIS_PREFIX", redisstore.DefaultPrefix), "prefix of every Redis key, to share one Redis between deployments (env VOLUNTREE_REDIS_PREFIX)")
	fs.IntVar(&c.Store.WaitReplicas, "redis-wait-replicas", env.int("VOLUNTREE_REDIS_WAIT_REPLICAS", 0), "a webhook's events are acknowledged only once this many Redis replicas have them (WAIT); 0: once the master has them (env VOLUNTREE_REDIS_WAIT_REPLICAS)")
	fs.DurationVar(&c.Store.WaitTimeout, "redis-wait-timeout", env.duration("VOLUNTREE_REDIS_WAIT_TIMEOUT", redisstore.DefaultWaitTimeout), "longest wait for those replicas; past it the webhook gets 503 and Facebook retries (env VOLUNTREE_REDIS_WAIT_TIMEOUT)")
	fs.IntVar(&c.Store.IngestShards, "ingest-shards", env.int("VOLUNTREE_INGEST_SHARDS", 1), fmt.Sprintf("ingest streams the pages are spread over, 1 to %d: more spread the ingest over a Redis Cluster's nodes; every node reads every shard; never lower it on a running deployment (env VOLUNTREE_INGEST_SHARDS)", redisstore.MaxIngestShards))
	fs.Int64Var(&c.Store.IngestMaxLen, "ingest-max-len", redisstore.DefaultIngestMaxLen, "approximate cap of the ingest stream; webhooks get 503 when the backlog nears it")
	fs.Int64Var(&c.Store.EventsMaxLen, "events-max-len", redisstore.DefaultEventsMaxLen, "approximate cap of each organization's events replay log")
	fs.IntVar(&c.SendBuffer, "ws-send-buffer", actors.DefaultSendBuffer, "events queued per WebSocket before the client counts as too slow and is dropped")
	fs.StringVar(&c.Graph.BaseURL, "fb-graph-url", env.str("VOLUNTREE_FB_GRAPH_URL", facebook.DefaultGraphURL), "Graph API base URL (env VOLUNTREE_FB_GRAPH_URL)")
	fs.StringVar(&c.Graph.Version, "fb-graph-version", env.str("VOLUNTREE_FB_GRAPH_VERSION", facebook.DefaultGraphVersion), "Graph API version path (env VOLUNTREE_FB_GRAPH_VERSION)")
	fs.StringVar(&c.Graph.DialogURL, "fb-dialog-url", env.str("VOLUNTREE_FB_DIALOG_URL", facebook.DefaultDialogURL), "Facebook Login dialog base URL (env VOLUNTREE_FB_DIALOG_URL)")
	fs.StringVar(&c.Graph.AppID, "fb-app-id", env.str("VOLUNTREE_FB_APP_ID", ""), "Facebook app id: Facebook Login for pages (env VOLUNTREE_FB_APP_ID)")
	c.GitHub.ClientSecret = env.str("VOLUNTREE_GITHUB_CLIENT_SECRET", "") // a secret: never a flag
	fs.StringVar(&c.GitHub.ClientID, "github-client-id", env.str("VOLUNTREE_GITHUB_CLIENT_ID", ""), "GitHub OAuth app's client id: sign-in with GitHub, with VOLUNTREE_GITHUB_CLIENT_SECRET (env VOLUNTREE_GITHUB_CLIENT_ID)")
	fs.StringVar(&c.GitHub.WebURL, "github-url", env.str("VOLUNTREE_GITHUB_URL", github.DefaultWebURL), "GitHub's web base URL, for the sign-in dialog and token exchange (env VOLUNTREE_GITHUB_URL)")
	fs.StringVar(&c.GitHub.APIURL, "github-api-url", env.str("VOLUNTREE_GITHUB_API_URL", github.DefaultAPIURL), "GitHub's REST API base URL (env VOLUNTREE_GITHUB_API_URL)")
	fs.DurationVar(&c.SessionIdle, "session-idle", env.duration("VOLUNTREE_SESSION_IDLE", httpapi.DefaultSessionIdle), "a signed-in browser's session ends after this long unused (env VOLUNTREE_SESSION_IDLE)")
	fs.DurationVar(&c.SessionMax, "session-max", env.duration("VOLUNTREE_SESSION_MAX", httpapi.DefaultSessionMax), "a session ends this long after sign-in, however active (env VOLUNTREE_SESSION_MAX)")
	fs.DurationVar(&c.PollInterval, "poll-interval", env.duration("VOLUNTREE_POLL_INTERVAL", facebook.DefaultPollInterval), "comments of published posts are fetched this often besides the webhook; 0: never (env VOLUNTREE_POLL_INTERVAL)")
	fs.StringVar(&c.PublicURL, "public-url", env.str("VOLUNTREE_PUBLIC_URL", ""), "URL browsers reach this server at, for the Facebook Login redirect; default http://localhost<addr> (env VOLUNTREE_PUBLIC_URL)")
	fs.StringVar(&c.SMTPURL, "smtp-url", env.str("VOLUNTREE_SMTP_URL", ""), "SMTP server of outgoing mail, smtp://user:pass@host:port?from=addr; empty: the outbox, or no mail (env VOLUNTREE_SMTP_URL)")
	fs.StringVar(&c.Outbox, "mail-outbox", env.str("VOLUNTREE_MAIL_OUTBOX", "auto"), "mail to an outbox the first page shows instead of SMTP (local use only: admins read their own codes): on, off, or auto (on with the embedded redis and no SMTP) (env VOLUNTREE_MAIL_OUTBOX)")
	fs.StringVar(&c.MetricsToken, "metrics-token", env.str("VOLUNTREE_METRICS_TOKEN", ""), "Bearer token GET /metrics requires (Prometheus bearer_token); empty: /metrics is open (env VOLUNTREE_METRICS_TOKEN)")
	fs.Float64Var(&c.ClassifyRate, "classify-rate", env.float("VOLUNTREE_CLASSIFY_RATE", httpapi.DefaultClassifyRate), "texts a second each client may classify through POST /api/v1/classify; 0 turns the limit off (env VOLUNTREE_CLASSIFY_RATE)")
	fs.Float64Var(&c.ChatSessionRate, "chat-session-rate", env.float("VOLUNTREE_CHAT_SESSION_RATE", 0.2), "web chat sessions each client (IP address) may start a second, after a burst of 10; 0 turns the limit off (env VOLUNTREE_CHAT_SESSION_RATE)")
	fs.IntVar(&c.ClassifyBurst, "classify-burst", env.int("VOLUNTREE_CLASSIFY_BURST", httpapi.DefaultClassifyBurst), "texts a client may classify at once before the rate applies (env VOLUNTREE_CLASSIFY_BURST)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", env.str("VOLUNTREE_TRUSTED_PROXIES", ""), "comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For names the client (env VOLUNTREE_TRUSTED_PROXIES)")
	fs.BoolVar(&c.ActorMetrics, "actor-metrics", env.onOff("VOLUNTREE_ACTOR_METRICS", false), "Proto.Actor's own per-actor metrics as voluntree_protoactor_* (costly: every spawned actor stays in memory; for debugging) (env VOLUNTREE_ACTOR_METRICS=on)")
	memLimit := fs.String("memory-limit", env.str("VOLUNTREE_MEMORY_LIMIT", ""), "soft limit of the Go heap, like 160MiB or 1GiB; 0: none (default 160MiB, or GOMEMLIMIT when set) (env VOLUNTREE_MEMORY_LIMIT)")
	fs.IntVar(&c.MaxInflight, "max-inflight-webhooks", env.int("VOLUNTREE_MAX_INFLIGHT_WEBHOOKS", httpapi.DefaultMaxInflightWebhooks), "webhook calls handled at once; past it they are answered 503 with Retry-After (env VOLUNTREE_MAX_INFLIGHT_WEBHOOKS)")
	fs.IntVar(&c.EffectsWorkers, "effects-workers", env.int("VOLUNTREE_EFFECTS_WORKERS", 8), "readers of the effects outbox (Messenger messages, emails, bookings) on this node, each a consumer of its own; at least one per outbox partition (16) whatever this says (env VOLUNTREE_EFFECTS_WORKERS)")
	fs.DurationVar(&c.EchoWait, "echo-wait", env.duration("VOLUNTREE_ECHO_WAIT", cluster.DefaultEchoWait), "after an ambiguous Send API failure, how long to wait for the message's echo before sending it again (env VOLUNTREE_ECHO_WAIT)")
	fs.StringVar(&c.PprofAddr, "pprof", env.str("VOLUNTREE_PPROF", ""), "serve net/http/pprof on this address (e.g. 127.0.0.1:6060); empty: off (env VOLUNTREE_PPROF)")
	if err := fs.Parse(args); err != nil {
		return c, usageError{err}
	}
	if err := env.checkConfigFlag(fs); err != nil {
		return c, usageError{err}
	}
	if err := env.err(modelKeys()); err != nil {
		return c, usageError{err}
	}
	switch {
	case *memLimit != "":
		n, err := parseBytes(*memLimit)
		if err != nil {
			return c, usageError{fmt.Errorf("-memory-limit: %w", err)}
		}
		c.MemoryLimit = n
	case os.Getenv("GOMEMLIMIT") != "":
		c.MemoryLimit = -1 // the runtime's own
	default:
		c.MemoryLimit = defaultMemoryLimit
	}
	if err := checkRedisConfig(c.Redis); err != nil {
		return c, usageError{err}
	}
	if c.Store.IngestShards < 1 || c.Store.IngestShards > redisstore.MaxIngestShards {
		return c, usageError{fmt.Errorf("-ingest-shards (VOLUNTREE_INGEST_SHARDS) must be 1 to %d, got %d", redisstore.MaxIngestShards, c.Store.IngestShards)}
	}
	if c.Store.WaitReplicas < 0 || c.Store.WaitTimeout < time.Millisecond {
		return c, usageError{fmt.Errorf("-redis-wait-replicas must be 0 or more and -redis-wait-timeout at least 1ms, got %d and %s", c.Store.WaitReplicas, c.Store.WaitTimeout)}
	}
	if c.Store.WaitReplicas > 0 {
		// The WAIT is read like any reply: the client's read timeout must outlast it, or a
		// slow WAIT becomes a timeout that go-redis retries.
		need := c.Store.WaitTimeout + time.Second
		switch {
		case c.Redis.ReadTimeout == 0:
			c.Redis.ReadTimeout = max(3*time.Second, need)
		case c.Redis.ReadTimeout < need:
			return c, usageError{fmt.Errorf("-redis-read-timeout %s must outlast -redis-wait-timeout %s by 1s", c.Redis.ReadTimeout, c.Store.WaitTimeout)}
		}
	}
	if c.Redis.URL == "" && c.Store.WaitReplicas > 0 {
		return c, usageError{errors.New("-redis-wait-replicas needs a -redis-url with replicas: the embedded redis-server has none")}
	}
	if c.Redis.URL == "" && c.Redis.ReplicaReads {
		return c, usageError{errors.New("-redis-replica-reads needs a Sentinel or Cluster -redis-url: the embedded redis-server has no replica")}
	}
	if c.ModelTTL < 0 {
		return c, usageError{fmt.Errorf("-model-ttl must be 0 (never) or positive, got %s", c.ModelTTL)}
	}
	if c.ModelMinAccuracy < 0 || c.ModelMinAccuracy > 1 {
		return c, usageError{fmt.Errorf("-model-min-accuracy must be between 0 and 1, got %v", c.ModelMinAccuracy)}
	}
	if c.EffectsWorkers < 1 || c.EffectsWorkers > 64 {
		return c, usageError{fmt.Errorf("-effects-workers must be between 1 and 64, got %d", c.EffectsWorkers)}
	}
	if c.MaxInflight < 1 {
		return c, usageError{fmt.Errorf("-max-inflight-webhooks must be at least 1, got %d", c.MaxInflight)}
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
	if c.Fsync != "always" && c.Fsync != "everysec" {
		return c, usageError{fmt.Errorf("-redis-fsync must be always or everysec, got %q", c.Fsync)}
	}
	switch c.Demo {
	case "auto", "on", "off":
	default:
		return c, usageError{fmt.Errorf("-demo must be on, off or auto, got %q", c.Demo)}
	}
	switch c.Outbox {
	case "auto":
		if c.Redis.URL == "" && c.SMTPURL == "" {
			c.Outbox = "on"
		} else {
			c.Outbox = "off"
		}
	case "on":
		if c.SMTPURL != "" {
			return c, usageError{fmt.Errorf("-mail-outbox=on and -smtp-url both set: mail goes to one of them")}
		}
	case "off":
	default:
		return c, usageError{fmt.Errorf("-mail-outbox must be on, off or auto, got %q", c.Outbox)}
	}
	c.Cluster.Peers = splitList(c.Peers)
	c.Ingest.Consumer = c.Node
	if c.Ingest.ClaimIdle < 10*time.Millisecond {
		return c, usageError{fmt.Errorf("-claim-idle must be at least 10ms, got %s", c.Ingest.ClaimIdle)}
	}
	if c.Ingest.Linger < 0 || c.Ingest.Linger > time.Second {
		return c, usageError{fmt.Errorf("-ingest-linger must be between 0 and 1s, got %s", c.Ingest.Linger)}
	}
	if c.Ingest.MaxDeliveries < 1 {
		return c, usageError{fmt.Errorf("-max-deliveries must be at least 1, got %d", c.Ingest.MaxDeliveries)}
	}
	if c.Threads < 1 {
		return c, usageError{fmt.Errorf("-torch-threads must be at least 1, got %d", c.Threads)}
	}
	if c.ClassifyRate < 0 || c.ClassifyBurst < 1 {
		return c, usageError{fmt.Errorf("-classify-rate must be 0 (off) or positive and -classify-burst at least 1, got %v and %d", c.ClassifyRate, c.ClassifyBurst)}
	}
	for _, p := range splitList(c.TrustedProxies) {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			return c, usageError{fmt.Errorf("-trusted-proxies: %q is not an IP address or CIDR", p)}
		}
	}
	if c.PollInterval != 0 && c.PollInterval < time.Second {
		return c, usageError{fmt.Errorf("-poll-interval must be 0 (off) or at least 1s, got %s", c.PollInterval)}
	}
	c.Graph.AppSecret = c.AppSecret
	if c.SessionIdle <= 0 || c.SessionMax <= 0 {
		return c, usageError{fmt.Errorf("-session-idle and -session-max must be positive, got %s and %s", c.SessionIdle, c.SessionMax)}
	}
	if _, err := facebook.NewGraph(c.Graph); err != nil {
		return c, usageError{fmt.Errorf("Graph API settings: %w", err)}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return c, usageError{fmt.Errorf("-public-url: want an http(s) URL without query, like https://voluntree.example.org, got %q", c.PublicURL)}
		}
		c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	}
	return c, nil
}

// defaultPublicURL is the URL of a listener: http://localhost:<port> when it listens on
// every address, else its address.
func defaultPublicURL(addr net.Addr) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); host == "" || ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// runServe starts the node and blocks until ctx ends, then shuts down in reverse order.
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := logging.New(stderr, cfg.LogLevel, cfg.Node)
	log := logger.With("component", "serve")
	// go-redis logs (Sentinel's master changes, pool troubles) through a process-wide logger:
	// made a JSON record like every other line.
	redis.SetLogger(logging.Printf{L: logger.With("component", "redis")})
	if _, set := os.LookupEnv("GOGC"); !set {
		// The pipeline allocates per message; with the default (100) the collector took a
		// fifth of the CPU at 5,000 comments/s and the node fell behind (BENCHMARKS.md).
		// The live heap is small, so trading memory for CPU is cheap. GOGC overrides.
		debug.SetGCPercent(defaultGCPercent)
	}
	if cfg.MemoryLimit >= 0 {
		// A soft limit: past it the collector runs more often (never a failure); the work a
		// node holds is bounded elsewhere (webhooks in flight, batches, socket buffers).
		debug.SetMemoryLimit(cmp.Or(cfg.MemoryLimit, math.MaxInt64))
	}

	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	// Proto.Actor's own metrics are off unless asked for: its version here records every
	// message with freshly built attributes, and registers a mailbox gauge callback for every
	// actor it spawns that is never unregistered, so every grain and socket a node ever had
	// stays in memory (and in every scrape). Our own metrics cover grains, batches and sockets.
	var mp *sdkmetric.MeterProvider
	if cfg.ActorMetrics {
		if mp, err = metrics.NewMeterProvider(reg); err != nil {
			return err
		}
		otel.SetMeterProvider(mp) // Proto.Actor reads the global provider; main is the one place for globals
		defer mp.Shutdown(context.Background())
	}

	redisCfg := cfg.Redis
	if redisCfg.URL == "" {
		srv, err := redisproc.Start(ctx, redisproc.Config{Dir: cfg.DataDir, AppendOnly: true, Fsync: cfg.Fsync})
		if err != nil {
			return fmt.Errorf("embedded redis: %w", err)
		}
		defer func() {
			if err := srv.Stop(); err != nil {
				log.Error("embedded redis stop", "action", "stop", "error", err)
			}
		}()
		redisCfg.URL = srv.URL()
		removeURL, err := writeEmbeddedURL(cfg.DataDir, redisCfg.URL)
		if err != nil {
			return err
		}
		defer removeURL()
		log.Info("embedded redis-server started", "action", "start_redis", "addr", srv.Addr(), "dir", cfg.DataDir)
	}
	conns, err := redisconn.Open(redisCfg)
	if err != nil {
		return usageError{fmt.Errorf("VOLUNTREE_REDIS_URL: %w", err)}
	}
	defer conns.Close()
	rdb := conns.Primary
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis (%s): %w", conns.Target, err)
	}
	log.Info("redis connected", "action", "connect_redis", "redis", conns.Target.String(), "replica_reads", redisCfg.ReplicaReads,
		"wait_replicas", cfg.Store.WaitReplicas)
	if n := cfg.Store.WaitReplicas; n > 0 {
		if info, err := rdb.Info(ctx, "replication").Result(); err == nil {
			var have int
			for _, line := range strings.Split(info, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
					have, _ = strconv.Atoi(v)
				}
			}
			if have < n {
				log.Warn("fewer replicas are connected than webhooks wait for: they will be answered 503 until enough are",
					"action", "connect_redis", "connected_replicas", have, "wait_replicas", n)
			}
		}
	}

	if err := ml.SetThreads(cfg.Threads); err != nil {
		return err
	}
	fileModel, err := ml.Open(cfg.ModelPath)
	if err != nil {
		return err
	}
	model := ml.NewSwappable(fileModel, "file")
	defer model.Close()
	info := model.Info()
	m.ModelInfo.WithLabelValues(info.Kind, info.Path).Set(1)
	m.ModelVersion.WithLabelValues("file", "").Set(1)
	log.Info("model loaded", "action", "load_model", "kind", info.Kind, "path", info.Path)

	store, err := redisstore.New(rdb, cfg.Store, redisstore.WithReader(conns.Reader))
	if err != nil {
		return err
	}
	defer store.Close()
	// A Redis of an older key layout is migrated first (voluntree migrate): refuse to write to it.
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	err = store.CheckLayout(lctx)
	lcancel()
	if err != nil {
		return err
	}
	// The registry's promoted version, once there is one, wins over the file: checked now,
	// then followed (Pub/Sub and a check every few seconds).
	models := &modelWatcher{store: store, model: model, m: m, log: logger.With("component", "models"), version: "file",
		node: cfg.Node, since: time.Now().UTC()}
	if err := models.sync(ctx); err != nil {
		log.Error("the registry's promoted model: serving the file's until it loads", "action", "load_model", "error", err)
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); models.run(watchCtx) }()
	defer func() { stopWatch(); <-watchDone }()
	var actorMetrics metric.MeterProvider
	if mp != nil {
		actorMetrics = mp
	}
	system := actors.NewSystem(logger, actorMetrics)
	stopActors := func() {
		// Shutdown can hang after a peer died (FACTS): bound it.
		done := make(chan struct{})
		go func() { system.Shutdown(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			log.Warn("actor system shutdown timed out", "action", "stop")
		}
	}
	defer func() { stopActors() }()
	batcher, err := actors.NewBatcher(system, model, cfg.Batcher, m, logger)
	if err != nil {
		return err
	}
	graph, err := facebook.NewGraph(cfg.Graph)
	if err != nil {
		return err
	}
	var demo *httpapi.Demo
	if cfg.Demo == "on" || (cfg.Demo == "auto" && cfg.Redis.URL == "") {
		demo = &httpapi.DefaultDemo
		if err := seedDemo(ctx, store, *demo); err != nil {
			return err
		}
	}
	var publishGraph cluster.Graph = graph
	var commentSource facebook.CommentSource = graph
	var messenger cluster.Messenger = graph
	if demo != nil {
		dg := &demoGraph{pageID: demo.PageID, real: graph}
		publishGraph, commentSource, messenger = dg, dg, dg
	}
	cfg.Cluster.Store, cfg.Cluster.Metrics, cfg.Cluster.Logger, cfg.Cluster.Graph = store, m, logger, publishGraph
	cfg.Cluster.Featurize = ml.DefaultFeaturizerConfig().Featurize
	node, err := cluster.Start(ctx, system, cfg.Cluster)
	if err != nil {
		return err
	}
	// A node left out of its peers' cluster (a healed partition) drains and exits, to be
	// restarted with a new member id (cluster.Node.Guard).
	excluded := make(chan string, 1)
	guardCtx, stopGuard := context.WithCancel(ctx)
	defer stopGuard()
	go node.Guard(guardCtx, cluster.GuardConfig{}, func(reason string) { excluded <- reason })
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "voluntree_cluster_members",
		Help: "Members of the cluster this node sees (its own membership view)."},
		func() float64 { return float64(len(node.Members())) }))
	stopActors = func() { // leaving the cluster shuts the actor system down too
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Stop(sctx); err != nil {
			log.Error("cluster stop", "action", "shutdown", "error", err)
		}
	}
	// One ingest consumer per shard, each a supervised reader actor: a failed loop is
	// restarted. They share the router, so the shards' messages batch together at the model.
	router := cluster.NewRouter(node, batcher, logger)
	ingestReaders := make([]*actors.StreamReader, 0, store.IngestShards())
	for shard := range store.IngestShards() {
		icfg := cfg.Ingest
		icfg.Shard = shard
		consumer, err := actors.NewIngestConsumer(store, router, icfg, m, logger)
		if err != nil {
			return err
		}
		name := "ingest"
		if shard > 0 {
			name = fmt.Sprintf("ingest-%d", shard)
		}
		reader, err := actors.StartStreamReader(system, name, consumer, logger)
		if err != nil {
			return err
		}
		ingestReaders = append(ingestReaders, reader)
	}
	hub, err := actors.NewEventHub(ctx, system, store, actors.EventHubConfig{SendBuffer: cfg.SendBuffer}, m, logger)
	if err != nil {
		return err
	}
	var overloaded atomic.Bool
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go sampleStreams(sampleCtx, store, m, &overloaded, log)

	// Publishing and comment polling run outside the actors, like the ingest consumer.
	var loops sync.WaitGroup
	loopCtx, stopLoops := context.WithCancel(context.Background())
	defer func() { stopLoops(); loops.Wait() }()
	// The job streams' readers are supervised actors (actors.StreamReader), stopped after the
	// HTTP server.
	streamMetrics := &streamworker.Metrics{Entries: m.StreamEntries, Duration: m.StreamDuration, BatchSize: m.StreamBatchSize}
	var readers []*actors.StreamReader
	scheduler := cluster.NewScheduler(node, cluster.SchedulerConfig{})
	loops.Go(func() { scheduler.Run(loopCtx) })
	// Outgoing mail (verification codes): SMTP when configured, else the outbox the first page
	// shows (the embedded default has no mail server), else none (no email verification).
	var sender mail.Sender
	var mailQueue httpapi.Mailer
	var outbox httpapi.Outbox
	switch {
	case cfg.SMTPURL != "":
		if sender, err = mail.NewSMTPSender(cfg.SMTPURL); err != nil {
			return usageError{fmt.Errorf("VOLUNTREE_SMTP_URL: %w", err)}
		}
	case cfg.Outbox == "on":
		sender = mail.NewOutboxSender(rdb, redisstore.NewKeys(cfg.Store.Prefix))
	default:
		log.Warn("no VOLUNTREE_SMTP_URL: emails cannot be verified, so pages cannot be connected", "action", "configure")
	}
	var mq *mail.Queue
	if sender != nil {
		q := mail.NewQueue(rdb, redisstore.NewKeys(cfg.Store.Prefix))
		mailQueue, mq = q, q
		if cfg.Outbox == "on" {
			outbox = q
		}
		mailer := mail.NewWorker(rdb, redisstore.NewKeys(cfg.Store.Prefix), sender,
			mail.WorkerConfig{Consumer: cfg.Node, Metrics: streamMetrics}, logger)
		if err := mailer.Engine().Validate(); err != nil {
			return err
		}
		reader, err := actors.StartStreamReader(system, "mail", mailer, logger)
		if err != nil {
			return err
		}
		readers = append(readers, reader)
	}
	// The conversations' effects (Messenger, email, bookings): readers of the effects stream.
	fxCfg := cluster.EffectsConfig{Graph: messenger, Chat: cluster.NewChatSink(store), EchoWait: cfg.EchoWait, Logger: logger}
	if mq != nil {
		fxCfg.Mail = mq
	}
	fx := cluster.NewEffects(node, fxCfg)
	// At least one reader per outbox partition; reader i reads partition i mod the partitions
	// (a stable consumer name per partition, so a restart re-reads its own pending batches).
	for i := range max(cfg.EffectsWorkers, redisstore.ConversationPartitions) {
		part := i % redisstore.ConversationPartitions
		w := streamworker.New(rdb, fx.StreamConfig(fmt.Sprintf("%s-fx%d", cfg.Node, i), part), fx, streamMetrics, logger)
		if err := w.Validate(); err != nil {
			return err
		}
		reader, err := actors.StartStreamReader(system, fmt.Sprintf("effects-%d", i), w, logger)
		if err != nil {
			return err
		}
		readers = append(readers, reader)
	}
	var ghSignIn httpapi.GitHubSignIn
	if cfg.GitHub.ClientID != "" || cfg.GitHub.ClientSecret != "" {
		gh, err := github.New(cfg.GitHub)
		if err != nil {
			return usageError{fmt.Errorf("GitHub sign-in (VOLUNTREE_GITHUB_CLIENT_ID, VOLUNTREE_GITHUB_CLIENT_SECRET): %w", err)}
		}
		ghSignIn = gh
	}
	var fbLogin httpapi.FacebookLogin
	var fbSignIn httpapi.FacebookSignIn
	if cfg.Graph.AppID != "" && cfg.Graph.AppSecret != "" {
		fbLogin, fbSignIn = graph, graph
	} else {
		log.Info("VOLUNTREE_FB_APP_ID or VOLUNTREE_FB_APP_SECRET is not set: pages cannot be connected", "action", "configure")
	}
	// A signup change's effect batches left in its outbox by a node that died before relaying
	// them (UpdateSignupWithEffects) are handed to the effects outbox by whichever node looks
	// first.
	loops.Go(func() { relaySignupOutboxes(loopCtx, store, 15*time.Second, log) })
	if cfg.PollInterval > 0 {
		poller := facebook.NewPoller(store, commentSource, m, facebook.PollerConfig{Interval: cfg.PollInterval, Node: cfg.Node}, logger)
		loops.Go(func() { poller.Run(loopCtx) })
	}
	if cfg.AppSecret == "" {
		log.Warn("VOLUNTREE_FB_APP_SECRET is not set: POST /webhooks/facebook answers 503", "action", "configure")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	defer ln.Close() // when a step below fails before serving
	if cfg.PublicURL == "" {
		cfg.PublicURL = defaultPublicURL(ln.Addr())
	}
	api := httpapi.New(httpapi.Config{
		Classifier:          batcher,
		Metrics:             m,
		Gatherer:            reg,
		Logger:              logger,
		Ingest:              store,
		Store:               store,
		Events:              hub,
		AppSecret:           []byte(cfg.AppSecret),
		VerifyToken:         cfg.VerifyToken,
		Overloaded:          overloaded.Load,
		Demo:                demo,
		Mail:                mailQueue,
		Outbox:              outbox,
		Facebook:            fbLogin,
		PublicURL:           cfg.PublicURL,
		GitHub:              ghSignIn,
		FacebookSignIn:      fbSignIn,
		Models:              checkedRegistry{store: store, floor: cfg.ModelMinAccuracy, ttl: cfg.ModelTTL, checks: make(chan struct{}, 1)},
		OperatorOrg:         cfg.OperatorOrg,
		ModelVersion:        model.Version,
		SessionIdle:         cfg.SessionIdle,
		SessionMax:          cfg.SessionMax,
		MetricsToken:        cfg.MetricsToken,
		MaxInflightWebhooks: cfg.MaxInflight,
		SlotChanges:         cluster.SlotChangeEffects,
		Conversations:       cluster.NewConversationAdmin(store),
		ClassifyRate:        classifyRate(cfg.ClassifyRate),
		ChatSessionRate:     classifyRate(cfg.ChatSessionRate),
		ClassifyBurst:       cfg.ClassifyBurst,
		TrustedProxies:      splitList(cfg.TrustedProxies),
		Health: []httpapi.HealthCheck{
			{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
			{Name: "classifier", Check: batcher.Healthy},
		},
	})
	if cfg.PprofAddr != "" {
		go servePprof(cfg.PprofAddr, log)
	}
	log.Info("listening", "action", "listen", "addr", ln.Addr().String(), "public_url", cfg.PublicURL, "demo", demo != nil)
	if demo != nil {
		// A newcomer signs in without any OAuth app: a one-time link to the demo organization.
		link, err := loginLinkURL(ctx, store, cfg.PublicURL, demoOrg, "", "Demo owner")
		if err != nil {
			return err
		}
		log.Info("sign in to the demo organization (once, within 15 minutes; `voluntree admin login-link -org "+demoOrg+"` prints another): "+link, "action", "demo")
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- api.Serve(ln) }()

	var exitErr error
	select {
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	case reason := <-excluded:
		log.Error("left out of the cluster: draining, then exiting to rejoin", "action", "shutdown", "reason", reason)
		exitErr = fmt.Errorf("left out of the cluster: %s", reason)
	}
	// Reverse order: close sockets, stop taking webhooks, finish and acknowledge the batch in
	// hand, stop the model; leaving the cluster (deferred) stops the actors.
	log.Info("shutting down", "action", "shutdown")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hub.Stop(sctx); err != nil {
		log.Error("event hub stop", "action", "shutdown", "error", err)
	}
	if err := api.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("http shutdown", "action", "shutdown", "error", err)
	}
	stopLoops()
	loops.Wait()
	for _, r := range readers {
		if err := r.Stop(sctx); err != nil {
			log.Error("stream reader stop", "action", "shutdown", "error", err)
		}
	}
	for _, r := range ingestReaders {
		if err := r.Stop(sctx); err != nil {
			log.Error("ingest consumer stop", "action", "shutdown", "error", err)
		}
	}
	if err := batcher.Stop(sctx); err != nil {
		log.Error("batcher stop", "action", "shutdown", "error", err)
	}
	return exitErr
}

// relaySignupOutboxes relays the signups' outboxes at start and then every interval.
func relaySignupOutboxes(ctx context.Context, store *redisstore.Store, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := store.RelaySignupOutboxes(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("relay signup outboxes", "action", "relay_signup_outboxes", "error", err)
		case n > 0:
			log.Info("relayed signup changes' effects left by a node", "action", "relay_signup_outboxes", "batches", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sampleStreams reads the streams' lengths, pending count and lag into gauges every second,
// and raises overloaded when the backlog nears the ingest stream's cap (trimming would
// otherwise drop entries nobody has read yet).
func sampleStreams(ctx context.Context, store *redisstore.Store, m *metrics.Metrics, overloaded *atomic.Bool, log *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		st, err := store.Stats(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("stream stats", "action", "sample", "error", err)
		} else {
			m.IngestLength.Set(float64(st.Length))
			m.IngestPending.Set(float64(st.Pending))
			m.IngestLag.Set(float64(st.Lag))
			m.DeadLetterLength.Set(float64(st.DeadLength))
			m.RejectedLength.Set(float64(st.Rejected))
			overloaded.Store(st.MaxBacklog > store.IngestMaxLen()*9/10)
		}
		if stages, err := store.ConversationStages(ctx); err == nil {
			for _, stage := range cluster.Stages() {
				if stage != cluster.StageNew && stage != cluster.StageInterested {
					m.Conversations.WithLabelValues(stage).Set(float64(stages[stage]))
				}
			}
		}
		if n, err := store.EffectsLength(ctx); err == nil {
			m.EffectsPending.Set(float64(n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// servePprof serves the Go profiler on its own listener (never on the public API's).
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	log.Info("pprof listening", "action", "listen", "pprof", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Error("pprof", "action", "listen", "error", err)
	}
}

// classifyRate is the API's ClassifyRate for serve's flag: 0 (no limit) is negative there.
func classifyRate(r float64) float64 {
	if r == 0 {
		return -1
	}
	return r
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseBytes reads a size: a number with an optional unit B, KiB, MiB, GiB (or K, M, G, KB,
// MB, GB, all powers of 1024).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size like 160MiB", s)
	}
	mult := map[string]float64{"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
		"MiB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GiB": 1 << 30}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit %q (B, KiB, MiB, GiB)", s, unit)
	}
	if v*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v * mult), nil
}
