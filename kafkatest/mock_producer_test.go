package kafkatest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

func TestMockProducerMetExpectationsPass(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockProducer(ft)
	errDown := errors.New("down")
	m.ExpectSend().WithTopic("orders").WithKey("k").WithValue("v").Return(nil)
	m.ExpectSend().Return(errDown)
	m.ExpectSendMatching(func(msg *kafka.ProducerMessage) error {
		if len(msg.Value) == 0 {
			return errors.New("empty value")
		}
		return nil
	})

	require.NoError(t, m.Send(context.Background(), &kafka.ProducerMessage{Topic: "orders", Key: []byte("k"), Value: []byte("v")}))
	err := m.Send(context.Background(), &kafka.ProducerMessage{Topic: "other"})
	require.ErrorIs(t, err, errDown)
	var perr *kafka.ProducerError
	require.ErrorAs(t, err, &perr, "failures look like the real producer's")
	require.NoError(t, m.Send(context.Background(), &kafka.ProducerMessage{Value: []byte("x")}))
	require.NoError(t, m.ExpectationsWereMet())
	assert.Empty(t, ft.finish())
}

func TestMockProducerUnmetExpectationFailsTheTest(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockProducer(ft)
	m.ExpectSend().WithTopic("orders").Return(nil)
	m.ExpectSend().WithKey("k2").WithHeader("h", "v").Return(errors.New("down"))
	m.ExpectSend()
	require.NoError(t, m.Send(context.Background(), &kafka.ProducerMessage{Topic: "orders"}))
	require.Error(t, m.ExpectationsWereMet())
	assert.False(t, ft.Failed(), "nothing fails before the test ends")

	failures := ft.finish()
	require.Len(t, failures, 1)
	assert.Equal(t, `kafkatest: MockProducer: 2 expected calls were not made:
	2. Send(key="k2", header h="v") returning down
	3. Send(any message) returning <nil>`, failures[0])
}

func TestMockProducerUnexpectedCallFailsTheTest(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockProducer(ft)
	ctx := kafka.WithTraceID(context.Background(), "req-1")
	err := m.Send(ctx, &kafka.ProducerMessage{Topic: "orders", Key: []byte("k"), Value: []byte(`{"id":1}`), Partition: new(int32(1))})
	require.Error(t, err, "an unexpected send fails, so the code under test sees it")
	require.Equal(t, []string{
		`kafkatest: MockProducer: unexpected call 1: Send(topic="orders", key="k", value="{\"id\":1}", partition=1, header trace-id="req-1"): no more sends were expected`,
	}, ft.finish())
}

func TestMockProducerMismatchFailsTheTest(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockProducer(ft)
	m.ExpectSend().WithTopic("orders").WithKey("k1").WithHeader("v", "2")
	m.ExpectSend().WithTopic("orders")
	m.ExpectSendMatching(func(*kafka.ProducerMessage) error { return errors.New("not an order event") })

	require.Error(t, m.Send(context.Background(), &kafka.ProducerMessage{Topic: "audit", Key: []byte("k2")}))
	require.NoError(t, m.Send(context.Background(), &kafka.ProducerMessage{Topic: "orders"}), "the mismatch used up the first expectation only")
	require.Error(t, m.Send(context.Background(), &kafka.ProducerMessage{Topic: "orders"}))
	failures := ft.finish()
	require.Len(t, failures, 2)
	assert.Equal(t, `kafkatest: MockProducer: call 1: Send(topic="audit", key="k2", value=nil) does not match expected `+
		`Send(topic="orders", key="k1", header v="2") returning <nil>: topic is "audit", want "orders"; key is "k2", want "k1"; no header v="2"`,
		failures[0])
	assert.Contains(t, failures[1], "call 3: ")
	assert.Contains(t, failures[1], ": not an order event")
}

