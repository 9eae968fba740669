package kafka

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOnHealthChangeIgnoresStaleUpdates: health results delivered out of
// order must not leave the consumer in the wrong state.
func TestOnHealthChangeIgnoresStaleUpdates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := NewConsumerGroup(ctx, &ConsumerGroupConfig{
		BrokerAddrs: []string{"127.0.0.1:1"}, Topics: []string{"t"}, GroupName: "g",
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, g.Close(ctx)) }()

	t0 := time.Now()
	g.OnHealthChange(Health{Status: HealthOK, CheckedAt: t0})
	want, _ := g.intents.Get()
	assert.True(t, want)
	g.OnHealthChange(Health{Status: HealthCritical, CheckedAt: t0.Add(2 * time.Second)})
	g.OnHealthChange(Health{Status: HealthOK, CheckedAt: t0.Add(time.Second)}) // arrives late
	want, _ = g.intents.Get()
	assert.False(t, want, "the older OK must not undo the newer CRITICAL")
	g.OnHealthChange(Health{Status: HealthWarning, CheckedAt: t0.Add(3 * time.Second)})
	g.OnHealthChange(Health{Status: HealthOK, CheckedAt: t0.Add(4 * time.Second)})
	want, _ = g.intents.Get()
	assert.True(t, want)
}

// TestSaramaCooperativeHeartbeatsAtHalfTheInterval: the second round of a
// cooperative rebalance is learnt at a heartbeat, so the Sarama engine
// heartbeats twice per HeartbeatInterval with the cooperative protocol
// (a moved partition waited 1.2 intervals at the full rate in the rolling
// restart test, 0.65 at half). Eager members and members still offering
// an eager fallback keep the configured interval.
func TestSaramaCooperativeHeartbeatsAtHalfTheInterval(t *testing.T) {
	for _, tc := range []struct {
		strategy, fallback RebalanceStrategy
		want               time.Duration
	}{
		{RebalanceCooperativeSticky, "", 500 * time.Millisecond},
		{RebalanceCooperativeSticky, RebalanceCooperativeSticky, 500 * time.Millisecond},
		{RebalanceCooperativeSticky, RebalanceRange, time.Second},
		{RebalanceRange, "", time.Second},
		{RebalanceSticky, "", time.Second},
	} {
		c, err := ConsumerGroupConfig{BrokerAddrs: []string{"b:9092"}, Topics: []string{"t"}, GroupName: "g",
			RebalanceStrategy: tc.strategy, RebalanceFallback: tc.fallback}.withDefaults().saramaConfig()
		require.NoError(t, err)
		assert.Equal(t, tc.want, c.Consumer.Group.Heartbeat.Interval, "%s with fallback %q", tc.strategy, tc.fallback)
	}
}
