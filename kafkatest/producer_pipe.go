package kafkatest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
)

// producerPipe is the plumbing the fake Producer and the MockProducer share
// with the real kafka.Producer: an Output channel drained by a goroutine of
// its own until Close (then flushed), an Errors channel that never blocks,
// and Closed closed when all of it is done. Both embed it, so its exported
// methods implement their part of kafka.IProducer.
type producerPipe struct {
	what        string // for error messages: "producer", "mock producer"
	output      chan *kafka.ProducerMessage
	errors      chan error
	initialised chan struct{}
	closer      chan struct{}
	closed      chan struct{}
	closeOnce   sync.Once
	dropped     atomic.Uint64

	headersMu sync.Mutex
	defaults  []kafka.Header // replaced, never changed in place
}

// newProducerPipe returns a connected pipe and starts its goroutine, which
// hands every record from Output to send and reports the outcome as the
// real producer does: to OnDelivery, else failures to Errors.
func newProducerPipe(what string, outputSize, errorsSize int, send func(*kafka.ProducerMessage) kafka.Delivery) *producerPipe {
	p := &producerPipe{
		what:        what,
		output:      make(chan *kafka.ProducerMessage, outputSize),
		errors:      make(chan error, errorsSize),
		initialised: make(chan struct{}),
		closer:      make(chan struct{}),
		closed:      make(chan struct{}),
	}
	close(p.initialised)
	go p.intake(send)
	return p
}

func (p *producerPipe) intake(send func(*kafka.ProducerMessage) kafka.Delivery) {
	defer func() {
		close(p.errors)
		close(p.closed)
	}()
	deliver := func(m *kafka.ProducerMessage) {
		if m == nil {
			return // the real producer logs and ignores it too
		}
		d := send(m)
		if m.OnDelivery != nil {
			m.OnDelivery(d)
		} else if d.Err != nil {
			p.pushError(d.Err)
		}
	}
	for {
		select {
		case m := <-p.output:
			deliver(m)
		case <-p.closer:
			for {
				select {
				case m := <-p.output:
					deliver(m)
				default:
					return
				}
			}
		}
	}
}

func (p *producerPipe) pushError(err error) {
	select {
	case p.errors <- err:
	default:
		p.dropped.Add(1)
	}
}

func (p *producerPipe) isClosed() bool {
	select {
	case <-p.closer:
		return true
	default:
		return false
	}
}

// closedHealth is the health after Close.
func closedHealth() kafka.Health {
	return kafka.Health{Status: kafka.HealthCritical, Message: "producer closed", CheckedAt: time.Now()}
}

// Channels implements kafka.IProducer.
func (p *producerPipe) Channels() kafka.ProducerChannels {
	return kafka.ProducerChannels{
		Output:      p.output,
		Errors:      p.errors,
		Initialised: p.initialised,
		Closer:      p.closer,
		Closed:      p.closed,
	}
}

// IsInitialised implements kafka.IProducer; it is always true.
func (p *producerPipe) IsInitialised() bool { return true }

// Initialise implements kafka.IProducer: nil, or kafka.ErrClosed after
// Close.
func (p *producerPipe) Initialise(context.Context) error {
	if p.isClosed() {
		return kafka.ErrClosed
	}
	return nil
}

// DroppedErrors implements kafka.IProducer.
func (p *producerPipe) DroppedErrors() uint64 { return p.dropped.Load() }

// Close implements kafka.IProducer: it delivers what Output holds, then
// closes Errors and Closed. It is idempotent; later sends fail with
// kafka.ErrClosed.
func (p *producerPipe) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { close(p.closer) })
	select {
	case <-p.closed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafkatest: closing %s: %w", p.what, ctx.Err())
	}
}

// SetDefaultHeader implements kafka.IProducer.
func (p *producerPipe) SetDefaultHeader(key string, value []byte) {
	p.headersMu.Lock()
	defer p.headersMu.Unlock()
	p.defaults = append(withoutHeader(p.defaults, key), kafka.Header{Key: key, Value: clone(value)})
}

// DeleteDefaultHeader implements kafka.IProducer.
func (p *producerPipe) DeleteDefaultHeader(key string) {
	p.headersMu.Lock()
	defer p.headersMu.Unlock()
	p.defaults = withoutHeader(p.defaults, key)
}

// defaultHeaders returns the current default headers; the slice is never
// changed afterwards.
func (p *producerPipe) defaultHeaders() []kafka.Header {
	p.headersMu.Lock()
	defer p.headersMu.Unlock()
	return p.defaults
}

// withoutHeader returns a new slice, so that copies already handed out
// never change.
func withoutHeader(hs []kafka.Header, key string) []kafka.Header {
	out := make([]kafka.Header, 0, len(hs)+1)
	for _, h := range hs {
		if h.Key != key {
			out = append(out, h)
		}
	}
	return out
}
