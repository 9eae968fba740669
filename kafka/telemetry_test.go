package kafka_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// recorder is an SDK that keeps every span in memory.
type recorder struct {
	sr  *tracetest.SpanRecorder
	tel kafka.Telemetry
}

func newRecorder(t *testing.T, reg prometheus.Registerer) *recorder {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &recorder{sr: sr, tel: kafka.Telemetry{
		TracerProvider: tp,
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Registerer:     reg,
	}}
}

// tracedProducer starts a cluster with a topic of partitions partitions and
// a producer tracing into a recorder, for the span tests.
func tracedProducer(t *testing.T, partitions int32) (*kafkatest.Cluster, string, context.Context, *recorder, *kafka.Producer) {
	t.Helper()
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, partitions)
	rec := newRecorder(t, nil)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Telemetry: rec.tel})
	return cluster, topic, testCtx(t, 60*time.Second), rec, p
}

// spans returns the ended spans named name.
func (r *recorder) spans(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range r.sr.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// handledSignal is a hook that reports each finished handling, after the
// consumer's own hooks (its spans have ended by then).
func handledSignal(ch chan<- kafka.HandleOutcome) kafka.ConsumerHooks {
	return kafka.ConsumerHooks{OnHandled: func(_ context.Context, _ []kafka.Message, o kafka.HandleOutcome) { ch <- o }}
}

func waitOutcomes(t *testing.T, ctx context.Context, ch <-chan kafka.HandleOutcome, n int) []kafka.HandleOutcome {
	t.Helper()
	var out []kafka.HandleOutcome
	for len(out) < n {
		select {
		case o := <-ch:
			out = append(out, o)
		case <-ctx.Done():
			t.Fatalf("%d of %d handlings finished", len(out), n)
		}
	}
	return out
}

// TestTraceContextThroughSendOutputAndHandler: the context of Send and the
// Context of a message sent on Output reach Kafka as traceparent headers;
// the consumer's process span continues each trace, and the handler's
// context (and Message.Context) carries that process span.
func TestTraceContextThroughSendOutputAndHandler(t *testing.T) {
	cluster, topic, ctx, rec, p := tracedProducer(t, 2)
	tracer := rec.tel.TracerProvider.Tracer("test")

	sendCtx, caller := tracer.Start(ctx, "caller-send")
	require.NoError(t, p.Send(sendCtx, &kafka.ProducerMessage{Partition: new(int32(0)), Value: []byte("via-send")}))
	caller.End()
	outCtx, outCaller := tracer.Start(ctx, "caller-output")
	delivered := make(chan kafka.Delivery, 1)
	p.Channels().Output <- &kafka.ProducerMessage{Partition: new(int32(1)), Value: []byte("via-output"), Context: outCtx,
		OnDelivery: func(d kafka.Delivery) { delivered <- d }}
	select {
	case d := <-delivered:
		require.NoError(t, d.Err)
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
	outCaller.End()

	sends := rec.spans("send " + topic)
	require.Len(t, sends, 2)
	byParent := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range sends {
		byParent[s.Parent().SpanID()] = s
		assert.Equal(t, trace.SpanKindProducer, s.SpanKind())
		a := attrs(s)
		assert.Equal(t, "kafka", a["messaging.system"].AsString())
		assert.Equal(t, "send", a["messaging.operation.name"].AsString())
		assert.Equal(t, topic, a["messaging.destination.name"].AsString())
		assert.Contains(t, a, attribute.Key("messaging.destination.partition.id"), "partition once acked")
		assert.Equal(t, int64(0), a["messaging.kafka.offset"].AsInt64(), "one record per partition")
	}
	sendSpan, ok := byParent[caller.SpanContext().SpanID()]
	require.True(t, ok, "Send's context is the send span's parent")
	outSpan, ok := byParent[outCaller.SpanContext().SpanID()]
	require.True(t, ok, "ProducerMessage.Context is the send span's parent")

	handled := make(chan kafka.HandleOutcome, 4)
	type seen struct{ handlerSpan, msgSpan trace.SpanContext }
	got := map[string]seen{}
	var mu sync.Mutex
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic},
		GroupName: kafkatest.UniqueName("g"), Telemetry: rec.tel, Hooks: []kafka.ConsumerHooks{handledSignal(handled)}})
	require.NoError(t, g.RegisterHandler(ctx, func(hctx context.Context, _ int, m kafka.Message) error {
		mu.Lock()
		got[string(m.Value())] = seen{trace.SpanContextFromContext(hctx), trace.SpanContextFromContext(m.Context())}
		mu.Unlock()
		return nil
	}))
	g.Start()
	waitOutcomes(t, ctx, handled, 2)

	procs := rec.spans("process " + topic)
	require.Len(t, procs, 2)
	for _, ps := range procs {
		assert.Equal(t, trace.SpanKindConsumer, ps.SpanKind())
		a := attrs(ps)
		assert.Equal(t, "kafka", a["messaging.system"].AsString())
		assert.Equal(t, "process", a["messaging.operation.name"].AsString())
		assert.NotEmpty(t, a["messaging.consumer.group.name"].AsString())
		assert.Contains(t, a, attribute.Key("messaging.destination.partition.id"))
		assert.Contains(t, a, attribute.Key("messaging.kafka.offset"))
		assert.True(t, ps.Parent().IsRemote(), "continued from the record's headers")
	}
	for value, send := range map[string]sdktrace.ReadOnlySpan{"via-send": sendSpan, "via-output": outSpan} {
		i := slices.IndexFunc(procs, func(s sdktrace.ReadOnlySpan) bool { return s.Parent().SpanID() == send.SpanContext().SpanID() })
		require.GreaterOrEqual(t, i, 0, "%s: a process span is the send span's child", value)
		proc := procs[i]
		assert.Equal(t, send.SpanContext().TraceID(), proc.SpanContext().TraceID())
		mu.Lock()
		s := got[value]
		mu.Unlock()
		assert.Equal(t, proc.SpanContext().SpanID(), s.handlerSpan.SpanID(), "%s: the handler's context carries the process span", value)
		assert.Equal(t, proc.SpanContext().SpanID(), s.msgSpan.SpanID(), "%s: so does Message.Context", value)
	}
}

