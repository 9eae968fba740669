package kafka

import "context"

type traceKey struct{}

// WithTraceID returns a context carrying a trace or request id. Producers
// copy it into a header of every record sent with that context (see
// ProducerConfig.TraceHeader), and consumers put the header's value back into
// the context given to handlers.
//
// It is a plain request id, kept beside OpenTelemetry for logs and for
// systems without it: it neither creates nor joins OpenTelemetry traces,
// whose context travels in the traceparent header (see Telemetry and
// docs/OBSERVABILITY.md).
func WithTraceID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, traceKey{}, id)
}

// TraceID returns the trace id carried by ctx, or "".
func TraceID(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	id, _ := ctx.Value(traceKey{}).(string)
	return id
}
