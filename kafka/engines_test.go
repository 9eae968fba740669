package kafka_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

var engines = []kafka.Engine{kafka.EngineSarama, kafka.EngineFranz}

// eachEngine runs fn once per engine, the engine chosen through EnvEngine
// so that every config fn builds takes it. When EnvEngine is already set
// (the CI's second pass), only that engine runs: the default pass has run
// the other.
func eachEngine(t *testing.T, fn func(t *testing.T)) {
	list := engines
	if e := os.Getenv(kafka.EnvEngine); e != "" {
		list = []kafka.Engine{kafka.Engine(e)}
	}
	for _, e := range list {
		t.Run(string(e), func(t *testing.T) {
			t.Setenv(kafka.EnvEngine, string(e))
			fn(t)
		})
	}
}

// TestEnginesMixedGroup: a Sarama-engine member and a franz-go-engine
// member of one group agree on the strategy, share the partitions without
// overlap, and handle every record exactly once, with an eager and with
// the cooperative strategy.
func TestEnginesMixedGroup(t *testing.T) {
	for _, strategy := range []kafka.RebalanceStrategy{kafka.RebalanceRange, kafka.RebalanceCooperativeSticky} {
		t.Run(string(strategy), func(t *testing.T) {
			cluster := kafkatest.NewCluster(t)
			topic := cluster.NewTopic(t, 6)
			group := kafkatest.UniqueName("g")
			const n = 300

			s := newSeen(n)
			var mu sync.Mutex
			handledBy := map[kafka.Engine]int{}
			members := map[kafka.Engine]*kafka.ConsumerGroup{}
			var history []string // each member's assignments and revocations, for a failure's report
			start := time.Now()
			for _, e := range engines {
				cfg := fastGroup(cluster, topic, group)
				cfg.Engine, cfg.RebalanceStrategy = e, strategy
				record := func(what string) func([]kafka.TopicPartition, int32) {
					return func(tps []kafka.TopicPartition, gen int32) {
						mu.Lock()
						history = append(history, fmt.Sprintf("%v %s %s %v (generation %d)", time.Since(start).Round(time.Millisecond), e, what, tps, gen))
						mu.Unlock()
					}
				}
				revoked := record("revoked")
				cfg.Hooks = append(cfg.Hooks, kafka.ConsumerHooks{OnAssigned: record("assigned"),
					OnRevoked: func(tps []kafka.TopicPartition) { revoked(tps, -1) }})
				g := newGroup(t, cfg)
				require.NoError(t, g.RegisterHandler(context.Background(), func(_ context.Context, _ int, m kafka.Message) error {
					mu.Lock()
					handledBy[e]++
					mu.Unlock()
					s.add(m)
					return nil
				}))
				g.Start()
				members[e] = g
			}
			sar, fr := members[kafka.EngineSarama], members[kafka.EngineFranz]
			if !assert.Eventually(t, func() bool {
				return len(sar.Assignment()) == 3 && len(fr.Assignment()) == 3
			}, 90*time.Second, 20*time.Millisecond, "the members share 6 partitions") {
				t.Logf("assignments at the deadline: sarama %v, franz-go %v", sar.Assignment(), fr.Assignment())
				mu.Lock()
				for _, h := range history {
					t.Log(h)
				}
				mu.Unlock()
				for e, g := range members {
					for drained := false; !drained; {
						select {
						case err := <-g.Channels().Errors:
							t.Logf("%s member error: %v", e, err)
						default:
							drained = true
						}
					}
					t.Logf("%s member state %v", e, g.State())
				}
				t.FailNow()
			}
			union := append(sar.Assignment(), fr.Assignment()...)
			slices.SortFunc(union, func(a, b kafka.TopicPartition) int { return int(a.Partition - b.Partition) })
			for i, tp := range union {
				assert.Equal(t, int32(i), tp.Partition, "each partition has exactly one owner: %v", union)
			}

			produceN(t, cluster, topic, n, 60)
			s.wait(t, 90*time.Second)
			assert.Zero(t, s.duplicates(), "every record handled once")
			mu.Lock()
			defer mu.Unlock()
			assert.Positive(t, handledBy[kafka.EngineSarama], "the Sarama member handled records")
			assert.Positive(t, handledBy[kafka.EngineFranz], "the franz-go member handled records")
			assert.Equal(t, n, handledBy[kafka.EngineSarama]+handledBy[kafka.EngineFranz])
		})
	}
}

