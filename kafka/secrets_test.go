package kafka_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
)

const keyMarker = "SECRETKEYMATERIAL0123456789"

// TestSecretKeyNeverInErrors gives the client key in every wrong form a
// user could give it (inline PEM that does not parse, a bare base64 DER
// blob, base64 of a broken PEM) and checks that the error names the field
// and quotes none of the value.
func TestSecretKeyNeverInErrors(t *testing.T) {
	pki := newTestPKI(t)
	brokenPEM := "-----BEGIN EC PRIVATE KEY-----\n" + keyMarker + "\n-----END EC PRIVATE KEY-----\n"
	for name, key := range map[string]string{
		"inline PEM that does not parse": brokenPEM,
		"PEM with leading blank line":    "\n  " + brokenPEM,
		"bare text (taken as a path)":    keyMarker + "/" + strings.Repeat("k", 300),
		"multi-line bare text":           keyMarker + "\n" + keyMarker,
		"base64 of broken PEM":           base64.StdEncoding.EncodeToString([]byte(brokenPEM)),
		"not base64, not PEM, not file":  "MIG" + keyMarker + "==",
	} {
		t.Run(name, func(t *testing.T) {
			sec := &kafka.SecurityConfig{TLS: true, ClientCert: string(pki.clientCert), ClientKey: key}
			_, err := kafka.SaramaConfig("", "", sec)
			require.ErrorIs(t, err, kafka.ErrInvalidConfig)
			assert.NotContains(t, err.Error(), keyMarker)
			assert.NotContains(t, err.Error(), key)
			assert.Contains(t, err.Error(), "SecurityConfig.Client")
		})
	}
}

// TestInlineAndBase64PEM: certificates and keys given as PEM text or as
// base64 of it (with or without line breaks) are used as such, not taken
// for file names.
func TestInlineAndBase64PEM(t *testing.T) {
	pki := newTestPKI(t)
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	wrapped := func(s string) string { // as base64(1) wraps it
		var out strings.Builder
		for len(s) > 76 {
			out.WriteString(s[:76] + "\n")
			s = s[76:]
		}
		return out.String() + s + "\n"
	}
	for name, sec := range map[string]*kafka.SecurityConfig{
		"PEM":            {TLS: true, RootCACerts: string(pki.caPEM), ClientCert: string(pki.clientCert), ClientKey: string(pki.clientKey)},
		"base64":         {TLS: true, RootCACerts: b64(pki.caPEM), ClientCert: b64(pki.clientCert), ClientKey: b64(pki.clientKey)},
		"wrapped base64": {TLS: true, RootCACerts: wrapped(b64(pki.caPEM)), ClientCert: wrapped(b64(pki.clientCert)), ClientKey: wrapped(b64(pki.clientKey))},
		"url base64":     {TLS: true, RootCACerts: base64.RawURLEncoding.EncodeToString(pki.caPEM), ClientCert: b64(pki.clientCert), ClientKey: b64(pki.clientKey)},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := kafka.SaramaConfig("", "", sec)
			require.NoError(t, err)
			require.Len(t, cfg.Net.TLS.Config.Certificates, 1)
			require.NotNil(t, cfg.Net.TLS.Config.RootCAs)
		})
	}
	// A missing file is still reported with its name: paths are not secret
	// for certificates, and the name is what the operator needs to see.
	_, err := kafka.SaramaConfig("", "", &kafka.SecurityConfig{TLS: true, RootCACerts: "/nonexistent/ca.pem"})
	require.ErrorIs(t, err, kafka.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "/nonexistent/ca.pem")
	// ... but not for the key, whose "path" may be the key itself.
	_, err = kafka.SaramaConfig("", "", &kafka.SecurityConfig{TLS: true, ClientCert: string(pki.clientCert), ClientKey: "/nonexistent/" + keyMarker})
	require.ErrorIs(t, err, kafka.ErrInvalidConfig)
	assert.NotContains(t, err.Error(), keyMarker)
	assert.Contains(t, err.Error(), "no such file")
}

