// Package wire implements the device protocol of tcphub, the TCP gateway
// between devices and Kafka: the framing of a byte stream into frames, the
// JSON envelope inside each frame, the frame types and the error codes. It
// has no notion of sockets, sessions or Kafka; the server and the device
// clients build on it.
//
// A frame is a 4-byte big-endian length N followed by N bytes of envelope,
// a single JSON object such as
//
//	{"v":1,"t":"request","id":"r-17","ct":"application/json","p":{"temp":21.5}}
//
// Reader decodes frames from a stream and Writer or AppendFrame encode them.
// The encoder is canonical (fixed field order, no whitespace), so encoded
// bytes can be compared with the test vectors in testdata/vectors.json.
// Decoding checks only that an envelope is well formed and of this protocol
// version; Frame.Validate checks the rules of each frame type. CodeOf maps
// any of this package's errors to the Code to send the peer.
//
// The specification devices are written against is docs/PROTOCOL.md at the
// root of the repository.
package wire