// TestEnginesPlaceKeysAlike: records with the same key land on the same
// partition whichever engine produced them, and that partition is the Java
// client's (murmur2); an explicit partition is kept by both.
func TestEnginesPlaceKeysAlike(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 7)
	ctx := testCtx(t, 60*time.Second)
	placed := map[kafka.Engine]map[string]int32{}
	for _, e := range engines {
		p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Engine: e})
		placed[e] = map[string]int32{}
		// OnDelivery runs after Send has returned: wait for it.
		deliver := func(m *kafka.ProducerMessage) kafka.Delivery {
			got := make(chan kafka.Delivery, 1)
			m.OnDelivery = func(d kafka.Delivery) { got <- d }
			require.NoError(t, p.Send(ctx, m))
			select {
			case d := <-got:
				return d
			case <-ctx.Done():
				t.Fatal(ctx.Err())
				return kafka.Delivery{}
			}
		}
		for i := range 100 {
			key := fmt.Sprintf("key-%d", i)
			if i == 0 {
				key = "foobar"
			}
			placed[e][key] = deliver(&kafka.ProducerMessage{Key: []byte(key), Value: []byte("v")}).Partition
		}
		three := int32(3)
		d := deliver(&kafka.ProducerMessage{Key: []byte("foobar"), Partition: &three})
		assert.Equal(t, three, d.Partition, "%s keeps an explicit partition", e)
	}
	assert.Equal(t, placed[kafka.EngineSarama], placed[kafka.EngineFranz])
	// The Java client: toPositive(murmur2("foobar")) % 7, from Kafka's
	// published murmur2 vector.
	java := int32(-790332482)
	assert.Equal(t, int32(uint32(java)&0x7fffffff)%7, placed[kafka.EngineFranz]["foobar"])
	parts := map[int32]bool{}
	for _, p := range placed[kafka.EngineFranz] {
		parts[p] = true
	}
	assert.Len(t, parts, 7, "100 keys spread over all 7 partitions")
}

// TestFranzOptsReachTheCluster: a raw kgo client built from FranzOpts
// reaches the cluster as kafkahub does, SASL included, and reads what a
// kafkahub producer wrote; wrong credentials fail.
func TestFranzOptsReachTheCluster(t *testing.T) {
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "raw"),
		kfake.EnableSASL(), kfake.Superuser(string(kafka.SASLScramSHA256), "alice", "s3cret"))
	require.NoError(t, err)
	t.Cleanup(fake.Close)
	ctx := testCtx(t, 30*time.Second)
	sec := &kafka.SecurityConfig{SASLMechanism: kafka.SASLScramSHA256, SASLUser: "alice", SASLPassword: "s3cret"}
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: fake.ListenAddrs(), Topic: "raw", SecurityConfig: sec})
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("from kafkahub")}))

	opts, err := kafka.FranzOpts(fake.ListenAddrs(), "", "", sec)
	require.NoError(t, err)
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics("raw"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	require.NoError(t, err)
	defer cl.Close()
	fs := cl.PollFetches(ctx)
	require.NoError(t, fs.Err())
	require.Equal(t, 1, fs.NumRecords())
	assert.Equal(t, "from kafkahub", string(fs.Records()[0].Value))

	bad := *sec
	bad.SASLPassword = "wrong"
	opts, err = kafka.FranzOpts(fake.ListenAddrs(), "", "", &bad)
	require.NoError(t, err)
	badCl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	defer badCl.Close()
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.Error(t, badCl.Ping(short))

	_, err = kafka.FranzOpts(nil, "", "", nil)
	require.ErrorIs(t, err, kafka.ErrInvalidConfig)
	_, err = kafka.FranzOpts([]string{"b:9092"}, "", "", &kafka.SecurityConfig{SASLMechanism: kafka.SASLPlain})
	require.ErrorIs(t, err, kafka.ErrInvalidConfig, "SASL without a user")
}
