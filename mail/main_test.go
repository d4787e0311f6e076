package mail_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree/internal/redistest"
	"github.com/voluntree/voluntree/internal/smtpsink"
	"github.com/voluntree/voluntree/mail"
	"github.com/voluntree/voluntree/redisstore"
)

// redisSrv is this package's private redis-server.
var redisSrv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &redisSrv) }

// env is one test's Redis keys, queue and SMTP sink.
type env struct {
	rdb  *redis.Client
	keys redisstore.Keys
	q    *mail.Queue
	sink *smtpsink.Sink
}

func newEnv(t *testing.T) env {
	t.Helper()
	rdb, prefix := redisSrv.Client(t)
	keys := redisstore.NewKeys(strings.TrimSuffix(prefix, ":"))
	return env{rdb: rdb, keys: keys, q: mail.NewQueue(rdb, keys), sink: startSink(t, smtpsink.Config{})}
}

func startSink(t *testing.T, cfg smtpsink.Config) *smtpsink.Sink {
	t.Helper()
	s, err := smtpsink.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

const fromHeader = "Voluntree <noreply@example.org>"

// smtpSender returns a sender to sink, from fromHeader.
func smtpSender(t *testing.T, sink *smtpsink.Sink) *mail.SMTPSender {
	t.Helper()
	s, err := mail.NewSMTPSender(sink.URL() + "?from=" + url.QueryEscape(fromHeader))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fastConfig keeps retries quick; ClaimIdle stays at its default (a minute).
func fastConfig(consumer string) mail.WorkerConfig {
	return mail.WorkerConfig{
		Consumer: consumer, Block: 20 * time.Millisecond,
		BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond,
	}
}

// runWorker runs w until the returned stop is called (or the test ends); stop fails the test
// when Run returns an error or does not return promptly.
func runWorker(t *testing.T, w *mail.Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after its context ended")
		}
	})
	t.Cleanup(stop)
	return stop
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually waits until cond holds, checking every few milliseconds, for up to 10 s.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		<-tick.C
	}
}

// waitStats waits until w's counters equal want.
func waitStats(t *testing.T, w *mail.Worker, want mail.WorkerStats) {
	t.Helper()
	eventually(t, fmt.Sprintf("stats %+v", want), func() (bool, string) {
		got := w.Stats()
		return got == want, fmt.Sprintf("%+v", got)
	})
}

// queueState returns the mail stream's length and the group's pending count.
func (e env) queueState(t *testing.T) (length, pending int64) {
	t.Helper()
	ctx := testCtx(t)
	length, err := e.rdb.XLen(ctx, e.keys.MailQueue()).Result()
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.rdb.XPending(ctx, e.keys.MailQueue(), e.keys.MailGroup()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return length, p.Count
}

// waitDrained waits until the mail stream is empty with nothing pending.
func (e env) waitDrained(t *testing.T) {
	t.Helper()
	eventually(t, "an empty queue", func() (bool, string) {
		l, p := e.queueState(t)
		return l == 0 && p == 0, fmt.Sprintf("length %d, pending %d", l, p)
	})
}

// waitDead blocks on the dead stream (XREAD BLOCK) until it holds n entries, then returns
// them newest first.
func (e env) waitDead(t *testing.T, n int) []mail.DeadEmail {
	t.Helper()
	ctx := testCtx(t)
	last := "0"
	for seen := 0; seen < n; {
		res, err := e.rdb.XRead(ctx, &redis.XReadArgs{
			Streams: []string{e.keys.MailDead(), last}, Block: 10 * time.Second,
		}).Result()
		if err != nil {
			t.Fatalf("waiting for %d dead emails (%d so far): %v", n, seen, err)
		}
		msgs := res[0].Messages
		seen += len(msgs)
		last = msgs[len(msgs)-1].ID
	}
	dead, err := e.q.Dead(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != n {
		t.Fatalf("%d dead emails, want %d", len(dead), n)
	}
	return dead
}
