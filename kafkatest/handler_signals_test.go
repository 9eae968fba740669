package kafkatest_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
)

// TestConsumerPermanentError: the fake, like the real consumer, does not
// retry an error marked Permanent (retries an hour apart would outlast the
// test), dead-letters it and commits it.
func TestConsumerPermanentError(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{HandlerRetries: 5, HandlerRetryBackoff: time.Hour, DeadLetterTopic: "dlt"}, nil)
	errBad := errors.New("bad payload")
	var attempts atomic.Int32
	require.NoError(t, c.RegisterHandler(context.Background(), func(_ context.Context, _ int, msg kafka.Message) error {
		if string(msg.Value()) == "bad" {
			attempts.Add(1)
			return kafka.Permanent(errBad)
		}
		return nil
	}))
	ms := queueValues(c, "t", 0, "bad", "good")
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Equal(t, int32(1), attempts.Load())
	assert.Equal(t, ms, c.Committed())
	assert.Equal(t, ms[:1], c.DeadLettered())
	var herr *kafka.HandlerError
	require.ErrorAs(t, <-c.Channels().Errors, &herr)
	assert.Equal(t, 1, herr.Attempts)
	assert.ErrorIs(t, herr, kafka.ErrPermanent)
	assert.ErrorIs(t, herr, errBad)
}

// TestConsumerNoCommit: a message answered with ErrNoCommit is not
// committed, retried, dead-lettered or reported; the partition goes on,
// and after a rebalance the message comes again.
func TestConsumerNoCommit(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{HandlerRetries: 5, HandlerRetryBackoff: time.Hour, DeadLetterTopic: "dlt"}, nil)
	var calls atomic.Int32
	require.NoError(t, c.RegisterHandler(context.Background(), func(_ context.Context, _ int, msg kafka.Message) error {
		if string(msg.Value()) == "later" && calls.Add(1) == 1 {
			return kafka.NoCommit(errors.New("downstream shutting down"))
		}
		return nil
	}))
	ms := queueValues(c, "t", 0, "now", "later")
	c.Start()
	ctx := testCtx(t)
	require.NoError(t, c.WaitIdle(ctx))
	assert.Equal(t, ms[:1], c.Committed())
	assert.False(t, ms[1].IsCommitted())
	assert.Empty(t, c.DeadLettered())
	assert.Empty(t, c.Channels().Errors)

	require.NoError(t, c.SimulateRebalance(ctx))
	require.NoError(t, c.WaitIdle(ctx))
	assert.Equal(t, int32(2), calls.Load(), "delivered again after the rebalance")
	assert.Equal(t, ms, c.Committed())
}

// TestConsumerNoCommitBatch: a batch answered with ErrNoCommit is left
// uncommitted as a whole.
func TestConsumerNoCommitBatch(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{BatchSize: 3}, nil)
	require.NoError(t, c.RegisterBatchHandler(context.Background(), func(context.Context, []kafka.Message) error {
		return kafka.ErrNoCommit
	}))
	ms := queueValues(c, "t", 0, "a", "b", "c")
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Empty(t, c.Committed())
	for _, m := range ms {
		assert.False(t, m.IsCommitted())
	}
}
