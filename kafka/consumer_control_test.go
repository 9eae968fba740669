package kafka_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// events records rebalance callbacks in the order they ran.
type events struct {
	mu  sync.Mutex
	log []string
	// active is the assignment the callbacks describe.
	active map[kafka.TopicPartition]bool
	// revokedEver holds every partition ever revoked.
	revokedEver map[kafka.TopicPartition]bool
	// overlap counts callbacks that ran while another was running.
	running, overlap atomic.Int32
}

func newEvents() *events {
	return &events{active: map[kafka.TopicPartition]bool{}, revokedEver: map[kafka.TopicPartition]bool{}}
}

func (e *events) callbacks(cfg *kafka.ConsumerGroupConfig) {
	cb := func(kind string) kafka.RebalanceCallback {
		return func(ctx context.Context, tps []kafka.TopicPartition) {
			if e.running.Add(1) > 1 {
				e.overlap.Add(1)
			}
			defer e.running.Add(-1)
			e.mu.Lock()
			defer e.mu.Unlock()
			for _, tp := range tps {
				e.active[tp] = kind == "assigned"
				if kind == "revoked" {
					e.revokedEver[tp] = true
				}
			}
			e.log = append(e.log, fmt.Sprintf("%s %v", kind, tps))
		}
	}
	cfg.OnAssigned, cfg.OnRevoked = cb("assigned"), cb("revoked")
}

func (e *events) assigned() []kafka.TopicPartition {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []kafka.TopicPartition
	for tp, on := range e.active {
		if on {
			out = append(out, tp)
		}
	}
	slices.SortFunc(out, func(a, b kafka.TopicPartition) int { return int(a.Partition - b.Partition) })
	return out
}

// TestConsumerRebalanceCallbacks: OnAssigned names every partition before
// any of its messages is handled; when a second member joins, OnRevoked
// runs after the revoked handlers returned; the callbacks never overlap and
// Assignment agrees with them; Stop revokes everything.
func TestConsumerRebalanceCallbacks(t *testing.T) { eachEngine(t, testConsumerRebalanceCallbacks) }

func testConsumerRebalanceCallbacks(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 4)
	produceN(t, cluster, topic, 100, 10)
	group := kafkatest.UniqueName("g")

	ev := newEvents()
	cfg := fastGroup(cluster, topic, group)
	ev.callbacks(cfg)
	var early atomic.Int32 // messages handled on a partition not yet announced
	s := newSeen(100)
	a := newGroup(t, cfg)
	require.NoError(t, a.RegisterHandler(context.Background(), func(_ context.Context, _ int, m kafka.Message) error {
		if !slices.Contains(ev.assigned(), kafka.TopicPartition{Topic: m.Topic(), Partition: m.Partition()}) {
			early.Add(1)
		}
		s.add(m)
		return nil
	}))
	a.Start()
	s.wait(t, 60*time.Second)
	all := []kafka.TopicPartition{{Topic: topic, Partition: 0}, {Topic: topic, Partition: 1}, {Topic: topic, Partition: 2}, {Topic: topic, Partition: 3}}
	assert.Equal(t, all, ev.assigned())
	assert.Equal(t, all, a.Assignment())

	b := newGroup(t, fastGroup(cluster, topic, group))
	require.NoError(t, b.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return nil }))
	b.Start()
	// The group may rebalance more than once while b joins (a CI run saw
	// a second round revoke and reassign a's two partitions), and the
	// callbacks and Assignment are read one after the other: wait until a
	// settled round shows both agreeing.
	var lastA, lastCallbacks, lastB []kafka.TopicPartition
	if !assert.Eventually(t, func() bool {
		lastA, lastB = a.Assignment(), b.Assignment()
		lastCallbacks = ev.assigned()
		return len(lastA) == 2 && len(lastB) == 2 && slices.Equal(lastA, lastCallbacks)
	}, 60*time.Second, 20*time.Millisecond) {
		t.Fatalf("the two members share the 4 partitions and a's callbacks describe its assignment: a has %v, its callbacks %v, b has %v",
			lastA, lastCallbacks, lastB)
	}

	require.NoError(t, a.StopAndWait(testCtx(t, 30*time.Second)))
	assert.Empty(t, ev.assigned(), "Stop revokes every partition")
	assert.Empty(t, a.Assignment())
	assert.Zero(t, early.Load(), "no message handled before its partition was announced")
	assert.Zero(t, ev.overlap.Load(), "callbacks never run concurrently")
	t.Logf("callbacks: %v", ev.log)
}

