package mail

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/voluntree/voluntree/internal/streamworker"
)

// Worker defaults.
const (
	DefaultBlock       = time.Second
	DefaultClaimIdle   = time.Minute
	DefaultMaxAttempts = 5
	DefaultBaseDelay   = time.Second
	DefaultMaxDelay    = time.Minute
	DefaultSendTimeout = 30 * time.Second // or ClaimIdle/2 when that is shorter
)

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	Consumer    string        // name in the consumer group, stable across restarts; default the hostname
	Block       time.Duration // longest wait of one read (short: go-redis ignores ctx in a blocking read)
	ClaimIdle   time.Duration // an email pending this long under any consumer is taken over
	MaxAttempts int           // deliveries before an email goes to the dead stream
	BaseDelay   time.Duration // wait after the first temporary failure, doubling after each
	MaxDelay    time.Duration // longest wait between attempts (past ClaimIdle, any worker claims it)
	SendTimeout time.Duration // one Send; must be under ClaimIdle so that no peer claims it meanwhile

	Metrics *streamworker.Metrics // nil: none
}

func (c *WorkerConfig) setDefaults() {
	if c.Consumer == "" {
		c.Consumer = "mailer"
		if h, err := os.Hostname(); err == nil && h != "" {
			c.Consumer = h
		}
	}
	if c.Block == 0 {
		c.Block = DefaultBlock
	}
	if c.ClaimIdle == 0 {
		c.ClaimIdle = DefaultClaimIdle
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = DefaultBaseDelay
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = max(DefaultMaxDelay, c.BaseDelay)
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = min(DefaultSendTimeout, c.ClaimIdle/2)
	}
}

// Validate reports an unusable configuration.
func (c WorkerConfig) Validate() error {
	switch {
	case c.Consumer == "":
		return errors.New("mail: worker consumer name is required")
	case c.Block < time.Millisecond:
		return fmt.Errorf("mail: worker read block must be at least 1ms, got %s", c.Block)
	case c.ClaimIdle < 10*time.Millisecond:
		return fmt.Errorf("mail: claim idle time must be at least 10ms, got %s", c.ClaimIdle)
	case c.MaxAttempts < 1:
		return fmt.Errorf("mail: max attempts must be positive, got %d", c.MaxAttempts)
	case c.BaseDelay < time.Millisecond:
		return fmt.Errorf("mail: base retry delay must be at least 1ms, got %s", c.BaseDelay)
	case c.MaxDelay < c.BaseDelay:
		return fmt.Errorf("mail: max retry delay %s is under the base delay %s", c.MaxDelay, c.BaseDelay)
	case c.SendTimeout < time.Millisecond || c.SendTimeout >= c.ClaimIdle:
		return fmt.Errorf("mail: send timeout %s must be at least 1ms and under the claim idle time %s", c.SendTimeout, c.ClaimIdle)
	}
	return nil
}
