package kafka_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// ExampleProducer_Send produces a JSON record and waits for Kafka's
// acknowledgement. The embedded cluster stands in for your brokers.
func ExampleProducer_Send() {
	cluster, err := kafkatest.StartCluster(kafkatest.SeedTopics(3, "orders"))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	producer, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{
		BrokerAddrs: cluster.Addrs(),
		Topic:       "orders",
		Logger:      quiet,
	})
	if err != nil {
		log.Fatal(err) // only an invalid config gets here
	}
	defer producer.Close(ctx)

	msg, err := kafka.NewProducerMessage(kafka.JSON, []byte("customer-42"), map[string]any{"item": "book", "qty": 2})
	if err != nil {
		log.Fatal(err)
	}
	if err := producer.Send(kafka.WithTraceID(ctx, "req-1"), msg); err != nil {
		log.Fatal(err)
	}
	fmt.Println("acknowledged")
	// Output: acknowledged
}

// ExampleProducer_Channels sends through the Output channel and learns each
// record's fate from its OnDelivery callback.
func ExampleProducer_Channels() {
	// A fresh topic, so the offsets below hold on a shared cluster too.
	topic := kafkatest.UniqueName("events")
	cluster, err := kafkatest.StartCluster(kafkatest.SeedTopics(1, topic))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	producer, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	ch := producer.Channels()
	done := make(chan kafka.Delivery, 3)
	for i := range 3 {
		select {
		case ch.Output <- &kafka.ProducerMessage{
			Value:      fmt.Appendf(nil, "event %d", i),
			OnDelivery: func(d kafka.Delivery) { done <- d },
		}:
		case <-ch.Closer:
			return
		}
	}
	for range 3 {
		d := <-done
		fmt.Printf("%s at partition %d offset %d, err=%v\n", d.Message.Value, d.Partition, d.Offset, d.Err)
	}
	if err := producer.Close(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// event 0 at partition 0 offset 0, err=<nil>
	// event 1 at partition 0 offset 1, err=<nil>
	// event 2 at partition 0 offset 2, err=<nil>
}
