package tcphub_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/tcphub"
)

// TestTokenVector pins the token format PROTOCOL.md gives (section
// "Tokens"), computed independently with Python's hmac module:
//
//	secret    0123456789abcdef0123456789abcdef (ASCII)
//	device    sensor-0042
//	expiry    1893456000 (2030-01-01T00:00:00Z)
//	token     v1.1893456000.Zxy7zpn-IZMl0SANocAYBcdVtGnIBYhWGSRNcqtXuAs
func TestTokenVector(t *testing.T) {
	const want = "v1.1893456000.Zxy7zpn-IZMl0SANocAYBcdVtGnIBYhWGSRNcqtXuAs"
	secret := []byte("0123456789abcdef0123456789abcdef")
	tok, err := tcphub.NewTokenUntil(secret, "sensor-0042", time.Unix(1893456000, 0))
	require.NoError(t, err)
	assert.Equal(t, want, tok)

	// The same signature for a token that has not expired is accepted, with
	// or without "Bearer ".
	auth, err := tcphub.NewHMACAuthenticator(secret)
	require.NoError(t, err)
	live, err := tcphub.NewToken(secret, "sensor-0042", time.Hour)
	require.NoError(t, err)
	for _, tok := range []string{live, "Bearer " + live} {
		id, err := auth.Authenticate(context.Background(), tcphub.AuthRequest{DeviceID: "sensor-0042", Token: tok})
		require.NoError(t, err)
		assert.Equal(t, "sensor-0042", id.DeviceID)
	}
}
