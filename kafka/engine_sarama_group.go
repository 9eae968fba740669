package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"

	"github.com/kafkahub/kafkahub/internal/handling"
)

// saramaGroup is the Sarama engine of a ConsumerGroup. One client serves
// every consumption period; each period gets its own sarama.ConsumerGroup,
// because Sarama leaves the group only when that object is closed.
type saramaGroup struct {
	g      *ConsumerGroup
	client sarama.Client // fetches and metadata
	coord  sarama.Client // the group coordinator's requests: its own connections

	mu    sync.Mutex
	group sarama.ConsumerGroup // the current period's, for pause and resume
}

func newSaramaGroup(g *ConsumerGroup) (*saramaGroup, error) {
	client, err := sarama.NewClient(g.cfg.BrokerAddrs, g.scfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %v: %w", g.cfg.BrokerAddrs, err)
	}
	// NewClient does not talk to the cluster; make sure it answers. A
	// missing topic is not an initialisation failure: joining reports it.
	if err := client.RefreshMetadata(g.cfg.Topics...); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		_ = client.Close()
		return nil, fmt.Errorf("connecting to %v: %w", g.cfg.BrokerAddrs, err)
	}
	coord, err := sarama.NewClient(g.cfg.BrokerAddrs, g.scfg)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("connecting to %v: %w", g.cfg.BrokerAddrs, err)
	}
	return &saramaGroup{g: g, client: client, coord: coord}, nil
}

// splitClient sends the group coordinator's requests (join, sync,
// heartbeat, commit, leave) over connections of their own. Kafka answers
// the requests of one connection in order, and a JoinGroup is held by the
// coordinator until every member has rejoined (up to a heartbeat interval):
// on a shared connection the fetches queued behind it stall every partition
// led by the coordinator's broker, which would undo what a cooperative
// rebalance saves (measured: up to 3 s per rebalance at the default
// heartbeat, docs/CONSUMER.md).
type splitClient struct {
	sarama.Client
	coord sarama.Client
}

func (c splitClient) Coordinator(group string) (*sarama.Broker, error) {
	return c.coord.Coordinator(group)
}

func (c splitClient) RefreshCoordinator(group string) error {
	return c.coord.RefreshCoordinator(group)
}

func (e *saramaGroup) brokers() []string { return saramaBrokers(e.client) }

func (e *saramaGroup) close() error {
	var errs []error
	for _, c := range []sarama.Client{e.coord, e.client} {
		if err := c.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *saramaGroup) consume(ctx context.Context) {
	g := e.g
	group, err := sarama.NewConsumerGroupFromClient(g.cfg.GroupName, splitClient{Client: e.client, coord: e.coord})
	if err != nil {
		// Only a closed client gets here; treat it as fatal for this period.
		g.pushError(fmt.Errorf("kafka: creating consumer group: %w", err))
		<-ctx.Done()
		return
	}
	e.setGroup(group)
	defer e.setGroup(nil)
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range group.Errors() {
			g.pushError(fmt.Errorf("kafka: consumer group %s: %w", g.cfg.GroupName, err))
		}
	}()

	// Consume returns at every rebalance: call it again until ctx ends,
	// backing off after errors.
	b := g.joinBackoff()
	for {
		err := group.Consume(ctx, g.cfg.Topics, &saramaSession{g: g, group: group})
		if ctx.Err() != nil || errors.Is(err, sarama.ErrClosedConsumerGroup) {
			break
		}
		g.rebalancing()
		if err == nil {
			b.Reset()
			continue
		}
		wait := b.NextBackOff()
		g.log.Warn("joining consumer group failed; retrying", "retry_in", wait, "error", err)
		g.pushError(fmt.Errorf("kafka: consumer group %s: %w", g.cfg.GroupName, err))
		if !handling.Sleep(ctx, wait) {
			break
		}
		e.refreshCoordinator()
	}
	if err := group.Close(); err != nil {
		g.log.Warn("leaving consumer group", "error", err)
	}
	<-errsDone
}

