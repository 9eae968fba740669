package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkahub/kafkahub/internal/handling"
	"github.com/kafkahub/kafkahub/internal/rebalance"
	"github.com/kafkahub/kafkahub/internal/statemachine"
	"github.com/kafkahub/kafkahub/kafka"
)

// Consumer is an in-memory consumer group for unit tests: it satisfies
// kafka.IConsumerGroup and hands queued messages to the registered Handler
// or BatchHandler (or, with neither, to the Upstream channel) exactly as a
// kafka.ConsumerGroup hands out records from Kafka: one partition's messages
// in order, at most NumWorkers handlers at once, batches per partition, a
// commit once the handler is done, retries under the same policy, then the
// dead-letter topic or a skip, and a *kafka.HandlerError on Errors.
//
// Every partition queued is assigned to it while it consumes: OnAssigned
// and OnRevoked are called as on the real consumer, Assignment lists the
// partitions, and Pause and Resume hold and release them.
//
// What it cannot get from a broker the test supplies: messages with Queue,
// and rebalances with SimulateRebalance. Committed, Released and
// DeadLettered say what happened, and WaitIdle waits for it, so a test never
// sleeps.
//
// Like the real consumer it owns goroutines, stopped by Close.
type Consumer struct {
	cfg    kafka.ConsumerGroupConfig
	log    *slog.Logger
	dlt    kafka.IProducer // nil: dead letters are only recorded
	policy handling.Policy

	states *statemachine.Machine[kafka.State]

	intents   *statemachine.Intent
	rebalance chan chan struct{}

	healthMu   sync.Mutex
	lastHealth time.Time

	handler      atomic.Pointer[kafka.Handler]
	batchHandler atomic.Pointer[kafka.BatchHandler]
	registerMu   sync.Mutex

	workers chan int

	// assign is the real consumer's assignment tracker: the callbacks, the
	// current partitions and the pause gates.
	assign *rebalance.Tracker[kafka.TopicPartition]

	// mu guards the partitions, the session and the records. It is never
	// held while calling a handler or blocking on a channel.
	mu         sync.Mutex
	parts      map[topicPartition]*partition
	order      []*partition    // in order of first message, for stable sessions
	period     context.Context // the consumption period's, for OnAssigned; nil unless consuming
	session    context.Context // nil unless consuming
	endSession context.CancelFunc
	claims     *sync.WaitGroup
	changed    chan struct{} // closed and replaced when processing progresses
	commitLog  []*Message
	releaseLog []*Message
	deadLog    []*Message

	upstream      chan kafka.Message
	errors        chan error
	droppedErrors atomic.Uint64
	initialised   chan struct{}
	closer        chan struct{}
	closed        chan struct{}
	closeOnce     sync.Once
}

type topicPartition struct {
	topic     string
	partition int32
}

func (id topicPartition) tp() kafka.TopicPartition {
	return kafka.TopicPartition{Topic: id.topic, Partition: id.partition}
}

// partition is one partition's log as the fake broker holds it.
type partition struct {
	id       topicPartition
	log      []*Message
	next     int // index of the next message to deliver
	pos      int // committed position: log[:pos] are covered by commits
	inflight int // messages handed to the handler, batch or Upstream
	signal   chan struct{}
}

