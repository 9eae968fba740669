package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/cenkalti/backoff/v4"

	"github.com/kafkahub/kafkahub/internal/statemachine"
)

// ErrHandlerRegistered is returned when a handler is registered on a
// consumer that already has one.
var ErrHandlerRegistered = errors.New("kafka: a handler is already registered")

// ConsumerGroup consumes topics as a member of a Kafka consumer group.
//
// Messages reach a Handler (RegisterHandler), a BatchHandler
// (RegisterBatchHandler), or, when neither is registered, the Upstream
// channel. Start and Stop switch consumption on and off; both return at
// once and never wait on the network. One goroutine, owned by the consumer,
// carries out what they ask, in order; State, StateWait, StateEntered and
// InState observe it without taking any lock a caller could hold.
type ConsumerGroup struct {
	cfg  ConsumerGroupConfig
	scfg *sarama.Config
	log  *slog.Logger
	obs  consumerObs

	states *statemachine.Machine[State]

	// intents from Start and Stop: the last one wins.
	intents *statemachine.Intent

	// health updates are applied in CheckedAt order.
	healthMu   sync.Mutex
	lastHealth time.Time

	handler      atomic.Pointer[Handler]
	batchHandler atomic.Pointer[BatchHandler]
	registerMu   sync.Mutex

	workers chan int
	assign  *assignment
	commits *commitSignal // Message.Commit's requests, served by the engine
	dlt     *Producer

	// eng is set once by the controller when it has connected; Checker
	// reads it from other goroutines.
	eng atomic.Pointer[groupEngineRef]

	upstream    chan Message
	errs        *errorSink
	initialised chan struct{}
	closer      chan struct{}
	closed      chan struct{}
	closeOnce   sync.Once
	nudge       chan struct{}         // Initialise cuts the backoff wait short
	lastInit    atomic.Pointer[error] // the last initialisation attempt's error
}

type groupEngineRef struct{ groupEngine }

// ConsumerGroupChannels are the channels of a ConsumerGroup.
type ConsumerGroupChannels struct {
	// Upstream delivers messages when no handler is registered. The user
	// must Release each one. The consumer closes it when Close has
	// finished with every session, so ranging over it ends.
	Upstream <-chan Message
	// Errors reports *HandlerError values and errors from the group
	// (joining, fetching, committing). The consumer closes it when Close
	// has finished. Reading it is optional: when its buffer is full,
	// errors are logged and dropped.
	Errors <-chan error
	// Initialised is closed by the consumer once it has connected.
	Initialised <-chan struct{}
	// Closer is closed by the consumer when Close begins.
	Closer <-chan struct{}
	// Closed is closed by the consumer when Close has finished.
	Closed <-chan struct{}
}

