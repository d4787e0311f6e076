package actors

import (
	"context"
	"errors"
	"fmt"
	dto "github.com/prometheus/client_model/go"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/redisstore"
)

// ingestWait bounds every wait on a condition; generous for -race on a busy machine.
const ingestWait = 10 * time.Second

// ingestFake is a Processor whose effects are idempotent: effects[id] is set once, however
// often the id is processed. It counts, per message id, the Process calls that carried it and
// the successful ones, and can fail chosen ids always or the first k times.
type ingestFake struct {
	mu         sync.Mutex
	calls      map[string]int       // Process calls that included the id
	successes  map[string]int       // of those, the ones that returned nil for it
	effects    map[string]int       // idempotent effect store: 1 once applied
	firstCall  map[string]time.Time // first time the id reached Process
	failAlways map[string]bool
	failFirst  map[string]int // remaining failures
	hold       map[string]chan struct{}
	entered    chan string // receives an id of hold when its batch reaches Process
	bad        []string    // messages that did not arrive as enqueued
}

func newIngestFake() *ingestFake {
	return &ingestFake{
		calls: map[string]int{}, successes: map[string]int{}, effects: map[string]int{},
		firstCall: map[string]time.Time{}, failAlways: map[string]bool{}, failFirst: map[string]int{},
		hold: map[string]chan struct{}{}, entered: make(chan string, 16),
	}
}

func (f *ingestFake) Process(ctx context.Context, msgs []voluntree.Message) []error {
	f.mu.Lock()
	var wait []chan struct{}
	for _, m := range msgs {
		if ch, ok := f.hold[m.ID]; ok {
			wait = append(wait, ch)
			f.entered <- m.ID
		}
	}
	f.mu.Unlock()
	for _, ch := range wait {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	errs := make([]error, len(msgs))
	now := time.Now()
	for i, m := range msgs {
		f.calls[m.ID]++
		if _, ok := f.firstCall[m.ID]; !ok {
			f.firstCall[m.ID] = now
		}
		if want := ingestMsg(m.ID); m.Text != want.Text || m.PostID != want.PostID || m.SenderID != want.SenderID {
			f.bad = append(f.bad, m.ID)
		}
		switch {
		case f.failAlways[m.ID]:
			errs[i] = fmt.Errorf("boom-%s", m.ID)
		case f.failFirst[m.ID] > 0:
			f.failFirst[m.ID]--
			errs[i] = fmt.Errorf("boom-%s", m.ID)
		default:
			if f.effects[m.ID] == 0 {
				f.effects[m.ID] = 1
			}
			f.successes[m.ID]++
		}
	}
	return errs
}

func (f *ingestFake) counts(id string) (calls, successes, effects int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id], f.successes[id], f.effects[id]
}

func (f *ingestFake) applied() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.effects)
}

func (f *ingestFake) totalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

func (f *ingestFake) first(id string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.firstCall[id]
}

// requireOnce fails t unless every id was processed successfully exactly once, its effect
// applied once, and (when calls > 0) Process saw it exactly calls times.
func (f *ingestFake) requireOnce(t *testing.T, ids []string, calls int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if f.effects[id] != 1 || f.successes[id] != 1 || (calls > 0 && f.calls[id] != calls) {
			t.Fatalf("message %s: effects %d, successful processings %d, calls %d (want 1, 1, %d)",
				id, f.effects[id], f.successes[id], f.calls[id], calls)
		}
	}
	if len(f.bad) > 0 {
		t.Fatalf("messages changed on the way through Redis: %v", f.bad)
	}
}

func ingestMsg(id string) voluntree.Message {
	now := time.Now().UTC()
	return voluntree.Message{
		ID: id, Kind: voluntree.KindComment, Source: voluntree.SourceWebhook,
		PageID: "page-1", PostID: "post-1", ParentID: "post-1", SenderID: "sender-" + id,
		SenderName: "Someone", Text: "text of " + id, CreatedAt: now, ReceivedAt: now,
	}
}

func ingestIDs(prefix string, from, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, from+i)
	}
	return ids
}

type ingestEnv struct {
	rdb   *redis.Client
	store *redisstore.Store
	m     *metrics.Metrics
	proc  *ingestFake
}

