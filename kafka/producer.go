package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
)

// Producer sends records to Kafka.
//
// Create one with NewProducer; it is safe for concurrent use. Records go in
// through Send, which waits for Kafka's acknowledgement, or through the
// Output channel, which does not. Close flushes and releases everything.
type Producer struct {
	cfg  ProducerConfig
	scfg *sarama.Config // the Sarama engine's settings; health checks use them on every engine
	log  *slog.Logger
	obs  producerObs

	output      chan *ProducerMessage
	in          chan *envelope
	errs        *errorSink
	initialised chan struct{}
	closer      chan struct{}
	closed      chan struct{}
	nudge       chan struct{}

	// mu guards the fields below. It is never held during network I/O or
	// a blocking channel operation.
	mu       sync.Mutex
	eng      producerEngine // set once by the successful connect
	lastInit error

	defaultHeaders atomic.Pointer[[]Header]

	stopInit  context.CancelFunc
	initDone  chan struct{} // closed when the initialisation goroutine exits
	intakeEnd chan struct{} // closed when intake has closed the engine
	closeOnce sync.Once
}

// ProducerChannels are the channels of a Producer.
type ProducerChannels struct {
	// Output takes records to produce without waiting for them. Users send
	// on it; nobody ever closes it. Before initialisation records wait in
	// its buffer; after Close nothing reads it, so select on Closer too.
	// Failures of records without OnDelivery are reported on Errors.
	Output chan<- *ProducerMessage
	// Errors reports failed deliveries (*ProducerError) of records that
	// have no OnDelivery callback. The producer closes it when Close has
	// finished. Reading it is optional: when its buffer is full, further
	// errors are logged and dropped.
	Errors <-chan error
	// Initialised is closed by the producer once it has connected.
	Initialised <-chan struct{}
	// Closer is closed by the producer when Close begins.
	Closer <-chan struct{}
	// Closed is closed by the producer when Close has finished: every
	// accepted record has been delivered or reported as failed, and every
	// goroutine has exited.
	Closed <-chan struct{}
}

// NewProducer validates cfg and returns a producer. It makes one attempt to
// connect, bounded by ctx; if the cluster is unreachable it still returns a
// usable producer that keeps connecting in the background with exponential
// backoff until it succeeds or is closed. Only an invalid config is an
// error (it matches ErrInvalidConfig).
func NewProducer(ctx context.Context, cfg *ProducerConfig) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	scfg, err := c.saramaConfig()
	if err != nil {
		return nil, err
	}
	p := &Producer{
		cfg:         c,
		scfg:        scfg,
		log:         c.Logger.With("component", "kafka.producer", "topic", c.Topic),
		output:      make(chan *ProducerMessage, c.OutputBufferSize),
		in:          make(chan *envelope),
		initialised: make(chan struct{}),
		closer:      make(chan struct{}),
		closed:      make(chan struct{}),
		nudge:       make(chan struct{}, 1),
		initDone:    make(chan struct{}),
		intakeEnd:   make(chan struct{}),
	}
	if p.obs, err = newProducerObs(c); err != nil {
		return nil, err
	}
	p.errs = newErrorSink(c.ErrorsBufferSize, p.log)
	empty := []Header{}
	p.defaultHeaders.Store(&empty)

	initCtx, cancel := context.WithCancel(context.Background())
	p.stopInit = cancel
	firstAttempt := make(chan struct{})
	go func() {
		defer close(p.initDone)
		_ = retryInit(initCtx, c.MinRetryPeriod, c.MaxRetryPeriod, p.nudge, p.log,
			func() { close(firstAttempt) }, p.connectObserved)
	}()
	select {
	case <-firstAttempt:
	case <-ctx.Done():
	}
	return p, nil
}

// connect is one initialisation attempt.
func (p *Producer) connect() error {
	eng, err := newProducerEngine(p)
	if err != nil {
		err = explainAuth(p.cfg.SecurityConfig, err)
		p.setInitErr(err)
		return err
	}
	p.mu.Lock()
	p.eng, p.lastInit = eng, nil
	p.mu.Unlock()

	go p.intake(eng)
	close(p.initialised)
	p.log.Info("producer initialised", "brokers", p.cfg.BrokerAddrs, "engine", p.cfg.Engine)
	return nil
}

func (p *Producer) setInitErr(err error) {
	p.mu.Lock()
	p.lastInit = err
	p.mu.Unlock()
}

