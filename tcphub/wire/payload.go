package wire

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"strings"

	"github.com/kafkahub/kafkahub/tcphub/internal/jsonvalid"
)

// Default content types of payloads: what an absent ct means with p and with
// pb.
const (
	ContentTypeJSON   = "application/json"
	ContentTypeBinary = "application/octet-stream"
)

// DefaultContentType is the content type a payload gets when its sender
// names none: ContentTypeJSON for a valid JSON text, else ContentTypeBinary.
func DefaultContentType(payload []byte) string {
	if len(payload) > 0 && jsonvalid.Valid(payload) {
		return ContentTypeJSON
	}
	return ContentTypeBinary
}

// IsJSONContentType reports whether a media type is JSON: application/json
// or a +json suffix, parameters and case ignored.
func IsJSONContentType(ct string) bool {
	if ct == ContentTypeJSON {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(ct))
	}
	return mt == ContentTypeJSON || strings.HasSuffix(mt, "+json")
}

// SetPayload puts payload into f by the protocol's rule: in p when its
// content type is JSON and it is valid JSON, else in pb. An empty ct means
// DefaultContentType(payload). ct is set only when it is not the default for
// the field used, as the canonical encoding wants.
func (f *Frame) SetPayload(ct string, payload []byte) {
	f.Payload, f.Binary, f.ContentType = nil, false, ""
	if ct == "" {
		ct = DefaultContentType(payload)
	}
	if len(payload) == 0 {
		if ct != ContentTypeJSON && ct != ContentTypeBinary {
			f.ContentType = ct
		}
		return
	}
	if IsJSONContentType(ct) && jsonvalid.Valid(payload) {
		f.Payload = payload
		if ct != ContentTypeJSON {
			f.ContentType = ct
		}
		return
	}
	f.Payload, f.Binary = payload, true
	if ct != ContentTypeBinary {
		f.ContentType = ct
	}
}

// PayloadContentType is the content type of f's payload: ct when present,
// else the default of the field the payload came in, or "" when there is
// no payload.
func (f *Frame) PayloadContentType() string {
	switch {
	case f.ContentType != "":
		return f.ContentType
	case f.Binary:
		return ContentTypeBinary
	case len(f.Payload) > 0:
		return ContentTypeJSON
	}
	return ""
}

// CheckDeviceID checks a device id against the rules of a hello's dev
// (1-128 bytes of printable ASCII without space). The error wraps
// ErrInvalidFrame.
func CheckDeviceID(id string) error {
	f := Frame{Type: TypeHello, Device: id}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("device id %q: %w", id, err)
	}
	return nil
}

// RandomID returns prefix followed by 16 random hex digits (64 random
// bits), the form of id the protocol recommends for request ids that must
// not repeat across reboots.
func RandomID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return prefix + hex.EncodeToString(b[:])
}
