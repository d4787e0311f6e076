package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/voluntree/voluntree/actors"
	"github.com/voluntree/voluntree/metrics"
	"github.com/voluntree/voluntree/ml"
)

// BenchmarkClassifyHTTP: 64 concurrent clients POST one text each to /api/v1/classify on a
// real loopback server with the real batcher and model. The clients run on the same 2 cores
// as the server, so this is a lower bound of the server's capacity.
func BenchmarkClassifyHTTP(b *testing.B) {
	const clients = 64
	if err := ml.SetThreads(1); err != nil { // as serve does by default
		b.Fatal(err)
	}
	model, err := ml.LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	defer model.Close()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := actors.NewSystem(logger, nil)
	defer system.Shutdown()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	batcher, err := actors.NewBatcher(system, model, actors.BatcherConfig{}, m, logger)
	if err != nil {
		b.Fatal(err)
	}
	srv := New(Config{Classifier: batcher, Metrics: m, Gatherer: reg, Logger: logger, ClassifyRate: -1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	url := "http://" + ln.Addr().String() + "/api/v1/classify"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	bodies := []string{`{"texts":["Count me in for Saturday!"]}`, `{"texts":["what time does it start?"]}`,
		`{"texts":["cant make it sorry"]}`, `{"texts":["where can I drop off canned food"]}`}

	post := func(body string) (time.Duration, error) {
		start := time.Now()
		resp, err := client.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, &net.AddrError{Err: resp.Status}
		}
		return time.Since(start), nil
	}
	for i := 0; i < clients; i++ { // open the connections
		post(bodies[0])
	}
	lat := make([][]time.Duration, clients)
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				d, err := post(bodies[c%len(bodies)])
				if err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], d)
			}
		}(c)
	}
	wg.Wait()
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	p := func(q float64) float64 {
		return float64(all[min(len(all)-1, int(q*float64(len(all))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}
