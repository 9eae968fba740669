package kafka_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

func TestListAndDeleteTopics(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	ctx := testCtx(t, 60*time.Second)
	name := kafkatest.UniqueName("doomed")
	require.NoError(t, kafka.CreateTopic(ctx, cluster.Addrs(), nil, kafka.TopicSpec{Name: name, Partitions: 1}))
	topics, err := kafka.ListTopics(ctx, cluster.Addrs(), nil)
	require.NoError(t, err)
	assert.Contains(t, topics, name)
	for _, tp := range topics {
		assert.NotRegexp(t, "^__", tp, "internal topics are left out")
	}

	require.NoError(t, kafka.DeleteTopic(ctx, cluster.Addrs(), nil, name))
	topics, err = kafka.ListTopics(ctx, cluster.Addrs(), nil)
	require.NoError(t, err)
	assert.NotContains(t, topics, name)
	require.NoError(t, kafka.DeleteTopic(ctx, cluster.Addrs(), nil, name), "a missing topic is not an error")
	require.ErrorIs(t, kafka.DeleteTopic(ctx, cluster.Addrs(), nil, ""), kafka.ErrInvalidConfig)
}
