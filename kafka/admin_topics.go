package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// ListTopics returns the names of the cluster's topics, sorted, internal
// topics (such as __consumer_offsets) excluded. ctx bounds the call.
func ListTopics(ctx context.Context, brokerAddrs []string, sec *SecurityConfig) ([]string, error) {
	var names []string
	err := withAdmin(ctx, brokerAddrs, sec, func(admin sarama.ClusterAdmin) error {
		topics, err := admin.ListTopics()
		if err != nil {
			return fmt.Errorf("kafka: listing topics: %w", err)
		}
		for name := range topics {
			if !strings.HasPrefix(name, "__") {
				names = append(names, name)
			}
		}
		return nil
	})
	slices.Sort(names)
	return names, err
}

// DeleteTopic deletes a topic and its records, then waits until the
// cluster no longer lists it. A topic that does not exist is not an error,
// so retiring something twice is harmless. ctx bounds the whole call.
func DeleteTopic(ctx context.Context, brokerAddrs []string, sec *SecurityConfig, name string) error {
	if name == "" {
		return configErr("name", "is required")
	}
	return withAdmin(ctx, brokerAddrs, sec, func(admin sarama.ClusterAdmin) error {
		err := admin.DeleteTopic(name)
		if err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("kafka: deleting topic %q: %w", name, err)
		}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			topics, err := admin.ListTopics()
			if err == nil {
				if _, ok := topics[name]; !ok {
					return nil
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("kafka: waiting for topic %q to be deleted: %w", name, ctx.Err())
			case <-tick.C:
			}
		}
	})
}

// withAdmin runs fn with an admin client of the cluster, within ctx.
func withAdmin(ctx context.Context, brokerAddrs []string, sec *SecurityConfig, fn func(sarama.ClusterAdmin) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cfg, err := SaramaConfig("", "", sec)
	if err != nil {
		return err
	}
	// The admin client needs the broker list, which Sarama only learns
	// from a full metadata request.
	cfg.Metadata.Full = true
	if d, ok := ctx.Deadline(); ok {
		cfg.Admin.Timeout = max(time.Until(d), time.Millisecond)
	}
	admin, err := sarama.NewClusterAdmin(brokerAddrs, cfg)
	if err != nil {
		return fmt.Errorf("kafka: connecting to %v: %w", brokerAddrs, err)
	}
	defer admin.Close()
	return fn(admin)
}
