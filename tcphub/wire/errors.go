package wire

import "errors"

// The sentinel errors below are always returned wrapped, with detail such as
// the offending field or size; test for them with errors.Is. CodeOf maps each
// of them to the error code a peer should be sent.
var (
	// ErrFrameTooLarge reports a frame whose length exceeds the maximum frame
	// size, either announced by a peer or produced by the encoder. The stream
	// is out of step after it, so the connection must be closed.
	ErrFrameTooLarge = errors.New("wire: frame too large")

	// ErrEmptyFrame reports a frame header announcing zero bytes.
	ErrEmptyFrame = errors.New("wire: empty frame")

	// ErrBadEnvelope reports a frame body that is not a well-formed
	// envelope: not UTF-8 JSON, not a single object, a field of the wrong
	// JSON type, a duplicated field, or both p and pb present.
	ErrBadEnvelope = errors.New("wire: bad envelope")

	// ErrBadVersion reports an envelope whose protocol version v is not one
	// this package speaks (only Version).
	ErrBadVersion = errors.New("wire: unsupported protocol version")

	// ErrInvalidFrame reports a well-formed envelope that breaks a rule of
	// its frame type, such as a request without id. The wrapped message
	// names the field.
	ErrInvalidFrame = errors.New("wire: invalid frame")
)
