// Package redisconn turns the one Redis setting an operator gives (a URL) into a
// redis.UniversalClient, whichever Redis they run: a standalone server, a master watched by
// Sentinel, or a Redis Cluster.
//
//	redis://[user:pass@]host:6379[/db][?options]      standalone (rediss:// with TLS)
//	unix://[user:pass@]/path/redis.sock[?db=N]         standalone on a Unix socket
//	redis-sentinel://[user:pass@]s1:26379,s2:26379,s3:26379[/db]?master=NAME[&options]
//	                                                    Sentinel (rediss-sentinel:// with TLS)
//	redis-cluster://[user:pass@]h1:7000,h2:7001,h3:7002[?options]
//	                                                    Cluster seeds (rediss-cluster:// with TLS)
//
// The user and password are the data nodes' (the master and replicas, or the cluster's
// nodes); the sentinels' own are the options sentinel_username and sentinel_password. The
// options are go-redis's URL options (pool_size, dial_timeout, read_timeout, write_timeout,
// max_retries, …); an unknown one is an error.
package redisconn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode is the kind of Redis deployment a URL names.
type Mode string

const (
	Standalone Mode = "standalone"
	Sentinel   Mode = "sentinel"
	Cluster    Mode = "cluster"
)

// Config is how a process reaches Redis. The zero durations and sizes leave the URL's
// options, else go-redis's defaults.
type Config struct {
	URL          string
	PoolSize     int           // connections per Redis node; 0: the URL's pool_size, else DefaultPoolSize
	DialTimeout  time.Duration // 0: the URL's, else go-redis's (5s)
	ReadTimeout  time.Duration // 0: the URL's, else go-redis's (3s)
	WriteTimeout time.Duration // 0: the URL's, else go-redis's (3s)
	// ReplicaReads sends the read-only paths that tolerate a replica's lag (Clients.Reader) to
	// replicas: Sentinel's and Cluster's only.
	ReplicaReads bool
}

// DefaultPoolSize is the connections per Redis node unless the URL or Config set it: grains,
// webhook calls and the consumers each hold one for a round trip, and go-redis's default (10
// per CPU) made them queue for connections under load.
const DefaultPoolSize = 256

// Target is a parsed URL: the deployment and go-redis's options for it.
type Target struct {
	Mode Mode
	// Addrs are the server (standalone), the sentinels or the cluster's seeds.
	Addrs  []string
	simple *redis.Options          // Standalone
	opts   *redis.UniversalOptions // Sentinel, Cluster
}

// String names the deployment without credentials, for logs and errors.
func (t Target) String() string {
	s := string(t.Mode) + " " + strings.Join(t.Addrs, ",")
	if t.Mode == Sentinel {
		s += " master " + t.opts.MasterName
	}
	return s
}