// TestSecurityConfigPrintsRedacted: formatting a SecurityConfig (fmt verbs,
// a pointer to one, slog) never shows the key or the password.
func TestSecurityConfigPrintsRedacted(t *testing.T) {
	sec := kafka.SecurityConfig{TLS: true, ClientCert: "/etc/c.pem", ClientKey: keyMarker, SASLMechanism: kafka.SASLPlain, SASLUser: "alice", SASLPassword: "pw-" + keyMarker}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("config", "security", sec, "ptr", &sec)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "security", sec, "ptr", &sec)
	out := fmt.Sprintf("%v %+v %#v %s %v %+v", sec, sec, sec, sec, &sec, &sec) + buf.String()
	assert.NotContains(t, out, keyMarker)
	assert.Contains(t, out, "[redacted]")
	assert.Contains(t, out, "alice")
	assert.Contains(t, out, "/etc/c.pem")
}

// TestConfigFromEnvSecretsNeverEchoed sets every secret variable to a
// marked value alongside invalid ones and checks errors and the formatted
// result.
func TestConfigFromEnvSecretsNeverEchoed(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "b1:9094")
	t.Setenv("KAFKA_SEC_PROTO", "SASL_SSL")
	t.Setenv("KAFKA_SEC_CLIENT_CERT", "-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n")
	t.Setenv("KAFKA_SEC_CLIENT_KEY", "-----BEGIN PRIVATE KEY-----\n"+keyMarker+"\n-----END PRIVATE KEY-----\n")
	t.Setenv("KAFKA_SASL_USER", "alice")
	t.Setenv("KAFKA_SASL_PASSWORD", "pw-"+keyMarker)
	ec, err := kafka.ConfigFromEnv()
	require.NoError(t, err)
	assert.NotContains(t, fmt.Sprintf("%v %+v", ec, ec.Security), keyMarker)
	_, err = kafka.SaramaConfig("", "", ec.Security)
	require.ErrorIs(t, err, kafka.ErrInvalidConfig)
	assert.NotContains(t, err.Error(), keyMarker)

	t.Setenv("KAFKA_SEC_SKIP_VERIFY", "perhaps")
	_, err = kafka.ConfigFromEnv()
	require.ErrorIs(t, err, kafka.ErrInvalidConfig)
	assert.NotContains(t, err.Error(), keyMarker)
}

// TestConfigFromEnvBrokerNames: KAFKA_BROKERS is the name; KAFKA_ADDR, its
// former name, still works alone, and the two disagreeing is an error.
func TestConfigFromEnvBrokerNames(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "a:1,b:2")
	t.Setenv("KAFKA_ADDR", "")
	ec, err := kafka.ConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, []string{"a:1", "b:2"}, ec.BrokerAddrs)

	t.Setenv("KAFKA_BROKERS", "")
	t.Setenv("KAFKA_ADDR", "c:3")
	ec, err = kafka.ConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, []string{"c:3"}, ec.BrokerAddrs)

	t.Setenv("KAFKA_BROKERS", "c:3")
	_, err = kafka.ConfigFromEnv()
	require.NoError(t, err, "the same value under both names is fine")

	t.Setenv("KAFKA_BROKERS", "a:1")
	_, err = kafka.ConfigFromEnv()
	require.ErrorIs(t, err, kafka.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "KAFKA_ADDR")
}

// TestSASLFailureNamesAuthentication: wrong credentials give an error that
// wraps ErrAuthentication and says so, instead of a bare EOF, and neither
// the error nor any log line contains the password.
func TestSASLFailureNamesAuthentication(t *testing.T) {
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "sasl"),
		kfake.EnableSASL(), kfake.Superuser(string(kafka.SASLScramSHA256), "alice", "s3cret"))
	require.NoError(t, err)
	t.Cleanup(fake.Close)
	password := "pw-" + keyMarker
	var logs testkit.LogBuffer
	p := newProducer(t, &kafka.ProducerConfig{
		BrokerAddrs: fake.ListenAddrs(), Topic: "sasl", MaxRetryPeriod: time.Second,
		Logger:         slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SecurityConfig: &kafka.SecurityConfig{SASLMechanism: kafka.SASLScramSHA256, SASLUser: "alice", SASLPassword: password},
	})
	err = authError(t, p.Initialise)
	require.ErrorIs(t, err, kafka.ErrNotInitialised)
	require.ErrorIs(t, err, kafka.ErrAuthentication)
	assert.Contains(t, err.Error(), "authentication")
	assert.Contains(t, err.Error(), `"alice"`)
	assert.NotContains(t, err.Error(), keyMarker)
	assert.NotContains(t, logs.String(), keyMarker)
	assert.Contains(t, logs.String(), "authentication")

	// Creating a topic goes through the same explanation.
	err = authError(t, func(ctx context.Context) error {
		return kafka.CreateTopic(ctx, fake.ListenAddrs(), &kafka.SecurityConfig{SASLMechanism: kafka.SASLPlain, SASLUser: "alice", SASLPassword: password}, kafka.TopicSpec{Name: "t", Partitions: 1})
	})
	require.ErrorIs(t, err, kafka.ErrAuthentication)
	assert.NotContains(t, err.Error(), keyMarker)
}

