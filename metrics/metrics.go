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
	// ModelVersion is 1 for the model version this node serves: the registry's tag (or
	// "file" before any promotion) and its SHA-256.
	ModelVersion *prometheus.GaugeVec
	ModelSwaps   *prometheus.CounterVec // switches to a promoted version, by result (ok, failed)

	// Webhook and ingest stream.
	WebhookEvents     *prometheus.CounterVec // messages accepted, by kind
	WebhookRejected   *prometheus.CounterVec // calls or events refused, by reason
	WebhookDuplicates prometheus.Counter     // redelivered messages skipped
	WebhookInflight   prometheus.Gauge       // webhook calls being handled
	IngestLength      prometheus.Gauge
	IngestPending     prometheus.Gauge
	IngestLag         prometheus.Gauge
	DeadLetterLength  prometheus.Gauge
	RejectedLength    prometheus.Gauge // entries in the rejected-events stream

	// Pipeline outcome.
	Classified   *prometheus.CounterVec // new messages by intent
	Interests    prometheus.Counter     // new interests stored (signup events)
	Unowned      prometheus.Counter     // new messages on pages of no organization (no feed)
	EndToEnd     prometheus.Histogram   // webhook received -> event published
	GrainRequest *prometheus.HistogramVec
	GrainsActive *prometheus.GaugeVec // grains activated on this node, by kind
	// StaleWrites counts grain state writes refused because another activation wrote first.
	StaleWrites *prometheus.CounterVec
	// GrainRequestsReleased counts grain requests sent again because a member left while
	// they were in flight (cluster/inflight.go).
	GrainRequestsReleased prometheus.Counter

	// Publishing and comment polling.
	PostsPublish *prometheus.CounterVec // publish attempts by outcome: published, adopted, retry, failed
	PublishDelay prometheus.Histogram   // due time -> published on the page
	PublishQueue prometheus.Gauge       // posts waiting in the publish queue
	PollRequests *prometheus.CounterVec // Graph comment fetches by outcome: ok, throttled, error
	PollComments *prometheus.CounterVec // polled comments by outcome: new, duplicate, skipped

	// Volunteer conversations (cluster/flow.go) and their effects.
	Conversations  *prometheus.GaugeVec   // by stage, across the cluster (sampled from Redis)
	StageEntered   *prometheus.CounterVec // transitions into a stage, by stage
	Effects        *prometheus.CounterVec // performed effects, by kind, outcome and Graph error code
	WindowDrops    prometheus.Counter     // automated messages not sent: outside Messenger's 24-hour window
	Bookings       *prometheus.CounterVec // by outcome: booked, waitlisted, cancelled, offered, full
	TimeToBooking  prometheus.Histogram   // first interest -> booked slot
	EffectsPending prometheus.Gauge       // effects stream: entries not yet performed

	// Job streams (internal/streamworker): mail, effects.
	StreamEntries   *prometheus.CounterVec   // by stream, outcome
	StreamDuration  *prometheus.HistogramVec // one batch (one job), by stream
	StreamBatchSize *prometheus.HistogramVec // entries per batch, by stream

	// WebSockets.
	WSClients    prometheus.Gauge
	WSDropped    *prometheus.CounterVec // connections closed by the server, by reason
	WSEventsSent prometheus.Counter
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
		ModelVersion: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "model", Name: "version_info",
			Help: "The model version this node serves (value 1): the registry's tag, or file before any promotion, and its SHA-256.",
		}, []string{"version", "sha256"}),
		ModelSwaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "model", Name: "swaps_total",
			Help: "Switches to a newly promoted model version, by result: ok, or failed (the node keeps serving the version it had).",
		}, []string{"result"}),
	}
	m.addPipeline()
	m.addPublishing()
	reg.MustRegister(m.PostsPublish, m.PublishDelay, m.PublishQueue, m.PollRequests, m.PollComments)
	reg.MustRegister(
		m.WebhookEvents, m.WebhookRejected, m.WebhookDuplicates, m.WebhookInflight, m.IngestLength, m.IngestPending,
		m.IngestLag, m.DeadLetterLength, m.RejectedLength,
		m.Classified, m.Interests, m.Unowned, m.EndToEnd, m.GrainRequest, m.GrainsActive, m.StaleWrites, m.GrainRequestsReleased, m.StreamEntries, m.StreamDuration, m.StreamBatchSize,
		m.Conversations, m.StageEntered, m.Effects, m.WindowDrops, m.Bookings, m.TimeToBooking, m.EffectsPending, m.WSClients, m.WSDropped, m.WSEventsSent,
	)
	reg.MustRegister(
		m.BatcherRequests, m.BatcherItems, m.BatcherRejected, m.BatchSize, m.QueueDelay,
		m.InferenceDuration, m.QueueDepth, m.HTTPRequests, m.HTTPDuration, m.ModelInfo, m.ModelVersion, m.ModelSwaps,
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

func counter(subsystem, name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help})
}

