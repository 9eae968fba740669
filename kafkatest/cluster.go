package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafkahub/kafkahub/kafka"
)

// EnvBrokers is the environment variable that switches NewCluster and
// StartCluster from the embedded broker to an existing Kafka cluster: a
// comma-separated list of host:port bootstrap addresses.
const EnvBrokers = kafka.EnvBrokers

// Cluster is a Kafka cluster for tests and examples: either an embedded,
// in-process Kafka-protocol broker listening on loopback, or, when
// KAFKA_BROKERS is set, an existing cluster reached at those addresses.
//
// A Cluster is safe for concurrent use.
type Cluster struct {
	addrs    []string
	fake     *kfake.Cluster // nil when external
	external bool
	sec      *kafka.SecurityConfig // of an external cluster from ClusterFromEnv

	closeOnce sync.Once
}

// ClusterOption configures the embedded cluster started by NewCluster or
// StartCluster. Options are ignored when KAFKA_BROKERS selects an external
// cluster, except SeedTopics, whose topics are created there too.
type ClusterOption func(*clusterConfig)

type clusterConfig struct {
	brokers int
	ports   []int
	seeds   []seed
}

type seed struct {
	partitions int32
	topics     []string
}

// Brokers sets how many brokers the embedded cluster runs. The default is 3.
func Brokers(n int) ClusterOption {
	return func(c *clusterConfig) { c.brokers = n }
}

// Ports makes the embedded brokers listen on these loopback ports, one broker
// per port, instead of ports chosen by the kernel. Tests use it to start a
// cluster at an address a client was already configured with.
func Ports(ports ...int) ClusterOption {
	return func(c *clusterConfig) { c.ports = append([]int(nil), ports...) }
}

// SeedTopics creates the named topics, each with the given number of
// partitions, before NewCluster or StartCluster returns.
func SeedTopics(partitions int32, topics ...string) ClusterOption {
	return func(c *clusterConfig) {
		c.seeds = append(c.seeds, seed{partitions: partitions, topics: append([]string(nil), topics...)})
	}
}

// External reports whether KAFKA_BROKERS is set, that is whether NewCluster
// returns an existing cluster rather than starting an embedded one. Tests that
// need fault injection on the embedded broker skip themselves when it is true.
func External() bool { return len(externalAddrs()) > 0 }

func externalAddrs() []string {
	var addrs []string
	for _, a := range strings.Split(os.Getenv(EnvBrokers), ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// StartCluster starts an embedded cluster (or, when KAFKA_BROKERS is set,
// connects to that cluster) for use outside tests, such as the examples. The
// caller must call Close.
func StartCluster(opts ...ClusterOption) (*Cluster, error) {
	cfg := clusterConfig{brokers: 3}
	for _, o := range opts {
		o(&cfg)
	}
	c := &Cluster{}
	if addrs := externalAddrs(); len(addrs) > 0 {
		c.addrs, c.external = addrs, true
	} else {
		if cfg.brokers < 1 && len(cfg.ports) == 0 {
			return nil, fmt.Errorf("kafkatest: Brokers(%d): need at least one broker", cfg.brokers)
		}
		kopts := []kfake.Opt{
			kfake.NumBrokers(cfg.brokers),
			// Sarama's default session timeout (10 s) sits inside these
			// bounds; lower ones let tests use short timeouts.
			kfake.GroupMinSessionTimeout(100 * time.Millisecond),
			kfake.DefaultNumPartitions(3),
		}
		if len(cfg.ports) > 0 {
			kopts = append(kopts, kfake.Ports(cfg.ports...))
		}
		fake, err := kfake.NewCluster(kopts...)
		if err != nil {
			return nil, fmt.Errorf("kafkatest: starting embedded cluster: %w", err)
		}
		c.fake, c.addrs = fake, fake.ListenAddrs()
	}
	if err := c.seed(cfg.seeds); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// seed creates the SeedTopics.
func (c *Cluster) seed(seeds []seed) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range seeds {
		for _, t := range s.topics {
			if err := c.CreateTopic(ctx, t, s.partitions); err != nil {
				return err
			}
		}
	}
	return nil
}

// NewCluster starts an embedded Kafka-protocol cluster (three brokers on
// loopback by default) for the test and stops it when the test ends. When
// KAFKA_BROKERS is set it starts nothing and returns that cluster instead, so
// the same test runs against real Apache Kafka. It fails the test if the
// cluster cannot be started.
//
// A typical integration test:
//
//	func TestOrders(t *testing.T) {
//		cluster := kafkatest.NewCluster(t)
//		topic := cluster.NewTopic(t, 3)
//		p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
//		...
//	}
func NewCluster(t testing.TB, opts ...ClusterOption) *Cluster {
	t.Helper()
	c, err := StartCluster(opts...)
	if err != nil {
		t.Fatalf("kafkatest.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Addrs returns the bootstrap addresses of the cluster's brokers.
func (c *Cluster) Addrs() []string { return append([]string(nil), c.addrs...) }

// External reports whether the cluster is an existing one selected by
// KAFKA_BROKERS rather than the embedded broker.
func (c *Cluster) External() bool { return c.external }

// Fake returns the embedded broker, for fault injection with its Control
// functions, or nil when the cluster is external. Its API is franz-go's kfake,
// which has no stable release: prefer the kafkatest helpers where they exist.
func (c *Cluster) Fake() *kfake.Cluster { return c.fake }

// Close stops the embedded cluster. It does nothing for an external cluster
// and is safe to call more than once.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		if c.fake != nil {
			c.fake.Close()
		}
	})
}

var unsafeTopicChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// NewTopic creates a topic whose name is unique to this test and run (so
// runs against a shared external cluster never collide), with the given
// number of partitions, and returns its name. It fails the test on error.
func (c *Cluster) NewTopic(t testing.TB, partitions int32) string {
	t.Helper()
	name := UniqueName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateTopic(ctx, name, partitions); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return name
}

// UniqueName returns prefix, cleaned of characters Kafka rejects in topic and
// group names, followed by a random suffix.
func UniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := strings.Trim(unsafeTopicChars.ReplaceAllString(prefix, "-"), "-")
	if len(p) > 180 {
		p = p[:180]
	}
	return "kh-" + p + "-" + hex.EncodeToString(b[:])
}

// CreateTopic creates a topic with the given number of partitions and waits
// until every partition has a leader. Replication is 3, or the number of
// brokers when there are fewer. A topic that already exists is not an error.
func (c *Cluster) CreateTopic(ctx context.Context, name string, partitions int32) error {
	err := kafka.CreateTopic(ctx, c.addrs, c.sec, kafka.TopicSpec{Name: name, Partitions: partitions})
	if err != nil {
		return fmt.Errorf("kafkatest: %w", err)
	}
	return nil
}
