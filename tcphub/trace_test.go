package tcphub_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/device"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// TestRoundTripIsOneTrace: a request that carries the device's traceparent
// gives one trace device -> gateway -> Kafka -> worker -> Kafka -> gateway
// -> device, each span the child of the one before, and the response frame
// carries the delivery span's context back to the device.
func TestRoundTripIsOneTrace(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	sr := tracetest.NewSpanRecorder()
	ended := make(chan string, 1024)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithSpanProcessor(&endSignal{ch: ended}))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tel := kafka.Telemetry{TracerProvider: tp, Propagator: propagation.TraceContext{}}
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.Telemetry = tel })

	startTracedWorker(t, cluster, topic, tel)

	_, device := tp.Tracer("device").Start(context.Background(), "device request")
	device.End()
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpan(context.Background(), device), carrier)

	d := dialRaw(t, gw.addr)
	d.hello("sensor-trace")
	d.send(wire.Frame{Type: wire.TypeRequest, ID: "r-1", TraceParent: carrier["traceparent"], Payload: []byte(`{"temp":21.5}`)})
	d.expect(wire.TypeAck)
	resp := d.expect(wire.TypeResponse)

	chain := []struct {
		name string
		kind trace.SpanKind
	}{
		{"request " + topic, trace.SpanKindServer},
		{"send " + topic, trace.SpanKindProducer},
		{"process " + topic, trace.SpanKindConsumer},
		{"send " + gw.ReplyTopic(), trace.SpanKindProducer},
		{"deliver response", trace.SpanKindProducer},
	}
	// The response can reach the device before the worker's spans end
	// (Reply waits for Kafka's ack), and the delivery span ends once the
	// frame is queued: wait for every span of the chain to end.
	waiting := map[string]bool{}
	for _, c := range chain {
		waiting[c.name] = true
	}
	wctx := testCtx(t, 30*time.Second)
	for len(waiting) > 0 {
		select {
		case name := <-ended:
			delete(waiting, name)
		case <-wctx.Done():
			t.Fatalf("spans %v not ended; ended: %v", waiting, names(sr.Ended()))
		}
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range sr.Ended() {
		byName[s.Name()] = s
	}
	deliver := byName["deliver response"]
	parent := device.SpanContext()
	for _, c := range chain {
		s, ok := byName[c.name]
		require.True(t, ok, "span %q among %v", c.name, names(sr.Ended()))
		assert.Equal(t, c.kind, s.SpanKind(), c.name)
		assert.Equal(t, device.SpanContext().TraceID(), s.SpanContext().TraceID(), "%s is in the device's trace", c.name)
		assert.Equal(t, parent.SpanID(), s.Parent().SpanID(), "%s's parent", c.name)
		parent = s.SpanContext()
	}
	got := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": resp.TraceParent})
	sc := trace.SpanContextFromContext(got)
	assert.Equal(t, device.SpanContext().TraceID(), sc.TraceID(), "the response continues the device's trace")
	assert.Equal(t, deliver.SpanContext().SpanID(), sc.SpanID(), "the response's tp names the delivery span")
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

// endSignal is a span processor that sends the name of each ended span.
type endSignal struct{ ch chan<- string }

func (e *endSignal) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e *endSignal) OnEnd(s sdktrace.ReadOnlySpan) {
	select {
	case e.ch <- s.Name():
	default:
	}
}
func (e *endSignal) Shutdown(context.Context) error   { return nil }
func (e *endSignal) ForceFlush(context.Context) error { return nil }

// TestDeviceClientCarriesTrace: the Go device client puts what its
// TraceParent option returns for the request's context (here the
// OpenTelemetry span) in tp, and reports the response's tp: the gateway's
// delivery span, in the same trace.
func TestDeviceClientCarriesTrace(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tel := kafka.Telemetry{TracerProvider: tp, Propagator: propagation.TraceContext{}}
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.Telemetry = tel })
	startTracedWorker(t, cluster, topic, tel)

	c, err := device.Dial(testCtx(t, 10*time.Second), gw.addr, device.Options{DeviceID: "traced-1", Logger: quiet,
		TraceParent: func(ctx context.Context) string {
			c := propagation.MapCarrier{}
			propagation.TraceContext{}.Inject(ctx, c)
			return c["traceparent"]
		}})
	require.NoError(t, err)
	defer c.Close()
	ctx, span := tp.Tracer("device").Start(testCtx(t, 30*time.Second), "device round trip")
	call, err := c.Request(ctx, []byte(`{"a":1}`))
	require.NoError(t, err)
	resp, err := call.Response(ctx)
	require.NoError(t, err)
	span.End()

	var request sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == "request "+topic {
			request = s
		}
	}
	require.NotNil(t, request, "the request span ended before the ack")
	assert.Equal(t, span.SpanContext().SpanID(), request.Parent().SpanID(), "the gateway continues the device's span")
	got := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": resp.TraceParent}))
	assert.True(t, got.IsValid(), "response tp %q", resp.TraceParent)
	assert.Equal(t, span.SpanContext().TraceID(), got.TraceID(), "the response is in the device's trace")
}

// startTracedWorker answers every request with tcphub.Reply, tracing with
// tel, until the end of the test.
func startTracedWorker(t *testing.T, cluster *kafkatest.Cluster, topic string, tel kafka.Telemetry) {
	t.Helper()
	p, err := kafka.NewProducer(testCtx(t, 30*time.Second), &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Telemetry: tel, Logger: quiet})
	require.NoError(t, err)
	g, err := kafka.NewConsumerGroup(testCtx(t, 30*time.Second), &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(),
		Topics: []string{topic}, GroupName: kafkatest.UniqueName("workers"), Telemetry: tel, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, g.Close(ctx))
		require.NoError(t, p.Close(ctx))
	})
	require.NoError(t, g.RegisterHandler(context.Background(), func(ctx context.Context, _ int, msg kafka.Message) error {
		return tcphub.Reply(ctx, p, msg, 200, []byte(`{"ok":true}`))
	}))
	g.Start()
}