func newIngestEnv(t *testing.T) *ingestEnv {
	t.Helper()
	rdb, prefix := redisSrv.Client(t)
	store, err := redisstore.New(rdb, redisstore.Config{Prefix: strings.TrimSuffix(prefix, ":")})
	if err != nil {
		t.Fatal(err)
	}
	return &ingestEnv{rdb: rdb, store: store, m: metrics.New(prometheus.NewRegistry()), proc: newIngestFake()}
}

func ingestConfig(consumer string) IngestConfig {
	return IngestConfig{
		Consumer: consumer, Block: 20 * time.Millisecond, ClaimIdle: 150 * time.Millisecond,
		ClaimEvery: 50 * time.Millisecond, ProcessTimeout: 5 * time.Second,
	}
}

// start runs a consumer until the test ends (stopped before the Redis client closes).
func (e *ingestEnv) start(t *testing.T, cfg IngestConfig) *IngestConsumer {
	t.Helper()
	c, err := NewIngestConsumer(e.store, e.proc, cfg, e.m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return c
}

// enqueue appends messages with these ids and returns their entry ids.
func (e *ingestEnv) enqueue(t *testing.T, ids ...string) []string {
	t.Helper()
	msgs := make([]voluntree.Message, len(ids))
	for i, id := range ids {
		msgs[i] = ingestMsg(id)
	}
	res, err := e.store.Enqueue(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]string, len(res))
	for i, r := range res {
		if r.Err != nil || r.ID == "" {
			t.Fatalf("message %s was refused (%v) or taken for a duplicate", ids[i], r.Err)
		}
		entries[i] = r.ID
	}
	return entries
}

