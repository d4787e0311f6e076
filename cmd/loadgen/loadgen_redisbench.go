package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// loadgenRedisBench measures the raw XADD rate of the Redis at rawURL with redis-benchmark on
// key, then deletes key.
func loadgenRedisBench(ctx context.Context, rawURL, key string) (*loadgenBench, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("-redis-url: %w", err)
	}
	opts.MaxRetries, opts.DialerRetries = -1, 1 // fail fast: redis-benchmark would anyway
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rdb.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", opts.Addr, err)
	}
	defer func() {
		// Delete even after Ctrl-C: the key would otherwise stay with 200k entries.
		delCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		rdb.Del(delCtx, key)
	}()
	args, err := redisBenchArgs(opts, key)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "redis-benchmark", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String() + " " + lastLine(stdout.String()))
		return nil, fmt.Errorf("redis-benchmark: %w: %s", err, msg)
	}
	rps, err := parseBenchRPS(stdout.String())
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark: %w", err)
	}
	return &loadgenBench{Addr: opts.Addr, XADDPerSec: rps}, nil
}

// redisBenchArgs are redis-benchmark's arguments for XADD on key at opts.
func redisBenchArgs(opts *redis.Options, key string) ([]string, error) {
	var args []string
	if opts.Network == "unix" {
		args = append(args, "-s", opts.Addr)
	} else {
		host, port, err := net.SplitHostPort(opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("-redis-url: address %q: %w", opts.Addr, err)
		}
		args = append(args, "-h", host, "-p", port)
	}
	if opts.Password != "" {
		args = append(args, "-a", opts.Password)
		if opts.Username != "" {
			args = append(args, "--user", opts.Username)
		}
	}
	if opts.DB != 0 {
		args = append(args, "--dbnum", strconv.Itoa(opts.DB))
	}
	if opts.TLSConfig != nil {
		args = append(args, "--tls")
		if opts.TLSConfig.ServerName != "" {
			args = append(args, "--sni", opts.TLSConfig.ServerName)
		}
		if opts.TLSConfig.InsecureSkipVerify {
			args = append(args, "--insecure")
		}
	}
	args = append(args, "-P", strconv.Itoa(loadgenBenchPipeline), "-n", strconv.Itoa(loadgenBenchRequests), "-q",
		"XADD", key, "*", "f", "v")
	return args, nil
}

var benchRPS = regexp.MustCompile(`([0-9]+(?:\.[0-9]+)?) requests per second`)

// parseBenchRPS reads the final requests/s of `redis-benchmark -q` (whose progress lines end
// in \r, not \n).
func parseBenchRPS(out string) (float64, error) {
	m := benchRPS.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0, fmt.Errorf("no \"requests per second\" in its output: %q", lastLine(out))
	}
	v, err := strconv.ParseFloat(m[len(m)-1][1], 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad requests per second %q", m[len(m)-1][1])
	}
	return v, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if k := strings.LastIndexAny(s, "\r\n"); k >= 0 {
		s = s[k+1:]
	}
	return strings.TrimSpace(s)
}

// redactRedisURL hides the password of a Redis URL for printing.
func redactRedisURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(redis URL)"
	}
	return u.Redacted()
}
