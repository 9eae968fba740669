package kafka_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkahub/kafkahub/kafka"
)

// testPKI is a CA plus a server and a client certificate, made fresh for
// each test.
type testPKI struct {
	caPEM, serverCert, serverKey, clientCert, clientKey []byte
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kafkahub test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		kb, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	}
	p := testPKI{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})}
	p.serverCert, p.serverKey = leaf(2, "broker", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

// TestProducerMutualTLS runs the producer against an embedded broker that
// requires a client certificate signed by the test CA, as Amazon MSK does.
// Certificates are given as files, the way they are mounted in production.
func TestProducerMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	serverPair, err := tls.X509KeyPair(pki.serverCert, pki.serverKey)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pki.caPEM))
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "secure"), kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{serverPair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS12,
	}))
	require.NoError(t, err)
	t.Cleanup(fake.Close)

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, b, 0o600))
		return path
	}
	ctx := testCtx(t, 30*time.Second)
	p := newProducer(t, &kafka.ProducerConfig{
		BrokerAddrs: fake.ListenAddrs(), Topic: "secure",
		SecurityConfig: &kafka.SecurityConfig{
			TLS: true, RootCACerts: write("ca.pem", pki.caPEM),
			ClientCert: write("client.pem", pki.clientCert), ClientKey: write("client.key", pki.clientKey),
		},
	})
	require.NoError(t, p.Initialise(ctx))
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("over mTLS")}))

	// Without the client certificate the broker refuses the handshake with
	// the certificate_required alert, and the producer stays
	// uninitialised and says why (inline PEM this time).
	noCert := newProducer(t, &kafka.ProducerConfig{
		BrokerAddrs: fake.ListenAddrs(), Topic: "secure", MaxRetryPeriod: time.Second,
		SecurityConfig: &kafka.SecurityConfig{TLS: true, RootCACerts: string(pki.caPEM)},
	})
	err = refusal(t, noCert, func(err error) bool {
		// crypto/tls reports an alert from the peer as a *net.OpError
		// "remote error" around its (unexported) alert value.
		var oe *net.OpError
		return errors.As(err, &oe) && oe.Op == "remote error" && oe.Err.Error() == "tls: certificate required"
	})
	assert.ErrorContains(t, err, "remote error: tls: certificate required")
}

// refusal waits until p's initialisation has failed in the way isRefusal
// recognises, and returns that error. It fails the test if p initialises,
// or if 60 s pass without such a failure: a refusal, not a timeout, is
// what the caller asserts.
func refusal(t *testing.T, p *kafka.Producer, isRefusal func(error) bool) error {
	t.Helper()
	// 60 s: the franz-go engine reports a failed SCRAM exchange only
	// after its own retries, about 20 s.
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := p.Initialise(ctx)
		cancel()
		require.ErrorIs(t, err, kafka.ErrNotInitialised)
		if isRefusal(err) {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refusal from the broker within 60 s; last: %v", err)
		}
	}
}

