package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The figures of docs/MIGRATING.md that compare kafkahub with dp-kafka,
// which leaves Sarama's defaults in place.

// TestMigratingSaramaDefaultsVersusKafkahub: what a dp-kafka service got
// from Sarama, and what kafkahub sets instead.
func TestMigratingSaramaDefaultsVersusKafkahub(t *testing.T) {
	dp := sarama.NewConfig()
	assert.Equal(t, sarama.OffsetNewest, dp.Consumer.Offsets.Initial)
	assert.Equal(t, sarama.WaitForLocal, dp.Producer.RequiredAcks)
	assert.False(t, dp.Producer.Idempotent)
	assert.True(t, dp.Metadata.AllowAutoTopicCreation)
	assert.Equal(t, 3*time.Second, dp.Consumer.Group.Heartbeat.Interval)

	c, err := ConsumerGroupConfig{BrokerAddrs: []string{"b:9092"}, Topics: []string{"t"}, GroupName: "g"}.withDefaults().saramaConfig()
	require.NoError(t, err)
	assert.Equal(t, sarama.OffsetOldest, c.Consumer.Offsets.Initial)
	assert.Equal(t, time.Second, c.Consumer.Group.Heartbeat.Interval)
	assert.False(t, c.Metadata.AllowAutoTopicCreation)
	p, err := ProducerConfig{BrokerAddrs: []string{"b:9092"}, Topic: "t"}.withDefaults().saramaConfig()
	require.NoError(t, err)
	assert.Equal(t, sarama.WaitForAll, p.Producer.RequiredAcks)
	assert.True(t, p.Producer.Idempotent)
	assert.False(t, p.Metadata.AllowAutoTopicCreation)

	d := ConsumerGroupConfig{}.withDefaults()
	assert.Equal(t, 3, d.HandlerRetries)
	assert.Equal(t, 100*time.Millisecond, d.HandlerRetryBackoff)
}

// TestMigratingKeysMovePartition: of the keys customer-0 to customer-999
// on 12 partitions, 907 land elsewhere with kafkahub's murmur2 than with
// Sarama's FNV-1a (about 11 in 12, as chance would have it).
func TestMigratingKeysMovePartition(t *testing.T) {
	const partitions = 12
	moved := 0
	for i := range 1000 {
		key := sarama.ByteEncoder(fmt.Sprintf("customer-%d", i))
		dp, err := sarama.NewHashPartitioner("t").Partition(&sarama.ProducerMessage{Key: key}, partitions)
		require.NoError(t, err)
		kh, err := partitioner{}.Partition(&sarama.ProducerMessage{Key: key}, partitions)
		require.NoError(t, err)
		if dp != kh {
			moved++
		}
	}
	assert.Equal(t, 907, moved)
}
