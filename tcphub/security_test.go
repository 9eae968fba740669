package tcphub_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

func bufferLogger(b *testkit.LogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestTokenKeyRotation: version 1 tokens made before rotation keep
// working; version 2 tokens name their key; a previous key is accepted
// until the end of its rotation window and not after.
func TestTokenKeyRotation(t *testing.T) {
	oldSecret := []byte("old-secret-0123456789abcdef01234")
	newSecret := []byte("new-secret-0123456789abcdef01234")
	windowEnd := time.Now().Add(time.Hour)
	auth, err := tcphub.NewHMACAuthenticator(newSecret, tcphub.WithKeyID("k2"), tcphub.WithPreviousKey("k1", oldSecret, windowEnd))
	require.NoError(t, err)
	check := func(a *tcphub.HMACAuthenticator, dev, tok string) error {
		_, err := a.Authenticate(context.Background(), tcphub.AuthRequest{DeviceID: dev, Token: tok})
		return err
	}
	exp := time.Now().Add(30 * time.Minute)
	v1Old, err := tcphub.NewTokenUntil(oldSecret, "d1", exp)
	require.NoError(t, err)
	v1New, err := tcphub.NewTokenUntil(newSecret, "d1", exp)
	require.NoError(t, err)
	v2Old, err := tcphub.NewKeyedToken("k1", oldSecret, "d1", exp)
	require.NoError(t, err)
	v2New, err := tcphub.NewKeyedToken("k2", newSecret, "d1", exp)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(v2New, "v2.k2."), v2New)
	require.NoError(t, (&wire.Frame{Type: wire.TypeHello, Device: "d1", Token: v2New}).Validate())
	for _, tok := range []string{v1Old, v1New, v2Old, v2New, "Bearer " + v2New} {
		assert.NoError(t, check(auth, "d1", tok), tok)
		assert.ErrorIs(t, check(auth, "d2", tok), tcphub.ErrUnauthenticated, "bound to its device: %s", tok)
	}
	// A v2 token is only checked with the key it names.
	wrongKid, err := tcphub.NewKeyedToken("k2", oldSecret, "d1", exp)
	require.NoError(t, err)
	assert.ErrorContains(t, check(auth, "d1", wrongKid), "bad token")
	unknown, err := tcphub.NewKeyedToken("k9", newSecret, "d1", exp)
	require.NoError(t, err)
	assert.ErrorContains(t, check(auth, "d1", unknown), "unknown key id")

	// After the window, tokens of the old key are refused, the new ones not.
	after, err := tcphub.NewHMACAuthenticator(newSecret, tcphub.WithKeyID("k2"), tcphub.WithPreviousKey("k1", oldSecret, time.Now().Add(-time.Second)))
	require.NoError(t, err)
	assert.ErrorContains(t, check(after, "d1", v1Old), "retired key k1")
	assert.ErrorContains(t, check(after, "d1", v2Old), "retired key k1")
	assert.NoError(t, check(after, "d1", v1New))
	assert.NoError(t, check(after, "d1", v2New))

	// Today's authenticator (one secret, no options) accepts today's tokens
	// and v2 tokens of key "0".
	plain, err := tcphub.NewHMACAuthenticator(newSecret)
	require.NoError(t, err)
	assert.NoError(t, check(plain, "d1", v1New))
	v2Zero, err := tcphub.NewKeyedToken("0", newSecret, "d1", exp)
	require.NoError(t, err)
	assert.NoError(t, check(plain, "d1", v2Zero))

	for _, bad := range []tcphub.HMACOption{
		tcphub.WithKeyID(""), tcphub.WithKeyID("has space"), tcphub.WithKeyID(strings.Repeat("k", 33)),
		tcphub.WithPreviousKey("k1", []byte("short"), windowEnd), tcphub.WithPreviousKey("0", oldSecret, windowEnd),
		tcphub.WithMaxTokenLifetime(-time.Second),
	} {
		_, err := tcphub.NewHMACAuthenticator(newSecret, bad)
		assert.ErrorIs(t, err, tcphub.ErrInvalidConfig)
	}
	_, err = tcphub.NewKeyedToken("bad kid", newSecret, "d1", exp)
	assert.Error(t, err)
}

