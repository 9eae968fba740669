package kafkatest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
)

// run is the consumer's controller, the only goroutine that changes its
// state, as in the real consumer: Start, Stop, rebalances and Close are
// carried out one at a time, in order.
func (c *Consumer) run() {
	defer c.finish()
	for {
		want, seq := c.intents.Get()
		if !want {
			c.states.Settle(seq)
			select {
			case <-c.intents.Wake():
			case done := <-c.rebalance:
				close(done) // nothing is assigned, so nothing is revoked
			case <-c.closer:
				return
			}
			continue
		}
		if closing := c.consume(); closing {
			return
		}
	}
}

// consume runs sessions from Start to Stop or Close, one per rebalance, and
// reports whether the consumer is closing.
func (c *Consumer) consume() (closing bool) {
	// The period's context is the one the rebalance callbacks get: it ends
	// when consumption does, as on the real consumer.
	period, endPeriod := context.WithCancel(context.Background())
	defer endPeriod()
	c.states.Set(kafka.Starting)
	var rebalanced chan struct{}
	for {
		c.beginSession(period)
		if rebalanced != nil {
			close(rebalanced)
			rebalanced = nil
		}
	wait:
		for {
			select {
			case <-c.closer:
				closing = true
				break wait
			case <-c.intents.Wake():
				if want, _ := c.intents.Get(); !want {
					break wait
				}
			case rebalanced = <-c.rebalance:
				break wait
			}
		}
		switch {
		case closing:
			c.states.Set(kafka.Closing)
		case rebalanced != nil:
			c.states.Transition(kafka.Consuming, kafka.Starting)
		default:
			c.states.Set(kafka.Stopping)
		}
		c.revokeAll(period)
		if rebalanced == nil {
			break
		}
	}
	if !closing {
		c.states.Set(kafka.Stopped)
	}
	return closing
}

// beginSession assigns every partition to this consumer, calling
// OnAssigned before any claim starts: one claim goroutine per partition, so
// each partition is handled in order.
func (c *Consumer) beginSession(period context.Context) {
	c.mu.Lock()
	n := len(c.order)
	tps := make([]kafka.TopicPartition, n)
	for i, p := range c.order {
		tps[i] = p.id.tp()
	}
	c.mu.Unlock()
	slices.SortFunc(tps, tpKey.Compare) // as the real engines report them
	// Not under c.mu: the callback may call the consumer.
	c.assign.Assigned(period, tps)
	ctx, cancel := context.WithCancel(period)
	c.mu.Lock()
	c.period, c.session, c.endSession, c.claims = period, ctx, cancel, &sync.WaitGroup{}
	for i, p := range c.order {
		// Partitions queued during OnAssigned were not in it: their
		// claims announce them.
		c.startClaim(ctx, p, i >= n)
	}
	c.mu.Unlock()
	c.states.Transition(kafka.Starting, kafka.Consuming)
}

// startClaim runs a partition's claim for the session; c.mu must be held.
// A partition new to the session is first announced to OnAssigned, on the
// claim's goroutine since the caller holds c.mu.
func (c *Consumer) startClaim(ctx context.Context, p *partition, announce bool) {
	c.claims.Add(1)
	period := c.period
	go func() {
		defer c.claims.Done()
		if announce {
			c.assign.Assigned(period, []kafka.TopicPartition{p.id.tp()})
		}
		c.claim(ctx, p)
	}()
}

// revokeAll ends the session: handlers see their context cancelled, and
// once every claim has returned each partition is rewound to its committed
// position, so what was not committed is delivered again, and OnRevoked is
// called with every partition.
func (c *Consumer) revokeAll(period context.Context) {
	c.mu.Lock()
	cancel, claims := c.endSession, c.claims
	c.period, c.session, c.endSession = nil, nil, nil
	c.mu.Unlock()
	cancel()
	claims.Wait()
	c.mu.Lock()
	for _, p := range c.order {
		p.next, p.inflight = p.pos, 0
	}
	c.progressed()
	c.mu.Unlock()
	c.assign.Revoked(period, c.assign.Assignment())
}

// finish closes what Close promises to close, once no claim is left.
func (c *Consumer) finish() {
	c.states.Set(kafka.Closing)
	close(c.upstream)
	close(c.errors)
	c.states.Set(kafka.Closed)
	close(c.closed)
}

// claim feeds one partition to the handler, the batch handler or Upstream,
// as the real consumer's ConsumeClaim does, until ctx ends.
func (c *Consumer) claim(ctx context.Context, p *partition) {
	if bh := c.batchHandler.Load(); bh != nil {
		c.consumeBatches(ctx, p, *bh)
		return
	}
	for {
		m, ok := c.take(ctx, p)
		if !ok || !c.assign.Gate(ctx, p.id.tp()) {
			return // what was taken is rewound when the session ends
		}
		mctx, released := c.deliver(ctx, m)
		if h := c.handler.Load(); h != nil {
			if !c.handleOne(ctx, mctx, m, *h) {
				return
			}
			c.finished(p, 1)
			continue
		}
		select {
		case c.upstream <- m:
		case <-ctx.Done():
			return
		}
		select {
		case <-released:
			c.finished(p, 1)
		case <-ctx.Done():
			return
		}
	}
}

// take waits for the partition's next message.
func (c *Consumer) take(ctx context.Context, p *partition) (*Message, bool) {
	for {
		if ctx.Err() != nil {
			return nil, false
		}
		if m := c.tryTake(p); m != nil {
			return m, true
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-p.signal:
		}
	}
}

