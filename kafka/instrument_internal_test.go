package kafka

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
)

// TestInstrumentationWithoutSDKAllocatesNothing: with the zero Telemetry
// and no SDK or propagator installed (the OpenTelemetry globals as the
// process starts), what the instrumentation adds to a produced record and
// to a handled message allocates nothing. docs/BENCHMARKS.md
// (Observability) rests on it.
func TestInstrumentationWithoutSDKAllocatesNothing(t *testing.T) {
	po, err := newProducerObs(ProducerConfig{Topic: "t"}.withDefaults())
	assert.NoError(t, err)
	msg := &ProducerMessage{Value: []byte("v"), Headers: []Header{{Key: "h", Value: []byte("x")}}}
	d := Delivery{Message: msg, Topic: "t"}
	produced := testing.AllocsPerRun(1000, func() {
		env := envelope{msg: msg, topic: "t", headers: msg.Headers}
		po.send(&env)
		po.delivered(&env, d)
	})
	assert.Zero(t, produced, "allocations per produced record")

	g := &ConsumerGroup{cfg: ConsumerGroupConfig{GroupName: "g", Topics: []string{"t"}}.withDefaults(), commits: newCommitSignal()}
	g.obs, err = newConsumerObs(g)
	assert.NoError(t, err)
	rec := record{topic: "t", headers: []Header{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}}
	ctx := context.Background()
	m := g.newMessage(ctx, noMarks{}, rec)
	msgs := []*groupMessage{m}
	handler := func(context.Context) error { return nil }
	handled := testing.AllocsPerRun(1000, func() {
		run := g.obs.startHandling(m.ctx, msgs)
		_ = run.call(handler)
		run.done(HandleOutcome{Attempts: 1})
		_ = g.obs.tracer.extract(ctx, rec.headers)
	})
	assert.Zero(t, handled, "allocations per handled message")
}

type noMarks struct{}

func (noMarks) mark(int64) {}

// BenchmarkInstrumentation measures what the instrumentation adds per
// produced record and per handled message: with the zero Telemetry and no
// SDK installed ("nosdk", the default), with tracing disabled ("off"), and
// with metrics on a registry ("metrics"). docs/BENCHMARKS.md quotes it.
//
//	go test ./kafka -run '^$' -bench Instrumentation -benchmem -json
func BenchmarkInstrumentation(b *testing.B) {
	for _, mode := range []struct {
		name string
		tel  Telemetry
	}{
		{"nosdk", Telemetry{}},
		{"off", Telemetry{DisableTracing: true}},
		{"metrics", Telemetry{Registerer: prometheus.NewRegistry()}},
	} {
		b.Run("produce/"+mode.name, func(b *testing.B) {
			po, err := newProducerObs(ProducerConfig{Topic: "t", Telemetry: mode.tel}.withDefaults())
			if err != nil {
				b.Fatal(err)
			}
			msg := &ProducerMessage{Value: []byte("v")}
			d := Delivery{Message: msg, Topic: "t"}
			b.ReportAllocs()
			for b.Loop() {
				env := envelope{msg: msg, topic: "t"}
				po.send(&env)
				po.delivered(&env, d)
			}
		})
		b.Run("handle/"+mode.name, func(b *testing.B) {
			g := &ConsumerGroup{cfg: ConsumerGroupConfig{GroupName: "g", Topics: []string{"t"}, Telemetry: mode.tel}.withDefaults(), commits: newCommitSignal()}
			g.obs, _ = newConsumerObs(g)
			m := g.newMessage(context.Background(), noMarks{}, record{topic: "t"})
			msgs := []*groupMessage{m}
			handler := func(context.Context) error { return nil }
			b.ReportAllocs()
			for b.Loop() {
				run := g.obs.startHandling(m.ctx, msgs)
				_ = run.call(handler)
				run.done(HandleOutcome{Attempts: 1})
			}
		})
	}
}
