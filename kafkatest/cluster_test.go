package kafkatest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkahub/kafkahub/kafkatest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}

func partitions(t *testing.T, addrs []string, topic string) int {
	cfg := sarama.NewConfig()
	client, err := sarama.NewClient(addrs, cfg)
	require.NoError(t, err)
	defer client.Close()
	ps, err := client.Partitions(topic)
	require.NoError(t, err)
	return len(ps)
}

func TestNewClusterCreatesTopics(t *testing.T) {
	seeded := kafkatest.UniqueName("seeded")
	c := kafkatest.NewCluster(t, kafkatest.SeedTopics(2, seeded))
	require.NotEmpty(t, c.Addrs())
	assert.Equal(t, 2, partitions(t, c.Addrs(), seeded))

	topic := c.NewTopic(t, 5)
	assert.True(t, strings.HasPrefix(topic, "kh-TestNewClusterCreatesTopics-"), topic)
	assert.Equal(t, 5, partitions(t, c.Addrs(), topic))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.CreateTopic(ctx, topic, 5), "existing topic is not an error")
	require.Error(t, c.CreateTopic(ctx, "x", 0))
}

func TestEmbeddedClusterShape(t *testing.T) {
	if kafkatest.External() {
		t.Skip("KAFKA_BROKERS is set")
	}
	c := kafkatest.NewCluster(t, kafkatest.Brokers(2))
	assert.Len(t, c.Addrs(), 2)
	assert.False(t, c.External())
	require.NotNil(t, c.Fake())
	c.Close()
	c.Close() // idempotent
	_, err := kafkatest.StartCluster(kafkatest.Brokers(0))
	require.Error(t, err)
}

// TestKafkaBrokersSwitch: with KAFKA_BROKERS set, nothing is started and the
// named cluster is used (here, an embedded one standing in for real Kafka).
func TestKafkaBrokersSwitch(t *testing.T) {
	if kafkatest.External() {
		t.Skip("KAFKA_BROKERS is set")
	}
	real := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	t.Setenv(kafkatest.EnvBrokers, " "+strings.Join(real.Addrs(), " , ")+" ")
	require.True(t, kafkatest.External())
	topic := kafkatest.UniqueName("switch")
	c := kafkatest.NewCluster(t, kafkatest.SeedTopics(3, topic))
	assert.True(t, c.External())
	assert.Nil(t, c.Fake())
	assert.Equal(t, real.Addrs(), c.Addrs())
	assert.Equal(t, 3, partitions(t, real.Addrs(), topic), "topic created on the external cluster")
	c.Close() // must not stop the external cluster
	assert.Equal(t, 3, partitions(t, real.Addrs(), topic))
}

func TestUniqueName(t *testing.T) {
	a, b := kafkatest.UniqueName("Test/with spaces#1"), kafkatest.UniqueName("Test/with spaces#1")
	assert.NotEqual(t, a, b)
	assert.Regexp(t, `^kh-Test-with-spaces-1-[0-9a-f]{12}$`, a)
	assert.LessOrEqual(t, len(kafkatest.UniqueName(strings.Repeat("x", 500))), 249, "Kafka's topic name limit")
}
