package kafka

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// FranzOpts returns franz-go (kgo) client options carrying kafkahub's
// connection settings: seed brokers, client id, dial timeout, protocol
// version ceiling, TLS and SASL. kgo never creates topics implicitly unless
// asked, so nothing is needed for that. It is the franz-go engine's escape
// hatch, as SaramaConfig is Sarama's: code that needs a raw kgo client next
// to kafkahub (an admin client, a direct partition consumer) reaches the
// cluster the same way by appending its own options. An empty version or
// client id takes the default.
func FranzOpts(brokerAddrs []string, kafkaVersion, clientID string, sec *SecurityConfig) ([]kgo.Opt, error) {
	if err := validateCommon(brokerAddrs, DefaultMinRetryPeriod, DefaultMaxRetryPeriod, DefaultMinBrokersHealthy); err != nil {
		return nil, err
	}
	if err := sec.Validate(); err != nil {
		return nil, err
	}
	return franzOpts(brokerAddrs, orDefault(kafkaVersion, DefaultKafkaVersion), orDefault(clientID, DefaultClientID), DefaultDialTimeout, sec)
}

// franzOpts builds the kgo options common to every franz-go client.
func franzOpts(addrs []string, version, clientID string, dial time.Duration, sec *SecurityConfig) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(addrs...),
		kgo.ClientID(clientID),
		kgo.DialTimeout(dial),
	}
	// kgo negotiates versions with each broker; the configured version is
	// the ceiling, as it is for Sarama, so both engines speak the same
	// group protocol in a mixed group. A version kgo does not know leaves
	// the negotiation alone.
	if v := kversion.FromString(version); v != nil {
		opts = append(opts, kgo.MaxVersions(v))
	}
	if sec == nil {
		return opts, nil
	}
	if sec.TLS {
		tc, err := sec.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch sec.SASLMechanism {
	case SASLPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: sec.SASLUser, Pass: sec.SASLPassword}.AsMechanism()))
	case SASLScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: sec.SASLUser, Pass: sec.SASLPassword}.AsSha256Mechanism()))
	case SASLScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: sec.SASLUser, Pass: sec.SASLPassword}.AsSha512Mechanism()))
	}
	return opts, nil
}

// franzConnect is one connection attempt of a new client, bounded by
// timeout: a brokers-only metadata request. It returns the addresses the
// cluster advertises, kept for health checks.
func franzConnect(cl *kgo.Client, timeout time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, 0, len(resp.Brokers))
	for _, b := range resp.Brokers {
		addrs = append(addrs, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
	}
	return addrs, nil
}