// NewConsumer returns a fake consumer group configured by cfg (nil means
// the zero config). Of cfg only the handler settings matter: NumWorkers,
// BatchSize, BatchWaitTime, HandlerRetries, HandlerRetryBackoff,
// DeadLetterTopic, UpstreamBufferSize, ErrorsBufferSize, TraceHeader,
// OnAssigned, OnRevoked and Logger (when nil the fake logs nothing, rather than cluttering test
// output as slog.Default would). BrokerAddrs, Topics and GroupName may be
// left empty; whatever is queued is consumed. The settings are validated
// as kafka.NewConsumerGroup would, and an invalid one is an error matching
// kafka.ErrInvalidConfig.
//
// deadLetters, when not nil and DeadLetterTopic is set, receives the
// dead-letter records: pass a Producer to read them back or to make their
// writes fail. With a nil one they are recorded (see DeadLettered) and
// reported written. The consumer does not close it.
//
// The consumer has nothing to connect to: it starts Stopped, with
// Initialised closed, and skips Initialising. Call Start to consume, and
// Close when done.
func NewConsumer(cfg *kafka.ConsumerGroupConfig, deadLetters kafka.IProducer) (*Consumer, error) {
	var given kafka.ConsumerGroupConfig
	if cfg != nil {
		given = *cfg
	}
	if err := validate(given); err != nil {
		return nil, err
	}
	c := given.WithDefaults()
	log := given.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Consumer{
		cfg:         c,
		log:         log.With("component", "kafkatest.consumer"),
		states:      newStates(kafka.Stopped),
		intents:     statemachine.NewIntent(),
		rebalance:   make(chan chan struct{}),
		workers:     make(chan int, c.NumWorkers),
		parts:       make(map[topicPartition]*partition),
		changed:     make(chan struct{}),
		upstream:    make(chan kafka.Message, c.UpstreamBufferSize),
		errors:      make(chan error, c.ErrorsBufferSize),
		initialised: make(chan struct{}),
		closer:      make(chan struct{}),
		closed:      make(chan struct{}),
	}
	g.assign = rebalance.New(tpKey, rebalance.Callback[kafka.TopicPartition](c.OnAssigned),
		rebalance.Callback[kafka.TopicPartition](c.OnRevoked), g.log.Error)
	if c.DeadLetterTopic != "" {
		g.dlt = deadLetters
	}
	// The real consumer's policy, so retries take the same time.
	g.policy = handling.FromConfig(c.HandlerRetries, c.HandlerRetryBackoff)
	for i := range c.NumWorkers {
		g.workers <- i
	}
	close(g.initialised)
	go g.run()
	return g, nil
}

// validate applies the real consumer's validation, filling in the
// connection settings a fake does not need so that only the others count.
func validate(cfg kafka.ConsumerGroupConfig) error {
	if len(cfg.BrokerAddrs) == 0 {
		cfg.BrokerAddrs = []string{"kafkatest.invalid:9092"}
	}
	if cfg.GroupName == "" {
		cfg.GroupName = "kafkatest"
	}
	if len(cfg.Topics) == 0 {
		cfg.Topics = []string{"kafkatest"}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("kafkatest: NewConsumer: %w", err)
	}
	return nil
}

// Queue adds messages to the end of their partitions, as a producer would,
// numbering them from each partition's previous offset (or keeping an
// offset set with WithOffset). A consuming consumer delivers them at once;
// a stopped one when started.
//
// It panics if a message was queued before (build a new one instead) or
// its WithOffset offset does not come after its partition's previous one:
// either is a mistake in the test.
func (c *Consumer) Queue(msgs ...*Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		id := topicPartition{m.topic, m.partition}
		p := c.parts[id]
		if p == nil {
			p = &partition{id: id, signal: make(chan struct{}, 1)}
			c.parts[id] = p
			c.order = append(c.order, p)
			if c.session != nil {
				c.startClaim(c.session, p, true)
			}
		}
		last := int64(-1)
		if n := len(p.log); n > 0 {
			last = p.log[n-1].offset // the message's own lock is not needed: set once, under c.mu
		}
		m.mu.Lock()
		if m.owner != nil {
			m.mu.Unlock()
			panic(fmt.Sprintf("kafkatest: Consumer.Queue: message %s was queued already; build a new one", m))
		}
		if !m.offsetSet {
			m.offset = last + 1
		} else if m.offset <= last {
			m.mu.Unlock()
			panic(fmt.Sprintf("kafkatest: Consumer.Queue: offset %d of %s/%d does not come after the partition's last offset, %d",
				m.offset, m.topic, m.partition, last))
		}
		m.owner, m.idx = c, len(p.log)
		m.mu.Unlock()
		p.log = append(p.log, m)
		poke(p.signal)
	}
	c.progressed()
}

