// Package testkit holds helpers shared by kafkahub's own tests: reading
// records back with plain Sarama, and finding free loopback ports.
package testkit

import (
	"context"
	"net"
	"testing"

	"github.com/IBM/sarama"
)

// Record is a record read back from Kafka.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   map[string]string
}

// ReadAll reads every record of topic, from the oldest offset up to each
// partition's high-water mark at the time of the call, with a plain Sarama
// consumer (no group). Call it after the records it must see were
// acknowledged. It fails the test if ctx ends first.
func ReadAll(ctx context.Context, t testing.TB, addrs []string, topic string) []Record {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	client, err := sarama.NewClient(addrs, cfg)
	if err != nil {
		t.Fatalf("testkit: client: %v", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatalf("testkit: consumer: %v", err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("testkit: partitions of %s: %v", topic, err)
	}
	var got []Record
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("testkit: high-water mark of %s/%d: %v", topic, p, err)
		}
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("testkit: oldest offset of %s/%d: %v", topic, p, err)
		}
		if hwm <= oldest {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, oldest)
		if err != nil {
			t.Fatalf("testkit: consume %s/%d: %v", topic, p, err)
		}
		for done := false; !done; {
			select {
			case m := <-pc.Messages():
				r := Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Headers: map[string]string{}}
				for _, h := range m.Headers {
					r.Headers[string(h.Key)] = string(h.Value)
				}
				got = append(got, r)
				done = m.Offset >= hwm-1
			case <-ctx.Done():
				_ = pc.Close()
				t.Fatalf("testkit: reading %s/%d: stopped at %d records: %v", topic, p, len(got), ctx.Err())
			}
		}
		_ = pc.Close()
	}
	return got
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// HighWaters returns the next offset of every partition of topic, read with
// plain Sarama. It fails the test if the cluster cannot tell.
func HighWaters(t testing.TB, addrs []string, topic string) map[int32]int64 {
	t.Helper()
	client, err := sarama.NewClient(addrs, sarama.NewConfig())
	if err != nil {
		t.Fatalf("high waters of %s: %v", topic, err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	out := make(map[int32]int64, len(parts))
	for _, p := range parts {
		if out[p], err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			t.Fatalf("high water of %s/%d: %v", topic, p, err)
		}
	}
	return out
}
