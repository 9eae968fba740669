package handling

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errBoom = errors.New("boom")

func TestRunRetriesThenGivesUp(t *testing.T) {
	calls := 0
	var waits []time.Duration
	r := Policy{Retries: 3, Backoff: time.Millisecond, MaxBackoff: 3 * time.Millisecond}.Run(context.Background(),
		func() error { calls++; return errBoom },
		func(_ int, w time.Duration, err error) { waits = append(waits, w); require.ErrorIs(t, err, errBoom) })
	assert.Equal(t, 4, calls)
	assert.Equal(t, Result{Attempts: 4, Err: errBoom}, r)
	assert.Equal(t, []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}, waits)
}

func TestRunSucceedsAfterFailures(t *testing.T) {
	calls := 0
	r := Policy{Retries: 5, Backoff: time.Microsecond, MaxBackoff: time.Microsecond}.Run(context.Background(),
		func() error {
			if calls++; calls < 3 {
				return errBoom
			}
			return nil
		}, nil)
	assert.Equal(t, Result{Attempts: 3}, r)
}

func TestRunPanicIsAnError(t *testing.T) {
	r := Policy{}.Run(context.Background(), func() error { panic("bad") }, nil)
	require.ErrorIs(t, r.Err, ErrPanic)
	assert.Contains(t, r.Err.Error(), "bad")
	assert.Equal(t, 1, r.Attempts)
}

func TestRunInterruptedByContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := Policy{Retries: 100, Backoff: time.Hour, MaxBackoff: time.Hour}.Run(ctx,
		func() error { return errBoom },
		func(int, time.Duration, error) { cancel() })
	assert.True(t, r.Interrupted)
	assert.Equal(t, 1, r.Attempts)
}

func TestUntil(t *testing.T) {
	calls := 0
	var seen []error
	ok := Policy{Backoff: time.Microsecond, MaxBackoff: time.Microsecond}.Until(context.Background(),
		func() error {
			if calls++; calls < 5 {
				return errBoom
			}
			return nil
		}, func(err error) { seen = append(seen, err) })
	assert.True(t, ok)
	assert.Equal(t, 5, calls)
	assert.Len(t, seen, 4)

	ctx, cancel := context.WithCancel(context.Background())
	ok = Policy{Backoff: time.Hour, MaxBackoff: time.Hour}.Until(ctx, func() error { return errBoom }, func(error) { cancel() })
	assert.False(t, ok)
}

func TestRunPermanentIsNotRetried(t *testing.T) {
	calls := 0
	r := Policy{Retries: 5, Backoff: time.Hour, MaxBackoff: time.Hour}.Run(context.Background(),
		func() error { calls++; return fmt.Errorf("decoding: %w", Permanent(errBoom)) }, nil)
	assert.Equal(t, 1, calls)
	assert.Equal(t, 1, r.Attempts)
	require.ErrorIs(t, r.Err, ErrPermanent)
	require.ErrorIs(t, r.Err, errBoom)
	assert.Equal(t, "decoding: boom", r.Err.Error(), "the mark does not change the text")
	assert.False(t, r.NoCommit)
	assert.True(t, r.Commit(), "given up for good: dead-letter or skip, then commit")
}

func TestRunNoCommitEndsWithoutRetryOrCommit(t *testing.T) {
	calls := 0
	r := Policy{Retries: 5, Backoff: time.Microsecond, MaxBackoff: time.Microsecond}.Run(context.Background(),
		func() error {
			if calls++; calls == 1 {
				return errBoom // an ordinary failure is retried first
			}
			return NoCommit(Permanent(errBoom))
		}, nil)
	assert.Equal(t, 2, calls)
	assert.True(t, r.NoCommit, "NoCommit wins over Permanent")
	assert.False(t, r.Commit())
	require.ErrorIs(t, r.Err, ErrNoCommit)
}

func TestSignalsKeepNil(t *testing.T) {
	require.NoError(t, Permanent(nil))
	require.NoError(t, NoCommit(nil))
}