// TestConsumerPauseResume: a paused partition is not handled while the
// others go on and the member stays in the group; Resume continues it from
// where it stopped, losing nothing.
func TestConsumerPauseResume(t *testing.T) { eachEngine(t, testConsumerPauseResume) }

func testConsumerPauseResume(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 2)
	group := kafkatest.UniqueName("g")
	paused := kafka.TopicPartition{Topic: topic, Partition: 0}

	var perPart [2]atomic.Int32
	g := newGroup(t, fastGroup(cluster, topic, group))
	require.NoError(t, g.RegisterHandler(context.Background(), func(_ context.Context, _ int, m kafka.Message) error {
		perPart[m.Partition()].Add(1)
		return nil
	}))
	require.NoError(t, g.Pause(paused))
	assert.Equal(t, []kafka.TopicPartition{paused}, g.Paused())
	g.Start()
	waitState(t, g, kafka.Consuming, 60*time.Second)

	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	ctx := testCtx(t, 60*time.Second)
	for i := range 50 {
		for part := range int32(2) {
			require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Partition: &part, Value: fmt.Appendf(nil, "%d", i)}))
		}
	}
	require.Eventually(t, func() bool { return perPart[1].Load() == 50 }, 60*time.Second, 10*time.Millisecond)
	assert.Zero(t, perPart[0].Load(), "the paused partition was not handled")
	assert.Equal(t, kafka.Consuming, g.State(), "pausing keeps the member in the group")
	assert.Len(t, g.Assignment(), 2)

	require.NoError(t, g.Resume(paused))
	assert.Empty(t, g.Paused())
	require.Eventually(t, func() bool { return perPart[0].Load() == 50 }, 60*time.Second, 10*time.Millisecond,
		"resumed partition handled %d of 50", perPart[0].Load())
	require.NoError(t, g.Close(ctx))
	assert.ErrorIs(t, g.Pause(paused), kafka.ErrClosed)
	assert.ErrorIs(t, g.Resume(paused), kafka.ErrClosed)
}

// TestConsumerCooperativeKeepsRetainedPartitions: with cooperative-sticky,
// when a second member joins, the first keeps handling the partitions it
// retains: their handlers' contexts are not cancelled and their handling
// does not stop; only moved partitions are revoked.
func TestConsumerCooperativeKeepsRetainedPartitions(t *testing.T) {
	eachEngine(t, testConsumerCooperativeKeepsRetainedPartitions)
}