// TestBatchHandlerSpanLinksEachMessage: a batch gets one process span of a
// trace of its own, linked to every message's send span.
func TestBatchHandlerSpanLinksEachMessage(t *testing.T) {
	cluster, topic, ctx, rec, p := tracedProducer(t, 1)
	tracer := rec.tel.TracerProvider.Tracer("test")
	var callers []trace.SpanContext
	for i := range 3 {
		sctx, span := tracer.Start(ctx, "caller")
		require.NoError(t, p.Send(sctx, &kafka.ProducerMessage{Value: []byte(strconv.Itoa(i))}))
		span.End()
		callers = append(callers, span.SpanContext())
	}
	handled := make(chan kafka.HandleOutcome, 4)
	var batchSpan trace.SpanContext
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic},
		GroupName: kafkatest.UniqueName("g"), BatchSize: 3, BatchWaitTime: 30 * time.Second,
		Telemetry: rec.tel, Hooks: []kafka.ConsumerHooks{handledSignal(handled)}})
	require.NoError(t, g.RegisterBatchHandler(ctx, func(hctx context.Context, batch []kafka.Message) error {
		if len(batch) != 3 {
			return fmt.Errorf("batch of %d", len(batch))
		}
		batchSpan = trace.SpanContextFromContext(hctx)
		return nil
	}))
	g.Start()
	o := waitOutcomes(t, ctx, handled, 1)[0]
	require.NoError(t, o.Err)

	procs := rec.spans("process " + topic)
	require.Len(t, procs, 1)
	proc := procs[0]
	assert.Equal(t, batchSpan.SpanID(), proc.SpanContext().SpanID(), "the batch handler's context carries the span")
	assert.False(t, proc.Parent().IsValid(), "a batch starts a trace of its own")
	assert.Equal(t, int64(3), attrs(proc)["messaging.batch.message_count"].AsInt64())
	var linked []trace.TraceID
	for _, l := range proc.Links() {
		linked = append(linked, l.SpanContext.TraceID())
	}
	for i, c := range callers {
		assert.Contains(t, linked, c.TraceID(), "message %d's trace is linked", i)
	}
	sends := rec.spans("send " + topic)
	require.Len(t, sends, 3)
	for _, s := range sends {
		assert.True(t, slices.ContainsFunc(proc.Links(), func(l sdktrace.Link) bool { return l.SpanContext.SpanID() == s.SpanContext().SpanID() }),
			"the link points at the send span")
	}
}

