package kafkatest_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

var (
	_ kafka.IProducer = (*kafkatest.Producer)(nil)
	_ kafka.IProducer = (*kafkatest.MockProducer)(nil)
)

func newProducer(t *testing.T, cfg *kafka.ProducerConfig) *kafkatest.Producer {
	p := kafkatest.NewProducer(cfg)
	t.Cleanup(func() { require.NoError(t, p.Close(context.Background())) })
	return p
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestProducerRecordsWhatKafkaWouldStore(t *testing.T) {
	p := newProducer(t, &kafka.ProducerConfig{Topic: "orders"})
	p.SetDefaultHeader("service", []byte("billing"))
	p.SetDefaultHeader("overridden", []byte("default"))
	ctx := kafka.WithTraceID(context.Background(), "req-1")

	key := []byte("k1")
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Key: key, Value: []byte("a"),
		Headers: []kafka.Header{{Key: "overridden", Value: []byte("own")}}}))
	key[0] = 'X' // the caller may reuse its buffers once Send returns
	require.NoError(t, p.Send(context.Background(), &kafka.ProducerMessage{Topic: "audit", Value: []byte("b")}))
	require.NoError(t, p.Send(context.Background(), &kafka.ProducerMessage{Value: []byte("c"), Partition: new(int32(2))}))
	require.NoError(t, p.Send(context.Background(), &kafka.ProducerMessage{Value: []byte("d")}))
	p.DeleteDefaultHeader("service")
	require.NoError(t, p.Send(context.Background(), &kafka.ProducerMessage{Value: []byte("e")}))

	ms := p.Messages()
	require.Len(t, ms, 5)
	first := ms[0]
	assert.Equal(t, "orders", first.Topic(), "the configured topic when the message names none")
	assert.Equal(t, []byte("k1"), first.Key())
	assert.Equal(t, []kafka.Header{
		{Key: "service", Value: []byte("billing")},
		{Key: "overridden", Value: []byte("own")},
		{Key: kafka.DefaultTraceHeader, Value: []byte("req-1")},
	}, first.Headers())
	assert.Equal(t, "req-1", kafka.TraceID(first.Context()))

	type pos struct {
		topic     string
		partition int32
		offset    int64
	}
	var got []pos
	for _, m := range ms {
		got = append(got, pos{m.Topic(), m.Partition(), m.Offset()})
	}
	assert.Equal(t, []pos{{"orders", 0, 0}, {"audit", 0, 0}, {"orders", 2, 0}, {"orders", 0, 1}, {"orders", 0, 2}}, got,
		"offsets count from 0 in each topic and partition")
	_, ok := ms[4].Header("service")
	assert.False(t, ok, "deleted default header")
}

func TestProducerCustomTrace(t *testing.T) {
	type key struct{}
	p := newProducer(t, &kafka.ProducerConfig{Topic: "t", TraceHeader: "x-request-id",
		TraceIDFunc: func(ctx context.Context) string { s, _ := ctx.Value(key{}).(string); return s }})
	require.NoError(t, p.Send(context.WithValue(context.Background(), key{}, "r-9"), &kafka.ProducerMessage{}))
	m, err := p.WaitForMessage(testCtx(t))
	require.NoError(t, err)
	v, ok := m.Header("x-request-id")
	require.True(t, ok)
	assert.Equal(t, "r-9", string(v))

	panicky := newProducer(t, &kafka.ProducerConfig{Topic: "t", TraceIDFunc: func(context.Context) string { panic("boom") }})
	require.NoError(t, panicky.Send(context.Background(), &kafka.ProducerMessage{}), "a panicking TraceIDFunc adds no header")
	assert.Empty(t, panicky.Messages()[0].Headers())
}

func TestProducerFailNext(t *testing.T) {
	p := newProducer(t, &kafka.ProducerConfig{Topic: "t"})
	errDown := errors.New("broker down")
	p.FailNext(errDown, errDown)

	var delivered []kafka.Delivery
	msg := &kafka.ProducerMessage{Value: []byte("a"), OnDelivery: func(d kafka.Delivery) { delivered = append(delivered, d) }}
	err := p.Send(context.Background(), msg)
	require.ErrorIs(t, err, errDown)
	var perr *kafka.ProducerError
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, "t", perr.Topic)
	assert.Same(t, msg, perr.Msg)
	require.Len(t, delivered, 1, "OnDelivery is called for Send too")
	assert.Equal(t, int64(-1), delivered[0].Offset)
	assert.ErrorIs(t, delivered[0].Err, errDown)

	require.ErrorIs(t, p.Send(context.Background(), &kafka.ProducerMessage{}), errDown)
	require.NoError(t, p.Send(context.Background(), &kafka.ProducerMessage{Value: []byte("ok")}))
	ms := p.Messages()
	require.Len(t, ms, 1, "failed sends are not recorded")
	assert.Equal(t, int64(0), ms[0].Offset())
}

