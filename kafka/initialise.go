package kafka

import (
	"context"
	"fmt"
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

// Initialise waits until the consumer has connected, cutting short the
// current backoff wait so that an attempt is made now. It returns nil once
// initialised (the state is then Stopped or later), ErrClosed once Close
// has begun (even if the consumer had connected before), or an error
// wrapping ErrNotInitialised, ctx.Err() and the last connection error.
func (g *ConsumerGroup) Initialise(ctx context.Context) error {
	return waitInitialised(ctx, g.nudge, g.initialised, g.closer, func() error {
		if last := g.lastInit.Load(); last != nil {
			return *last
		}
		return nil
	})
}

// waitInitialised is Initialise for producers and consumers. A closed
// client returns ErrClosed every time: after Close both initialised and
// closer may be closed, and a select between two ready channels picks
// either, so closer is checked first on its own.
func waitInitialised(ctx context.Context, nudge chan<- struct{}, initialised, closer <-chan struct{}, lastErr func() error) error {
	if isClosed(closer) {
		return ErrClosed
	}
	select {
	case nudge <- struct{}{}:
	default: // an attempt is already due
	}
	select {
	case <-initialised:
		return nil
	case <-closer:
		return ErrClosed
	case <-ctx.Done():
		if last := lastErr(); last != nil {
			return fmt.Errorf("%w: %w (last attempt: %w)", ErrNotInitialised, ctx.Err(), last)
		}
		return fmt.Errorf("%w: %w", ErrNotInitialised, ctx.Err())
	}
}

// isClosed reports whether ch, a client's closer, is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
