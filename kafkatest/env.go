package kafkatest

import (
	"errors"
	"fmt"

	"github.com/kafkahub/kafkahub/kafka"
)

// ErrNoKafka is returned by ClusterFromEnv when the environment names no
// Kafka and the embedded broker was not asked for.
var ErrNoKafka = errors.New("kafkatest: no Kafka configured: set KAFKA_BROKERS (and the other variables of kafka.ConfigFromEnv), or ask for the embedded broker explicitly")

// ClusterFromEnv is how the examples find Kafka: the cluster that
// kafka.ConfigFromEnv names (KAFKA_BROKERS, KAFKA_VERSION and the security
// variables, which SeedTopics use too), or, when it names none and embedded
// is true, an embedded cluster started in the process. With neither it
// returns an error wrapping ErrNoKafka, so that a program deployed without
// its configuration fails instead of quietly running on a throwaway broker.
// The EnvConfig it returns holds the brokers, version and security to give
// the clients. The caller must Close the cluster.
func ClusterFromEnv(embedded bool, opts ...ClusterOption) (*Cluster, kafka.EnvConfig, error) {
	ec, err := kafka.ConfigFromEnv()
	if err != nil {
		return nil, ec, err
	}
	if len(ec.BrokerAddrs) == 0 {
		if !embedded {
			return nil, ec, ErrNoKafka
		}
		c, err := StartCluster(opts...)
		if err != nil {
			return nil, ec, err
		}
		ec.BrokerAddrs = c.Addrs()
		return c, ec, nil
	}
	cfg := clusterConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	c := &Cluster{addrs: ec.BrokerAddrs, external: true, sec: ec.Security}
	if err := c.seed(cfg.seeds); err != nil {
		return nil, ec, fmt.Errorf("kafkatest: the cluster of %s: %w", kafka.EnvBrokers, err)
	}
	return c, ec, nil
}
