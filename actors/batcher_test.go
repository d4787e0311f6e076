package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/ml"
)

// echoModel "classifies" text "n" as intent index n%6 and records batch sizes. When gate is
// set, every batch waits for a value on it, so tests control when inference finishes.
type echoModel struct {
	mu      sync.Mutex
	batches []int
	gate    chan struct{}
	started chan int // batch sizes, as batches start (optional)
	fail    error
	panics  bool
}

func (m *echoModel) Predict(ctx context.Context, texts []string) ([]voluntree.Prediction, error) {
	m.mu.Lock()
	m.batches = append(m.batches, len(texts))
	m.mu.Unlock()
	if m.started != nil {
		m.started <- len(texts)
	}
	if m.gate != nil {
		<-m.gate
	}
	if m.panics {
		panic("boom")
	}
	if m.fail != nil {
		return nil, m.fail
	}
	out := make([]voluntree.Prediction, len(texts))
	for i, t := range texts {
		n, _ := strconv.Atoi(t)
		out[i] = voluntree.Prediction{Intent: voluntree.Intents()[n%6], Confidence: float32(n)}
	}
	return out, nil
}

func (m *echoModel) sizes() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.batches)
}

func newTestBatcher(t *testing.T, model Predictor, cfg BatcherConfig) (*Batcher, *metrics.Metrics) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := NewSystem(logger, nil)
	m := metrics.New(prometheus.NewRegistry())
	b, err := NewBatcher(system, model, cfg, m, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Stop(ctx)
		system.Shutdown()
	})
	return b, m
}

func texts(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(from + i)
	}
	return out
}

func TestEachSenderGetsItsOwnResultsInOrder(t *testing.T) {
	model := &echoModel{}
	b, _ := newTestBatcher(t, model, BatcherConfig{MaxBatch: 16, MaxDelay: 2 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for s := 0; s < 64; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for r := 0; r < 20; r++ {
				in := texts(s*1000+r*10, 1+(s+r)%7) // 1..7 texts per request
				preds, err := b.Classify(context.Background(), in)
				if err != nil {
					errs <- err
					return
				}
				if len(preds) != len(in) {
					errs <- fmt.Errorf("sender %d: %d results for %d texts", s, len(preds), len(in))
					return
				}
				for i, p := range preds {
					if want, _ := strconv.Atoi(in[i]); p.Confidence != float32(want) {
						errs <- fmt.Errorf("sender %d text %d: got the result of %v", s, i, p.Confidence)
						return
					}
				}
			}
		}(s)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, n := range model.sizes() {
		if n > 16 {
			t.Fatalf("batch of %d exceeds max batch 16", n)
		}
	}
}

func TestBatchesFillUnderLoad(t *testing.T) {
	// The first batch blocks until 40 more texts are queued; they must then leave as full
	// batches of 16, 16 and a partial 8.
	model := &echoModel{gate: make(chan struct{}), started: make(chan int, 100)}
	b, _ := newTestBatcher(t, model, BatcherConfig{MaxBatch: 16, MaxDelay: time.Hour})
	results := make(chan error, 41)
	go func() { _, err := b.Classify(context.Background(), texts(0, 16)); results <- err }()
	if n := <-model.started; n != 16 {
		t.Fatalf("first batch has %d texts, want 16", n)
	}
	for i := 0; i < 40; i++ {
		go func(i int) { _, err := b.Classify(context.Background(), texts(100+i, 1)); results <- err }(i)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.queued(t) < 40 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d texts queued", b.queued(t))
		}
		time.Sleep(time.Millisecond)
	}
	model.gate <- struct{}{} // finish the first batch
	for _, want := range []int{16, 16} {
		if n := <-model.started; n != want {
			t.Fatalf("batch of %d under load, want %d", n, want)
		}
		model.gate <- struct{}{}
	}
	// 8 are left and, with a max delay of an hour, not due: 8 more make the last batch full.
	go func() { _, err := b.Classify(context.Background(), texts(500, 8)); results <- err }()
	if n := <-model.started; n != 16 {
		t.Fatalf("last batch %d, want 16", n)
	}
	model.gate <- struct{}{}
	for i := 0; i < 42; i++ {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
}

// queued reads the queue depth gauge the actor maintains.
func (b *Batcher) queued(*testing.T) int {
	return int(testutil.ToFloat64(b.metrics.QueueDepth))
}

func TestLoneRequestRunsAfterMaxDelay(t *testing.T) {
	model := &echoModel{}
	b, m := newTestBatcher(t, model, BatcherConfig{MaxBatch: 64, MaxDelay: 20 * time.Millisecond})
	start := time.Now()
	preds, err := b.Classify(context.Background(), texts(7, 1))
	if err != nil {
		t.Fatal(err)
	}
	if preds[0].Confidence != 7 {
		t.Fatalf("wrong result %v", preds[0])
	}
	// It must not run before max delay (a batch of one was waiting for company)...
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("answered after %s, before max delay", waited)
	}
	// ...and it ran alone. (How soon after max delay is measured by BenchmarkIdleLatency.)
	if s := model.sizes(); !slices.Equal(s, []int{1}) {
		t.Fatalf("batches %v, want [1]", s)
	}
	if got := testutil.ToFloat64(m.BatcherRequests.WithLabelValues("ok")); got != 1 {
		t.Fatalf("ok requests = %v", got)
	}
}