// TestTokenMaxLifetime: with a maximum lifetime, a token expiring further
// away (the "year 9999" token) is refused; shorter ones pass.
func TestTokenMaxLifetime(t *testing.T) {
	auth, err := tcphub.NewHMACAuthenticator(secret, tcphub.WithMaxTokenLifetime(24*time.Hour))
	require.NoError(t, err)
	check := func(tok string) error {
		_, err := auth.Authenticate(context.Background(), tcphub.AuthRequest{DeviceID: "d1", Token: tok})
		return err
	}
	forever, err := tcphub.NewTokenUntil(secret, "d1", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	assert.ErrorContains(t, check(forever), "lifetime")
	day, err := tcphub.NewToken(secret, "d1", 24*time.Hour)
	require.NoError(t, err)
	assert.NoError(t, check(day))
	hour, err := tcphub.NewKeyedToken("0", secret, "d1", time.Now().Add(time.Hour))
	require.NoError(t, err)
	assert.NoError(t, check(hour))

	noMax, err := tcphub.NewHMACAuthenticator(secret)
	require.NoError(t, err)
	_, err = noMax.Authenticate(context.Background(), tcphub.AuthRequest{DeviceID: "d1", Token: forever})
	assert.NoError(t, err, "no maximum unless configured")
}

// TestHMACWithoutTLSWarns: HMAC tokens are bearer credentials, so serving
// them over plain TCP is logged as a warning by NewServer.
func TestHMACWithoutTLSWarns(t *testing.T) {
	auth, err := tcphub.NewHMACAuthenticator(secret)
	require.NoError(t, err)
	cert := selfSigned(t)
	for name, tc := range map[string]struct {
		auth tcphub.Authenticator
		tls  *tls.Config
		warn bool
	}{
		"hmac over plain TCP": {auth, nil, true},
		"hmac over TLS":       {auth, &tls.Config{Certificates: []tls.Certificate{cert}}, false},
		"allow all":           {tcphub.AllowAll(), nil, false},
	} {
		t.Run(name, func(t *testing.T) {
			var logs testkit.LogBuffer
			s, err := tcphub.NewServer(tcphub.Config{BrokerAddrs: []string{"127.0.0.1:1"}, RequestTopic: "r", Authenticator: tc.auth, TLSConfig: tc.tls, Logger: bufferLogger(&logs)})
			require.NoError(t, err)
			require.NoError(t, s.Shutdown(testCtx(t, 5*time.Second)))
			assert.Equal(t, tc.warn, strings.Contains(logs.String(), "replayed"), logs.String())
		})
	}
}

// TestRoutesToInternalTopicsRefused: a route (or the request topic) may
// not be the presence topic or a reply topic, through which a device
// could forge presence or responses for other devices.
func TestRoutesToInternalTopicsRefused(t *testing.T) {
	base := func() tcphub.Config {
		return tcphub.Config{BrokerAddrs: []string{"localhost:9092"}, RequestTopic: "requests", Authenticator: tcphub.AllowAll(), Logger: quiet}
	}
	for name, tc := range map[string]struct {
		tweak func(*tcphub.Config)
		field string
	}{
		"route to default presence": {func(c *tcphub.Config) { c.Routes = map[string]string{"p": "tcphub.presence"} }, "Routes"},
		"route to custom presence": {func(c *tcphub.Config) {
			c.PresenceTopic = "fleet.presence"
			c.Routes = map[string]string{"p": "fleet.presence"}
		}, "Routes"},
		"route to own reply topic":    {func(c *tcphub.Config) { c.InstanceID = "gw-1"; c.Routes = map[string]string{"r": "tcphub.reply.gw-1"} }, "Routes"},
		"route to another reply":      {func(c *tcphub.Config) { c.Routes = map[string]string{"r": "tcphub.reply.gw-other"} }, "Routes"},
		"route to custom reply":       {func(c *tcphub.Config) { c.ReplyTopicPrefix = "rp-"; c.Routes = map[string]string{"r": "rp-gw-2"} }, "Routes"},
		"request topic is presence":   {func(c *tcphub.Config) { c.RequestTopic = "tcphub.presence" }, "RequestTopic"},
		"request topic is a reply":    {func(c *tcphub.Config) { c.RequestTopic = "tcphub.reply.x" }, "RequestTopic"},
		"hello larger than any frame": {func(c *tcphub.Config) { c.MaxFrameSize = 4096; c.MaxHelloSize = 8192 }, "MaxHelloSize"},
		"conn bytes below a frame":    {func(c *tcphub.Config) { c.MaxConnBytes = 1000 }, "MaxConnBytes"},
		"server bytes below a conn":   {func(c *tcphub.Config) { c.MaxServerBytes = 1 << 20 }, "MaxServerBytes"},
		"lockout scope":               {func(c *tcphub.Config) { c.AuthLockout = 7 }, "AuthLockout"},
	} {
		t.Run(name, func(t *testing.T) {
			c := base()
			tc.tweak(&c)
			_, err := tcphub.NewServer(c)
			var ce *tcphub.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.field, ce.Field)
		})
	}
	c := base()
	c.Routes = map[string]string{"telemetry": "telemetry", "presence-ish": "tcphub.presences"}
	s, err := tcphub.NewServer(c)
	require.NoError(t, err, "ordinary routes are fine")
	require.NoError(t, s.Shutdown(testCtx(t, 5*time.Second)))
}

