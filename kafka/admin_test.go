package kafka_test

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

func TestCreateTopic(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	ctx := testCtx(t, 30*time.Second)
	name := kafkatest.UniqueName("compacted")
	spec := kafka.TopicSpec{Name: name, Partitions: 2, Config: map[string]string{"cleanup.policy": "compact"}}
	require.NoError(t, kafka.CreateTopic(ctx, cluster.Addrs(), nil, spec))
	require.NoError(t, kafka.CreateTopic(ctx, cluster.Addrs(), nil, spec), "existing topic is fine")

	cfg, err := kafka.SaramaConfig("", "", nil)
	require.NoError(t, err)
	assert.False(t, cfg.Metadata.AllowAutoTopicCreation)
	admin, err := sarama.NewClusterAdmin(cluster.Addrs(), cfg) // used as it is, not adjusted
	require.NoError(t, err)
	defer admin.Close()
	topics, err := admin.DescribeTopics([]string{name})
	require.NoError(t, err)
	require.Len(t, topics, 1)
	assert.Len(t, topics[0].Partitions, 2)
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: name})
	require.NoError(t, err)
	policy := ""
	for _, e := range entries {
		if e.Name == "cleanup.policy" {
			policy = e.Value
		}
	}
	assert.Equal(t, "compact", policy)

	require.ErrorIs(t, kafka.CreateTopic(ctx, cluster.Addrs(), nil, kafka.TopicSpec{Partitions: 1}), kafka.ErrInvalidConfig)
	require.ErrorIs(t, kafka.CreateTopic(ctx, cluster.Addrs(), nil, kafka.TopicSpec{Name: "x"}), kafka.ErrInvalidConfig)
	_, err = kafka.SaramaConfig("nope", "", nil)
	require.ErrorIs(t, err, kafka.ErrInvalidConfig)
}

// TestSaramaConfigWorksForAConsumer: the same config, unchanged, reads what
// a kafkahub producer wrote with a raw Sarama consumer.
func TestSaramaConfigWorksForAConsumer(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 30*time.Second)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("raw")}))

	cfg, err := kafka.SaramaConfig("", "", nil)
	require.NoError(t, err)
	consumer, err := sarama.NewConsumer(cluster.Addrs(), cfg)
	require.NoError(t, err)
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	require.NoError(t, err)
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		assert.Equal(t, "raw", string(m.Value))
	case <-ctx.Done():
		t.Fatal("nothing read")
	}
}
