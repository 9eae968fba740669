package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func decodeString(body string) (Frame, error) { return decodeEnvelope([]byte(body)) }

func TestEncodeCanonical(t *testing.T) {
	b := encode(t, Frame{
		Type: TypeRequest, ID: "r-1", Route: "tele", ContentType: "application/json",
		Payload: []byte(" \n{\"a\": [1, 2]}\t "),
	})
	require.Equal(t, `{"v":1,"t":"request","id":"r-1","to":"tele","ct":"application/json","p":{"a": [1, 2]}}`, string(b[4:]),
		"version defaulted, fields in order, payload trimmed but otherwise verbatim")

	b = encode(t, Frame{Type: TypeWelcome, Session: "s", HeartbeatMS: 1, MaxFrame: 2, MaxInFlight: 3})
	require.Equal(t, `{"v":1,"t":"welcome","sid":"s","hb_ms":1,"max_frame":2,"max_inflight":3}`, string(b[4:]))
}

func TestEncodeStringEscapes(t *testing.T) {
	in := "q\" b\\ / \b\f\n\r\t \x00\x1f \x7f é \u2028 \xff end"
	b := appendString(nil, in)
	require.Equal(t, `"q\" b\\ / \b\f\n\r\t \u0000\u001f `+"\x7f é \u2028 \uFFFD end\"", string(b))
	var back string
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, strings.ToValidUTF8(in, "\uFFFD"), back)
}

func TestDecodePayloadExactBytes(t *testing.T) {
	for _, p := range []string{`{"b":2,  "a":1}`, `[ ]`, `"x\u00e9"`, `-1.5e3`, `true`, `null`, `{"p":{"pb":"x"}}`} {
		f, err := decodeString(`{ "v" : 1 , "t":"request","id":"r","p":` + p + ` }`)
		require.NoError(t, err, p)
		require.Equal(t, p, string(f.Payload))
		require.False(t, f.Binary)
	}
}

func TestDecodeBinaryPayload(t *testing.T) {
	f, err := decodeString(`{"v":1,"t":"request","id":"r","pb":"AAH+/w=="}`)
	require.NoError(t, err)
	require.Equal(t, []byte{0, 1, 0xfe, 0xff}, f.Payload)
	require.True(t, f.Binary)

	f, err = decodeString(`{"v":1,"t":"request","id":"r","pb":"AAH+\/w=="}`)
	require.NoError(t, err, `"\/" is a legal JSON escape some encoders use`)
	require.Equal(t, []byte{0, 1, 0xfe, 0xff}, f.Payload)

	f, err = decodeString(`{"v":1,"t":"request","id":"r","pb":""}`)
	require.NoError(t, err)
	require.Nil(t, f.Payload)
	require.True(t, f.Binary)

	f, err = decodeString(`{"v":1,"t":"request","id":"r","pb":null}`)
	require.NoError(t, err)
	require.False(t, f.Binary)

	f, err = decodeString(`{"v":1,"t":"request","id":"r","p":1,"pb":null}`)
	require.NoError(t, err, "a null pb is absent, so it does not clash with p")
	require.Equal(t, "1", string(f.Payload))
	require.False(t, f.Binary)

	for _, body := range []string{
		`{"v":1,"t":"request","id":"r","pb":"not base64!"}`,
		`{"v":1,"t":"request","id":"r","pb":"AAH"}`,
		`{"v":1,"t":"request","id":"r","pb":5}`,
		`{"v":1,"t":"request","id":"r","p":1,"pb":"AA=="}`,
	} {
		_, err := decodeString(body)
		require.ErrorIs(t, err, ErrBadEnvelope, body)
	}
}

