package wire

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/kafkahub/kafkahub/tcphub/internal/jsonvalid"
)

// appendEnvelope appends the canonical JSON encoding of f to b. Canonical
// means: fields in the order of the Frame struct, zero fields left out, no
// whitespace, non-ASCII text as raw UTF-8, and only '"', '\\' and control
// characters escaped. The order and escaping are fixed so that test vectors
// can be compared byte for byte, and they match what Python produces with
// json.dumps(d, separators=(",", ":"), ensure_ascii=False).
func appendEnvelope(b []byte, f *Frame) ([]byte, error) {
	var payload []byte
	if !f.Binary {
		payload = trimSpace(f.Payload)
		// Raw JSON is spliced in verbatim, so an invalid value would corrupt
		// the whole envelope rather than just the payload.
		if len(payload) > 0 && !jsonvalid.Valid(payload) {
			return b, fmt.Errorf("%w: p: payload is not a JSON value; set Binary to send bytes", ErrInvalidFrame)
		}
	}

	v := f.Version
	if v == 0 {
		v = Version
	}
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(v), 10)
	b = appendStringField(b, `,"t":`, string(f.Type))
	b = appendStringField(b, `,"id":`, f.ID)
	b = appendStringField(b, `,"dev":`, f.Device)
	b = appendStringField(b, `,"tok":`, f.Token)
	b = appendStringField(b, `,"cli":`, f.Client)
	b = appendStringField(b, `,"sid":`, f.Session)
	b = appendIntField(b, `,"hb_ms":`, f.HeartbeatMS)
	b = appendIntField(b, `,"max_frame":`, f.MaxFrame)
	b = appendIntField(b, `,"max_inflight":`, f.MaxInFlight)
	b = appendIntField(b, `,"rate_per_min":`, f.RatePerMin)
	b = appendIntField(b, `,"burst":`, f.Burst)
	b = appendStringField(b, `,"to":`, f.Route)
	b = appendStringField(b, `,"ct":`, f.ContentType)
	b = appendIntField(b, `,"st":`, f.Status)
	b = appendStringField(b, `,"code":`, string(f.Code))
	b = appendStringField(b, `,"msg":`, f.Message)
	b = appendIntField(b, `,"after_ms":`, f.AfterMS)
	b = appendStringField(b, `,"tp":`, f.TraceParent)
	switch {
	case f.Binary:
		// Written even when empty so that Binary survives a round trip.
		b = append(b, `,"pb":"`...)
		b = base64.StdEncoding.AppendEncode(b, f.Payload)
		b = append(b, '"')
	case len(payload) > 0:
		b = append(b, `,"p":`...)
		b = append(b, payload...)
	}
	return append(b, '}'), nil
}

func appendStringField(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

func appendIntField(b []byte, key string, n int) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), int64(n), 10)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does, so the output is always valid JSON.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, "\uFFFD"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// trimSpace removes JSON whitespace around a raw value, which the decoder
// would not keep either.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}
