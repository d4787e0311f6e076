package actors

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/metric"
)

// NewSystem creates the node's actor system with Voluntree's slog logger (instead of
// Proto.Actor's coloured console logger) and, when mp is not nil, Proto.Actor's own metrics
// enabled. Proto.Actor reads its instruments from the global OTel meter provider, so the
// caller installs mp globally first (cmd/voluntree does).
func NewSystem(logger *slog.Logger, mp metric.MeterProvider) *actor.ActorSystem {
	opts := []actor.ConfigOption{
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return logger.With("component", "protoactor")
		}),
		actor.WithDeadLetterThrottleCount(3),
		actor.WithDeadLetterThrottleInterval(time.Second),
	}
	if mp != nil {
		opts = append(opts, actor.WithMetricProviders(mp))
	}
	return actor.NewActorSystem(opts...)
}

// restartStrategy supervises root-spawned actors: restart a failing actor, up to 10 times a
// minute, then stop it.
func restartStrategy() actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(10, time.Minute, actor.DefaultDecider)
}
