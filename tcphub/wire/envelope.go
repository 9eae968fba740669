package wire

// Version is the protocol major version this package speaks. Every envelope
// carries it in its v field; a peer announcing another one is refused with
// CodeBadVersion, because field meanings may change between majors.
const Version = 1

// MaxIDLen is the longest request, message, session or device id, in bytes.
// The bound keeps ids cheap to use as Kafka keys, log fields and map keys.
const MaxIDLen = 128

// Type names the kind of a frame; it travels in the envelope's t field.
type Type string

// The frame types of protocol version 1, with the direction they travel in.
const (
	// TypeHello opens a session, device to server: dev, optional tok and cli.
	TypeHello Type = "hello"
	// TypeWelcome accepts a hello, server to device: sid, hb_ms, max_frame,
	// max_inflight, and optional rate_per_min and burst.
	TypeWelcome Type = "welcome"
	// TypeRequest carries a device message bound for Kafka, device to
	// server: id, optional to, ct and payload.
	TypeRequest Type = "request"
	// TypeAck tells the device that request id is durably in Kafka, server
	// to device.
	TypeAck Type = "ack"
	// TypeError reports a failure in either direction: code, msg, and the id
	// of the request it concerns if it concerns one.
	TypeError Type = "error"
	// TypeResponse carries a worker's answer to request id, server to
	// device: st, ct and payload.
	TypeResponse Type = "response"
	// TypePush carries a server-initiated message, server to device: id, ct
	// and payload.
	TypePush Type = "push"
	// TypePing asks the peer for a pong, either direction; id is optional.
	TypePing Type = "ping"
	// TypePong answers a ping, echoing its id, either direction.
	TypePong Type = "pong"
	// TypeGoodbye announces that the server is draining and the device
	// should reconnect after after_ms, server to device.
	TypeGoodbye Type = "goodbye"
)

// FromDevice reports whether a device may send frames of type t.
func (t Type) FromDevice() bool {
	switch t {
	case TypeHello, TypeRequest, TypeError, TypePing, TypePong:
		return true
	}
	return false
}

// FromServer reports whether a server may send frames of type t.
func (t Type) FromServer() bool {
	switch t {
	case TypeWelcome, TypeAck, TypeError, TypeResponse, TypePush, TypePing, TypePong, TypeGoodbye:
		return true
	}
	return false
}

// Frame is one decoded envelope. A zero field is absent on the wire: the
// encoder leaves it out and the decoder leaves it zero, so a Frame survives
// an encode/decode round trip unchanged. Which fields a type needs is checked
// by Validate, not by the decoder. The comment of each field gives its JSON
// name.
type Frame struct {
	// Version is the protocol major version (v). Zero encodes as Version.
	Version int
	// Type is the frame type (t).
	Type Type
	// ID is the request id of request, ack, response and error frames, the
	// message id of push frames and the echo id of ping and pong (id).
	ID string
	// Device is the device id announced in hello (dev).
	Device string
	// Token is the credential announced in hello (tok).
	Token string
	// Client names the client software in hello, for logs (cli).
	Client string
	// Session is the server-chosen connection id in welcome (sid).
	Session string
	// HeartbeatMS is the heartbeat interval in milliseconds in welcome
	// (hb_ms).
	HeartbeatMS int
	// MaxFrame is the largest envelope in bytes the server accepts, in
	// welcome (max_frame).
	MaxFrame int
	// MaxInFlight is how many requests a device may have without ack or
	// error, in welcome (max_inflight).
	MaxInFlight int
	// RatePerMin is the sustained number of requests per minute the
	// server accepts from the device, in welcome when the server limits the
	// rate (rate_per_min); requests beyond it and Burst get rate_limited.
	RatePerMin int
	// Burst is how many requests the device may send at once, above the
	// rate, in welcome with RatePerMin (burst).
	Burst int
	// Route is the logical destination of a request, which the server maps
	// to a Kafka topic; empty means the device's default route (to).
	Route string
	// ContentType is the media type of Payload (ct). Absent means
	// application/json when Binary is false and application/octet-stream
	// when it is true.
	ContentType string
	// Status is the worker's status in a response, with HTTP meanings (st).
	Status int
	// Code is the reason of an error frame (code).
	Code Code
	// Message is human-readable text in error and goodbye frames (msg).
	Message string
	// AfterMS is a delay in milliseconds before reconnecting (goodbye) or
	// retrying (error) (after_ms).
	AfterMS int
	// TraceParent is a W3C Trace Context traceparent (tp), optional in
	// request, response and push frames: in a request, the device's trace
	// that the gateway continues; in a response or push, the gateway's
	// span that delivered it, for the device to continue.
	TraceParent string
	// Payload is the message body. When Binary is false it is the exact
	// bytes of one JSON value, carried unchanged in p; when Binary is true
	// it is arbitrary bytes, carried base64-encoded in pb.
	Payload []byte
	// Binary selects pb over p for Payload. A decoded frame has it set when
	// pb was present, even if empty.
	Binary bool
}