// QueueJSON queues a message of topic whose value is v encoded as JSON,
// with the content-type header that kafka.NewProducerMessage would set, and
// returns it so the test can check what became of it. It panics if v cannot
// be encoded.
func (c *Consumer) QueueJSON(topic string, v any, opts ...MessageOption) *Message {
	pm, err := kafka.NewProducerMessage(kafka.JSON, nil, v)
	if err != nil {
		panic(fmt.Sprintf("kafkatest: Consumer.QueueJSON: %v", err))
	}
	all := make([]MessageOption, 0, len(opts)+1)
	all = append(all, WithHeader(kafka.HeaderContentType, pm.Headers[0].Value))
	m := NewMessage(topic, pm.Value, append(all, opts...)...)
	c.Queue(m)
	return m
}

// Committed returns the messages committed so far, in the order of their
// first commit.
func (c *Consumer) Committed() []*Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Message(nil), c.commitLog...)
}

// Released returns the messages released so far (see kafka.Message), in
// the order of their first release. With a handler registered the consumer
// itself releases nothing; this is for tests of code that reads Upstream.
func (c *Consumer) Released() []*Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Message(nil), c.releaseLog...)
}

// DeadLettered returns the messages written to DeadLetterTopic after their
// handler still failed on the last retry, in the order they were written.
func (c *Consumer) DeadLettered() []*Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Message(nil), c.deadLog...)
}

// WaitIdle waits until every queued message has been processed: its
// handler is done with it, or, with Upstream, it was released. A message
// whose handler was interrupted counts as unprocessed until it is
// delivered again and handled. WaitIdle returns an error wrapping ctx's if
// ctx ends first, naming how many messages are left, and at once if the
// consumer is closed with messages left.
func (c *Consumer) WaitIdle(ctx context.Context) error {
	for {
		c.mu.Lock()
		left, ch := c.unprocessed(), c.changed
		c.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-c.closed:
			return fmt.Errorf("kafkatest: consumer closed with %d messages unprocessed", left)
		case <-ctx.Done():
			return fmt.Errorf("kafkatest: waiting for the consumer to be idle (%s, %d messages unprocessed): %w",
				c.State(), left, ctx.Err())
		}
	}
}

// unprocessed counts messages not yet delivered or still in flight; c.mu
// must be held.
func (c *Consumer) unprocessed() int {
	n := 0
	for _, p := range c.order {
		n += len(p.log) - p.next + p.inflight
	}
	return n
}

// progressed wakes WaitIdle; c.mu must be held.
func (c *Consumer) progressed() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// committed moves the partition's committed position past m. Kafka commits
// positions, so a later message's commit covers the earlier ones of its
// partition even if they were only released.
func (c *Consumer) committed(m *Message, first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.parts[topicPartition{m.topic, m.partition}]; p != nil {
		p.pos = max(p.pos, m.idx+1)
	}
	if first {
		c.commitLog = append(c.commitLog, m)
	}
}

func (c *Consumer) releasedMsg(m *Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLog = append(c.releaseLog, m)
}

// SimulateRebalance does to the consumer what an eager rebalance in its
// group does to a real one (every partition is revoked): the state goes
// from Consuming to Starting, every handler's context is cancelled, and
// once they have returned OnRevoked is called with every partition; then
// OnAssigned with every partition, and the messages the handlers had not
// finished, and any not yet committed, are delivered again from the
// partition's committed position, as to the partition's next owner; the
// state is Consuming again. Paused partitions stay paused.
//
// It returns once that is done, or an error wrapping ctx's if a handler
// does not return in time (the rebalance then completes in the
// background). A consumer that is not consuming has nothing to revoke: it
// returns nil at once.
func (c *Consumer) SimulateRebalance(ctx context.Context) error {
	switch c.State() {
	case kafka.Starting, kafka.Consuming:
	default:
		return nil
	}
	done := make(chan struct{})
	select {
	case c.rebalance <- done:
	case <-c.closer:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafkatest: SimulateRebalance: %w", ctx.Err())
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafkatest: SimulateRebalance: waiting for handlers to return: %w", ctx.Err())
	}
}

