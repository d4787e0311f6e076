// Package cluster runs Voluntree's grains — one virtual actor per volunteer conversation and
// one per post — on a Proto.Actor cluster, and routes classified messages to them. The
// library's package is imported as protocluster everywhere.
//
//	node, err := cluster.Start(ctx, system, cluster.Config{Store: st, Metrics: m, Logger: log})
//	defer node.Stop(ctx)
//	router := cluster.NewRouter(node, batcher, log) // an actors.Processor for the ingest consumer
package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/cluster/grainpb"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/redisstore"
)

// Defaults of Config.
const (
	DefaultName           = "voluntree"
	DefaultHost           = "127.0.0.1"
	DefaultRequestTimeout = 5 * time.Second
	DefaultGrainIdle      = 2 * time.Minute
	DefaultRefresh        = 500 * time.Millisecond // member health polling (failover ≈ this)
	DefaultStoreTimeout   = 3 * time.Second
)

// Store is what a cluster member needs of the store: the records of its grains, publisher and
// effects worker (voluntree.GrainStore), and the Redis keys of the effects streams (Keys).
type Store interface {
	voluntree.GrainStore
	Keys() redisstore.Keys
}

// Config configures a cluster member.
type Config struct {
	Name           string        // cluster name
	Host           string        // address the remoting listens on (and is reached at, without Advertise)
	Advertise      string        // host[:port] other members reach this one at (containers: the service name); "" : Host
	Port           int           // remoting (gRPC) port; 0 picks a free one
	HealthPort     int           // the automanaged provider's HTTP port; 0 picks a free one
	Peers          []string      // host:healthport of every member; empty: this member alone
	RequestTimeout time.Duration // one grain request
	GrainIdle      time.Duration // a grain with no request for this long is passivated
	Refresh        time.Duration // membership polling period
	StoreTimeout   time.Duration // one Redis operation of a grain

	Store   Store
	Metrics *metrics.Metrics
	Logger  *slog.Logger

	// Featurize matches volunteers' questions to signups' facts (nil: every question goes to
	// the team).
	Featurize Featurizer

	// Graph publishes admin posts (nil: posts fail with "no Graph API is configured").
	Graph   Graph
	Publish PublishConfig
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.GrainIdle == 0 {
		c.GrainIdle = DefaultGrainIdle
	}
	if c.Refresh == 0 {
		c.Refresh = DefaultRefresh
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Publish.setDefaults()
}

// Validate reports an unusable configuration.
func (c Config) Validate() error {
	switch {
	case c.Store == nil || c.Metrics == nil:
		return fmt.Errorf("cluster: Store and Metrics are required")
	case c.RequestTimeout <= c.Refresh:
		// FACTS: a request must outlive a membership refresh, or failover turns into errors.
		return fmt.Errorf("cluster: request timeout %s must exceed the refresh period %s", c.RequestTimeout, c.Refresh)
	case c.Port < 0 || c.Port > 65535 || c.HealthPort < 0 || c.HealthPort > 65535:
		return fmt.Errorf("cluster: ports must be in 0..65535")
	}
	return nil
}

// newGrainDeps returns what the grains of a node share (cfg with its defaults).
func newGrainDeps(cfg Config) *grainDeps {
	return &grainDeps{store: cfg.Store, metrics: cfg.Metrics, timeout: cfg.StoreTimeout,
		log: cfg.Logger.With("component", "grain"), orgs: newPageOrgs(cfg.Store),
		signups: newSignupCache(cfg.Store, cfg.Featurize), featurize: cfg.Featurize, now: time.Now}
}

// Node is this process's cluster member.
type Node struct {
	c         *protocluster.Cluster
	cfg       Config
	log       *slog.Logger
	aliases   *aliasCache
	publisher *publisher

	inflight    inflight // grain requests awaiting an answer, released when a member leaves
	topologySub *eventstream.Subscription
}

// Start joins (or forms) the cluster with the conversation and post grain kinds. The actor
// system must be fresh: the member starts its remoting on it.
func Start(ctx context.Context, system *actor.ActorSystem, cfg Config) (node *Node, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Port == 0 {
		if cfg.Port, err = freePort(cfg.Host); err != nil {
			return nil, err
		}
	}
	if cfg.HealthPort == 0 {
		if cfg.HealthPort, err = freePort(cfg.Host); err != nil {
			return nil, err
		}
	}
	peers := cfg.Peers
	if len(peers) == 0 {
		peers = []string{net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.HealthPort))}
	}
	deps := newGrainDeps(cfg)
	deps.publisher = &publisher{store: cfg.Store, graph: cfg.Graph, metrics: cfg.Metrics, cfg: cfg.Publish,
		log: cfg.Logger.With("component", "publisher"), now: time.Now}
	supervision := actor.WithSupervisor(actor.NewOneForOneStrategy(10, time.Second, actor.DefaultDecider))
	kinds := []*protocluster.Kind{
		grainpb.NewConversationKind(func() grainpb.Conversation { return &conversationGrain{deps: deps} }, cfg.GrainIdle, supervision),
		grainpb.NewPostKind(func() grainpb.Post { return &postGrain{deps: deps} }, cfg.GrainIdle, supervision),
	}
	provider := automanaged.NewWithConfig(cfg.Refresh, cfg.HealthPort, peers...)
	var remoteOpts []remote.ConfigOption
	if cfg.Advertise != "" {
		adv := cfg.Advertise
		if _, _, err := net.SplitHostPort(adv); err != nil {
			adv = net.JoinHostPort(adv, strconv.Itoa(cfg.Port))
		}
		remoteOpts = append(remoteOpts, remote.WithAdvertisedHost(adv))
	}
	remoteCfg := remote.Configure(cfg.Host, cfg.Port, remoteOpts...)
	ccfg := protocluster.Configure(cfg.Name, provider, disthash.New(), remoteCfg,
		protocluster.WithKinds(kinds...), protocluster.WithRequestTimeout(cfg.RequestTimeout))
	c := protocluster.New(system, ccfg)
	// StartMember panics on a busy port instead of returning an error (FACTS).
	defer func() {
		if r := recover(); r != nil {
			node, err = nil, fmt.Errorf("cluster: start member on %s:%d: %v", cfg.Host, cfg.Port, r)
		}
	}()
	c.StartMember()
	log := cfg.Logger.With("component", "cluster")
	log.Info("cluster member started", "action", "start_cluster", "address", system.Address(),
		"health_port", cfg.HealthPort, "peers", peers)
	node = &Node{c: c, cfg: cfg, log: log, aliases: newAliasCache(cfg.Store), publisher: deps.publisher}
	node.watchTopology()
	return node, nil
}

