package kafka

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkahub/kafkahub/internal/scram"
)

// SASLMechanism names a SASL mechanism supported by SecurityConfig.
type SASLMechanism string

// The SASL mechanisms kafkahub supports.
const (
	SASLPlain       SASLMechanism = "PLAIN"
	SASLScramSHA256 SASLMechanism = "SCRAM-SHA-256"
	SASLScramSHA512 SASLMechanism = "SCRAM-SHA-512"
)

// SecurityConfig configures TLS and SASL between the client and the brokers.
// The zero value means plaintext without authentication.
//
// Certificates and keys are each given as inline PEM text (a value starting
// with "-----BEGIN"), as base64 of PEM text (as secret stores and
// environment variables often carry them), or else as a file path, so they
// can come from files mounted by an orchestrator or from a secret store.
//
// Secret values (ClientKey, SASLPassword) never appear in an error or a log
// line: errors about them name the field only, and formatting a
// SecurityConfig with fmt or log/slog shows them as "[redacted]".
type SecurityConfig struct {
	// TLS enables TLS (at least TLS 1.2) to the brokers.
	TLS bool
	// RootCACerts verifies the brokers' certificates. Empty: the system pool.
	RootCACerts string
	// ClientCert and ClientKey authenticate the client with a certificate
	// (mutual TLS, as Amazon MSK uses). Give both or neither.
	ClientCert string
	ClientKey  string
	// InsecureSkipVerify disables verification of the brokers' certificates.
	// Only for tests.
	InsecureSkipVerify bool
	// ServerName overrides the name the brokers' certificates are checked
	// against. Empty: the host of each broker address.
	ServerName string

	// SASLMechanism enables SASL authentication when not empty.
	SASLMechanism SASLMechanism
	// SASLUser and SASLPassword are the SASL credentials.
	SASLUser     string
	SASLPassword string
}

// Validate reports the first invalid field, as a *ConfigError.
func (s *SecurityConfig) Validate() error {
	if s == nil {
		return nil
	}
	if (s.ClientCert == "") != (s.ClientKey == "") {
		return configErr("SecurityConfig.ClientCert", "ClientCert and ClientKey must be given together")
	}
	if !s.TLS && (s.RootCACerts != "" || s.ClientCert != "" || s.InsecureSkipVerify) {
		return configErr("SecurityConfig.TLS", "certificates are set but TLS is false")
	}
	switch s.SASLMechanism {
	case "":
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if s.SASLUser == "" {
			return configErr("SecurityConfig.SASLUser", "required with SASLMechanism %s", s.SASLMechanism)
		}
	default:
		return configErr("SecurityConfig.SASLMechanism", "unsupported mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", s.SASLMechanism)
	}
	return nil
}

// apply writes the security settings into a Sarama config, reading any
// certificate files.
func (s *SecurityConfig) apply(cfg *sarama.Config) error {
	if s == nil {
		return nil
	}
	if s.TLS {
		tc, err := s.tlsConfig()
		if err != nil {
			return err
		}
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = tc
	}
	if s.SASLMechanism != "" {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Handshake = true
		cfg.Net.SASL.User = s.SASLUser
		cfg.Net.SASL.Password = s.SASLPassword
		switch s.SASLMechanism {
		case SASLPlain:
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case SASLScramSHA256:
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return scram.NewSHA256() }
		case SASLScramSHA512:
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return scram.NewSHA512() }
		}
	}
	return nil
}