// TestServerTLSDefaults: with MinVersion and CipherSuites unset, the
// gateway refuses TLS 1.1 and the TLS 1.2 CBC suites.
func TestServerTLSDefaults(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	cert := selfSigned(t)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	})
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	dial := func(cfg *tls.Config) error {
		cfg.RootCAs, cfg.ServerName = pool, "127.0.0.1"
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", gw.addr, cfg)
		if err == nil {
			_ = c.Close()
		}
		return err
	}
	require.NoError(t, dial(&tls.Config{MinVersion: tls.VersionTLS12}))
	require.NoError(t, dial(&tls.Config{MaxVersion: tls.VersionTLS12, MinVersion: tls.VersionTLS12}), "TLS 1.2 with AEAD suites")
	assert.Error(t, dial(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}), "TLS 1.1 refused") //nolint:gosec // the point
	assert.Error(t, dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}}), "CBC suites refused")
}

// TestServerSecretsNeverEchoed: NewServer's errors and logs, and the
// formatted Config, never contain the Kafka client key, the SASL password
// or the HMAC secret, whether the key comes from the struct or from the
// environment.
func TestServerSecretsNeverEchoed(t *testing.T) {
	const marker = "TOPSECRETMATERIAL42"
	hmacSecret := []byte("hmac-" + marker + "-0123456789")
	auth, err := tcphub.NewHMACAuthenticator(hmacSecret, tcphub.WithPreviousKey("old", []byte("old-"+marker+"-0123456789"), time.Time{}))
	require.NoError(t, err)
	brokenKey := "-----BEGIN PRIVATE KEY-----\n" + marker + "\n-----END PRIVATE KEY-----\n"
	cert := selfSigned(t)
	certPEM := pemCert(cert)

	t.Setenv("KAFKA_BROKERS", "127.0.0.1:1")
	t.Setenv("KAFKA_ADDR", "")
	t.Setenv("KAFKA_SEC_PROTO", "SASL_SSL")
	t.Setenv("KAFKA_SEC_CLIENT_CERT", certPEM)
	t.Setenv("KAFKA_SEC_CLIENT_KEY", brokenKey)
	t.Setenv("KAFKA_SASL_USER", "alice")
	t.Setenv("KAFKA_SASL_PASSWORD", "pw-"+marker)
	ec, err := kafka.ConfigFromEnv()
	require.NoError(t, err)

	for name, sec := range map[string]*kafka.SecurityConfig{
		"from the environment": ec.Security,
		"inline broken PEM":    {TLS: true, ClientCert: certPEM, ClientKey: brokenKey, SASLMechanism: kafka.SASLPlain, SASLUser: "u", SASLPassword: marker},
		"key text as a path":   {TLS: true, ClientCert: certPEM, ClientKey: marker + "not-a-file", SASLMechanism: kafka.SASLPlain, SASLUser: "u", SASLPassword: marker},
		"base64 garbage":       {TLS: true, ClientCert: certPEM, ClientKey: "LS0tLS1CRUdJTi" + marker, SASLMechanism: kafka.SASLPlain, SASLUser: "u", SASLPassword: marker},
	} {
		t.Run(name, func(t *testing.T) {
			var logs testkit.LogBuffer
			cfg := tcphub.Config{
				BrokerAddrs: ec.BrokerAddrs, RequestTopic: "r", Authenticator: auth, Security: sec, Logger: bufferLogger(&logs),
				TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, // its private key must not print either
			}
			_, err := tcphub.NewServer(cfg)
			require.ErrorIs(t, err, tcphub.ErrInvalidConfig)
			assert.NotContains(t, err.Error(), marker)
			assert.NotContains(t, logs.String(), marker)
			printed := fmt.Sprintf("%v %+v %#v %v %+v", cfg, cfg, cfg, &cfg, *cfg.Security)
			assert.NotContains(t, printed, marker)
			assert.NotContains(t, printed, string(hmacSecret))
			assert.NotContains(t, printed, cert.PrivateKey.(*ecdsa.PrivateKey).D.String(), "the gateway's TLS key")
		})
	}

	// A valid config that cannot reach Kafka: the retry warnings quote no
	// secret either.
	var logs testkit.LogBuffer
	pw := &kafka.SecurityConfig{SASLMechanism: kafka.SASLPlain, SASLUser: "u", SASLPassword: "pw-" + marker}
	s, err := tcphub.NewServer(tcphub.Config{BrokerAddrs: []string{"127.0.0.1:1"}, RequestTopic: "r", Authenticator: auth, Security: pw, Logger: bufferLogger(&logs)})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	require.Error(t, s.Start(ctx))
	require.NoError(t, s.Shutdown(testCtx(t, 10*time.Second)))
	assert.Contains(t, logs.String(), "retrying")
	assert.NotContains(t, logs.String(), marker)
}