func TestProducerSASL(t *testing.T) {
	for _, mech := range []kafka.SASLMechanism{kafka.SASLPlain, kafka.SASLScramSHA256, kafka.SASLScramSHA512} {
		t.Run(string(mech), func(t *testing.T) {
			fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "sasl"),
				kfake.EnableSASL(), kfake.Superuser(string(mech), "alice", "s3cret"))
			require.NoError(t, err)
			t.Cleanup(fake.Close)
			ctx := testCtx(t, 30*time.Second)
			p := newProducer(t, &kafka.ProducerConfig{
				BrokerAddrs: fake.ListenAddrs(), Topic: "sasl",
				SecurityConfig: &kafka.SecurityConfig{SASLMechanism: mech, SASLUser: "alice", SASLPassword: "s3cret"},
			})
			require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("authenticated")}))

			// A wrong password. Apache Kafka answers the SaslAuthenticate
			// request with SASL_AUTHENTICATION_FAILED and then closes;
			// kfake only closes. For PLAIN, whose request carries the
			// password, the fake is taught Kafka's answer, and the
			// producer must report that error. For SCRAM the password
			// never travels; kfake closes the connection at the client's
			// proof, and the producer must report the connection ended
			// during authentication (the attempt reached SaslAuthenticate).
			var authAttempts atomic.Int32
			fake.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
				fake.KeepControl()
				authAttempts.Add(1)
				r := req.(*kmsg.SASLAuthenticateRequest)
				parts := bytes.Split(r.SASLAuthBytes, []byte{0})
				if mech != kafka.SASLPlain || len(parts) != 3 || string(parts[2]) == "s3cret" {
					return nil, nil, false
				}
				resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
				resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
				msg := "Authentication failed: Invalid username or password"
				resp.ErrorMessage = &msg
				return resp, nil, true
			})
			bad := newProducer(t, &kafka.ProducerConfig{
				BrokerAddrs: fake.ListenAddrs(), Topic: "sasl", MaxRetryPeriod: time.Second,
				SecurityConfig: &kafka.SecurityConfig{SASLMechanism: mech, SASLUser: "alice", SASLPassword: "wrong"},
			})
			err = refusal(t, bad, func(err error) bool {
				if mech == kafka.SASLPlain { // as each engine reports Kafka's error code
					return errors.Is(err, sarama.ErrSASLAuthenticationFailed) || errors.Is(err, kerr.SaslAuthenticationFailed)
				}
				return authAttempts.Load() > 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF))
			})
			assert.Positive(t, authAttempts.Load(), "the refusal came from authentication")
			if mech == kafka.SASLPlain {
				assert.ErrorContains(t, err, "Invalid username or password", "the broker's message is kept")
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "") // KAFKA_ADDR, its former name, is read alone
	t.Setenv("KAFKA_ADDR", "b1:9094, b2:9094")
	t.Setenv("KAFKA_VERSION", "3.5.0")
	t.Setenv("KAFKA_SEC_PROTO", "TLS")
	t.Setenv("KAFKA_SEC_CA_CERTS", "/etc/ca.pem")
	t.Setenv("KAFKA_SEC_CLIENT_CERT", "/etc/client.pem")
	t.Setenv("KAFKA_SEC_CLIENT_KEY", "/etc/client.key")
	t.Setenv("KAFKA_SEC_SKIP_VERIFY", "false")
	ec, err := kafka.ConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, []string{"b1:9094", "b2:9094"}, ec.BrokerAddrs)
	assert.Equal(t, "3.5.0", ec.KafkaVersion)
	assert.Equal(t, &kafka.SecurityConfig{TLS: true, RootCACerts: "/etc/ca.pem", ClientCert: "/etc/client.pem", ClientKey: "/etc/client.key"}, ec.Security)

	t.Setenv("KAFKA_SEC_PROTO", "SASL_SSL")
	t.Setenv("KAFKA_SEC_CLIENT_CERT", "")
	t.Setenv("KAFKA_SEC_CLIENT_KEY", "")
	t.Setenv("KAFKA_SASL_MECHANISM", "scram-sha-512")
	t.Setenv("KAFKA_SASL_USER", "bob")
	t.Setenv("KAFKA_SASL_PASSWORD", "pw")
	ec, err = kafka.ConfigFromEnv()
	require.NoError(t, err)
	assert.Equal(t, kafka.SASLScramSHA512, ec.Security.SASLMechanism)
	assert.True(t, ec.Security.TLS)

	t.Setenv("KAFKA_SEC_PROTO", "CARRIER_PIGEON")
	_, err = kafka.ConfigFromEnv()
	require.ErrorIs(t, err, kafka.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "KAFKA_SEC_PROTO")

	t.Setenv("KAFKA_SEC_PROTO", "TLS")
	t.Setenv("KAFKA_SEC_SKIP_VERIFY", "maybe")
	_, err = kafka.ConfigFromEnv()
	require.ErrorIs(t, err, kafka.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "KAFKA_SEC_SKIP_VERIFY")

	for _, k := range []string{"KAFKA_ADDR", "KAFKA_VERSION", "KAFKA_SEC_PROTO", "KAFKA_SEC_CA_CERTS", "KAFKA_SEC_SKIP_VERIFY", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USER", "KAFKA_SASL_PASSWORD"} {
		t.Setenv(k, "")
	}
	ec, err = kafka.ConfigFromEnv()
	require.NoError(t, err)
	assert.Nil(t, ec.Security, "no security variables: plaintext")
}
