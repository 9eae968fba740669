package main

import (
	"context"
	"sync"
	"time"

	"github.com/kafkahub/kafkahub/internal/gatewayloop"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/tcphub"
)

// Header values of the echo loop's replies.
var (
	valResponse = []byte(tcphub.KindResponse)
	val200      = []byte("200")
	loopKeys    = map[string]bool{
		tcphub.HeaderDevice: true, tcphub.HeaderConn: true, tcphub.HeaderRequest: true, tcphub.HeaderContentType: true,
	}
)

// loopMessage is a reply of the echo loop: a kafka.Message held in one
// allocation with its headers.
type loopMessage struct {
	key, value []byte
	offset     int64
	hs         [6]kafka.Header
	n          int
}

func (m *loopMessage) Topic() string            { return "loop" }
func (m *loopMessage) Partition() int32         { return 0 }
func (m *loopMessage) Offset() int64            { return m.offset }
func (m *loopMessage) Key() []byte              { return m.key }
func (m *loopMessage) Value() []byte            { return m.value }
func (m *loopMessage) Headers() []kafka.Header  { return m.hs[:m.n] }
func (m *loopMessage) Timestamp() time.Time     { return time.Time{} }
func (m *loopMessage) Context() context.Context { return context.Background() }
func (m *loopMessage) Commit()                  {}
func (m *loopMessage) Release()                 {}
func (m *loopMessage) CommitAndRelease()        {}

func (m *loopMessage) Header(key string) ([]byte, bool) {
	for _, h := range m.hs[:m.n] {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// echoLoop is the in-memory stand-in for Kafka and the echo worker of the
// gateway-only scenarios (a gatewayloop.Loop, given to the gateway as its
// producer): each record is acknowledged at once and each request (a
// record of the request topic) answered with its own payload, in order,
// from one goroutine, as a producer reports deliveries from one goroutine.
type echoLoop struct {
	topic  string
	in     chan *kafka.ProducerMessage
	out    chan kafka.Message
	errs   chan error
	ready  chan struct{}
	closer chan struct{} // closed by Close
	closed chan struct{} // closed when the goroutine has exited
	once   sync.Once
	offset int64 // the goroutine's
}

var _ gatewayloop.Loop = (*echoLoop)(nil)

func newEchoLoop(topic string) *echoLoop {
	l := &echoLoop{
		topic: topic, in: make(chan *kafka.ProducerMessage, 1<<16), out: make(chan kafka.Message, 1<<16),
		errs: make(chan error), ready: make(chan struct{}), closer: make(chan struct{}), closed: make(chan struct{}),
	}
	close(l.ready)
	go l.run()
	return l
}

func (l *echoLoop) run() {
	defer close(l.closed)
	defer close(l.errs)
	for {
		select {
		case msg := <-l.in:
			if !l.handle(msg) {
				return
			}
		case <-l.closer:
			return
		}
	}
}

// handle acknowledges msg and, for a request, queues its echo. It reports
// false once the loop is closing.
func (l *echoLoop) handle(msg *kafka.ProducerMessage) bool {
	offset := l.offset
	l.offset++
	if msg.OnDelivery != nil {
		msg.OnDelivery(kafka.Delivery{Message: msg, Topic: msg.Topic, Offset: offset})
	}
	if msg.Topic != l.topic {
		return true // presence: acknowledged, nothing to answer
	}
	// Few allocations: this loop runs in the gateway's process.
	rec := &loopMessage{key: msg.Key, value: msg.Value, offset: offset}
	rec.hs[0] = kafka.Header{Key: tcphub.HeaderKind, Value: valResponse}
	rec.hs[1] = kafka.Header{Key: tcphub.HeaderStatus, Value: val200}
	rec.n = 2
	for _, h := range msg.Headers {
		if loopKeys[h.Key] && rec.n < len(rec.hs) {
			rec.hs[rec.n] = h
			rec.n++
		}
	}
	select {
	case l.out <- rec:
		return true
	case <-l.closer:
		return false
	}
}

// Replies implements gatewayloop.Loop.
func (l *echoLoop) Replies() <-chan kafka.Message { return l.out }

// Send implements kafka.IProducer: the record is acknowledged at once.
func (l *echoLoop) Send(ctx context.Context, msg *kafka.ProducerMessage) error {
	done := make(chan struct{})
	m := *msg
	m.OnDelivery = func(kafka.Delivery) { close(done) }
	select {
	case l.in <- &m:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.closer:
		return kafka.ErrClosed
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.closed:
		return kafka.ErrClosed
	}
}

// Channels implements kafka.IProducer.
func (l *echoLoop) Channels() kafka.ProducerChannels {
	return kafka.ProducerChannels{Output: l.in, Errors: l.errs, Initialised: l.ready, Closer: l.closer, Closed: l.closed}
}

// IsInitialised implements kafka.IProducer.
func (l *echoLoop) IsInitialised() bool { return true }

// Initialise implements kafka.IProducer.
func (l *echoLoop) Initialise(context.Context) error { return nil }

// SetDefaultHeader implements kafka.IProducer; the loop adds no headers.
func (l *echoLoop) SetDefaultHeader(string, []byte) {}

// DeleteDefaultHeader implements kafka.IProducer.
func (l *echoLoop) DeleteDefaultHeader(string) {}

// DroppedErrors implements kafka.IProducer.
func (l *echoLoop) DroppedErrors() uint64 { return 0 }

// Checker implements kafka.IProducer.
func (l *echoLoop) Checker(context.Context) kafka.Health {
	return kafka.Health{Status: kafka.HealthOK, CheckedAt: time.Now()}
}

// Close implements kafka.IProducer: it stops the loop and waits for it.
func (l *echoLoop) Close(context.Context) error {
	l.once.Do(func() { close(l.closer) })
	<-l.closed
	return nil
}
