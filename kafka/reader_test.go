package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

func newReader(t *testing.T, cfg *kafka.ReaderConfig) *kafka.Reader {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	r, err := kafka.NewReader(testCtx(t, 30*time.Second), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r
}

// readN reads n messages within d.
func readN(t *testing.T, r *kafka.Reader, n int, d time.Duration) []kafka.Message {
	t.Helper()
	var got []kafka.Message
	timeout := time.After(d)
	for len(got) < n {
		select {
		case m, ok := <-r.Messages():
			require.True(t, ok, "Messages closed after %d of %d", len(got), n)
			got = append(got, m)
		case <-timeout:
			t.Fatalf("read %d of %d messages within %v", len(got), n, d)
		}
	}
	return got
}

// assertNothingMore fails if a message arrives within d.
func assertNothingMore(t *testing.T, r *kafka.Reader, d time.Duration) {
	t.Helper()
	select {
	case m := <-r.Messages():
		t.Fatalf("unexpected message %s/%d@%d: %s", m.Topic(), m.Partition(), m.Offset(), m.Value())
	case <-time.After(d):
	}
}

// inOrder checks that each partition's offsets only grow, and returns the
// values read.
func inOrder(t *testing.T, msgs []kafka.Message) map[string]int {
	t.Helper()
	last := map[int32]int64{}
	values := map[string]int{}
	for _, m := range msgs {
		if prev, ok := last[m.Partition()]; ok {
			require.Greater(t, m.Offset(), prev, "partition %d", m.Partition())
		}
		last[m.Partition()] = m.Offset()
		values[string(m.Value())]++
	}
	return values
}

func TestReaderOldestAndNewest(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 3)
	produceN(t, cluster, topic, 30, 7)

	oldest := newReader(t, &kafka.ReaderConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, From: kafka.ReadOldest})
	newest := newReader(t, &kafka.ReaderConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	assert.ElementsMatch(t, []int32{0, 1, 2}, oldest.Partitions())
	total := int64(0)
	for _, end := range oldest.Backlog() {
		total += end
	}
	assert.Equal(t, int64(30), total, "the backlog counts the records held at start")
	assert.Empty(t, newest.Backlog())

	values := inOrder(t, readN(t, oldest, 30, 30*time.Second))
	for i := range 30 {
		assert.Equal(t, 1, values[strconv.Itoa(i)], "record %d read once", i)
	}

	// Records produced afterwards reach both; the newest reader saw none of
	// the earlier ones.
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	ctx := kafka.WithTraceID(testCtx(t, 30*time.Second), "trace-reader")
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Key: []byte("k"), Value: []byte("late"), Headers: []kafka.Header{{Key: "h", Value: []byte("v")}}}))
	for _, r := range []*kafka.Reader{oldest, newest} {
		m := readN(t, r, 1, 30*time.Second)[0]
		assert.Equal(t, "late", string(m.Value()))
		assert.Equal(t, "k", string(m.Key()))
		assert.Equal(t, topic, m.Topic())
		h, ok := m.Header("h")
		assert.True(t, ok)
		assert.Equal(t, "v", string(h))
		assert.Equal(t, "trace-reader", kafka.TraceID(m.Context()))
		assert.False(t, m.Timestamp().IsZero())
		m.CommitAndRelease() // no group: harmless
	}
	assertNothingMore(t, newest, 300*time.Millisecond)
}

func TestReaderPartitionsSubset(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 3)
	produceN(t, cluster, topic, 30, 7)
	r := newReader(t, &kafka.ReaderConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Partitions: []int32{1}, From: kafka.ReadOldest})
	end := r.Backlog()[1]
	require.Positive(t, end)
	for _, m := range readN(t, r, int(end), 30*time.Second) {
		assert.Equal(t, int32(1), m.Partition())
	}
	assertNothingMore(t, r, 300*time.Millisecond)
}

