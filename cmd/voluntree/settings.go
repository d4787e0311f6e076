package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/voluntree/voluntree/internal/redisconn"
)

// settings are where a command's flags take their defaults from, in this order: the
// environment, then the config file (-config FILE or VOLUNTREE_CONFIG), then the built-in
// default. A flag on the command line wins over all three.
//
// The config file has the environment's keys, one KEY=value a line, like an env file for
// docker-compose's env_file or systemd's EnvironmentFile; # starts a comment line and a value
// may be in single or double quotes. A key the commands do not know, or a value that does
// not parse, is an error naming it: never a silent default.
type settings struct {
	getenv func(string) (string, bool)
	path   string
	file   map[string]fileSetting
	asked  map[string]bool
	errs   []error
}

type fileSetting struct {
	value string
	line  int
}

// configEnv names the config file when -config is not given.
const configEnv = "VOLUNTREE_CONFIG"

// newSettings reads the config file named by -config in args, else by VOLUNTREE_CONFIG.
func newSettings(args []string, getenv func(string) (string, bool)) (*settings, error) {
	s := &settings{getenv: getenv, file: map[string]fileSetting{}, asked: map[string]bool{configEnv: true}}
	path, err := configArg(args)
	if err != nil {
		return nil, usageError{err}
	}
	if path == "" {
		path, _ = getenv(configEnv)
	}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError{fmt.Errorf("config file: %w", err)}
	}
	s.path = path
	if s.file, err = parseConfigFile(path, b); err != nil {
		return nil, usageError{err}
	}
	return s, nil
}

// configArg finds -config FILE (or -config=FILE, --config) among flags, before they are parsed.
func configArg(args []string) (string, error) {
	for i, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue // a flag's value or an argument: -config may come after either
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "config" {
			continue
		}
		if hasValue {
			return value, nil
		}
		if i+1 >= len(args) {
			return "", errors.New("flag needs an argument: -config")
		}
		return args[i+1], nil
	}
	return "", nil
}

// parseConfigFile reads KEY=value lines.
func parseConfigFile(path string, b []byte) (map[string]fileSetting, error) {
	out := map[string]fileSetting{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("%s:%d: want KEY=value, got %q", path, n, line)
		}
		if !strings.HasPrefix(key, "VOLUNTREE_") || strings.TrimLeft(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
			return nil, fmt.Errorf("%s:%d: %q: a key is an environment variable's name, VOLUNTREE_ and capitals, digits, _", path, n, key)
		}
		if key == configEnv {
			return nil, fmt.Errorf("%s:%d: %s cannot be set in a config file", path, n, key)
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') {
			if value[len(value)-1] != value[0] {
				return nil, fmt.Errorf("%s:%d: %s: unterminated quote", path, n, key)
			}
			if value[0] == '"' {
				v, err := strconv.Unquote(value)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: %s: %w", path, n, key, err)
				}
				value = v
			} else {
				value = value[1 : len(value)-1]
			}
		}
		if prev, dup := out[key]; dup {
			return nil, fmt.Errorf("%s:%d: %s is already set on line %d", path, n, key, prev.line)
		}
		out[key] = fileSetting{value: value, line: n}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// lookup returns key's value and where it came from ("" when unset).
func (s *settings) lookup(key string) (value, from string) {
	s.asked[key] = true
	if v, ok := s.getenv(key); ok && v != "" {
		return v, "the environment"
	}
	if f, ok := s.file[key]; ok && f.value != "" {
		return f.value, fmt.Sprintf("%s:%d", s.path, f.line)
	}
	return "", ""
}

func (s *settings) str(key, def string) string {
	if v, _ := s.lookup(key); v != "" {
		return v
	}
	return def
}

func (s *settings) fail(key, value, from, want string) {
	s.errs = append(s.errs, fmt.Errorf("%s=%q (%s): %s", key, value, from, want))
}

func (s *settings) int(key string, def int) int {
	v, from := s.lookup(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		s.fail(key, v, from, "not a whole number")
		return def
	}
	return n
}

func (s *settings) float(key string, def float64) float64 {
	v, from := s.lookup(key)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		s.fail(key, v, from, "not a number")
		return def
	}
	return f
}

func (s *settings) onOff(key string, def bool) bool {
	switch v, from := s.lookup(key); v {
	case "":
		return def
	case "on":
		return true
	case "off":
		return false
	default:
		s.fail(key, v, from, "want on or off")
		return def
	}
}

func (s *settings) duration(key string, def time.Duration) time.Duration {
	v, from := s.lookup(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		s.fail(key, v, from, "not a duration like 30s or 5m")
		return def
	}
	return d
}