func (e *ingestEnv) stats(t *testing.T) redisstore.IngestStats {
	t.Helper()
	st, err := e.store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (e *ingestEnv) deadLetters(t *testing.T) []map[string]any {
	t.Helper()
	dl, err := e.store.DeadLetters(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return dl
}

// outcome is the ingest stream's entries counter for outcome (read, done, retry, dead, claimed).
func (e *ingestEnv) outcome(o string) prometheus.Collector {
	return e.m.StreamEntries.WithLabelValues("ingest", o)
}

// ensureGroup creates the ingest consumer group, as a consumer's first run does.
func (e *ingestEnv) ensureGroup(t *testing.T) {
	t.Helper()
	k := e.store.Keys()
	err := e.rdb.XGroupCreateMkStream(context.Background(), k.Ingest(), k.IngestGroup(), "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		t.Fatal(err)
	}
}

// readAs reads up to n new entries as consumer (a node that then dies without acknowledging).
func (e *ingestEnv) readAs(t *testing.T, consumer string, n int) []redis.XMessage {
	t.Helper()
	k := e.store.Keys()
	res, err := e.rdb.XReadGroup(context.Background(), &redis.XReadGroupArgs{Group: k.IngestGroup(),
		Consumer: consumer, Streams: []string{k.Ingest(), ">"}, Count: int64(n), Block: -1}).Result()
	if err != nil || len(res) != 1 {
		t.Fatalf("read as %s: %v, %v", consumer, res, err)
	}
	return res[0].Messages
}

// claimAs takes every pending entry over as consumer (a delivery), at once.
func (e *ingestEnv) claimAs(t *testing.T, consumer string) []redis.XMessage {
	t.Helper()
	k := e.store.Keys()
	xs, _, err := e.rdb.XAutoClaim(context.Background(), &redis.XAutoClaimArgs{Stream: k.Ingest(),
		Group: k.IngestGroup(), Consumer: consumer, MinIdle: 0, Start: "0", Count: 100}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return xs
}

// waitDrained waits until every entry is delivered and acknowledged.
func (e *ingestEnv) waitDrained(t *testing.T) {
	t.Helper()
	ingestEventually(t, ingestWait, "no pending entries and no lag", func() bool {
		st := e.stats(t)
		return st.Pending == 0 && st.Lag == 0
	})
}

// ingestEventually polls cond every 5 ms until it holds, failing t after timeout.
func ingestEventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func metricIs(t *testing.T, name string, c prometheus.Collector, want float64) {
	t.Helper()
	if got := testutil.ToFloat64(c); got != want {
		t.Fatalf("%s = %v, want %v", name, got, want)
	}
}

func TestIngestProcessesEveryEntryExactlyOnce(t *testing.T) {
	e := newIngestEnv(t)
	ids := ingestIDs("happy", 0, 500)
	e.enqueue(t, ids[:250]...) // accepted before any consumer ran: the new group reads them
	cfg := ingestConfig("node-1")
	cfg.ReadCount = 64 // several reads
	e.start(t, cfg)
	e.enqueue(t, ids[250:]...)

	ingestEventually(t, ingestWait, "500 effects", func() bool { return e.proc.applied() == 500 })
	e.waitDrained(t)

	e.proc.requireOnce(t, ids, 1)
	if n := e.proc.applied(); n != 500 {
		t.Fatalf("%d effects, want 500", n)
	}
	st := e.stats(t)
	if st.Length != 500 || st.DeadLength != 0 {
		t.Fatalf("stats %+v: want length 500 and no dead letters", st)
	}
	metricIs(t, "read", e.outcome("read"), 500)
	metricIs(t, "claimed", e.outcome("claimed"), 0)
	metricIs(t, "retry", e.outcome("retry"), 0)
	metricIs(t, "dead", e.outcome("dead"), 0)
}

func TestIngestReclaimsEntriesOfADeadConsumer(t *testing.T) {
	e := newIngestEnv(t)
	ctx := context.Background()
	e.ensureGroup(t)
	orphans := ingestIDs("orphan", 0, 50)
	e.enqueue(t, orphans...)
	// A node read these and died before acknowledging them.
	readAt := time.Now()
	if got := e.readAs(t, "dead", 50); len(got) != 50 {
		t.Fatalf("dead consumer read %d entries; want 50", len(got))
	}
	if st := e.stats(t); st.Pending != 50 || st.Lag != 0 {
		t.Fatalf("stats %+v: want 50 pending, no lag", st)
	}

	cfg := ingestConfig("alive")
	cfg.ClaimIdle = 150 * time.Millisecond
	e.start(t, cfg)
	fresh := ingestIDs("fresh", 0, 30)
	e.enqueue(t, fresh...) // arriving while the orphans wait to be reclaimed

	ingestEventually(t, ingestWait, "80 effects", func() bool { return e.proc.applied() == 80 })
	e.waitDrained(t)

	e.proc.requireOnce(t, orphans, 1)
	e.proc.requireOnce(t, fresh, 1)
	for _, id := range orphans {
		// Idle time starts at the dead consumer's read, which happened after readAt.
		if waited := e.proc.first(id).Sub(readAt); waited < 140*time.Millisecond {
			t.Fatalf("orphan %s was taken %s after its delivery, before ClaimIdle (150ms)", id, waited)
		}
	}
	dead, err := e.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: e.store.Keys().Ingest(), Group: e.store.Keys().IngestGroup(), Consumer: "dead",
		Start: "-", End: "+", Count: 100,
	}).Result()
	if err != nil || len(dead) != 0 {
		t.Fatalf("dead consumer still holds %d entries (%v)", len(dead), err)
	}
	metricIs(t, "claimed", e.outcome("claimed"), 50)
	metricIs(t, "read", e.outcome("read"), 80)
	metricIs(t, "dead", e.outcome("dead"), 0)
}

func TestIngestRestartReReadsOwnPending(t *testing.T) {
	e := newIngestEnv(t)
	e.ensureGroup(t)
	ids := ingestIDs("restart", 0, 20)
	e.enqueue(t, ids...)
	// The previous life of node n1 read these and stopped before acknowledging.
	if got := e.readAs(t, "n1", 20); len(got) != 20 {
		t.Fatalf("first life read %d entries; want 20", len(got))
	}

	cfg := ingestConfig("n1")
	cfg.ClaimIdle = time.Minute // reclaiming cannot be what recovers them
	cfg.ClaimEvery = time.Minute
	start := time.Now()
	e.start(t, cfg)
	ingestEventually(t, ingestWait, "20 effects", func() bool { return e.proc.applied() == 20 })
	e.waitDrained(t)
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("recovery took %s: it waited for the claim", took)
	}
	e.proc.requireOnce(t, ids, 1)

	later := ingestIDs("later", 0, 5) // and the node goes on reading new entries
	e.enqueue(t, later...)
	ingestEventually(t, ingestWait, "25 effects", func() bool { return e.proc.applied() == 25 })
	e.waitDrained(t)
	e.proc.requireOnce(t, later, 1)
	metricIs(t, "claimed", e.outcome("claimed"), 0)
	metricIs(t, "read", e.outcome("read"), 25)
}

