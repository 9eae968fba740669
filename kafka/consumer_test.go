package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// seen collects handled messages by topic/partition/offset.
type seen struct {
	mu    sync.Mutex
	by    map[string]int
	order map[int32][]int64
	n     atomic.Int64
	all   chan struct{}
	want  int64
}

func newSeen(want int) *seen {
	return &seen{by: map[string]int{}, order: map[int32][]int64{}, all: make(chan struct{}), want: int64(want)}
}

func (s *seen) add(m kafka.Message) {
	s.mu.Lock()
	id := fmt.Sprintf("%s/%d/%d", m.Topic(), m.Partition(), m.Offset())
	s.by[id]++
	first := s.by[id] == 1
	s.order[m.Partition()] = append(s.order[m.Partition()], m.Offset())
	s.mu.Unlock()
	if first && s.n.Add(1) == s.want {
		close(s.all)
	}
}

func (s *seen) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-s.all:
	case <-time.After(d):
		t.Fatalf("saw %d of %d distinct messages within %v", s.n.Load(), s.want, d)
	}
}

func (s *seen) duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := 0
	for _, c := range s.by {
		d += c - 1
	}
	return d
}

func TestConsumerHandlerWorkersOrderAndCommit(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 4)
	produceN(t, cluster, topic, 400, 16)
	group := kafkatest.UniqueName("g")

	s := newSeen(400)
	var inFlight, maxInFlight atomic.Int32
	workerIDs := sync.Map{}
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group, NumWorkers: 3})
	require.NoError(t, g.RegisterHandler(context.Background(), func(ctx context.Context, worker int, m kafka.Message) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			old := maxInFlight.Load()
			if n <= old || maxInFlight.CompareAndSwap(old, n) {
				break
			}
		}
		workerIDs.Store(worker, true)
		s.add(m)
		return nil
	}))
	require.ErrorIs(t, g.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return nil }), kafka.ErrHandlerRegistered)
	g.Start()
	s.wait(t, 30*time.Second)
	require.NoError(t, g.StopAndWait(testCtx(t, 30*time.Second)))
	assert.Equal(t, kafka.Stopped, g.State())

	assert.LessOrEqual(t, maxInFlight.Load(), int32(3), "never more than NumWorkers handlers at once")
	workerIDs.Range(func(k, _ any) bool {
		assert.True(t, k.(int) >= 0 && k.(int) < 3, "worker id %v", k)
		return true
	})
	for p, offs := range s.order {
		for i := 1; i < len(offs); i++ {
			require.Less(t, offs[i-1], offs[i], "partition %d handled out of order", p)
		}
	}
	assert.Equal(t, highWater(t, cluster, topic), committed(t, cluster, group, topic), "every offset committed after Stop")
}

func TestConsumerUpstreamCommitAndRelease(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 2)
	produceN(t, cluster, topic, 20, 4)
	group := kafkatest.UniqueName("g")
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group})
	g.Start()
	ctx := testCtx(t, 30*time.Second)
	got := map[string]bool{}
	for len(got) < 20 {
		select {
		case m := <-g.Channels().Upstream:
			got[string(m.Value())] = true
			m.CommitAndRelease()
			m.Release() // harmless
		case <-ctx.Done():
			t.Fatalf("got %d of 20", len(got))
		}
	}
	require.NoError(t, g.StopAndWait(ctx))
	assert.Equal(t, highWater(t, cluster, topic), committed(t, cluster, group, topic))
	require.NoError(t, g.Close(ctx))
	_, open := <-g.Channels().Upstream
	assert.False(t, open, "Upstream is closed by Close")
}

// TestConsumerStopAndWaitWaitsForHandler: StopAndWait returns only after a
// slow in-flight handler has finished and its offset is committed.
func TestConsumerStopAndWaitWaitsForHandler(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	produceN(t, cluster, topic, 1, 1)
	group := kafkatest.UniqueName("g")
	started := make(chan struct{})
	var finished atomic.Bool
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group})
	require.NoError(t, g.RegisterHandler(context.Background(), func(ctx context.Context, _ int, m kafka.Message) error {
		close(started)
		time.Sleep(500 * time.Millisecond) // a handler that ignores its context
		finished.Store(true)
		return nil
	}))
	g.Start()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("handler not called")
	}
	begin := time.Now()
	require.NoError(t, g.StopAndWait(testCtx(t, 30*time.Second)))
	assert.True(t, finished.Load(), "StopAndWait returned before the handler finished")
	assert.Equal(t, kafka.Stopped, g.State())
	assert.Equal(t, map[int32]int64{0: 1}, committed(t, cluster, group, topic), "its offset is committed")
	t.Logf("StopAndWait took %v", time.Since(begin))
}

func TestConsumerBatchHandler(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	produceN(t, cluster, topic, 25, 1)
	group := kafkatest.UniqueName("g")
	var mu sync.Mutex
	var sizes []int
	var values []string
	done := make(chan struct{})
	g := newGroup(t, &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group,
		BatchSize: 10, BatchWaitTime: 300 * time.Millisecond,
	})
	require.NoError(t, g.RegisterBatchHandler(context.Background(), func(ctx context.Context, batch []kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(batch))
		for _, m := range batch {
			values = append(values, string(m.Value()))
		}
		if len(values) == 25 {
			close(done)
		}
		return nil
	}))
	g.Start()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("batches so far: %v", sizes)
	}
	require.NoError(t, g.StopAndWait(testCtx(t, 30*time.Second)))
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range sizes {
		assert.LessOrEqual(t, n, 10)
		total += n
	}
	assert.Equal(t, 25, total)
	assert.Equal(t, 5, sizes[len(sizes)-1], "the last 5 came out by BatchWaitTime")
	for i, v := range values {
		assert.Equal(t, strconv.Itoa(i), v)
	}
	assert.Equal(t, map[int32]int64{0: 25}, committed(t, cluster, group, topic))
}