// RegisterHandler implements kafka.IConsumerGroup, with the real rules:
// one handler or batch handler per consumer, and kafka.ErrClosed once Close
// has begun. A handler registered while consuming takes effect from the
// next message, a batch handler from the next rebalance or Start.
func (c *Consumer) RegisterHandler(ctx context.Context, h kafka.Handler) error {
	if h == nil {
		return errors.New("kafkatest: RegisterHandler: nil handler")
	}
	return c.register(ctx, func() { c.handler.Store(&h) })
}

// RegisterBatchHandler implements kafka.IConsumerGroup; see RegisterHandler.
func (c *Consumer) RegisterBatchHandler(ctx context.Context, h kafka.BatchHandler) error {
	if h == nil {
		return errors.New("kafkatest: RegisterBatchHandler: nil handler")
	}
	return c.register(ctx, func() { c.batchHandler.Store(&h) })
}

func (c *Consumer) register(ctx context.Context, store func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-c.closer:
		return kafka.ErrClosed
	default:
	}
	c.registerMu.Lock()
	defer c.registerMu.Unlock()
	if c.handler.Load() != nil || c.batchHandler.Load() != nil {
		return kafka.ErrHandlerRegistered
	}
	store()
	return nil
}

// Start implements kafka.IConsumerGroup: it asks the consumer to consume
// and returns at once.
func (c *Consumer) Start() { c.intents.Set(true) }

// Stop implements kafka.IConsumerGroup: it asks the consumer to stop and
// returns at once. Handlers see their context cancelled; what they had not
// finished is delivered again on the next Start.
func (c *Consumer) Stop() { c.intents.Set(false) }

// StopAndWait implements kafka.IConsumerGroup: it stops consumption and
// waits until in-flight handlers have returned and their messages are
// committed, or returns ctx's error; on a Closing or Closed consumer it
// waits for Close to finish and returns kafka.ErrClosed.
func (c *Consumer) StopAndWait(ctx context.Context) error {
	return stoppedOrClosed(c.states.WaitSettled(ctx, c.intents.Set(false), kafka.Stopped, kafka.Initialising, kafka.Closed))
}

// State implements kafka.IConsumerGroup.
func (c *Consumer) State() kafka.State { return c.states.Get() }

// StateWait implements kafka.IConsumerGroup: nil once in s, kafka.ErrClosed
// once Closing or Closed (unless s is that state), or ctx's error.
func (c *Consumer) StateWait(ctx context.Context, s kafka.State) error {
	return waitState(ctx, c.states, s)
}

// StateEntered implements kafka.IConsumerGroup: the channel is closed the
// next time the consumer enters s.
func (c *Consumer) StateEntered(s kafka.State) <-chan struct{} { return c.states.Entered(s) }

// InState implements kafka.IConsumerGroup: the channel is closed while the
// consumer is in s (a snapshot; see kafka.ConsumerGroup.InState).
func (c *Consumer) InState(s kafka.State) <-chan struct{} { return c.states.In(s) }

// StateChan implements kafka.IConsumerGroup; it is StateEntered.
//
// Deprecated: use StateEntered or InState, as on kafka.ConsumerGroup.
func (c *Consumer) StateChan(s kafka.State) <-chan struct{} { return c.states.Entered(s) }

// Channels implements kafka.IConsumerGroup.
func (c *Consumer) Channels() kafka.ConsumerGroupChannels {
	return kafka.ConsumerGroupChannels{
		Upstream:    c.upstream,
		Errors:      c.errors,
		Initialised: c.initialised,
		Closer:      c.closer,
		Closed:      c.closed,
	}
}

// IsInitialised implements kafka.IConsumerGroup; it is always true.
func (c *Consumer) IsInitialised() bool { return true }

