package kafka

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeSaramaSession is the part of a Sarama session the engine's handler
// uses: its claims, generation and context.
type fakeSaramaSession struct {
	ctx    context.Context
	claims map[string][]int32
}

func (s fakeSaramaSession) Claims() map[string][]int32                  { return s.claims }
func (s fakeSaramaSession) MemberID() string                            { return "m" }
func (s fakeSaramaSession) GenerationID() int32                         { return 1 }
func (s fakeSaramaSession) MarkOffset(string, int32, int64, string)     {}
func (s fakeSaramaSession) Commit()                                     {}
func (s fakeSaramaSession) ResetOffset(string, int32, int64, string)    {}
func (s fakeSaramaSession) MarkMessage(*sarama.ConsumerMessage, string) {}
func (s fakeSaramaSession) Context() context.Context                    { return s.ctx }

type fakeSaramaClaim struct {
	partition int32
	msgs      chan *sarama.ConsumerMessage
}

func (c fakeSaramaClaim) Topic() string                            { return "t" }
func (c fakeSaramaClaim) Partition() int32                         { return c.partition }
func (c fakeSaramaClaim) InitialOffset() int64                     { return 0 }
func (c fakeSaramaClaim) HighWaterMarkOffset() int64               { return 0 }
func (c fakeSaramaClaim) Messages() <-chan *sarama.ConsumerMessage { return c.msgs }

// TestSaramaCooperativeClaimRevokedBeforeItStarts: with the cooperative
// protocol Sarama can revoke a partition whose claim it is still creating,
// and then never calls ConsumeClaim for it. Such a partition must not be
// left in Assignment(): here partitions 0 and 2 are consumed and revoked,
// and partition 1's claim never starts.
func TestSaramaCooperativeClaimRevokedBeforeItStarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var assigned, revoked []TopicPartition
	g, err := NewConsumerGroup(ctx, &ConsumerGroupConfig{
		BrokerAddrs: []string{"127.0.0.1:1"}, Topics: []string{"t"}, GroupName: "g",
		RebalanceStrategy: RebalanceCooperativeSticky, Engine: EngineSarama,
		Logger: slog.New(slog.DiscardHandler),
		OnAssigned: func(_ context.Context, tps []TopicPartition) {
			mu.Lock()
			defer mu.Unlock()
			assigned = append(assigned, tps...)
		},
		OnRevoked: func(_ context.Context, tps []TopicPartition) {
			mu.Lock()
			defer mu.Unlock()
			revoked = append(revoked, tps...)
		},
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, g.Close(ctx)) }()
	require.NoError(t, g.RegisterHandler(ctx, func(context.Context, int, Message) error { return nil }))

	sess := fakeSaramaSession{ctx: ctx, claims: map[string][]int32{"t": {0, 1, 2}}}
	h := &saramaSession{g: g}
	require.NoError(t, h.Setup(sess))
	var wg sync.WaitGroup
	for _, p := range []int32{0, 2} {
		c := fakeSaramaClaim{partition: p, msgs: make(chan *sarama.ConsumerMessage)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, h.ConsumeClaim(sess, c))
		}()
		require.Eventually(t, func() bool { return slices.Contains(g.Assignment(), TopicPartition{"t", p}) },
			10*time.Second, time.Millisecond, "partition %d reported once its claim runs", p)
		close(c.msgs) // Sarama's revocation of a running claim
	}
	wg.Wait()
	assert.Empty(t, g.Assignment(), "partition 1's claim never started: it is not assigned")
	mu.Lock()
	assert.ElementsMatch(t, assigned, revoked, "every partition reported assigned is reported revoked")
	mu.Unlock()
}
