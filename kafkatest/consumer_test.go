package kafkatest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// newConsumer returns a started fake consumer, closed when the test ends.
// Retries are quick, so failure paths take milliseconds.
func newConsumer(t *testing.T, cfg kafka.ConsumerGroupConfig, dlt kafka.IProducer) *kafkatest.Consumer {
	t.Helper()
	if cfg.HandlerRetryBackoff == 0 {
		cfg.HandlerRetryBackoff = time.Millisecond
	}
	c, err := kafkatest.NewConsumer(&cfg, dlt)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, c.Close(ctx))
	})
	return c
}

func offsets(ms []*kafkatest.Message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.Offset())
	}
	return out
}

func values[M kafka.Message](ms []M) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Value()))
	}
	return out
}

func queueValues(c *kafkatest.Consumer, topic string, partition int32, vs ...string) []*kafkatest.Message {
	var ms []*kafkatest.Message
	for _, v := range vs {
		ms = append(ms, kafkatest.NewMessage(topic, []byte(v), kafkatest.WithPartition(partition)))
	}
	c.Queue(ms...)
	return ms
}

func TestConsumerHandlesAndCommitsInOrder(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{}, nil)
	var mu sync.Mutex
	var seen []string
	require.NoError(t, c.RegisterHandler(context.Background(), func(_ context.Context, worker int, msg kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, 0, worker)
		seen = append(seen, fmt.Sprintf("%s %s", msg.(*kafkatest.Message), msg.Value()))
		return nil
	}))
	queueValues(c, "orders", 0, "a", "b")
	m := c.QueueJSON("orders", map[string]int{"id": 1}, kafkatest.WithKey("k"))
	c.Queue(kafkatest.NewMessage("orders", []byte("late"), kafkatest.WithOffset(10)))
	queueValues(c, "orders", 0, "after-gap")
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))

	assert.Equal(t, []string{`orders/0@0 a`, `orders/0@1 b`, `orders/0@2 {"id":1}`, `orders/0@10 late`, `orders/0@11 after-gap`}, seen)
	assert.Equal(t, []int64{0, 1, 2, 10, 11}, offsets(c.Committed()))
	ct, _ := m.Header(kafka.HeaderContentType)
	assert.Equal(t, "application/json", string(ct))
	assert.Equal(t, []byte("k"), m.Key())
	assert.Equal(t, 1, m.Commits())
	assert.Empty(t, c.Released(), "with a handler the consumer releases nothing")
	assert.Empty(t, c.DeadLettered())
}

func TestConsumerQueueMisuse(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{}, nil)
	m := kafkatest.NewMessage("t", nil)
	c.Queue(m)
	assert.PanicsWithValue(t, "kafkatest: Consumer.Queue: message t/0@0 was queued already; build a new one", func() { c.Queue(m) })
	assert.PanicsWithValue(t, "kafkatest: Consumer.Queue: offset 0 of t/0 does not come after the partition's last offset, 0",
		func() { c.Queue(kafkatest.NewMessage("t", nil, kafkatest.WithOffset(0))) })
	assert.Panics(t, func() { c.QueueJSON("t", func() {}) })
}

func TestConsumerInvalidConfig(t *testing.T) {
	for _, cfg := range []kafka.ConsumerGroupConfig{
		{NumWorkers: -1},
		{BatchSize: -2},
		{HandlerRetries: -2},
		{Topics: []string{"a"}, DeadLetterTopic: "a"},
	} {
		_, err := kafkatest.NewConsumer(&cfg, nil)
		require.ErrorIs(t, err, kafka.ErrInvalidConfig, "%+v", cfg)
	}
	c, err := kafkatest.NewConsumer(nil, nil)
	require.NoError(t, err, "nil is the zero config")
	require.NoError(t, c.Close(context.Background()))
}

