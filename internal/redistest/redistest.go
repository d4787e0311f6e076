// Package redistest gives tests a real, private redis-server: one per test package, started
// in TestMain, and a client per test with its own key prefix so tests can run in parallel.
//
//	var redisSrv *redistest.Server
//
//	func TestMain(m *testing.M) { redisSrv = redistest.Start(); code := m.Run(); redisSrv.Stop(); os.Exit(code) }
//
//	func TestX(t *testing.T) { rdb, prefix := redisSrv.Client(t); rdb.Set(ctx, prefix+"k", 1, 0) }
//
// When redis-server is missing, tests are skipped, except under CI=true where they fail.
package redistest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/voluntree/voluntree/internal/redisproc"
)

// Server is the package's private redis-server, or the reason there is none.
type Server struct {
	srv *redisproc.Server
	dir string
	err error
	seq atomic.Int64
}

// Start launches a redis-server without persistence in a temporary directory.
func Start() *Server {
	s := &Server{}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		s.err = err
		return s
	}
	s.dir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s.srv, s.err = redisproc.Start(ctx, redisproc.Config{Dir: dir})
	return s
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() {
	if s.srv != nil {
		s.srv.Stop()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// URL returns the server's redis:// URL, failing t when there is no server.
func (s *Server) URL(t testing.TB) string {
	t.Helper()
	s.require(t)
	return s.srv.URL()
}

// Client returns a client and a key prefix unique to this test ("test:<name>:<n>:"); the
// client is closed and the prefix's keys deleted when the test ends.
func (s *Server) Client(t testing.TB) (*redis.Client, string) {
	t.Helper()
	s.require(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.srv.Addr()})
	prefix := fmt.Sprintf("test:%s:%d:", strings.ReplaceAll(t.Name(), "/", "."), s.seq.Add(1))
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.Close()
	})
	return rdb, prefix
}

func (s *Server) require(t testing.TB) {
	t.Helper()
	if s.err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("redistest: no redis-server, and CI=true requires one: %v", s.err)
	}
	t.Skipf("redistest: no redis-server: %v", s.err)
}

// Open returns a client of the server for code that runs outside a test (TestMain), or the
// reason there is no server. The caller closes it.
func (s *Server) Open() (*redis.Client, error) {
	if s.err != nil {
		return nil, s.err
	}
	return redis.NewClient(&redis.Options{Addr: s.srv.Addr()}), nil
}

// Main is a package's TestMain for tests that only need the server: it starts it into *srv,
// runs the tests, stops it and exits with the tests' status.
//
//	var redisSrv *redistest.Server
//
//	func TestMain(m *testing.M) { redistest.Main(m, &redisSrv) }
func Main(m *testing.M, srv **Server) {
	*srv = Start()
	code := m.Run()
	(*srv).Stop()
	os.Exit(code)
}
