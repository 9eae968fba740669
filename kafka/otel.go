package kafka

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// TracerName is the instrumentation scope of the spans this package makes.
const TracerName = "github.com/kafkahub/kafkahub/kafka"

// Span event names.
const (
	EventRetry        = "retry"         // a failed handler call will be retried
	EventDeadLettered = "dead_lettered" // the message went to the dead-letter topic
	EventInterrupted  = "interrupted"   // a rebalance, Stop or Close ended the handling
	EventNoCommit     = "no_commit"     // the handler asked not to commit (NoCommit)
)

// initialTracerProvider and initialPropagator are the OpenTelemetry globals
// as the process starts: stand-ins that record and propagate nothing until
// the application sets its own (they then delegate to it). Captured when
// this package is initialised, before any code that imports it can run.
var (
	initialTracerProvider = otel.GetTracerProvider()
	initialPropagator     = otel.GetTextMapPropagator()
)

// tracing makes the send and process spans (OpenTelemetry messaging
// semantic conventions) and carries trace context in record headers.
type tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	group  string
	// globalTP, globalProp: the config named none, so the globals apply.
	globalTP, globalProp bool

	// Built once: passing them costs no allocation per record.
	sendOpts, processOpts []trace.SpanStartOption
}

func newTracing(t Telemetry, group string) *tracing {
	tp, prop := t.TracerProvider, t.Propagator
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	return &tracing{
		globalTP:    t.TracerProvider == nil,
		globalProp:  t.Propagator == nil,
		tracer:      tp.Tracer(TracerName),
		prop:        prop,
		group:       group,
		sendOpts:    []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)},
		processOpts: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)},
	}
}

// active reports whether spans may be recorded: false while the tracer is
// the global stand-in and no SDK has been set, so that the cost of tracing
// with no SDK installed is one atomic load per record instead of a span.
// Spans are not compared by IsRecording: the SDK may sample a span out and
// still propagate its context.
func (t *tracing) active() bool {
	return !t.globalTP || otel.GetTracerProvider() != initialTracerProvider
}

// propagating reports whether the propagator may read or write headers.
func (t *tracing) propagating() bool {
	return !t.globalProp || otel.GetTextMapPropagator() != initialPropagator
}

// sendSpanKey and processSpanKey find a span of ours in a context that
// later hooks may have extended with spans of their own.
type sendSpanKey struct{}
type processSpanKey struct{}

func (t *tracing) producerHooks(defaultTopic string) ProducerHooks {
	defaultName := "send " + defaultTopic
	return ProducerHooks{
		OnSend: func(ctx context.Context, topic string, msg *ProducerMessage) context.Context {
			if !t.active() {
				return ctx
			}
			name := defaultName
			if topic != defaultTopic {
				name = "send " + topic
			}
			ctx, span := t.tracer.Start(ctx, name, t.sendOpts...)
			if !span.IsRecording() {
				return ctx
			}
			span.SetAttributes(
				semconv.MessagingSystemKafka,
				semconv.MessagingOperationName("send"),
				semconv.MessagingOperationTypeSend,
				semconv.MessagingDestinationName(topic),
				semconv.MessagingMessageBodySize(len(msg.Value)),
			)
			if msg.Partition != nil {
				span.SetAttributes(semconv.MessagingDestinationPartitionID(strconv.Itoa(int(*msg.Partition))))
			}
			return context.WithValue(ctx, sendSpanKey{}, span)
		},
		OnDelivered: func(ctx context.Context, d Delivery, _ time.Duration) {
			span, _ := ctx.Value(sendSpanKey{}).(trace.Span)
			if span == nil {
				return
			}
			if d.Err != nil {
				span.RecordError(d.Err)
				span.SetStatus(codes.Error, d.Err.Error())
			} else {
				span.SetAttributes(
					semconv.MessagingDestinationPartitionID(strconv.Itoa(int(d.Partition))),
					semconv.MessagingKafkaOffset(int(d.Offset)),
				)
			}
			span.End()
		},
	}
}