// checkConfigFlag fails when the -config the flags parsed is not the file the settings read
// (a -config this scan missed): its settings would be silently ignored.
func (s *settings) checkConfigFlag(fs *flag.FlagSet) error {
	f := fs.Lookup("config")
	if f == nil || f.Value.String() == "" || f.Value.String() == s.path {
		return nil
	}
	return fmt.Errorf("-config %s was not read: give it as -config FILE, before any -- ", f.Value.String())
}

// err reports the values that did not parse and the file's keys that no command reads
// (known: the keys of every command that shares the file).
func (s *settings) err(known ...map[string]bool) error {
	errs := append([]error(nil), s.errs...)
	var unknown []string
	for k := range s.file {
		if s.asked[k] {
			continue
		}
		found := false
		for _, m := range known {
			found = found || m[k]
		}
		if !found {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		errs = append(errs, fmt.Errorf("%s:%d: unknown key %s", s.path, s.file[k].line, k))
	}
	return errors.Join(errs...)
}

// serveKeys are the keys `voluntree serve` reads: a file shared with the admin commands may
// hold them.
func serveKeys() map[string]bool {
	s := &settings{getenv: func(string) (string, bool) { return "", false }, file: map[string]fileSetting{}, asked: map[string]bool{}}
	_, _ = parseServeFlagsWith(s, nil, io.Discard)
	return s.asked
}

// redisFlags are the Redis settings every command that reaches Redis has; empty is what an
// empty URL means to the command.
func redisFlags(fs *flag.FlagSet, env *settings, c *redisconn.Config, empty string) {
	fs.StringVar(&c.URL, "redis-url", env.str("VOLUNTREE_REDIS_URL", ""), "Redis: redis://, rediss://, unix://, redis-sentinel://s1:26379,s2:26379?master=NAME or redis-cluster://h1:7000,h2:7001 (README, Redis); "+empty+" (env VOLUNTREE_REDIS_URL)")
	fs.IntVar(&c.PoolSize, "redis-pool-size", env.int("VOLUNTREE_REDIS_POOL_SIZE", 0), fmt.Sprintf("connections per Redis server; 0: the URL's pool_size, else %d (env VOLUNTREE_REDIS_POOL_SIZE)", redisconn.DefaultPoolSize))
	fs.DurationVar(&c.DialTimeout, "redis-dial-timeout", env.duration("VOLUNTREE_REDIS_DIAL_TIMEOUT", 0), "Redis connect timeout; 0: the URL's dial_timeout, else 5s (env VOLUNTREE_REDIS_DIAL_TIMEOUT)")
	fs.DurationVar(&c.ReadTimeout, "redis-read-timeout", env.duration("VOLUNTREE_REDIS_READ_TIMEOUT", 0), "Redis reply timeout; 0: the URL's read_timeout, else 3s (env VOLUNTREE_REDIS_READ_TIMEOUT)")
	fs.DurationVar(&c.WriteTimeout, "redis-write-timeout", env.duration("VOLUNTREE_REDIS_WRITE_TIMEOUT", 0), "Redis send timeout; 0: the URL's write_timeout, else 3s (env VOLUNTREE_REDIS_WRITE_TIMEOUT)")
	fs.BoolVar(&c.ReplicaReads, "redis-replica-reads", env.onOff("VOLUNTREE_REDIS_REPLICA_READS", false), "admin listings read from replicas (Sentinel, Cluster), a moment behind the master (env VOLUNTREE_REDIS_REPLICA_READS=on)")
}

// checkRedisConfig validates c's values (the URL is parsed when it is opened).
func checkRedisConfig(c redisconn.Config) error {
	switch {
	case c.PoolSize < 0:
		return fmt.Errorf("-redis-pool-size must be 0 (the default) or positive, got %d", c.PoolSize)
	case c.DialTimeout < 0 || c.ReadTimeout < 0 || c.WriteTimeout < 0:
		return fmt.Errorf("-redis-dial-timeout, -redis-read-timeout and -redis-write-timeout must be 0 (the default) or positive")
	}
	if c.URL != "" {
		if _, err := redisconn.Parse(c.URL); err != nil {
			return fmt.Errorf("VOLUNTREE_REDIS_URL (-redis-url): %w", err)
		}
	}
	return nil
}

// checkStoreCommand is the check of a command that works on the store (admin, model,
// migrate) once its flags are parsed: the -config flag, the settings read (known: the keys
// besides serve's that a shared config file may hold) and the Redis configuration. Its error
// is a usageError.
func (s *settings) checkStoreCommand(fs *flag.FlagSet, redisCfg redisconn.Config, known ...map[string]bool) error {
	if err := s.checkConfigFlag(fs); err != nil {
		return usageError{err}
	}
	if err := s.err(append([]map[string]bool{serveKeys()}, known...)...); err != nil {
		return usageError{err}
	}
	if err := checkRedisConfig(redisCfg); err != nil {
		return usageError{err}
	}
	return nil
}