// selfSigned returns a certificate for 127.0.0.1, its own CA.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	ca, caKey := newCA(t)
	cert := issue(t, ca, caKey, "127.0.0.1", true)
	// Serve the CA as the chain's root: the client trusts Leaf = the CA.
	cert.Certificate = append(cert.Certificate, ca.Raw)
	cert.Leaf = ca
	return cert
}

func pemCert(c tls.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
}

// TestLockoutPerDeviceBehindNAT: by default failed authentications count
// per (address, device id), so one device with a bad token does not lock
// out the other devices behind the same NAT address; the refusal carries
// after_ms, the time until the next attempt is checked. LockoutAddress
// restores the per-address lockout.
func TestLockoutPerDeviceBehindNAT(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	auth, err := tcphub.NewHMACAuthenticator(secret)
	require.NoError(t, err)
	good, err := tcphub.NewToken(secret, "good-device", time.Hour)
	require.NoError(t, err)
	for _, scope := range []tcphub.AuthLockout{tcphub.LockoutAddressAndDevice, tcphub.LockoutAddress} {
		t.Run(fmt.Sprintf("scope %d", scope), func(t *testing.T) {
			gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
				c.Authenticator = auth
				c.AuthFailuresPerMinute = 3
				c.AuthLockout = scope
			})
			hello := func(dev, tok string) *rawDevice {
				d := dialRaw(t, gw.addr)
				d.send(wire.Frame{Type: wire.TypeHello, Device: dev, Token: tok})
				return d
			}
			for range 3 {
				hello("bad-device", "v1.1.AAAA").expectError(wire.CodeUnauthenticated)
			}
			f := hello("bad-device", "v1.1.AAAA").expectError(wire.CodeUnauthenticated)
			assert.Contains(t, f.Message, "too many")
			assert.Greater(t, f.AfterMS, 10_000, "about a minute / 3 until the next token")
			assert.LessOrEqual(t, f.AfterMS, 20_000)
			d := hello("good-device", good)
			if scope == tcphub.LockoutAddress {
				assert.Contains(t, d.expectError(wire.CodeUnauthenticated).Message, "too many")
				return
			}
			d.expect(wire.TypeWelcome)
		})
	}
}

// TestKeyedTokenVector pins the version 2 token format PROTOCOL.md gives
// (section "Tokens"), computed independently with Python's hmac module:
//
//	secret    0123456789abcdef0123456789abcdef (ASCII), key id k1
//	device    sensor-0042
//	expiry    1893456000 (2030-01-01T00:00:00Z)
//	token     v2.k1.1893456000.lW8v5rCCLBCRu4KXSqsKyQCiOa152m3eBDc8bDK3FMg
func TestKeyedTokenVector(t *testing.T) {
	tok, err := tcphub.NewKeyedToken("k1", []byte("0123456789abcdef0123456789abcdef"), "sensor-0042", time.Unix(1893456000, 0))
	require.NoError(t, err)
	assert.Equal(t, "v2.k1.1893456000.lW8v5rCCLBCRu4KXSqsKyQCiOa152m3eBDc8bDK3FMg", tok)
}