func testConsumerCooperativeKeepsRetainedPartitions(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 4)
	group := kafkatest.UniqueName("g")
	cfgA := fastGroup(cluster, topic, group)
	cfgA.RebalanceStrategy = kafka.RebalanceCooperativeSticky
	cfgA.NumWorkers = 4
	evA := newEvents()
	evA.callbacks(cfgA)

	var cancelledA sync.Map // partition -> true when a handler of A saw its ctx cancelled
	var handledA [4]atomic.Int32
	a := newGroup(t, cfgA)
	require.NoError(t, a.RegisterHandler(context.Background(), func(ctx context.Context, _ int, m kafka.Message) error {
		handledA[m.Partition()].Add(1)
		select {
		case <-ctx.Done():
			cancelledA.Store(m.Partition(), true)
			return ctx.Err()
		case <-time.After(2 * time.Millisecond): // a steady trickle of work
		}
		return nil
	}))
	a.Start()
	require.Eventually(t, func() bool { return len(a.Assignment()) == 4 }, 60*time.Second, 10*time.Millisecond)

	// Keep every partition busy while B joins.
	stop := make(chan struct{})
	done := make(chan struct{})
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	go func() {
		defer close(done)
		ctx := context.Background()
		for i := 0; ; i++ {
			part := int32(i % 4)
			select {
			case p.Channels().Output <- &kafka.ProducerMessage{Partition: &part, Value: []byte("x")}:
			case <-stop:
				return
			}
			if i%4 == 3 {
				select {
				case <-time.After(time.Millisecond):
				case <-stop:
					return
				case <-ctx.Done():
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()
	require.Eventually(t, func() bool {
		for i := range handledA {
			if handledA[i].Load() < 10 {
				return false
			}
		}
		return true
	}, 60*time.Second, 10*time.Millisecond, "A handles every partition before B joins")

	cfgB := fastGroup(cluster, topic, group)
	cfgB.RebalanceStrategy = kafka.RebalanceCooperativeSticky
	b := newGroup(t, cfgB)
	require.NoError(t, b.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return nil }))
	b.Start()
	require.Eventually(t, func() bool { return len(a.Assignment()) == 2 && len(b.Assignment()) == 2 }, 60*time.Second, 10*time.Millisecond)

	retained := a.Assignment()
	before := make(map[int32]int32)
	for _, tp := range retained {
		before[tp.Partition] = handledA[tp.Partition].Load()
	}
	require.Eventually(t, func() bool {
		for _, tp := range retained {
			if handledA[tp.Partition].Load() < before[tp.Partition]+20 {
				return false
			}
		}
		return true
	}, 60*time.Second, 10*time.Millisecond, "retained partitions keep being handled after the rebalance")
	evA.mu.Lock()
	for _, tp := range retained {
		_, was := cancelledA.Load(tp.Partition)
		assert.False(t, was, "retained partition %d: no handler context was cancelled", tp.Partition)
		assert.False(t, evA.revokedEver[tp], "retained partition %d was never revoked", tp.Partition)
	}
	assert.Len(t, evA.revokedEver, 2, "exactly the two moved partitions were revoked")
	evA.mu.Unlock()
	assert.Equal(t, kafka.Consuming, a.State(), "a cooperative rebalance does not take A out of Consuming")
	t.Logf("cooperative: A retained %v; callbacks %v", retained, evA.log)
}

// TestConsumerMigrateEagerToCooperative moves a live group from range to
// cooperative-sticky in the two rolls docs/CONSUMER.md describes: at every
// step the members agree on a protocol and share the partitions, and after
// the second roll a joining member moves partitions without revoking the
// ones that stay.
func TestConsumerMigrateEagerToCooperative(t *testing.T) {
	eachEngine(t, func(t *testing.T) {
		cluster := kafkatest.NewCluster(t)
		topic := cluster.NewTopic(t, 4)
		group := kafkatest.UniqueName("g")
		start := func(strategy, fallback kafka.RebalanceStrategy, ev *events) *kafka.ConsumerGroup {
			cfg := fastGroup(cluster, topic, group)
			cfg.RebalanceStrategy, cfg.RebalanceFallback = strategy, fallback
			if ev != nil {
				ev.callbacks(cfg)
			}
			g := newGroup(t, cfg)
			require.NoError(t, g.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return nil }))
			g.Start()
			return g
		}
		shared := func(members ...*kafka.ConsumerGroup) func() bool {
			return func() bool {
				n := 0
				for _, g := range members {
					if len(g.Assignment()) == 0 {
						return false
					}
					n += len(g.Assignment())
				}
				return n == 4
			}
		}
		ctx := testCtx(t, 60*time.Second)
		a := start(kafka.RebalanceRange, "", nil)
		b := start(kafka.RebalanceRange, "", nil)
		require.Eventually(t, shared(a, b), 60*time.Second, 20*time.Millisecond, "two eager members")

		// Roll 1: each member in turn offers cooperative-sticky with range as
		// the fallback, and still speaks eager.
		a1 := start(kafka.RebalanceCooperativeSticky, kafka.RebalanceRange, nil)
		require.NoError(t, a.Close(ctx))
		require.Eventually(t, shared(a1, b), 60*time.Second, 20*time.Millisecond, "roll 1, first member")
		b1 := start(kafka.RebalanceCooperativeSticky, kafka.RebalanceRange, nil)
		require.NoError(t, b.Close(ctx))
		require.Eventually(t, shared(a1, b1), 60*time.Second, 20*time.Millisecond, "roll 1 done")

		// Roll 2: cooperative-sticky alone.
		evA2 := newEvents()
		a2 := start(kafka.RebalanceCooperativeSticky, "", evA2)
		require.NoError(t, a1.Close(ctx))
		require.Eventually(t, shared(a2, b1), 60*time.Second, 20*time.Millisecond, "roll 2, first member")
		b2 := start(kafka.RebalanceCooperativeSticky, "", nil)
		require.NoError(t, b1.Close(ctx))
		require.Eventually(t, shared(a2, b2), 60*time.Second, 20*time.Millisecond, "roll 2 done")

		// Now cooperative: a third member takes partitions without a2
		// losing the ones it keeps.
		evA2.mu.Lock()
		evA2.revokedEver = map[kafka.TopicPartition]bool{}
		evA2.mu.Unlock()
		c := start(kafka.RebalanceCooperativeSticky, "", nil)
		require.Eventually(t, shared(a2, b2, c), 60*time.Second, 20*time.Millisecond, "a third member joins")
		evA2.mu.Lock()
		defer evA2.mu.Unlock()
		for _, tp := range a2.Assignment() {
			assert.False(t, evA2.revokedEver[tp], "partition %d stayed with a2 and was never revoked", tp.Partition)
		}
	})
}

