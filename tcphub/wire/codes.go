package wire

import (
	"errors"
)

// Code is the machine-readable reason carried by an error frame. A device
// should handle a code it does not know like CodeInternal; version 1 servers
// send only the codes below.
type Code string

// The error codes of protocol version 1. Fatal tells which of them end the
// connection; docs/PROTOCOL.md has the full table with retry advice.
const (
	// CodeBadFrame: a frame could not be decoded or broke a rule of its
	// type. Fatal.
	CodeBadFrame Code = "bad_frame"
	// CodeBadVersion: the peer speaks a protocol major version the server
	// does not. Fatal.
	CodeBadVersion Code = "bad_version"
	// CodeUnauthenticated: the hello's device id or token was refused.
	// Fatal.
	CodeUnauthenticated Code = "unauthenticated"
	// CodeTooLarge: a frame announced more bytes than the maximum frame
	// size. Fatal, because the stream cannot be resynchronised.
	CodeTooLarge Code = "too_large"
	// CodeRateLimited: the request was refused because the device sends too
	// fast; retry it after after_ms. The connection stays open.
	CodeRateLimited Code = "rate_limited"
	// CodeTooManyInFlight: the request was refused because the device
	// already has max_inflight requests without ack. The connection stays
	// open.
	CodeTooManyInFlight Code = "too_many_in_flight"
	// CodeUnavailable: the request could not be written to Kafka; retry it
	// later with the same id. The connection stays open.
	CodeUnavailable Code = "unavailable"
	// CodeInternal: the server failed on this request for a reason of its
	// own. The connection stays open.
	CodeInternal Code = "internal"
	// CodeSlowConsumer: the device did not read fast enough and the server's
	// queue for it filled up. Fatal; queued responses and pushes are lost.
	CodeSlowConsumer Code = "slow_consumer"
	// CodeHandshakeTimeout: no valid hello arrived within the handshake
	// deadline. Fatal.
	CodeHandshakeTimeout Code = "handshake_timeout"
	// CodeDuplicate: a newer connection with the same device id replaced
	// this one. Fatal.
	CodeDuplicate Code = "duplicate"
	// CodeNotFound: the request's route (to) is not known to the server.
	// The connection stays open.
	CodeNotFound Code = "not_found"
	// CodeRecordTooLarge: the request fit the frame limit but its Kafka
	// record (payload and headers) is larger than Kafka accepts; it was
	// not written. Resending it unchanged fails the same way. The
	// connection stays open.
	CodeRecordTooLarge Code = "record_too_large"
)

// Fatal reports whether the server closes the connection after sending an
// error frame with code c. Codes this package does not know report true, so
// that a caller acting on the answer errs towards reconnecting.
func (c Code) Fatal() bool {
	switch c {
	case CodeRateLimited, CodeTooManyInFlight, CodeUnavailable, CodeInternal, CodeNotFound, CodeRecordTooLarge:
		return false
	}
	return true
}

// CodeOf returns the code to send a peer whose frame failed with err, as
// returned by Reader.ReadFrame or Frame.Validate. It returns the empty Code
// for nil and for errors that are not the peer's protocol fault, such as I/O
// errors or a truncated stream, where there is nobody left to tell.
func CodeOf(err error) Code {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrFrameTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrBadVersion):
		return CodeBadVersion
	case errors.Is(err, ErrEmptyFrame), errors.Is(err, ErrBadEnvelope), errors.Is(err, ErrInvalidFrame):
		return CodeBadFrame
	}
	return ""
}
