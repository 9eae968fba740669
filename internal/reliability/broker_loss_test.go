//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// TestBrokerLossDuringProduce: 100,000 keyed records with acks=all and
// idempotence while the leader of partition 0 is stopped and restarted.
// Every acknowledged record must be read back, in per-key order.
func TestBrokerLossDuringProduce(t *testing.T) {
	const total, keys = 100_000, 1000
	c := realCluster(t)
	topic := c.NewTopic(t, 6)
	ctx := ctxFor(t, 10*time.Minute)
	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: c.Addrs(), Topic: topic, Logger: quiet})
	require.NoError(t, err)
	defer p.Close(context.Background())
	require.NoError(t, p.Initialise(ctx))

	victim := c.leaderOf(t, topic, 0)
	c.restartOnCleanup(t, victim)
	var acked, failed atomic.Int64
	var mu sync.Mutex
	ok := make(map[string]bool, total)
	at20k, at60k, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once20, once60 sync.Once
	var outstanding sync.WaitGroup

	faults := make(chan struct{})
	go func() {
		defer close(faults)
		select {
		case <-at20k:
		case <-done:
			return
		}
		c.stopNode(t, victim)
		select {
		case <-at60k:
		case <-done:
		}
		c.restartNode(t, victim)
		c.waitReady(t)
	}()

	start := time.Now()
	for i := range total {
		key, seq := i%keys, i/keys
		val := fmt.Sprintf("k%03d:%d", key, seq)
		outstanding.Add(1)
		msg := &kafka.ProducerMessage{Key: fmt.Appendf(nil, "k%03d", key), Value: []byte(val),
			OnDelivery: func(d kafka.Delivery) {
				defer outstanding.Done()
				if d.Err != nil {
					failed.Add(1)
					return
				}
				mu.Lock()
				ok[val] = true
				mu.Unlock()
				switch n := acked.Add(1); {
				case n >= 60_000:
					once60.Do(func() { close(at60k) })
				case n >= 20_000:
					once20.Do(func() { close(at20k) })
				}
			}}
		select {
		case p.Channels().Output <- msg:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	outstanding.Wait()
	close(done)
	<-faults
	elapsed := time.Since(start)
	require.NoError(t, p.Close(ctx))

	recs := testkit.ReadAll(ctx, t, c.Addrs(), topic)
	seen := make(map[string]int, len(recs))
	last := map[string]int{}
	outOfOrder := 0
	for _, r := range recs {
		v := string(r.Value)
		seen[v]++
		var k, s int
		_, err := fmt.Sscanf(v, "k%03d:%d", &k, &s)
		require.NoError(t, err)
		key := string(r.Key)
		if prev, has := last[key]; has && s <= prev {
			outOfOrder++
		}
		last[key] = s
	}
	lost, dups := 0, 0
	for v := range ok {
		if seen[v] == 0 {
			lost++
		}
	}
	for _, n := range seen {
		dups += n - 1
	}
	figures(t, "broker-loss-produce", "sent", total, "acknowledged", acked.Load(), "failed", failed.Load(),
		"received", len(recs), "lost", lost, "duplicated", dups, "out_of_order", outOfOrder,
		"seconds", fmt.Sprintf("%.1f", elapsed.Seconds()), "stopped_node", victim)
	assert.Zero(t, lost, "acknowledged records missing")
	assert.Zero(t, outOfOrder, "per-key order broken")
	assert.Greater(t, acked.Load(), int64(60_000), "the fault window saw traffic")
}

// TestBrokerLossDuringConsume: a group of three members consumes while the
// group coordinator's broker is stopped and restarted. Every record is
// handled at least once; duplicates are counted.
func TestBrokerLossDuringConsume(t *testing.T) {
	const total = 30_000
	c := realCluster(t)
	topic := c.NewTopic(t, 6)
	group := kafkatest.UniqueName("loss")
	ctx := ctxFor(t, 10*time.Minute)
	fill(t, ctx, c, topic, total)

	var mu sync.Mutex
	handled := map[string]int{}
	distinct := atomic.Int64{}
	tenth, all := make(chan struct{}), make(chan struct{})
	var onceTenth, onceAll sync.Once
	handler := func(_ context.Context, _ int, m kafka.Message) error {
		id := fmt.Sprintf("%d/%d", m.Partition(), m.Offset())
		mu.Lock()
		handled[id]++
		first := handled[id] == 1
		mu.Unlock()
		if first {
			switch n := distinct.Add(1); {
			case n == total:
				onceAll.Do(func() { close(all) })
			case n >= total/10:
				onceTenth.Do(func() { close(tenth) })
			}
		}
		time.Sleep(100 * time.Microsecond) // work: keeps the fault inside the run
		return nil
	}
	var members []*kafka.ConsumerGroup
	for range 3 {
		g, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
			BrokerAddrs: c.Addrs(), Topics: []string{topic}, GroupName: group, Logger: quiet,
			HeartbeatInterval: 500 * time.Millisecond, CommitInterval: 200 * time.Millisecond,
		})
		require.NoError(t, err)
		defer g.Close(context.Background())
		require.NoError(t, g.RegisterHandler(ctx, handler))
		g.Start()
		members = append(members, g)
	}
	start := time.Now()
	select {
	case <-tenth:
	case <-ctx.Done():
		t.Fatal("consumption never started")
	}
	coord := c.coordinator(t, group)
	c.restartOnCleanup(t, coord)
	c.stopNode(t, coord)
	c.restartNode(t, coord)
	select {
	case <-all:
	case <-ctx.Done():
		t.Fatalf("handled %d of %d distinct records", distinct.Load(), total)
	}
	for _, g := range members {
		require.NoError(t, g.StopAndWait(ctx))
	}
	elapsed := time.Since(start)
	mu.Lock()
	dups := 0
	for _, n := range handled {
		dups += n - 1
	}
	mu.Unlock()
	figures(t, "broker-loss-consume", "records", total, "members", 3, "distinct", distinct.Load(),
		"lost", total-int(distinct.Load()), "duplicated", dups, "seconds", fmt.Sprintf("%.1f", elapsed.Seconds()),
		"stopped_coordinator", coord)
	// A rebalance replays at most what was handled but not yet committed:
	// about CommitInterval's worth per member plus what was in flight.
	assert.Less(t, dups, total/5, "duplicates bounded by the in-flight window")
}

// fill produces n records and waits for all of them.
func fill(t *testing.T, ctx context.Context, c *cluster, topic string, n int) {
	t.Helper()
	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: c.Addrs(), Topic: topic, Logger: quiet})
	require.NoError(t, err)
	defer p.Close(context.Background())
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range n {
		wg.Add(1)
		msg := &kafka.ProducerMessage{Key: fmt.Appendf(nil, "k%d", i%97), Value: fmt.Appendf(nil, "%d", i),
			OnDelivery: func(d kafka.Delivery) {
				if d.Err != nil {
					failed.Add(1)
				}
				wg.Done()
			}}
		select {
		case p.Channels().Output <- msg:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	wg.Wait()
	require.Zero(t, failed.Load())
}
