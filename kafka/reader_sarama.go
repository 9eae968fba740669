package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// saramaReader is the Sarama engine of a Reader: one client, and one
// partition consumer per partition being read.
type saramaReader struct {
	client   sarama.Client
	consumer sarama.Consumer
}

func newSaramaReader(ctx context.Context, cfg *ReaderConfig) (*saramaReader, error) {
	scfg, err := newSaramaConfig(cfg.KafkaVersion, cfg.ClientID, cfg.DialTimeout, cfg.SecurityConfig)
	if err != nil {
		return nil, err
	}
	// Failures reach read, which logs them and resumes.
	scfg.Consumer.Return.Errors = true
	// sarama.NewClient is not bounded by ctx: run it aside, and close the
	// client it makes if ctx ended first.
	type result struct {
		c   sarama.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := sarama.NewClient(cfg.BrokerAddrs, scfg)
		ch <- result{c, err}
	}()
	var client sarama.Client
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("kafka: connecting to %v: %w", cfg.BrokerAddrs, r.err)
		}
		client = r.c
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				_ = r.c.Close()
			}
		}()
		return nil, fmt.Errorf("kafka: connecting to %v: %w", cfg.BrokerAddrs, ctx.Err())
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return &saramaReader{client: client, consumer: consumer}, nil
}

func (e *saramaReader) partitions(_ context.Context, topic string) ([]int32, error) {
	if err := e.client.RefreshMetadata(topic); err != nil {
		return nil, err
	}
	return e.client.Partitions(topic)
}

func (e *saramaReader) bounds(_ context.Context, topic string, partition int32) (oldest, end int64, err error) {
	if oldest, err = e.client.GetOffset(topic, partition, sarama.OffsetOldest); err != nil {
		return 0, 0, err
	}
	if end, err = e.client.GetOffset(topic, partition, sarama.OffsetNewest); err != nil {
		return 0, 0, err
	}
	return oldest, end, nil
}

func (e *saramaReader) read(ctx context.Context, topic string, partition int32, offset int64, deliver func(record) bool) error {
	pc, err := e.consumer.ConsumePartition(topic, partition, offset)
	if err != nil {
		return err
	}
	// Close drains the partition consumer's channels itself.
	defer pc.Close()
	for {
		select {
		case sm, ok := <-pc.Messages():
			if !ok {
				return errors.New("partition consumer stopped")
			}
			if !deliver(saramaClaim{}.convert(sm)) {
				return nil
			}
		case err, ok := <-pc.Errors():
			if !ok {
				return errors.New("partition consumer stopped")
			}
			return err
		case <-ctx.Done():
			return nil
		}
	}
}

func (e *saramaReader) close() error {
	err := e.consumer.Close()
	if cerr := e.client.Close(); cerr != nil && !errors.Is(cerr, sarama.ErrClosedClient) {
		err = errors.Join(err, cerr)
	}
	return err
}
