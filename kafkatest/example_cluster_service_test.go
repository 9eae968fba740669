package kafkatest_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// The same service, end to end: a real kafka.Producer against the
// embedded cluster (or the one KAFKA_BROKERS names), and the records read
// back by a real consumer group.
func ExampleNewCluster() {
	t := &fakeT{} // in a test: the test's *testing.T
	defer t.finish()
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	quiet := slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	producer, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Close(ctx)
	orders := &Orders{events: producer}
	for _, o := range []Order{{ID: 1, Amount: 10}, {ID: 2, Amount: 20}} {
		if err := orders.Accept(ctx, o); err != nil {
			log.Fatal(err)
		}
	}

	group, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: kafkatest.UniqueName("audit"), Logger: quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer group.Close(ctx)
	got := make(chan string, 2)
	err = group.RegisterHandler(ctx, func(_ context.Context, _ int, msg kafka.Message) error {
		got <- fmt.Sprintf("key=%s %s", msg.Key(), msg.Value())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	group.Start()
	for range 2 {
		select {
		case s := <-got:
			fmt.Println(s)
		case <-ctx.Done():
			log.Fatal(ctx.Err())
		}
	}
	// Output:
	// key=1 {"id":1,"amount":10}
	// key=2 {"id":2,"amount":20}
}