func TestIngestDeadLettersUndecodableEntries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []any
		raw    string // dead letter's "m"
		reason string // in its error
	}{
		{"not JSON", []any{"m", "{not json"}, "{not json", "message JSON"},
		{"no message field", []any{"x", "y"}, "", `no message field "m"`},
		{"invalid message", []any{"m", `{"id":"c1","kind":"comment","post_id":"p","sender_id":"s"}`},
			`{"id":"c1","kind":"comment","post_id":"p","sender_id":"s"}`, "page_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newIngestEnv(t)
			ctx := context.Background()
			before := ingestIDs("before", 0, 3)
			e.enqueue(t, before...)
			poison, err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: e.store.Keys().Ingest(), Values: tc.fields}).Result()
			if err != nil {
				t.Fatal(err)
			}
			after := ingestIDs("after", 0, 3)
			e.enqueue(t, after...)
			e.start(t, ingestConfig("node-1"))

			ingestEventually(t, ingestWait, "a dead letter and 6 effects", func() bool {
				return len(e.deadLetters(t)) == 1 && e.proc.applied() == 6
			})
			e.waitDrained(t)
			dl := e.deadLetters(t)[0]
			if raw, _ := dl["m"].(string); dl["entry"] != poison || raw != tc.raw || dl["deliveries"] != "1" {
				t.Fatalf("dead letter %v: want entry %s, m %q, 1 delivery", dl, poison, tc.raw)
			}
			reason, _ := dl["error"].(string)
			if !strings.Contains(reason, "undecodable") || !strings.Contains(reason, tc.reason) {
				t.Fatalf("dead letter error %q should say the entry is undecodable (%s)", reason, tc.reason)
			}
			e.proc.requireOnce(t, append(before, after...), 1)
			if n := e.proc.totalCalls(); n != 6 {
				t.Fatalf("Process saw %d messages, want the 6 valid ones", n)
			}
			metricIs(t, "dead", e.outcome("dead"), 1)
			metricIs(t, "retry", e.outcome("retry"), 0)
		})
	}
}

func TestIngestDeadLettersAfterMaxDeliveries(t *testing.T) {
	e := newIngestEnv(t)
	e.proc.failAlways["bad"] = true
	good := ingestIDs("good", 0, 10)
	e.enqueue(t, good[:5]...)
	start := time.Now()
	bad := e.enqueue(t, "bad")[0]
	e.enqueue(t, good[5:]...)
	cfg := ingestConfig("node-1")
	cfg.RetryDelay = 20 * time.Millisecond
	cfg.ClaimIdle = 2 * time.Second // the backoff, not a claim, brings each redelivery
	cfg.MaxDeliveries = 5
	e.start(t, cfg)

	ingestEventually(t, ingestWait, "a dead letter", func() bool { return len(e.deadLetters(t)) == 1 })
	took := time.Since(start)
	e.waitDrained(t)

	dl := e.deadLetters(t)[0]
	reason, _ := dl["error"].(string)
	if dl["entry"] != bad || dl["deliveries"] != "5" || !strings.Contains(reason, "boom-bad") {
		t.Fatalf("dead letter %v: want entry %s, 5 deliveries, error boom-bad", dl, bad)
	}
	if raw, _ := dl["m"].(string); !strings.Contains(raw, `"id":"bad"`) {
		t.Fatalf("dead letter keeps the message %q", raw)
	}
	// Four redeliveries, each after its backoff: 20, 40, 80 and 160 ms.
	if took < 290*time.Millisecond {
		t.Fatalf("dead-lettered %s after enqueue: redelivered before its backoff", took)
	}
	if calls, successes, effects := e.proc.counts("bad"); calls != 5 || successes != 0 || effects != 0 {
		t.Fatalf("bad: %d calls, %d successes, %d effects; want 5, 0, 0", calls, successes, effects)
	}
	e.proc.requireOnce(t, good, 1)
	metricIs(t, "retry", e.outcome("retry"), 4)
	metricIs(t, "dead", e.outcome("dead"), 1)
	metricIs(t, "claimed", e.outcome("claimed"), 0)
}

func TestIngestRetriesTransientFailure(t *testing.T) {
	e := newIngestEnv(t)
	e.proc.failFirst["flaky"] = 2
	others := ingestIDs("steady", 0, 5)
	e.enqueue(t, others...)
	e.enqueue(t, "flaky")
	cfg := ingestConfig("node-1")
	cfg.RetryDelay = 20 * time.Millisecond
	cfg.ClaimIdle = 2 * time.Second // the backoff, not a claim, brings each redelivery
	cfg.MaxDeliveries = 5
	e.start(t, cfg)

	ingestEventually(t, ingestWait, "6 effects", func() bool { return e.proc.applied() == 6 })
	e.waitDrained(t)
	e.proc.requireOnce(t, []string{"flaky"}, 3)
	e.proc.requireOnce(t, others, 1)
	if dl := e.deadLetters(t); len(dl) != 0 {
		t.Fatalf("dead letters %v, want none", dl)
	}
	metricIs(t, "retry", e.outcome("retry"), 2)
	metricIs(t, "dead", e.outcome("dead"), 0)
}

