package kafka

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/kafkahub/kafkahub/internal/handling"
)

// Handler processes one message. It runs on one of NumWorkers workers,
// identified by workerID (0 to NumWorkers-1). Returning nil commits the
// message; an error is retried as HandlerRetries says, unless it is marked
// with Permanent (no retry) or NoCommit (no commit). ctx is the message's
// context: cancelled on revocation, Stop and Close.
type Handler func(ctx context.Context, workerID int, msg Message) error

// BatchHandler processes a batch of up to BatchSize messages of one
// partition, in offset order. Returning nil commits the whole batch; an
// error retries the whole batch as HandlerRetries says.
type BatchHandler func(ctx context.Context, batch []Message) error

// ErrHandlerPanic is wrapped by the error that stands for a handler panic.
// The panic is recovered and treated like a returned error.
var ErrHandlerPanic = handling.ErrPanic

// Dead-letter headers, added to the original headers of a message sent to
// DeadLetterTopic.
const (
	HeaderDLTTopic     = "kafkahub.dlt.topic"
	HeaderDLTPartition = "kafkahub.dlt.partition"
	HeaderDLTOffset    = "kafkahub.dlt.offset"
	HeaderDLTError     = "kafkahub.dlt.error"
	HeaderDLTAttempts  = "kafkahub.dlt.attempts"
)

// HandlerError reports a message (or batch) whose handler still failed
// after every retry. It was skipped, or sent to the dead-letter topic, and
// committed.
type HandlerError struct {
	Topic        string
	Partition    int32
	Offset       int64 // the first offset of a batch
	Count        int   // messages concerned: 1, or the batch size
	Attempts     int
	DeadLettered bool
	Err          error
}

// Error implements error.
func (e *HandlerError) Error() string {
	what := "skipped"
	if e.DeadLettered {
		what = "dead-lettered"
	}
	return fmt.Sprintf("kafka: handler failed %d times on %s/%d@%d (%d messages, %s): %v",
		e.Attempts, e.Topic, e.Partition, e.Offset, e.Count, what, e.Err)
}

// Unwrap returns the handler's last error.
func (e *HandlerError) Unwrap() error { return e.Err }

// runClaim is the claim loop: it feeds one assigned partition to the
// user's handler, batch handler or the Upstream channel until the claim
// ends. Engines run it on a goroutine per claim; its return tells them the
// partition's marks are final.
func runClaim[R any](g *ConsumerGroup, c claim[R]) {
	ctx := c.ctx()
	if bh := g.batchHandler.Load(); bh != nil {
		consumeBatches(g, c, *bh)
		return
	}
	msgs := c.records()
	for {
		select {
		case <-ctx.Done():
			return
		case r, ok := <-msgs:
			if !ok || !g.assign.gate(ctx, c.topic(), c.partition()) {
				return
			}
			if h := g.handler.Load(); h != nil {
				if !handleBurst(g, c, r, *h) {
					return
				}
				continue
			}
			m := g.newMessage(ctx, c, c.convert(r))
			m.released = make(chan struct{})
			select {
			case g.upstream <- m:
			case <-ctx.Done():
				return
			}
			select {
			case <-m.released:
			case <-ctx.Done():
				return
			}
		}
	}
}

// burstMax bounds how many already-fetched messages one worker token
// serves before it is handed back, so other partitions get their turn.
// Holding the token across a burst halves the channel operations per
// message, the consumer's largest cost over raw Sarama (docs/BENCHMARKS.md).
const burstMax = 16

// handleBurst handles r and then, holding the same worker, the records
// the claim has already buffered (up to burstMax), taking each with a
// non-blocking receive. It reports false when the claim must stop.
func handleBurst[R any](g *ConsumerGroup, c claim[R], r R, h Handler) bool {
	ctx := c.ctx()
	id, ok := g.acquireWorker(ctx)
	if !ok {
		return false
	}
	defer g.releaseWorker(id)
	msgs := c.records()
	for i := 0; ; i++ {
		m := g.newMessage(ctx, c, c.convert(r))
		commit, ok := g.runWithPolicy(ctx, []*groupMessage{m}, func(hctx context.Context) error { return h(hctx, id, m) })
		if !ok {
			return false
		}
		if commit {
			m.mark()
			observeMark(g, c, m.rec.offset, 1)
		}
		// A pause ends the burst, so a paused partition never holds a
		// worker while it waits.
		if i+1 >= burstMax || ctx.Err() != nil || g.assign.anyPaused() {
			return ctx.Err() == nil
		}
		select {
		case next, ok := <-msgs:
			if !ok {
				return true // the next receive in runClaim sees the close
			}
			r = next
		default:
			return true
		}
	}
}

