package kafka

import (
	"log/slog"
	"time"

	"github.com/IBM/sarama"
)

// Defaults shared by producers and consumers. They are constants, never
// package-level variables a caller could change for everyone.
const (
	DefaultKafkaVersion      = "3.6.0"
	DefaultClientID          = "kafkahub"
	DefaultMinRetryPeriod    = 200 * time.Millisecond
	DefaultMaxRetryPeriod    = 30 * time.Second
	DefaultMinBrokersHealthy = 1
	DefaultDialTimeout       = 10 * time.Second
	DefaultTraceHeader       = "trace-id"
)

// newSaramaConfig builds the Sarama settings common to every client.
func newSaramaConfig(version, clientID string, dial time.Duration, sec *SecurityConfig) (*sarama.Config, error) {
	v, err := sarama.ParseKafkaVersion(version)
	if err != nil {
		return nil, configErr("KafkaVersion", "%v", err)
	}
	c := sarama.NewConfig()
	c.Version = v
	c.ClientID = clientID
	c.Net.DialTimeout = dial
	// Only the topics in use: large clusters have thousands.
	c.Metadata.Full = false
	// kafkahub never creates topics as a side effect of looking them up:
	// auto-created topics get the broker's default partitions and
	// replication, silently. Topics are provisioned explicitly.
	c.Metadata.AllowAutoTopicCreation = false
	if err := sec.apply(c); err != nil {
		return nil, err
	}
	return c, nil
}

func validateCommon(addrs []string, minPeriod, maxPeriod time.Duration, minHealthy int) error {
	if len(addrs) == 0 {
		return configErr("BrokerAddrs", "at least one broker address is required")
	}
	for i, a := range addrs {
		if a == "" {
			return configErr("BrokerAddrs", "address %d is empty", i)
		}
	}
	if minPeriod <= 0 {
		return configErr("MinRetryPeriod", "must be positive, got %v", minPeriod)
	}
	if maxPeriod < minPeriod {
		return configErr("MaxRetryPeriod", "must be at least MinRetryPeriod (%v), got %v", minPeriod, maxPeriod)
	}
	if minHealthy < 1 {
		return configErr("MinBrokersHealthy", "must be at least 1, got %d", minHealthy)
	}
	return nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func loggerOrDefault(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