func (t *tracing) consumerHooks() ConsumerHooks {
	return ConsumerHooks{
		OnHandle: func(ctx context.Context, msgs []Message) context.Context {
			if !t.active() {
				return ctx
			}
			first := msgs[0]
			var span trace.Span
			if len(msgs) == 1 {
				ctx, span = t.tracer.Start(ctx, "process "+first.Topic(), t.processOpts...)
			} else {
				// A batch mixes traces: its span starts a trace of its
				// own, linked to each message's.
				links := make([]trace.Link, 0, len(msgs))
				for _, m := range msgs {
					if sc := trace.SpanContextFromContext(m.Context()); sc.IsValid() {
						links = append(links, trace.Link{SpanContext: sc})
					}
				}
				opts := append([]trace.SpanStartOption{trace.WithNewRoot(), trace.WithLinks(links...)}, t.processOpts...)
				ctx, span = t.tracer.Start(ctx, "process "+first.Topic(), opts...)
			}
			if !span.IsRecording() {
				return ctx
			}
			span.SetAttributes(
				semconv.MessagingSystemKafka,
				semconv.MessagingOperationName("process"),
				semconv.MessagingOperationTypeProcess,
				semconv.MessagingDestinationName(first.Topic()),
				semconv.MessagingConsumerGroupName(t.group),
				semconv.MessagingDestinationPartitionID(strconv.Itoa(int(first.Partition()))),
				semconv.MessagingKafkaOffset(int(first.Offset())),
			)
			if len(msgs) > 1 {
				span.SetAttributes(semconv.MessagingBatchMessageCount(len(msgs)))
			}
			return context.WithValue(ctx, processSpanKey{}, span)
		},
		OnRetry: func(ctx context.Context, _ []Message, attempt int, wait time.Duration, err error) {
			span, _ := ctx.Value(processSpanKey{}).(trace.Span)
			if span == nil {
				return
			}
			span.AddEvent(EventRetry, trace.WithAttributes(
				attribute.Int("attempt", attempt),
				attribute.Bool("panic", errors.Is(err, ErrHandlerPanic)),
				attribute.String("error", err.Error()),
				attribute.Int64("retry_in_ms", wait.Milliseconds()),
			))
		},
		OnHandled: func(ctx context.Context, _ []Message, o HandleOutcome) {
			span, _ := ctx.Value(processSpanKey{}).(trace.Span)
			if span == nil {
				return
			}
			span.SetAttributes(attribute.Int("kafkahub.attempts", o.Attempts))
			switch {
			case o.Interrupted:
				span.AddEvent(EventInterrupted)
			case o.NoCommit:
				span.AddEvent(EventNoCommit, trace.WithAttributes(attribute.String("error", o.Err.Error())))
			case o.Err != nil:
				span.RecordError(o.Err, trace.WithAttributes(attribute.Bool("panic", errors.Is(o.Err, ErrHandlerPanic))))
				span.SetStatus(codes.Error, o.Err.Error())
				if o.DeadLettered {
					span.AddEvent(EventDeadLettered)
				}
			}
			span.End()
		},
	}
}

// inject writes ctx's trace context into a copy of headers. With nothing to
// propagate (no valid span context, no baggage) it returns headers as they
// are, at no cost.
func (t *tracing) inject(ctx context.Context, headers []Header) []Header {
	if !t.propagating() || !trace.SpanContextFromContext(ctx).IsValid() && baggage.FromContext(ctx).Len() == 0 {
		return headers
	}
	c := &headerCarrier{hs: append(make([]Header, 0, len(headers)+3), headers...)}
	t.prop.Inject(ctx, c)
	return c.hs
}

// extract returns ctx with the trace context of headers.
func (t *tracing) extract(ctx context.Context, headers []Header) context.Context {
	if !t.propagating() {
		return ctx
	}
	return t.prop.Extract(ctx, &headerCarrier{hs: headers})
}

// headerCarrier presents record headers to a propagator. Set replaces a
// header of the same key, so a record never carries two traceparents.
type headerCarrier struct{ hs []Header }

func (c *headerCarrier) Get(key string) string {
	for _, h := range c.hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c *headerCarrier) Set(key, value string) {
	for i, h := range c.hs {
		if h.Key == key {
			c.hs[i].Value = []byte(value)
			return
		}
	}
	c.hs = append(c.hs, Header{Key: key, Value: []byte(value)})
}

func (c *headerCarrier) Keys() []string {
	keys := make([]string, len(c.hs))
	for i, h := range c.hs {
		keys[i] = h.Key
	}
	return keys
}

// Tracing is a Telemetry's tracing resolved, for code that makes spans of
// its own beside a Producer or ConsumerGroup (tcphub's gateway) under the
// same rules: the config's provider and propagator or the globals, and no
// span while the globals are unset or tracing is disabled.
type Tracing struct{ t *tracing }

// Tracing resolves t's tracing for the instrumentation scope named scope.
func (t Telemetry) Tracing(scope string) Tracing {
	if t.DisableTracing {
		return Tracing{}
	}
	tr := newTracing(t, "")
	tp := t.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	tr.tracer = tp.Tracer(scope)
	return Tracing{tr}
}

// Active reports whether spans may be recorded now; when it is false, a
// caller skips its spans at the cost of this call (one atomic load).
func (t Tracing) Active() bool { return t.t != nil && t.t.active() }

// Tracer returns the tracer spans are made with. Call it only when Active.
func (t Tracing) Tracer() trace.Tracer { return t.t.tracer }
