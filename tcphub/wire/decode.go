package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/kafkahub/kafkahub/tcphub/internal/jsonvalid"
)

// field bits, to refuse duplicated keys: encoding/json would silently keep
// the last one while other languages' parsers may keep the first, and a
// gateway must not forward something its workers read differently.
const (
	seenV = 1 << iota
	seenT
	seenID
	seenDev
	seenTok
	seenCli
	seenSid
	seenHB
	seenMaxFrame
	seenMaxInFlight
	seenRate
	seenBurst
	seenTo
	seenCT
	seenSt
	seenCode
	seenMsg
	seenAfter
	seenP
	seenPB
	seenTP
)

// decodeEnvelope parses one envelope. It checks syntax with jsonvalid.Valid
// (encoding/json.Valid's answers, faster) first and then walks the object by
// hand, which keeps keys case-sensitive (unlike encoding/json), spots
// duplicates and avoids reflection. Strings, payload
// and ints are copied out, so body may be reused afterwards.
func decodeEnvelope(body []byte) (Frame, error) {
	if !utf8.Valid(body) {
		return Frame{}, fmt.Errorf("%w: not valid UTF-8", ErrBadEnvelope)
	}
	if !jsonvalid.Valid(body) {
		// Only on this cold path is encoding/json asked to say where the
		// syntax broke; it cannot succeed here.
		err := json.Unmarshal(body, new(struct{}))
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return Frame{}, fmt.Errorf("%w: %w", ErrBadEnvelope, err)
	}
	d := decoder{b: body}
	d.space()
	if d.b[d.i] != '{' {
		return Frame{}, fmt.Errorf("%w: not a JSON object", ErrBadEnvelope)
	}
	d.i++
	d.space()
	if d.b[d.i] == '}' {
		d.i++
	} else {
		for {
			key, escaped := d.str()
			d.space()
			d.i++ // ':'
			d.space()
			start := d.i
			d.skip()
			d.field(key, escaped, d.b[start:d.i])
			d.space()
			c := d.b[d.i]
			d.i++
			if c == '}' {
				break
			}
			d.space()
		}
	}
	// The version decides how the rest is to be read, so a version mismatch
	// is reported ahead of any field error it may have caused.
	switch {
	case d.hasV && d.f.Version != Version:
		return Frame{}, fmt.Errorf("%w: v is %d, want %d", ErrBadVersion, d.f.Version, Version)
	case d.err != nil:
		return Frame{}, d.err
	case !d.hasV:
		return Frame{}, fmt.Errorf("%w: v: missing", ErrBadEnvelope)
	case d.hasP && d.hasPB:
		return Frame{}, fmt.Errorf("%w: p and pb are mutually exclusive", ErrBadEnvelope)
	}
	return d.f, nil
}

// decoder walks a body already known to be valid JSON, so it need not check
// for malformed input or running off the end.
type decoder struct {
	b     []byte
	i     int
	f     Frame
	seen  uint32
	err   error // first field error
	hasV  bool  // v held an integer
	hasP  bool  // p was present; "p":null is a payload
	hasPB bool  // pb held a string; "pb":null is absent
}

func (d *decoder) space() {
	for d.i < len(d.b) && isSpace(d.b[d.i]) {
		d.i++
	}
}

// str consumes a string and returns its contents between the quotes, still
// escaped, and whether it holds any escape.
func (d *decoder) str() (raw []byte, escaped bool) {
	d.i++
	start := d.i
	for {
		switch d.b[d.i] {
		case '\\':
			escaped = true
			d.i += 2
		case '"':
			raw = d.b[start:d.i]
			d.i++
			return raw, escaped
		default:
			d.i++
		}
	}
}