// Partitions run in parallel, up to NumWorkers, each in order.
func TestConsumerWorkersAndPartitionOrder(t *testing.T) {
	const workers, partitions, perPartition = 3, 6, 20
	c := newConsumer(t, kafka.ConsumerGroupConfig{NumWorkers: workers}, nil)
	var (
		mu       sync.Mutex
		running  int
		maxSeen  int
		ids      = map[int]bool{}
		order    = map[int32][]int64{}
		reached  = make(chan struct{})
		gate     = make(chan struct{})
		gateOnce sync.Once
	)
	require.NoError(t, c.RegisterHandler(context.Background(), func(_ context.Context, worker int, msg kafka.Message) error {
		mu.Lock()
		running++
		maxSeen = max(maxSeen, running)
		ids[worker] = true
		order[msg.Partition()] = append(order[msg.Partition()], msg.Offset())
		if running == workers {
			gateOnce.Do(func() { close(reached) })
		}
		mu.Unlock()
		<-gate // hold every worker until all of them are busy at once
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	}))
	for p := range int32(partitions) {
		for range perPartition {
			c.Queue(kafkatest.NewMessage("t", nil, kafkatest.WithPartition(p)))
		}
	}
	c.Start()
	select {
	case <-reached:
	case <-testCtx(t).Done():
		t.Fatal("the workers never ran in parallel")
	}
	close(gate)
	require.NoError(t, c.WaitIdle(testCtx(t)))

	assert.Equal(t, workers, maxSeen, "never more than NumWorkers at once")
	assert.Len(t, ids, workers, "worker ids 0 to NumWorkers-1")
	for p, offs := range order {
		assert.True(t, slices.IsSorted(offs), "partition %d out of order: %v", p, offs)
		assert.Len(t, offs, perPartition)
	}
	assert.Len(t, c.Committed(), partitions*perPartition)
}

func TestConsumerRetryThenSuccess(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{HandlerRetries: 3}, nil)
	var attempts atomic.Int32
	require.NoError(t, c.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error {
		if attempts.Add(1) < 3 {
			return errors.New("database busy")
		}
		return nil
	}))
	m := c.QueueJSON("t", 1)
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Equal(t, int32(3), attempts.Load())
	assert.True(t, m.IsCommitted())
	assert.Empty(t, c.Channels().Errors, "success after retries reports nothing")
}

// A handler that still fails after the retries is skipped: committed and
// reported, and the partition goes on.
func TestConsumerSkipsAfterRetries(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{HandlerRetries: 2}, nil)
	errBad := errors.New("bad payload")
	var attempts atomic.Int32
	require.NoError(t, c.RegisterHandler(context.Background(), func(_ context.Context, _ int, msg kafka.Message) error {
		if string(msg.Value()) == "bad" {
			attempts.Add(1)
			return errBad
		}
		return nil
	}))
	ms := queueValues(c, "t", 1, "bad", "good")
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))

	assert.Equal(t, int32(3), attempts.Load(), "one attempt and two retries")
	assert.Equal(t, ms, c.Committed())
	var herr *kafka.HandlerError
	require.ErrorAs(t, <-c.Channels().Errors, &herr)
	assert.Equal(t, kafka.HandlerError{Topic: "t", Partition: 1, Offset: 0, Count: 1, Attempts: 3, Err: errBad}, *herr)
	assert.Empty(t, c.DeadLettered())
}

func TestConsumerNoRetry(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{HandlerRetries: -1}, nil)
	var attempts atomic.Int32
	require.NoError(t, c.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error {
		attempts.Add(1)
		return errors.New("no")
	}))
	c.QueueJSON("t", 1)
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Equal(t, int32(1), attempts.Load())
}

