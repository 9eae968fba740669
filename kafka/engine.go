package kafka

import (
	"context"
	"os"
	"time"
)

// Engine names the Kafka client library beneath a Producer or ConsumerGroup.
// The API, its semantics (state machine, commits after the handler returns,
// retries and dead letters, delivery reports, headers, key placement) and
// its defaults are the same whichever engine runs them; what differs is
// speed and each engine's escape hatch (README, "Engines").
type Engine string

// Engines.
const (
	// EngineSarama is github.com/IBM/sarama, the default. SaramaConfig
	// gives raw Sarama code the same connection settings.
	EngineSarama Engine = "sarama"
	// EngineFranz is github.com/twmb/franz-go's kgo client.
	EngineFranz Engine = "franz-go"
)

// EnvEngine is the environment variable that chooses the engine of a config
// whose Engine field is empty: "sarama" or "franz-go". Unset or empty means
// EngineSarama. It is read when the config's defaults are applied.
const EnvEngine = "KAFKAHUB_ENGINE"

// defaultEngine is the engine of a config that names none.
func defaultEngine() Engine {
	if v := os.Getenv(EnvEngine); v != "" {
		return Engine(v)
	}
	return EngineSarama
}

func validateEngine(e Engine) error {
	switch e {
	case EngineSarama, EngineFranz:
		return nil
	}
	return configErr("Engine", "unknown engine %q (want %q or %q; from the field or %s)", e, EngineSarama, EngineFranz, EnvEngine)
}

// producerEngine is what a Producer needs of a client library once it has
// connected. Everything above it (Output and Send, default and trace
// headers, size checks, delivery reports, Errors, Close ordering) is written
// once, in producer.go.
type producerEngine interface {
	// produce hands one record to the client, blocking while the client's
	// buffer is full. env.topic and env.headers are final. The engine calls
	// Producer.delivered exactly once for it, from a goroutine of its own.
	// Only the intake goroutine calls produce.
	produce(env envelope)
	// close flushes every record produce accepted, waits until each has
	// been reported, and releases the connections. Called once, after the
	// last produce.
	close()
	// brokers returns the addresses the cluster advertises, or nil before
	// the client knows them.
	brokers() []string
}

// newProducerEngine makes one connection attempt for p's engine.
func newProducerEngine(p *Producer) (producerEngine, error) {
	// Each branch checks err itself: a nil *T returned as an interface
	// would not be nil.
	if p.cfg.Engine == EngineFranz {
		e, err := newFranzProducer(p)
		if err != nil {
			return nil, err
		}
		return e, nil
	}
	e, err := newSaramaProducer(p)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// groupEngine is what a ConsumerGroup needs of a client library once it has
// connected. The consumer's controller goroutine is its only caller.
type groupEngine interface {
	// consume runs one consumption period: it joins the group and, for
	// each partition assigned, runs the consumer's claim loop (runClaim)
	// on a goroutine of its own. At every rebalance it cancels the
	// revoked claims' contexts (all of them with an eager strategy), waits
	// for their loops to return, commits their marks and only then lets
	// the partitions go. It reports to the ConsumerGroup, from its
	// rebalance goroutine: assigned before the loops of new partitions
	// start; revoked after the loops of revoked ones returned and their
	// marks are committed; rebalancing when an eager rebalance (or an
	// error) ends the assignment before ctx does. Commit requests arrive
	// on ConsumerGroup.commits; errors that do not end the period go to
	// ConsumerGroup.pushError. Paused partitions (ConsumerGroup.assign)
	// are paused again in every new assignment. It returns once ctx has
	// ended, every claim loop has returned, the marks are committed and
	// the member has left the group (static members do not leave).
	consume(ctx context.Context)
	// pause and resume stop and restart fetching for partitions, keeping
	// them assigned. Safe to call from any goroutine, also between periods.
	pause(tps []TopicPartition)
	resume(tps []TopicPartition)
	// brokers returns the addresses the cluster advertises, or nil.
	brokers() []string
	// close releases the connections; called once, after the last consume.
	close() error
}

// newGroupEngine makes one connection attempt for g's engine.
func newGroupEngine(g *ConsumerGroup) (groupEngine, error) {
	if g.cfg.Engine == EngineFranz {
		e, err := newFranzGroup(g)
		if err != nil {
			return nil, err
		}
		return e, nil
	}
	e, err := newSaramaGroup(g)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// claim is one assigned partition as an engine presents it to the claim
// loop. R is the engine's own record type, turned into a Message only when
// the loop takes it, so no engine pays for a second hop per record.
type claim[R any] interface {
	topic() string
	partition() int32
	// ctx is cancelled when the partition is revoked or the period ends.
	ctx() context.Context
	// records delivers the partition's records in offset order; the engine
	// closes it when the partition is revoked.
	records() <-chan R
	// convert reads a record into the engine-neutral form.
	convert(R) record
	// mark records offset as processed: the partition's committed position
	// becomes offset+1 at the next commit.
	mark(offset int64)
	// highWater is the partition's high watermark as last fetched (the
	// offset the next record produced will get), or -1 when unknown: the
	// consumer's lag is measured against it without a request per record.
	highWater() int64
}

// record is a consumed record in engine-neutral form.
type record struct {
	topic     string
	partition int32
	offset    int64
	key       []byte
	value     []byte
	headers   []Header
	timestamp time.Time
}

// marker is the part of a claim a Message needs to mark itself.
type marker interface{ mark(offset int64) }
