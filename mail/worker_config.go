package mail

import (
	"os"
	"time"

	"github.com/voluntree/voluntree/internal/streamworker"
)

// WorkerConfig configures a Worker: the stream worker engine's settings for the mail queue.
// Zero values take the engine's defaults (internal/streamworker: 1 s block, 1 min claim idle,
// 5 attempts, 1 s base delay doubling up to 1 min, a send timeout of min(30 s, ClaimIdle/2)),
// which also validates them: Run fails for an unusable configuration.
type WorkerConfig struct {
	Consumer    string        // name in the consumer group, stable across restarts; default the hostname
	Block       time.Duration // longest wait of one read (short: go-redis ignores ctx in a blocking read)
	ClaimIdle   time.Duration // an email pending this long under any consumer is taken over
	MaxAttempts int           // deliveries before an email goes to the dead stream
	BaseDelay   time.Duration // wait after the first temporary failure, doubling after each
	MaxDelay    time.Duration // longest wait between attempts (past ClaimIdle, any worker claims it)
	SendTimeout time.Duration // one Send (the email stays claimed by this worker meanwhile)

	Metrics *streamworker.Metrics // nil: none
}

func (c *WorkerConfig) setDefaults() {
	if c.Consumer == "" {
		c.Consumer = "mailer"
		if h, err := os.Hostname(); err == nil && h != "" {
			c.Consumer = h
		}
	}
}