// TestRetriedThenDeadLetteredSpanAndMetrics: a message whose handler keeps
// failing shows each attempt on its process span, ends in error with a
// dead_lettered event and a child send span to the dead-letter topic; the
// metrics count the errors, retries, panics and the dead letter.
func TestRetriedThenDeadLetteredSpanAndMetrics(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	dlt := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 60*time.Second)
	reg := prometheus.NewRegistry()
	rec := newRecorder(t, reg)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Telemetry: rec.tel})
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("poison")}))
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("fine")}))

	handled := make(chan kafka.HandleOutcome, 4)
	group := kafkatest.UniqueName("g")
	calls := 0
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group,
		HandlerRetries: 2, HandlerRetryBackoff: time.Millisecond, DeadLetterTopic: dlt,
		Telemetry: rec.tel, Hooks: []kafka.ConsumerHooks{handledSignal(handled)}})
	require.NoError(t, g.RegisterHandler(ctx, func(_ context.Context, _ int, m kafka.Message) error {
		if string(m.Value()) != "poison" {
			return nil
		}
		if calls++; calls == 2 {
			panic("second attempt panics")
		}
		return errBoom
	}))
	g.Start()
	outs := waitOutcomes(t, ctx, handled, 2)
	assert.Equal(t, kafka.HandleOutcome{Attempts: 3, Err: outs[0].Err, DeadLettered: true}, outs[0])
	require.ErrorIs(t, outs[0].Err, errBoom)
	assert.Equal(t, kafka.HandleOutcome{Attempts: 1}, outs[1])

	procs := rec.spans("process " + topic)
	require.Len(t, procs, 2)
	poison := procs[0]
	assert.Equal(t, codes.Error, poison.Status().Code)
	var retries []int64
	var events []string
	for _, e := range poison.Events() {
		events = append(events, e.Name)
		if e.Name == kafka.EventRetry {
			for _, kv := range e.Attributes {
				if kv.Key == "attempt" {
					retries = append(retries, kv.Value.AsInt64())
				}
			}
		}
	}
	assert.Equal(t, []int64{1, 2}, retries, "one retry event per failed attempt that was retried")
	assert.Equal(t, []string{kafka.EventRetry, kafka.EventRetry, "exception", kafka.EventDeadLettered}, events)
	assert.Equal(t, int64(3), attrs(poison)["kafkahub.attempts"].AsInt64())
	assert.Equal(t, codes.Unset, procs[1].Status().Code)

	dlSends := rec.spans("send " + dlt)
	require.Len(t, dlSends, 1)
	assert.Equal(t, poison.SpanContext().SpanID(), dlSends[0].Parent().SpanID(), "the dead-letter send is a child of the process span")

	labels := []string{group, topic}
	for name, want := range map[string]float64{
		"kafkahub_consumer_handler_errors_total":  3,
		"kafkahub_consumer_handler_retries_total": 2,
		"kafkahub_consumer_handler_panics_total":  1,
		"kafkahub_consumer_dead_lettered_total":   1,
		"kafkahub_consumer_records_handled_total": 2,
	} {
		assert.Equal(t, want, gathered(t, reg, name, labels...), name)
	}
	assert.Equal(t, float64(4), histogramCount(t, reg, "kafkahub_consumer_handler_seconds", labels...), "one observation per handler call")
	assert.Equal(t, float64(1), gathered(t, reg, "kafkahub_producer_records_total", dlt), "the dead-letter producer shares the registry")
}

