package kafkatest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
)

// Message is a consumed record built in a test: pass it to a handler
// directly, queue it on a Consumer, or read it back from a Producer. It
// implements kafka.Message and records what was done to it, so a test can
// tell whether a handler (or the consumer on its behalf) committed it.
//
// Commit and Release are counted rather than merely flagged because calling
// them twice is harmless in production yet often a sign of a muddled code
// path in the caller.
type Message struct {
	topic     string
	partition int32
	offset    int64
	offsetSet bool
	key       []byte
	value     []byte
	headers   []kafka.Header
	timestamp time.Time
	base      context.Context

	mu       sync.Mutex
	ctx      context.Context // the context of the current delivery
	commits  int
	releases int
	released chan struct{} // closed by the first Release of the current delivery
	owner    *Consumer     // set once the message is queued
	idx      int           // position in the owner's partition log
}

// MessageOption sets a field of a Message built by NewMessage.
type MessageOption func(*Message)

// NewMessage returns a record of topic holding value, in partition 0 at
// offset 0 and stamped with the current time unless options say otherwise.
//
// Its Context carries the trace id found in the "trace-id" header (see
// kafka.WithTraceID), as the real consumer's does; the Consumer replaces it
// with a context of its own, using the configured TraceHeader.
func NewMessage(topic string, value []byte, opts ...MessageOption) *Message {
	m := &Message{
		topic:     topic,
		value:     value,
		timestamp: time.Now(),
		base:      context.Background(),
		released:  make(chan struct{}),
	}
	for _, o := range opts {
		o(m)
	}
	m.ctx = withTraceHeader(m.base, m.headers, kafka.DefaultTraceHeader)
	return m
}

// WithKey sets the record's key.
func WithKey[K ~string | ~[]byte](key K) MessageOption {
	return func(m *Message) { m.key = []byte(key) }
}

// WithHeader appends a header. Repeat it for several headers, or for
// several values of one key, which Kafka allows.
func WithHeader[V ~string | ~[]byte](key string, value V) MessageOption {
	return func(m *Message) { m.headers = append(m.headers, kafka.Header{Key: key, Value: []byte(value)}) }
}

// WithPartition sets the record's partition.
func WithPartition(p int32) MessageOption {
	return func(m *Message) { m.partition = p }
}

// WithOffset sets the record's offset. A Consumer keeps an offset set this
// way (it must come after the partition's previous one: a gap is fine, as
// in a compacted topic) and numbers the other messages itself.
func WithOffset(o int64) MessageOption {
	return func(m *Message) { m.offset, m.offsetSet = o, true }
}

// WithTimestamp sets the record's timestamp.
func WithTimestamp(t time.Time) MessageOption {
	return func(m *Message) { m.timestamp = t }
}

// WithContext sets the context returned by Context, for a message given to
// a handler directly: a cancelled one lets a test check that the handler
// gives up. A Consumer ignores it, since a delivered message's context is
// the consumer's to cancel.
func WithContext(ctx context.Context) MessageOption {
	return func(m *Message) { m.base = ctx }
}

// withTraceHeader mirrors the real consumer: the first non-empty trace
// header becomes the trace id, unless ctx carries one already.
func withTraceHeader(ctx context.Context, headers []kafka.Header, traceHeader string) context.Context {
	if kafka.TraceID(ctx) != "" {
		return ctx
	}
	for _, h := range headers {
		if h.Key == traceHeader && len(h.Value) > 0 {
			return kafka.WithTraceID(ctx, string(h.Value))
		}
	}
	return ctx
}

// Topic implements kafka.Message.
func (m *Message) Topic() string { return m.topic }

// Partition implements kafka.Message.
func (m *Message) Partition() int32 { return m.partition }

// Offset implements kafka.Message.
func (m *Message) Offset() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.offset
}

// Key implements kafka.Message.
func (m *Message) Key() []byte { return m.key }

// Value implements kafka.Message.
func (m *Message) Value() []byte { return m.value }

// Headers implements kafka.Message.
func (m *Message) Headers() []kafka.Header { return m.headers }

// Header implements kafka.Message.
func (m *Message) Header(key string) ([]byte, bool) {
	for _, h := range m.headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// Timestamp implements kafka.Message.
func (m *Message) Timestamp() time.Time { return m.timestamp }

// Context implements kafka.Message. While a Consumer delivers the message
// it is that delivery's context, cancelled on a rebalance, Stop and Close.
func (m *Message) Context() context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ctx
}

// Commit implements kafka.Message. On a queued message it also moves the
// partition's committed position past it, as Kafka would, so a rebalance
// does not redeliver it.
func (m *Message) Commit() {
	m.mu.Lock()
	m.commits++
	first, owner := m.commits == 1, m.owner
	m.mu.Unlock()
	if owner != nil {
		owner.committed(m, first)
	}
}

// markCommitted is the consumer's commit after a handler: like the real
// consumer's marking, it adds nothing when the handler committed already.
func (m *Message) markCommitted() {
	m.mu.Lock()
	done := m.commits > 0
	m.mu.Unlock()
	if !done {
		m.Commit()
	}
}

// Release implements kafka.Message. Calling it more than once is harmless.
func (m *Message) Release() {
	m.mu.Lock()
	m.releases++
	first, owner := m.releases == 1, m.owner
	select {
	case <-m.released:
	default:
		close(m.released)
	}
	m.mu.Unlock()
	if owner != nil && first {
		owner.releasedMsg(m)
	}
}

// CommitAndRelease implements kafka.Message.
func (m *Message) CommitAndRelease() {
	m.Commit()
	m.Release()
}

// IsCommitted reports whether the message was committed, by a call to
// Commit or by a Consumer after its handler was done with it.
func (m *Message) IsCommitted() bool { return m.Commits() > 0 }

// IsReleased reports whether Release was called.
func (m *Message) IsReleased() bool { return m.Releases() > 0 }

// Commits returns how many times the message was committed (see
// IsCommitted).
func (m *Message) Commits() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.commits
}

// Releases returns how many times Release was called.
func (m *Message) Releases() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.releases
}

// String names the message by where it sits in Kafka, for test failures.
func (m *Message) String() string {
	return fmt.Sprintf("%s/%d@%d", m.topic, m.partition, m.Offset())
}