// TestConsumerCooperativeCancelsRevokedHandlers: with cooperative-sticky, a
// handler running on a partition that moves to a new member has its
// context cancelled at once (its message is not committed and goes to the
// new owner), so the move does not wait for the handler; handlers on the
// partitions that stay are not cancelled.
func TestConsumerCooperativeCancelsRevokedHandlers(t *testing.T) {
	eachEngine(t, func(t *testing.T) {
		cluster := kafkatest.NewCluster(t)
		topic := cluster.NewTopic(t, 4)
		group := kafkatest.UniqueName("g")
		produceN(t, cluster, topic, 40, 40)

		cfgA := fastGroup(cluster, topic, group)
		cfgA.RebalanceStrategy, cfgA.NumWorkers = kafka.RebalanceCooperativeSticky, 4
		cfgA.RebalanceTimeout = time.Minute
		var cancelled sync.Map // partition -> true
		var holding [4]atomic.Bool
		a := newGroup(t, cfgA)
		require.NoError(t, a.RegisterHandler(context.Background(), func(ctx context.Context, _ int, m kafka.Message) error {
			// Every handler holds its message until its context ends: the
			// partitions that move can only move once it is cancelled.
			holding[m.Partition()].Store(true)
			<-ctx.Done()
			cancelled.Store(m.Partition(), true)
			return ctx.Err()
		}))
		a.Start()
		require.Eventually(t, func() bool {
			for i := range holding {
				if !holding[i].Load() {
					return false
				}
			}
			return true
		}, 60*time.Second, 10*time.Millisecond, "A holds a message of every partition")

		cfgB := fastGroup(cluster, topic, group)
		cfgB.RebalanceStrategy = kafka.RebalanceCooperativeSticky
		b := newGroup(t, cfgB)
		require.NoError(t, b.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return nil }))
		b.Start()
		// Well under RebalanceTimeout: the move must not wait for A's
		// handlers to give up by themselves.
		require.Eventually(t, func() bool { return len(a.Assignment()) == 2 && len(b.Assignment()) == 2 }, 30*time.Second, 10*time.Millisecond,
			"the partitions move while A's handlers hold their messages (A %v, B %v)", a.Assignment(), b.Assignment())
		for _, tp := range b.Assignment() {
			_, ok := cancelled.Load(tp.Partition)
			assert.True(t, ok, "the handler of moved partition %d was cancelled", tp.Partition)
		}
		for _, tp := range a.Assignment() {
			_, ok := cancelled.Load(tp.Partition)
			assert.False(t, ok, "the handler of kept partition %d was not cancelled", tp.Partition)
		}
	})
}
