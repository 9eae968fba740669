package kafkatest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// TestConsumerOperationsAfterClose: the fake answers a closed consumer's
// calls as kafka.ConsumerGroup does (kafka's TestConsumerGroupOperationsAfterClose).
func TestConsumerOperationsAfterClose(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{}, nil)
	ctx := testCtx(t)
	require.NoError(t, c.Initialise(ctx))
	c.Start()
	require.NoError(t, c.StateWait(ctx, kafka.Consuming))
	select {
	case <-c.InState(kafka.Consuming):
	default:
		t.Fatal("InState(Consuming) is not ready while consuming")
	}
	require.NoError(t, c.Close(ctx))

	require.ErrorIs(t, c.Initialise(ctx), kafka.ErrClosed)
	require.ErrorIs(t, c.RegisterHandler(ctx, func(context.Context, int, kafka.Message) error { return nil }), kafka.ErrClosed)
	require.ErrorIs(t, c.RegisterBatchHandler(ctx, func(context.Context, []kafka.Message) error { return nil }), kafka.ErrClosed)
	require.ErrorIs(t, c.StopAndWait(ctx), kafka.ErrClosed)
	require.ErrorIs(t, c.StateWait(ctx, kafka.Consuming), kafka.ErrClosed)
	require.NoError(t, c.StateWait(ctx, kafka.Closed))
	<-c.InState(kafka.Closed)
}

func TestMockConsumerGroupAfterClose(t *testing.T) {
	m := kafkatest.NewMockConsumerGroup(t)
	ctx := testCtx(t)
	require.NoError(t, m.Initialise(ctx))
	m.ExpectClose()
	require.NoError(t, m.Close(ctx))
	require.ErrorIs(t, m.Initialise(ctx), kafka.ErrClosed)
	require.ErrorIs(t, m.StateWait(ctx, kafka.Consuming), kafka.ErrClosed)
	<-m.InState(kafka.Closed)
}

func TestMockConsumerGroupInitialiseWaitsForSetState(t *testing.T) {
	m := kafkatest.NewMockConsumerGroup(t)
	m.SetState(kafka.Initialising)
	ctx := testCtx(t)
	errc := make(chan error, 1)
	go func() { errc <- m.Initialise(ctx) }()
	m.SetState(kafka.Stopped)
	require.NoError(t, <-errc)
}
