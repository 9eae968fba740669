package tcphub_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/device"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestHMACTokens(t *testing.T) {
	auth, err := tcphub.NewHMACAuthenticator(secret)
	require.NoError(t, err)
	tok, err := tcphub.NewToken(secret, "sensor-1", time.Hour)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(tok, "v1."))
	f := wire.Frame{Type: wire.TypeHello, Device: "sensor-1", Token: tok}
	require.NoError(t, f.Validate(), "a token fits the hello's tok field")

	check := func(dev, tok string) error {
		_, err := auth.Authenticate(context.Background(), tcphub.AuthRequest{DeviceID: dev, Token: tok})
		return err
	}
	assert.NoError(t, check("sensor-1", tok))
	assert.NoError(t, check("sensor-1", "Bearer "+tok))
	assert.ErrorIs(t, check("sensor-2", tok), tcphub.ErrUnauthenticated, "a token is bound to its device")
	other, _ := tcphub.NewToken([]byte("another-secret-of-32-bytes......"), "sensor-1", time.Hour)
	assert.ErrorIs(t, check("sensor-1", other), tcphub.ErrUnauthenticated, "signed with another secret")
	expired, err := tcphub.NewTokenUntil(secret, "sensor-1", time.Now().Add(-time.Second))
	require.NoError(t, err)
	err = check("sensor-1", expired)
	assert.ErrorIs(t, err, tcphub.ErrUnauthenticated)
	assert.Contains(t, err.Error(), "expired")
	// Tampering with the expiry breaks the signature.
	parts := strings.SplitN(expired, ".", 3)
	forged := parts[0] + ".9999999999." + parts[2]
	assert.ErrorContains(t, check("sensor-1", forged), "bad token")
	for _, bad := range []string{"", "v1.", "v1.x.y", "v2.1.abc", "v1.123.!!!", tok[:len(tok)-2]} {
		assert.ErrorIs(t, check("sensor-1", bad), tcphub.ErrUnauthenticated, "%q", bad)
	}

	_, err = tcphub.NewHMACAuthenticator([]byte("short"))
	assert.ErrorIs(t, err, tcphub.ErrInvalidConfig)
	_, err = tcphub.NewToken([]byte("short"), "d", time.Hour)
	assert.Error(t, err)
	_, err = tcphub.NewToken(secret, "bad id", time.Hour)
	assert.Error(t, err)
	_, err = tcphub.NewToken(secret, "d", 0)
	assert.Error(t, err)
}

// TestAuthFailures: refusals, their messages and the per-address lockout;
// and no log line, at debug level, quotes a token, good or refused (a
// token for another device or an expired one is still someone's
// credential).
func TestAuthFailures(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	auth, err := tcphub.NewHMACAuthenticator(secret)
	require.NoError(t, err)
	var logs testkit.LogBuffer
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.Authenticator = auth
		c.AuthFailuresPerMinute = 3
		c.Logger = bufferLogger(&logs)
	})
	hello := func(dev, tok string) *rawDevice {
		d := dialRaw(t, gw.addr)
		d.send(wire.Frame{Type: wire.TypeHello, Device: dev, Token: tok})
		return d
	}
	good, err := tcphub.NewToken(secret, "sensor-1", time.Hour)
	require.NoError(t, err)
	expired, err := tcphub.NewTokenUntil(secret, "sensor-1", time.Now().Add(-time.Minute))
	require.NoError(t, err)

	const forged = "v1.9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	hello("sensor-1", good).expect(wire.TypeWelcome)
	f := hello("sensor-1", forged).expectError(wire.CodeUnauthenticated)
	assert.Equal(t, "bad token", f.Message)
	f = hello("sensor-1", expired).expectError(wire.CodeUnauthenticated)
	assert.Equal(t, "token expired", f.Message)
	hello("sensor-1", "").expectError(wire.CodeUnauthenticated)
	// Three failures from this address: even a good token is refused now.
	f = hello("sensor-1", good).expectError(wire.CodeUnauthenticated)
	assert.Contains(t, f.Message, "too many")
	assert.Positive(t, f.AfterMS)

	body := scrape(t, gw.MetricsHandler())
	assert.Contains(t, body, `tcphub_auth_failures_total{instance_id="`+gw.InstanceID()+`",reason="rejected"} 3`)
	assert.Contains(t, body, `tcphub_auth_failures_total{instance_id="`+gw.InstanceID()+`",reason="ip_rate_limited"} 1`)

	gw.stop(t) // every connection's last log line written
	assert.Contains(t, logs.String(), "authentication failed")
	for _, tok := range []string{good, forged, expired} {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		assert.NotContains(t, logs.String(), sig, "a token's signature in the logs")
	}
}

// TestMutualTLS: the authenticator sees the verified client certificate.
func TestMutualTLS(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	ca, caKey := newCA(t)
	serverCert := issue(t, ca, caKey, "127.0.0.1", true)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{serverCert}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		}
		c.Authenticator = tcphub.ClientCertAuthenticator()
	})
	dial := func(dev string, cert tls.Certificate) (*device.Client, error) {
		return device.Dial(testCtx(t, 10*time.Second), gw.addr, device.Options{
			DeviceID: dev, NoReconnect: true, Logger: quiet,
			TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		})
	}
	cert := issue(t, ca, caKey, "meter-7", false)
	c, err := dial("meter-7", cert)
	require.NoError(t, err)
	call, err := c.Request(testCtx(t, 10*time.Second), []byte(`{"kwh":3}`))
	require.NoError(t, err)
	assert.NotEmpty(t, call.ID)
	require.NoError(t, c.Close())

	_, err = dial("meter-8", cert)
	var se *device.ServerError
	require.ErrorAs(t, err, &se, "a certificate for meter-7 does not open meter-8")
	assert.Equal(t, wire.CodeUnauthenticated, se.Code)
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, server bool) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = append(tmpl.IPAddresses, []byte{127, 0, 0, 1})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
