package kafka_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// ExampleConsumerGroup_RegisterHandler consumes with a handler; each record
// is committed after the handler returns nil.
func ExampleConsumerGroup_RegisterHandler() {
	topic := kafkatest.UniqueName("payments")
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
	for _, v := range []string{"a", "b", "c"} {
		if err := producer.Send(ctx, &kafka.ProducerMessage{Value: []byte(v)}); err != nil {
			log.Fatal(err)
		}
	}
	_ = producer.Close(ctx)

	group, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(),
		Topics:      []string{topic},
		GroupName:   "payments-service",
		NumWorkers:  4,
		Logger:      quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer group.Close(ctx)

	done := make(chan struct{})
	count := 0
	err = group.RegisterHandler(ctx, func(ctx context.Context, worker int, msg kafka.Message) error {
		fmt.Printf("offset %d: %s\n", msg.Offset(), msg.Value())
		if count++; count == 3 {
			close(done)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	group.Start()
	<-done
	if err := group.StopAndWait(ctx); err != nil { // waits for handlers and commits
		log.Fatal(err)
	}
	fmt.Println(group.State())
	// Output:
	// offset 0: a
	// offset 1: b
	// offset 2: c
	// Stopped
}

// ExampleConsumerGroup_InState waits for a state inside a select, with no
// lock held by the caller. InState's channel is ready at once if the
// consumer is in the state already; StateEntered's waits for the next entry.
func ExampleConsumerGroup_InState() {
	topic := kafkatest.UniqueName("events")
	cluster, err := kafkatest.StartCluster(kafkatest.SeedTopics(1, topic))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	group, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: "g", Logger: quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer group.Close(ctx)

	group.Start()
	select {
	case <-group.InState(kafka.Consuming):
		fmt.Println("consuming")
	case <-ctx.Done():
		fmt.Println("timed out in state", group.State())
	}
	// Output: consuming
}
