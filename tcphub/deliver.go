package tcphub

import (
	"context"
	"strconv"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// SendOption sets an optional property of a response or push.
type SendOption func(*sendOptions)

type sendOptions struct {
	contentType string
	messageID   string
	headers     []kafka.Header
}

// WithContentType sets the payload's media type. By default a payload that
// is valid JSON is sent as application/json in the frame's p field, and
// anything else as application/octet-stream in pb.
func WithContentType(ct string) SendOption {
	return func(o *sendOptions) { o.contentType = ct }
}

// WithMessageID sets a push's message id (the frame's id), which devices
// use to drop duplicates. By default a random id is generated. Reply
// ignores it.
func WithMessageID(id string) SendOption {
	return func(o *sendOptions) { o.messageID = id }
}

// WithHeaders adds Kafka headers to the record Reply or Pusher.Push
// produces, for consumers other than the gateway. The gateway ignores them.
func WithHeaders(h ...kafka.Header) SendOption {
	return func(o *sendOptions) { o.headers = append(o.headers, h...) }
}

func applyOptions(opts []SendOption) sendOptions {
	var o sendOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// deliverLoop routes the records of the reply topic to sockets until the
// reader is closed.
func (s *Server) deliverLoop(msgs <-chan kafka.Message) {
	defer s.bgWG.Done()
	for msg := range msgs {
		s.deliver(msg)
	}
}

// deliverLoopReplies delivers the records of the benchmark's in-memory
// loop (see internal/gatewayloop) until shutdown begins.
func (s *Server) deliverLoopReplies() {
	defer s.bgWG.Done()
	for {
		select {
		case msg := <-s.loopReplies:
			s.deliver(msg)
		case <-s.quit:
			return
		}
	}
}

// header returns the value of a record's header, or "".
func header(msg kafka.Message, key string) string {
	v, _ := msg.Header(key)
	return string(v)
}

// deliver routes one reply-topic record: to the connection named by
// tcphub.conn if it is open here, else to the device's current connection
// here, else nowhere (counted in tcphub_responses_undeliverable_total).
func (s *Server) deliver(msg kafka.Message) {
	connID, device := header(msg, HeaderConn), header(msg, HeaderDevice)
	var c *conn
	if connID != "" {
		if c = s.reg.conn(connID); c != nil && device != "" && c.device != device {
			c = nil
		}
	}
	if c == nil && device != "" {
		c = s.reg.device(device)
	}
	if c == nil {
		s.m.undeliverable.WithLabelValues("not_connected").Inc()
		s.log.Debug("reply for a device not connected here dropped", "device", device, "conn", connID, "offset", msg.Offset())
		return
	}
	f := wire.Frame{Type: wire.TypeResponse}
	if header(msg, HeaderKind) == KindPush {
		f.Type = wire.TypePush
		f.ID = header(msg, HeaderMessage)
		if f.ID == "" {
			f.ID = wire.RandomID("m-")
		}
	} else {
		f.ID = header(msg, HeaderRequest)
		f.Status = 200
		if st := header(msg, HeaderStatus); st != "" {
			n, err := strconv.Atoi(st)
			if err != nil {
				n = -1
			}
			f.Status = n
		}
	}
	f.SetPayload(header(msg, HeaderContentType), msg.Value())
	span := s.traceDelivery(msg, &f)
	defer span.End()
	if err := f.Validate(); err != nil {
		s.m.undeliverable.WithLabelValues("bad_record").Inc()
		s.log.Warn("reply record cannot be sent to a device", "device", device, "offset", msg.Offset(), "error", err)
		return
	}
	b, err := wire.AppendFrame(make([]byte, 0, 96+len(f.ID)+len(f.ContentType)+len(msg.Value())*4/3), f)
	if err != nil {
		s.m.undeliverable.WithLabelValues("bad_record").Inc()
		s.log.Warn("reply record cannot be sent to a device", "device", device, "offset", msg.Offset(), "error", err)
		return
	}
	if f.Type == wire.TypeResponse && c.holdResponse(f.ID, b) {
		s.m.responses.Inc()
		return
	}
	if err := c.enqueue(b, f.Type); err != nil {
		s.m.undeliverable.WithLabelValues("connection_closing").Inc()
		return
	}
	if f.Type == wire.TypePush {
		s.m.pushes.Inc()
	} else {
		s.m.responses.Inc()
	}
}

// SendToDevice queues a push to the device if it is connected to this
// instance. It never blocks: it returns ErrNotConnected if the device is
// not connected here, ErrSlowConsumer if its queue was full (it has been
// disconnected), ErrServerClosed during shutdown. Delivery is at most once.
func (s *Server) SendToDevice(ctx context.Context, deviceID string, payload []byte, opts ...SendOption) error {
	c := s.reg.device(deviceID)
	if c == nil {
		return ErrNotConnected
	}
	return s.push(ctx, c, payload, opts)
}

// SendToConn is SendToDevice for a connection id (a welcome's sid, the
// tcphub.conn header of a request).
func (s *Server) SendToConn(ctx context.Context, connID string, payload []byte, opts ...SendOption) error {
	c := s.reg.conn(connID)
	if c == nil {
		return ErrNotConnected
	}
	return s.push(ctx, c, payload, opts)
}

func (s *Server) push(ctx context.Context, c *conn, payload []byte, opts []SendOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.draining.Load() {
		return ErrServerClosed
	}
	o := applyOptions(opts)
	f := wire.Frame{Type: wire.TypePush, ID: o.messageID}
	if f.ID == "" {
		f.ID = wire.RandomID("m-")
	}
	f.SetPayload(o.contentType, payload)
	if err := f.Validate(); err != nil {
		return err
	}
	b, err := wire.AppendFrame(nil, f)
	if err != nil {
		return err
	}
	if err := c.enqueue(b, wire.TypePush); err != nil {
		return err
	}
	s.m.pushes.Inc()
	return nil
}
