package kafkatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
)

// MockProducer is a kafka.IProducer whose sends the test scripts in
// advance, in the manner of Sarama's mocks: each Send (or record sent on
// Output) must meet the next expectation, in order, and gets the outcome
// the expectation returns. A send that does not fit fails the test at once,
// naming the call; expectations still unmet when the test ends fail it too.
//
// Close needs no expectation: records still in Output are matched against
// the script first, then Errors and Closed are closed.
//
// Use a MockProducer to test how a service reacts to each outcome; use a
// Producer when only the records matter.
type MockProducer struct {
	*producerPipe
	script *script[*SendExpectation]

	mu     sync.Mutex
	health kafka.Health
}

// SendExpectation is one expected send. The With methods narrow what
// matches; Return sets the outcome. An expectation with no With method
// matches any send, and one without Return succeeds.
type SendExpectation struct {
	mock *MockProducer

	topic   *string
	key     *string
	value   *string
	headers []kafka.Header
	match   func(*kafka.ProducerMessage) error
	err     error
}

// NewMockProducer returns a MockProducer that reports to t, and checks when
// the test ends (with t.Cleanup) that every expectation was met. At that
// point it also closes itself if the test did not.
func NewMockProducer(t testing.TB) *MockProducer {
	t.Helper()
	m := &MockProducer{
		script: &script[*SendExpectation]{t: t, name: "MockProducer"},
		health: kafka.Health{Status: kafka.HealthOK},
	}
	m.producerPipe = newProducerPipe("mock producer", kafka.DefaultOutputBufferSize, kafka.DefaultErrorsBufferSize,
		func(msg *kafka.ProducerMessage) kafka.Delivery { return delivery(msg, m.send(msg, "")) })
	t.Cleanup(func() {
		t.Helper()
		_ = m.Close(context.Background()) // delivers what Output holds first
		m.script.check()
	})
	return m
}

// ExpectSend adds an expectation for the next send.
func (m *MockProducer) ExpectSend() *SendExpectation {
	e := &SendExpectation{mock: m}
	m.script.add(e)
	return e
}

// ExpectSendMatching adds an expectation for the next send that holds when
// fn returns nil; fn's error says why the send does not match. fn sees a
// copy of the message carrying the headers Kafka would get: the default
// headers, the message's own, and the "trace-id" header with the trace id
// of Send's context (see kafka.WithTraceID).
func (m *MockProducer) ExpectSendMatching(fn func(*kafka.ProducerMessage) error) *SendExpectation {
	return m.ExpectSend().matching(fn)
}

// WithTopic requires the message to name topic ("" for the producer's
// default topic).
func (e *SendExpectation) WithTopic(topic string) *SendExpectation {
	e.mock.mu.Lock()
	defer e.mock.mu.Unlock()
	e.topic = &topic
	return e
}

// WithKey requires the message's key.
func (e *SendExpectation) WithKey(key string) *SendExpectation {
	e.mock.mu.Lock()
	defer e.mock.mu.Unlock()
	e.key = &key
	return e
}

// WithValue requires the message's value.
func (e *SendExpectation) WithValue(value string) *SendExpectation {
	e.mock.mu.Lock()
	defer e.mock.mu.Unlock()
	e.value = &value
	return e
}

// WithHeader requires a header with that key and value among those Kafka
// would get (see ExpectSendMatching).
func (e *SendExpectation) WithHeader(key, value string) *SendExpectation {
	e.mock.mu.Lock()
	defer e.mock.mu.Unlock()
	e.headers = append(e.headers, kafka.Header{Key: key, Value: []byte(value)})
	return e
}

func (e *SendExpectation) matching(fn func(*kafka.ProducerMessage) error) *SendExpectation {
	e.mock.mu.Lock()
	defer e.mock.mu.Unlock()
	e.match = fn
	return e
}

// Return sets the outcome of the send: nil for success, or an error, which
// the send reports wrapped in a *kafka.ProducerError as the real producer
// would.
func (e *SendExpectation) Return(err error) {
	e.mock.mu.Lock()
	defer e.mock.mu.Unlock()
	e.err = err
}

// String describes the expectation, for failure messages.
func (e *SendExpectation) String() string {
	e.mock.mu.Lock()
	defer e.mock.mu.Unlock()
	var parts []string
	if e.topic != nil {
		parts = append(parts, fmt.Sprintf("topic=%q", *e.topic))
	}
	if e.key != nil {
		parts = append(parts, fmt.Sprintf("key=%q", *e.key))
	}
	if e.value != nil {
		parts = append(parts, "value="+quote([]byte(*e.value)))
	}
	for _, h := range e.headers {
		parts = append(parts, fmt.Sprintf("header %s=%q", h.Key, h.Value))
	}
	if e.match != nil {
		parts = append(parts, "matching a func")
	}
	if len(parts) == 0 {
		parts = append(parts, "any message")
	}
	return fmt.Sprintf("Send(%s) returning %v", strings.Join(parts, ", "), e.err)
}

