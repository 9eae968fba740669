package kafka

import (
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
)

// saramaProducer is the Sarama engine of a Producer: an AsyncProducer whose
// Successes and Errors are read by two goroutines it owns.
type saramaProducer struct {
	p       *Producer
	client  sarama.Client
	async   sarama.AsyncProducer
	readers sync.WaitGroup // the Successes and Errors readers
	// unanswered counts the records given to Input and not yet reported
	// on Successes or Errors. close waits for it before AsyncClose: Sarama
	// fails a batch it retries once its shutdown has begun (a new topic's
	// first NOT_LEADER_OR_FOLLOWER, say) with ErrShuttingDown, which would
	// drop records accepted before Close. produce runs only on the
	// producer's intake goroutine, which calls close last.
	unanswered sync.WaitGroup
}

func newSaramaProducer(p *Producer) (*saramaProducer, error) {
	client, err := sarama.NewClient(p.cfg.BrokerAddrs, p.scfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %v: %w", p.cfg.BrokerAddrs, err)
	}
	// NewClient does not talk to the cluster when it has no topics to
	// look up; ask now, so an unreachable cluster fails this attempt in
	// about a second instead of in the idempotent producer's much longer
	// init retries. A missing topic still proves the brokers answer.
	if err := client.RefreshMetadata(p.cfg.Topic); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		_ = client.Close()
		return nil, fmt.Errorf("connecting to %v: %w", p.cfg.BrokerAddrs, err)
	}
	async, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("creating producer: %w", err)
	}
	e := &saramaProducer{p: p, client: client, async: async}
	e.readers.Add(2)
	go e.successes()
	go e.failures()
	return e, nil
}

// outgoing holds the Sarama message and its envelope in one allocation.
type outgoing struct {
	sm  sarama.ProducerMessage
	env envelope
}

// keyEncoder and valueEncoder are pointer-shaped, so storing them in
// sarama.Encoder fields allocates nothing (sarama.ByteEncoder boxes a slice).
type keyEncoder struct{ m *ProducerMessage }

func (e keyEncoder) Encode() ([]byte, error) { return e.m.Key, nil }
func (e keyEncoder) Length() int             { return len(e.m.Key) }

type valueEncoder struct{ m *ProducerMessage }

func (e valueEncoder) Encode() ([]byte, error) { return e.m.Value, nil }
func (e valueEncoder) Length() int             { return len(e.m.Value) }

func (e *saramaProducer) produce(env envelope) {
	o := &outgoing{env: env}
	m, sm := env.msg, &o.sm
	sm.Topic, sm.Metadata = env.topic, &o.env
	if m.Key != nil {
		sm.Key = keyEncoder{m}
	}
	if m.Value != nil {
		sm.Value = valueEncoder{m}
	}
	if len(env.headers) > 0 {
		sm.Headers = make([]sarama.RecordHeader, len(env.headers))
		for i, h := range env.headers {
			sm.Headers[i] = sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value}
		}
	}
	e.unanswered.Add(1)
	e.async.Input() <- sm
}

func (e *saramaProducer) successes() {
	defer e.readers.Done()
	for sm := range e.async.Successes() {
		if env, _ := sm.Metadata.(*envelope); env != nil {
			e.p.delivered(env, sm.Partition, sm.Offset, nil)
			e.unanswered.Done()
		}
	}
}

func (e *saramaProducer) failures() {
	defer e.readers.Done()
	for pe := range e.async.Errors() {
		var env *envelope
		if pe.Msg != nil {
			env, _ = pe.Msg.Metadata.(*envelope)
		}
		if env == nil {
			topic := e.p.cfg.Topic
			if pe.Msg != nil {
				topic = pe.Msg.Topic
			}
			e.p.pushError(&ProducerError{Topic: topic, Err: pe.Err})
			continue
		}
		e.p.delivered(env, -1, -1, pe.Err)
		e.unanswered.Done()
	}
}

func (e *saramaProducer) close() {
	e.unanswered.Wait()
	e.async.AsyncClose()
	e.readers.Wait()
	if err := e.client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
		e.p.log.Warn("closing client", "error", err)
	}
}

func (e *saramaProducer) brokers() []string { return saramaBrokers(e.client) }

// saramaBrokers lists the brokers a Sarama client knows.
func saramaBrokers(client sarama.Client) []string {
	bs := client.Brokers()
	addrs := make([]string, len(bs))
	for i, b := range bs {
		addrs[i] = b.Addr()
	}
	return addrs
}
