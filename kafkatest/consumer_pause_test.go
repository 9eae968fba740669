package kafkatest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// recv receives from ch, failing the test if nothing comes within a
// deadline generous for a loaded machine.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received in 10 s")
		panic("unreachable")
	}
}

// heldFor is how long a paused partition is watched for a delivery that
// must not happen. A consumer that ignored the pause delivers within
// microseconds; on a machine too loaded for that the test passes without
// having proven anything, it never fails wrongly.
const heldFor = 300 * time.Millisecond

func tp(topic string, p int32) kafka.TopicPartition {
	return kafka.TopicPartition{Topic: topic, Partition: p}
}

func TestConsumerPauseHoldsOnePartition(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{NumWorkers: 2}, nil)
	var mu sync.Mutex
	var seen []string
	handled := make(chan string, 10)
	release := make(chan struct{})
	require.NoError(t, c.RegisterHandler(context.Background(), func(_ context.Context, _ int, msg kafka.Message) error {
		v := string(msg.Value())
		if v == "a" {
			handled <- "a started"
			<-release // Pause comes while this handler runs
		}
		mu.Lock()
		seen = append(seen, v)
		mu.Unlock()
		handled <- v
		return nil
	}))
	seenNow := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
	assert.Empty(t, c.Assignment(), "nothing assigned before consuming")
	c.Start()
	p0 := queueValues(c, "t", 0, "a", "b", "c")
	require.Equal(t, "a started", recv(t, handled))
	require.NoError(t, c.Pause(tp("t", 0)))
	assert.Equal(t, []kafka.TopicPartition{tp("t", 0)}, c.Paused())
	close(release)
	require.Equal(t, "a", recv(t, handled), "a handler already running finishes")

	// The other partition goes on while t/0 is held.
	p1 := queueValues(c, "t", 1, "x", "y")
	require.Equal(t, "x", recv(t, handled))
	require.Equal(t, "y", recv(t, handled))
	assert.Equal(t, []kafka.TopicPartition{tp("t", 0), tp("t", 1)}, c.Assignment())

	// Pauses outlive a rebalance.
	require.NoError(t, c.SimulateRebalance(testCtx(t)))
	assert.Equal(t, []kafka.TopicPartition{tp("t", 0)}, c.Paused())
	queueValues(c, "t", 1, "z")
	require.Equal(t, "z", recv(t, handled))

	held, cancel := context.WithTimeout(context.Background(), heldFor)
	defer cancel()
	err := c.WaitIdle(held)
	require.ErrorIs(t, err, context.DeadlineExceeded, "b and c are held")
	assert.Contains(t, err.Error(), "2 messages unprocessed")
	assert.Equal(t, []string{"a", "x", "y", "z"}, seenNow())
	assert.Equal(t, p0[:1], filter(c.Committed(), "t", 0), "only a committed on t/0")

	require.NoError(t, c.Resume(tp("t", 0)))
	assert.Empty(t, c.Paused())
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Equal(t, []string{"a", "x", "y", "z", "b", "c"}, seenNow(), "t/0 continues where it stopped, in order")
	assert.Equal(t, p0, filter(c.Committed(), "t", 0))
	assert.Equal(t, p1, filter(c.Committed(), "t", 1)[:2])
}

// A partition paused before it has any message is held once it has, on the
// Upstream path as with a handler.
func TestConsumerPauseBeforeQueueUpstream(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{}, nil)
	require.NoError(t, c.Pause(tp("t", 0)))
	c.Start()
	queueValues(c, "t", 0, "held")
	queueValues(c, "t", 1, "free")
	up := c.Channels().Upstream
	m := recv(t, up)
	require.Equal(t, "free", string(m.Value()))
	m.Release()
	select {
	case m := <-up:
		t.Fatalf("paused partition delivered %s", m.Value())
	case <-time.After(heldFor):
	}
	require.NoError(t, c.Resume(tp("t", 0)))
	m = recv(t, up)
	require.Equal(t, "held", string(m.Value()))
	m.Release()
	require.NoError(t, c.WaitIdle(testCtx(t)))
}