func TestProducerFailWhen(t *testing.T) {
	p := newProducer(t, &kafka.ProducerConfig{Topic: "t"})
	errAudit := errors.New("audit topic unavailable")
	p.FailWhen(func(m *kafka.ProducerMessage) error {
		if m.Topic == "audit" {
			return errAudit
		}
		return nil
	})
	require.ErrorIs(t, p.Send(context.Background(), &kafka.ProducerMessage{Topic: "audit"}), errAudit)
	require.NoError(t, p.Send(context.Background(), &kafka.ProducerMessage{}))
	p.FailWhen(nil)
	require.NoError(t, p.Send(context.Background(), &kafka.ProducerMessage{Topic: "audit"}))
	assert.Len(t, p.Messages(), 2)
}

func TestProducerRejectsWhatTheRealOneRejects(t *testing.T) {
	p := newProducer(t, &kafka.ProducerConfig{Topic: "t", MaxMessageBytes: 100})
	err := p.Send(context.Background(), &kafka.ProducerMessage{Value: make([]byte, 200)})
	require.ErrorIs(t, err, kafka.ErrMessageTooLarge)
	require.Error(t, p.Send(context.Background(), &kafka.ProducerMessage{Partition: new(int32(-1))}))
	require.Error(t, p.Send(context.Background(), nil))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, p.Send(ctx, &kafka.ProducerMessage{}), context.Canceled)
	assert.Empty(t, p.Messages())
}

func TestProducerOutput(t *testing.T) {
	p := newProducer(t, &kafka.ProducerConfig{Topic: "t", ErrorsBufferSize: 1})
	ch := p.Channels()
	errDown := errors.New("down")

	delivered := make(chan kafka.Delivery, 1)
	ch.Output <- &kafka.ProducerMessage{Value: []byte("a"), OnDelivery: func(d kafka.Delivery) { delivered <- d }}
	d := <-delivered
	require.NoError(t, d.Err)
	assert.Equal(t, int64(0), d.Offset)

	p.FailNext(errDown, errDown, errDown)
	ch.Output <- &kafka.ProducerMessage{Value: []byte("b"), OnDelivery: func(d kafka.Delivery) { delivered <- d }}
	assert.ErrorIs(t, (<-delivered).Err, errDown, "a failure with OnDelivery goes to OnDelivery")
	ch.Output <- &kafka.ProducerMessage{Value: []byte("c")}
	ch.Output <- &kafka.ProducerMessage{Value: []byte("d")} // Errors holds one: this one is dropped
	ch.Output <- &kafka.ProducerMessage{Value: []byte("e")}
	ms, err := p.WaitForMessages(testCtx(t), 2)
	require.NoError(t, err)
	assert.Equal(t, []byte("e"), ms[1].Value())

	perr := <-ch.Errors
	var pe *kafka.ProducerError
	require.ErrorAs(t, perr, &pe)
	assert.Equal(t, []byte("c"), pe.Msg.Value)
	assert.Equal(t, uint64(1), p.DroppedErrors(), "a full Errors channel never blocks the producer")
}

func TestProducerCloseFlushesOutput(t *testing.T) {
	p := kafkatest.NewProducer(&kafka.ProducerConfig{Topic: "t"})
	ch := p.Channels()
	assert.True(t, p.IsInitialised())
	require.NoError(t, p.Initialise(context.Background()))
	assert.Equal(t, kafka.HealthOK, p.Checker(context.Background()).Status)

	for range 10 {
		ch.Output <- &kafka.ProducerMessage{Value: []byte("x")}
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { assert.NoError(t, p.Close(context.Background())) })
	}
	wg.Wait()
	assert.Len(t, p.Messages(), 10, "what Output held is delivered before Close returns")
	_, open := <-ch.Errors
	assert.False(t, open)
	<-ch.Closed
	<-ch.Closer
	require.ErrorIs(t, p.Send(context.Background(), &kafka.ProducerMessage{}), kafka.ErrClosed)
	require.ErrorIs(t, p.Initialise(context.Background()), kafka.ErrClosed)
	assert.Equal(t, kafka.HealthCritical, p.Checker(context.Background()).Status)
}

func TestProducerWaitForMessages(t *testing.T) {
	p := newProducer(t, nil)
	go func() {
		for range 3 {
			_ = p.Send(context.Background(), &kafka.ProducerMessage{Topic: "t"})
		}
	}()
	ms, err := p.WaitForMessages(testCtx(t), 3)
	require.NoError(t, err)
	assert.Len(t, ms, 3)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.WaitForMessages(ctx, 4)
	require.ErrorIs(t, err, context.Canceled)
	assert.True(t, strings.Contains(err.Error(), "waiting for 4 messages, 3 recorded"), err.Error())

	p.FailNext(errors.New("x"))
	p.Reset()
	assert.Empty(t, p.Messages())
	require.NoError(t, p.Send(context.Background(), &kafka.ProducerMessage{Topic: "t"}), "Reset forgets scripted failures")
	m, err := p.WaitForMessage(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, int64(0), m.Offset(), "Reset numbers offsets from 0 again")
}