func TestOverloadIsRefusedAtOnce(t *testing.T) {
	model := &echoModel{gate: make(chan struct{}), started: make(chan int, 10)}
	b, m := newTestBatcher(t, model, BatcherConfig{MaxBatch: 4, MaxDelay: time.Millisecond, MaxQueue: 8})
	done := make(chan error, 3)
	go func() { _, err := b.Classify(context.Background(), texts(0, 4)); done <- err }()
	<-model.started // worker busy with 4; queue empty
	go func() { _, err := b.Classify(context.Background(), texts(10, 8)); done <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for b.queued(t) < 8 {
		if time.Now().After(deadline) {
			t.Fatal("second request never queued")
		}
		time.Sleep(time.Millisecond)
	}
	_, err := b.Classify(context.Background(), texts(20, 1))
	if voluntree.ErrorCode(err) != voluntree.EOVERLOADED {
		t.Fatalf("err = %v, want EOVERLOADED", err)
	}
	if got := testutil.ToFloat64(m.BatcherRejected); got != 1 {
		t.Fatalf("rejected items = %v, want 1", got)
	}
	close(model.gate) // let everything finish: accepted work is not lost
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatalf("accepted request failed: %v", err)
		}
	}
}

func TestModelErrorsAndPanicsFailOnlyTheirBatch(t *testing.T) {
	model := &echoModel{fail: errors.New("tensor trouble")}
	b, _ := newTestBatcher(t, model, BatcherConfig{MaxBatch: 4, MaxDelay: time.Millisecond})
	if _, err := b.Classify(context.Background(), texts(0, 2)); err == nil || !errors.Is(err, model.fail) {
		t.Fatalf("err = %v, want the model's error", err)
	}
	model.fail, model.panics = nil, true
	if _, err := b.Classify(context.Background(), texts(0, 2)); err == nil {
		t.Fatal("a panicking model returned no error")
	}
	model.panics = false
	preds, err := b.Classify(context.Background(), texts(5, 2))
	if err != nil || preds[1].Confidence != 6 {
		t.Fatalf("the batcher did not recover: %v %v", preds, err)
	}
}