// TestReaderResumesAfterFailure: a fetch that fails for good (the broker
// says the offset is out of range once) stops the client's partition
// consumer; the Reader resumes from the next record, losing and repeating
// nothing.
func TestReaderResumesAfterFailure(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	fake := cluster.Fake()
	if fake == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	topic := cluster.NewTopic(t, 1)
	produceN(t, cluster, topic, 10, 1)
	r := newReader(t, &kafka.ReaderConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, From: kafka.ReadOldest, MinRetryPeriod: 10 * time.Millisecond})
	first := readN(t, r, 10, 30*time.Second)

	var failed atomic.Int32
	fake.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		if failed.Load() > 0 {
			return nil, nil, false
		}
		fr := req.(*kmsg.FetchRequest)
		resp := fr.ResponseKind().(*kmsg.FetchResponse)
		for _, ft := range fr.Topics {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = ft.Topic, ft.TopicID
			for _, fp := range ft.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition = fp.Partition
				rp.ErrorCode = kerr.OffsetOutOfRange.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		failed.Add(1)
		return resp, nil, true
	})
	produceN(t, cluster, topic, 10, 1)
	values := inOrder(t, append(first, readN(t, r, 10, 30*time.Second)...))
	require.Positive(t, failed.Load(), "the fault was injected")
	for i := range 10 {
		assert.Equal(t, 2, values[fmt.Sprint(i)], "value %d: once per batch", i)
	}
	assertNothingMore(t, r, 300*time.Millisecond)
}

func TestReaderConfigAndClose(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		field string
		cfg   kafka.ReaderConfig
	}{
		{"BrokerAddrs", kafka.ReaderConfig{Topic: "t"}},
		{"Topic", kafka.ReaderConfig{BrokerAddrs: []string{"x:1"}}},
		{"Partitions", kafka.ReaderConfig{BrokerAddrs: []string{"x:1"}, Topic: "t", Partitions: []int32{-1}}},
		{"From", kafka.ReaderConfig{BrokerAddrs: []string{"x:1"}, Topic: "t", From: 7}},
		{"Engine", kafka.ReaderConfig{BrokerAddrs: []string{"x:1"}, Topic: "t", Engine: "nope"}},
	} {
		_, err := kafka.NewReader(ctx, &tc.cfg)
		require.ErrorIs(t, err, kafka.ErrInvalidConfig, tc.field)
		var ce *kafka.ConfigError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, tc.field, ce.Field)
	}

	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 2)
	r, err := kafka.NewReader(testCtx(t, 30*time.Second), &kafka.ReaderConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.NoError(t, r.Close(), "Close is idempotent")
	_, ok := <-r.Messages()
	assert.False(t, ok, "Messages is closed after Close")

	// A context that ends while connecting leaves nothing running (goleak
	// checks it after the package).
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = kafka.NewReader(cctx, &kafka.ReaderConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Logger: quiet})
	require.ErrorIs(t, err, context.Canceled)
}

// A Reader rebuilds a table from a compacted topic: it reads from the
// oldest offset, and the table is complete once the backlog (each
// partition's end at start) is read.
func ExampleReader() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := kafkatest.UniqueName("settings")
	cluster, err := kafkatest.StartCluster(kafkatest.Brokers(1), kafkatest.SeedTopics(1, topic))
	if err != nil {
		panic(err)
	}
	defer cluster.Close()
	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer p.Close(ctx)
	for _, kv := range [][2]string{{"colour", "red"}, {"size", "L"}, {"colour", "blue"}} {
		if err := p.Send(ctx, &kafka.ProducerMessage{Key: []byte(kv[0]), Value: []byte(kv[1])}); err != nil {
			panic(err)
		}
	}

	r, err := kafka.NewReader(ctx, &kafka.ReaderConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, From: kafka.ReadOldest, Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer r.Close()
	table := map[string]string{}
	backlog := r.Backlog()
	for len(backlog) > 0 {
		m := <-r.Messages()
		table[string(m.Key())] = string(m.Value())
		if end, ok := backlog[m.Partition()]; ok && m.Offset() >= end-1 {
			delete(backlog, m.Partition())
		}
	}
	fmt.Println(table)
	// Output:
	// map[colour:blue size:L]
}
