package kafka

import (
	"fmt"
	"math/rand/v2"

	"github.com/IBM/sarama"
)

// partitioner picks the record's explicit partition when it has one, and
// otherwise hashes the key with murmur2 exactly as the Java client's default
// partitioner does, so Go and JVM producers put a key on the same partition.
// Records without a key go to a random partition.
type partitioner struct{}

func newPartitioner(string) sarama.Partitioner { return partitioner{} }

func (partitioner) Partition(m *sarama.ProducerMessage, n int32) (int32, error) {
	if env, ok := m.Metadata.(*envelope); ok && env.msg.Partition != nil {
		p := *env.msg.Partition
		if p < 0 || p >= n {
			return 0, fmt.Errorf("%w: partition %d of topic %q (it has %d)", sarama.ErrInvalidPartition, p, m.Topic, n)
		}
		return p, nil
	}
	if m.Key == nil {
		return keyPartition(nil, n), nil
	}
	key, err := m.Key.Encode()
	if err != nil {
		return 0, err
	}
	return keyPartition(key, n), nil
}

// keyPartition places a record without an explicit partition among n, for
// every engine: murmur2 of the key, or a random partition for a nil key.
func keyPartition(key []byte, n int32) int32 {
	if key == nil {
		return rand.Int32N(n)
	}
	return int32(murmur2(key)&0x7fffffff) % n
}

// RequiresConsistency keeps keyed records on their partition even while its
// leader is unavailable: moving them would break per-key ordering.
func (partitioner) RequiresConsistency() bool { return true }

// MessageRequiresConsistency lets records without key or explicit partition
// go to any available partition.
func (partitioner) MessageRequiresConsistency(m *sarama.ProducerMessage) bool {
	if env, ok := m.Metadata.(*envelope); ok && env.msg.Partition != nil {
		return true
	}
	return m.Key != nil
}

// murmur2 is the 32-bit MurmurHash2 variant (seed 0x9747b28c) used by Kafka's
// Java client.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