func TestCanceledCallerDoesNotBlockOthers(t *testing.T) {
	model := &echoModel{}
	b, _ := newTestBatcher(t, model, BatcherConfig{MaxBatch: 64, MaxDelay: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() { _, err := b.Classify(ctx, texts(0, 3)); got <- err }()
	waitQueued(t, b, 3) // queued in the actor, so only dropCanceled can keep them from the model
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	preds, err := b.Classify(context.Background(), texts(9, 1))
	if err != nil || preds[0].Confidence != 9 {
		t.Fatalf("%v %v", preds, err)
	}
	if s := model.sizes(); !slices.Equal(s, []int{1}) {
		t.Fatalf("batches %v, want [1]: canceled texts reached the model", s)
	}
}

func waitQueued(t *testing.T, b *Batcher, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.queued(t) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d texts queued, want %d", b.queued(t), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStopFailsQueuedAndInFlightRequests(t *testing.T) {
	model := &echoModel{gate: make(chan struct{}), started: make(chan int, 10)}
	b, _ := newTestBatcher(t, model, BatcherConfig{MaxBatch: 2, MaxDelay: time.Hour})
	results := make(chan error, 2)
	go func() { _, err := b.Classify(context.Background(), texts(0, 2)); results <- err }() // in flight
	<-model.started
	go func() { _, err := b.Classify(context.Background(), texts(10, 1)); results <- err }() // queued
	waitQueued(t, b, 1)
	stopped := make(chan error, 1)
	go func() { stopped <- b.Stop(context.Background()) }()
	for i := 0; i < 2; i++ {
		select {
		case err := <-results:
			if voluntree.ErrorCode(err) != voluntree.EUNAVAILABLE {
				t.Fatalf("err = %v, want EUNAVAILABLE", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a request waited through Stop")
		}
	}
	close(model.gate) // the worker's late answer must be ignored, not crash anything
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

func TestFrontNoticesTheActorStopped(t *testing.T) {
	// As when the supervisor gives up: the actor stops without the front's Stop.
	b, _ := newTestBatcher(t, &echoModel{}, BatcherConfig{})
	if err := b.Healthy(context.Background()); err != nil {
		t.Fatalf("healthy batcher: %v", err)
	}
	b.system.Root.StopFuture(b.pid).Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.Classify(ctx, texts(0, 1)); voluntree.ErrorCode(err) != voluntree.EUNAVAILABLE {
		t.Fatalf("err = %v, want EUNAVAILABLE", err)
	}
	if b.Healthy(ctx) == nil {
		t.Fatal("Healthy() = nil for a stopped batcher")
	}
}

func TestBatcherConfigValidate(t *testing.T) {
	bad := []BatcherConfig{
		{MaxBatch: -1, MaxDelay: 1, MaxQueue: 10},
		{MaxBatch: 8, MaxDelay: -1, MaxQueue: 10},
		{MaxBatch: 8, MaxDelay: 1, MaxQueue: 4},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
}

func TestRealModelThroughTheBatcher(t *testing.T) {
	model, err := ml.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	b, _ := newTestBatcher(t, model, BatcherConfig{})
	in := []string{"count me in!", "what time does it start?", "can't make it sorry"}
	want := []voluntree.Intent{voluntree.IntentInterested, voluntree.IntentQuestion, voluntree.IntentDecline}
	var wg sync.WaitGroup
	for s := 0; s < 16; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			preds, err := b.Classify(context.Background(), in)
			if err != nil {
				t.Error(err)
				return
			}
			for i, p := range preds {
				if p.Intent != want[i] {
					t.Errorf("%q -> %s, want %s", in[i], p.Intent, want[i])
				}
			}
		}()
	}
	wg.Wait()
}

func TestClassifyAfterStopFailsAtOnce(t *testing.T) {
	b, _ := newTestBatcher(t, &echoModel{}, BatcherConfig{})
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := b.Classify(ctx, texts(0, 1))
	if voluntree.ErrorCode(err) != voluntree.EUNAVAILABLE {
		t.Fatalf("err = %v, want EUNAVAILABLE (not a wait for the context)", err)
	}
}
