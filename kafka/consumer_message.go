package kafka

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// Message is a consumed record.
//
// Offsets are positions: committing a message commits every earlier
// message of its partition too. With a registered handler the consumer
// commits each message after the handler returns, so handlers need not call
// Commit or Release (doing so is harmless). With the Upstream channel the
// user must call Release (or CommitAndRelease) on every message: the next
// message of the same partition is delivered only after that.
type Message interface {
	Topic() string
	Partition() int32
	Offset() int64
	Key() []byte
	Value() []byte
	// Headers returns the record's headers in order.
	Headers() []Header
	// Header returns the value of the first header with that key.
	Header(key string) ([]byte, bool)
	Timestamp() time.Time
	// Context is cancelled when the message's partition is revoked, and on
	// Stop and Close; it carries the trace id of the trace header.
	Context() context.Context
	// Commit marks the message as processed. Its offset is committed with
	// the next batch of commits, which Commit brings forward; offsets are
	// always committed at a rebalance, on Stop and on Close.
	Commit()
	// Release lets the consumer deliver the partition's next message.
	// Calling it more than once is harmless.
	Release()
	// CommitAndRelease is Commit followed by Release.
	CommitAndRelease()
}

// groupMessage is the Message the consumer group hands out.
type groupMessage struct {
	sm      *sarama.ConsumerMessage
	ctx     context.Context
	sess    sarama.ConsumerGroupSession
	commits *commitSignal

	once      sync.Once
	released  chan struct{}
	committed atomic.Bool
	headers   []Header
}

func newGroupMessage(ctx context.Context, sm *sarama.ConsumerMessage, sess sarama.ConsumerGroupSession, commits *commitSignal, traceHeader string) *groupMessage {
	m := &groupMessage{sm: sm, sess: sess, commits: commits}
	m.headers = make([]Header, 0, len(sm.Headers))
	for _, h := range sm.Headers {
		if h == nil {
			continue
		}
		m.headers = append(m.headers, Header{Key: string(h.Key), Value: h.Value})
		if string(h.Key) == traceHeader && len(h.Value) > 0 && TraceID(ctx) == "" {
			ctx = WithTraceID(ctx, string(h.Value))
		}
	}
	m.ctx = ctx
	return m
}

func (m *groupMessage) Topic() string            { return m.sm.Topic }
func (m *groupMessage) Partition() int32         { return m.sm.Partition }
func (m *groupMessage) Offset() int64            { return m.sm.Offset }
func (m *groupMessage) Key() []byte              { return m.sm.Key }
func (m *groupMessage) Value() []byte            { return m.sm.Value }
func (m *groupMessage) Headers() []Header        { return m.headers }
func (m *groupMessage) Timestamp() time.Time     { return m.sm.Timestamp }
func (m *groupMessage) Context() context.Context { return m.ctx }

func (m *groupMessage) Header(key string) ([]byte, bool) {
	for _, h := range m.headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// mark records the offset for the next commit.
func (m *groupMessage) mark() {
	if m.committed.CompareAndSwap(false, true) {
		m.sess.MarkMessage(m.sm, "")
	}
}

func (m *groupMessage) Commit() {
	m.mark()
	m.commits.request()
}

func (m *groupMessage) Release() {
	m.once.Do(func() {
		if m.released != nil {
			close(m.released)
		}
	})
}

func (m *groupMessage) CommitAndRelease() {
	m.Commit()
	m.Release()
}

// commitSignal coalesces requests to commit now into one pending request.
type commitSignal struct{ ch chan struct{} }

func newCommitSignal() *commitSignal { return &commitSignal{ch: make(chan struct{}, 1)} }

func (c *commitSignal) request() {
	select {
	case c.ch <- struct{}{}:
	default:
	}
}
