package kafka

import (
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMurmur2MatchesJavaClient uses the published vectors of Kafka's Java
// Utils.murmur2, so Go and JVM producers agree on a key's partition.
func TestMurmur2MatchesJavaClient(t *testing.T) {
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		assert.Equal(t, want, int32(murmur2([]byte(in))), in)
	}
}

func TestPartitioner(t *testing.T) {
	p := partitioner{}
	got, err := p.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder("foobar")}, 10)
	require.NoError(t, err)
	// The Java client: toPositive(murmur2("foobar")) % 10.
	java := int32(-790332482)
	assert.Equal(t, int32(uint32(java)&0x7fffffff)%10, got)

	env := &envelope{msg: &ProducerMessage{Partition: new(int32(3))}}
	got, err = p.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder("foobar"), Metadata: env}, 10)
	require.NoError(t, err)
	assert.Equal(t, int32(3), got)
	assert.True(t, p.MessageRequiresConsistency(&sarama.ProducerMessage{Metadata: env}))

	_, err = p.Partition(&sarama.ProducerMessage{Metadata: env}, 2)
	require.ErrorIs(t, err, sarama.ErrInvalidPartition)

	assert.False(t, p.MessageRequiresConsistency(&sarama.ProducerMessage{}))
	for range 100 {
		got, err = p.Partition(&sarama.ProducerMessage{}, 4)
		require.NoError(t, err)
		require.True(t, got >= 0 && got < 4)
	}
}
