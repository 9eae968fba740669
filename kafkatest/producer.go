package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkahub/kafkahub/kafka"
)

// Producer is an in-memory producer for unit tests: it satisfies
// kafka.IProducer and records every message it is given, as Kafka would
// store it, instead of sending it anywhere. Use it when a test cares about
// what was produced rather than about the exact sequence of calls (for
// that, see NewMockProducer).
//
// It behaves like a kafka.Producer that is connected at once: records sent
// on Output are delivered by a goroutine of its own, their OnDelivery called
// and, without one, their failures reported on Errors; Close stops it.
type Producer struct {
	*producerPipe
	cfg kafka.ProducerConfig

	mu       sync.Mutex
	messages []*Message
	offsets  map[topicPartition]int64
	failures []error
	failWhen func(*kafka.ProducerMessage) error
	changed  chan struct{} // closed and replaced when a message is recorded
}

// NewProducer returns a fake producer configured by cfg (nil means the zero
// config). Of cfg it uses Topic (where records that name none go),
// MaxMessageBytes, OutputBufferSize, ErrorsBufferSize, TraceHeader and
// TraceIDFunc, with the real defaults; the rest is ignored. Close it when
// done.
func NewProducer(cfg *kafka.ProducerConfig) *Producer {
	var c kafka.ProducerConfig
	if cfg != nil {
		c = *cfg
	}
	c = c.WithDefaults()
	p := &Producer{
		cfg:     c,
		offsets: make(map[topicPartition]int64),
		changed: make(chan struct{}),
	}
	p.producerPipe = newProducerPipe("producer", c.OutputBufferSize, c.ErrorsBufferSize,
		func(m *kafka.ProducerMessage) kafka.Delivery { return p.produce(m, "") })
	return p
}

