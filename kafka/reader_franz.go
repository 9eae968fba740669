package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// franzReader is the franz-go engine of a Reader: one client for metadata
// and offsets, and one consuming client per partition being read (kgo
// polls all of a client's partitions together, and each partition's read
// runs on its own goroutine).
type franzReader struct {
	opts []kgo.Opt
	cl   *kgo.Client
}

func newFranzReader(ctx context.Context, cfg *ReaderConfig) (*franzReader, error) {
	opts, err := franzOpts(cfg.BrokerAddrs, cfg.KafkaVersion, cfg.ClientID, cfg.DialTimeout, cfg.SecurityConfig)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: creating client: %w", err)
	}
	// kgo connects lazily; a brokers-only metadata request, bounded by
	// ctx, makes sure the cluster answers.
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	if _, err := req.RequestWith(ctx, cl); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka: connecting to %v: %w", cfg.BrokerAddrs, err)
	}
	return &franzReader{opts: opts, cl: cl}, nil
}

func (e *franzReader) partitions(ctx context.Context, topic string) ([]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, e.cl)
	if err != nil {
		return nil, err
	}
	var ps []int32
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			return nil, err
		}
		for _, p := range rt.Partitions {
			ps = append(ps, p.Partition)
		}
	}
	slices.Sort(ps)
	return ps, nil
}

func (e *franzReader) bounds(ctx context.Context, topic string, partition int32) (oldest, end int64, err error) {
	if oldest, err = e.listOffset(ctx, topic, partition, -2); err != nil {
		return 0, 0, err
	}
	if end, err = e.listOffset(ctx, topic, partition, -1); err != nil {
		return 0, 0, err
	}
	return oldest, end, nil
}

// listOffset asks the partition's leader for its earliest (-2) or latest
// (-1) offset.
func (e *franzReader) listOffset(ctx context.Context, topic string, partition int32, at int64) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.Timestamp = at
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, e.cl)
	if err != nil {
		return 0, err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if t.Topic == topic && p.Partition == partition {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return 0, err
				}
				return p.Offset, nil
			}
		}
	}
	return 0, fmt.Errorf("no offset for %s/%d in the answer", topic, partition)
}

func (e *franzReader) read(ctx context.Context, topic string, partition int32, offset int64, deliver func(record) bool) error {
	opts := append(slices.Clone(e.opts), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {partition: kgo.NewOffset().At(offset)},
	}))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		for it := fetches.RecordIter(); !it.Done(); {
			if !deliver((*franzClaim)(nil).convert(it.Next())) {
				return nil
			}
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return ferr
		}
	}
}

func (e *franzReader) close() error {
	e.cl.Close()
	return nil
}