func consumeBatches[R any](g *ConsumerGroup, c claim[R], bh BatchHandler) {
	ctx := c.ctx()
	size, wait := g.cfg.BatchSize, g.cfg.BatchWaitTime
	batch := make([]*groupMessage, 0, size)
	add := func(r R) {
		batch = append(batch, g.newMessage(ctx, c, c.convert(r)))
	}
	timer := time.NewTimer(wait)
	timer.Stop()
	defer timer.Stop()
	var timeout <-chan time.Time
	msgs := c.records()

	flush := func() bool {
		timer.Stop()
		timeout = nil
		id, ok := g.acquireWorker(ctx)
		if !ok {
			return false
		}
		defer g.releaseWorker(id)
		out := make([]Message, len(batch))
		for i, m := range batch {
			out[i] = m
		}
		commit, done := g.runWithPolicy(ctx, batch, func(hctx context.Context) error { return bh(hctx, out) })
		if commit {
			// Offsets are positions: marking the last marks the batch.
			for _, m := range batch[:len(batch)-1] {
				m.committed.Store(true)
			}
			batch[len(batch)-1].mark()
			observeMark(g, c, batch[len(batch)-1].rec.offset, len(batch))
		}
		batch = make([]*groupMessage, 0, size)
		return done
	}
	for {
		select {
		case <-ctx.Done():
			return // an unfinished batch is not committed: the next owner gets it
		case r, ok := <-msgs:
			if !ok || !g.assign.gate(ctx, c.topic(), c.partition()) {
				return
			}
			add(r)
			if len(batch) == 1 {
				timer.Reset(wait)
				timeout = timer.C
			}
			// Take what the claim has already buffered without a full
			// select per message.
		fill:
			for len(batch) < size {
				select {
				case r, ok := <-msgs:
					if !ok {
						break fill
					}
					add(r)
				default:
					break fill
				}
			}
			if len(batch) >= size && !flush() {
				return
			}
		case <-timeout:
			if !flush() {
				return
			}
		}
	}
}

// runWithPolicy calls the handler until it succeeds or the retries are
// spent (at once for a Permanent error), then skips or dead-letters. It
// reports whether the messages may be committed (not after NoCommit), and
// ok false when ctx ended first (they must not be, and the claim stops).
// call gets the handler's context: the first message's, with the hooks'
// spans.
func (g *ConsumerGroup) runWithPolicy(ctx context.Context, msgs []*groupMessage, call func(context.Context) error) (commit, ok bool) {
	first := &msgs[0].rec
	run := g.obs.startHandling(msgs[0].ctx, msgs)
	r := g.policy().Run(ctx, func() error { return run.call(call) }, func(attempt int, wait time.Duration, err error) {
		run.retry(attempt, wait, err)
		g.log.Warn("handler failed; retrying", "topic", first.topic, "partition", first.partition,
			"offset", first.offset, "attempt", attempt, "retry_in", wait, "error", err)
	})
	if r.Interrupted {
		g.log.Info("handler interrupted; messages left uncommitted for the next owner",
			"topic", first.topic, "partition", first.partition, "offset", first.offset, "error", r.Err)
		run.done(HandleOutcome{Attempts: r.Attempts, Err: r.Err, Interrupted: true})
		return false, false
	}
	if r.NoCommit {
		g.log.Info("handler asked not to commit; messages left unmarked",
			"topic", first.topic, "partition", first.partition, "offset", first.offset, "count", len(msgs), "error", r.Err)
		run.done(HandleOutcome{Attempts: r.Attempts, Err: r.Err, NoCommit: true})
		return false, true
	}
	if r.Err == nil {
		run.done(HandleOutcome{Attempts: r.Attempts})
		return true, true
	}
	herr := &HandlerError{Topic: first.topic, Partition: first.partition, Offset: first.offset,
		Count: len(msgs), Attempts: r.Attempts, Err: r.Err}
	if g.dlt != nil {
		if !g.deadLetter(ctx, msgs, herr) {
			run.done(HandleOutcome{Attempts: r.Attempts, Err: r.Err, Interrupted: true})
			return false, false
		}
		herr.DeadLettered = true
	}
	run.done(HandleOutcome{Attempts: r.Attempts, Err: r.Err, DeadLettered: herr.DeadLettered})
	g.log.Error("handler failed; giving up on the messages", "error", herr)
	g.pushError(herr)
	return true, true
}

func (g *ConsumerGroup) policy() handling.Policy {
	return handling.FromConfig(g.cfg.HandlerRetries, g.cfg.HandlerRetryBackoff)
}

// DeadLetterMessage returns the record that the consumer writes to
// deadLetterTopic for m after herr: m's key, value and headers, plus the
// kafkahub.dlt.* headers naming where it came from and why it failed.
func DeadLetterMessage(deadLetterTopic string, m Message, herr *HandlerError) *ProducerMessage {
	orig := m.Headers()
	hs := make([]Header, 0, len(orig)+5)
	hs = append(hs, orig...)
	hs = append(hs,
		Header{Key: HeaderDLTTopic, Value: []byte(m.Topic())},
		Header{Key: HeaderDLTPartition, Value: []byte(strconv.Itoa(int(m.Partition())))},
		Header{Key: HeaderDLTOffset, Value: []byte(strconv.FormatInt(m.Offset(), 10))},
		Header{Key: HeaderDLTError, Value: []byte(herr.Err.Error())},
		Header{Key: HeaderDLTAttempts, Value: []byte(strconv.Itoa(herr.Attempts))},
	)
	return &ProducerMessage{Topic: deadLetterTopic, Key: m.Key(), Value: m.Value(), Headers: hs}
}

// deadLetter produces every message to the dead-letter topic, retrying
// until it succeeds or ctx ends; it reports whether all were written.
func (g *ConsumerGroup) deadLetter(ctx context.Context, msgs []*groupMessage, herr *HandlerError) bool {
	for _, m := range msgs {
		rec := DeadLetterMessage(g.cfg.DeadLetterTopic, m, herr)
		written := g.policy().Until(ctx, func() error { return g.dlt.Send(m.ctx, rec) }, func(err error) {
			g.log.Error("writing to dead-letter topic failed; retrying", "dead_letter_topic", g.cfg.DeadLetterTopic, "error", err)
		})
		if !written {
			return false
		}
	}
	return true
}
