package main

import (
	"context"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kafkahub/kafkahub/kafka"
)

// telemetry is how a kafkahub implementation is instrumented (issue 13):
// the default (OpenTelemetry globals, no SDK installed, no metrics) is the
// plain implementation name; the others are suffixes.
type telemetry int

const (
	telDefault telemetry = iota
	telOff               // -notel: Telemetry.DisableTracing, no hooks at all
	telSDK               // -sdk: an SDK samples and ends every span (exported nowhere); W3C propagator
	telMetrics           // -metrics: a Prometheus registry, tracing as by default
	// -again: the default once more, an A/A control run only when named
	// in -impls: its paired ratio to the default is the difference the
	// run cannot tell from noise.
	telAgain
)

var telSuffix = map[telemetry]string{telDefault: "", telOff: "-notel", telSDK: "-sdk", telMetrics: "-metrics", telAgain: againSuffix}

const againSuffix = "-again"

// kafkaTelemetry returns the config for t and a function that shuts down
// what it started.
func kafkaTelemetry(t telemetry) (kafka.Telemetry, func()) {
	switch t {
	case telOff:
		return kafka.Telemetry{DisableTracing: true}, func() {}
	case telSDK:
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(&endCounter{}))
		return kafka.Telemetry{TracerProvider: tp, Propagator: propagation.TraceContext{}},
			func() { _ = tp.Shutdown(context.Background()) }
	case telMetrics:
		return kafka.Telemetry{Registerer: prometheus.NewRegistry()}, func() {}
	}
	return kafka.Telemetry{}, func() {}
}

// endCounter is a span processor that only counts ended spans: the SDK
// builds and records every span, and nothing is exported.
type endCounter struct{ n atomic.Int64 }

func (p *endCounter) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (p *endCounter) OnEnd(sdktrace.ReadOnlySpan)                     { p.n.Add(1) }
func (p *endCounter) Shutdown(context.Context) error                  { return nil }
func (p *endCounter) ForceFlush(context.Context) error                { return nil }

// instrumented returns the variants of a kafkahub implementation for each
// telemetry mode, named name + suffix.
func instrumented[P any](name string, run func(ctx context.Context, p P, t telemetry) (roundResult, error), modes ...telemetry) []impl[func(context.Context, P) (roundResult, error)] {
	var out []impl[func(context.Context, P) (roundResult, error)]
	for _, t := range modes {
		out = append(out, impl[func(context.Context, P) (roundResult, error)]{name + telSuffix[t],
			func(ctx context.Context, p P) (roundResult, error) { return run(ctx, p, t) }})
	}
	return out
}
