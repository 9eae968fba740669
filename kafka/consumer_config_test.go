package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

func TestConsumerGroupConfigValidate(t *testing.T) {
	valid := func() *kafka.ConsumerGroupConfig {
		return &kafka.ConsumerGroupConfig{BrokerAddrs: []string{"127.0.0.1:9092"}, Topics: []string{"t"}, GroupName: "g"}
	}
	tests := []struct {
		name  string
		edit  func(*kafka.ConsumerGroupConfig)
		field string
	}{
		{"minimal", func(*kafka.ConsumerGroupConfig) {}, ""},
		{"several topics", func(c *kafka.ConsumerGroupConfig) { c.Topics = []string{"a", "b"} }, ""},
		{"no brokers", func(c *kafka.ConsumerGroupConfig) { c.BrokerAddrs = nil }, "BrokerAddrs"},
		{"no topics", func(c *kafka.ConsumerGroupConfig) { c.Topics = nil }, "Topics"},
		{"empty topic", func(c *kafka.ConsumerGroupConfig) { c.Topics = []string{"a", ""} }, "Topics"},
		{"topic twice", func(c *kafka.ConsumerGroupConfig) { c.Topics = []string{"a", "a"} }, "Topics"},
		{"no group", func(c *kafka.ConsumerGroupConfig) { c.GroupName = "" }, "GroupName"},
		{"negative workers", func(c *kafka.ConsumerGroupConfig) { c.NumWorkers = -1 }, "NumWorkers"},
		{"negative batch", func(c *kafka.ConsumerGroupConfig) { c.BatchSize = -5 }, "BatchSize"},
		{"negative batch wait", func(c *kafka.ConsumerGroupConfig) { c.BatchWaitTime = -time.Second }, "BatchWaitTime"},
		{"negative session", func(c *kafka.ConsumerGroupConfig) { c.SessionTimeout = -time.Second }, "SessionTimeout"},
		{"heartbeat >= session", func(c *kafka.ConsumerGroupConfig) {
			c.SessionTimeout, c.HeartbeatInterval = 6*time.Second, 6*time.Second
		}, "HeartbeatInterval"},
		{"bad retries", func(c *kafka.ConsumerGroupConfig) { c.HandlerRetries = -2 }, "HandlerRetries"},
		{"no retries", func(c *kafka.ConsumerGroupConfig) { c.HandlerRetries = -1 }, ""},
		{"bad strategy", func(c *kafka.ConsumerGroupConfig) { c.RebalanceStrategy = "cooperative" }, "RebalanceStrategy"},
		{"cooperative sticky", func(c *kafka.ConsumerGroupConfig) { c.RebalanceStrategy = kafka.RebalanceCooperativeSticky }, ""},
		{"migration fallback", func(c *kafka.ConsumerGroupConfig) {
			c.RebalanceStrategy, c.RebalanceFallback = kafka.RebalanceCooperativeSticky, kafka.RebalanceRange
		}, ""},
		{"fallback is the strategy", func(c *kafka.ConsumerGroupConfig) { c.RebalanceFallback = kafka.RebalanceRange }, "RebalanceFallback"},
		{"bad fallback", func(c *kafka.ConsumerGroupConfig) { c.RebalanceFallback = "eager" }, "RebalanceFallback"},
		{"bad engine", func(c *kafka.ConsumerGroupConfig) { c.Engine = "librdkafka" }, "Engine"},
		{"bad initial offset", func(c *kafka.ConsumerGroupConfig) { c.InitialOffset = 7 }, "InitialOffset"},
		{"dead letter is consumed", func(c *kafka.ConsumerGroupConfig) { c.DeadLetterTopic = "t" }, "DeadLetterTopic"},
		{"negative upstream", func(c *kafka.ConsumerGroupConfig) { c.UpstreamBufferSize = -1 }, "UpstreamBufferSize"},
		{"bad version", func(c *kafka.ConsumerGroupConfig) { c.KafkaVersion = "x.y" }, "KafkaVersion"},
		{"bad security", func(c *kafka.ConsumerGroupConfig) {
			c.SecurityConfig = &kafka.SecurityConfig{SASLMechanism: kafka.SASLPlain}
		}, "SecurityConfig.SASLUser"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.edit(cfg)
			err := cfg.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, kafka.ErrInvalidConfig)
			var ce *kafka.ConfigError
			require.True(t, errors.As(err, &ce), "want *ConfigError, got %T: %v", err, err)
			assert.Equal(t, tt.field, ce.Field)
			_, err = kafka.NewConsumerGroup(context.Background(), cfg)
			require.ErrorIs(t, err, kafka.ErrInvalidConfig)
		})
	}
}

func TestConsumerChecker(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 30*time.Second)
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: "c"})
	h := g.Checker(ctx)
	assert.Equal(t, kafka.HealthOK, h.Status, h.Message)
	missing := kafkatest.UniqueName("missing")
	g2 := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic, missing}, GroupName: "c"})
	h = g2.Checker(ctx)
	assert.Equal(t, kafka.HealthWarning, h.Status)
	assert.Equal(t, "topic missing: "+missing, h.Message)
	require.NoError(t, g2.Close(ctx))
	assert.Equal(t, kafka.HealthCritical, g2.Checker(ctx).Status)
}

// TestConsumerBatchWaitCountsFromFirstMessage: with records trickling in
// faster than BatchWaitTime, a batch still goes out BatchWaitTime after its
// first record; a timer reset by every record would never fire.
func TestConsumerBatchWaitCountsFromFirstMessage(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	group := kafkatest.UniqueName("g")
	batches := make(chan int, 100)
	g := newGroup(t, &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group,
		BatchSize: 1000, BatchWaitTime: 150 * time.Millisecond,
	})
	require.NoError(t, g.RegisterBatchHandler(context.Background(), func(_ context.Context, b []kafka.Message) error {
		batches <- len(b)
		return nil
	}))
	g.Start()
	waitState(t, g, kafka.Consuming, 30*time.Second)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	ctx := testCtx(t, 30*time.Second)
	// Keep producing, one record every 20 ms, until the first batch is out.
	sent := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for first := false; !first; {
		select {
		case n := <-batches:
			assert.Less(t, n, 1000)
			first = true
		case <-tick.C:
			require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("x")}))
			sent++
		case <-ctx.Done():
			t.Fatalf("no batch flushed while %d records trickled in", sent)
		}
	}
	t.Logf("first batch flushed after %d records were sent", sent)
}
