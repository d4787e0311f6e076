// Package redisproc runs a private redis-server as a child process: the embedded default of
// `voluntree serve` (data under ./data, AOF on) and the per-package server of the tests.
//
//	srv, err := redisproc.Start(ctx, redisproc.Config{Dir: "./data", AppendOnly: true})
//	defer srv.Stop()
//	opts, _ := redis.ParseURL(srv.URL())
package redisproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	StartWait  time.Duration
}

// Server is a running child redis-server.
type Server struct {
	cmd     *exec.Cmd
	addr    string
	exited  chan struct{}
	logFile string
}

// Start launches redis-server and waits until it answers PING.
func Start(ctx context.Context, cfg Config) (*Server, error) {
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
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--daemonize", "no", "--protected-mode", "yes", "--logfile", "redis.log",
	}
	if cfg.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir // redis.log and the AOF live here
	// The child dies with us even if we are killed without a chance to stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redisproc: start %s: %w", bin, err)
	}
	s := &Server{cmd: cmd, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited: make(chan struct{}),
		logFile: filepath.Join(dir, "redis.log")}
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
			return fmt.Errorf("redisproc: redis-server exited at start: %s", s.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redisproc: redis-server not ready on %s after %s", s.addr, wait)
		}
	}
}

// logTail returns the end of redis.log, for start-up errors.
func (s *Server) logTail() string {
	data, _ := os.ReadFile(s.logFile)
	if len(data) > 2048 {
		data = data[len(data)-2048:]
	}
	return string(bytes.TrimSpace(data))
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
