package redisproc

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func requireRedis(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is required under CI=true")
		}
		t.Skip("redis-server not installed")
	}
}

func TestStartAnswersAndStopEndsTheProcess(t *testing.T) {
	requireRedis(t)
	dir := t.TempDir()
	srv, err := Start(context.Background(), Config{Dir: dir, AppendOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ping(srv.Addr()); err != nil {
		t.Fatalf("PING: %v", err)
	}
	if !strings.HasPrefix(srv.URL(), "redis://127.0.0.1:") {
		t.Fatalf("URL %q", srv.URL())
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ping(srv.Addr()); err == nil {
		t.Fatal("redis-server still answers after Stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "appendonlydir")); err != nil {
		t.Fatalf("AppendOnly wrote no AOF: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStartOnABusyPortReportsRedisError(t *testing.T) {
	requireRedis(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Start(ctx, Config{Dir: t.TempDir(), Port: port, StartWait: 5 * time.Second})
	if err == nil {
		t.Fatalf("started on busy port %d", port)
	}
	if !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("error does not carry redis-server's reason: %v", err)
	}
}

func TestConfigErrorsReachTheCaller(t *testing.T) {
	requireRedis(t)
	// A bad option makes redis-server print to stderr and exit before it opens its log.
	_, err := Start(context.Background(), Config{Dir: t.TempDir(), Binary: writeWrapper(t, "--no-such-option yes")})
	if err == nil || !strings.Contains(err.Error(), "no-such-option") {
		t.Fatalf("err = %v, want redis-server's complaint about the option", err)
	}
}

// writeWrapper returns a script that runs redis-server with extra arguments appended.
func writeWrapper(t *testing.T, extra string) string {
	t.Helper()
	real, _ := exec.LookPath("redis-server")
	path := filepath.Join(t.TempDir(), "redis-wrapper")
	script := "#!/bin/sh\nexec " + real + " \"$@\" " + extra + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMissingBinary(t *testing.T) {
	_, err := Start(context.Background(), Config{Binary: "no-such-redis-server", Dir: t.TempDir()})
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
}
