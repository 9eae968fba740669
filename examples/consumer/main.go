// Command consumer consumes JSON records with a single-message handler run
// by N workers, committing each record after its handler returns.
//
// It fills the topic itself, on the cluster that kafka.ConfigFromEnv names
// (KAFKA_BROKERS and the security variables); without one it refuses to
// start unless -embedded asks for an in-process Kafka-protocol broker:
//
//	go run ./examples/consumer -embedded -workers 4 -n 40
//	go run ./examples/consumer -embedded -metrics 127.0.0.1:9100   # also serve /metrics while running
//
// With OTEL_EXPORTER_OTLP_ENDPOINT set it exports a span per handled
// record over OTLP. It prints the consumer's lag per partition (kafkahub_consumer_lag) at
// the end: 0 everywhere once the topic is drained.
//
// Point it at a real cluster with KAFKA_BROKERS=host1:9092,host2:9092.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kafkahub/kafkahub/examples/internal/otlp"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

type reading struct {
	Device string  `json:"device"`
	Seq    int     `json:"seq"`
	Temp   float64 `json:"temp_c"`
}

func main() {
	n := flag.Int("n", 40, "records to produce and then consume")
	workers := flag.Int("workers", 4, "handler workers")
	topic := flag.String("topic", kafkatest.UniqueName("example-readings"), "topic (created if missing)")
	metricsAddr := flag.String("metrics", "", "serve Prometheus metrics on this address at /metrics while running")
	embedded := flag.Bool("embedded", false, "start an in-process Kafka-protocol broker (a demo: nothing is kept) instead of the cluster in KAFKA_BROKERS")
	flag.Parse()
	if err := run(*n, *workers, *topic, *metricsAddr, *embedded); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

func run(n, workers int, topic, metricsAddr string, embedded bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// The consumer's metrics go to a registry of our own (kafka registers
	// nothing globally).
	reg := prometheus.NewRegistry()
	tel, stopTracing, _, err := otlp.FromEnv(ctx)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = stopTracing(sctx) // flush the last spans; best effort in an example
	}()
	tel.Registerer = reg
	if metricsAddr != "" {
		srv := &http.Server{Addr: metricsAddr, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("serving metrics", "error", err)
			}
		}()
		defer srv.Close()
		fmt.Printf("metrics on http://%s/metrics\n", metricsAddr)
	}

	cluster, env, err := kafkatest.ClusterFromEnv(embedded, kafkatest.SeedTopics(4, topic))
	if errors.Is(err, kafkatest.ErrNoKafka) {
		return fmt.Errorf("%w: pass -embedded for an in-process broker", err)
	}
	if err != nil {
		return err
	}
	defer cluster.Close()
	if err := fill(ctx, env, topic, n, log); err != nil {
		return err
	}

	// A hook of our own tells when every record is marked for commit
	// (after the handler returned), so the lag printed below is final.
	var handled atomic.Int64
	done := make(chan struct{})
	marked := kafka.ConsumerHooks{OnMarked: func(_ kafka.TopicPartition, _, _ int64, count int) {
		if handled.Add(int64(count)) == int64(n) {
			close(done)
		}
	}}
	group, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs:    env.BrokerAddrs,
		KafkaVersion:   env.KafkaVersion,
		SecurityConfig: env.Security,
		Topics:         []string{topic},
		GroupName:      "example-consumer",
		NumWorkers:     workers,
		Telemetry:      tel,
		Hooks:          []kafka.ConsumerHooks{marked},
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

	err = group.RegisterHandler(ctx, func(ctx context.Context, worker int, msg kafka.Message) error {
		var r reading
		if err := kafka.JSON.Unmarshal(msg.Value(), &r); err != nil {
			return fmt.Errorf("decoding %s/%d@%d: %w", msg.Topic(), msg.Partition(), msg.Offset(), err)
		}
		fmt.Printf("worker %d: partition %d offset %3d: %s #%d %.1f°C (trace %s)\n",
			worker, msg.Partition(), msg.Offset(), r.Device, r.Seq, r.Temp, kafka.TraceID(ctx))
		return nil // returning nil commits the record
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
	// Lag is reported for the partitions this member owns: print it
	// before stopping gives them up.
	if err := printLag(reg); err != nil {
		return err
	}
	stopCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := group.StopAndWait(stopCtx); err != nil { // handlers done, offsets committed
		return err
	}
	fmt.Printf("%d records handled and committed by %d workers\n", n, workers)
	return nil
}

// printLag prints kafkahub_consumer_lag per partition, as last reported.
func printLag(g prometheus.Gatherer) error {
	fams, err := g.Gather()
	if err != nil {
		return err
	}
	for _, f := range fams {
		if f.GetName() != "kafkahub_consumer_lag" {
			continue
		}
		for _, m := range f.GetMetric() {
			var part string
			for _, l := range m.GetLabel() {
				if l.GetName() == "partition" {
					part = l.GetValue()
				}
			}
			fmt.Printf("lag of partition %s: %.0f\n", part, m.GetGauge().GetValue())
		}
	}
	return nil
}

// fill produces n records so the example has something to consume.
func fill(ctx context.Context, env kafka.EnvConfig, topic string, n int, log *slog.Logger) error {
	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{
		BrokerAddrs: env.BrokerAddrs, KafkaVersion: env.KafkaVersion, SecurityConfig: env.Security, Topic: topic, Logger: log,
	})
	if err != nil {
		return err
	}
	defer p.Close(context.WithoutCancel(ctx)) //nolint:errcheck // best effort in an example
	for i := range n {
		dev := fmt.Sprintf("device-%d", i%5)
		m, err := kafka.NewProducerMessage(kafka.JSON, []byte(dev), reading{Device: dev, Seq: i, Temp: 19 + float64(i%9)/2})
		if err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(kafka.WithTraceID(ctx, fmt.Sprintf("fill-%d", i)), 10*time.Second)
		err = p.Send(sctx, m)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}