// TestMetricsLagDrainsAndProduceLatency: lag is the high watermark minus the
// next offset to commit, reported as records are marked; it reaches zero
// once the partition is drained. The producer counts records, bytes and
// errors and observes each record's send-to-ack latency.
func TestMetricsLagDrainsAndProduceLatency(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 60*time.Second)
	reg := prometheus.NewRegistry()
	tel := kafka.Telemetry{Registerer: reg}
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Telemetry: tel, MaxMessageBytes: 1000})
	const n = 10
	for i := range n {
		require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Key: []byte("k"), Value: []byte(fmt.Sprintf("v%03d", i))}))
	}
	require.ErrorIs(t, p.Send(ctx, &kafka.ProducerMessage{Value: make([]byte, 2000)}), kafka.ErrMessageTooLarge)
	assert.Equal(t, float64(n), gathered(t, reg, "kafkahub_producer_records_total", topic))
	assert.Equal(t, float64(n*(1+4)), gathered(t, reg, "kafkahub_producer_bytes_total", topic))
	assert.Equal(t, float64(1), gathered(t, reg, "kafkahub_producer_errors_total", topic))
	assert.Equal(t, float64(n+1), histogramCount(t, reg, "kafkahub_producer_send_to_ack_seconds", topic))
	assert.Equal(t, float64(0), gathered(t, reg, "kafkahub_producer_records_waiting"))
	assert.Equal(t, float64(1), gathered(t, reg, "kafkahub_producer_init_attempts_total", "ok"))

	group := kafkatest.UniqueName("g")
	entered, release := make(chan int64), make(chan struct{})
	handled := make(chan kafka.HandleOutcome, n)
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group,
		Telemetry: tel, Hooks: []kafka.ConsumerHooks{handledSignal(handled)}})
	require.NoError(t, g.RegisterHandler(ctx, func(_ context.Context, _ int, m kafka.Message) error {
		if m.Offset() == 1 {
			entered <- m.Offset()
			<-release
		}
		return nil
	}))
	g.Start()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("offset 1 not handled")
	}
	// Offset 0 is marked: the next to commit is 1, the high watermark n.
	assert.Equal(t, float64(n-1), gathered(t, reg, "kafkahub_consumer_lag", group, "0", topic))
	close(release)
	// Offset 0's outcome is already in the channel: n in all. OnHandled
	// runs before the record's offset is marked, so the last mark may
	// follow the last outcome: wait for it.
	waitOutcomes(t, ctx, handled, n)
	assert.Eventually(t, func() bool {
		return gathered(t, reg, "kafkahub_consumer_offsets_marked_total", group, topic) == float64(n)
	}, 30*time.Second, 5*time.Millisecond, "every offset marked")
	assert.Equal(t, float64(0), gathered(t, reg, "kafkahub_consumer_lag", group, "0", topic), "drained")
	assert.Equal(t, float64(n), gathered(t, reg, "kafkahub_consumer_offsets_marked_total", group, topic))
	assert.Equal(t, float64(1), gathered(t, reg, "kafkahub_consumer_state", group, "Consuming"))
	assert.Equal(t, float64(0), gathered(t, reg, "kafkahub_consumer_state", group, "Stopped"))
	assert.Equal(t, float64(1), gathered(t, reg, "kafkahub_consumer_rebalances_total", group))
	assert.Equal(t, float64(1), histogramCount(t, reg, "kafkahub_consumer_rebalance_seconds", group))
	assert.Equal(t, float64(1), gathered(t, reg, "kafkahub_consumer_init_attempts_total", group, "ok"))

	require.NoError(t, g.StopAndWait(ctx))
	assert.GreaterOrEqual(t, gathered(t, reg, "kafkahub_consumer_commits_total", group), float64(1), "Stop commits")
	assert.Equal(t, float64(1), gathered(t, reg, "kafkahub_consumer_state", group, "Stopped"))
	assert.Equal(t, 0, testutil.CollectAndCount(reg, "kafkahub_consumer_lag"), "a revoked partition's lag is not reported")
}

