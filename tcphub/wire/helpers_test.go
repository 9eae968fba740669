package wire

import (
	"encoding/binary"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// namedFrame is a valid frame used by several tests and by the vectors.
type namedFrame struct {
	name string
	f    Frame
}

// validFrames holds at least one frame of every type, plus the payload and
// escaping cases a client is most likely to get wrong.
func validFrames() []namedFrame {
	return []namedFrame{
		{"hello", Frame{Version: 1, Type: TypeHello, Device: "sensor-0042", Token: "s3cr3t-t0ken", Client: "acme-fw/2.3.1"}},
		{"hello_minimal", Frame{Version: 1, Type: TypeHello, Device: "d1"}},
		{"welcome", Frame{Version: 1, Type: TypeWelcome, Session: "c-7f3a9e", HeartbeatMS: 30000, MaxFrame: DefaultMaxFrameSize, MaxInFlight: 32}},
		{"welcome_rate_limited", Frame{Version: 1, Type: TypeWelcome, Session: "c-7f3a9e", HeartbeatMS: 30000, MaxFrame: DefaultMaxFrameSize, MaxInFlight: 32, RatePerMin: 6000, Burst: 100}},
		{"request_json", Frame{Version: 1, Type: TypeRequest, ID: "r-17", ContentType: "application/json", Payload: []byte(`{"temp":21.5,"unit":"C"}`)}},
		{"request_json_no_ct", Frame{Version: 1, Type: TypeRequest, ID: "r-18", Payload: []byte(`[1,2,3]`)}},
		{"request_json_string", Frame{Version: 1, Type: TypeRequest, ID: "r-19", Payload: []byte(`"door opened"`)}},
		{"request_binary", Frame{Version: 1, Type: TypeRequest, ID: "r-20", Route: "telemetry", ContentType: "application/octet-stream", Payload: []byte{0x00, 0x01, 0xfe, 0xff, 0x7f}, Binary: true}},
		{"request_binary_empty", Frame{Version: 1, Type: TypeRequest, ID: "r-21", Binary: true}},
		{"request_no_payload", Frame{Version: 1, Type: TypeRequest, ID: "r-22", Route: "heartbeat"}},
		{"request_traceparent", Frame{Version: 1, Type: TypeRequest, ID: "r-25", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Payload: []byte(`{"temp":21.5}`)}},
		{"ack", Frame{Version: 1, Type: TypeAck, ID: "r-17"}},
		{"response", Frame{Version: 1, Type: TypeResponse, ID: "r-17", ContentType: "application/json", Status: 200, Payload: []byte(`{"ok":true}`)}},
		{"response_traceparent", Frame{Version: 1, Type: TypeResponse, ID: "r-25", Status: 200, TraceParent: "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01", Payload: []byte(`{"ok":true}`)}},
		{"response_binary", Frame{Version: 1, Type: TypeResponse, ID: "r-20", Status: 202, Payload: []byte("\x89PNG"), Binary: true}},
		{"push", Frame{Version: 1, Type: TypePush, ID: "m-901", ContentType: "application/json", Payload: []byte(`{"cmd":"reboot","delay_s":5}`)}},
		{"ping", Frame{Version: 1, Type: TypePing}},
		{"ping_echo", Frame{Version: 1, Type: TypePing, ID: "hb-5"}},
		{"ping_with_field_of_another_type", Frame{Version: 1, Type: TypePing, Device: "ignored"}},
		{"goodbye_msg_non_ascii", Frame{Version: 1, Type: TypeGoodbye, Message: "maintenance à 5h —  ok"}},
		{"pong_echo", Frame{Version: 1, Type: TypePong, ID: "hb-5"}},
		{"error_request_level", Frame{Version: 1, Type: TypeError, ID: "r-23", Code: CodeRateLimited, Message: "over 10 requests/s", AfterMS: 1500}},
		{"error_unavailable", Frame{Version: 1, Type: TypeError, ID: "r-24", Code: CodeUnavailable, Message: "kafka write failed; retry"}},
		{"error_record_too_large", Frame{Version: 1, Type: TypeError, ID: "r-25", Code: CodeRecordTooLarge, Message: "record of 1000321 bytes > 1000000"}},
		{"error_connection_level", Frame{Version: 1, Type: TypeError, Code: CodeUnauthenticated, Message: "bad token"}},
		{"goodbye", Frame{Version: 1, Type: TypeGoodbye, Message: "draining", AfterMS: 5000}},
		{"escapes", Frame{Version: 1, Type: TypeHello, Device: "dev\"q\\", Client: "Café \"Bär\" / 温度 \u2028 end", Token: "a b"}},
	}
}

// rawFrame frames body with a correct length header, whatever body holds.
func rawFrame(body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(b, body...)
}

func encode(t testing.TB, f Frame) []byte {
	t.Helper()
	b, err := AppendFrame(nil, f)
	require.NoError(t, err)
	return b
}

// oneByteReader returns at most one byte per Read, the worst case of a slow
// link splitting frames anywhere.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// readAll reads frames until the stream ends and returns them and the final
// error.
func readAll(r *Reader) ([]Frame, error) {
	var out []Frame
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return out, err
		}
		out = append(out, f)
	}
}
