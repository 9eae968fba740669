package kafka

import (
	"context"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
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

// TestFranzPartitioner: the franz-go engine's partitioner places records as
// the Sarama engine's does.
func TestFranzPartitioner(t *testing.T) {
	p := franzPartitioner{}.ForTopic("t")
	java := int32(-790332482) // murmur2("foobar"), Kafka's vector
	assert.Equal(t, int(int32(uint32(java)&0x7fffffff)%10), p.Partition(&kgo.Record{Key: []byte("foobar")}, 10))
	assert.True(t, p.RequiresConsistency(&kgo.Record{Key: []byte("foobar")}))
	assert.False(t, p.RequiresConsistency(&kgo.Record{}))

	o := &franzOutgoing{Context: context.Background(), env: envelope{msg: &ProducerMessage{Partition: new(int32(3))}}}
	o.rec.Key, o.rec.Context = []byte("foobar"), o
	assert.Equal(t, 3, p.Partition(&o.rec, 10))
	assert.True(t, p.RequiresConsistency(&o.rec))
	assert.Equal(t, -1, p.Partition(&o.rec, 2), "out of range: kgo fails the record")
	assert.Equal(t, int32(2), o.outOfRange, "and the promise can say why")
	for range 100 {
		got := p.Partition(&kgo.Record{}, 4)
		require.True(t, got >= 0 && got < 4)
	}
}