func TestIngestDeadLettersEntryThatKeepsKillingConsumers(t *testing.T) {
	e := newIngestEnv(t)
	e.ensureGroup(t)
	killer := e.enqueue(t, "killer")[0]
	// Delivered five times, to consumers that all died before acknowledging or failing it.
	if got := e.readAs(t, "dead-0", 10); len(got) != 1 {
		t.Fatalf("first delivery: %+v", got)
	}
	for i := 1; i < 5; i++ {
		if got := e.claimAs(t, fmt.Sprintf("dead-%d", i)); len(got) != 1 {
			t.Fatalf("delivery %d: %+v", i+1, got)
		}
	}
	cfg := ingestConfig("alive")
	cfg.ClaimIdle = 100 * time.Millisecond
	cfg.MaxDeliveries = 5
	e.start(t, cfg)
	e.enqueue(t, "innocent")

	ingestEventually(t, ingestWait, "a dead letter", func() bool { return len(e.deadLetters(t)) == 1 })
	e.waitDrained(t)
	dl := e.deadLetters(t)[0]
	if dl["entry"] != killer || dl["deliveries"] != "6" {
		t.Fatalf("dead letter %v: want entry %s after 6 deliveries", dl, killer)
	}
	if calls, _, _ := e.proc.counts("killer"); calls != 0 {
		t.Fatalf("the sixth delivery was processed (%d calls): it must go to the dead letters", calls)
	}
	ingestEventually(t, ingestWait, "innocent processed", func() bool { return e.proc.applied() == 1 })
	e.proc.requireOnce(t, []string{"innocent"}, 1)
	metricIs(t, "dead", e.outcome("dead"), 1)
	metricIs(t, "claimed", e.outcome("claimed"), 1)
}

