package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// closedCalls is how often a call on a closed client is repeated: the bug
// this guards against (a select between two closed channels) answered nil
// about half the time, so 200 calls all right by chance is 2^-200.
const closedCalls = 200

func TestProducerInitialiseAfterCloseIsAlwaysErrClosed(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 30*time.Second)
	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, p.Initialise(ctx))
	require.NoError(t, p.Close(ctx))
	for i := range closedCalls {
		require.ErrorIs(t, p.Initialise(ctx), kafka.ErrClosed, "call %d", i)
	}
}

func TestConsumerGroupInitialise(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: kafkatest.UniqueName("g")})
	require.NoError(t, g.Initialise(testCtx(t, 30*time.Second)))
	assert.True(t, g.IsInitialised())
	assert.Equal(t, kafka.Stopped, g.State())
}

// TestConsumerGroupInitialiseCutsTheBackoffShort: with a ten-minute wait
// between attempts, only Initialise's nudge can connect the consumer to a
// cluster that came up after its first attempt within the test's time.
func TestConsumerGroupInitialiseCutsTheBackoffShort(t *testing.T) {
	if kafkatest.External() {
		t.Skip("needs to start the embedded cluster on a chosen port")
	}
	port := testkit.FreePort(t)
	g := newGroup(t, &kafka.ConsumerGroupConfig{
		BrokerAddrs: []string{fmt.Sprintf("127.0.0.1:%d", port)}, Topics: []string{"late"}, GroupName: "g",
		MinRetryPeriod: 10 * time.Minute, MaxRetryPeriod: 10 * time.Minute,
	})
	require.False(t, g.IsInitialised())
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := g.Initialise(short)
	cancel()
	require.ErrorIs(t, err, kafka.ErrNotInitialised)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "last attempt", "the last connection error is reported")

	kafkatest.NewCluster(t, kafkatest.Ports(port), kafkatest.SeedTopics(1, "late"))
	ctx := testCtx(t, 60*time.Second)
	require.NoError(t, g.Initialise(ctx))
	waitState(t, g, kafka.Stopped, 30*time.Second)
}

// TestConsumerGroupOperationsAfterClose: every operation that returns an
// error returns ErrClosed on a closed consumer, every time; Start and Stop
// do nothing; waits for a state that can no longer come end at once.
func TestConsumerGroupOperationsAfterClose(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 60*time.Second)
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: kafkatest.UniqueName("g")})
	require.NoError(t, g.Initialise(ctx))
	g.Start()
	waitState(t, g, kafka.Consuming, 30*time.Second)
	require.NoError(t, g.Close(ctx))
	assertClosed(ctx, t, g)
}

// TestConsumerGroupClosedWhileInitialising: the same answers from a
// consumer that never connected.
func TestConsumerGroupClosedWhileInitialising(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	g := newGroup(t, &kafka.ConsumerGroupConfig{
		BrokerAddrs: []string{fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))}, Topics: []string{"t"}, GroupName: "g",
	})
	require.False(t, g.IsInitialised())
	require.NoError(t, g.Close(ctx))
	assertClosed(ctx, t, g)
}

func assertClosed(ctx context.Context, t *testing.T, g *kafka.ConsumerGroup) {
	t.Helper()
	require.Equal(t, kafka.Closed, g.State())
	for i := range closedCalls {
		require.ErrorIs(t, g.Initialise(ctx), kafka.ErrClosed, "Initialise, call %d", i)
	}
	require.ErrorIs(t, g.RegisterHandler(ctx, func(context.Context, int, kafka.Message) error { return nil }), kafka.ErrClosed)
	require.ErrorIs(t, g.RegisterBatchHandler(ctx, func(context.Context, []kafka.Message) error { return nil }), kafka.ErrClosed)
	require.ErrorIs(t, g.StopAndWait(ctx), kafka.ErrClosed)
	require.ErrorIs(t, g.StateWait(ctx, kafka.Consuming), kafka.ErrClosed, "a state that cannot come does not wait for ctx")
	require.NoError(t, g.StateWait(ctx, kafka.Closed))
	select {
	case <-g.InState(kafka.Closed):
	default:
		t.Fatal("InState(Closed) is not ready on a closed consumer")
	}
	g.Start()
	g.Stop()
	require.Equal(t, kafka.Closed, g.State(), "Start and Stop do nothing after Close")
	require.NoError(t, g.Close(ctx), "Close is idempotent")
}
