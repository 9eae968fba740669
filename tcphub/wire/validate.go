package wire

import (
	"fmt"
	"unicode/utf8"

	"github.com/kafkahub/kafkahub/tcphub/internal/jsonvalid"
)

// Bounds on free-form fields, generous for their purpose but small enough
// that a hostile device cannot make the server log or store much.
const (
	maxTokenLen   = 4096
	maxClientLen  = 128
	maxCTLen      = 128
	maxCodeLen    = 64
	maxMessageLen = 1024
	maxInt        = 1<<31 - 1
)

// Validate reports whether f obeys the rules of its type: known type,
// required fields present, ids at most MaxIDLen bytes of printable ASCII
// without spaces, other text bounded and free of control characters,
// integers within 0..2^31-1. The error wraps ErrInvalidFrame (or
// ErrBadVersion) and names the offending field, so a server can send its text
// in a bad_frame error. Reader.ReadFrame does not call Validate: a server
// should call it on every frame it reads, and a device may.
func (f *Frame) Validate() error {
	if f.Version != 0 && f.Version != Version {
		return fmt.Errorf("%w: v is %d, want %d", ErrBadVersion, f.Version, Version)
	}
	if err := f.validateFields(); err != nil {
		return err
	}
	switch f.Type {
	case "":
		return invalid("t", "missing")
	case TypeHello:
		return need(f.Type, "dev", f.Device != "")
	case TypeWelcome:
		if err := need(f.Type, "sid", f.Session != ""); err != nil {
			return err
		}
		if err := need(f.Type, "hb_ms", f.HeartbeatMS > 0); err != nil {
			return err
		}
		if err := need(f.Type, "max_frame", f.MaxFrame > 0); err != nil {
			return err
		}
		return need(f.Type, "max_inflight", f.MaxInFlight > 0)
	case TypeRequest, TypeAck, TypePush:
		return need(f.Type, "id", f.ID != "")
	case TypeResponse:
		if err := need(f.Type, "id", f.ID != ""); err != nil {
			return err
		}
		if f.Status < 100 || f.Status > 599 {
			return invalid("st", fmt.Sprintf("%d is not a status in 100..599", f.Status))
		}
		return nil
	case TypeError:
		return need(f.Type, "code", f.Code != "")
	case TypePing, TypePong, TypeGoodbye:
		return nil
	}
	return invalid("t", fmt.Sprintf("unknown type %q", truncate(string(f.Type))))
}

// validateFields checks every present field against its own bounds,
// whatever the type.
func (f *Frame) validateFields() error {
	ids := [...]struct {
		name, val string
	}{{"id", f.ID}, {"dev", f.Device}, {"sid", f.Session}, {"to", f.Route}}
	for _, x := range ids {
		if err := checkASCII(x.name, x.val, MaxIDLen, false); err != nil {
			return err
		}
	}
	if err := checkASCII("tok", f.Token, maxTokenLen, true); err != nil {
		return err
	}
	if err := checkASCII("ct", f.ContentType, maxCTLen, true); err != nil {
		return err
	}
	if err := checkText("cli", f.Client, maxClientLen); err != nil {
		return err
	}
	if err := checkText("msg", f.Message, maxMessageLen); err != nil {
		return err
	}
	if len(f.Code) > maxCodeLen {
		return invalid("code", fmt.Sprintf("longer than %d bytes", maxCodeLen))
	}
	for i := 0; i < len(f.Code); i++ {
		if c := f.Code[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return invalid("code", fmt.Sprintf("byte %#02x at offset %d is not in [a-z0-9_]", c, i))
		}
	}
	ints := [...]struct {
		name string
		val  int
	}{{"hb_ms", f.HeartbeatMS}, {"max_frame", f.MaxFrame}, {"max_inflight", f.MaxInFlight}, {"rate_per_min", f.RatePerMin}, {"burst", f.Burst}, {"st", f.Status}, {"after_ms", f.AfterMS}}
	for _, x := range ints {
		if x.val < 0 || x.val > maxInt {
			return invalid(x.name, fmt.Sprintf("%d is outside 0..%d", x.val, maxInt))
		}
	}
	if err := checkTraceParent(f.TraceParent); err != nil {
		return err
	}
	if !f.Binary && len(f.Payload) > 0 && !jsonvalid.Valid(f.Payload) {
		return invalid("p", "payload is not a JSON value")
	}
	return nil
}

func invalid(field, problem string) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidFrame, field, problem)
}

func need(t Type, field string, ok bool) error {
	if ok {
		return nil
	}
	return invalid(field, "required in "+string(t))
}

// checkASCII bounds s to printable ASCII, with or without spaces. Ids are
// kept to this set because they end up in Kafka keys, metrics labels and
// log lines, where anything else invites confusion or injection.
func checkASCII(field, s string, max int, spaceOK bool) error {
	if len(s) > max {
		return invalid(field, fmt.Sprintf("longer than %d bytes", max))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > 0x20 && c < 0x7f || c == ' ' && spaceOK {
			continue
		}
		return invalid(field, fmt.Sprintf("byte %#02x at offset %d is not printable ASCII", c, i))
	}
	return nil
}

// checkText bounds s to UTF-8 without control characters.
func checkText(field, s string, max int) error {
	if len(s) > max {
		return invalid(field, fmt.Sprintf("longer than %d bytes", max))
	}
	if !utf8.ValidString(s) {
		return invalid(field, "not valid UTF-8")
	}
	for i, r := range s {
		if r < 0x20 || r >= 0x7f && r < 0xa0 {
			return invalid(field, fmt.Sprintf("character %U at offset %d not allowed", r, i))
		}
	}
	return nil
}

// truncate shortens an untrusted value before it is quoted in an error.
func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// checkTraceParent checks the shape W3C Trace Context gives a traceparent:
// version-traceid-parentid-flags in lowercase hex (2-32-16-2 digits), the
// ids not all zeros, version ff forbidden. Later versions may append
// fields after a dash; only version 00 must be exactly 55 bytes.
func checkTraceParent(tp string) error {
	if tp == "" {
		return nil
	}
	bad := func(why string) error { return invalid("tp", why) }
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || (len(tp) > 55 && tp[55] != '-') {
		return bad("not version-traceid-parentid-flags")
	}
	if tp[:2] == "00" && len(tp) != 55 {
		return bad("version 00 is exactly 55 bytes")
	}
	if len(tp) > 512 {
		return bad("longer than 512 bytes")
	}
	for _, r := range [...]struct{ from, to int }{{0, 2}, {3, 35}, {36, 52}, {53, 55}} {
		for i := r.from; i < r.to; i++ {
			if c := tp[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return bad(fmt.Sprintf("byte %#02x at offset %d is not lowercase hex", c, i))
			}
		}
	}
	switch {
	case tp[:2] == "ff":
		return bad("version ff is invalid")
	case tp[3:35] == "00000000000000000000000000000000":
		return bad("trace id is all zeros")
	case tp[36:52] == "0000000000000000":
		return bad("parent id is all zeros")
	}
	return checkASCII("tp", tp, 512, false)
}
