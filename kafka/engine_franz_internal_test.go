package kafka

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestFranzSlowPartitionPausesAlone: a partition whose handler is stuck
// fills its claim to the high mark and has its fetching paused; the poll
// loop is not held up, so another partition's new records are still
// handled; once the handler returns, the partition resumes and every record
// is handled.
func TestFranzSlowPartitionPausesAlone(t *testing.T) {
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "bp"))
	require.NoError(t, err)
	t.Cleanup(fake.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)

	p, err := NewProducer(ctx, &ProducerConfig{BrokerAddrs: fake.ListenAddrs(), Topic: "bp", Engine: EngineFranz, Logger: quiet})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close(ctx)) }()
	send := func(part int32, n int, value []byte) {
		for range n {
			require.NoError(t, p.Send(ctx, &ProducerMessage{Partition: &part, Value: value}))
		}
	}
	const slowN = franzHighBytes/1024 + 1000 // more than the high mark in bytes
	send(0, slowN, make([]byte, 1024))

	g, err := NewConsumerGroup(ctx, &ConsumerGroupConfig{BrokerAddrs: fake.ListenAddrs(), Topics: []string{"bp"},
		GroupName: "bp-g", Engine: EngineFranz, NumWorkers: 2, Logger: quiet})
	require.NoError(t, err)
	defer func() { require.NoError(t, g.Close(ctx)) }()
	release := make(chan struct{})
	var handled [2]atomic.Int32
	require.NoError(t, g.RegisterHandler(ctx, func(hctx context.Context, _ int, m Message) error {
		if m.Partition() == 0 {
			select {
			case <-release:
			case <-hctx.Done():
				return hctx.Err()
			}
		}
		handled[m.Partition()].Add(1)
		return nil
	}))
	g.Start()

	paused := func() bool {
		r := g.eng.Load()
		if r == nil {
			return false
		}
		e := r.groupEngine.(*franzGroup)
		e.mu.Lock()
		defer e.mu.Unlock()
		_, full := e.full[TopicPartition{"bp", 0}]
		return full
	}
	require.Eventually(t, paused, 60*time.Second, 10*time.Millisecond, "the stuck partition's fetching is paused")
	send(1, 100, []byte("x"))
	require.Eventually(t, func() bool { return handled[1].Load() == 100 }, 60*time.Second, 10*time.Millisecond,
		"the other partition's records are handled while partition 0 is stuck (%d of 100)", handled[1].Load())
	require.Zero(t, handled[0].Load())

	close(release)
	require.Eventually(t, func() bool { return handled[0].Load() == slowN }, 60*time.Second, 10*time.Millisecond,
		"after the handler returns every record of partition 0 is handled (%d of %d)", handled[0].Load(), slowN)
	require.False(t, paused(), "and its fetching resumed")
}
