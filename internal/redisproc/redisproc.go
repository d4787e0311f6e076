// Package redisproc runs a private redis-server as a child process: the embedded default of
// `voluntree serve` (data under ./data, AOF on) and the per-package server of the tests.
//
//	srv, err := redisproc.Start(ctx, redisproc.Config{Dir: "./data", AppendOnly: true})
//	defer srv.Stop()
//	opts, _ := redis.ParseURL(srv.URL())
package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled is returned when no redis-server binary is found.
var ErrNotInstalled = errors.New("redisproc: redis-server is not installed (apt-get install redis-server)")

// Config of a child redis-server.
type Config struct {
	Binary     string // default: redis-server on PATH
	Dir        string // working and data directory; created if missing
	Port       int    // 0 = a free port on 127.0.0.1
	AppendOnly bool   // AOF with fsync on every write (durable acknowledgements)
	// Fsync overrides the AOF's fsync policy: "always" (the default with AppendOnly: a
	// reply means the write is on disk) or "everysec" (a power loss can lose the last
	// second; a crash of Redis or of this process loses nothing).
	Fsync     string
	StartWait time.Duration
	// Cluster starts a Redis Cluster node (cluster-enabled, its nodes.conf in Dir) on a port
	// whose cluster bus (port+10000) is a valid port too; the caller forms the cluster.
	Cluster bool
	// Sentinel starts a Redis Sentinel instead of a server: this is its configuration
	// (sentinel monitor …), written to Dir/sentinel.conf, which the sentinel rewrites.
	Sentinel string
	// Args are more redis-server arguments, after ours (a later one wins), like
	// {"--replicaof", "127.0.0.1", "6379"}.
	Args []string
}

// Server is a running child redis-server.
type Server struct {
	cmd      *exec.Cmd
	addr     string
	exited   chan struct{}
	logFile  string
	logStart int64 // size of logFile before this run
	stderr   *tail
}

// Start launches redis-server and waits until it answers PING. With Port 0 it picks a free
// port, and picks again if another process takes it first.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	for attempt := 1; ; attempt++ {
		s, err := start(ctx, cfg)
		var race errPortTaken
		if cfg.Port == 0 && attempt < 5 && errors.As(err, &race) {
			continue
		}
		return s, err
	}
}

// errPortTaken: redis-server exited at start because its port was in use.
type errPortTaken struct{ error }

func start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Binary == "" {
		cfg.Binary = "redis-server"
	}
	bin, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, ErrNotInstalled
	}
	if cfg.StartWait == 0 {
		cfg.StartWait = 10 * time.Second
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("redisproc: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("redisproc: data dir: %w", err)
	}
	port := cfg.Port
	for port == 0 || (cfg.Cluster && port > 65535-10000) {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--daemonize", "no", "--protected-mode", "yes", "--logfile", "redis.log",
	}
	if cfg.Sentinel != "" {
		conf := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(conf, []byte(cfg.Sentinel), 0o600); err != nil {
			return nil, fmt.Errorf("redisproc: sentinel config: %w", err)
		}
		args = append([]string{conf, "--sentinel"}, args...)
	} else {
		args = append(args, "--save", "")
	}
	if cfg.Cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
	}
	switch {
	case cfg.Sentinel != "":
	case cfg.AppendOnly:
		fsync := cfg.Fsync
		if fsync == "" {
			fsync = "always"
		}
		args = append(args, "--appendonly", "yes", "--appendfsync", fsync)
	default:
		args = append(args, "--appendonly", "no")
	}
	args = append(args, cfg.Args...)
	s := &Server{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited: make(chan struct{}),
		logFile: filepath.Join(dir, "redis.log"), stderr: &tail{max: 4096}}
	if st, err := os.Stat(s.logFile); err == nil {
		s.logStart = st.Size() // the log is appended across runs: report only this run's lines
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir // redis.log and the AOF live here
	// Config errors go to stderr, not to the log file.
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr
	// The child dies with us even if we are killed without a chance to stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redisproc: start %s: %w", bin, err)
	}
	s.cmd = cmd
	go func() { cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx, cfg.StartWait); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Addr is host:port; URL is the redis:// URL of the server.
func (s *Server) Addr() string { return s.addr }
func (s *Server) URL() string  { return "redis://" + s.addr }

// Stop asks redis-server to exit (it flushes the AOF on SIGTERM) and waits up to 10 s before
// killing it.
func (s *Server) Stop() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("redisproc: redis-server did not stop within 10s and was killed")
	}
}

func (s *Server) waitReady(ctx context.Context, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		if err := ping(s.addr); err == nil {
			return nil
		}
		select {
		case <-s.exited:
			out := s.output()
			err := fmt.Errorf("redisproc: redis-server on %s exited at start: %s", s.addr, out)
			if strings.Contains(out, "Address already in use") {
				return errPortTaken{err}
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redisproc: redis-server not ready on %s after %s", s.addr, wait)
		}
	}
}

// output returns what redis-server said in this run: stderr, then the end of its log.
func (s *Server) output() string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(s.stderr.String()))
	if f, err := os.Open(s.logFile); err == nil {
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			from := max(s.logStart, st.Size()-2048)
			data := make([]byte, st.Size()-from)
			if n, _ := f.ReadAt(data, from); n > 0 {
				b.WriteString(" ")
				b.WriteString(strings.TrimSpace(string(data[:n])))
			}
		}
	}
	return strings.TrimSpace(b.String())
}

// tail is an io.Writer keeping the last max bytes written, safe for concurrent use.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// ping speaks just enough RESP to know the server is up, without a client library.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "+PONG\r\n" {
		return fmt.Errorf("redisproc: unexpected PING reply %q", buf[:n])
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redisproc: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