// A batch handler's partition is held too.
func TestConsumerPauseHoldsBatches(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{BatchSize: 2, BatchWaitTime: time.Millisecond}, nil)
	batches := make(chan []string, 10)
	require.NoError(t, c.RegisterBatchHandler(context.Background(), func(_ context.Context, msgs []kafka.Message) error {
		batches <- values(msgs)
		return nil
	}))
	require.NoError(t, c.Pause(tp("t", 0)))
	c.Start()
	queueValues(c, "t", 0, "a", "b")
	queueValues(c, "t", 1, "x", "y")
	require.Equal(t, []string{"x", "y"}, recv(t, batches))
	select {
	case b := <-batches:
		t.Fatalf("paused partition delivered %v", b)
	case <-time.After(heldFor):
	}
	require.NoError(t, c.Resume(tp("t", 0)))
	require.Equal(t, []string{"a", "b"}, recv(t, batches))
	require.NoError(t, c.WaitIdle(testCtx(t)))
}

func filter(ms []*kafkatest.Message, topic string, p int32) []*kafkatest.Message {
	var out []*kafkatest.Message
	for _, m := range ms {
		if m.Topic() == topic && m.Partition() == p {
			out = append(out, m)
		}
	}
	return out
}

// The callbacks come in the real consumer's order: assigned at start,
// revoked only after the handlers returned, then assigned again; a
// partition new to the session is assigned before its first message; Close
// revokes everything. After Close, Pause and Resume fail with ErrClosed.
func TestConsumerRebalanceCallbacksOrder(t *testing.T) {
	var mu sync.Mutex
	var events []string
	record := func(e string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}
	took := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := events
		events = nil
		return out
	}
	callback := func(name string) kafka.RebalanceCallback {
		return func(ctx context.Context, tps []kafka.TopicPartition) {
			assert.NoError(t, ctx.Err(), "the callback's context lasts the consumption period")
			record(fmt.Sprint(name, tps))
		}
	}
	c, err := kafkatest.NewConsumer(&kafka.ConsumerGroupConfig{NumWorkers: 3,
		OnAssigned: callback("assigned"), OnRevoked: callback("revoked")}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	started := make(chan struct{}, 10)
	require.NoError(t, c.RegisterHandler(context.Background(), func(ctx context.Context, _ int, _ kafka.Message) error {
		started <- struct{}{}
		<-ctx.Done()
		record("returned")
		return ctx.Err()
	}))
	queueValues(c, "t", 1, "a")
	queueValues(c, "t", 0, "b")
	c.Start()
	recv(t, started)
	recv(t, started)
	assert.Equal(t, []string{"assigned[{t 0} {t 1}]"}, took())
	assert.Equal(t, []kafka.TopicPartition{tp("t", 0), tp("t", 1)}, c.Assignment())

	require.NoError(t, c.SimulateRebalance(testCtx(t)))
	assert.Equal(t, []string{"returned", "returned", "revoked[{t 0} {t 1}]", "assigned[{t 0} {t 1}]"}, took())
	recv(t, started)
	recv(t, started)

	queueValues(c, "t", 2, "c")
	recv(t, started)
	assert.Equal(t, []string{"assigned[{t 2}]"}, took(), "a new partition is assigned before its first message")
	assert.Equal(t, []kafka.TopicPartition{tp("t", 0), tp("t", 1), tp("t", 2)}, c.Assignment())

	require.NoError(t, c.StopAndWait(testCtx(t)))
	assert.Equal(t, []string{"returned", "returned", "returned", "revoked[{t 0} {t 1} {t 2}]"}, took())
	assert.Empty(t, c.Assignment(), "nothing assigned once stopped")

	require.NoError(t, c.Close(testCtx(t)))
	assert.Empty(t, took(), "a stopped consumer has nothing to revoke")
	require.ErrorIs(t, c.Pause(tp("t", 0)), kafka.ErrClosed)
	require.ErrorIs(t, c.Resume(tp("t", 0)), kafka.ErrClosed)
}

// Close while consuming revokes every partition once the handlers return.
func TestConsumerCloseRevokes(t *testing.T) {
	revoked := make(chan []kafka.TopicPartition, 2)
	c, err := kafkatest.NewConsumer(&kafka.ConsumerGroupConfig{
		OnRevoked: func(_ context.Context, tps []kafka.TopicPartition) { revoked <- tps }}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	require.NoError(t, c.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return nil }))
	queueValues(c, "t", 3, "a")
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	require.NoError(t, c.Close(testCtx(t)))
	assert.Equal(t, []kafka.TopicPartition{tp("t", 3)}, recv(t, revoked))
	assert.Empty(t, revoked)
}
