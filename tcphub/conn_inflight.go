package tcphub

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// Request states.
const (
	reqPending  uint8 = iota // handed to the producer, no answer yet
	reqAcked                 // Kafka has it
	reqFailed                // not written, or not known to be written in time
	reqTooLarge              // refused for its size: resending it cannot help
)

// request is a device request on its way to Kafka. The record, its
// headers and the request are one allocation.
type request struct {
	c       *conn
	id      string
	arrived time.Time
	state   uint8 // under c.rmu
	msg     kafka.ProducerMessage
	headers [8]kafka.Header
	trace   [16]byte
	idBytes []byte
	cost    int64      // bytes held against the budgets until delivered
	span    trace.Span // the server span, when tracing
}

// Header values that are the same for every request of a connection, or of
// the server, made once.
var (
	ctJSONBytes   = []byte(ContentTypeJSON)
	ctBinaryBytes = []byte(ContentTypeBinary)
)

func (c *conn) newRequest(f *wire.Frame, topic string) *request {
	s := c.srv
	r := &request{c: c, id: f.ID, arrived: time.Now(), idBytes: []byte(f.ID)}
	var ct []byte
	switch {
	case f.ContentType != "":
		ct = []byte(f.ContentType)
	case f.Binary:
		ct = ctBinaryBytes
	default:
		ct = ctJSONBytes
	}
	const hexDigits = "0123456789abcdef"
	for i, v := 0, rand.Uint64(); i < len(r.trace); i, v = i+1, v>>4 {
		r.trace[i] = hexDigits[v&15]
	}
	h := append(r.headers[:0],
		kafka.Header{Key: HeaderDevice, Value: c.deviceBytes},
		kafka.Header{Key: HeaderConn, Value: c.idBytes},
		kafka.Header{Key: HeaderRequest, Value: r.idBytes},
		kafka.Header{Key: HeaderInstance, Value: s.instanceBytes},
		kafka.Header{Key: HeaderReplyTo, Value: s.replyToBytes},
		kafka.Header{Key: HeaderContentType, Value: ct},
		kafka.Header{Key: HeaderTraceID, Value: r.trace[:]},
	)
	if f.Route != "" {
		h = append(h, kafka.Header{Key: HeaderRoute, Value: []byte(f.Route)})
	}
	r.msg = kafka.ProducerMessage{Topic: topic, Key: c.deviceBytes, Value: f.Payload, Headers: h, OnDelivery: r.delivered}
	return r
}

// produce hands a request's record to the producer. Only the reader calls
// it, so a connection's records reach the producer in frame order, and the
// idempotent producer keeps that order in the partition the device id
// selects. Many records of a connection may be in flight at once (up to
// MaxInFlight); their answers are sent in the same order (see complete).
// When the producer's buffer is full the reader waits, at most until the
// request's deadline.
func (c *conn) produce(r *request) {
	s := c.srv
	out := s.producer.Channels()
	select {
	case out.Output <- &r.msg:
		return
	default:
	}
	t := time.NewTimer(time.Until(r.arrived.Add(s.cfg.ProduceTimeout)))
	defer t.Stop()
	var err error
	select {
	case out.Output <- &r.msg:
		return
	case <-out.Closer:
		err = kafka.ErrClosed
	case <-s.baseCtx.Done():
		err = s.baseCtx.Err()
	case <-t.C:
		err = context.DeadlineExceeded
	}
	r.delivered(kafka.Delivery{Message: &r.msg, Topic: r.msg.Topic, Partition: -1, Offset: -1, Err: err})
}

// delivered is the record's OnDelivery: the producer's answer, called
// once, from the producer's goroutine (or by produce when the record never
// reached the producer).
func (r *request) delivered(d kafka.Delivery) {
	c := r.c
	s := c.srv
	// The producer is done with the record, answered or not: its bytes
	// leave the budgets now (not at a timeout's answer, while the producer
	// may still hold them).
	s.inBudget.release(r.cost, &c.inBytes)
	s.m.produceLatency.Observe(time.Since(r.arrived).Seconds())
	r.endRequestSpan(d.Err)
	c.rmu.Lock()
	if r.state != reqPending { // already answered: its deadline passed
		c.rmu.Unlock()
		return
	}
	switch {
	case d.Err == nil:
		r.state = reqAcked
	case errors.Is(d.Err, kafka.ErrMessageTooLarge):
		r.state = reqTooLarge
	default:
		r.state = reqFailed
	}
	c.answerLocked(c.completeLocked(nil))
	c.rmu.Unlock()
	if h := s.cfg.answered; h != nil {
		h()
	}
	if d.Err != nil {
		c.logger().Warn("request not written to Kafka", "request", r.id, "topic", r.msg.Topic, "error", d.Err)
	}
	c.signalDrained()
}

// signalDrained wakes awaitAnswers once nothing is pending. It runs after
// answerLocked has queued the answers, never before: a half-closed
// connection is closed as soon as awaitAnswers returns, and an answer
// queued after that would be lost (TestHalfCloseGetsEveryAnswer caught it under load).
func (c *conn) signalDrained() {
	c.rmu.Lock()
	if len(c.pending) == 0 && c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
	c.rmu.Unlock()
}