// produce records m, or fails it as scripted, and returns the outcome.
func (p *Producer) produce(m *kafka.ProducerMessage, trace string) kafka.Delivery {
	topic := m.Topic
	if topic == "" {
		topic = p.cfg.Topic
	}
	fail := func(err error) kafka.Delivery {
		return kafka.Delivery{Message: m, Topic: topic, Partition: -1, Offset: -1,
			Err: &kafka.ProducerError{Topic: topic, Msg: m, Err: err}}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	headers := p.headersFor(m, trace)
	if err := p.check(topic, m, headers); err != nil {
		return fail(err)
	}
	if len(p.failures) > 0 {
		err := p.failures[0]
		p.failures = p.failures[1:]
		return fail(err)
	}
	if p.failWhen != nil {
		if err := p.failWhen(m); err != nil {
			return fail(err)
		}
	}
	var part int32
	if m.Partition != nil {
		part = *m.Partition
	}
	id := topicPartition{topic, part}
	off := p.offsets[id]
	p.offsets[id] = off + 1
	rec := &Message{
		topic:     topic,
		partition: part,
		offset:    off,
		offsetSet: true,
		key:       clone(m.Key),
		value:     clone(m.Value),
		headers:   headers,
		timestamp: time.Now(),
		released:  make(chan struct{}),
	}
	rec.base = context.Background()
	rec.ctx = withTraceHeader(rec.base, headers, p.cfg.TraceHeader)
	p.messages = append(p.messages, rec)
	close(p.changed)
	p.changed = make(chan struct{})
	return kafka.Delivery{Message: m, Topic: topic, Partition: part, Offset: off}
}

// headersFor builds the record's headers as the real producer does:
// default headers the message does not override, its own, then the trace
// header. p.mu must be held.
func (p *Producer) headersFor(m *kafka.ProducerMessage, trace string) []kafka.Header {
	defaults := p.defaultHeaders()
	hs := make([]kafka.Header, 0, len(defaults)+len(m.Headers)+1)
	for _, h := range defaults {
		if !hasHeader(m.Headers, h.Key) {
			hs = append(hs, h)
		}
	}
	for _, h := range m.Headers {
		hs = append(hs, kafka.Header{Key: h.Key, Value: clone(h.Value)})
	}
	if trace != "" && !hasHeader(m.Headers, p.cfg.TraceHeader) {
		hs = append(hs, kafka.Header{Key: p.cfg.TraceHeader, Value: []byte(trace)})
	}
	return hs
}

// check rejects what the real producer would reject before Kafka sees it.
func (p *Producer) check(topic string, m *kafka.ProducerMessage, headers []kafka.Header) error {
	if m.Partition != nil && *m.Partition < 0 {
		return fmt.Errorf("%w: partition %d of topic %q", sarama.ErrInvalidPartition, *m.Partition, topic)
	}
	sm := &sarama.ProducerMessage{Topic: topic}
	if m.Key != nil {
		sm.Key = sarama.ByteEncoder(m.Key)
	}
	if m.Value != nil {
		sm.Value = sarama.ByteEncoder(m.Value)
	}
	for _, h := range headers {
		sm.Headers = append(sm.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
	}
	if size := sm.ByteSize(2); size > p.cfg.MaxMessageBytes {
		return fmt.Errorf("%w: %d bytes > MaxMessageBytes %d", kafka.ErrMessageTooLarge, size, p.cfg.MaxMessageBytes)
	}
	return nil
}

func hasHeader(hs []kafka.Header, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// Send implements kafka.IProducer: it records msg, or fails it as FailNext
// or FailWhen say, and returns at once. Failures are *kafka.ProducerError
// values wrapping the scripted error, as the real producer's are. Send
// returns kafka.ErrClosed after Close, and ctx's error, recording nothing,
// if ctx has ended.
func (p *Producer) Send(ctx context.Context, msg *kafka.ProducerMessage) error {
	if msg == nil {
		return errors.New("kafkatest: Send: nil message")
	}
	if p.isClosed() {
		return kafka.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d := p.produce(msg, p.traceID(ctx))
	if msg.OnDelivery != nil {
		msg.OnDelivery(d)
	}
	return d.Err
}

func (p *Producer) traceID(ctx context.Context) (id string) {
	defer func() {
		if recover() != nil {
			id = "" // as the real producer, survive a TraceIDFunc that panics
		}
	}()
	return p.cfg.TraceIDFunc(ctx)
}

// FailNext makes the next sends fail, one per error, in order, whether
// they come through Send or Output.
func (p *Producer) FailNext(errs ...error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures = append(p.failures, errs...)
}

// FailWhen makes every send for which fn returns an error fail with that
// error, once the errors given to FailNext are used up; nil stops it. fn
// sees the message as given to Send or Output, and must not call the
// producer.
func (p *Producer) FailWhen(fn func(*kafka.ProducerMessage) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failWhen = fn
}

// Messages returns the messages recorded so far, in the order they were
// produced. Each carries its topic, partition (the one the message named,
// else 0), offset (counted from 0 in each partition), key, value, headers
// (default, own and trace headers, as Kafka would store them) and the
// time it was produced. Queue them on a Consumer to test a pipeline.
func (p *Producer) Messages() []*Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Message(nil), p.messages...)
}

// WaitForMessage waits until a message has been recorded and returns the
// first one, or an error wrapping ctx's.
func (p *Producer) WaitForMessage(ctx context.Context) (*Message, error) {
	ms, err := p.WaitForMessages(ctx, 1)
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// WaitForMessages waits until n messages have been recorded and returns the
// first n, or an error wrapping ctx's that says how many there were. It
// suits code that produces in the background, through Output or a
// goroutine of its own.
func (p *Producer) WaitForMessages(ctx context.Context, n int) ([]*Message, error) {
	for {
		p.mu.Lock()
		got, ch := len(p.messages), p.changed
		if got >= n {
			ms := append([]*Message(nil), p.messages[:n]...)
			p.mu.Unlock()
			return ms, nil
		}
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("kafkatest: waiting for %d messages, %d recorded: %w", n, got, ctx.Err())
		}
	}
}

// Reset forgets the recorded messages and the failures scripted with
// FailNext and FailWhen, and numbers offsets from 0 again, so one producer
// can serve several steps of a test. Default headers stay.
func (p *Producer) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.messages, p.failures, p.failWhen = nil, nil, nil
	p.offsets = make(map[topicPartition]int64)
}

// Checker implements kafka.IProducer: OK until Close, CRITICAL after.
func (p *Producer) Checker(context.Context) kafka.Health {
	if p.isClosed() {
		return closedHealth()
	}
	return kafka.Health{Status: kafka.HealthOK, CheckedAt: time.Now()}
}
