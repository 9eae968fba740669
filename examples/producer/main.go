// Command producer produces N JSON records and prints each delivery result.
//
// It uses the cluster that kafka.ConfigFromEnv names (KAFKA_BROKERS and the
// security variables), and refuses to start without one unless -embedded
// asks for an in-process Kafka-protocol broker, so it runs with nothing
// installed:
//
//	go run ./examples/producer -embedded -n 10
//	KAFKA_BROKERS=host1:9092,host2:9092 go run ./examples/producer -n 10
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

type reading struct {
	Device string    `json:"device"`
	Seq    int       `json:"seq"`
	Temp   float64   `json:"temp_c"`
	At     time.Time `json:"at"`
}

func main() {
	n := flag.Int("n", 10, "number of records to produce")
	topic := flag.String("topic", "kafkahub-example-readings", "topic to produce to (created if missing)")
	embedded := flag.Bool("embedded", false, "start an in-process Kafka-protocol broker (a demo: nothing is kept) instead of the cluster in KAFKA_BROKERS")
	flag.Parse()
	if err := run(*n, *topic, *embedded); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}

func run(n int, topic string, embedded bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	cluster, env, err := kafkatest.ClusterFromEnv(embedded, kafkatest.SeedTopics(3, topic))
	if errors.Is(err, kafkatest.ErrNoKafka) {
		return fmt.Errorf("%w: pass -embedded for an in-process broker", err)
	}
	if err != nil {
		return err
	}
	defer cluster.Close()
	where := "embedded broker"
	if cluster.External() {
		where = "KAFKA_BROKERS"
	}
	fmt.Printf("brokers %v (%s), topic %s\n", cluster.Addrs(), where, topic)

	producer, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{
		BrokerAddrs:    env.BrokerAddrs,
		KafkaVersion:   env.KafkaVersion,
		SecurityConfig: env.Security,
		Topic:          topic,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = producer.Close(closeCtx)
	}()

	initCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := producer.Initialise(initCtx); err != nil {
		return err
	}

	failed := 0
	for i := range n {
		device := fmt.Sprintf("device-%d", i%3)
		msg, err := kafka.NewProducerMessage(kafka.JSON, []byte(device), reading{Device: device, Seq: i, Temp: 20 + float64(i%7)/2, At: time.Now().UTC()})
		if err != nil {
			return err
		}
		sendCtx, cancel := context.WithTimeout(kafka.WithTraceID(ctx, fmt.Sprintf("example-%d", i)), 10*time.Second)
		start := time.Now()
		err = producer.Send(sendCtx, msg)
		cancel()
		if err != nil {
			failed++
			fmt.Printf("record %d (key %s): FAILED: %v\n", i, device, err)
			continue
		}
		fmt.Printf("record %d (key %s): acknowledged in %v\n", i, device, time.Since(start).Round(time.Microsecond))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d records failed", failed, n)
	}
	fmt.Printf("%d records acknowledged\n", n)
	return nil
}
