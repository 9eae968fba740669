package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/IBM/sarama"

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
// Certificates and keys are each given either as a file path or as inline PEM
// (a value starting with "-----BEGIN" is taken as PEM), so they can come from
// files mounted by an orchestrator or from a secret store.
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
		pem, err := pemOrFile(s.RootCACerts)
		if err != nil {
			return nil, configErr("SecurityConfig.RootCACerts", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, configErr("SecurityConfig.RootCACerts", "no PEM certificate found")
		}
		tc.RootCAs = pool
	}
	if s.ClientCert != "" {
		certPEM, err := pemOrFile(s.ClientCert)
		if err != nil {
			return nil, configErr("SecurityConfig.ClientCert", "%v", err)
		}
		keyPEM, err := pemOrFile(s.ClientKey)
		if err != nil {
			return nil, configErr("SecurityConfig.ClientKey", "%v", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, configErr("SecurityConfig.ClientCert", "loading key pair: %v", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func pemOrFile(v string) ([]byte, error) {
	if strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
		return []byte(v), nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", v, err)
	}
	return b, nil
}

// EnvConfig is the connection configuration read from the environment by
// ConfigFromEnv.
type EnvConfig struct {
	BrokerAddrs  []string
	KafkaVersion string
	Security     *SecurityConfig // nil when no security variable is set
}

// ConfigFromEnv reads the conventional environment variables:
//
//	KAFKA_ADDR              comma-separated broker addresses
//	KAFKA_VERSION           Kafka protocol version, e.g. "3.6.0"
//	KAFKA_SEC_PROTO         PLAINTEXT (default), TLS (or SSL), SASL_SSL, SASL_PLAINTEXT
//	KAFKA_SEC_CA_CERTS      CA certificates: file path or PEM
//	KAFKA_SEC_CLIENT_CERT   client certificate: file path or PEM
//	KAFKA_SEC_CLIENT_KEY    client key: file path or PEM
//	KAFKA_SEC_SKIP_VERIFY   true to skip server certificate verification
//	KAFKA_SASL_MECHANISM    PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default PLAIN with SASL_*)
//	KAFKA_SASL_USER         SASL user
//	KAFKA_SASL_PASSWORD     SASL password
//
// Unset variables are left empty; an unparsable value is an error naming the
// variable.
func ConfigFromEnv() (EnvConfig, error) {
	var ec EnvConfig
	for _, a := range strings.Split(os.Getenv("KAFKA_ADDR"), ",") {
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