// answered is a request taken off the pending list, with the responses
// that waited for its ack.
type answered struct {
	r    *request
	held [][]byte
}

// completeLocked takes the answered requests off the head of the pending
// list, in arrival order: acks (and errors) go out in the order the
// requests came in. The caller holds rmu and passes the result to
// answerLocked.
func (c *conn) completeLocked(out []answered) []answered {
	n := 0
	for _, r := range c.pending {
		if r.state == reqPending {
			break
		}
		a := answered{r: r}
		if c.held != nil {
			a.held = c.held[r.id]
			delete(c.held, r.id)
		}
		out = append(out, a)
		n++
	}
	if n > 0 {
		clear(c.pending[:n])
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		if len(c.held) == 0 {
			c.held = nil
		}
	}
	return out
}

// answerLocked queues the ack or error of each answered request, then the
// responses held for it, and lets the server's request count go. The
// caller holds rmu, the lock holdResponse takes: a response arriving once
// its request has left the pending list is queued after the ack, never in
// between (TestResponseRacingItsAck). rmu is taken before qmu, never
// after: enqueue takes only qmu.
func (c *conn) answerLocked(out []answered) {
	s := c.srv
	for _, a := range out {
		switch a.r.state {
		case reqAcked:
			if c.enqueue(encode(wire.Frame{Type: wire.TypeAck, ID: a.r.id}), wire.TypeAck) == nil {
				s.m.acks.Inc()
			}
		case reqTooLarge:
			c.sendError(a.r.id, wire.CodeRecordTooLarge, "the record (payload and headers) is larger than Kafka accepts", 0)
		default:
			c.sendError(a.r.id, wire.CodeUnavailable, "not written to Kafka", s.cfg.RetryAfter)
		}
		for _, b := range a.held {
			_ = c.enqueue(b, wire.TypeResponse)
		}
		s.requests.leave()
	}
}

// armTimerLocked makes sure the deadline timer runs while requests are
// pending. The caller holds rmu.
func (c *conn) armTimerLocked() {
	if c.timerOn || len(c.pending) == 0 {
		return
	}
	d := time.Until(c.pending[0].arrived.Add(c.srv.cfg.ProduceTimeout))
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.expire)
	} else {
		c.timer.Reset(d)
	}
	c.timerOn = true
}

// expire answers unavailable to the pending requests whose ProduceTimeout
// has passed (their records may still land in Kafka), and re-arms the timer
// for the oldest remaining one. The timer is armed for the oldest pending
// request's deadline and not moved when requests complete: when it fires
// early it only re-arms.
func (c *conn) expire() {
	now := time.Now()
	timeout := c.srv.cfg.ProduceTimeout
	c.rmu.Lock()
	c.timerOn = false
	if c.stopped {
		c.rmu.Unlock()
		return
	}
	for _, r := range c.pending {
		if r.state == reqPending && !now.Before(r.arrived.Add(timeout)) {
			r.state = reqFailed
		}
	}
	out := c.completeLocked(nil)
	c.answerLocked(out)
	c.armTimerLocked()
	c.rmu.Unlock()
	for _, a := range out {
		if a.r.state == reqFailed {
			c.logger().Warn("request not acknowledged by Kafka in time", "request", a.r.id, "topic", a.r.msg.Topic, "timeout", timeout)
		}
	}
	c.signalDrained()
}

// abandonPending runs when the connection is finished: nobody can be told
// about the requests still waiting for Kafka (the device resends them after
// reconnecting, and their records may still land), so they are dropped
// from the server's count now, and the deadline timer is stopped.
func (c *conn) abandonPending() {
	c.rmu.Lock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
	}
	for _, r := range c.pending {
		if r.state == reqPending {
			r.state = reqFailed
		}
	}
	out := c.completeLocked(nil)
	c.held = nil
	c.rmu.Unlock()
	for range out {
		c.srv.requests.leave()
	}
	c.signalDrained()
}

// awaitAnswers waits until every request of the connection has its answer
// queued, which the deadline timer bounds by ProduceTimeout (see expire),
// or until the server gives up on its connections.
func (c *conn) awaitAnswers() {
	c.rmu.Lock()
	if len(c.pending) == 0 {
		c.rmu.Unlock()
		return
	}
	if c.drained == nil {
		c.drained = make(chan struct{})
	}
	ch := c.drained
	c.rmu.Unlock()
	select {
	case <-ch:
	case <-c.srv.baseCtx.Done():
	}
}

// holdResponse keeps a response whose request is still waiting for Kafka's
// answer (or for the answers of requests before it), so that the device
// gets the ack first; it is queued right after the ack. It reports false
// when the request is not pending.
func (c *conn) holdResponse(id string, b []byte) bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	pending := false
	for _, r := range c.pending {
		pending = pending || r.id == id
	}
	if !pending {
		return false
	}
	if c.held == nil {
		c.held = map[string][][]byte{}
	}
	c.held[id] = append(c.held[id], b)
	return true
}