// Stop leaves the cluster, bounded by ctx (Shutdown can hang after a peer died).
//
// Proto.Actor's graceful Shutdown stops the actor system — every grain — first and takes the
// member out of the membership after: in between, peers still route requests here and wait
// out their timeouts (the rolling restart's tail). So the node leaves the membership first:
// its health endpoint closes, peers drop it within a refresh and send their requests in flight
// again (inflight.go), while its grains still answer what already reached them; then it
// shuts down.
func (n *Node) Stop(ctx context.Context) error {
	n.c.ActorSystem.EventStream.Unsubscribe(n.topologySub)
	done := make(chan struct{})
	go func() {
		if len(n.Members()) > 1 {
			_ = n.c.Config.ClusterProvider.Shutdown(true) // Shutdown below closes it again: a no-op
			select {
			case <-time.After(2*n.cfg.Refresh + 100*time.Millisecond): // peers poll every Refresh
			case <-ctx.Done():
			}
		}
		n.c.Shutdown(true)
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		n.log.Warn("cluster shutdown timed out", "action", "stop")
		return fmt.Errorf("cluster: shutdown: %w", ctx.Err())
	}
}

// Conversation returns the typed client of a conversation grain (id: voluntree.ConversationID).
func (n *Node) Conversation(id string) *grainpb.ConversationGrainClient {
	return grainpb.GetConversationGrainClient(n.c, id)
}

// Post returns the typed client of a post grain (id: post id or redisstore.PageInbox).
func (n *Node) Post(id string) *grainpb.PostGrainClient {
	return grainpb.GetPostGrainClient(n.c, id)
}

// Cluster returns the Proto.Actor cluster (for request options).
func (n *Node) Cluster() *protocluster.Cluster { return n.c }

// Members returns the addresses of the cluster's current members.
func (n *Node) Members() []string {
	var out []string
	for _, m := range n.c.MemberList.Members().Members() {
		out = append(out, m.Address())
	}
	return out
}

func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("cluster: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