// TestFranzProducedTraceparentContinues: a record written by raw franz-go
// with a W3C traceparent header continues that trace in a kafkahub handler.
func TestFranzProducedTraceparentContinues(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 60*time.Second)
	rec := newRecorder(t, nil)
	upstream, span := rec.tel.TracerProvider.Tracer("franz").Start(ctx, "franz-produce")
	span.End()
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(upstream, carrier)
	require.NotEmpty(t, carrier["traceparent"])

	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.Addrs()...))
	require.NoError(t, err)
	defer cl.Close()
	r := &kgo.Record{Topic: topic, Value: []byte("from franz"), Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(carrier["traceparent"])}}}
	require.NoError(t, cl.ProduceSync(ctx, r).FirstErr())

	handled := make(chan kafka.HandleOutcome, 1)
	var seen trace.SpanContext
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic},
		GroupName: kafkatest.UniqueName("g"), Telemetry: rec.tel, Hooks: []kafka.ConsumerHooks{handledSignal(handled)}})
	require.NoError(t, g.RegisterHandler(ctx, func(hctx context.Context, _ int, _ kafka.Message) error {
		seen = trace.SpanContextFromContext(hctx)
		return nil
	}))
	g.Start()
	waitOutcomes(t, ctx, handled, 1)
	assert.Equal(t, span.SpanContext().TraceID(), seen.TraceID(), "the handler continues franz-go's trace")
	procs := rec.spans("process " + topic)
	require.Len(t, procs, 1)
	assert.Equal(t, span.SpanContext().SpanID(), procs[0].Parent().SpanID())
}

// TestNoTelemetryWritesNoHeader: with no SDK and no propagator installed
// (the OpenTelemetry globals' defaults), records carry no extra header.
func TestNoTelemetryWritesNoHeader(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 30*time.Second)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("x"), Headers: []kafka.Header{{Key: "h", Value: []byte("v")}}}))
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.Addrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	fs := cl.PollRecords(ctx, 1)
	require.NoError(t, fs.Err0())
	recs := fs.Records()
	require.Len(t, recs, 1)
	assert.Equal(t, []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}, recs[0].Headers)
}

// TestMetricsDocumented: every metric the package registers has a row in
// docs/OBSERVABILITY.md's table, and every row names a metric that exists.
func TestMetricsDocumented(t *testing.T) {
	reg := &recordingRegisterer{Registry: prometheus.NewRegistry()}
	tel := kafka.Telemetry{Registerer: reg}
	addrs := []string{"127.0.0.1:1"} // never reached: registration happens in the constructors
	pctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, err := kafka.NewProducer(pctx, &kafka.ProducerConfig{BrokerAddrs: addrs, Topic: "t", Telemetry: tel, Logger: quiet})
	require.NoError(t, err)
	g, err := kafka.NewConsumerGroup(pctx, &kafka.ConsumerGroupConfig{BrokerAddrs: addrs, Topics: []string{"t"}, GroupName: "g", Telemetry: tel, Logger: quiet})
	require.NoError(t, err)
	cctx, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	require.NoError(t, p.Close(cctx))
	require.NoError(t, g.Close(cctx))

	doc, err := os.ReadFile("../docs/OBSERVABILITY.md")
	require.NoError(t, err)
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(kafkahub_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(documented)
	registered := reg.names()
	assert.Equal(t, registered, documented)
	assert.Len(t, registered, 19)
}

// recordingRegisterer notes the names of what is registered.
type recordingRegisterer struct {
	*prometheus.Registry
	mu  sync.Mutex
	got map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 8)
	go func() { c.Describe(ch); close(ch) }()
	r.mu.Lock()
	if r.got == nil {
		r.got = map[string]bool{}
	}
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.got[m[1]] = true
		}
	}
	r.mu.Unlock()
	return r.Registry.Register(c)
}

func (r *recordingRegisterer) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for n := range r.got {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// gathered returns the value of the counter or gauge named name whose
// label values, in label-name order, are values.
func gathered(t *testing.T, g prometheus.Gatherer, name string, values ...string) float64 {
	t.Helper()
	m := find(t, g, name, values)
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s is neither counter nor gauge", name)
	return 0
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string, values ...string) float64 {
	t.Helper()
	return float64(find(t, g, name, values).Histogram.GetSampleCount())
}

func find(t *testing.T, g prometheus.Gatherer, name string, values []string) *dto.Metric {
	t.Helper()
	fams, err := g.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var vs []string
			for _, lp := range m.GetLabel() {
				vs = append(vs, lp.GetValue())
			}
			if slices.Equal(vs, values) {
				return m
			}
		}
		var all []string
		for _, m := range f.GetMetric() {
			all = append(all, m.String())
		}
		t.Fatalf("%s{%s} not found among %s", name, strings.Join(values, ","), strings.Join(all, "; "))
	}
	t.Fatalf("%s not gathered", name)
	return nil
}

