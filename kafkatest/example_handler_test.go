package kafkatest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// Order is the payload of the examples' messages.
type Order struct {
	ID     int      `json:"id"`
	Amount int      `json:"amount"`
	Items  []string `json:"items,omitempty"`
}

// ChargeHandler is the code under test in the handler examples: a user's
// handler that charges each order through a payment gateway.
func ChargeHandler(charge func(context.Context, Order) error) kafka.Handler {
	return func(ctx context.Context, _ int, msg kafka.Message) error {
		var o Order
		if err := json.Unmarshal(msg.Value(), &o); err != nil {
			return fmt.Errorf("decoding order: %w", err)
		}
		if o.Amount == 0 {
			_ = o.Items[0] // a bug: free orders have no items, and this panics
		}
		return charge(ctx, o)
	}
}

// gateway is a fake payment gateway that logs each call, fails order 2's
// first call, and hangs on order 5's first call until the context ends.
type gateway struct {
	mu      sync.Mutex
	calls   map[int]int
	log     []string
	hanging chan struct{}
}

func newGateway() *gateway { return &gateway{calls: map[int]int{}, hanging: make(chan struct{})} }

func (g *gateway) Charge(ctx context.Context, o Order) error {
	g.mu.Lock()
	g.calls[o.ID]++
	n := g.calls[o.ID]
	g.mu.Unlock()
	var err error
	switch {
	case o.ID == 2 && n == 1:
		err = errors.New("gateway timeout")
	case o.ID == 5 && n == 1:
		close(g.hanging)
		<-ctx.Done()
		err = ctx.Err()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.log = append(g.log, fmt.Sprintf("order %d: %v", o.ID, err))
	} else {
		g.log = append(g.log, fmt.Sprintf("order %d: charged %d", o.ID, o.Amount))
	}
	return err
}

func (g *gateway) print() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range g.log {
		fmt.Println(l)
	}
}

// A handler can be called directly with a built message, no consumer
// needed, to test its logic.
func ExampleNewMessage() {
	handler := ChargeHandler(func(ctx context.Context, o Order) error {
		fmt.Printf("charging order %d (trace %s)\n", o.ID, kafka.TraceID(ctx))
		return nil
	})
	msg := kafkatest.NewMessage("orders", []byte(`{"id":1,"amount":10}`),
		kafkatest.WithKey("1"), kafkatest.WithHeader("trace-id", "req-1"), kafkatest.WithOffset(3))
	fmt.Println(handler(msg.Context(), 0, msg))
	// Output:
	// charging order 1 (trace req-1)
	// <nil>
}

// The fake consumer runs a handler as the real one does, so a test sees
// each outcome: success, success after a retry, and, for a message that
// keeps failing or a handler that panics, the dead-letter topic.
func ExampleConsumer() {
	ctx := context.Background()
	dlt := kafkatest.NewProducer(&kafka.ProducerConfig{Topic: "orders-dlt"})
	defer dlt.Close(ctx)
	consumer, err := kafkatest.NewConsumer(&kafka.ConsumerGroupConfig{
		HandlerRetries:      2,
		HandlerRetryBackoff: time.Millisecond, // the real policy, made quick for tests
		DeadLetterTopic:     "orders-dlt",
	}, dlt)
	if err != nil {
		log.Fatal(err)
	}
	defer consumer.Close(ctx)
	gw := newGateway()
	if err := consumer.RegisterHandler(ctx, ChargeHandler(gw.Charge)); err != nil {
		log.Fatal(err)
	}

	paid := consumer.QueueJSON("orders", Order{ID: 1, Amount: 10})
	retried := consumer.QueueJSON("orders", Order{ID: 2, Amount: 20})
	malformed := kafkatest.NewMessage("orders", []byte(`{"id":`))
	consumer.Queue(malformed)
	buggy := consumer.QueueJSON("orders", Order{ID: 4})
	consumer.Start()
	if err := consumer.WaitIdle(ctx); err != nil { // no sleeping
		log.Fatal(err)
	}

	gw.print()
	for _, m := range []*kafkatest.Message{paid, retried, malformed, buggy} {
		fmt.Printf("%s committed: %t\n", m, m.IsCommitted())
	}
	for range 2 {
		var herr *kafka.HandlerError
		if errors.As(<-consumer.Channels().Errors, &herr) {
			fmt.Printf("gave up on offset %d after %d attempts (panic: %t), dead-lettered: %t\n",
				herr.Offset, herr.Attempts, errors.Is(herr, kafka.ErrHandlerPanic), herr.DeadLettered)
		}
	}
	for _, rec := range dlt.Messages() {
		offset, _ := rec.Header(kafka.HeaderDLTOffset)
		fmt.Printf("dead letter %s holds %s from offset %s\n", rec, rec.Value(), offset)
	}
	// Output:
	// order 1: charged 10
	// order 2: gateway timeout
	// order 2: charged 20
	// orders/0@0 committed: true
	// orders/0@1 committed: true
	// orders/0@2 committed: true
	// orders/0@3 committed: true
	// gave up on offset 2 after 3 attempts (panic: false), dead-lettered: true
	// gave up on offset 3 after 3 attempts (panic: true), dead-lettered: true
	// dead letter orders-dlt/0@0 holds {"id": from offset 2
	// dead letter orders-dlt/0@1 holds {"id":4,"amount":0} from offset 3
}

// A rebalance cancels the context of the handlers in flight; what they had
// not finished is left uncommitted and delivered again, as to the
// partition's next owner.
func ExampleConsumer_SimulateRebalance() {
	ctx := context.Background()
	consumer, err := kafkatest.NewConsumer(nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer consumer.Close(ctx)
	gw := newGateway()
	if err := consumer.RegisterHandler(ctx, ChargeHandler(gw.Charge)); err != nil {
		log.Fatal(err)
	}
	consumer.Start()

	slow := consumer.QueueJSON("orders", Order{ID: 5, Amount: 50})
	<-gw.hanging // the handler is waiting on the gateway
	if err := consumer.SimulateRebalance(ctx); err != nil {
		log.Fatal(err)
	}
	if err := consumer.WaitIdle(ctx); err != nil {
		log.Fatal(err)
	}
	gw.print()
	fmt.Println("committed:", slow.IsCommitted(), "times:", slow.Commits())
	// Output:
	// order 5: context canceled
	// order 5: charged 50
	// committed: true times: 1
}