// refreshCoordinator makes the coordinator client look the cluster and the
// group's coordinator up again. Its connections carry no fetches, so it
// never learns from failed fetches that a broker is gone, as the main
// client does; after its coordinator's broker died it would otherwise keep
// joining through the dead broker until its next periodic metadata refresh
// (10 minutes): seen in TestBrokerLossDuringConsume, where the group did
// not come back within 5 minutes of a SIGKILL of the coordinator's node.
func (e *saramaGroup) refreshCoordinator() {
	if err := e.coord.RefreshMetadata(e.g.cfg.Topics...); err != nil {
		e.g.log.Debug("refreshing the coordinator client's metadata", "error", err)
	}
	if err := e.coord.RefreshCoordinator(e.g.cfg.GroupName); err != nil {
		e.g.log.Debug("looking up the group coordinator", "error", err)
	}
}

func (e *saramaGroup) setGroup(group sarama.ConsumerGroup) {
	e.mu.Lock()
	e.group = group
	e.mu.Unlock()
	if group != nil {
		if paused := e.g.assign.pausedList(); len(paused) > 0 {
			group.Pause(fromTPs(paused))
		}
	}
}

func (e *saramaGroup) pause(tps []TopicPartition) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.group != nil {
		e.group.Pause(fromTPs(tps))
	}
}

func (e *saramaGroup) resume(tps []TopicPartition) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.group != nil {
		e.group.Resume(fromTPs(tps))
	}
}

// saramaSession is the sarama.ConsumerGroupHandler of one call to Consume:
// one generation with an eager strategy, the whole membership with the
// cooperative one (Sarama then starts and ends claims within the session).
type saramaSession struct {
	g             *ConsumerGroup
	group         sarama.ConsumerGroup
	committerDone chan struct{}

	mu    sync.Mutex
	owned map[TopicPartition]bool // reported as assigned and not yet revoked
}

// Setup starts the goroutine that serves Message.Commit's requests for the
// session, coalesced, so no caller waits on a commit round trip. It ends
// with the session's context, before Cleanup.
func (s *saramaSession) Setup(sess sarama.ConsumerGroupSession) error {
	s.committerDone = make(chan struct{})
	go func() {
		defer close(s.committerDone)
		for {
			select {
			case <-s.g.commits.ch:
				sess.Commit()
				s.g.commitDone()
			case <-sess.Context().Done():
				return
			}
		}
	}()
	s.owned = map[TopicPartition]bool{}
	// With the cooperative protocol each partition is reported when its
	// claim starts (ConsumeClaim). Sarama revokes a partition whose claim
	// is still being created by cancelling it, and then never calls
	// ConsumeClaim for it: reported here, it would stay in Assignment()
	// and the metrics, with no OnRevoked, until the session ends (seen
	// under load: revoked 120 ms after the first join, still listed 90 s
	// later while another member consumed it).
	if !s.g.cfg.cooperative() {
		s.report(sess, toTPs(sess.Claims()), true)
	}
	return nil
}

// report passes assignment changes on to the consumer, once per partition.
func (s *saramaSession) report(sess sarama.ConsumerGroupSession, tps []TopicPartition, added bool) {
	s.mu.Lock()
	var changed []TopicPartition
	for _, tp := range tps {
		if s.owned[tp] != added {
			s.owned[tp] = added
			changed = append(changed, tp)
		}
	}
	s.mu.Unlock()
	if len(changed) == 0 {
		return
	}
	if added {
		s.g.assigned(sess.Context(), changed, sess.GenerationID())
	} else {
		s.g.revoked(context.WithoutCancel(sess.Context()), changed)
	}
}

// Cleanup runs once every ConsumeClaim of the session has returned, so every
// offset marked by a finished handler is committed before the partitions go
// to their next owner.
func (s *saramaSession) Cleanup(sess sarama.ConsumerGroupSession) error {
	<-s.committerDone
	sess.Commit()
	s.g.commitDone()
	s.mu.Lock()
	var left []TopicPartition
	for tp, owned := range s.owned {
		if owned {
			left = append(left, tp)
		}
	}
	s.mu.Unlock()
	s.report(sess, left, false)
	return nil
}

