package kafka

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// franzProducer is the franz-go engine of a Producer: one kgo client whose
// promises report each record.
type franzProducer struct {
	p     *Producer
	cl    *kgo.Client
	addrs []string
	// promise is the one callback every record shares, allocated once.
	promise func(*kgo.Record, error)
}

func newFranzProducer(p *Producer) (*franzProducer, error) {
	opts, err := p.cfg.franzOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	addrs, err := franzConnect(cl, p.cfg.DialTimeout)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("connecting to %v: %w", p.cfg.BrokerAddrs, err)
	}
	e := &franzProducer{p: p, cl: cl, addrs: addrs}
	e.promise = e.done
	return e, nil
}

// franzOpts translates a defaulted producer config into kgo options.
func (c ProducerConfig) franzOpts() ([]kgo.Opt, error) {
	opts, err := franzOpts(c.BrokerAddrs, c.KafkaVersion, c.ClientID, c.DialTimeout, c.SecurityConfig)
	if err != nil {
		return nil, err
	}
	switch c.RequiredAcks {
	case AcksAll:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case AcksLeader:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case AcksNone:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	}
	if !c.idempotent() {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	switch c.Compression {
	case CompressionGzip:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case CompressionSnappy:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case CompressionLZ4:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case CompressionZstd:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	// A batch holding one record of MaxMessageBytes must fit: kgo counts
	// the batch header, which the semantic layer's size check does not.
	const batchOverhead = 61
	opts = append(opts,
		kgo.ProducerBatchMaxBytes(int32(min(c.MaxMessageBytes+batchOverhead, 1<<30))),
		kgo.ProducerLinger(c.FlushFrequency),
		kgo.RecordRetries(c.RetryMax),
		kgo.RetryBackoffFn(retryBackoff(c.RetryBackoff)),
		kgo.RecordPartitioner(franzPartitioner{}),
	)
	return opts, nil
}

// retryBackoff doubles from first up to DefaultMaxRetryBackoff, as the
// Sarama engine's retries do.
func retryBackoff(first time.Duration) func(int) time.Duration {
	return func(retries int) time.Duration {
		d := first << min(max(retries-1, 0), 20)
		if d <= 0 || d > DefaultMaxRetryBackoff {
			return max(first, DefaultMaxRetryBackoff)
		}
		return d
	}
}

// franzOutgoing holds the kgo record and its envelope in one allocation.
// It is also the record's Context (the embedded Background answers the
// context methods), which is how the promise and the partitioner find the
// envelope again from the *kgo.Record kgo hands them.
type franzOutgoing struct {
	context.Context
	rec kgo.Record
	env envelope
	// outOfRange is set by the partitioner when the explicit partition
	// does not exist, so the promise can say why the record failed.
	outOfRange int32
}

func (e *franzProducer) produce(env envelope) {
	o := &franzOutgoing{Context: context.Background(), env: env}
	m, r := env.msg, &o.rec
	r.Topic, r.Key, r.Value, r.Context = env.topic, m.Key, m.Value, o
	if len(env.headers) > 0 {
		r.Headers = make([]kgo.RecordHeader, len(env.headers))
		for i, h := range env.headers {
			r.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	// Blocks while kgo holds its maximum of buffered records; close,
	// which ends the blocking, only comes after the last produce.
	e.cl.Produce(context.Background(), r, e.promise)
}

// done is the promise of every record; kgo calls it serially.
func (e *franzProducer) done(r *kgo.Record, err error) {
	o := r.Context.(*franzOutgoing)
	if err != nil {
		if o.outOfRange > 0 {
			err = fmt.Errorf("%w: partition %d of topic %q (it has %d): %w",
				sarama.ErrInvalidPartition, *o.env.msg.Partition, o.env.topic, o.outOfRange, err)
		}
		e.p.delivered(&o.env, -1, -1, err)
		return
	}
	e.p.delivered(&o.env, r.Partition, r.Offset, nil)
}

func (e *franzProducer) close() {
	// Flush returns once every buffered record's promise has run; the
	// retry settings bound how long that takes.
	if err := e.cl.Flush(context.Background()); err != nil {
		e.p.log.Warn("flushing", "error", err)
	}
	e.cl.Close()
}

func (e *franzProducer) brokers() []string { return e.addrs }

// franzPartitioner places records exactly as the Sarama engine's
// partitioner does (partitioner.go): the explicit partition, else murmur2
// of the key, else any partition.
type franzPartitioner struct{}

func (franzPartitioner) ForTopic(string) kgo.TopicPartitioner { return franzPartitioner{} }

// RequiresConsistency keeps keyed records and records with an explicit
// partition on their partition while its leader is unavailable (n is then
// the topic's partition count, not only the writable ones).
func (franzPartitioner) RequiresConsistency(r *kgo.Record) bool {
	if o, ok := r.Context.(*franzOutgoing); ok && o.env.msg.Partition != nil {
		return true
	}
	return r.Key != nil
}

func (franzPartitioner) Partition(r *kgo.Record, n int) int {
	if o, ok := r.Context.(*franzOutgoing); ok && o.env.msg.Partition != nil {
		p := int(*o.env.msg.Partition)
		if p < 0 || p >= n {
			o.outOfRange = int32(n)
			return -1 // kgo fails the record
		}
		return p
	}
	return int(keyPartition(r.Key, int32(n)))
}
