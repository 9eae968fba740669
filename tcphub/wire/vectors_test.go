package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json from the definitions in vectors_test.go")

const vectorsFile = "testdata/vectors.json"

// vector is one entry of testdata/vectors.json. A reader in any language
// checks itself by reading one frame from the bytes of hex with the default
// maximum frame size and validating it: a valid vector must give frame and
// leave the stream at a clean end, an invalid one must fail with error.
type vector struct {
	Name string `json:"name"`
	Hex  string `json:"hex"`
	// Envelope is the JSON text inside the frame, for people reading the
	// file; hex is authoritative.
	Envelope string       `json:"envelope,omitempty"`
	Frame    *vectorFrame `json:"frame,omitempty"`
	// Error is the code the peer should be sent (bad_frame, too_large,
	// bad_version) or "truncated" for a stream that ends inside a frame.
	Error string `json:"error,omitempty"`
	// Reason is finer than Error: empty_frame, frame_too_large,
	// bad_envelope, bad_version, invalid_frame or unexpected_eof.
	Reason string `json:"reason,omitempty"`
}

// vectorFrame spells a decoded frame with the envelope's field names, but
// with the payload as hex so that its exact bytes are unambiguous.
type vectorFrame struct {
	V           int     `json:"v"`
	T           string  `json:"t"`
	ID          string  `json:"id,omitempty"`
	Dev         string  `json:"dev,omitempty"`
	Tok         string  `json:"tok,omitempty"`
	Cli         string  `json:"cli,omitempty"`
	Sid         string  `json:"sid,omitempty"`
	HBMS        int     `json:"hb_ms,omitempty"`
	MaxFrame    int     `json:"max_frame,omitempty"`
	MaxInFlight int     `json:"max_inflight,omitempty"`
	RatePerMin  int     `json:"rate_per_min,omitempty"`
	Burst       int     `json:"burst,omitempty"`
	To          string  `json:"to,omitempty"`
	CT          string  `json:"ct,omitempty"`
	St          int     `json:"st,omitempty"`
	Code        string  `json:"code,omitempty"`
	Msg         string  `json:"msg,omitempty"`
	AfterMS     int     `json:"after_ms,omitempty"`
	TP          string  `json:"tp,omitempty"`
	PayloadHex  *string `json:"payload_hex,omitempty"` // present whenever p or pb is, even empty
	Binary      bool    `json:"binary,omitempty"`
}

func toVectorFrame(f Frame) *vectorFrame {
	return &vectorFrame{
		V: f.Version, T: string(f.Type), ID: f.ID, Dev: f.Device, Tok: f.Token, Cli: f.Client,
		Sid: f.Session, HBMS: f.HeartbeatMS, MaxFrame: f.MaxFrame, MaxInFlight: f.MaxInFlight,
		RatePerMin: f.RatePerMin, Burst: f.Burst,
		To: f.Route, CT: f.ContentType, St: f.Status, Code: string(f.Code), Msg: f.Message,
		AfterMS: f.AfterMS, TP: f.TraceParent, PayloadHex: payloadHex(f), Binary: f.Binary,
	}
}

// payloadHex is the payload in hex when the frame has one (p or pb, pb
// even when empty), else nil.
func payloadHex(f Frame) *string {
	if !f.Binary && len(f.Payload) == 0 {
		return nil
	}
	h := hex.EncodeToString(f.Payload)
	return &h
}

func (v *vectorFrame) frame(t *testing.T) Frame {
	var p []byte
	if v.PayloadHex != nil {
		var err error
		p, err = hex.DecodeString(*v.PayloadHex)
		require.NoError(t, err)
	}
	if len(p) == 0 {
		p = nil
	}
	return Frame{
		Version: v.V, Type: Type(v.T), ID: v.ID, Device: v.Dev, Token: v.Tok, Client: v.Cli,
		Session: v.Sid, HeartbeatMS: v.HBMS, MaxFrame: v.MaxFrame, MaxInFlight: v.MaxInFlight,
		RatePerMin: v.RatePerMin, Burst: v.Burst,
		Route: v.To, ContentType: v.CT, Status: v.St, Code: Code(v.Code), Message: v.Msg,
		AfterMS: v.AfterMS, TraceParent: v.TP, Payload: p, Binary: v.Binary,
	}
}

