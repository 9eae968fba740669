package kafka_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// fastGroup is a member config that notices rebalances quickly. The session
// timeout stays at real Kafka's minimum (6 s) so the test runs there too.
func fastGroup(cluster *kafkatest.Cluster, topic, group string) *kafka.ConsumerGroupConfig {
	return &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group,
		SessionTimeout: 6 * time.Second, HeartbeatInterval: 100 * time.Millisecond,
		CommitInterval: 100 * time.Millisecond,
	}
}

// TestConsumerRebalanceSlowHandler: while a slow handler runs, a second
// member joins. The handler's context is cancelled, its message is not
// committed and is handled again; nothing is lost.
func TestConsumerRebalanceSlowHandler(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 4)
	produceN(t, cluster, topic, 200, 20)
	group := kafkatest.UniqueName("g")
	s := newSeen(200)
	blocking := make(chan struct{})
	var cancelled atomic.Bool
	var blocked atomic.Bool

	handler := func(ctx context.Context, _ int, m kafka.Message) error {
		if m.Offset() == 10 && blocked.CompareAndSwap(false, true) {
			close(blocking)
			select {
			case <-ctx.Done(): // the rebalance revokes the partition
				cancelled.Store(true)
				return ctx.Err()
			case <-time.After(specWait):
				return fmt.Errorf("context never cancelled")
			}
		}
		s.add(m)
		return nil
	}
	a := newGroup(t, fastGroup(cluster, topic, group))
	require.NoError(t, a.RegisterHandler(context.Background(), handler))
	a.Start()
	select {
	case <-blocking:
	case <-time.After(specWait):
		t.Fatal("member A never reached offset 10")
	}
	b := newGroup(t, fastGroup(cluster, topic, group))
	require.NoError(t, b.RegisterHandler(context.Background(), handler))
	b.Start()

	s.wait(t, 60*time.Second)
	assert.True(t, cancelled.Load(), "the revoked handler's context was cancelled")
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, a.StopAndWait(ctx))
	require.NoError(t, b.StopAndWait(ctx))
	assert.Equal(t, highWater(t, cluster, topic), committed(t, cluster, group, topic))
	t.Logf("rebalance: 200 messages, 2 members, %d duplicates", s.duplicates())
}

