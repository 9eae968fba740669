package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// produceN writes n records, keyed k0..k(keys-1), valued "0".."n-1".
func produceN(t *testing.T, cluster *kafkatest.Cluster, topic string, n, keys int) {
	t.Helper()
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	ctx := testCtx(t, 60*time.Second)
	results := make(chan error, n)
	for i := range n {
		select {
		case p.Channels().Output <- &kafka.ProducerMessage{
			Key: fmt.Appendf(nil, "k%d", i%keys), Value: fmt.Appendf(nil, "%d", i),
			OnDelivery: func(d kafka.Delivery) { results <- d.Err },
		}:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	for range n {
		select {
		case err := <-results:
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

func newGroup(t *testing.T, cfg *kafka.ConsumerGroupConfig) *kafka.ConsumerGroup {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := kafka.NewConsumerGroup(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		require.NoError(t, g.Close(ctx))
	})
	return g
}

// committed returns the group's committed offset per partition (-1: none).
func committed(t *testing.T, cluster *kafkatest.Cluster, group, topic string) map[int32]int64 {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(cluster.Addrs(), sarama.NewConfig())
	require.NoError(t, err)
	defer admin.Close()
	client, err := sarama.NewClient(cluster.Addrs(), sarama.NewConfig())
	require.NoError(t, err)
	defer client.Close()
	parts, err := client.Partitions(topic)
	require.NoError(t, err)
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	require.NoError(t, err)
	out := map[int32]int64{}
	for p, b := range resp.Blocks[topic] {
		out[p] = b.Offset
	}
	return out
}

// highWater returns each partition's next offset.
func highWater(t *testing.T, cluster *kafkatest.Cluster, topic string) map[int32]int64 {
	return testkit.HighWaters(t, cluster.Addrs(), topic)
}

// waitState fails the test if g does not reach s within d.
func waitState(t *testing.T, g *kafka.ConsumerGroup, s kafka.State, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := g.StateWait(ctx, s); err != nil {
		t.Fatalf("state %v not reached within %v (now %v)", s, d, g.State())
	}
}
