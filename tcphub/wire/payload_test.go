package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSetPayload(t *testing.T) {
	cases := []struct {
		name    string
		ct      string
		payload string
		binary  bool
		wantCT  string // the frame's ct
		effCT   string // PayloadContentType
	}{
		{"json object, no ct", "", `{"a":1}`, false, "", ContentTypeJSON},
		{"text, no ct", "", "hello", true, "", ContentTypeBinary},
		{"json with json ct", ContentTypeJSON, `[1]`, false, "", ContentTypeJSON},
		{"json with +json ct", "application/vnd.acme+json", `[1]`, false, "application/vnd.acme+json", "application/vnd.acme+json"},
		{"json ct with parameters", "Application/JSON; charset=utf-8", `1`, false, "Application/JSON; charset=utf-8", "Application/JSON; charset=utf-8"},
		{"invalid json with json ct", ContentTypeJSON, `{`, true, ContentTypeJSON, ContentTypeJSON},
		{"json with a binary ct", "application/cbor", `{"a":1}`, true, "application/cbor", "application/cbor"},
		{"binary ct", ContentTypeBinary, "\x00", true, "", ContentTypeBinary},
		{"empty, no ct", "", "", false, "", ""},
		{"empty, other ct", "text/plain", "", false, "text/plain", "text/plain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := Frame{Type: TypeResponse, ID: "r", Status: 200}
			f.SetPayload(tc.ct, []byte(tc.payload))
			assert.Equal(t, tc.binary, f.Binary)
			assert.Equal(t, tc.wantCT, f.ContentType)
			assert.Equal(t, tc.effCT, f.PayloadContentType())
			assert.Equal(t, tc.payload, string(f.Payload))
			require.NoError(t, f.Validate())
		})
	}
}

func TestCheckDeviceID(t *testing.T) {
	require.NoError(t, CheckDeviceID("sensor-0042"))
	for _, bad := range []string{"", "a b", strings.Repeat("x", 129), "é"} {
		err := CheckDeviceID(bad)
		require.Error(t, err, "%q", bad)
		assert.True(t, errors.Is(err, ErrInvalidFrame), "%q: %v", bad, err)
	}
}

func TestRandomID(t *testing.T) {
	a, b := RandomID("r-"), RandomID("r-")
	assert.Len(t, a, 18)
	assert.True(t, strings.HasPrefix(a, "r-"))
	assert.NotEqual(t, a, b)
}
