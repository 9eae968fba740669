// Package otlp gives the examples OpenTelemetry tracing exported over OTLP
// (HTTP/protobuf) when the standard OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) environment variable is set, e.g.
// http://localhost:4318 for a local collector or Jaeger. The exporter reads
// the other OTEL_EXPORTER_OTLP_* variables, and the SDK OTEL_SERVICE_NAME
// and OTEL_RESOURCE_ATTRIBUTES. The library itself uses only the
// OpenTelemetry API: installing an SDK is the application's choice, made
// here.
package otlp

import (
	"context"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kafkahub/kafkahub/kafka"
)

// FromEnv returns the Telemetry to give producers, consumers and the
// gateway, and a function that flushes and stops the exporter (call it
// before exiting). With neither variable set it returns the zero Telemetry,
// which records nothing, and enabled false.
func FromEnv(ctx context.Context) (tel kafka.Telemetry, shutdown func(context.Context) error, enabled bool, err error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return kafka.Telemetry{}, func(context.Context) error { return nil }, false, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return kafka.Telemetry{}, nil, false, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	return kafka.Telemetry{
		TracerProvider: tp,
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, tp.Shutdown, true, nil
}