func (c *Consumer) tryTake(p *partition) *Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.next >= len(p.log) {
		return nil
	}
	m := p.log[p.next]
	p.next++
	p.inflight++
	return m
}

// finished records that n messages of p are dealt with.
func (c *Consumer) finished(p *partition, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p.inflight -= n
	c.progressed()
}

// deliver gives m the context of this delivery, carrying its trace id, and
// a fresh release signal.
func (c *Consumer) deliver(ctx context.Context, m *Message) (context.Context, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ctx = withTraceHeader(ctx, m.headers, c.cfg.TraceHeader)
	select {
	case <-m.released:
		m.released = make(chan struct{})
	default:
	}
	return m.ctx, m.released
}

// handleOne reports false when the claim must stop: ctx ended before the
// message was dealt with, so it stays uncommitted.
func (c *Consumer) handleOne(ctx, mctx context.Context, m *Message, h kafka.Handler) bool {
	id, ok := c.acquireWorker(ctx)
	if !ok {
		return false
	}
	defer c.releaseWorker(id)
	commit, ok := c.runWithPolicy(ctx, []*Message{m}, func() error { return h(mctx, id, m) })
	if commit {
		m.markCommitted()
	}
	return ok
}

// consumeBatches collects a partition's messages into batches of up to
// BatchSize, flushed when full or BatchWaitTime after their first message.
func (c *Consumer) consumeBatches(ctx context.Context, p *partition, bh kafka.BatchHandler) {
	size, wait := c.cfg.BatchSize, c.cfg.BatchWaitTime
	batch := make([]*Message, 0, size)
	timer := time.NewTimer(wait)
	timer.Stop()
	defer timer.Stop()
	var timeout <-chan time.Time

	flush := func() bool {
		timer.Stop()
		timeout = nil
		id, ok := c.acquireWorker(ctx)
		if !ok {
			return false
		}
		defer c.releaseWorker(id)
		msgs := make([]kafka.Message, len(batch))
		for i, m := range batch {
			msgs[i] = m
		}
		bctx := batch[0].Context()
		commit, done := c.runWithPolicy(ctx, batch, func() error { return bh(bctx, msgs) })
		if commit {
			for _, m := range batch {
				m.markCommitted()
			}
		}
		if done {
			c.finished(p, len(batch))
		}
		batch = make([]*Message, 0, size)
		return done
	}
	for ctx.Err() == nil {
		// Messages already queued join the batch before its timer is
		// considered, as records already fetched would.
		if m := c.tryTake(p); m != nil {
			if !c.assign.Gate(ctx, p.id.tp()) {
				return
			}
			c.deliver(ctx, m)
			batch = append(batch, m)
			if len(batch) == 1 {
				timer.Reset(wait)
				timeout = timer.C
			}
			if len(batch) >= size && !flush() {
				return
			}
			continue
		}
		select {
		case <-ctx.Done():
			return // an unfinished batch is not committed: it is delivered again
		case <-p.signal:
		case <-timeout:
			if !flush() {
				return
			}
		}
	}
}

// runWithPolicy is the real consumer's: retry (not a Permanent error), then
// dead-letter or skip. It reports whether the messages may be committed
// (not after NoCommit), and ok false when ctx ended first.
func (c *Consumer) runWithPolicy(ctx context.Context, msgs []*Message, call func() error) (commit, ok bool) {
	first := msgs[0]
	r := c.policy.Run(ctx, call, func(attempt int, wait time.Duration, err error) {
		c.log.Warn("handler failed; retrying", "message", first.String(), "attempt", attempt, "retry_in", wait, "error", err)
	})
	if r.Interrupted {
		c.log.Info("handler interrupted; messages left uncommitted", "message", first.String(), "error", r.Err)
		return false, false
	}
	if r.NoCommit {
		c.log.Info("handler asked not to commit; messages left unmarked", "message", first.String(), "error", r.Err)
		return false, true
	}
	if r.Err == nil {
		return true, true
	}
	herr := &kafka.HandlerError{Topic: first.topic, Partition: first.partition, Offset: first.Offset(),
		Count: len(msgs), Attempts: r.Attempts, Err: r.Err}
	if c.cfg.DeadLetterTopic != "" {
		if !c.deadLetter(ctx, msgs, herr) {
			return false, false
		}
		herr.DeadLettered = true
	}
	c.log.Error("handler failed; giving up on the messages", "error", herr)
	c.pushError(herr)
	return true, true
}

// deadLetter writes each message to DeadLetterTopic, retrying as the real
// consumer does until the write succeeds or ctx ends.
func (c *Consumer) deadLetter(ctx context.Context, msgs []*Message, herr *kafka.HandlerError) bool {
	for _, m := range msgs {
		if c.dlt != nil {
			rec := kafka.DeadLetterMessage(c.cfg.DeadLetterTopic, m, herr)
			written := c.policy.Until(ctx, func() error { return c.dlt.Send(m.Context(), rec) }, func(err error) {
				c.log.Error("writing to dead-letter topic failed; retrying", "error", err)
			})
			if !written {
				return false
			}
		}
		c.mu.Lock()
		c.deadLog = append(c.deadLog, m)
		c.mu.Unlock()
	}
	return true
}

func (c *Consumer) acquireWorker(ctx context.Context) (int, bool) {
	select {
	case id := <-c.workers:
		return id, true
	case <-ctx.Done():
		return 0, false
	}
}

func (c *Consumer) releaseWorker(id int) { c.workers <- id }