// Parse reads a Redis URL (see the package comment). It opens no connection.
func Parse(raw string) (Target, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Target{}, fmt.Errorf("%q is not a URL like redis://host:6379", redact(raw))
	}
	switch scheme {
	case "redis", "rediss", "unix":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return Target{}, fmt.Errorf("%s: %w", redact(raw), scrub(err))
		}
		return Target{Mode: Standalone, Addrs: []string{o.Addr}, simple: o}, nil
	case "redis-sentinel", "rediss-sentinel", "redis-cluster", "rediss-cluster":
	default:
		return Target{}, fmt.Errorf("%s: unknown scheme %q: want redis, rediss, unix, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", redact(raw), scheme)
	}
	base, mode, _ := strings.Cut(scheme, "-")
	authority, pathQuery := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, pathQuery = rest[:i], rest[i:]
	}
	userinfo, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	var addrs []string
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return Target{}, fmt.Errorf("%s: %q is not a host:port", redact(raw), h)
		}
		addrs = append(addrs, h)
	}
	path, query, _ := strings.Cut(pathQuery, "?")
	q, err := url.ParseQuery(query)
	for _, k := range []string{"read_only", "route_by_latency", "route_randomly", "replica_only", "use_disconnected_replicas"} {
		if q.Has(k) {
			return Target{}, fmt.Errorf("%s: %s: reads go to replicas only where they may lag, with VOLUNTREE_REDIS_REPLICA_READS=on", redact(raw), k)
		}
	}
	if err != nil {
		return Target{}, fmt.Errorf("%s: options: %w", redact(raw), scrub(err))
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	if mode == "cluster" {
		if path != "" && path != "/" {
			return Target{}, fmt.Errorf("%s: a Redis Cluster has no database number (path %q)", redact(raw), path)
		}
		u := base + "://" + userinfo + addrs[0] + "?" + q.Encode()
		o, err := redis.ParseClusterURL(u)
		if err != nil {
			return Target{}, fmt.Errorf("%s: %w", redact(raw), scrub(err))
		}
		return Target{Mode: Cluster, Addrs: addrs, opts: &redis.UniversalOptions{
			Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig,
			Protocol: o.Protocol, ClientName: o.ClientName, MaxRedirects: o.MaxRedirects,
			MaxRetries: o.MaxRetries, MinRetryBackoff: o.MinRetryBackoff, MaxRetryBackoff: o.MaxRetryBackoff,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolFIFO: o.PoolFIFO, PoolSize: o.PoolSize, PoolTimeout: o.PoolTimeout,
			MinIdleConns: o.MinIdleConns, MaxIdleConns: o.MaxIdleConns, MaxActiveConns: o.MaxActiveConns,
			ConnMaxIdleTime: o.ConnMaxIdleTime, ConnMaxLifetime: o.ConnMaxLifetime,
			IsClusterMode: true,
		}}, nil
	}
	// Sentinel: go-redis's URL carries the sentinels' credentials in its userinfo and the
	// master's in options; ours the other way round, as the data is what a URL is about.
	if m := q.Get("master"); m != "" {
		if q.Has("master_name") {
			return Target{}, fmt.Errorf("%s: master and master_name both set", redact(raw))
		}
		q.Set("master_name", m)
		q.Del("master")
	}
	if q.Get("master_name") == "" {
		return Target{}, fmt.Errorf("%s: Sentinel needs the master's name (?master=mymaster)", redact(raw))
	}
	if userinfo != "" {
		ui, err := url.Parse(base + "://" + userinfo + "x")
		if err != nil {
			return Target{}, fmt.Errorf("%s: user and password: %w", redact(raw), scrub(err))
		}
		if n := ui.User.Username(); n != "" {
			q.Set("username", n)
		}
		if p, ok := ui.User.Password(); ok {
			q.Set("password", p)
		}
	}
	sentinelUser := ""
	if q.Has("sentinel_username") || q.Has("sentinel_password") {
		sentinelUser = url.UserPassword(q.Get("sentinel_username"), q.Get("sentinel_password")).String() + "@"
		q.Del("sentinel_username")
		q.Del("sentinel_password")
	}
	u := base + "://" + sentinelUser + addrs[0] + path + "?" + q.Encode()
	o, err := redis.ParseFailoverURL(u)
	if err != nil {
		return Target{}, fmt.Errorf("%s: %w", redact(raw), scrub(err))
	}
	return Target{Mode: Sentinel, Addrs: addrs, opts: &redis.UniversalOptions{
		Addrs: o.SentinelAddrs, MasterName: o.MasterName, DB: o.DB,
		Username: o.Username, Password: o.Password,
		SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
		TLSConfig: o.TLSConfig, Protocol: o.Protocol, ClientName: o.ClientName,
		MaxRetries: o.MaxRetries, MinRetryBackoff: o.MinRetryBackoff, MaxRetryBackoff: o.MaxRetryBackoff,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolFIFO: o.PoolFIFO, PoolSize: o.PoolSize, PoolTimeout: o.PoolTimeout,
		MinIdleConns: o.MinIdleConns, MaxIdleConns: o.MaxIdleConns, MaxActiveConns: o.MaxActiveConns,
		ConnMaxIdleTime: o.ConnMaxIdleTime, ConnMaxLifetime: o.ConnMaxLifetime,
	}}, nil
}