// mismatch says why msg does not meet e, or returns "".
func (e *SendExpectation) mismatch(msg *kafka.ProducerMessage) string {
	e.mock.mu.Lock()
	topic, key, value, headers, match := e.topic, e.key, e.value, e.headers, e.match
	e.mock.mu.Unlock()
	var why []string
	if topic != nil && msg.Topic != *topic {
		why = append(why, fmt.Sprintf("topic is %q, want %q", msg.Topic, *topic))
	}
	if key != nil && !bytes.Equal(msg.Key, []byte(*key)) {
		why = append(why, fmt.Sprintf("key is %s, want %q", quote(msg.Key), *key))
	}
	if value != nil && !bytes.Equal(msg.Value, []byte(*value)) {
		why = append(why, fmt.Sprintf("value is %s, want %s", quote(msg.Value), quote([]byte(*value))))
	}
	for _, want := range headers {
		if !headerIn(msg.Headers, want) {
			why = append(why, fmt.Sprintf("no header %s=%q", want.Key, want.Value))
		}
	}
	if match != nil {
		if err := match(msg); err != nil {
			why = append(why, err.Error())
		}
	}
	return strings.Join(why, "; ")
}

func headerIn(hs []kafka.Header, want kafka.Header) bool {
	for _, h := range hs {
		if h.Key == want.Key && bytes.Equal(h.Value, want.Value) {
			return true
		}
	}
	return false
}

// send matches one send against the script and returns its outcome.
func (m *MockProducer) send(msg *kafka.ProducerMessage, trace string) error {
	seen := m.asKafkaSees(msg, trace)
	e, n, ok := m.script.next()
	if !ok {
		return m.script.fail("unexpected call %d: %s: no more sends were expected", n, describe(seen))
	}
	if why := e.mismatch(seen); why != "" {
		return m.script.fail("call %d: %s does not match expected %s: %s", n, describe(seen), e, why)
	}
	m.mu.Lock()
	err := e.err
	m.mu.Unlock()
	if err != nil {
		topic := msg.Topic
		return &kafka.ProducerError{Topic: topic, Msg: msg, Err: err}
	}
	return nil
}

// asKafkaSees copies msg with the headers the real producer would send.
func (m *MockProducer) asKafkaSees(msg *kafka.ProducerMessage, trace string) *kafka.ProducerMessage {
	defaults := m.defaultHeaders()
	c := *msg
	c.Headers = nil
	for _, h := range defaults {
		if !hasHeader(msg.Headers, h.Key) {
			c.Headers = append(c.Headers, h)
		}
	}
	c.Headers = append(c.Headers, msg.Headers...)
	if trace != "" && !hasHeader(msg.Headers, kafka.DefaultTraceHeader) {
		c.Headers = append(c.Headers, kafka.Header{Key: kafka.DefaultTraceHeader, Value: []byte(trace)})
	}
	return &c
}

// describe names a send and its arguments, for failure messages.
func describe(msg *kafka.ProducerMessage) string {
	parts := []string{fmt.Sprintf("topic=%q", msg.Topic), "key=" + quote(msg.Key), "value=" + quote(msg.Value)}
	if msg.Partition != nil {
		parts = append(parts, fmt.Sprintf("partition=%d", *msg.Partition))
	}
	for _, h := range msg.Headers {
		parts = append(parts, fmt.Sprintf("header %s=%q", h.Key, h.Value))
	}
	return "Send(" + strings.Join(parts, ", ") + ")"
}

// Send implements kafka.IProducer: the send must meet the next expectation.
// After Close it returns kafka.ErrClosed, as the real producer does, without
// consulting the script.
func (m *MockProducer) Send(ctx context.Context, msg *kafka.ProducerMessage) error {
	if msg == nil {
		return errors.New("kafkatest: Send: nil message")
	}
	if m.isClosed() {
		return kafka.ErrClosed
	}
	err := m.send(msg, kafka.TraceID(ctx))
	if msg.OnDelivery != nil {
		msg.OnDelivery(delivery(msg, err))
	}
	return err
}

func delivery(msg *kafka.ProducerMessage, err error) kafka.Delivery {
	if err != nil {
		return kafka.Delivery{Message: msg, Topic: msg.Topic, Partition: -1, Offset: -1, Err: err}
	}
	var p int32
	if msg.Partition != nil {
		p = *msg.Partition
	}
	return kafka.Delivery{Message: msg, Topic: msg.Topic, Partition: p}
}

// intake serves Output like the real producer: until Close, then what
// Output still holds.

// ExpectationsWereMet returns an error listing the expectations not met
// yet, or nil. The mock checks it by itself when the test ends; call it to
// check earlier.
func (m *MockProducer) ExpectationsWereMet() error { return m.script.unmet() }

// SetHealth sets what Checker reports until Close (HealthOK at first).
func (m *MockProducer) SetHealth(h kafka.Health) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.health = h
}

// Checker implements kafka.IProducer: the health set with SetHealth, or
// CRITICAL after Close.
func (m *MockProducer) Checker(context.Context) kafka.Health {
	if m.isClosed() {
		return closedHealth()
	}
	m.mu.Lock()
	h := m.health
	m.mu.Unlock()
	if h.CheckedAt.IsZero() {
		h.CheckedAt = time.Now()
	}
	return h
}
