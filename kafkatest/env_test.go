package kafkatest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafkatest"
)

// TestClusterFromEnv: without KAFKA_BROKERS, the embedded broker only when
// asked for; with it, that cluster and its settings.
func TestClusterFromEnv(t *testing.T) {
	if kafkatest.External() {
		t.Skip("KAFKA_BROKERS is set")
	}
	t.Setenv("KAFKA_ADDR", "")
	_, _, err := kafkatest.ClusterFromEnv(false)
	require.ErrorIs(t, err, kafkatest.ErrNoKafka)

	c, ec, err := kafkatest.ClusterFromEnv(true, kafkatest.Brokers(1), kafkatest.SeedTopics(1, "from-env"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	assert.False(t, c.External())
	assert.Equal(t, c.Addrs(), ec.BrokerAddrs)

	t.Setenv("KAFKA_BROKERS", c.Addrs()[0])
	t.Setenv("KAFKA_VERSION", "3.5.0")
	ext, ec, err := kafkatest.ClusterFromEnv(false, kafkatest.SeedTopics(2, "seeded-there"))
	require.NoError(t, err)
	defer ext.Close()
	assert.True(t, ext.External())
	assert.Equal(t, []string{c.Addrs()[0]}, ec.BrokerAddrs)
	assert.Equal(t, "3.5.0", ec.KafkaVersion)
}
