package kafka

import (
	"context"
	"time"

	"github.com/kafkahub/kafkahub/internal/handling"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry says what a Producer or ConsumerGroup reports about its work:
// OpenTelemetry traces, Prometheus metrics and hooks of the user's own
// (docs/OBSERVABILITY.md lists the spans, attributes and metrics). The zero
// value traces through the OpenTelemetry globals, which record nothing until
// the application installs an SDK, and exports no metric.
type Telemetry struct {
	// TracerProvider makes the producer's send spans and the consumer's
	// process spans. Default: otel.GetTracerProvider() when the producer
	// or consumer is created (a global set later is still used).
	TracerProvider trace.TracerProvider
	// Propagator writes the trace context into record headers (W3C
	// traceparent, tracestate and baggage with the usual propagator) and
	// reads it back. Default: otel.GetTextMapPropagator(), which does
	// nothing until the application sets one.
	Propagator propagation.TextMapPropagator
	// DisableTracing turns spans and trace-context headers off: no span is
	// started and no header is read or written.
	DisableTracing bool
	// Registerer receives the metrics. Nil: no metrics. Producers and
	// consumers sharing one Registerer share its collectors, so several
	// of them in one process add up instead of colliding.
	Registerer prometheus.Registerer
}

// ProducerHooks are functions a Producer calls at points of a record's life,
// for instrumentation of the user's own; the producer's tracing and metrics
// are built from the same hooks. A nil function is skipped. Hooks run on the
// producer's goroutines: they must be quick and must not block or panic.
type ProducerHooks struct {
	// OnInitialise is called after each connection attempt with its error
	// (nil: connected), on the producer's initialisation goroutine.
	OnInitialise func(err error)
	// OnSend is called once a record's topic is final, just before it is
	// handed to the client, on the producer's intake goroutine. ctx is
	// Send's context, msg.Context for records sent on Output, or
	// context.Background(). The context it returns is given to the next
	// hook, written into the record's headers through the propagator, and
	// given to OnDelivered.
	OnSend func(ctx context.Context, topic string, msg *ProducerMessage) context.Context
	// OnDelivered is called exactly once for each record OnSend saw, with
	// the context OnSend returned, the outcome and the time since OnSend
	// (zero when no hook asked for timing: see ProducerConfig.Hooks). It
	// runs on a goroutine of the client (the intake goroutine for records
	// refused as too large), before the record's own delivery report.
	OnDelivered func(ctx context.Context, d Delivery, elapsed time.Duration)
}

// ConsumerHooks are functions a ConsumerGroup calls as it consumes, for
// instrumentation of the user's own; the consumer's tracing and metrics are
// built from the same hooks. A nil function is skipped. Hooks must be quick
// and must not block or panic.
type ConsumerHooks struct {
	// OnInitialise is called after each connection attempt with its error
	// (nil: connected), on the consumer's controller goroutine.
	OnInitialise func(err error)
	// OnJoining is called when the member starts joining the group: at
	// Start and when a rebalance (or an error) ends an assignment. It runs
	// on the controller or the client's rebalance goroutine.
	OnJoining func()
	// OnAssigned and OnRevoked are called on the client's rebalance
	// goroutine next to ConsumerGroupConfig.OnAssigned and OnRevoked.
	OnAssigned func(tps []TopicPartition, generation int32)
	OnRevoked  func(tps []TopicPartition)
	// OnHandle is called on the worker's goroutine before a handler (or
	// batch handler) is first called for msgs: one message, or a batch of
	// one partition. The context it returns is given to the next hook,
	// then to the handler, then to OnAttempt, OnRetry and OnHandled. For
	// a single message ctx is the message's context (with the trace
	// context of its headers); for a batch it is the first message's.
	OnHandle func(ctx context.Context, msgs []Message) context.Context
	// OnAttempt is called after each handler call with its duration and
	// error (a panic is an error wrapping ErrHandlerPanic).
	OnAttempt func(ctx context.Context, msgs []Message, attempt int, elapsed time.Duration, err error)
	// OnRetry is called when a failed attempt will be retried after wait.
	OnRetry func(ctx context.Context, msgs []Message, attempt int, wait time.Duration, err error)
	// OnHandled is called on the worker's goroutine once the consumer is
	// done with msgs, before their offsets are marked (OnMarked follows
	// for a record that is committed).
	OnHandled func(ctx context.Context, msgs []Message, o HandleOutcome)
	// OnMarked is called on the worker's goroutine when the offset of the
	// last of count messages of a partition is marked for commit, with the
	// partition's high watermark as last fetched (-1: unknown): their
	// difference is the partition's lag, known without a request.
	OnMarked func(tp TopicPartition, offset, highWater int64, count int)
	// OnCommit is called on the client's goroutine after it has committed
	// the marked offsets on request (Message.Commit, a rebalance, Stop,
	// Close). Periodic commits (CommitInterval) are not reported.
	OnCommit func()
}

// HandleOutcome is how the consumer finished with a message or batch.
type HandleOutcome struct {
	Attempts int
	// Err is the handler's last error; nil when it succeeded.
	Err error
	// DeadLettered: after Err, the messages went to the dead-letter topic.
	DeadLettered bool
	// Interrupted: a rebalance, Stop or Close ended the handling before
	// it succeeded; the messages are not committed.
	Interrupted bool
	// NoCommit: the handler returned a NoCommit error (Err); the messages
	// are not marked for commit.
	NoCommit bool
}

// producerObs is the list of a producer's hooks, built once.
type producerObs struct {
	hooks  []ProducerHooks
	timed  bool // a hook needs the time since OnSend
	tracer *tracing
	// onlyTracing: the tracing hook is the only one, so nothing is owed
	// to any hook while tracing is inactive.
	onlyTracing bool
}

func newProducerObs(c ProducerConfig) (producerObs, error) {
	var o producerObs
	if !c.Telemetry.DisableTracing {
		o.tracer = newTracing(c.Telemetry, "")
		o.hooks = append(o.hooks, o.tracer.producerHooks(c.Topic))
	}
	if c.Telemetry.Registerer != nil {
		m, err := newProducerMetrics(c.Telemetry.Registerer)
		if err != nil {
			return o, err
		}
		o.hooks = append(o.hooks, m.hooks())
		o.timed = true
	}
	for _, h := range c.Hooks {
		o.hooks = append(o.hooks, h)
		o.timed = o.timed || h.OnDelivered != nil
	}
	o.onlyTracing = o.tracer != nil && len(o.hooks) == 1
	return o, nil
}

func (o *producerObs) initialise(err error) {
	for _, h := range o.hooks {
		if h.OnInitialise != nil {
			h.OnInitialise(err)
		}
	}
}

// send runs OnSend and writes the resulting trace context into env's
// headers. Only the intake goroutine calls it.
func (o *producerObs) send(env *envelope) {
	if len(o.hooks) == 0 || o.onlyTracing && !o.tracer.active() {
		return
	}
	ctx := env.ctx
	if ctx == nil {
		ctx = env.msg.Context
		if ctx == nil {
			ctx = context.Background()
		}
	}
	for _, h := range o.hooks {
		if h.OnSend != nil {
			ctx = h.OnSend(ctx, env.topic, env.msg)
		}
	}
	env.ctx, env.sent = ctx, true
	if o.timed {
		env.start = time.Now()
	}
	if o.tracer != nil {
		env.headers = o.tracer.inject(ctx, env.headers)
	}
}

// delivered runs OnDelivered for a record send saw.
func (o *producerObs) delivered(env *envelope, d Delivery) {
	if !env.sent {
		return
	}
	var elapsed time.Duration
	if o.timed {
		elapsed = time.Since(env.start)
	}
	for _, h := range o.hooks {
		if h.OnDelivered != nil {
			h.OnDelivered(env.ctx, d, elapsed)
		}
	}
}

// connectObserved is one initialisation attempt, reported to the hooks.
func (p *Producer) connectObserved() error {
	err := p.connect()
	p.obs.initialise(err)
	return err
}

// consumerObs is the list of a consumer's hooks, built once.
type consumerObs struct {
	hooks  []ConsumerHooks
	handle bool // some hook observes handler calls
	marked bool // some hook wants OnMarked
	tracer *tracing
	// handleTracingOnly: tracing is the only hook observing handler
	// calls, so none is owed anything while tracing is inactive.
	handleTracingOnly bool
	state             *stateCollector // unregistered when the consumer finishes
	reg               prometheus.Registerer
}

func newConsumerObs(g *ConsumerGroup) (consumerObs, error) {
	c := g.cfg
	var o consumerObs
	if !c.Telemetry.DisableTracing {
		o.tracer = newTracing(c.Telemetry, c.GroupName)
		o.hooks = append(o.hooks, o.tracer.consumerHooks())
	}
	if c.Telemetry.Registerer != nil {
		m, err := newConsumerMetrics(c.Telemetry.Registerer, c.GroupName)
		if err != nil {
			return o, err
		}
		o.hooks = append(o.hooks, m.hooks())
		o.reg = c.Telemetry.Registerer
		o.state = registerState(o.reg, c.GroupName, g.State)
	}
	o.hooks = append(o.hooks, c.Hooks...)
	handlers := 0
	for _, h := range o.hooks {
		if h.OnHandle != nil || h.OnAttempt != nil || h.OnRetry != nil || h.OnHandled != nil {
			handlers++
		}
		o.marked = o.marked || h.OnMarked != nil
	}
	o.handle = handlers > 0
	o.handleTracingOnly = o.tracer != nil && handlers == 1
	return o, nil
}

func (o *consumerObs) each(f func(h *ConsumerHooks)) {
	for i := range o.hooks {
		f(&o.hooks[i])
	}
}

func (o *consumerObs) initialise(err error) {
	o.each(func(h *ConsumerHooks) {
		if h.OnInitialise != nil {
			h.OnInitialise(err)
		}
	})
}

func (o *consumerObs) joining() {
	o.each(func(h *ConsumerHooks) {
		if h.OnJoining != nil {
			h.OnJoining()
		}
	})
}

func (o *consumerObs) assigned(tps []TopicPartition, generation int32) {
	o.each(func(h *ConsumerHooks) {
		if h.OnAssigned != nil {
			h.OnAssigned(tps, generation)
		}
	})
}

func (o *consumerObs) revoked(tps []TopicPartition) {
	o.each(func(h *ConsumerHooks) {
		if h.OnRevoked != nil {
			h.OnRevoked(tps)
		}
	})
}

func (o *consumerObs) committed() {
	o.each(func(h *ConsumerHooks) {
		if h.OnCommit != nil {
			h.OnCommit()
		}
	})
}

// close unregisters what describes this consumer alone (its state).
func (o *consumerObs) close() {
	if o.state != nil {
		o.reg.Unregister(o.state)
	}
}

// handlerRun is one handler run (all its attempts) as the hooks see it.
type handlerRun struct {
	o       *consumerObs
	on      bool // the hooks observe this run
	attempt int
	ctx     context.Context
	msgs    []Message
}

// startHandling runs OnHandle for msgs and returns the run; its ctx is the
// handler's. base is the handler's context without hooks.
func (o *consumerObs) startHandling(base context.Context, msgs []*groupMessage) handlerRun {
	h := handlerRun{o: o, ctx: base}
	h.on = o.handle && !(o.handleTracingOnly && !o.tracer.active())
	if !h.on {
		return h
	}
	h.msgs = make([]Message, len(msgs))
	for i, m := range msgs {
		h.msgs[i] = m
	}
	for i := range o.hooks {
		if f := o.hooks[i].OnHandle; f != nil {
			h.ctx = f(h.ctx, h.msgs)
		}
	}
	if len(msgs) == 1 {
		// Message.Context is the handler's context: what the handler
		// starts from either continues the process span.
		msgs[0].ctx = h.ctx
	}
	return h
}

// call runs one attempt of the handler, observed by OnAttempt.
func (h *handlerRun) call(handler func(context.Context) error) error {
	if !h.on {
		return handler(h.ctx)
	}
	h.attempt++
	start := time.Now()
	err := handling.Safely(func() error { return handler(h.ctx) })
	elapsed := time.Since(start)
	for i := range h.o.hooks {
		if f := h.o.hooks[i].OnAttempt; f != nil {
			f(h.ctx, h.msgs, h.attempt, elapsed, err)
		}
	}
	return err
}

func (h *handlerRun) retry(attempt int, wait time.Duration, err error) {
	if !h.on {
		return
	}
	for i := range h.o.hooks {
		if f := h.o.hooks[i].OnRetry; f != nil {
			f(h.ctx, h.msgs, attempt, wait, err)
		}
	}
}

func (h *handlerRun) done(o HandleOutcome) {
	if !h.on {
		return
	}
	for i := range h.o.hooks {
		if f := h.o.hooks[i].OnHandled; f != nil {
			f(h.ctx, h.msgs, o)
		}
	}
}

// observeMark reports a mark to OnMarked: the last of count messages of
// c's partition, at offset, is marked.
func observeMark[R any](g *ConsumerGroup, c claim[R], offset int64, count int) {
	if !g.obs.marked {
		return
	}
	tp, hw := TopicPartition{c.topic(), c.partition()}, c.highWater()
	for i := range g.obs.hooks {
		if f := g.obs.hooks[i].OnMarked; f != nil {
			f(tp, offset, hw, count)
		}
	}
}

// newMessage makes the Message for r, its context carrying the trace
// context of its headers.
func (g *ConsumerGroup) newMessage(ctx context.Context, c marker, r record) *groupMessage {
	m := newGroupMessage(ctx, c, r, g.commits, g.cfg.TraceHeader)
	if g.obs.tracer != nil && len(m.rec.headers) > 0 {
		m.ctx = g.obs.tracer.extract(m.ctx, m.rec.headers)
	}
	return m
}

// commitDone is the engines' report that they committed the marked offsets
// on request (Message.Commit, a rebalance, Stop, Close).
func (g *ConsumerGroup) commitDone() { g.obs.committed() }

// connectObserved is one initialisation attempt, reported to the hooks.
func (g *ConsumerGroup) connectObserved() error {
	err := g.connect()
	g.obs.initialise(err)
	return err
}