// intake forwards records to the engine until Close begins, then flushes
// what Output still holds and closes the engine, which reports every record
// it accepted before returning.
func (p *Producer) intake(eng producerEngine) {
	defer close(p.intakeEnd)
	for {
		select {
		case m := <-p.output:
			p.dispatch(eng, envelope{msg: m})
			// Drain what Output already holds with cheap non-blocking
			// receives instead of a three-way select per record.
		burst:
			for range 255 {
				select {
				case m := <-p.output:
					p.dispatch(eng, envelope{msg: m})
				default:
					break burst
				}
			}
		case env := <-p.in:
			p.dispatch(eng, *env)
		case <-p.closer:
			for {
				select {
				case m := <-p.output:
					p.dispatch(eng, envelope{msg: m})
					continue
				default:
				}
				break
			}
			eng.close()
			return
		}
	}
}

// dispatch completes env (topic, headers) and hands it to the engine, or
// fails it when it is too large.
func (p *Producer) dispatch(eng producerEngine, env envelope) {
	m := env.msg
	if m == nil {
		p.log.Error("nil *ProducerMessage sent on Output: ignored")
		return
	}
	env.topic = orDefault(m.Topic, p.cfg.Topic)
	env.headers = p.headers(m, env.trace)
	p.obs.send(&env)
	// Checked here rather than left to the engine, which may report it as
	// a configuration error that callers cannot tell apart from others.
	if size := recordByteSize(m.Key, m.Value, env.headers); size > p.cfg.MaxMessageBytes {
		p.fail(&env, fmt.Errorf("%w: %d bytes > MaxMessageBytes %d", ErrMessageTooLarge, size, p.cfg.MaxMessageBytes))
		return
	}
	eng.produce(env)
}

// headers returns the record's headers: the defaults it does not override,
// its own, then the trace header. Without defaults or a trace id it returns
// m.Headers itself, allocating nothing.
func (p *Producer) headers(m *ProducerMessage, trace string) []Header {
	defaults := *p.defaultHeaders.Load()
	if len(defaults) == 0 && trace == "" {
		return m.Headers
	}
	hs := make([]Header, 0, len(defaults)+len(m.Headers)+1)
	for _, h := range defaults {
		if !hasHeader(m.Headers, h.Key) {
			hs = append(hs, h)
		}
	}
	hs = append(hs, m.Headers...)
	if trace != "" && !hasHeader(m.Headers, p.cfg.TraceHeader) {
		hs = append(hs, Header{Key: p.cfg.TraceHeader, Value: []byte(trace)})
	}
	return hs
}

// recordByteSize is a record's largest encoded size in a v2 record batch:
// the bound Kafka's message.max.bytes applies to, counted as the Java
// client and Sarama count it.
func recordByteSize(key, value []byte, headers []Header) int {
	const recordOverhead = 5*binary.MaxVarintLen32 + binary.MaxVarintLen64 + 1
	size := recordOverhead + len(key) + len(value)
	for _, h := range headers {
		size += len(h.Key) + len(h.Value) + 2*binary.MaxVarintLen32
	}
	return size
}

func hasHeader(hs []Header, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}

// delivered is the engines' report of one record: acknowledged at
// partition/offset when err is nil. Engines call it exactly once per record
// given to produce, from their own goroutines.
func (p *Producer) delivered(env *envelope, partition int32, offset int64, err error) {
	if err != nil {
		p.fail(env, err)
		return
	}
	p.report(env, Delivery{Message: env.msg, Topic: env.topic, Partition: partition, Offset: offset})
}

// fail reports a record that will not be delivered.
func (p *Producer) fail(env *envelope, err error) {
	perr := &ProducerError{Topic: env.topic, Msg: env.msg, Err: err}
	p.report(env, Delivery{Message: env.msg, Topic: env.topic, Partition: -1, Offset: -1, Err: perr})
	if env.deliver == nil && env.msg.OnDelivery == nil {
		p.pushError(perr)
	}
}

func (p *Producer) report(env *envelope, d Delivery) {
	p.obs.delivered(env, d)
	if env.deliver != nil {
		env.deliver(d)
	}
	if env.msg.OnDelivery != nil {
		env.msg.OnDelivery(d)
	}
}

func (p *Producer) pushError(err error) { p.errs.push(err) }

// Send produces msg and waits until Kafka has acknowledged it (with the
// configured RequiredAcks) or ctx ends. It returns nil on acknowledgement,
// a *ProducerError if Kafka rejected the record or retries ran out, ErrClosed
// after Close, and an error wrapping ErrNotInitialised and ctx.Err() if ctx
// ends before the producer has connected. If ctx ends after the record was
// handed to Kafka, Send returns ctx.Err() and the record may still be
// delivered.
//
// The trace id of ctx (see ProducerConfig.TraceIDFunc) is added as a header.
func (p *Producer) Send(ctx context.Context, msg *ProducerMessage) error {
	if msg == nil {
		return errors.New("kafka: Send: nil message")
	}
	select {
	case <-p.closer:
		return ErrClosed
	default:
	}
	select {
	case <-p.initialised:
	case <-p.closer:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotInitialised, ctx.Err())
	}
	done := make(chan Delivery, 1)
	env := &envelope{msg: msg, deliver: func(d Delivery) { done <- d }, trace: p.traceID(ctx), ctx: ctx}
	select {
	case p.in <- env:
	case <-p.closer:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case d := <-done:
		return d.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// traceID shields the producer from a user TraceIDFunc that panics.
func (p *Producer) traceID(ctx context.Context) (id string) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("TraceIDFunc panicked; no trace header added", "panic", r)
			id = ""
		}
	}()
	return p.cfg.TraceIDFunc(ctx)
}

