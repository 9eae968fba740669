package kafka

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
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
	// Stop and Close; it carries the trace id of the trace header and the
	// OpenTelemetry trace context of the record's headers (inside a
	// handler, the process span; see docs/OBSERVABILITY.md).
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

// groupMessage is the Message the consumer group hands out, whatever the
// engine.
type groupMessage struct {
	rec     record
	ctx     context.Context
	claim   marker
	commits *commitSignal

	once      sync.Once
	released  chan struct{}
	committed atomic.Bool
}

func newGroupMessage(ctx context.Context, claim marker, rec record, commits *commitSignal, traceHeader string) *groupMessage {
	m := &groupMessage{rec: rec, claim: claim, commits: commits}
	if TraceID(ctx) == "" {
		for _, h := range rec.headers {
			if h.Key == traceHeader && len(h.Value) > 0 {
				ctx = WithTraceID(ctx, string(h.Value))
				break
			}
		}
	}
	m.ctx = ctx
	return m
}

func (m *groupMessage) Topic() string            { return m.rec.topic }
func (m *groupMessage) Partition() int32         { return m.rec.partition }
func (m *groupMessage) Offset() int64            { return m.rec.offset }
func (m *groupMessage) Key() []byte              { return m.rec.key }
func (m *groupMessage) Value() []byte            { return m.rec.value }
func (m *groupMessage) Headers() []Header        { return m.rec.headers }
func (m *groupMessage) Timestamp() time.Time     { return m.rec.timestamp }
func (m *groupMessage) Context() context.Context { return m.ctx }

func (m *groupMessage) Header(key string) ([]byte, bool) {
	for _, h := range m.rec.headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// mark records the offset for the next commit.
func (m *groupMessage) mark() {
	if m.committed.CompareAndSwap(false, true) {
		m.claim.mark(m.rec.offset)
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