func (s *SecurityConfig) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: s.InsecureSkipVerify, //nolint:gosec // opt-in, documented as test-only
		ServerName:         s.ServerName,
	}
	if s.RootCACerts != "" {
		pem, err := pemOrFile("SecurityConfig.RootCACerts", s.RootCACerts, false)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, configErr("SecurityConfig.RootCACerts", "no PEM certificate found")
		}
		tc.RootCAs = pool
	}
	if s.ClientCert != "" {
		certPEM, err := pemOrFile("SecurityConfig.ClientCert", s.ClientCert, false)
		if err != nil {
			return nil, err
		}
		keyPEM, err := pemOrFile("SecurityConfig.ClientKey", s.ClientKey, true)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, configErr("SecurityConfig.ClientCert", "loading key pair: %v", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// pemOrFile returns the PEM bytes of a certificate or key field: the value
// itself when it is PEM text, its decoding when it is base64 of PEM text,
// else the contents of the file it names. Errors never quote the value
// (a key given inline in the wrong form must not end up in a log): they
// name the field, and quote a file name only for fields that are not
// secret.
func pemOrFile(field, v string, secret bool) ([]byte, error) {
	if isPEM([]byte(v)) {
		return []byte(v), nil
	}
	if b, ok := base64PEM(v); ok {
		return b, nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the PathError quotes the value
		}
		if secret || strings.ContainsAny(v, "\n\r") || len(v) > 256 {
			return nil, configErr(field, "not PEM text, base64 of PEM, or a readable file (value of %d bytes not shown): %v", len(v), err)
		}
		return nil, configErr(field, "not PEM text, base64 of PEM, or a readable file: reading %q: %v", v, err)
	}
	return b, nil
}

func isPEM(b []byte) bool { return bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN")) }

// base64PEM decodes v (standard or URL alphabet, padded or not, line breaks
// allowed) and reports whether it is PEM text.
func base64PEM(v string) ([]byte, bool) {
	v = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, v)
	if v == "" {
		return nil, false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil && isPEM(b) {
			return b, true
		}
	}
	return nil, false
}

const redacted = "[redacted]"

// redactedCopy is s with its secret values replaced, for printing.
func (s SecurityConfig) redactedCopy() securityConfigView {
	if s.ClientKey != "" {
		s.ClientKey = redacted
	}
	if s.SASLPassword != "" {
		s.SASLPassword = redacted
	}
	return securityConfigView(s)
}

// securityConfigView has SecurityConfig's fields without its methods, so
// printing it does not recurse into Format.
type securityConfigView SecurityConfig

// Format implements fmt.Formatter: every verb prints the config with
// ClientKey and SASLPassword redacted.
func (s SecurityConfig) Format(f fmt.State, verb rune) {
	v := s.redactedCopy()
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprintf(f, "kafka.SecurityConfig%+v", v)
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "%+v", v)
	default:
		fmt.Fprintf(f, "%v", v)
	}
}

// LogValue implements slog.LogValuer, with ClientKey and SASLPassword
// redacted.
func (s SecurityConfig) LogValue() slog.Value {
	v := s.redactedCopy()
	return slog.GroupValue(
		slog.Bool("tls", v.TLS), slog.String("root_ca_certs", v.RootCACerts),
		slog.String("client_cert", v.ClientCert), slog.String("client_key", v.ClientKey),
		slog.Bool("insecure_skip_verify", v.InsecureSkipVerify), slog.String("server_name", v.ServerName),
		slog.String("sasl_mechanism", string(v.SASLMechanism)), slog.String("sasl_user", v.SASLUser),
		slog.String("sasl_password", v.SASLPassword),
	)
}

// ErrAuthentication is wrapped by the connection errors that come from a
// failed SASL authentication, so they read as such rather than as the bare
// "EOF" of a broker that closed the connection on wrong credentials.
var ErrAuthentication = errors.New("kafka: SASL authentication failed")

// explainAuth wraps a connection error of a client configured with SASL in
// ErrAuthentication when it is, or probably is, the broker refusing the
// credentials: Kafka answers SASL_AUTHENTICATION_FAILED, and some brokers
// (and Kafka with older handshakes) just close the connection, which
// Sarama reports as EOF. Each engine has its own error value for Kafka's
// codes. The user name is given; the password never.
func explainAuth(sec *SecurityConfig, err error) error {
	if err == nil || sec == nil || sec.SASLMechanism == "" || errors.Is(err, ErrAuthentication) {
		return err
	}
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed), errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Errorf("%w: %s as user %q refused by the broker: %w", ErrAuthentication, sec.SASLMechanism, sec.SASLUser, err)
	case errors.Is(err, sarama.ErrUnsupportedSASLMechanism), errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("%w: the broker does not offer %s: %w", ErrAuthentication, sec.SASLMechanism, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w (probably): the broker closed the connection during %s authentication as user %q; check the user, password and mechanism: %w",
			ErrAuthentication, sec.SASLMechanism, sec.SASLUser, err)
	}
	return err
}

