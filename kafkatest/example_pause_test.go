package kafkatest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// A paused partition is held while the others are handled; Resume lets it
// go on from where it stopped.
func ExampleConsumer_Pause() {
	ctx := context.Background()
	consumer, err := kafkatest.NewConsumer(nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer consumer.Close(ctx)
	handled := make(chan struct{}, 2)
	if err := consumer.RegisterHandler(ctx, func(_ context.Context, _ int, msg kafka.Message) error {
		fmt.Printf("%s: %s\n", msg, msg.Value())
		handled <- struct{}{}
		return nil
	}); err != nil {
		log.Fatal(err)
	}
	orders0 := kafka.TopicPartition{Topic: "orders", Partition: 0}
	if err := consumer.Pause(orders0); err != nil {
		log.Fatal(err)
	}
	consumer.Start()
	consumer.Queue(kafkatest.NewMessage("orders", []byte("held")))
	consumer.Queue(kafkatest.NewMessage("orders", []byte("free"), kafkatest.WithPartition(1)))
	<-handled
	fmt.Println("paused:", consumer.Paused())
	if err := consumer.Resume(orders0); err != nil {
		log.Fatal(err)
	}
	if err := consumer.WaitIdle(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// orders/1@0: free
	// paused: [{orders 0}]
	// orders/0@0: held
}

// holdWhileBusy is code under test: it pauses every assigned partition
// while the service downstream is busy, and resumes them once it is not.
func holdWhileBusy(g kafka.IConsumerGroup, busy bool) error {
	if busy {
		return g.Pause(g.Assignment()...)
	}
	return g.Resume(g.Paused()...)
}

// The mock checks the partitions code pauses and resumes; SetAssignment
// says what the consumer holds.
func ExampleMockConsumerGroup_ExpectPause() {
	t := &fakeT{} // in a test: the test's *testing.T
	group := kafkatest.NewMockConsumerGroup(t)
	group.SetAssignment(kafka.TopicPartition{Topic: "orders", Partition: 1}, kafka.TopicPartition{Topic: "orders", Partition: 0})
	group.ExpectPause(kafka.TopicPartition{Topic: "orders", Partition: 0}, kafka.TopicPartition{Topic: "orders", Partition: 1})
	group.ExpectResume(kafka.TopicPartition{Topic: "orders", Partition: 0})

	fmt.Println(holdWhileBusy(group, true), group.Paused())
	fmt.Println(holdWhileBusy(group, false) != nil)
	fmt.Println("failures:", t.finish())
	// Output:
	// <nil> [{orders 0} {orders 1}]
	// true
	// failures: [kafkatest: MockConsumerGroup: call 2: Resume(orders/0, orders/1), but expected Resume(orders/0)]
}