func TestConsumerDeadLetters(t *testing.T) {
	dlt := newProducer(t, nil)
	c := newConsumer(t, kafka.ConsumerGroupConfig{HandlerRetries: 1, DeadLetterTopic: "orders-dlt"}, dlt)
	errBad := errors.New("bad payload")
	require.NoError(t, c.RegisterHandler(context.Background(), func(_ context.Context, _ int, msg kafka.Message) error {
		if string(msg.Value()) == "bad" {
			return errBad
		}
		return nil
	}))
	dlt.FailNext(errors.New("dead-letter topic unavailable")) // the first write fails and is retried
	bad := kafkatest.NewMessage("orders", []byte("bad"), kafkatest.WithKey("k"),
		kafkatest.WithHeader("trace-id", "req-3"), kafkatest.WithPartition(2), kafkatest.WithOffset(41))
	c.Queue(bad)
	queueValues(c, "orders", 2, "good")
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))

	assert.Equal(t, []*kafkatest.Message{bad}, c.DeadLettered())
	assert.True(t, bad.IsCommitted(), "committed once the dead-letter topic has it")
	var herr *kafka.HandlerError
	require.ErrorAs(t, <-c.Channels().Errors, &herr)
	assert.True(t, herr.DeadLettered)
	assert.ErrorIs(t, herr, errBad)

	recs := dlt.Messages()
	require.Len(t, recs, 1)
	rec := recs[0]
	assert.Equal(t, "orders-dlt", rec.Topic())
	assert.Equal(t, []byte("k"), rec.Key())
	assert.Equal(t, []byte("bad"), rec.Value())
	for k, want := range map[string]string{
		"trace-id":               "req-3",
		kafka.HeaderDLTTopic:     "orders",
		kafka.HeaderDLTPartition: "2",
		kafka.HeaderDLTOffset:    "41",
		kafka.HeaderDLTError:     "bad payload",
		kafka.HeaderDLTAttempts:  "2",
	} {
		v, ok := rec.Header(k)
		if assert.True(t, ok, k) {
			assert.Equal(t, want, string(v), k)
		}
	}
	assert.Equal(t, "req-3", kafka.TraceID(rec.Context()), "written with the message's context")
}

func TestConsumerDeadLettersWithoutProducer(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{HandlerRetries: -1, DeadLetterTopic: "dlt"}, nil)
	require.NoError(t, c.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return errors.New("x") }))
	m := c.QueueJSON("t", 1)
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Equal(t, []*kafkatest.Message{m}, c.DeadLettered())
	assert.True(t, m.IsCommitted())
}

func TestConsumerRecoversPanics(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{HandlerRetries: 1}, nil)
	require.NoError(t, c.RegisterHandler(context.Background(), func(_ context.Context, _ int, msg kafka.Message) error {
		var order map[string]int
		order["id"] = 1 // a nil map: panics
		return nil
	}))
	m := c.QueueJSON("t", 1)
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	var herr *kafka.HandlerError
	require.ErrorAs(t, <-c.Channels().Errors, &herr)
	assert.ErrorIs(t, herr, kafka.ErrHandlerPanic)
	assert.Contains(t, herr.Error(), "assignment to entry in nil map")
	assert.Equal(t, 2, herr.Attempts)
	assert.True(t, m.IsCommitted(), "a panic is a failure like any other: retried, then skipped")
}

func TestConsumerErrorsDroppedWhenFull(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{HandlerRetries: -1, ErrorsBufferSize: 1}, nil)
	require.NoError(t, c.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return errors.New("x") }))
	queueValues(c, "t", 0, "a", "b", "c")
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)), "nobody reads Errors, and nothing blocks")
	assert.Equal(t, uint64(2), c.DroppedErrors())
}

// blockUntilCancelled is a handler that signals each delivery and returns
// only when its context is cancelled, as a well-behaved slow handler does.
func blockUntilCancelled(deliveries chan<- kafka.Message) kafka.Handler {
	return func(ctx context.Context, _ int, msg kafka.Message) error {
		deliveries <- msg
		<-ctx.Done()
		return ctx.Err()
	}
}

func TestConsumerRebalanceRedelivers(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{NumWorkers: 2}, nil)
	deliveries := make(chan kafka.Message, 10)
	var calls atomic.Int32
	slow := blockUntilCancelled(deliveries)
	require.NoError(t, c.RegisterHandler(context.Background(), func(ctx context.Context, w int, msg kafka.Message) error {
		if calls.Add(1) <= 2 {
			return slow(ctx, w, msg) // the first delivery of each message hangs until revoked
		}
		return nil
	}))
	done := queueValues(c, "t", 0, "x")
	first := queueValues(c, "t", 1, "a", "b")
	c.Start()
	got := []kafka.Message{<-deliveries, <-deliveries}
	ctxs := []context.Context{got[0].Context(), got[1].Context()}
	for _, ctx := range ctxs {
		require.NoError(t, ctx.Err())
	}

	require.NoError(t, c.SimulateRebalance(testCtx(t)))
	assert.Equal(t, kafka.Consuming, c.State())
	for _, ctx := range ctxs {
		require.ErrorIs(t, ctx.Err(), context.Canceled, "the revoked handlers' context is cancelled")
	}
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Equal(t, int32(5), calls.Load(), "both interrupted messages delivered again, then the rest")
	assert.ElementsMatch(t, append(done, first...), c.Committed())
	assert.Empty(t, c.Channels().Errors, "an interruption is not a handler failure")
}