// Clients are a process's connections to Redis.
type Clients struct {
	Target Target
	// Primary serves every write and every read that must see the latest write.
	Primary redis.UniversalClient
	// Reader serves reads that tolerate a replica's lag (admin listings): replicas with
	// Config.ReplicaReads, else Primary itself.
	Reader redis.UniversalClient
}

// Close closes both clients.
func (c *Clients) Close() error {
	err := c.Primary.Close()
	if c.Reader != c.Primary {
		err = errors.Join(err, c.Reader.Close())
	}
	return err
}

// Open parses cfg.URL and makes the clients. Nothing is dialled until the first command.
func Open(cfg Config) (*Clients, error) {
	t, err := Parse(cfg.URL)
	if err != nil {
		return nil, err
	}
	c := &Clients{Target: t}
	if t.Mode == Standalone {
		if cfg.ReplicaReads {
			return nil, fmt.Errorf("replica reads need Sentinel or Cluster: %s has no replicas known to the client", t)
		}
		o := *t.simple
		o.PoolSize, o.DialTimeout, o.ReadTimeout, o.WriteTimeout = override(cfg, o.PoolSize, o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
		c.Primary = redis.NewClient(&o)
		c.Reader = c.Primary
		return c, nil
	}
	o := *t.opts
	o.PoolSize, o.DialTimeout, o.ReadTimeout, o.WriteTimeout = override(cfg, o.PoolSize, o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
	if t.Mode == Sentinel {
		c.Primary = redis.NewFailoverClient(o.Failover())
	} else {
		c.Primary = redis.NewClusterClient(o.Cluster())
	}
	c.Reader = c.Primary
	if cfg.ReplicaReads {
		r := o
		// Read-only commands go to a replica of the key's master (a random one), to the
		// master when no replica answers.
		r.ReadOnly = true
		if t.Mode == Sentinel {
			c.Reader = redis.NewFailoverClusterClient(r.Failover())
		} else {
			c.Reader = redis.NewClusterClient(r.Cluster())
		}
	}
	return c, nil
}

// override applies cfg's sizes and timeouts over the URL's.
func override(cfg Config, pool int, dial, read, write time.Duration) (int, time.Duration, time.Duration, time.Duration) {
	if cfg.PoolSize > 0 {
		pool = cfg.PoolSize
	}
	if pool == 0 {
		pool = DefaultPoolSize
	}
	if cfg.DialTimeout > 0 {
		dial = cfg.DialTimeout
	}
	if cfg.ReadTimeout > 0 {
		read = cfg.ReadTimeout
	}
	if cfg.WriteTimeout > 0 {
		write = cfg.WriteTimeout
	}
	return pool, dial, read, write
}

// scrub drops what a parse error quotes of the URL (net/url's errors hold it whole, password
// included), keeping what went wrong.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("not a valid URL (a password with reserved characters must be percent-encoded): %s", ue.Op)
	}
	return err
}

// redact hides a URL's password in messages.
func redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			return "xxxxx" + raw[i:]
		}
		return raw
	}
	end := len(rest)
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		end = i
	}
	if i := strings.LastIndex(rest[:end], "@"); i >= 0 {
		user, _, _ := strings.Cut(rest[:i], ":")
		rest = user + ":xxxxx" + rest[i:]
	}
	if strings.Contains(rest, "password=") {
		if before, q, ok := strings.Cut(rest, "?"); ok {
			v, _ := url.ParseQuery(q)
			for _, k := range []string{"password", "sentinel_password"} {
				if v.Has(k) {
					v.Set(k, "xxxxx")
				}
			}
			rest = before + "?" + v.Encode()
		}
	}
	return scheme + "://" + rest
}
