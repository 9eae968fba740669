package tcphub

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// TracerName is the instrumentation scope of the gateway's spans.
const TracerName = "github.com/kafkahub/kafkahub/tcphub"

// The device's trace context travels in the frame's tp field as a W3C
// traceparent, whatever propagator the application uses for Kafka headers.
var deviceTraceContext = propagation.TraceContext{}

// noSpan stands for a span while tracing is inactive.
var noSpan = trace.SpanFromContext(context.Background())

// traceRequest starts the server span of a device request, continuing the
// device's trace when the frame carries one, and makes it the parent of the
// record's send span. Only the reader calls it, before produce.
func (c *conn) traceRequest(r *request, f *wire.Frame) {
	tr := c.srv.tracing
	if !tr.Active() {
		return
	}
	ctx := context.Background()
	if f.TraceParent != "" {
		ctx = deviceTraceContext.Extract(ctx, propagation.MapCarrier{"traceparent": f.TraceParent})
	}
	ctx, r.span = tr.Tracer().Start(ctx, "request "+r.msg.Topic, trace.WithSpanKind(trace.SpanKindServer))
	if r.span.IsRecording() {
		r.span.SetAttributes(
			attribute.String("tcphub.request.id", r.id),
			attribute.String("tcphub.route", f.Route),
			attribute.String("tcphub.instance", c.srv.cfg.InstanceID),
			semconv.MessagingDestinationName(r.msg.Topic),
		)
	}
	r.msg.Context = ctx
}

// endRequestSpan ends the request's server span with the producer's
// answer: the device gets an ack, or an error frame when err is not nil.
func (r *request) endRequestSpan(err error) {
	if r.span == nil {
		return
	}
	if err != nil {
		r.span.RecordError(err)
		r.span.SetStatus(codes.Error, err.Error())
	}
	r.span.End()
}

// traceDelivery starts the span of delivering a reply-topic record to a
// device, continuing the record's trace (a worker's Reply or a Pusher),
// and writes its context into the frame's tp field for the device. The
// caller ends it once the frame is queued to the socket, or dropped.
func (s *Server) traceDelivery(msg kafka.Message, f *wire.Frame) trace.Span {
	if !s.tracing.Active() {
		return noSpan
	}
	// The reader put the record's trace context in msg.Context.
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), trace.SpanContextFromContext(msg.Context()))
	ctx, span := s.tracing.Tracer().Start(ctx, "deliver "+string(f.Type), trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("tcphub.frame.type", string(f.Type)),
			attribute.String("tcphub.request.id", f.ID),
			attribute.String("tcphub.instance", s.cfg.InstanceID),
		)
	}
	carrier := propagation.MapCarrier{}
	deviceTraceContext.Inject(ctx, carrier)
	f.TraceParent = carrier["traceparent"]
	return span
}