// TestConsumerGroupChurn: members join and leave exactly 40 times while
// 5,000 messages are produced and consumed, 125 before each change, so that
// every change finds messages still to handle. Every message is handled,
// everything is committed, and the duplicates stay within what the
// membership changes can replay. After a restart the group resumes from
// its committed offsets.
//
// The duplicate bound: at a graceful change (Close, or a join) every member
// commits its marked offsets when its session ends (sessionEnded), so what
// is replayed is what was handed to a handler and not yet marked: at most
// NumWorkers messages per member, at most maxMembers members, per change.
// Hence dups <= changes * maxMembers * NumWorkers (40 * 4 * 2 = 320).
func TestConsumerGroupChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churn test is long")
	}
	const total, parts, changes, maxMembers, workers = 5000, 6, 40, 4, 2
	const batch = total / changes
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, parts)
	group := kafkatest.UniqueName("churn")
	s := newSeen(total)
	handler := func(_ context.Context, _ int, m kafka.Message) error {
		s.add(m)
		time.Sleep(time.Millisecond) // some work, so changes catch messages in flight
		return nil
	}
	start := time.Now()
	member := func() *kafka.ConsumerGroup {
		cfg := fastGroup(cluster, topic, group)
		cfg.NumWorkers = workers
		g := newGroup(t, cfg)
		require.NoError(t, g.RegisterHandler(context.Background(), handler))
		g.Start()
		return g
	}
	ctx := testCtx(t, 10*time.Minute)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	members := []*kafka.ConsumerGroup{member()}
	waitState(t, members[0], kafka.Consuming, 60*time.Second)
	overlapped := 0 // changes that began with produced messages not yet handled
	for i := range changes {
		acks := make(chan error, batch)
		for j := range batch {
			n := i*batch + j
			select {
			case p.Channels().Output <- &kafka.ProducerMessage{Key: fmt.Appendf(nil, "k%d", n%50), Value: fmt.Appendf(nil, "%d", n),
				OnDelivery: func(d kafka.Delivery) { acks <- d.Err }}:
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
		for range batch {
			select {
			case err := <-acks:
				require.NoError(t, err)
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
		if s.n.Load() < int64((i+1)*batch) {
			overlapped++
		}
		if i%3 == 2 && len(members) > 1 || len(members) == maxMembers {
			require.NoError(t, members[0].Close(ctx))
			members = members[1:]
		} else {
			members = append(members, member())
		}
		waitState(t, members[len(members)-1], kafka.Consuming, 60*time.Second)
	}
	s.wait(t, 120*time.Second)
	for _, m := range members {
		require.NoError(t, m.StopAndWait(ctx))
	}
	elapsed := time.Since(start)
	assert.Equal(t, highWater(t, cluster, topic), committed(t, cluster, group, topic), "all committed")
	dups := s.duplicates()
	t.Logf("churn: FIGURES messages=%d membership_changes=%d overlapped=%d distinct=%d duplicates=%d bound=%d seconds=%.1f",
		total, changes, overlapped, s.n.Load(), dups, changes*maxMembers*workers, elapsed.Seconds())
	assert.EqualValues(t, total, s.n.Load(), "every message handled")
	assert.GreaterOrEqual(t, overlapped, changes/2, "membership changes overlapped consumption")
	assert.LessOrEqual(t, dups, changes*maxMembers*workers, "duplicates: at most the in-flight handler calls of each change")

	// Restart: a new member resumes after the committed offsets.
	for _, m := range members {
		require.NoError(t, m.Close(ctx))
	}
	fresh := make(chan string, 100)
	again := newGroup(t, fastGroup(cluster, topic, group))
	require.NoError(t, again.RegisterHandler(ctx, func(_ context.Context, _ int, m kafka.Message) error {
		fresh <- string(m.Value())
		return nil
	}))
	again.Start()
	waitState(t, again, kafka.Consuming, 60*time.Second)
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("after-restart")}))
	select {
	case v := <-fresh:
		assert.Equal(t, "after-restart", v, "nothing older is replayed")
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
}

// TestConsumerCloseWithBufferedMessages: Close while every partition's
// claim waits for the release of a message the user holds, and Sarama holds
// the rest of the 600 records in its buffers, does not hang, leaks no
// goroutine (goleak in TestMain), commits nothing that was not released,
// and leaves late releases harmless.
func TestConsumerCloseWithBufferedMessages(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 3)
	produceN(t, cluster, topic, 600, 30)
	group := kafkatest.UniqueName("g")
	g := newGroup(t, fastGroup(cluster, topic, group))
	g.Start()
	ctx := testCtx(t, 30*time.Second)
	// One message of each partition, none released: every claim is stuck
	// waiting for its release.
	held := map[int32]kafka.Message{}
	for len(held) < 3 {
		select {
		case m := <-g.Channels().Upstream:
			held[m.Partition()] = m
		case <-ctx.Done():
			t.Fatalf("got the first message of %d of 3 partitions", len(held))
		}
	}
	require.NoError(t, g.Close(ctx))
	_, open := <-g.Channels().Upstream
	assert.False(t, open, "Upstream is closed and empty: a claim sends its next message only after a release")
	for _, m := range held {
		m.Release() // after Close: harmless
	}
	for p, off := range committed(t, cluster, group, topic) {
		assert.LessOrEqual(t, off, int64(0), "partition %d: nothing was released, nothing may be committed", p)
	}
}

func TestDrainTopicsDrainsMoreThanOneBatch(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 3)
	produceN(t, cluster, topic, 1000, 30)
	group := kafkatest.UniqueName("drain")
	ctx := testCtx(t, 60*time.Second)
	target := kafka.DrainTarget{Topic: topic, GroupName: group}
	got, err := kafka.DrainTopics(ctx, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Logger: quiet}, target)
	require.NoError(t, err)
	assert.Equal(t, int64(1000), got[target])
	assert.Equal(t, highWater(t, cluster, topic), committed(t, cluster, group, topic), "lag is zero")

	got, err = kafka.DrainTopics(ctx, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Logger: quiet}, target)
	require.NoError(t, err)
	assert.Equal(t, int64(0), got[target], "nothing left to drain")
}
