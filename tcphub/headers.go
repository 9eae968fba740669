package tcphub

import (
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// Kafka record headers written and read by the gateway. Requests carry all
// of the request headers; responses and pushes carry the ids that route them
// back to a socket.
const (
	// HeaderDevice is the device id. Requests are also keyed by it, so one
	// device's requests stay in order on one partition.
	HeaderDevice = "tcphub.device"
	// HeaderConn is the connection id the gateway gave the socket (the
	// welcome's sid). A response goes to this connection if it is still
	// open, else to the device's current connection on the same instance.
	HeaderConn = "tcphub.conn"
	// HeaderRequest is the request id chosen by the device. Together with
	// HeaderDevice it identifies a request across resends, for
	// de-duplication by consumers.
	HeaderRequest = "tcphub.request"
	// HeaderInstance is the id of the gateway instance holding the socket.
	HeaderInstance = "tcphub.instance"
	// HeaderReplyTo is the topic a worker must produce its response to: the
	// reply topic of the instance holding the socket.
	HeaderReplyTo = "tcphub.reply-to"
	// HeaderStatus is a response's status, in decimal, with HTTP meanings.
	HeaderStatus = "tcphub.status"
	// HeaderKind tells responses (KindResponse, the default when absent)
	// from pushes (KindPush) on a reply topic.
	HeaderKind = "tcphub.kind"
	// HeaderMessage is the id of a push, unique per message, which the
	// device uses to drop duplicates.
	HeaderMessage = "tcphub.message"
	// HeaderRoute is the request's route (the frame's to field) when the
	// device named one.
	HeaderRoute = "tcphub.route"
	// HeaderContentType is the media type of the record's value.
	HeaderContentType = kafka.HeaderContentType
	// HeaderTraceID carries the trace id the gateway generated for the
	// request; Reply copies it into the response.
	HeaderTraceID = kafka.DefaultTraceHeader
)

// Values of HeaderKind.
const (
	KindResponse = "response"
	KindPush     = "push"
)

// Default content types of payloads, as the protocol defines them for the p
// and pb fields (the same as wire's).
const (
	ContentTypeJSON   = wire.ContentTypeJSON
	ContentTypeBinary = wire.ContentTypeBinary
)
