// Package handling runs a user's message handler under kafkahub's failure
// policy: panics become errors, failures are retried with exponential
// backoff unless marked permanent, a handler can ask that its message not
// be committed, and a cancelled context interrupts the retries. The kafka
// package's consumer group and kafkatest's fake consumer share it, so the
// fake behaves exactly like the real thing.
package handling

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// ErrPanic is wrapped by the error that stands for a recovered panic.
var ErrPanic = errors.New("kafka: handler panicked")

// Policy says how often and how patiently a failing handler is retried.
type Policy struct {
	Retries    int           // retries after the first attempt; 0: none
	Backoff    time.Duration // wait before the first retry; doubles each time
	MaxBackoff time.Duration // cap on the wait
}

// MaxBackoff caps the wait between handler retries.
const MaxBackoff = 10 * time.Second

// FromConfig is the policy of a consumer configured (after defaults) with
// HandlerRetries = retries (-1 meaning none) and HandlerRetryBackoff =
// backoff.
func FromConfig(retries int, backoff time.Duration) Policy {
	return Policy{Retries: max(retries, 0), Backoff: backoff, MaxBackoff: MaxBackoff}
}

// Result is the outcome of Run.
type Result struct {
	Attempts int
	// Err is the last error, nil on success.
	Err error
	// Interrupted is true when ctx ended before the handler succeeded:
	// the message must not be committed.
	Interrupted bool
	// NoCommit is true when the handler's error carries ErrNoCommit: it
	// was not retried, and the message must be neither committed nor
	// dead-lettered, but the partition goes on.
	NoCommit bool
}

// Commit reports whether the messages may be marked for commit: the
// handler succeeded or gave up for good (dead-letter or skip).
func (r Result) Commit() bool { return !r.Interrupted && !r.NoCommit }

// Run calls call until it succeeds, the retries are spent, or ctx ends.
// An error carrying ErrNoCommit ends it at once with NoCommit set (it wins
// over ErrPermanent); one carrying ErrPermanent ends it at once, as if the
// retries were spent. onRetry, if not nil, is told about each failure that
// will be retried.
func (p Policy) Run(ctx context.Context, call func() error, onRetry func(attempt int, wait time.Duration, err error)) Result {
	wait := p.Backoff
	for attempt := 1; ; attempt++ {
		err := Safely(call)
		if err == nil {
			return Result{Attempts: attempt}
		}
		if ctx.Err() != nil {
			return Result{Attempts: attempt, Err: err, Interrupted: true}
		}
		if errors.Is(err, ErrNoCommit) {
			return Result{Attempts: attempt, Err: err, NoCommit: true}
		}
		if attempt > p.Retries || errors.Is(err, ErrPermanent) {
			return Result{Attempts: attempt, Err: err}
		}
		if onRetry != nil {
			onRetry(attempt, wait, err)
		}
		if !Sleep(ctx, wait) {
			return Result{Attempts: attempt, Err: err, Interrupted: true}
		}
		wait = min(wait*2, p.MaxBackoff)
	}
}

// Until calls call until it succeeds, however often it fails, waiting with
// the policy's backoff between attempts (its Retries do not apply). It
// reports false if ctx ends first. onErr, if not nil, is told each failure.
// The consumer writes to its dead-letter topic this way: a message is
// committed only once the dead-letter topic has it.
func (p Policy) Until(ctx context.Context, call func() error, onErr func(error)) bool {
	wait := p.Backoff
	for {
		err := call()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if onErr != nil {
			onErr(err)
		}
		if !Sleep(ctx, wait) {
			return false
		}
		wait = min(wait*2, p.MaxBackoff)
	}
}

// Safely calls call, turning a panic into an error wrapping ErrPanic with
// the panic value and stack.
func Safely(call func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrPanic, r, debug.Stack())
		}
	}()
	return call()
}

// Sleep waits for d or until ctx ends; it reports whether d elapsed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