func TestDecodeFieldRules(t *testing.T) {
	f, err := decodeString(`{"v":1,"t":"hello","dev":"d","tok":null,"future":{"x":[1,{"y":"}"}]},"n":null}`)
	require.NoError(t, err, "unknown fields are ignored, null is absent")
	require.Equal(t, Frame{Version: 1, Type: TypeHello, Device: "d"}, f)

	f, err = decodeString(`{"v":1,"t":"hello","dev":"caf\u00e9\n","\u0069d":"x"}`)
	require.NoError(t, err, "escapes in values and keys")
	require.Equal(t, "café\n", f.Device)
	require.Equal(t, "x", f.ID)

	f, err = decodeString(`{"v":1,"t":"ping","ID":"x","Id":"y"}`)
	require.NoError(t, err)
	require.Empty(t, f.ID, "keys are case-sensitive, unlike encoding/json")

	for name, body := range map[string]string{
		"duplicate":        `{"v":1,"t":"ping","t":"pong"}`,
		"duplicate escape": `{"v":1,"t":"ping","\u0074":"pong"}`,
		"missing v":        `{"t":"ping"}`,
		"null v":           `{"v":null,"t":"ping"}`,
		"string v":         `{"v":"1","t":"ping"}`,
		"float v":          `{"v":1.0,"t":"ping"}`,
		"string int":       `{"v":1,"t":"goodbye","after_ms":"5"}`,
		"negative int":     `{"v":1,"t":"goodbye","after_ms":-5}`,
		"exponent int":     `{"v":1,"t":"goodbye","after_ms":1e3}`,
		"huge int":         `{"v":1,"t":"goodbye","after_ms":2147483648}`,
		"number id":        `{"v":1,"t":"ack","id":17}`,
		"object type":      `{"v":1,"t":{}}`,
		"array":            `[{"v":1,"t":"ping"}]`,
	} {
		_, err := decodeString(body)
		require.ErrorIs(t, err, ErrBadEnvelope, name)
	}

	f, err = decodeString(`{"v":1,"t":"goodbye","after_ms":2147483647}`)
	require.NoError(t, err)
	require.Equal(t, 1<<31-1, f.AfterMS)
}

func TestDecodeVersion(t *testing.T) {
	for _, body := range []string{
		`{"v":2,"t":"hello","dev":"d"}`,
		`{"v":0,"t":"hello","dev":"d"}`,
		`{"t":"hello","v":2,"id":17,"extra":true}`, // v2 may have other field types
	} {
		_, err := decodeString(body)
		require.ErrorIs(t, err, ErrBadVersion, body)
		require.Equal(t, CodeBadVersion, CodeOf(err))
	}
}

func TestDecodeUnknownTypeIsLeftToValidate(t *testing.T) {
	f, err := decodeString(`{"v":1,"t":"subscribe","id":"x"}`)
	require.NoError(t, err)
	require.Equal(t, Type("subscribe"), f.Type)
	err = f.Validate()
	require.ErrorIs(t, err, ErrInvalidFrame)
	require.ErrorContains(t, err, `t: unknown type "subscribe"`)
	require.Equal(t, CodeBadFrame, CodeOf(err))
}

func TestDecodeDoesNotAliasInput(t *testing.T) {
	body := []byte(`{"v":1,"t":"request","id":"r-1","ct":"x/y","p":{"a":1}}`)
	f, err := decodeEnvelope(body)
	require.NoError(t, err)
	for i := range body {
		body[i] = 'X'
	}
	require.Equal(t, Frame{Version: 1, Type: TypeRequest, ID: "r-1", ContentType: "x/y", Payload: []byte(`{"a":1}`)}, f)
}

func TestTypeDirections(t *testing.T) {
	for _, typ := range []Type{TypeHello, TypeRequest} {
		require.True(t, typ.FromDevice())
		require.False(t, typ.FromServer())
	}
	for _, typ := range []Type{TypeWelcome, TypeAck, TypeResponse, TypePush, TypeGoodbye} {
		require.False(t, typ.FromDevice())
		require.True(t, typ.FromServer())
	}
	for _, typ := range []Type{TypeError, TypePing, TypePong} {
		require.True(t, typ.FromDevice())
		require.True(t, typ.FromServer())
	}
	require.False(t, Type("nope").FromDevice())
	require.False(t, Type("nope").FromServer())
}