// The message whose handler was failing when the rebalance came is not
// committed by this consumer: the next owner gets it.
func TestConsumerRebalanceDuringRetries(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{HandlerRetries: 5, HandlerRetryBackoff: time.Hour}, nil)
	failing, redelivered, proceed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var attempts atomic.Int32
	require.NoError(t, c.RegisterHandler(context.Background(), func(_ context.Context, _ int, msg kafka.Message) error {
		if msg.Offset() != 3 {
			return nil
		}
		switch attempts.Add(1) {
		case 1:
			close(failing)
			return errors.New("downstream unavailable") // retried in an hour
		default:
			close(redelivered)
			<-proceed
			return nil
		}
	}))
	ms := queueValues(c, "t", 0, "0", "1", "2", "3", "4")
	c.Start()
	<-failing
	require.NoError(t, c.SimulateRebalance(testCtx(t)))
	<-redelivered
	assert.Equal(t, ms[:3], c.Committed())
	assert.False(t, ms[3].IsCommitted(), "message 3 was not committed because the handler failed and was interrupted")
	assert.Empty(t, c.Channels().Errors, "an interrupted message is not reported as failed")
	close(proceed)
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Equal(t, ms, c.Committed(), "delivered again after the rebalance, and handled")
}

// A handler that ignores its context holds the rebalance up, as it holds up
// a real one until RebalanceTimeout.
func TestConsumerRebalanceWaitsForHandlers(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{}, nil)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	require.NoError(t, c.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return nil
	}))
	m := c.QueueJSON("t", 1)
	c.Start()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	rebalanced := make(chan error, 1)
	go func() { rebalanced <- c.SimulateRebalance(ctx) }()
	require.NoError(t, c.StateWait(testCtx(t), kafka.Starting))
	cancel()
	require.ErrorIs(t, <-rebalanced, context.Canceled)
	assert.Equal(t, kafka.Starting, c.State(), "still held up by the handler")
	close(release)
	require.NoError(t, c.StateWait(testCtx(t), kafka.Consuming))
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.True(t, m.IsCommitted(), "returned nil despite the cancellation: committed, not delivered again")
	assert.Equal(t, 1, m.Commits())
}

func TestConsumerStopInterruptsAndStartRedelivers(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{}, nil)
	deliveries := make(chan kafka.Message, 10)
	var calls atomic.Int32
	slow := blockUntilCancelled(deliveries)
	require.NoError(t, c.RegisterHandler(context.Background(), func(ctx context.Context, w int, msg kafka.Message) error {
		if calls.Add(1) == 1 {
			return slow(ctx, w, msg)
		}
		return nil
	}))
	m := c.QueueJSON("t", 1)
	c.Start()
	<-deliveries
	require.NoError(t, c.StopAndWait(testCtx(t)))
	assert.False(t, m.IsCommitted())
	err := c.WaitIdle(canceled())
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "Stopped, 1 messages unprocessed")

	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.True(t, m.IsCommitted())
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestConsumerStopAndWaitWaitsForSlowHandler(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{}, nil)
	entered, release := make(chan struct{}), make(chan struct{})
	var returned atomic.Bool
	require.NoError(t, c.RegisterHandler(context.Background(), func(ctx context.Context, _ int, _ kafka.Message) error {
		close(entered)
		<-release // slow, and finishes its work even though ctx is cancelled
		returned.Store(true)
		return nil
	}))
	m := c.QueueJSON("t", 1)
	c.Start()
	<-entered

	stopped := make(chan error, 1)
	go func() { stopped <- c.StopAndWait(testCtx(t)) }()
	require.NoError(t, c.StateWait(testCtx(t), kafka.Stopping))
	select {
	case <-stopped:
		t.Fatal("StopAndWait returned while the handler was running")
	default:
	}
	close(release)
	require.NoError(t, <-stopped)
	assert.True(t, returned.Load())
	assert.True(t, m.IsCommitted(), "committed before StopAndWait returns")
	assert.Equal(t, kafka.Stopped, c.State())
}