// TestGlobalsSetAfterConstruction: a producer and consumer made before the
// application installs an SDK and a propagator (the zero Telemetry) trace
// once they are installed. Setting the globals is process-wide, so the
// test runs itself in a child process.
func TestGlobalsSetAfterConstruction(t *testing.T) {
	const child = "KAFKAHUB_TEST_OTEL_GLOBALS"
	if os.Getenv(child) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGlobalsSetAfterConstruction$", "-test.count=1")
		cmd.Env = append(os.Environ(), child+"=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "PASS")
		return
	}
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 60*time.Second)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	handled := make(chan kafka.HandleOutcome, 2)
	var seen trace.SpanContext
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic},
		GroupName: kafkatest.UniqueName("g"), Hooks: []kafka.ConsumerHooks{handledSignal(handled)}})
	require.NoError(t, g.RegisterHandler(ctx, func(hctx context.Context, _ int, m kafka.Message) error {
		if string(m.Value()) == "after" {
			seen = trace.SpanContextFromContext(hctx)
		}
		return nil
	}))
	g.Start()
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("before")}))
	waitOutcomes(t, ctx, handled, 1)

	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("after")}))
	waitOutcomes(t, ctx, handled, 1)

	var names []string
	var send sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		names = append(names, s.Name())
		if s.Name() == "send "+topic {
			send = s
		}
	}
	assert.ElementsMatch(t, []string{"send " + topic, "process " + topic}, names, "only the record sent after the SDK is traced")
	require.NotNil(t, send)
	assert.Equal(t, send.SpanContext().TraceID(), seen.TraceID(), "the handler continues the producer's trace")
}

// TestDashboardUsesExistingMetrics: every metric the Grafana dashboard
// queries exists: a kafkahub_ one in this package's registered set, a
// tcphub_ one in tcphub's collectors.
func TestDashboardUsesExistingMetrics(t *testing.T) {
	dash, err := os.ReadFile("../docs/grafana/kafkahub-dashboard.json")
	require.NoError(t, err)
	doc, err := os.ReadFile("../docs/OBSERVABILITY.md")
	require.NoError(t, err)
	gateway, err := os.ReadFile("../tcphub/metrics.go")
	require.NoError(t, err)
	used := regexp.MustCompile(`\b(kafkahub|tcphub)_[a-z_]+`).FindAllString(string(dash), -1)
	require.NotEmpty(t, used)
	for _, name := range used {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(base, "kafkahub_") {
			assert.Contains(t, string(doc), "| `"+base+"` |", "%s is a documented kafka metric", name)
		} else {
			assert.Contains(t, string(gateway), `"`+base+`"`, "%s is one of tcphub's metrics", name)
		}
	}
}

// TestReaderCarriesTraceContext: a Reader puts the trace context of a
// record's headers into the message's Context (the gateway's delivery span
// continues from it).
func TestReaderCarriesTraceContext(t *testing.T) {
	cluster, topic, ctx, rec, p := tracedProducer(t, 1)
	sctx, caller := rec.tel.TracerProvider.Tracer("test").Start(ctx, "caller")
	require.NoError(t, p.Send(sctx, &kafka.ProducerMessage{Value: []byte("x")}))
	caller.End()
	send := rec.spans("send " + topic)
	require.Len(t, send, 1)

	r, err := kafka.NewReader(ctx, &kafka.ReaderConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, From: kafka.ReadOldest,
		Telemetry: kafka.Telemetry{Propagator: propagation.TraceContext{}}, Logger: quiet})
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Close()) }()
	select {
	case m := <-r.Messages():
		sc := trace.SpanContextFromContext(m.Context())
		assert.Equal(t, send[0].SpanContext().SpanID(), sc.SpanID(), "the send span, from the headers")
		assert.True(t, sc.IsRemote())
	case <-ctx.Done():
		t.Fatal("nothing read")
	}
}
