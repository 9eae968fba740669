package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
)

// DrainTarget names a topic and the consumer group whose lag on it
// DrainTopics brings to zero.
type DrainTarget struct {
	Topic     string
	GroupName string
}

// DrainTopics consumes, for each target, every message the topic holds when
// the call begins that the group has not committed yet, commits it, and
// leaves the group. The messages are discarded: it is meant for clearing
// test or replay state. It returns how many messages it drained per target.
//
// cfg supplies the connection settings (brokers, version, TLS, SASL,
// logger); its Topics, GroupName and handler settings are ignored. ctx
// bounds the whole call.
func DrainTopics(ctx context.Context, cfg *ConsumerGroupConfig, targets ...DrainTarget) (map[DrainTarget]int64, error) {
	if cfg == nil {
		return nil, configErr("ConsumerGroupConfig", "is nil")
	}
	out := make(map[DrainTarget]int64, len(targets))
	for _, t := range targets {
		c := *cfg
		c.Topics, c.GroupName = []string{t.Topic}, t.GroupName
		c.InitialOffset = OffsetOldest
		c.NumWorkers, c.BatchSize, c.DeadLetterTopic = 0, 0, ""
		n, err := drainOne(ctx, &c)
		out[t] = n
		if err != nil {
			return out, fmt.Errorf("kafka: draining %s for group %s: %w", t.Topic, t.GroupName, err)
		}
	}
	return out, nil
}

func drainOne(ctx context.Context, cfg *ConsumerGroupConfig) (int64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	d := cfg.withDefaults()
	scfg, err := d.saramaConfig()
	if err != nil {
		return 0, err
	}
	targets, err := drainTargets(d.BrokerAddrs, scfg, d.Topics[0], d.GroupName)
	if err != nil {
		return 0, err
	}
	if len(targets) == 0 {
		return 0, nil
	}

	var mu sync.Mutex
	var drained int64
	remaining := len(targets)
	done := make(chan struct{})
	g, err := NewConsumerGroup(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer g.Close(context.WithoutCancel(ctx)) //nolint:errcheck // the result is reported below
	err = g.RegisterHandler(ctx, func(_ context.Context, _ int, m Message) error {
		mu.Lock()
		defer mu.Unlock()
		drained++
		if end, ok := targets[m.Partition()]; ok && m.Offset()+1 >= end {
			delete(targets, m.Partition())
			if remaining--; remaining == 0 {
				close(done)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	g.Start()
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		return drained, ctx.Err()
	}
	if err := g.StopAndWait(ctx); err != nil {
		return drained, err
	}
	if err := g.Close(ctx); err != nil {
		return drained, err
	}
	mu.Lock()
	defer mu.Unlock()
	return drained, nil
}

// drainTargets returns, for each partition that has messages the group has
// not committed, the offset just past the last of them.
func drainTargets(addrs []string, scfg *sarama.Config, topic, group string) (map[int32]int64, error) {
	client, err := sarama.NewClient(addrs, scfg)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, err
	}
	// Not closed: closing the admin would close the client, deferred above.
	commits := map[int32]int64{}
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	switch {
	case errors.Is(err, sarama.ErrGroupIDNotFound):
		// A group that never committed has nothing to start from.
	case err != nil:
		return nil, err
	default:
		for p, b := range resp.Blocks[topic] {
			if b.Err != sarama.ErrNoError && !errors.Is(b.Err, sarama.ErrGroupIDNotFound) {
				return nil, b.Err
			}
			commits[p] = b.Offset
		}
	}
	targets := map[int32]int64{}
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		start, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		next, ok := commits[p]
		if !ok || next < start {
			next = start // nothing committed yet, or the commit is older than retention
		}
		if next < end {
			targets[p] = end
		}
	}
	return targets, nil
}