func gauge(subsystem, name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help})
}

// addPipeline creates the collectors of the live pipeline: webhook, ingest stream, grains,
// events and WebSockets.
func (m *Metrics) addPipeline() {
	latency := []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .02, .03, .05, .075, .1, .2, .5, 1, 2, 5}
	m.WebhookEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "webhook", Name: "events_total",
		Help: "Messages accepted from webhook calls (and the demo channel) into the ingest stream, by kind.",
	}, []string{"kind"})
	m.WebhookRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "webhook", Name: "rejected_total",
		Help: "Webhook calls refused, by reason (no_signature, bad_signature, malformed, too_large, overloaded, busy, unavailable, not_configured); and single events left out of an accepted call for their own content, by reason (malformed_event, invalid_event, unencodable_event), kept in the rejected-events stream.",
	}, []string{"reason"})
	for _, reason := range []string{"no_signature", "bad_signature", "malformed", "too_large", "overloaded", "busy", "unavailable",
		"not_configured", "malformed_event", "invalid_event", "unencodable_event"} {
		m.WebhookRejected.WithLabelValues(reason) // exported from the start, at 0
	}
	m.WebhookDuplicates = counter("webhook", "duplicates_total", "Redelivered messages skipped because their id was accepted before.")
	m.WebhookInflight = gauge("webhook", "inflight", "Webhook calls being handled; past the bound (-max-inflight-webhooks) calls are answered 503 (rejected_total{reason=\"busy\"}).")
	m.IngestLength = gauge("ingest", "stream_length", "Entries in the ingest stream.")
	m.IngestPending = gauge("ingest", "pending", "Ingest entries delivered to a consumer and not yet acknowledged.")
	m.IngestLag = gauge("ingest", "consumer_lag", "Ingest entries not yet delivered to any consumer.")
	m.DeadLetterLength = gauge("ingest", "dead_letter_length", "Entries in the dead-letter stream.")
	m.RejectedLength = gauge("ingest", "rejected_length", "Entries in the rejected-events stream (webhook events refused for their own content, kept with their raw JSON).")
	m.Classified = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "pipeline", Name: "messages_total",
		Help: "Messages classified and recorded (once per message id), by intent.",
	}, []string{"intent"})
	m.Interests = counter("pipeline", "signups_total", "Interests (signups) stored; each published one event.")
	m.Unowned = counter("pipeline", "unowned_messages_total", "Messages on pages no organization has connected: classified and counted, stored for nobody and shown on no feed.")
	m.EndToEnd = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "pipeline", Name: "end_to_end_seconds",
		Help:    "From the webhook receiving a message to its signup event being published.",
		Buckets: latency,
	})
	m.GrainRequest = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "grain", Name: "request_duration_seconds",
		Help:    "Grain request duration as the caller sees it, by kind and outcome.",
		Buckets: latency,
	}, []string{"kind", "outcome"})
	m.GrainsActive = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "grains", Name: "active",
		Help: "Grains (virtual actors) active on this node, by kind (conversation, post); idle ones are passivated.",
	}, []string{"kind"})
	for _, kind := range []string{"conversation", "post"} {
		m.GrainsActive.WithLabelValues(kind) // exported from the start, at 0
	}
	m.StaleWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "grain", Name: "stale_writes_total",
		Help: "Grain state writes refused because another activation of the grain wrote since it read (two activations during a topology change); the request fails and its messages are redelivered to the survivor, by kind.",
	}, []string{"kind"})
	m.StaleWrites.WithLabelValues("conversation")
	m.GrainRequestsReleased = counter("grain", "requests_released_total",
		"Grain requests in flight when a cluster member left, sent again at once instead of waiting out the request timeout.")
	m.Conversations = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "conversations", Name: "by_stage",
		Help: "Volunteer conversations in each stage of the flow, across the cluster (invited, confirm, email, code, slot, booking, booked, waitlisted, declined, cancelled); people who only commented are not counted.",
	}, []string{"stage"})
	m.StageEntered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "conversations", Name: "stage_entered_total",
		Help: "Conversation transitions into a stage, on this node, by stage.",
	}, []string{"stage"})
	m.Effects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "effects", Name: "total",
		Help: "Conversation effects performed, by kind (send, private_reply, comment_reply, email, book, cancel_booking, notify_admins), outcome (done, duplicate, dropped_window, outside_window, unavailable, already_replied, page_disconnected, retry, ambiguous, resent, failed) and Graph error code (\"\" when none).",
	}, []string{"kind", "outcome", "code"})
	m.WindowDrops = counter("effects", "window_drops_total", "Automated messages not sent because the person's 24-hour Messenger window had closed (sent by email instead when the address is verified).")
	m.Bookings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "bookings", Name: "total",
		Help: "Slot bookings, by outcome: booked, waitlisted, cancelled, offered (a freed place held for the first person waiting), full (a change to a full slot).",
	}, []string{"outcome"})
	m.TimeToBooking = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "conversations", Name: "interest_to_booking_seconds",
		Help:    "From a person's first interest to their booked slot.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600},
	})
	m.EffectsPending = gauge("effects", "stream_length", "Effect batches waiting in the effects stream (the conversations' outbox).")
	m.StreamEntries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "stream", Name: "entries_total",
		Help: "Stream entries by stream (ingest, mail, effects) and outcome (read: handed to this node's handler, new, retried or claimed; done: handled and acknowledged; retry: failed, left pending for a later attempt; dead: given up, in the dead stream; claimed: taken over from an idle consumer).",
	}, []string{"stream", "outcome"})
	m.StreamDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "stream", Name: "handle_duration_seconds",
		Help:    "Duration of one batch, from its read to its outcome (ingest: classify, grains; mail and effects: one job), by stream.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30},
	}, []string{"stream"})
	m.StreamBatchSize = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "stream", Name: "batch_size",
		Help:    "Entries per batch handed to a stream's handler, by stream.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
	}, []string{"stream"})
	m.WSClients = gauge("ws", "clients", "Open WebSocket connections on this node.")
	m.WSDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "ws", Name: "dropped_total",
		Help: "WebSocket connections closed by the server, by reason (slow: the send buffer filled up; error: a write failed).",
	}, []string{"reason"})
	m.WSEventsSent = counter("ws", "events_sent_total", "Events written to WebSocket clients.")
	for _, reason := range []string{"slow", "error"} {
		m.WSDropped.WithLabelValues(reason) // exported from the start, at 0 (dashboards rate them)
	}
}

func (m *Metrics) addPublishing() {
	m.PostsPublish = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "publish", Name: "attempts_total",
		Help: "Post publish attempts, by outcome (published; adopted: an unconfirmed earlier attempt had created it; retry; failed: permanent).",
	}, []string{"outcome"})
	m.PublishDelay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "publish", Name: "delay_seconds",
		Help:    "From a post's due time to its publication on the page.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800},
	})
	m.PublishQueue = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "publish", Name: "queue_length",
		Help: "Posts waiting in the publish queue (scheduled or being retried).",
	})
	m.PollRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "poll", Name: "requests_total",
		Help: "Graph API comment fetches of the comment poller, by outcome (ok, throttled, error).",
	}, []string{"outcome"})
	m.PollComments = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "poll", Name: "comments_total",
		Help: "Comments the poller found, by outcome (new: enqueued; duplicate: already accepted, e.g. by the webhook; skipped: the page's own or without author).",
	}, []string{"outcome"})
}