func TestIngestStopIsPromptAndFinal(t *testing.T) {
	e := newIngestEnv(t)
	c := e.start(t, ingestConfig("node-1"))
	ids := ingestIDs("pre", 0, 10)
	e.enqueue(t, ids...)
	ingestEventually(t, ingestWait, "10 effects", func() bool { return e.proc.applied() == 10 })
	e.waitDrained(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("stop took %s with 20ms reads", took)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second stop: %v", err)
	}

	// Stop returned once the loop ended: nothing reads any more. Watch for a while to see it.
	post := ingestIDs("post", 0, 7)
	e.enqueue(t, post...)
	calls := e.proc.totalCalls()
	for end := time.Now().Add(10 * 20 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if st := e.stats(t); st.Lag != 7 || st.Pending != 0 {
			t.Fatalf("stats %+v after stop: entries enqueued after stop were read", st)
		}
	}
	if n := e.proc.totalCalls(); n != calls {
		t.Fatalf("Process called %d more times after stop", n-calls)
	}
	metricIs(t, "read", e.outcome("read"), 10)

	// Stop on a consumer never started returns at once.
	idle, err := NewIngestConsumer(e.store, e.proc, ingestConfig("idle"), e.m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Stop(ctx); err != nil {
		t.Fatalf("stop before start: %v", err)
	}
}

func TestIngestStopFinishesBatchInHand(t *testing.T) {
	e := newIngestEnv(t)
	release := make(chan struct{})
	e.proc.hold["slow"] = release
	c := e.start(t, ingestConfig("node-1"))
	e.enqueue(t, "slow")
	select {
	case <-e.proc.entered:
	case <-time.After(ingestWait):
		t.Fatal("the batch never reached Process")
	}

	short, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := c.Stop(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop while a batch is in hand: %v, want its context's deadline", err)
	}
	if st := e.stats(t); st.Pending != 1 {
		t.Fatalf("stats %+v: the held entry should still be pending", st)
	}
	close(release)
	ctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// The batch in hand was finished and acknowledged before the loop ended.
	if st := e.stats(t); st.Pending != 0 || st.Lag != 0 {
		t.Fatalf("stats %+v after stop: the batch in hand was not acknowledged", st)
	}
	e.proc.requireOnce(t, []string{"slow"}, 1)
}

func TestIngestConfigValidation(t *testing.T) {
	e := newIngestEnv(t)
	logger := slog.New(slog.DiscardHandler)
	valid := func() IngestConfig { return IngestConfig{Consumer: "node-1"} }
	if _, err := NewIngestConsumer(e.store, e.proc, valid(), e.m, logger); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*IngestConfig)
		want   string
	}{
		{"no consumer name", func(c *IngestConfig) { c.Consumer = "" }, "name"},
		{"negative read count", func(c *IngestConfig) { c.ReadCount = -1 }, "read count"},
		{"negative block", func(c *IngestConfig) { c.Block = -time.Second }, "block"},
		{"sub-millisecond block", func(c *IngestConfig) { c.Block = 500 * time.Microsecond }, "block"},
		{"tiny claim idle", func(c *IngestConfig) { c.ClaimIdle = 5 * time.Millisecond }, "claim idle"},
		{"negative claim idle", func(c *IngestConfig) { c.ClaimIdle = -time.Second }, "claim idle"},
		{"negative max deliveries", func(c *IngestConfig) { c.MaxDeliveries = -1 }, "max attempts"},
		// A negative timeout gives every batch an expired context: nothing could ever be
		// acknowledged, and entries would be redelivered forever.
		{"negative process timeout", func(c *IngestConfig) { c.ProcessTimeout = -time.Second }, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.change(&cfg)
			c, err := NewIngestConsumer(e.store, e.proc, cfg, e.m, logger)
			if err == nil || c != nil {
				t.Fatalf("config %+v accepted", cfg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// twoStage runs the fake in its second stage, so the read loop keeps reading (and claiming)
// while a batch waits there.
type twoStage struct{ *ingestFake }

func (p twoStage) Stages() []Stage {
	return []Stage{
		func(context.Context, *Batch) {},
		func(ctx context.Context, b *Batch) {
			for i, err := range p.Process(ctx, b.Msgs) {
				if err != nil {
					b.Errs[i] = err
				}
			}
		},
	}
}

// A batch held in a later stage for longer than ClaimIdle is not reclaimed by its own
// consumer (which would process it again and count a delivery each time).
func TestIngestDoesNotReclaimItsOwnInFlightEntries(t *testing.T) {
	e := newIngestEnv(t)
	release := make(chan struct{})
	e.proc.hold["slow"] = release
	cfg := ingestConfig("node-1")
	cfg.ClaimIdle, cfg.ClaimEvery, cfg.ReadCount = 90*time.Millisecond, 15*time.Millisecond, 1
	c, err := NewIngestConsumer(e.store, twoStage{e.proc}, cfg, e.m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() { c.Stop(context.Background()) })
	e.enqueue(t, "slow")
	select {
	case <-e.proc.entered:
	case <-time.After(ingestWait):
		t.Fatal("the batch never reached the second stage")
	}
	// Several claim rounds pass while the entry is held (4+ ClaimIdle periods).
	deadline := time.Now().Add(4 * cfg.ClaimIdle)
	for time.Now().Before(deadline) {
		if n := testutil.ToFloat64(e.outcome("claimed")); n != 0 {
			t.Fatalf("the consumer reclaimed %v of its own in-flight entries", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	e.waitDrained(t)
	e.proc.requireOnce(t, []string{"slow"}, 1)
}

// A small read lingers for more: entries that arrive within Linger join its batch.
func TestIngestLingerJoinsSmallReads(t *testing.T) {
	e := newIngestEnv(t)
	cfg := ingestConfig("node-1")
	cfg.Linger, cfg.MinBatch, cfg.ClaimIdle = 300*time.Millisecond, 10, 2*time.Second
	e.start(t, cfg)
	e.enqueue(t, "first")
	// Wait until the consumer has read "first" (it is then lingering), then add more.
	ingestEventually(t, ingestWait, "the first read", func() bool {
		st := e.stats(t)
		return st.Pending == 1 && st.Lag == 0
	})
	e.enqueue(t, "second", "third")
	e.waitDrained(t)
	var m dto.Metric
	if err := e.m.StreamBatchSize.WithLabelValues("ingest").(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetHistogram().GetSampleCount(); n != 1 {
		t.Fatalf("%d batches, want the three entries in one", n)
	}
	e.proc.requireOnce(t, []string{"first", "second", "third"}, 1)
}
