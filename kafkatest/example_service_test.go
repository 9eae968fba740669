package kafkatest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strconv"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// Orders is the code under test in the service examples: a service that
// accepts orders and publishes an event for each, keyed by order id so that
// one order's events stay in order. It depends on kafka.IProducer, so a
// test can hand it a mock or a fake instead of a *kafka.Producer.
type Orders struct{ events kafka.IProducer }

// Accept publishes the order's event and waits for Kafka to have it.
func (s *Orders) Accept(ctx context.Context, o Order) error {
	msg, err := kafka.NewProducerMessage(kafka.JSON, []byte(strconv.Itoa(o.ID)), o)
	if err != nil {
		return err
	}
	if err := s.events.Send(ctx, msg); err != nil {
		return fmt.Errorf("order %d not accepted: %w", o.ID, err)
	}
	return nil
}

// The mock checks the exact sends and scripts their outcomes. In a test,
// pass the test's t: a send nobody expected fails it at once, naming the
// call, and expected sends not made fail it when it ends. Here a stand-in
// prints what the test would report.
func ExampleNewMockProducer() {
	t := &fakeT{} // in a test: the test's *testing.T
	events := kafkatest.NewMockProducer(t)
	events.ExpectSend().WithKey("1").WithValue(`{"id":1,"amount":10}`).WithHeader("trace-id", "req-1")
	events.ExpectSend().WithKey("2").Return(errors.New("broker unavailable"))

	orders := &Orders{events: events}
	ctx := kafka.WithTraceID(context.Background(), "req-1")
	fmt.Println(orders.Accept(ctx, Order{ID: 1, Amount: 10}))
	fmt.Println(orders.Accept(ctx, Order{ID: 2, Amount: 20}))
	_ = orders.Accept(ctx, Order{ID: 3, Amount: 30}) // not expected

	for _, failure := range t.finish() { // the end of the test
		fmt.Println(failure)
	}
	// Output:
	// <nil>
	// order 2 not accepted: kafka: producing to "": broker unavailable
	// kafkatest: MockProducer: unexpected call 3: Send(topic="", key="3", value="{\"id\":3,\"amount\":30}", header content-type="application/json", header trace-id="req-1"): no more sends were expected
}

// The fake producer records what Kafka would store, and can be told to
// fail, when a test cares about the records more than the calls.
func ExampleProducer() {
	ctx := context.Background()
	events := kafkatest.NewProducer(&kafka.ProducerConfig{Topic: "orders"})
	defer events.Close(ctx)
	orders := &Orders{events: events}

	if err := orders.Accept(ctx, Order{ID: 1, Amount: 10}); err != nil {
		log.Fatal(err)
	}
	events.FailNext(errors.New("broker unavailable"))
	fmt.Println(orders.Accept(ctx, Order{ID: 2, Amount: 20}))

	for _, m := range events.Messages() {
		fmt.Printf("%s key=%s %s\n", m, m.Key(), m.Value())
	}
	// Output:
	// order 2 not accepted: kafka: producing to "orders": broker unavailable
	// orders/0@0 key=1 {"id":1,"amount":10}
}

// Billing is code that drives a consumer: it registers its handler and
// starts consuming, and stops cleanly on shutdown.
type Billing struct{ group kafka.IConsumerGroup }

// Run registers the charge handler and starts consuming.
func (b *Billing) Run(ctx context.Context, charge func(context.Context, Order) error) error {
	if err := b.group.RegisterHandler(ctx, ChargeHandler(charge)); err != nil {
		return fmt.Errorf("billing: %w", err)
	}
	b.group.Start()
	return nil
}

// Shutdown lets in-flight handlers finish, then closes the consumer.
func (b *Billing) Shutdown(ctx context.Context) error {
	if err := b.group.StopAndWait(ctx); err != nil {
		return fmt.Errorf("billing: stopping: %w", err)
	}
	return b.group.Close(ctx)
}

// The consumer group mock checks how code drives a consumer, and hands
// the test the handler it was given.
func ExampleNewMockConsumerGroup() {
	t := &fakeT{} // in a test: the test's *testing.T
	group := kafkatest.NewMockConsumerGroup(t)
	group.ExpectRegisterHandler()
	group.ExpectStart()
	group.ExpectStopAndWait()
	group.ExpectClose()

	ctx := context.Background()
	billing := &Billing{group: group}
	err := billing.Run(ctx, func(_ context.Context, o Order) error {
		fmt.Println("charged order", o.ID)
		return nil
	})
	fmt.Println(err, group.State())

	msg := kafkatest.NewMessage("orders", []byte(`{"id":7,"amount":70}`))
	fmt.Println(group.Handler()(ctx, 0, msg))

	fmt.Println(billing.Shutdown(ctx), group.State())
	fmt.Println("failures:", t.finish())
	// Output:
	// <nil> Consuming
	// charged order 7
	// <nil>
	// <nil> Closed
	// failures: []
}