// TestSASLRefusalNamesAuthenticationOnBothEngines: Apache Kafka answers
// wrong credentials with SASL_AUTHENTICATION_FAILED (kfake only closes the
// connection, the case above). Each engine reports that code as its own
// error value; the producer, the consumer group and the Reader must all
// wrap it in ErrAuthentication on both engines, keeping the broker's
// message.
func TestSASLRefusalNamesAuthenticationOnBothEngines(t *testing.T) {
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "sasl"),
		kfake.EnableSASL(), kfake.Superuser(string(kafka.SASLPlain), "alice", "s3cret"))
	require.NoError(t, err)
	t.Cleanup(fake.Close)
	const brokerMsg = "Authentication failed: Invalid username or password"
	fake.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		r := req.(*kmsg.SASLAuthenticateRequest)
		if parts := bytes.Split(r.SASLAuthBytes, []byte{0}); len(parts) == 3 && string(parts[2]) == "s3cret" {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := brokerMsg
		resp.ErrorMessage = &msg
		return resp, nil, true
	})
	password := "pw-" + keyMarker
	sec := &kafka.SecurityConfig{SASLMechanism: kafka.SASLPlain, SASLUser: "alice", SASLPassword: password}
	check := func(t *testing.T, err error) {
		t.Helper()
		require.ErrorIs(t, err, kafka.ErrAuthentication)
		assert.Contains(t, err.Error(), `"alice"`)
		assert.Contains(t, err.Error(), brokerMsg, "the broker's message is kept")
		assert.NotContains(t, err.Error(), keyMarker)
	}
	for _, engine := range []kafka.Engine{kafka.EngineSarama, kafka.EngineFranz} {
		t.Run(string(engine), func(t *testing.T) {
			p := newProducer(t, &kafka.ProducerConfig{
				BrokerAddrs: fake.ListenAddrs(), Topic: "sasl", Engine: engine, MaxRetryPeriod: time.Second, SecurityConfig: sec,
			})
			g := newGroup(t, &kafka.ConsumerGroupConfig{
				BrokerAddrs: fake.ListenAddrs(), Topics: []string{"sasl"}, GroupName: "g-" + string(engine), Engine: engine,
				MaxRetryPeriod: time.Second, SecurityConfig: sec,
			})
			check(t, authError(t, p.Initialise))
			check(t, authError(t, g.Initialise))
			check(t, authError(t, func(ctx context.Context) error {
				r, err := kafka.NewReader(ctx, &kafka.ReaderConfig{BrokerAddrs: fake.ListenAddrs(), Topic: "sasl", Engine: engine, SecurityConfig: sec})
				if err == nil {
					_ = r.Close()
				}
				return err
			}))
		})
	}
}

// authError calls attempt with a fresh 5 s context until its error names
// authentication, for up to a minute, and returns the last error: on a
// loaded machine an attempt can end on a dial timeout before the broker has
// refused the credentials (a CI run under load saw "i/o timeout" within a
// single 2 s attempt).
func authError(t *testing.T, attempt func(context.Context) error) error {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := attempt(ctx)
		cancel()
		if err == nil || errors.Is(err, kafka.ErrAuthentication) || time.Now().After(deadline) {
			return err
		}
	}
}