// The headers expectations see are those Kafka would get.
func TestMockProducerMatchesEffectiveHeaders(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockProducer(ft)
	m.SetDefaultHeader("service", []byte("billing"))
	m.SetDefaultHeader("gone", []byte("x"))
	m.DeleteDefaultHeader("gone")
	m.ExpectSend().WithHeader("service", "billing").WithHeader("trace-id", "req-7")
	m.ExpectSendMatching(func(msg *kafka.ProducerMessage) error {
		if _, ok := findHeader(msg.Headers, "gone"); ok {
			return errors.New("deleted default header still sent")
		}
		if v, _ := findHeader(msg.Headers, "service"); v != "own" {
			return fmt.Errorf("service header is %q, want the message's own", v)
		}
		return nil
	})
	require.NoError(t, m.Send(kafka.WithTraceID(context.Background(), "req-7"), &kafka.ProducerMessage{}))
	require.NoError(t, m.Send(context.Background(), &kafka.ProducerMessage{Headers: []kafka.Header{{Key: "service", Value: []byte("own")}}}))
	assert.Empty(t, ft.finish())
}

func findHeader(hs []kafka.Header, key string) (string, bool) {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func TestMockProducerOutput(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockProducer(ft)
	errDown := errors.New("down")
	m.ExpectSend().WithValue("a")
	m.ExpectSend().WithValue("b").Return(errDown)
	m.ExpectSend().WithValue("c").Return(errDown)
	m.ExpectSend().WithValue("flushed on close")
	ch := m.Channels()

	delivered := make(chan kafka.Delivery, 2)
	onDelivery := func(d kafka.Delivery) { delivered <- d }
	ch.Output <- &kafka.ProducerMessage{Value: []byte("a"), OnDelivery: onDelivery}
	require.NoError(t, (<-delivered).Err)
	ch.Output <- &kafka.ProducerMessage{Value: []byte("b"), OnDelivery: onDelivery}
	require.ErrorIs(t, (<-delivered).Err, errDown)
	ch.Output <- &kafka.ProducerMessage{Value: []byte("c")}
	require.ErrorIs(t, <-ch.Errors, errDown, "failures without OnDelivery go to Errors")

	ch.Output <- &kafka.ProducerMessage{Value: []byte("flushed on close")}
	require.NoError(t, m.Close(context.Background()))
	require.NoError(t, m.Close(context.Background()), "idempotent")
	_, open := <-ch.Errors
	assert.False(t, open)
	<-ch.Closed
	require.ErrorIs(t, m.Send(context.Background(), &kafka.ProducerMessage{}), kafka.ErrClosed,
		"after Close, as the real producer, without consulting the script")
	assert.Empty(t, ft.finish())
}

func TestMockProducerUnexpectedOutputFailsTheTest(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockProducer(ft)
	m.Channels().Output <- &kafka.ProducerMessage{Value: []byte("surprise")}
	failures := ft.finish() // the cleanup delivers what Output holds, then checks
	require.Len(t, failures, 1)
	assert.Contains(t, failures[0], `unexpected call 1: Send(topic="", key=nil, value="surprise")`)
}

func TestMockProducerOtherMethods(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockProducer(ft)
	assert.True(t, m.IsInitialised())
	require.NoError(t, m.Initialise(context.Background()))
	assert.Equal(t, kafka.HealthOK, m.Checker(context.Background()).Status)
	m.SetHealth(kafka.Health{Status: kafka.HealthWarning, Message: "topic missing"})
	h := m.Checker(context.Background())
	assert.Equal(t, kafka.HealthWarning, h.Status)
	assert.False(t, h.CheckedAt.IsZero())
	assert.Zero(t, m.DroppedErrors())
	require.NoError(t, m.Close(context.Background()))
	require.ErrorIs(t, m.Initialise(context.Background()), kafka.ErrClosed)
	assert.Equal(t, kafka.HealthCritical, m.Checker(context.Background()).Status)
	assert.Empty(t, ft.finish())
}