// NewConsumerGroup validates cfg and returns a consumer in state
// Initialising. It makes one attempt to connect, bounded by ctx; if the
// cluster is unreachable it keeps trying in the background with exponential
// backoff until it succeeds or is closed. Call Start to consume. Only an
// invalid config is an error (it matches ErrInvalidConfig).
func NewConsumerGroup(ctx context.Context, cfg *ConsumerGroupConfig) (*ConsumerGroup, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	scfg, err := c.saramaConfig()
	if err != nil {
		return nil, err
	}
	g := &ConsumerGroup{
		cfg:         c,
		scfg:        scfg,
		log:         c.Logger.With("component", "kafka.consumer", "group", c.GroupName),
		states:      newStateMachine(),
		intents:     statemachine.NewIntent(),
		workers:     make(chan int, c.NumWorkers),
		commits:     newCommitSignal(),
		assign:      newAssignment(c.OnAssigned, c.OnRevoked, c.Logger),
		upstream:    make(chan Message, c.UpstreamBufferSize),
		initialised: make(chan struct{}),
		closer:      make(chan struct{}),
		closed:      make(chan struct{}),
		nudge:       make(chan struct{}, 1),
	}
	if g.obs, err = newConsumerObs(g); err != nil {
		return nil, err
	}
	g.errs = newErrorSink(c.ErrorsBufferSize, g.log)
	for i := range c.NumWorkers {
		g.workers <- i
	}
	if c.DeadLetterTopic != "" {
		// Constructing a producer does no I/O beyond a first attempt,
		// which a zero-time context skips; it connects in the background.
		g.dlt, err = NewProducer(expired(), &ProducerConfig{
			BrokerAddrs: c.BrokerAddrs, Topic: c.DeadLetterTopic, Engine: c.Engine, KafkaVersion: c.KafkaVersion,
			ClientID: c.ClientID, MinRetryPeriod: c.MinRetryPeriod, MaxRetryPeriod: c.MaxRetryPeriod,
			DialTimeout: c.DialTimeout, SecurityConfig: c.SecurityConfig, Logger: c.Logger,
			Telemetry: c.Telemetry,
		})
		if err != nil {
			g.obs.close()
			return nil, fmt.Errorf("kafka: dead-letter producer: %w", err)
		}
	}
	firstAttempt := make(chan struct{})
	go g.run(firstAttempt)
	select {
	case <-firstAttempt:
	case <-ctx.Done():
	}
	return g, nil
}

func expired() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// RegisterHandler sets the handler that processes each message. Register
// before Start; a handler registered while consuming takes effect from the
// next rebalance. It returns ErrHandlerRegistered if a handler or batch
// handler is already registered, and ErrClosed once Close has begun.
func (g *ConsumerGroup) RegisterHandler(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("kafka: RegisterHandler: nil handler")
	}
	return g.register(ctx, func() { g.handler.Store(&h) })
}

// RegisterBatchHandler sets the handler that processes batches of up to
// BatchSize messages of one partition, flushed when full or BatchWaitTime
// after their first message. The rules of RegisterHandler apply.
func (g *ConsumerGroup) RegisterBatchHandler(ctx context.Context, h BatchHandler) error {
	if h == nil {
		return errors.New("kafka: RegisterBatchHandler: nil handler")
	}
	return g.register(ctx, func() { g.batchHandler.Store(&h) })
}

func (g *ConsumerGroup) register(ctx context.Context, store func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if isClosed(g.closer) {
		return ErrClosed
	}
	g.registerMu.Lock()
	defer g.registerMu.Unlock()
	if g.handler.Load() != nil || g.batchHandler.Load() != nil {
		return ErrHandlerRegistered
	}
	store()
	return nil
}

// Start asks the consumer to join the group and consume. It returns at once.
// While Initialising, the consumer starts as soon as it has connected.
// After Close it does nothing.
func (g *ConsumerGroup) Start() { g.intents.Set(true) }

// Stop asks the consumer to stop consuming and leave the group. It returns
// at once: handlers see their context cancelled, finish, their offsets are
// committed, and the state becomes Stopped. While Initialising, it cancels
// an earlier Start. After Close it does nothing.
func (g *ConsumerGroup) Stop() { g.intents.Set(false) }

// StopAndWait stops consumption and waits until it has stopped: in-flight
// handlers have returned and their offsets are committed. It returns ctx's
// error if ctx ends first, and nil at once if the consumer is initialising
// (nothing is in flight). On a Closing consumer it waits for Close to
// finish (handlers returned, offsets committed) and, like on a Closed one,
// returns ErrClosed: nil never stands for a consumer that cannot be
// started again.
func (g *ConsumerGroup) StopAndWait(ctx context.Context) error {
	return stoppedOrClosed(g.states.WaitSettled(ctx, g.intents.Set(false), Stopped, Initialising, Closed))
}

// State returns the current state. It never blocks on the consumer's work.
func (g *ConsumerGroup) State() State { return g.states.Get() }