func TestConsumerBatches(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{BatchSize: 3, BatchWaitTime: 20 * time.Millisecond, NumWorkers: 2}, nil)
	var mu sync.Mutex
	var batches []string
	require.NoError(t, c.RegisterBatchHandler(context.Background(), func(ctx context.Context, batch []kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		var b []string
		for _, m := range batch {
			b = append(b, fmt.Sprintf("%d:%s", m.Partition(), m.Value()))
		}
		batches = append(batches, strings.Join(b, " "))
		return nil
	}))
	queueValues(c, "t", 0, "a", "b", "c", "d", "e", "f", "g")
	queueValues(c, "t", 1, "x")
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.ElementsMatch(t, []string{"0:a 0:b 0:c", "0:d 0:e 0:f", "0:g", "1:x"}, batches,
		"full batches at once, the rest after BatchWaitTime; partitions never mixed")
	assert.Len(t, c.Committed(), 8)
}

// BatchWaitTime counts from a batch's first message: a batch whose first
// message has waited long enough is flushed even as more arrive.
func TestConsumerBatchWaitCountsFromFirstMessage(t *testing.T) {
	const wait = 50 * time.Millisecond
	c := newConsumer(t, kafka.ConsumerGroupConfig{BatchSize: 100, BatchWaitTime: wait}, nil)
	flushed := make(chan time.Time, 10)
	require.NoError(t, c.RegisterBatchHandler(context.Background(), func(context.Context, []kafka.Message) error {
		flushed <- time.Now()
		return nil
	}))
	c.Start()
	start := time.Now()
	c.QueueJSON("t", 0)
	<-flushed
	assert.GreaterOrEqual(t, time.Since(start), wait)
	require.NoError(t, c.WaitIdle(testCtx(t)))
}

func TestConsumerBatchFailureDeadLettersTheBatch(t *testing.T) {
	dlt := newProducer(t, nil)
	c := newConsumer(t, kafka.ConsumerGroupConfig{BatchSize: 2, HandlerRetries: 1, DeadLetterTopic: "dlt"}, dlt)
	var calls atomic.Int32
	require.NoError(t, c.RegisterBatchHandler(context.Background(), func(_ context.Context, batch []kafka.Message) error {
		calls.Add(1)
		if string(batch[0].Value()) == "a" {
			return errors.New("batch rejected")
		}
		return nil
	}))
	ms := queueValues(c, "t", 0, "a", "b", "c", "d")
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Equal(t, int32(3), calls.Load(), "the failed batch is retried whole")
	assert.Equal(t, ms[:2], c.DeadLettered())
	assert.Equal(t, ms, c.Committed())
	var herr *kafka.HandlerError
	require.ErrorAs(t, <-c.Channels().Errors, &herr)
	assert.Equal(t, 2, herr.Count)
	assert.Equal(t, []string{"a", "b"}, values(dlt.Messages()))
}

func TestConsumerBatchInterruptedIsRedelivered(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{BatchSize: 2}, nil)
	var calls atomic.Int32
	started := make(chan struct{})
	require.NoError(t, c.RegisterBatchHandler(context.Background(), func(ctx context.Context, batch []kafka.Message) error {
		if calls.Add(1) == 1 {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}))
	ms := queueValues(c, "t", 0, "a", "b")
	c.Start()
	<-started
	require.NoError(t, c.SimulateRebalance(testCtx(t)))
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Equal(t, int32(2), calls.Load())
	assert.Equal(t, ms, c.Committed())
}