// Channels returns the producer's channels.
func (p *Producer) Channels() ProducerChannels {
	return ProducerChannels{
		Output:      p.output,
		Errors:      p.errs.ch,
		Initialised: p.initialised,
		Closer:      p.closer,
		Closed:      p.closed,
	}
}

// IsInitialised reports whether the producer has connected to the cluster.
func (p *Producer) IsInitialised() bool {
	select {
	case <-p.initialised:
		return true
	default:
		return false
	}
}

// Initialise waits until the producer has connected, cutting short the
// current backoff wait so that an attempt is made now. It returns nil once
// initialised, ErrClosed once Close has begun (every time, even if the
// producer had connected), or an error wrapping ErrNotInitialised,
// ctx.Err() and the last connection error.
func (p *Producer) Initialise(ctx context.Context) error {
	return waitInitialised(ctx, p.nudge, p.initialised, p.closer, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.lastInit
	})
}

// SetDefaultHeader sets a header added to every record that does not carry
// a header with the same key. It is safe to call concurrently with sends.
func (p *Producer) SetDefaultHeader(key string, value []byte) {
	p.updateDefaults(func(hs []Header) []Header {
		out := make([]Header, 0, len(hs)+1)
		for _, h := range hs {
			if h.Key != key {
				out = append(out, h)
			}
		}
		return append(out, Header{Key: key, Value: append([]byte(nil), value...)})
	})
}

// DeleteDefaultHeader removes a default header.
func (p *Producer) DeleteDefaultHeader(key string) {
	p.updateDefaults(func(hs []Header) []Header {
		out := make([]Header, 0, len(hs))
		for _, h := range hs {
			if h.Key != key {
				out = append(out, h)
			}
		}
		return out
	})
}

// updateDefaults replaces the header slice as a whole (copy on write), so
// records being built read a consistent set without a lock.
func (p *Producer) updateDefaults(fn func([]Header) []Header) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hs := fn(*p.defaultHeaders.Load())
	p.defaultHeaders.Store(&hs)
}

// DroppedErrors returns how many errors were dropped because the Errors
// channel was full.
func (p *Producer) DroppedErrors() uint64 { return p.errs.dropped.Load() }

// Checker reports the producer's health: CRITICAL when fewer than
// MinBrokersHealthy brokers answer (or the producer is closed), WARNING when
// they answer but the topic does not exist, OK otherwise. It opens short
// connections of its own, closed before it returns; ctx bounds it.
func (p *Producer) Checker(ctx context.Context) Health {
	select {
	case <-p.closer:
		return Health{Status: HealthCritical, Message: "producer closed"}
	default:
	}
	p.mu.Lock()
	eng := p.eng
	p.mu.Unlock()
	return checkHealth(ctx, knownBrokers(eng, p.cfg.BrokerAddrs), p.scfg, []string{p.cfg.Topic}, p.cfg.MinBrokersHealthy)
}

// Close stops the producer: it stops accepting records, flushes those
// already accepted (including what Output holds), waits for their delivery
// reports, closes the connections and finally closes Errors and Closed. It
// is idempotent and safe to call concurrently. If ctx ends first, Close
// returns ctx.Err() and the shutdown goes on in the background, bounded by
// the producer's retry settings; Closed tells when it is over.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		close(p.closer)
		p.stopInit()
		go p.shutdown()
	})
	select {
	case <-p.closed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka: closing producer: %w", ctx.Err())
	}
}

// shutdown is owned by Close and runs exactly once.
func (p *Producer) shutdown() {
	<-p.initDone
	if p.IsInitialised() {
		<-p.intakeEnd
	} else {
		// Never connected: what waits in Output cannot be delivered, and
		// must not vanish silently.
		for {
			select {
			case m := <-p.output:
				if m != nil {
					p.fail(&envelope{msg: m, topic: orDefault(m.Topic, p.cfg.Topic)}, fmt.Errorf("%w: %w", ErrClosed, ErrNotInitialised))
				}
				continue
			default:
			}
			break
		}
	}
	close(p.errs.ch)
	close(p.closed)
	p.log.Info("producer closed")
}
