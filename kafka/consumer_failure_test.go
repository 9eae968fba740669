package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

var errBoom = errors.New("boom")

// TestConsumerRetryThenDeadLetter: a message that keeps failing is retried,
// then written to the dead-letter topic with its headers plus error headers,
// and only then committed; the other messages are unaffected.
func TestConsumerRetryThenDeadLetter(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	dlt := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 60*time.Second)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	for i := range 5 {
		require.NoError(t, p.Send(kafka.WithTraceID(ctx, "t"+strconv.Itoa(i)), &kafka.ProducerMessage{
			Key: []byte("k"), Value: []byte(strconv.Itoa(i)), Headers: []kafka.Header{{Key: "origin", Value: []byte("test")}},
		}))
	}
	group := kafkatest.UniqueName("g")
	var attempts atomic.Int32
	var traceOfPoison atomic.Value
	handled := make(chan string, 10)
	g := newGroup(t, &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group,
		HandlerRetries: 2, HandlerRetryBackoff: 5 * time.Millisecond, DeadLetterTopic: dlt,
	})
	require.NoError(t, g.RegisterHandler(ctx, func(ctx context.Context, _ int, m kafka.Message) error {
		if string(m.Value()) == "2" {
			attempts.Add(1)
			traceOfPoison.Store(kafka.TraceID(ctx))
			return errBoom
		}
		handled <- string(m.Value())
		return nil
	}))
	g.Start()
	var got []string
	for len(got) < 4 {
		select {
		case v := <-handled:
			got = append(got, v)
		case <-ctx.Done():
			t.Fatalf("handled %v", got)
		}
	}
	assert.Equal(t, []string{"0", "1", "3", "4"}, got, "the poison message does not block the partition forever")

	var herr *kafka.HandlerError
	select {
	case err := <-g.Channels().Errors:
		require.ErrorAs(t, err, &herr)
	case <-ctx.Done():
		t.Fatal("no HandlerError reported")
	}
	require.ErrorIs(t, herr, errBoom)
	assert.Equal(t, 3, herr.Attempts, "first try plus 2 retries")
	assert.True(t, herr.DeadLettered)
	assert.Equal(t, int64(2), herr.Offset)
	assert.Equal(t, int32(3), attempts.Load())
	assert.Equal(t, "t2", traceOfPoison.Load(), "the trace header reaches the handler's context")

	require.NoError(t, g.StopAndWait(ctx))
	assert.Equal(t, map[int32]int64{0: 5}, committed(t, cluster, group, topic))

	dead := testkit.ReadAll(ctx, t, cluster.Addrs(), dlt)
	require.Len(t, dead, 1)
	assert.Equal(t, "2", string(dead[0].Value))
	assert.Equal(t, "k", string(dead[0].Key))
	h := dead[0].Headers
	assert.Equal(t, "test", h["origin"])
	assert.Equal(t, "t2", h["trace-id"])
	assert.Equal(t, topic, h[kafka.HeaderDLTTopic])
	assert.Equal(t, "0", h[kafka.HeaderDLTPartition])
	assert.Equal(t, "2", h[kafka.HeaderDLTOffset])
	assert.Equal(t, "3", h[kafka.HeaderDLTAttempts])
	assert.Equal(t, "boom", h[kafka.HeaderDLTError])
}

// TestConsumerPanicRecoveredAndSkipped: a panicking handler does not kill
// the process; without a dead-letter topic the message is skipped after the
// retries and reported.
func TestConsumerPanicRecoveredAndSkipped(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	produceN(t, cluster, topic, 3, 1)
	group := kafkatest.UniqueName("g")
	ok := make(chan string, 3)
	g := newGroup(t, &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group, HandlerRetries: -1,
	})
	require.NoError(t, g.RegisterHandler(context.Background(), func(_ context.Context, _ int, m kafka.Message) error {
		if string(m.Value()) == "1" {
			var nilMap map[string]int
			nilMap["x"] = 1 // panics
		}
		ok <- string(m.Value())
		return nil
	}))
	g.Start()
	ctx := testCtx(t, 30*time.Second)
	var herr *kafka.HandlerError
	select {
	case err := <-g.Channels().Errors:
		require.ErrorAs(t, err, &herr)
	case <-ctx.Done():
		t.Fatal("no error reported")
	}
	require.ErrorIs(t, herr, kafka.ErrHandlerPanic)
	assert.Equal(t, 1, herr.Attempts)
	assert.False(t, herr.DeadLettered)
	assert.Contains(t, herr.Error(), "skipped")
	for _, want := range []string{"0", "2"} {
		select {
		case v := <-ok:
			assert.Equal(t, want, v)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	require.NoError(t, g.StopAndWait(ctx))
	assert.Equal(t, map[int32]int64{0: 3}, committed(t, cluster, group, topic))
}

// TestConsumerInterruptedHandlerNotCommitted: a handler still failing when
// Stop cancels its context leaves the message uncommitted, so the next
// consumer gets it.
func TestConsumerInterruptedHandlerNotCommitted(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	produceN(t, cluster, topic, 3, 1)
	group := kafkatest.UniqueName("g")
	failing := make(chan struct{})
	var once atomic.Bool
	cfg := &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group,
		HandlerRetries: 1000, HandlerRetryBackoff: time.Millisecond}
	g := newGroup(t, cfg)
	require.NoError(t, g.RegisterHandler(context.Background(), func(ctx context.Context, _ int, m kafka.Message) error {
		if string(m.Value()) == "1" {
			if once.CompareAndSwap(false, true) {
				close(failing)
			}
			return errBoom
		}
		return nil
	}))
	g.Start()
	select {
	case <-failing:
	case <-time.After(30 * time.Second):
		t.Fatal("handler not reached")
	}
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, g.StopAndWait(ctx))
	assert.Equal(t, map[int32]int64{0: 1}, committed(t, cluster, group, topic), "offset 1 is not committed")

	// A new member of the group starts again at the failed message.
	next := make(chan string, 3)
	g2 := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group})
	require.NoError(t, g2.RegisterHandler(ctx, func(_ context.Context, _ int, m kafka.Message) error {
		next <- string(m.Value())
		return nil
	}))
	require.NoError(t, g.Close(ctx))
	g2.Start()
	select {
	case v := <-next:
		assert.Equal(t, "1", v)
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
}

// TestConsumerUnreadErrorsNeverBlock: with nobody reading Errors and a tiny
// buffer, failures beyond it are dropped and counted, and consumption goes
// on.
func TestConsumerUnreadErrorsNeverBlock(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	produceN(t, cluster, topic, 20, 1)
	done := make(chan struct{})
	var n atomic.Int32
	g := newGroup(t, &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: kafkatest.UniqueName("g"),
		HandlerRetries: -1, ErrorsBufferSize: 1,
	})
	require.NoError(t, g.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error {
		if n.Add(1) == 20 {
			close(done)
		}
		return errBoom
	}))
	g.Start()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("handled %d of 20", n.Load())
	}
	// The 20th failure is reported after its handler returns; stopping
	// before that would interrupt it (an interrupted message is neither
	// committed nor reported), so wait for its report first.
	require.Eventually(t, func() bool { return g.DroppedErrors() >= 19 }, 30*time.Second, 5*time.Millisecond,
		"dropped %d errors, want 19", g.DroppedErrors())
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, g.StopAndWait(ctx))
	assert.Equal(t, uint64(19), g.DroppedErrors())
	require.NoError(t, g.Close(ctx))
	count := 0
	for range g.Channels().Errors {
		count++
	}
	assert.Equal(t, 1, count)
}