func TestConsumerUpstream(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{TraceHeader: "x-trace"}, nil)
	up := c.Channels().Upstream
	queueValues(c, "t", 0, "a", "b")
	c.Queue(kafkatest.NewMessage("t", []byte("c"), kafkatest.WithHeader("x-trace", "req-9")))
	c.Start()

	a := <-up
	assert.Equal(t, "a", string(a.Value()))
	select {
	case m := <-up:
		t.Fatalf("%s delivered before %s was released", m.Value(), a.Value())
	default:
	}
	a.CommitAndRelease()
	b := <-up
	b.Release() // processed, but not committed
	cm := <-up
	assert.Equal(t, "req-9", kafka.TraceID(cm.Context()), "trace id from the configured trace header")
	cm.Release()
	cm.Release()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Equal(t, []string{"a"}, values(c.Committed()))
	assert.Equal(t, []string{"a", "b", "c"}, values(c.Released()))

	// Nothing after a's commit is committed: the next owner gets b and c again.
	require.NoError(t, c.SimulateRebalance(testCtx(t)))
	b2 := <-up
	assert.Same(t, b, b2)
	b2.Release()
	c2 := <-up
	c2.CommitAndRelease() // commits c's position, and so b's
	require.NoError(t, c.WaitIdle(testCtx(t)))
	require.NoError(t, c.SimulateRebalance(testCtx(t)))
	require.NoError(t, c.WaitIdle(testCtx(t)))
	select {
	case m := <-up:
		t.Fatalf("%s delivered again though its position was committed", m.Value())
	default:
	}
}

// A handler registered while consuming from Upstream takes over from the
// next message, as on a real consumer.
func TestConsumerHandlerRegisteredWhileConsuming(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{UpstreamBufferSize: 1}, nil)
	c.Start()
	queueValues(c, "t", 0, "a")
	a := <-c.Channels().Upstream
	require.NoError(t, c.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return nil }))
	require.ErrorIs(t, c.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return nil }),
		kafka.ErrHandlerRegistered)
	require.ErrorIs(t, c.RegisterBatchHandler(context.Background(), func(context.Context, []kafka.Message) error { return nil }),
		kafka.ErrHandlerRegistered)
	require.Error(t, c.RegisterHandler(canceled(), nil))
	ms := queueValues(c, "t", 0, "b")
	a.CommitAndRelease()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.True(t, ms[0].IsCommitted())
}

func TestConsumerStates(t *testing.T) {
	c, err := kafkatest.NewConsumer(&kafka.ConsumerGroupConfig{}, nil)
	require.NoError(t, err)
	ch := c.Channels()
	<-ch.Initialised
	assert.True(t, c.IsInitialised())
	assert.Equal(t, kafka.Stopped, c.State(), "nothing to connect to: Stopped at once")
	require.NoError(t, c.StopAndWait(testCtx(t)), "already stopped")
	require.NoError(t, c.SimulateRebalance(testCtx(t)), "nothing to revoke")

	consuming := c.StateEntered(kafka.Consuming)
	c.Start()
	<-consuming
	assert.Equal(t, kafka.HealthOK, c.Checker(context.Background()).Status)

	now := time.Now()
	stopped := c.StateEntered(kafka.Stopped)
	c.OnHealthChange(kafka.Health{Status: kafka.HealthCritical, CheckedAt: now})
	<-stopped
	c.OnHealthChange(kafka.Health{Status: kafka.HealthOK, CheckedAt: now.Add(-time.Second)}) // older: ignored
	c.OnHealthChange(kafka.Health{Status: kafka.HealthCritical, CheckedAt: now.Add(time.Second)})
	require.NoError(t, c.StopAndWait(testCtx(t)))
	assert.Equal(t, kafka.Stopped, c.State())
	c.OnHealthChange(kafka.Health{Status: kafka.HealthOK, CheckedAt: now.Add(2 * time.Second)})
	require.NoError(t, c.StateWait(testCtx(t), kafka.Consuming))

	c.QueueJSON("t", 1) // never handled: nothing is registered and nobody reads Upstream
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { assert.NoError(t, c.Close(testCtx(t))) })
	}
	wg.Wait()
	assert.Equal(t, kafka.Closed, c.State())
	for _, ch := range []<-chan struct{}{ch.Closer, ch.Closed} {
		<-ch
	}
	_, open := <-ch.Upstream
	assert.False(t, open)
	_, open = <-ch.Errors
	assert.False(t, open)
	assert.Equal(t, kafka.HealthCritical, c.Checker(context.Background()).Status)
	c.Start() // does nothing after Close
	require.ErrorIs(t, c.StopAndWait(testCtx(t)), kafka.ErrClosed, "StopAndWait after Close")
	assert.ErrorContains(t, c.WaitIdle(testCtx(t)), "consumer closed with 1 messages unprocessed")
}

