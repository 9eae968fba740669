// Command batchconsumer consumes records in batches: a batch is handed to
// the handler when it holds -batch records or -wait after its first record,
// and its offsets are committed only after the handler returns.
//
// It fills the topic itself, on the cluster that kafka.ConfigFromEnv names
// (KAFKA_BROKERS and the security variables); without one it refuses to
// start unless -embedded asks for an in-process Kafka-protocol broker:
//
//	go run ./examples/batchconsumer -embedded -n 95 -batch 20
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"time"

	"github.com/kafkahub/kafkahub/examples/internal/otlp"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

func main() {
	n := flag.Int("n", 95, "records to produce and then consume")
	batch := flag.Int("batch", 20, "maximum batch size")
	wait := flag.Duration("wait", 200*time.Millisecond, "longest wait for a batch to fill, from its first record")
	embedded := flag.Bool("embedded", false, "start an in-process Kafka-protocol broker (a demo: nothing is kept) instead of the cluster in KAFKA_BROKERS")
	flag.Parse()
	if err := run(*n, *batch, *wait, *embedded); err != nil {
		fmt.Fprintln(os.Stderr, "batchconsumer:", err)
		os.Exit(1)
	}
}

func run(n, batchSize int, wait time.Duration, embedded bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	topic := kafkatest.UniqueName("example-batches")

	cluster, env, err := kafkatest.ClusterFromEnv(embedded, kafkatest.SeedTopics(2, topic))
	if errors.Is(err, kafkatest.ErrNoKafka) {
		return fmt.Errorf("%w: pass -embedded for an in-process broker", err)
	}
	if err != nil {
		return err
	}
	defer cluster.Close()

	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{
		BrokerAddrs: env.BrokerAddrs, KafkaVersion: env.KafkaVersion, SecurityConfig: env.Security, Topic: topic, Logger: log,
	})
	if err != nil {
		return err
	}
	for i := range n {
		if err := p.Send(ctx, &kafka.ProducerMessage{Key: fmt.Appendf(nil, "k%d", i%4), Value: fmt.Appendf(nil, "event %d", i)}); err != nil {
			return err
		}
	}
	if err := p.Close(ctx); err != nil {
		return err
	}

	// OTEL_EXPORTER_OTLP_ENDPOINT set: a span per batch, linked to each
	// record's trace, exported over OTLP.
	tel, stopTracing, _, err := otlp.FromEnv(ctx)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = stopTracing(sctx) // flush the last spans; best effort in an example
	}()
	group, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs:    env.BrokerAddrs,
		KafkaVersion:   env.KafkaVersion,
		SecurityConfig: env.Security,
		Topics:         []string{topic},
		GroupName:      "example-batch-consumer",
		NumWorkers:     2,
		BatchSize:      batchSize,
		BatchWaitTime:  wait,
		Telemetry:      tel,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = group.Close(closeCtx)
	}()

	var handled atomic.Int64
	done := make(chan struct{})
	err = group.RegisterBatchHandler(ctx, func(ctx context.Context, batch []kafka.Message) error {
		first, last := batch[0], batch[len(batch)-1]
		fmt.Printf("batch of %2d from partition %d, offsets %d..%d\n", len(batch), first.Partition(), first.Offset(), last.Offset())
		if handled.Add(int64(len(batch))) == int64(n) {
			close(done)
		}
		return nil // the whole batch is committed
	})
	if err != nil {
		return err
	}
	group.Start()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(60 * time.Second):
		return fmt.Errorf("handled %d of %d records in 60 s", handled.Load(), n)
	}
	if err := group.StopAndWait(ctx); err != nil {
		return err
	}
	fmt.Printf("%d records handled in batches and committed\n", n)
	return nil
}