// StateWait returns nil once the consumer is in state s, ErrClosed once it
// is Closing or Closed (s can no longer be reached, unless s is that very
// state), or ctx's error.
func (g *ConsumerGroup) StateWait(ctx context.Context, s State) error {
	return g.states.WaitForOr(ctx, s, ErrClosed, Closing, Closed)
}

// StateChan is StateEntered: a channel closed the next time the consumer
// enters s, not while it is in s.
//
// Deprecated: the name hides which of two meanings it has. Use
// StateEntered for this one, or InState for dp-kafka's (closed while the
// consumer is in s).
func (g *ConsumerGroup) StateChan(s State) <-chan struct{} { return g.states.Entered(s) }

// Channels returns the consumer's channels.
func (g *ConsumerGroup) Channels() ConsumerGroupChannels {
	return ConsumerGroupChannels{
		Upstream:    g.upstream,
		Errors:      g.errs.ch,
		Initialised: g.initialised,
		Closer:      g.closer,
		Closed:      g.closed,
	}
}

// IsInitialised reports whether the consumer has connected to the cluster.
func (g *ConsumerGroup) IsInitialised() bool {
	select {
	case <-g.initialised:
		return true
	default:
		return false
	}
}

// DroppedErrors returns how many errors were dropped because the Errors
// channel was full.
func (g *ConsumerGroup) DroppedErrors() uint64 { return g.errs.dropped.Load() }

func (g *ConsumerGroup) pushError(err error) { g.errs.push(err) }

// Checker reports health: CRITICAL when fewer than MinBrokersHealthy brokers
// answer (or the consumer is closed), WARNING when they answer but a topic
// is missing, OK otherwise. ctx bounds it.
func (g *ConsumerGroup) Checker(ctx context.Context) Health {
	select {
	case <-g.closer:
		return Health{Status: HealthCritical, Message: "consumer closed", CheckedAt: time.Now()}
	default:
	}
	var eng groupEngine
	if r := g.eng.Load(); r != nil {
		eng = r.groupEngine
	}
	addrs := knownBrokers(eng, g.cfg.BrokerAddrs)
	return checkHealth(ctx, addrs, g.scfg, g.cfg.Topics, g.cfg.MinBrokersHealthy)
}

// OnHealthChange starts consumption on an OK health result and stops it on
// WARNING or CRITICAL, so a health checker can subscribe the consumer to the
// cluster's health. Results are applied in CheckedAt order: one older than
// the last applied is ignored, so out-of-order deliveries cannot leave the
// consumer in the wrong state.
func (g *ConsumerGroup) OnHealthChange(h Health) {
	g.healthMu.Lock()
	defer g.healthMu.Unlock()
	if !h.CheckedAt.IsZero() && h.CheckedAt.Before(g.lastHealth) {
		return
	}
	g.lastHealth = h.CheckedAt
	if h.Status == HealthOK {
		g.Start()
	} else {
		g.Stop()
	}
}

// Close stops consuming, waits for in-flight handlers, commits their
// offsets, leaves the group, closes the connections and finally closes
// Upstream, Errors and Closed. It is idempotent and safe to call
// concurrently. If ctx ends first it returns ctx's error and the shutdown
// goes on in the background; Closed tells when it is over.
func (g *ConsumerGroup) Close(ctx context.Context) error {
	g.closeOnce.Do(func() { close(g.closer) })
	select {
	case <-g.closed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka: closing consumer group: %w", ctx.Err())
	}
}

// run is the controller: the only goroutine that changes the state or
// touches the Sarama client and group. It exits after Close.
func (g *ConsumerGroup) run(firstAttempt chan struct{}) {
	defer g.finish()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-g.closer:
			cancel()
		case <-ctx.Done():
		}
	}()

	err := retryInit(ctx, g.cfg.MinRetryPeriod, g.cfg.MaxRetryPeriod, g.nudge, g.log,
		func() { close(firstAttempt) }, func() error {
			err := g.connectObserved()
			g.lastInit.Store(&err)
			return err
		})
	if err != nil {
		return // closed while initialising
	}
	// Stopped before initialised: Initialise returning nil promises the
	// state has left Initialising.
	g.states.Set(Stopped)
	close(g.initialised)
	g.log.Info("consumer group initialised", "topics", g.cfg.Topics)

	for {
		want, seq := g.intents.Get()
		if !want {
			g.states.Settle(seq)
			select {
			case <-g.intents.Wake():
				continue
			case <-g.closer:
				return
			}
		}
		if closing := g.consume(); closing {
			return
		}
	}
}