// EnvConfig is the connection configuration read from the environment by
// ConfigFromEnv.
type EnvConfig struct {
	BrokerAddrs  []string
	KafkaVersion string
	Security     *SecurityConfig // nil when no security variable is set
}

// The environment variables ConfigFromEnv reads. Every example, the
// gateway's Dockerfile and kafkatest (EnvBrokers) use the same names.
const (
	EnvBrokers = "KAFKA_BROKERS"
	// EnvBrokersAlias is the former name of EnvBrokers, still read when
	// EnvBrokers is unset.
	EnvBrokersAlias = "KAFKA_ADDR"
)

// ConfigFromEnv reads the conventional environment variables:
//
//	KAFKA_BROKERS           comma-separated broker addresses (KAFKA_ADDR: same, former name)
//	KAFKA_VERSION           Kafka protocol version, e.g. "3.6.0"
//	KAFKA_SEC_PROTO         PLAINTEXT (default), TLS (or SSL), SASL_SSL, SASL_PLAINTEXT
//	KAFKA_SEC_CA_CERTS      CA certificates: PEM, base64 of PEM, or a file path
//	KAFKA_SEC_CLIENT_CERT   client certificate: PEM, base64 of PEM, or a file path
//	KAFKA_SEC_CLIENT_KEY    client key: PEM, base64 of PEM, or a file path
//	KAFKA_SEC_SKIP_VERIFY   true to skip server certificate verification
//	KAFKA_SASL_MECHANISM    PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default PLAIN with SASL_*)
//	KAFKA_SASL_USER         SASL user
//	KAFKA_SASL_PASSWORD     SASL password
//
// Unset variables are left empty; an unparsable value is an error naming the
// variable (never quoting a key or a password). KAFKA_BROKERS and KAFKA_ADDR
// set to different values is an error.
func ConfigFromEnv() (EnvConfig, error) {
	var ec EnvConfig
	brokers := os.Getenv(EnvBrokers)
	if alias := os.Getenv(EnvBrokersAlias); alias != "" {
		if brokers != "" && brokers != alias {
			return ec, fmt.Errorf("%w: %s and %s (its former name) name different brokers; set only %s", ErrInvalidConfig, EnvBrokers, EnvBrokersAlias, EnvBrokers)
		}
		brokers = alias
	}
	for _, a := range strings.Split(brokers, ",") {
		if a = strings.TrimSpace(a); a != "" {
			ec.BrokerAddrs = append(ec.BrokerAddrs, a)
		}
	}
	ec.KafkaVersion = os.Getenv("KAFKA_VERSION")

	sec := &SecurityConfig{
		RootCACerts:   os.Getenv("KAFKA_SEC_CA_CERTS"),
		ClientCert:    os.Getenv("KAFKA_SEC_CLIENT_CERT"),
		ClientKey:     os.Getenv("KAFKA_SEC_CLIENT_KEY"),
		SASLMechanism: SASLMechanism(strings.ToUpper(os.Getenv("KAFKA_SASL_MECHANISM"))),
		SASLUser:      os.Getenv("KAFKA_SASL_USER"),
		SASLPassword:  os.Getenv("KAFKA_SASL_PASSWORD"),
	}
	if v := os.Getenv("KAFKA_SEC_SKIP_VERIFY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return ec, fmt.Errorf("%w: KAFKA_SEC_SKIP_VERIFY=%q is not a boolean", ErrInvalidConfig, v)
		}
		sec.InsecureSkipVerify = b
	}
	switch proto := strings.ToUpper(os.Getenv("KAFKA_SEC_PROTO")); proto {
	case "", "PLAINTEXT":
	case "TLS", "SSL":
		sec.TLS = true
	case "SASL_SSL":
		sec.TLS = true
		if sec.SASLMechanism == "" {
			sec.SASLMechanism = SASLPlain
		}
	case "SASL_PLAINTEXT":
		if sec.SASLMechanism == "" {
			sec.SASLMechanism = SASLPlain
		}
	default:
		return ec, fmt.Errorf("%w: KAFKA_SEC_PROTO=%q (want PLAINTEXT, TLS, SASL_SSL or SASL_PLAINTEXT)", ErrInvalidConfig, proto)
	}
	if *sec != (SecurityConfig{}) {
		if err := sec.Validate(); err != nil {
			return ec, err
		}
		ec.Security = sec
	}
	return ec, nil
}
