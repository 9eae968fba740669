package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

func TestProducerConfigValidate(t *testing.T) {
	valid := func() *kafka.ProducerConfig {
		return &kafka.ProducerConfig{BrokerAddrs: []string{"127.0.0.1:9092"}, Topic: "t"}
	}
	tests := []struct {
		name  string
		edit  func(*kafka.ProducerConfig)
		field string // "" means valid
	}{
		{"minimal", func(*kafka.ProducerConfig) {}, ""},
		{"no brokers", func(c *kafka.ProducerConfig) { c.BrokerAddrs = nil }, "BrokerAddrs"},
		{"empty broker", func(c *kafka.ProducerConfig) { c.BrokerAddrs = []string{"a:1", ""} }, "BrokerAddrs"},
		{"no topic", func(c *kafka.ProducerConfig) { c.Topic = "" }, "Topic"},
		{"bad version", func(c *kafka.ProducerConfig) { c.KafkaVersion = "banana" }, "KafkaVersion"},
		{"bad acks", func(c *kafka.ProducerConfig) { c.RequiredAcks = 9 }, "RequiredAcks"},
		{"bad compression", func(c *kafka.ProducerConfig) { c.Compression = "brotli" }, "Compression"},
		{"negative max bytes", func(c *kafka.ProducerConfig) { c.MaxMessageBytes = -1 }, "MaxMessageBytes"},
		{"negative retry", func(c *kafka.ProducerConfig) { c.RetryMax = -1 }, "RetryMax"},
		{"negative flush", func(c *kafka.ProducerConfig) { c.FlushFrequency = -time.Second }, "FlushFrequency"},
		{"negative min healthy", func(c *kafka.ProducerConfig) { c.MinBrokersHealthy = -1 }, "MinBrokersHealthy"},
		{"max retry below min", func(c *kafka.ProducerConfig) {
			c.MinRetryPeriod, c.MaxRetryPeriod = time.Second, time.Millisecond
		}, "MaxRetryPeriod"},
		{"negative errors buffer", func(c *kafka.ProducerConfig) { c.ErrorsBufferSize = -3 }, "ErrorsBufferSize"},
		{"cert without key", func(c *kafka.ProducerConfig) {
			c.SecurityConfig = &kafka.SecurityConfig{TLS: true, ClientCert: "cert.pem"}
		}, "SecurityConfig.ClientCert"},
		{"certs without TLS", func(c *kafka.ProducerConfig) {
			c.SecurityConfig = &kafka.SecurityConfig{RootCACerts: "ca.pem"}
		}, "SecurityConfig.TLS"},
		{"unknown sasl", func(c *kafka.ProducerConfig) {
			c.SecurityConfig = &kafka.SecurityConfig{SASLMechanism: "GSSAPI", SASLUser: "u"}
		}, "SecurityConfig.SASLMechanism"},
		{"sasl without user", func(c *kafka.ProducerConfig) {
			c.SecurityConfig = &kafka.SecurityConfig{SASLMechanism: kafka.SASLScramSHA512}
		}, "SecurityConfig.SASLUser"},
		{"missing CA file", func(c *kafka.ProducerConfig) {
			c.SecurityConfig = &kafka.SecurityConfig{TLS: true, RootCACerts: "/does/not/exist.pem"}
		}, "SecurityConfig.RootCACerts"},
		{"acks leader with compression", func(c *kafka.ProducerConfig) {
			c.RequiredAcks, c.Compression = kafka.AcksLeader, kafka.CompressionZstd
		}, ""},
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
			assert.Contains(t, err.Error(), tt.field)

			// The constructor rejects the same config without connecting.
			_, err = kafka.NewProducer(context.Background(), cfg)
			require.ErrorIs(t, err, kafka.ErrInvalidConfig)
		})
	}
	var nilCfg *kafka.ProducerConfig
	require.ErrorIs(t, nilCfg.Validate(), kafka.ErrInvalidConfig)
}

// TestProducerConfigIsCopied: changing the caller's config after NewProducer
// must not change the producer, and defaults never leak into the caller's
// struct.
func TestProducerConfigIsCopied(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	addrs := cluster.Addrs()
	cfg := &kafka.ProducerConfig{BrokerAddrs: addrs, Topic: topic, Logger: quiet}
	p := newProducer(t, cfg)
	addrs[0], cfg.Topic = "changed:1", "other"
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("x")}))
	assert.Len(t, testkit.ReadAll(ctx, t, cluster.Addrs(), topic), 1, "record went to the original topic")
	assert.Zero(t, cfg.RetryMax)
	assert.Zero(t, cfg.KafkaVersion)
}
