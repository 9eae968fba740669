package tcphub

import (
	"context"
	"fmt"
	"strconv"

	"go.opentelemetry.io/otel/trace"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// RequestInfo is what the gateway wrote in the headers of a request
// record. Workers need ReplyTo and the ids to answer, and DeviceID with
// RequestID to de-duplicate resent requests.
type RequestInfo struct {
	DeviceID    string // tcphub.device, also the record's key
	ConnID      string // tcphub.conn
	RequestID   string // tcphub.request
	Instance    string // tcphub.instance
	ReplyTo     string // tcphub.reply-to
	Route       string // tcphub.route, "" for the default route
	ContentType string // content-type
	TraceID     string // trace-id
}

// ParseRequest reads the gateway's headers from a request record. It
// returns an error wrapping ErrNotGatewayRequest, naming the first missing
// header, when the device, request or reply-to header is absent.
func ParseRequest(msg kafka.Message) (RequestInfo, error) {
	get := func(k string) string {
		v, _ := msg.Header(k)
		return string(v)
	}
	ri := RequestInfo{
		DeviceID: get(HeaderDevice), ConnID: get(HeaderConn), RequestID: get(HeaderRequest),
		Instance: get(HeaderInstance), ReplyTo: get(HeaderReplyTo), Route: get(HeaderRoute),
		ContentType: get(HeaderContentType), TraceID: get(HeaderTraceID),
	}
	for _, h := range []struct{ name, val string }{
		{HeaderDevice, ri.DeviceID}, {HeaderRequest, ri.RequestID}, {HeaderReplyTo, ri.ReplyTo},
	} {
		if h.val == "" {
			return ri, fmt.Errorf("%w: header %s missing (topic %s, partition %d, offset %d)",
				ErrNotGatewayRequest, h.name, msg.Topic(), msg.Partition(), msg.Offset())
		}
	}
	return ri, nil
}

// Reply produces a worker's response to a device request: to the request's
// reply topic (tcphub.reply-to), keyed by device id, with the connection,
// device and request ids copied from the request, the status in
// tcphub.status and the request's trace id. The gateway instance holding
// the device's socket delivers it as a response frame. status must be in
// 100..599, with HTTP meanings.
//
// Reply waits for Kafka's acknowledgement. It returns an error wrapping
// ErrNotGatewayRequest when req lacks the gateway's headers, and the
// producer's error when the record is not written. Delivery to the device
// is at most once: a device that disconnected in the meantime does not get
// it.
func Reply(ctx context.Context, producer kafka.IProducer, req kafka.Message, status int, payload []byte, opts ...SendOption) error {
	ri, err := ParseRequest(req)
	if err != nil {
		return err
	}
	if status < 100 || status > 599 {
		return fmt.Errorf("tcphub: Reply: status %d is not in 100..599", status)
	}
	o := applyOptions(opts)
	ct := o.contentType
	if ct == "" {
		ct = wire.DefaultContentType(payload)
	}
	headers := make([]kafka.Header, 0, 7+len(o.headers))
	headers = append(headers,
		kafka.Header{Key: HeaderKind, Value: []byte(KindResponse)},
		kafka.Header{Key: HeaderDevice, Value: []byte(ri.DeviceID)},
		kafka.Header{Key: HeaderRequest, Value: []byte(ri.RequestID)},
		kafka.Header{Key: HeaderStatus, Value: []byte(strconv.Itoa(status))},
		kafka.Header{Key: HeaderContentType, Value: []byte(ct)},
	)
	if ri.ConnID != "" {
		headers = append(headers, kafka.Header{Key: HeaderConn, Value: []byte(ri.ConnID)})
	}
	if ri.TraceID != "" {
		headers = append(headers, kafka.Header{Key: HeaderTraceID, Value: []byte(ri.TraceID)})
	}
	headers = append(headers, o.headers...)
	if !trace.SpanContextFromContext(ctx).IsValid() {
		// Continue the request's trace (its process span, inside a
		// handler) even when ctx is not the handler's.
		if sc := trace.SpanContextFromContext(req.Context()); sc.IsValid() {
			ctx = trace.ContextWithSpanContext(ctx, sc)
		}
	}
	return producer.Send(ctx, &kafka.ProducerMessage{Topic: ri.ReplyTo, Key: []byte(ri.DeviceID), Value: payload, Headers: headers})
}