type invalidCase struct {
	name   string
	stream []byte
	reason string
}

func header(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

func invalidCases() []invalidCase {
	body := func(s string) []byte { return rawFrame(s) }
	return []invalidCase{
		{"empty_frame", header(0), "empty_frame"},
		{"too_large", append(header(DefaultMaxFrameSize+1), `{"v":1,"t":"ping"}`...), "frame_too_large"},
		{"too_large_3gib", header(3 << 30), "frame_too_large"},
		{"truncated_header", []byte{0, 0, 0}, "unexpected_eof"},
		{"truncated_body", append(header(32), `{"v":1,"t":"ping"}`...), "unexpected_eof"},
		{"not_json", body("hello"), "bad_envelope"},
		{"not_an_object", body(`[1,2,3]`), "bad_envelope"},
		{"trailing_data", body(`{"v":1,"t":"ping"} x`), "bad_envelope"},
		{"two_objects", body(`{"v":1,"t":"ping"}{"v":1,"t":"ping"}`), "bad_envelope"},
		{"invalid_utf8", body("{\"v\":1,\"t\":\"hello\",\"dev\":\"\xff\"}"), "bad_envelope"},
		{"missing_version", body(`{"t":"ping"}`), "bad_envelope"},
		{"version_as_string", body(`{"v":"1","t":"ping"}`), "bad_envelope"},
		{"version_2", body(`{"v":2,"t":"hello","dev":"sensor-0042"}`), "bad_version"},
		{"version_0", body(`{"v":0,"t":"hello","dev":"sensor-0042"}`), "bad_version"},
		{"duplicate_field", body(`{"v":1,"t":"ack","id":"r-1","id":"r-2"}`), "bad_envelope"},
		{"id_not_string", body(`{"v":1,"t":"ack","id":17}`), "bad_envelope"},
		{"negative_integer", body(`{"v":1,"t":"goodbye","after_ms":-1}`), "bad_envelope"},
		{"fractional_integer", body(`{"v":1,"t":"goodbye","after_ms":1.5}`), "bad_envelope"},
		{"p_and_pb", body(`{"v":1,"t":"request","id":"r-1","p":1,"pb":"AQ=="}`), "bad_envelope"},
		{"pb_not_base64", body(`{"v":1,"t":"request","id":"r-1","pb":"%%%"}`), "bad_envelope"},
		{"missing_type", body(`{"v":1,"id":"r-1"}`), "invalid_frame"},
		{"unknown_type", body(`{"v":1,"t":"subscribe","id":"r-1"}`), "invalid_frame"},
		{"hello_without_dev", body(`{"v":1,"t":"hello","tok":"x"}`), "invalid_frame"},
		{"dev_with_control_char", body(`{"v":1,"t":"hello","dev":"sensor\n42"}`), "invalid_frame"},
		{"request_without_id", body(`{"v":1,"t":"request","p":{"temp":21.5}}`), "invalid_frame"},
		{"request_id_too_long", body(`{"v":1,"t":"request","id":"` + strings.Repeat("r", MaxIDLen+1) + `"}`), "invalid_frame"},
		{"request_id_with_space", body(`{"v":1,"t":"request","id":"r 1"}`), "invalid_frame"},
		{"request_traceparent_uppercase", body(`{"v":1,"t":"request","id":"r-1","tp":"00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"}`), "invalid_frame"},
		{"request_traceparent_zero_trace", body(`{"v":1,"t":"request","id":"r-1","tp":"00-00000000000000000000000000000000-b7ad6b7169203331-01"}`), "invalid_frame"},
		{"request_traceparent_short", body(`{"v":1,"t":"request","id":"r-1","tp":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b71-01"}`), "invalid_frame"},
		{"response_without_status", body(`{"v":1,"t":"response","id":"r-1","p":1}`), "invalid_frame"},
		{"error_without_code", body(`{"v":1,"t":"error","msg":"x"}`), "invalid_frame"},
		{"welcome_without_heartbeat", body(`{"v":1,"t":"welcome","sid":"c-1","max_frame":1048576,"max_inflight":8}`), "invalid_frame"},
		// A field of another type is checked against its own rules all the same.
		{"ping_with_bad_field_of_another_type", body(`{"v":1,"t":"ping","dev":"a b"}`), "invalid_frame"},
		{"ping_with_mistyped_field_of_another_type", body(`{"v":1,"t":"ping","st":"200"}`), "bad_envelope"},
		// Control characters: C0 (U+0000-U+001F), DEL (U+007F), C1 (U+0080-U+009F).
		{"msg_with_c0_control", body(`{"v":1,"t":"goodbye","msg":"a\u0007b"}`), "invalid_frame"},
		{"msg_with_del", body("{\"v\":1,\"t\":\"goodbye\",\"msg\":\"a\x7fb\"}"), "invalid_frame"},
		{"cli_with_c1_control", body(`{"v":1,"t":"hello","dev":"d","cli":"fw\u0085"}`), "invalid_frame"},
	}
}

var reasons = map[string]struct {
	err  error
	code string
}{
	"empty_frame":     {ErrEmptyFrame, string(CodeBadFrame)},
	"frame_too_large": {ErrFrameTooLarge, string(CodeTooLarge)},
	"bad_envelope":    {ErrBadEnvelope, string(CodeBadFrame)},
	"bad_version":     {ErrBadVersion, string(CodeBadVersion)},
	"invalid_frame":   {ErrInvalidFrame, string(CodeBadFrame)},
	"unexpected_eof":  {io.ErrUnexpectedEOF, "truncated"},
}

func buildVectors(t *testing.T) []vector {
	var vs []vector
	for _, tc := range validFrames() {
		b := encode(t, tc.f)
		vs = append(vs, vector{Name: tc.name, Hex: hex.EncodeToString(b), Envelope: string(b[4:]), Frame: toVectorFrame(tc.f)})
	}
	for _, tc := range invalidCases() {
		r, ok := reasons[tc.reason]
		require.True(t, ok, tc.reason)
		vs = append(vs, vector{Name: tc.name, Hex: hex.EncodeToString(tc.stream), Error: r.code, Reason: tc.reason})
	}
	return vs
}

func marshalVectors(t *testing.T, vs []vector) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(vs))
	return buf.Bytes()
}