// connect is one initialisation attempt.
func (g *ConsumerGroup) connect() error {
	eng, err := newGroupEngine(g)
	if err != nil {
		return explainAuth(g.cfg.SecurityConfig, err)
	}
	g.eng.Store(&groupEngineRef{eng})
	return nil
}

// consume runs one period of consumption, from Start to Stop or Close. It
// reports whether the consumer is closing.
func (g *ConsumerGroup) consume() (closing bool) {
	g.states.Set(Starting)
	g.obs.joining()
	eng := g.eng.Load().groupEngine
	periodCtx, cancelPeriod := context.WithCancel(context.Background())
	periodDone := make(chan struct{})
	go func() {
		defer close(periodDone)
		eng.consume(periodCtx)
	}()

	for !closing {
		select {
		case <-g.closer:
			closing = true
		case <-g.intents.Wake():
		}
		if want, _ := g.intents.Get(); !want {
			break
		}
	}
	if closing {
		g.states.Set(Closing)
	} else {
		g.states.Set(Stopping)
	}
	cancelPeriod()
	<-periodDone
	if !closing {
		g.states.Set(Stopped)
	}
	g.log.Info("consumption stopped", "closing", closing)
	return closing
}

// assigned is the engines' report that tps were assigned to this member:
// it is consuming.
func (g *ConsumerGroup) assigned(ctx context.Context, tps []TopicPartition, generation int32) {
	g.states.Transition(Starting, Consuming)
	g.log.Info("partitions assigned", "partitions", tps, "generation", generation)
	g.obs.assigned(tps, generation)
	g.assign.assigned(ctx, tps)
}

// revoked is the engines' report that tps were taken away, their handlers
// returned and their marks committed.
func (g *ConsumerGroup) revoked(ctx context.Context, tps []TopicPartition) {
	g.log.Info("partitions revoked", "partitions", tps)
	g.obs.revoked(tps)
	g.assign.revoked(ctx, tps)
}

// rebalancing is the engines' report that the member is rejoining the group
// (a rebalance, or a retry after an error).
func (g *ConsumerGroup) rebalancing() {
	g.states.Transition(Consuming, Starting)
	g.obs.joining()
}

// joinBackoff paces an engine's attempts to rejoin after errors.
func (g *ConsumerGroup) joinBackoff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(g.cfg.MinRetryPeriod),
		backoff.WithMaxInterval(g.cfg.MaxRetryPeriod),
		backoff.WithMaxElapsedTime(0),
	)
}

func (g *ConsumerGroup) acquireWorker(ctx context.Context) (int, bool) {
	select {
	case id := <-g.workers:
		return id, true
	case <-ctx.Done():
		return 0, false
	}
}

func (g *ConsumerGroup) releaseWorker(id int) { g.workers <- id }

// finish releases everything once the controller is done.
func (g *ConsumerGroup) finish() {
	g.states.Set(Closing)
	if r := g.eng.Load(); r != nil {
		if err := r.close(); err != nil {
			g.log.Warn("closing client", "error", err)
		}
	}
	if g.dlt != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := g.dlt.Close(ctx); err != nil {
			g.log.Warn("closing dead-letter producer", "error", err)
		}
		cancel()
		<-g.dlt.Channels().Closed
	}
	close(g.upstream)
	close(g.errs.ch)
	g.states.Set(Closed)
	g.obs.close()
	close(g.closed)
	g.log.Info("consumer group closed")
}