// skip consumes one value of any kind.
func (d *decoder) skip() {
	switch d.b[d.i] {
	case '"':
		d.str()
	case '{', '[':
		depth := 0
		for {
			switch d.b[d.i] {
			case '"':
				d.str()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			d.i++
			if depth == 0 {
				return
			}
		}
	default:
		for d.i < len(d.b) {
			switch d.b[d.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return
			}
			d.i++
		}
	}
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) field(key []byte, escaped bool, val []byte) {
	if escaped {
		key = []byte(unescape(key))
	}
	// Literal names in each case keep the key from being converted to a
	// string, which would allocate for every field.
	var bit uint32
	switch string(key) {
	case "v":
		bit = seenV
		if val[0] == 'n' {
			break
		}
		v, err := d.int("v", val)
		if err != nil {
			d.fail(err)
			break
		}
		d.f.Version, d.hasV = v, true
	case "t":
		bit = seenT
		d.f.Type = Type(d.string("t", val, types[:]))
	case "id":
		bit = seenID
		d.f.ID = d.string("id", val, nil)
	case "dev":
		bit = seenDev
		d.f.Device = d.string("dev", val, nil)
	case "tok":
		bit = seenTok
		d.f.Token = d.string("tok", val, nil)
	case "cli":
		bit = seenCli
		d.f.Client = d.string("cli", val, nil)
	case "sid":
		bit = seenSid
		d.f.Session = d.string("sid", val, nil)
	case "hb_ms":
		bit = seenHB
		d.f.HeartbeatMS = d.intField("hb_ms", val)
	case "max_frame":
		bit = seenMaxFrame
		d.f.MaxFrame = d.intField("max_frame", val)
	case "max_inflight":
		bit = seenMaxInFlight
		d.f.MaxInFlight = d.intField("max_inflight", val)
	case "rate_per_min":
		bit = seenRate
		d.f.RatePerMin = d.intField("rate_per_min", val)
	case "burst":
		bit = seenBurst
		d.f.Burst = d.intField("burst", val)
	case "to":
		bit = seenTo
		d.f.Route = d.string("to", val, nil)
	case "ct":
		bit = seenCT
		d.f.ContentType = d.string("ct", val, contentTypes[:])
	case "st":
		bit = seenSt
		d.f.Status = d.intField("st", val)
	case "code":
		bit = seenCode
		d.f.Code = Code(d.string("code", val, codes[:]))
	case "msg":
		bit = seenMsg
		d.f.Message = d.string("msg", val, nil)
	case "after_ms":
		bit = seenAfter
		d.f.AfterMS = d.intField("after_ms", val)
	case "tp":
		bit = seenTP
		d.f.TraceParent = d.string("tp", val, nil)
	case "p":
		bit = seenP
		// The payload is forwarded as sent, so keep the exact bytes,
		// including a literal null.
		d.f.Payload = append([]byte(nil), val...)
		d.f.Binary, d.hasP = false, true
	case "pb":
		bit = seenPB
		if val[0] != '"' {
			d.string("pb", val, nil) // reports a wrong type; null is absent
			break
		}
		raw := val[1 : len(val)-1]
		if bytes.IndexByte(raw, '\\') >= 0 {
			raw = []byte(unescape(raw)) // some encoders write "/" as "\/"
		}
		p, err := base64.StdEncoding.AppendDecode(nil, raw)
		if err != nil {
			d.fail(fmt.Errorf("%w: pb: %w", ErrBadEnvelope, err))
			break
		}
		d.f.Payload, d.f.Binary, d.hasPB = p, true, true
	default:
		// Unknown fields are ignored so that minor revisions of version 1
		// can add optional ones.
		return
	}
	if d.seen&bit != 0 {
		d.fail(fmt.Errorf("%w: %s: duplicate field", ErrBadEnvelope, key))
	}
	d.seen |= bit
}

// string decodes a string field; null counts as absent, which Python clients
// produce for None. A value equal to one of known is returned as that
// constant rather than a new string.
func (d *decoder) string(name string, val []byte, known []string) string {
	switch val[0] {
	case 'n':
		return ""
	case '"':
	default:
		d.fail(fmt.Errorf("%w: %s: want a string", ErrBadEnvelope, name))
		return ""
	}
	raw := val[1 : len(val)-1]
	for _, c := range raw {
		if c == '\\' {
			return unescape(raw)
		}
	}
	for _, k := range known {
		if k == string(raw) {
			return k
		}
	}
	return string(raw)
}

func (d *decoder) intField(name string, val []byte) int {
	n, err := d.int(name, val)
	if err != nil {
		d.fail(err)
	}
	return n
}

// int decodes an integer field, which must be absent, null or a plain
// non-negative integer no larger than 2^31-1, so that every field fits an
// int on a 32-bit microcontroller as well.
func (d *decoder) int(name string, val []byte) (int, error) {
	if val[0] == 'n' {
		return 0, nil
	}
	n := 0
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %s: want a non-negative integer, got %.20s", ErrBadEnvelope, name, val)
		}
		n = n*10 + int(c-'0')
		if n > 1<<31-1 {
			return 0, fmt.Errorf("%w: %s: integer out of range", ErrBadEnvelope, name)
		}
	}
	return n, nil
}

// unescape decodes the contents of a JSON string that holds escapes. It is
// rare in practice, so it leans on encoding/json, which also replaces lone
// surrogates with U+FFFD.
func unescape(raw []byte) string {
	q := make([]byte, 0, len(raw)+2)
	q = append(q, '"')
	q = append(q, raw...)
	q = append(q, '"')
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		// Cannot happen: the body passed jsonvalid.Valid.
		return string(raw)
	}
	return s
}

// Common values are returned as these constants, so that decoding them
// does not allocate.
var (
	types = [...]string{
		string(TypeHello), string(TypeWelcome), string(TypeRequest), string(TypeAck), string(TypeError),
		string(TypeResponse), string(TypePush), string(TypePing), string(TypePong), string(TypeGoodbye),
	}
	codes = [...]string{
		string(CodeBadFrame), string(CodeBadVersion), string(CodeUnauthenticated), string(CodeTooLarge),
		string(CodeRateLimited), string(CodeTooManyInFlight), string(CodeUnavailable), string(CodeInternal),
		string(CodeSlowConsumer), string(CodeHandshakeTimeout), string(CodeDuplicate), string(CodeNotFound),
		string(CodeRecordTooLarge),
	}
	contentTypes = [...]string{"application/json", "application/octet-stream", "text/plain"}
)