func TestConsumerCloseBoundedByContext(t *testing.T) {
	c, err := kafkatest.NewConsumer(nil, nil)
	require.NoError(t, err)
	entered, release := make(chan struct{}), make(chan struct{})
	require.NoError(t, c.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error {
		close(entered)
		<-release // ignores its context
		return nil
	}))
	c.QueueJSON("t", 1)
	c.Start()
	<-entered
	require.ErrorIs(t, c.Close(canceled()), context.Canceled)
	require.NoError(t, c.StateWait(testCtx(t), kafka.Closing))
	close(release)
	<-c.Channels().Closed
	require.NoError(t, c.Close(context.Background()))
}

// A producer's records can feed a consumer, to test a pipeline end to end
// in memory.
func TestProducerFeedsConsumer(t *testing.T) {
	p := newProducer(t, &kafka.ProducerConfig{Topic: "events"})
	require.NoError(t, p.Send(kafka.WithTraceID(context.Background(), "req-5"), &kafka.ProducerMessage{Value: []byte("e1")}))
	c := newConsumer(t, kafka.ConsumerGroupConfig{}, nil)
	traces := make(chan string, 1)
	require.NoError(t, c.RegisterHandler(context.Background(), func(ctx context.Context, _ int, _ kafka.Message) error {
		traces <- kafka.TraceID(ctx)
		return nil
	}))
	c.Queue(p.Messages()...)
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Equal(t, "req-5", <-traces)
}

// The fake waits between retries as the real consumer does: backoff
// doubling from HandlerRetryBackoff.
func TestConsumerRetryBackoffIsTheRealPolicy(t *testing.T) {
	const backoff = 20 * time.Millisecond
	c := newConsumer(t, kafka.ConsumerGroupConfig{HandlerRetries: 2, HandlerRetryBackoff: backoff}, nil)
	var mu sync.Mutex
	var at []time.Time
	require.NoError(t, c.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		return errors.New("x")
	}))
	c.QueueJSON("t", 1)
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	require.Len(t, at, 3)
	assert.GreaterOrEqual(t, at[1].Sub(at[0]), backoff)
	assert.GreaterOrEqual(t, at[2].Sub(at[1]), 2*backoff)
}

// A message is committed only once the dead-letter topic has it: stopping
// while its write keeps failing leaves it uncommitted and unreported.
func TestConsumerStopDuringDeadLetterWrite(t *testing.T) {
	dlt := newProducer(t, nil)
	writes := make(chan struct{}, 100)
	dlt.FailWhen(func(*kafka.ProducerMessage) error {
		writes <- struct{}{}
		return errors.New("dead-letter topic unavailable")
	})
	c := newConsumer(t, kafka.ConsumerGroupConfig{HandlerRetries: -1, DeadLetterTopic: "dlt"}, dlt)
	require.NoError(t, c.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return errors.New("x") }))
	m := c.QueueJSON("t", 1)
	c.Start()
	<-writes
	<-writes // retried
	require.NoError(t, c.StopAndWait(testCtx(t)))
	assert.False(t, m.IsCommitted())
	assert.Empty(t, c.DeadLettered())
	assert.Empty(t, c.Channels().Errors)
	assert.Empty(t, dlt.Messages())
}

// The consumer's own commit adds nothing when the handler committed, as
// marking an offset twice does nothing on a real consumer.
func TestConsumerHandlerThatCommits(t *testing.T) {
	c := newConsumer(t, kafka.ConsumerGroupConfig{}, nil)
	require.NoError(t, c.RegisterHandler(context.Background(), func(_ context.Context, _ int, msg kafka.Message) error {
		msg.Commit()
		return nil
	}))
	m := c.QueueJSON("t", 1)
	c.Start()
	require.NoError(t, c.WaitIdle(testCtx(t)))
	assert.Equal(t, 1, m.Commits())
	assert.Equal(t, []*kafkatest.Message{m}, c.Committed())
}
