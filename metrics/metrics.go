// Package metrics defines Voluntree's Prometheus collectors as one value that is passed to
// whoever records them (no globals, no default registry).
//
//	reg := prometheus.NewRegistry()
//	m := metrics.New(reg)
//	m.BatchSize.Observe(64)
package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

const namespace = "voluntree"

// Metrics holds every collector of one process.
type Metrics struct {
	// Batching inference actor.
	BatcherRequests   *prometheus.CounterVec // by outcome: ok, overloaded, error, canceled
	BatcherItems      prometheus.Counter     // texts classified
	BatcherRejected   prometheus.Counter     // texts refused because the queue was full
	BatchSize         prometheus.Histogram
	QueueDelay        prometheus.Histogram // enqueue -> batch start, per text
	InferenceDuration prometheus.Histogram // one model forward pass, per batch
	QueueDepth        prometheus.Gauge

	// HTTP.
	HTTPRequests *prometheus.CounterVec   // by route, method, status
	HTTPDuration *prometheus.HistogramVec // by route, method

	// Model.
	ModelInfo *prometheus.GaugeVec // 1 for the loaded model, by kind and path
}

// New creates the collectors and registers them, with the Go and process collectors, on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		BatcherRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "batcher", Name: "requests_total",
			Help: "Classify requests handled by the batching actor, by outcome.",
		}, []string{"outcome"}),
		BatcherItems: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "batcher", Name: "items_total",
			Help: "Texts classified by the batching actor.",
		}),
		BatcherRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "batcher", Name: "rejected_items_total",
			Help: "Texts refused because the batching queue was full.",
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "batcher", Name: "batch_size",
			Help:    "Texts per model batch.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256},
		}),
		QueueDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "batcher", Name: "queue_delay_seconds",
			Help:    "Time a text waits in the batching queue before its batch starts.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		InferenceDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "batcher", Name: "inference_duration_seconds",
			Help:    "Duration of one model forward pass over a batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "batcher", Name: "queue_depth",
			Help: "Texts waiting in the batching queue.",
		}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests, by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request duration, by route pattern and method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"route", "method"}),
		ModelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "model", Name: "info",
			Help: "The loaded intent model (value 1), by kind and file.",
		}, []string{"kind", "path"}),
	}
	reg.MustRegister(
		m.BatcherRequests, m.BatcherItems, m.BatcherRejected, m.BatchSize, m.QueueDelay,
		m.InferenceDuration, m.QueueDepth, m.HTTPRequests, m.HTTPDuration, m.ModelInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// NewMeterProvider returns an OpenTelemetry meter provider whose instruments are exported
// into reg. Proto.Actor records its actor metrics on the global OTel meter: cmd/voluntree
// installs this provider globally before it creates the actor system.
func NewMeterProvider(reg prometheus.Registerer) (*sdkmetric.MeterProvider, error) {
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithNamespace(namespace))
	if err != nil {
		return nil, fmt.Errorf("metrics: otel prometheus exporter: %w", err)
	}
	return sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)), nil
}