// ConsumeClaim runs the claim loop. With the cooperative protocol Sarama
// starts claims for partitions added within the session, and ends a
// revoked one by closing its channel while the session goes on: the
// partition is reported as assigned at the start (with the eager protocol
// Setup has reported it already) and, when the session still runs at the
// end, as revoked once its marks are committed.
func (s *saramaSession) ConsumeClaim(sess sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	tp := []TopicPartition{{c.Topic(), c.Partition()}}
	s.report(sess, tp, true)
	claim := saramaClaim{sess: sess, c: c}
	if s.g.cfg.cooperative() {
		var stop func()
		claim, stop = watchRevocation(claim)
		defer stop()
	}
	runClaim[*sarama.ConsumerMessage](s.g, claim)
	if sess.Context().Err() == nil {
		sess.Commit()
		s.g.commitDone()
		s.report(sess, tp, false)
	}
	return nil
}

// saramaClaim presents a Sarama claim to the claim loop.
type saramaClaim struct {
	sess sarama.ConsumerGroupSession
	c    sarama.ConsumerGroupClaim
	// cctx and msgs replace the session's context and the claim's channel
	// when watchRevocation runs; nil otherwise.
	cctx context.Context
	msgs <-chan *sarama.ConsumerMessage
}

func (c saramaClaim) topic() string    { return c.c.Topic() }
func (c saramaClaim) partition() int32 { return c.c.Partition() }

func (c saramaClaim) ctx() context.Context {
	if c.cctx != nil {
		return c.cctx
	}
	return c.sess.Context()
}

func (c saramaClaim) records() <-chan *sarama.ConsumerMessage {
	if c.msgs != nil {
		return c.msgs
	}
	return c.c.Messages()
}

// watchBuffer is how many records watchRevocation holds for a claim: as
// many as Sarama's own channel buffer, so that while the handler keeps up
// the watcher always has room to read, and sees the channel close.
const watchBuffer = 256

// watchRevocation gives a claim of the cooperative protocol a context that
// is cancelled as soon as Sarama revokes the partition. Sarama cancels a
// revoked claim's context of its own, which it does not hand to the
// handler, and then closes the claim's channel, after the records it had
// already fetched. A watcher goroutine reads the channel ahead of the claim
// loop, so it sees the close while a handler runs: it cancels the claim's
// context (the handler's message stays uncommitted and goes to the next
// owner, as with franz-go) and drops what it holds. When the handler falls
// behind by watchBuffer records, the close is seen after those are handled.
// stop ends the watcher; the claim's owner calls it once the loop returned.
func watchRevocation(c saramaClaim) (_ saramaClaim, stop func()) {
	ctx, cancel := context.WithCancel(c.sess.Context())
	out := make(chan *sarama.ConsumerMessage)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		defer cancel()
		in := c.c.Messages()
		base := make([]*sarama.ConsumerMessage, 0, watchBuffer)
		buf := base
		for {
			var send chan<- *sarama.ConsumerMessage
			var head *sarama.ConsumerMessage
			if len(buf) > 0 {
				send, head = out, buf[0]
			}
			recv := in
			if len(buf) >= watchBuffer {
				recv = nil
			}
			select {
			case m, ok := <-recv:
				if !ok {
					return // revoked, or the session ended
				}
				buf = append(buf, m)
			case send <- head:
				buf[0] = nil
				buf = buf[1:]
				if len(buf) == 0 {
					buf = base // reuse the array instead of growing a new one
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	c.cctx, c.msgs = ctx, out
	return c, func() {
		cancel()
		<-done
	}
}
func (c saramaClaim) highWater() int64 { return c.c.HighWaterMarkOffset() }
func (c saramaClaim) mark(offset int64) {
	c.sess.MarkOffset(c.c.Topic(), c.c.Partition(), offset+1, "")
}
func (c saramaClaim) convert(sm *sarama.ConsumerMessage) record {
	r := record{topic: sm.Topic, partition: sm.Partition, offset: sm.Offset,
		key: sm.Key, value: sm.Value, timestamp: sm.Timestamp}
	if len(sm.Headers) > 0 {
		r.headers = make([]Header, 0, len(sm.Headers))
		for _, h := range sm.Headers {
			if h != nil {
				r.headers = append(r.headers, Header{Key: string(h.Key), Value: h.Value})
			}
		}
	}
	return r
}