// readAndValidate is the check every client performs on a vector.
func readAndValidate(stream []byte) (Frame, error) {
	r := NewReader(bytes.NewReader(stream), DefaultMaxFrameSize)
	f, err := r.ReadFrame()
	if err != nil {
		return Frame{}, err
	}
	if err := f.Validate(); err != nil {
		return Frame{}, err
	}
	if _, err := r.ReadFrame(); !errors.Is(err, io.EOF) {
		return Frame{}, errors.New("stream does not end after the frame")
	}
	return f, nil
}

func TestVectors(t *testing.T) {
	want := marshalVectors(t, buildVectors(t))
	if *update {
		require.NoError(t, os.WriteFile(vectorsFile, want, 0o644))
	}
	data, err := os.ReadFile(vectorsFile)
	require.NoError(t, err)
	require.Equal(t, string(want), string(data), "%s is stale: run go test ./tcphub/wire -run TestVectors -update", vectorsFile)

	var vs []vector
	require.NoError(t, json.Unmarshal(data, &vs))
	names := map[string]bool{}
	seenTypes := map[Type]bool{}
	for _, v := range vs {
		require.False(t, names[v.Name], "duplicate name %s", v.Name)
		names[v.Name] = true
		t.Run(v.Name, func(t *testing.T) {
			stream, err := hex.DecodeString(v.Hex)
			require.NoError(t, err)
			f, err := readAndValidate(stream)
			if v.Frame != nil {
				require.NoError(t, err)
				require.Equal(t, v.Frame.frame(t), f, "decoded fields")
				require.Equal(t, stream, encode(t, f), "re-encoding is byte-exact")
				require.Equal(t, v.Envelope, string(stream[4:]))
				seenTypes[f.Type] = true
				return
			}
			r := reasons[v.Reason]
			require.ErrorIs(t, err, r.err)
			code := string(CodeOf(err))
			if code == "" {
				code = "truncated"
			}
			require.Equal(t, v.Error, code)
		})
	}
	require.Len(t, seenTypes, len(types), "a valid vector for every frame type")
}
