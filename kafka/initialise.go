package kafka

import (
	"context"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// retryInit calls attempt until it succeeds or ctx ends, waiting between
// attempts with exponential backoff and jitter (backoff/v4) between minPeriod
// and maxPeriod. A value on nudge cuts the current wait short, so an explicit
// Initialise call need not sit out the backoff. afterFirst, if not nil, runs
// once after the first attempt whatever its outcome. It returns nil on
// success and ctx.Err() otherwise.
func retryInit(ctx context.Context, minPeriod, maxPeriod time.Duration, nudge <-chan struct{}, log *slog.Logger, afterFirst func(), attempt func() error) error {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(minPeriod),
		backoff.WithMaxInterval(maxPeriod),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxElapsedTime(0), // never give up while ctx lives
	)
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	for tries := 1; ; tries++ {
		err := attempt()
		if afterFirst != nil {
			afterFirst()
			afterFirst = nil
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := b.NextBackOff()
		log.Warn("initialisation failed, retrying", "attempt", tries, "retry_in", wait.Round(time.Millisecond), "error", err)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-nudge:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
}
