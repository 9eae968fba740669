package wire

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", MaxIDLen+1)
	for _, tc := range []struct {
		name  string
		f     Frame
		field string // expected in the message; empty means valid
	}{
		{"hello ok", Frame{Type: TypeHello, Device: "d"}, ""},
		{"hello no dev", Frame{Type: TypeHello, Token: "t"}, "dev: required in hello"},
		{"request no id", Frame{Type: TypeRequest, Payload: []byte(`1`)}, "id: required in request"},
		{"ack no id", Frame{Type: TypeAck}, "id: required in ack"},
		{"push no id", Frame{Type: TypePush}, "id: required in push"},
		{"response no id", Frame{Type: TypeResponse, Status: 200}, "id: required in response"},
		{"response no status", Frame{Type: TypeResponse, ID: "r"}, "st: 0 is not a status"},
		{"response status 600", Frame{Type: TypeResponse, ID: "r", Status: 600}, "st: 600"},
		{"error no code", Frame{Type: TypeError, Message: "x"}, "code: required in error"},
		{"error unknown code ok", Frame{Type: TypeError, Code: "future_code"}, ""},
		{"error code charset", Frame{Type: TypeError, Code: "Bad-Code"}, "code: byte 0x42"},
		{"welcome no sid", Frame{Type: TypeWelcome, HeartbeatMS: 1, MaxFrame: 1, MaxInFlight: 1}, "sid: required"},
		{"welcome no hb", Frame{Type: TypeWelcome, Session: "s", MaxFrame: 1, MaxInFlight: 1}, "hb_ms: required"},
		{"welcome no max_frame", Frame{Type: TypeWelcome, Session: "s", HeartbeatMS: 1, MaxInFlight: 1}, "max_frame: required"},
		{"welcome no max_inflight", Frame{Type: TypeWelcome, Session: "s", HeartbeatMS: 1, MaxFrame: 1}, "max_inflight: required"},
		{"ping ok", Frame{Type: TypePing}, ""},
		{"goodbye ok", Frame{Type: TypeGoodbye}, ""},
		{"no type", Frame{}, "t: missing"},
		{"unknown type", Frame{Type: "stream"}, `t: unknown type "stream"`},
		{"id max ok", Frame{Type: TypeAck, ID: long[1:]}, ""},
		{"id too long", Frame{Type: TypeAck, ID: long}, "id: longer than 128 bytes"},
		{"id space", Frame{Type: TypeAck, ID: "r 1"}, "id: byte 0x20 at offset 1"},
		{"id newline", Frame{Type: TypeAck, ID: "r\n1"}, "id: byte 0x0a at offset 1"},
		{"id non-ascii", Frame{Type: TypeAck, ID: "r-é"}, "id: byte 0xc3 at offset 2"},
		{"dev control", Frame{Type: TypeHello, Device: "d\x00"}, "dev: byte 0x00"},
		{"dev too long", Frame{Type: TypeHello, Device: long}, "dev: longer than"},
		{"sid del", Frame{Type: TypePing, Session: "\x7f"}, "sid: byte 0x7f"},
		{"route space", Frame{Type: TypeRequest, ID: "r", Route: "a b"}, "to: byte 0x20"},
		{"token spaces ok", Frame{Type: TypeHello, Device: "d", Token: "Bearer abc"}, ""},
		{"token tab", Frame{Type: TypeHello, Device: "d", Token: "a\tb"}, "tok: byte 0x09"},
		{"token too long", Frame{Type: TypeHello, Device: "d", Token: strings.Repeat("t", 4097)}, "tok: longer than 4096"},
		{"cli unicode ok", Frame{Type: TypeHello, Device: "d", Client: "Gerät 温度"}, ""},
		{"cli control", Frame{Type: TypeHello, Device: "d", Client: "a\u0085"}, "cli: character U+0085"},
		{"cli bad utf8", Frame{Type: TypeHello, Device: "d", Client: "a\xff"}, "cli: not valid UTF-8"},
		{"msg newline", Frame{Type: TypeGoodbye, Message: "a\nb"}, "msg: character U+000A"},
		{"msg too long", Frame{Type: TypeGoodbye, Message: strings.Repeat("m", 1025)}, "msg: longer than 1024"},
		{"ct with params ok", Frame{Type: TypeRequest, ID: "r", ContentType: "text/plain; charset=utf-8"}, ""},
		{"ct control", Frame{Type: TypeRequest, ID: "r", ContentType: "a\rb"}, "ct: byte 0x0d"},
		{"negative after", Frame{Type: TypeGoodbye, AfterMS: -1}, "after_ms: -1 is outside"},
		{"huge hb", Frame{Type: TypeWelcome, Session: "s", HeartbeatMS: 1 << 31, MaxFrame: 1, MaxInFlight: 1}, "hb_ms: 2147483648 is outside"},
		{"bad json payload", Frame{Type: TypeRequest, ID: "r", Payload: []byte("{")}, "p: payload is not a JSON value"},
		{"binary payload ok", Frame{Type: TypeRequest, ID: "r", Payload: []byte("{"), Binary: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.Validate()
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidFrame)
			require.ErrorContains(t, err, tc.field)
			require.Equal(t, CodeBadFrame, CodeOf(err))
		})
	}
}

func TestValidateVersion(t *testing.T) {
	f := Frame{Version: 2, Type: TypePing}
	require.ErrorIs(t, f.Validate(), ErrBadVersion)
	f.Version = 0
	require.NoError(t, f.Validate(), "zero means the current version")
}