// Initialise implements kafka.IConsumerGroup: the fake has nothing to
// connect to, so it returns nil, or kafka.ErrClosed once Close has begun.
func (c *Consumer) Initialise(context.Context) error {
	select {
	case <-c.closer:
		return kafka.ErrClosed
	default:
		return nil
	}
}

// DroppedErrors implements kafka.IConsumerGroup.
func (c *Consumer) DroppedErrors() uint64 { return c.droppedErrors.Load() }

// Checker implements kafka.IConsumerGroup: OK until Close, CRITICAL after.
func (c *Consumer) Checker(context.Context) kafka.Health {
	select {
	case <-c.closer:
		return kafka.Health{Status: kafka.HealthCritical, Message: "consumer closed", CheckedAt: time.Now()}
	default:
		return kafka.Health{Status: kafka.HealthOK, CheckedAt: time.Now()}
	}
}

// OnHealthChange implements kafka.IConsumerGroup as the real consumer
// does: Start on OK, Stop otherwise, ignoring a result older than the last.
func (c *Consumer) OnHealthChange(h kafka.Health) {
	c.healthMu.Lock()
	defer c.healthMu.Unlock()
	if !h.CheckedAt.IsZero() && h.CheckedAt.Before(c.lastHealth) {
		return
	}
	c.lastHealth = h.CheckedAt
	if h.Status == kafka.HealthOK {
		c.Start()
	} else {
		c.Stop()
	}
}

// Assignment implements kafka.IConsumerGroup: while consuming, every
// partition queued so far, sorted by topic and partition; empty otherwise.
func (c *Consumer) Assignment() []kafka.TopicPartition { return c.assign.Assignment() }

// Pause implements kafka.IConsumerGroup as the real consumer does: the
// partitions' messages are not handled until Resume, while the other
// partitions go on; a handler already running finishes. Pausing a
// partition not queued yet holds it once it is, and pauses outlive
// SimulateRebalance, Stop and Start. After Close it returns kafka.ErrClosed.
func (c *Consumer) Pause(tps ...kafka.TopicPartition) error {
	if c.isClosed() {
		return kafka.ErrClosed
	}
	c.assign.Pause(tps)
	return nil
}

// Resume implements kafka.IConsumerGroup: paused partitions are handled
// again, from the message where they stopped. After Close it returns
// kafka.ErrClosed.
func (c *Consumer) Resume(tps ...kafka.TopicPartition) error {
	if c.isClosed() {
		return kafka.ErrClosed
	}
	c.assign.Resume(tps)
	return nil
}

// Paused implements kafka.IConsumerGroup: the paused partitions, sorted.
func (c *Consumer) Paused() []kafka.TopicPartition { return c.assign.Paused() }

func (c *Consumer) isClosed() bool {
	select {
	case <-c.closer:
		return true
	default:
		return false
	}
}

// tpKey orders partitions for rebalance.Tracker, as the real consumer does.
var tpKey rebalance.Key[kafka.TopicPartition] = func(tp kafka.TopicPartition) (string, int32) {
	return tp.Topic, tp.Partition
}

// Close implements kafka.IConsumerGroup: it cancels the handlers' contexts,
// waits for them to return, then closes Upstream, Errors and Closed. It is
// idempotent. If ctx ends first it returns an error wrapping ctx's and the
// shutdown goes on; Closed tells when it is over. It does not close the
// dead-letter producer given to NewConsumer.
func (c *Consumer) Close(ctx context.Context) error {
	c.closeOnce.Do(func() { close(c.closer) })
	select {
	case <-c.closed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafkatest: closing consumer: %w", ctx.Err())
	}
}

func (c *Consumer) pushError(err error) {
	select {
	case c.errors <- err:
	default:
		c.droppedErrors.Add(1)
		c.log.Error("consumer error dropped: Errors channel full", "error", err)
	}
}

// poke sends on a signal channel of capacity one without blocking: one
// pending signal is as good as many.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
