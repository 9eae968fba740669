package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// SaramaConfig returns a Sarama configuration carrying kafkahub's connection
// settings: protocol version, client id, TLS and SASL, and no implicit topic
// creation. It is the escape hatch for code that needs raw Sarama next to
// kafkahub and must reach the cluster the same way: it works as it is for
// sarama.NewClusterAdmin and for Sarama's consumers and producers. An empty
// version or client id takes the default.
//
// Unlike the clients kafkahub builds for itself, it asks for full metadata
// (Metadata.Full, Sarama's default): an admin client needs the whole broker
// list, which Sarama learns only that way, and fails without it ("no
// specific topics to update metadata"). A long-lived client of a few topics
// on a cluster of thousands may set Metadata.Full back to false.
func SaramaConfig(kafkaVersion, clientID string, sec *SecurityConfig) (*sarama.Config, error) {
	if err := sec.Validate(); err != nil {
		return nil, err
	}
	c, err := newSaramaConfig(orDefault(kafkaVersion, DefaultKafkaVersion), orDefault(clientID, DefaultClientID), DefaultDialTimeout, sec)
	if err != nil {
		return nil, err
	}
	c.Metadata.Full = true
	return c, nil
}

// TopicSpec describes a topic for CreateTopic.
type TopicSpec struct {
	Name       string
	Partitions int32
	// ReplicationFactor 0 means 3, or the number of brokers when fewer.
	ReplicationFactor int16
	// Config holds topic settings such as "cleanup.policy": "compact".
	Config map[string]string
}

// CreateTopic creates the topic unless it exists, then waits until every
// partition has a leader (a real cluster answers the creation before its
// brokers know the new leaders). An existing topic is not an error and is
// left as it is. ctx bounds the whole call.
func CreateTopic(ctx context.Context, brokerAddrs []string, sec *SecurityConfig, spec TopicSpec) error {
	if spec.Name == "" {
		return configErr("TopicSpec.Name", "is required")
	}
	if spec.Partitions < 1 {
		return configErr("TopicSpec.Partitions", "must be at least 1, got %d", spec.Partitions)
	}
	cfg, err := SaramaConfig("", "", sec)
	if err != nil {
		return err
	}
	client, err := sarama.NewClient(brokerAddrs, cfg)
	if err != nil {
		return fmt.Errorf("kafka: connecting to %v: %w", brokerAddrs, explainAuth(sec, err))
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return fmt.Errorf("kafka: admin client: %w", err)
	}
	// Not closed: that would close client, which the defer above does.
	rf := spec.ReplicationFactor
	if rf == 0 {
		rf = int16(min(3, len(client.Brokers())))
	}
	entries := make(map[string]*string, len(spec.Config))
	for k, v := range spec.Config {
		entries[k] = &v
	}
	err = admin.CreateTopic(spec.Name, &sarama.TopicDetail{NumPartitions: spec.Partitions, ReplicationFactor: rf, ConfigEntries: entries}, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return fmt.Errorf("kafka: creating topic %q: %w", spec.Name, err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if leadersReady(client, spec.Name) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: waiting for the leaders of %q: %w", spec.Name, ctx.Err())
		case <-tick.C:
		}
	}
}

func leadersReady(client sarama.Client, topic string) bool {
	if err := client.RefreshMetadata(topic); err != nil {
		return false
	}
	ps, err := client.Partitions(topic)
	if err != nil || len(ps) == 0 {
		return false
	}
	for _, p := range ps {
		if _, err := client.Leader(topic, p); err != nil {
			return false
		}
	}
	return true
}
