package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkahub/kafkahub/kafka"
)

// produceParams is one produce round's workload.
type produceParams struct {
	addrs      []string
	topic      string
	n          int           // records to send at most
	limit      time.Duration // stop sending after this long
	idempotent bool
	senders    int      // goroutines calling Send (kafkahub-send)
	keys       [][]byte // record keys, used round-robin
	value      []byte   // shared payload (no implementation modifies it)
}

// drainTimeout bounds the wait for outstanding acknowledgements once the
// sending stops.
const drainTimeout = 60 * time.Second

// keysFor returns distinct keys, so records spread over every partition
// through each client's key hash (murmur2 everywhere, see saramaPartitioner).
func keysFor(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "device-%05d", i)
	}
	return keys
}

type producer = func(ctx context.Context, p produceParams) (roundResult, error)

func producers() []impl[producer] {
	out := instrumented("kafkahub-output", func(ctx context.Context, p produceParams, t telemetry) (roundResult, error) {
		return produceKafkahubOutput(ctx, p, kafka.EngineSarama, t)
	}, telDefault, telOff, telSDK, telMetrics, telAgain)
	return append(out,
		impl[producer]{"kafkahub-franz-output", func(ctx context.Context, p produceParams) (roundResult, error) {
			return produceKafkahubOutput(ctx, p, kafka.EngineFranz, telDefault)
		}},
		impl[producer]{"kafkahub-send", func(ctx context.Context, p produceParams) (roundResult, error) {
			return produceKafkahubSend(ctx, p, kafka.EngineSarama)
		}},
		impl[producer]{"kafkahub-franz-send", func(ctx context.Context, p produceParams) (roundResult, error) {
			return produceKafkahubSend(ctx, p, kafka.EngineFranz)
		}},
		impl[producer]{"sarama", produceSarama},
		impl[producer]{"sarama-sync", produceSaramaSync},
		impl[producer]{"franz-go", produceFranz},
		impl[producer]{"franz-sync", produceFranzSync},
	)
}

// sendLoop calls send(i) for i = 0.. until n records or the time limit,
// and returns how many were sent. The clock is read every 256 records.
func sendLoop(p produceParams, start time.Time, send func(i int) bool) int64 {
	var sent int64
	for i := range p.n {
		if i&255 == 0 && time.Since(start) > p.limit {
			break
		}
		if !send(i) {
			break
		}
		sent++
	}
	return sent
}

// finishProduce waits for every acknowledgement and builds the result.
func finishProduce(ctx context.Context, p produceParams, start time.Time, sent int64, acks *counter, failed *atomic.Int64, lat *sampler) (roundResult, error) {
	acks.setTarget(sent)
	select {
	case <-acks.done:
	case <-ctx.Done():
		return roundResult{}, fmt.Errorf("waiting for %d acks (have %d): %w", sent, acks.n.Load(), ctx.Err())
	}
	ok := sent - failed.Load()
	return roundResult{
		msgs:    ok,
		bytes:   ok * int64(len(p.value)),
		seconds: acks.end.Sub(start).Seconds(),
		errors:  failed.Load(),
		lat:     lat.take(),
	}, nil
}

func kafkahubProducerConfig(p produceParams, engine kafka.Engine) *kafka.ProducerConfig {
	return &kafka.ProducerConfig{
		BrokerAddrs:        p.addrs,
		Engine:             engine,
		Topic:              p.topic,
		DisableIdempotence: !p.idempotent,
		Logger:             quietLogger,
	}
}

func newKafkahubProducer(ctx context.Context, cfg *kafka.ProducerConfig) (*kafka.Producer, func(), error) {
	kp, err := kafka.NewProducer(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	closeIt := func() {
		cctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		if err := kp.Close(cctx); err != nil {
			logf("closing kafkahub producer: %v", err)
		}
	}
	if err := kp.Initialise(ctx); err != nil {
		closeIt()
		return nil, nil, err
	}
	return kp, closeIt, nil
}

// produceKafkahubOutput feeds the Output channel and counts acks through
// OnDelivery, the producer's fire-and-forget path.
// t instruments it (telemetry.go).
func produceKafkahubOutput(ctx context.Context, p produceParams, engine kafka.Engine, t telemetry) (roundResult, error) {
	cfg := kafkahubProducerConfig(p, engine)
	var stop func()
	cfg.Telemetry, stop = kafkaTelemetry(t)
	defer stop()
	kp, closeIt, err := newKafkahubProducer(ctx, cfg)
	if err != nil {
		return roundResult{}, err
	}
	defer closeIt()
	acks, failed, lat := newCounter(), new(atomic.Int64), new(sampler)
	onDelivery := func(d kafka.Delivery) {
		if d.Err != nil {
			failed.Add(1)
		}
		acks.add(1)
	}
	out := kp.Channels().Output
	start := time.Now()
	sent := sendLoop(p, start, func(i int) bool {
		m := &kafka.ProducerMessage{Key: p.keys[i%len(p.keys)], Value: p.value, OnDelivery: onDelivery}
		if i%sampleEvery == 0 {
			t := time.Now()
			m.OnDelivery = func(d kafka.Delivery) { lat.add(time.Since(t)); onDelivery(d) }
		}
		select {
		case out <- m:
			return true
		case <-ctx.Done():
			return false
		}
	})
	return finishProduce(ctx, p, start, sent, acks, failed, lat)
}

// produceKafkahubSend calls Send, which waits for the ack, from
// p.senders goroutines.
func produceKafkahubSend(ctx context.Context, p produceParams, engine kafka.Engine) (roundResult, error) {
	kp, closeIt, err := newKafkahubProducer(ctx, kafkahubProducerConfig(p, engine))
	if err != nil {
		return roundResult{}, err
	}
	defer closeIt()
	return sendersLoop(ctx, p, func(i int) error {
		return kp.Send(ctx, &kafka.ProducerMessage{Key: p.keys[i%len(p.keys)], Value: p.value})
	}), nil
}

// sendersLoop calls send, which waits for the ack, from p.senders
// goroutines until n records or the time limit: the synchronous path of
// every client, at one concurrency.
func sendersLoop(ctx context.Context, p produceParams, send func(i int) error) roundResult {
	var next, okCount, failed atomic.Int64
	var stop atomic.Bool
	lat := new(sampler)
	start := time.Now()
	var wg sync.WaitGroup
	for range p.senders {
		wg.Go(func() {
			for !stop.Load() && ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(p.n) || (i&255 == 0 && time.Since(start) > p.limit) {
					stop.Store(true)
					return
				}
				var t time.Time
				if i%sampleEvery == 0 {
					t = time.Now()
				}
				if err := send(int(i)); err != nil {
					failed.Add(1)
					continue
				}
				if !t.IsZero() {
					lat.add(time.Since(t))
				}
				okCount.Add(1)
			}
		})
	}
	wg.Wait()
	end := time.Now()
	ok := okCount.Load()
	return roundResult{msgs: ok, bytes: ok * int64(len(p.value)), seconds: end.Sub(start).Seconds(),
		errors: failed.Load(), lat: lat.take()}
}

// produceSaramaSync is Sarama's SyncProducer, Send's true peer, from
// p.senders goroutines.
func produceSaramaSync(ctx context.Context, p produceParams) (roundResult, error) {
	client, err := sarama.NewClient(p.addrs, saramaProducerConfig(p.idempotent))
	if err != nil {
		return roundResult{}, err
	}
	defer client.Close()
	sp, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return roundResult{}, err
	}
	defer sp.Close()
	return sendersLoop(ctx, p, func(i int) error {
		_, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: p.topic,
			Key: sarama.ByteEncoder(p.keys[i%len(p.keys)]), Value: sarama.ByteEncoder(p.value)})
		return err
	}), nil
}

// produceFranzSync is kgo's ProduceSync, Send's true peer, from p.senders
// goroutines.
func produceFranzSync(ctx context.Context, p produceParams) (roundResult, error) {
	cl, err := kgo.NewClient(franzProducerOpts(p)...)
	if err != nil {
		return roundResult{}, err
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		return roundResult{}, err
	}
	return sendersLoop(ctx, p, func(i int) error {
		return cl.ProduceSync(ctx, &kgo.Record{Key: p.keys[i%len(p.keys)], Value: p.value}).FirstErr()
	}), nil
}

// saramaProducerConfig reproduces what kafkahub configures by default
// (kafka/producer_config.go): acks=all, idempotent with one open request per
// broker, no compression, no flush settings, ten retries, successes and
// errors returned, metadata only for the topics in use.
func saramaProducerConfig(idempotent bool) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = "kafkabench"
	c.Metadata.Full = false
	c.Metadata.AllowAutoTopicCreation = false
	c.Producer.RequiredAcks = sarama.WaitForAll
	if idempotent {
		c.Producer.Idempotent = true
		c.Net.MaxOpenRequests = 1
	}
	c.Producer.Compression = sarama.CompressionNone
	c.Producer.MaxMessageBytes = kafka.DefaultMaxMessageBytes
	c.Producer.Retry.Max = kafka.DefaultRetryMax
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Partitioner = newMurmur2Partitioner
	return c
}

// murmur2Partitioner places keyed records as the Java client (and kafkahub
// and franz-go) do, so all three put the same keys on the same partitions.
type murmur2Partitioner struct{}

func newMurmur2Partitioner(string) sarama.Partitioner { return murmur2Partitioner{} }

func (murmur2Partitioner) Partition(m *sarama.ProducerMessage, n int32) (int32, error) {
	key, err := m.Key.Encode()
	if err != nil {
		return 0, err
	}
	return int32(murmur2(key)&0x7fffffff) % n, nil
}

func (murmur2Partitioner) RequiresConsistency() bool { return true }

// murmur2 is Kafka's 32-bit MurmurHash2 (seed 0x9747b28c), written from the
// algorithm's description.
func murmur2(b []byte) uint32 {
	const mul = 0x5bd1e995
	h := uint32(0x9747b28c) ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= mul
		k ^= k >> 24
		k *= mul
		h = h*mul ^ k
		b = b[4:]
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= mul
	}
	h ^= h >> 13
	h *= mul
	h ^= h >> 15
	return h
}

// sampleMeta marks a sampled record; Metadata is nil on the others.
type sampleMeta struct{ sent time.Time }

func produceSarama(ctx context.Context, p produceParams) (roundResult, error) {
	client, err := sarama.NewClient(p.addrs, saramaProducerConfig(p.idempotent))
	if err != nil {
		return roundResult{}, err
	}
	defer client.Close()
	ap, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return roundResult{}, err
	}
	acks, failed, lat := newCounter(), new(atomic.Int64), new(sampler)
	var readers sync.WaitGroup
	readers.Go(func() {
		for m := range ap.Successes() {
			if s, ok := m.Metadata.(*sampleMeta); ok {
				lat.add(time.Since(s.sent))
			}
			acks.add(1)
		}
	})
	readers.Go(func() {
		for range ap.Errors() {
			failed.Add(1)
			acks.add(1)
		}
	})
	defer func() {
		ap.AsyncClose()
		readers.Wait()
	}()
	in := ap.Input()
	start := time.Now()
	sent := sendLoop(p, start, func(i int) bool {
		m := &sarama.ProducerMessage{Topic: p.topic, Key: sarama.ByteEncoder(p.keys[i%len(p.keys)]), Value: sarama.ByteEncoder(p.value)}
		if i%sampleEvery == 0 {
			m.Metadata = &sampleMeta{sent: time.Now()}
		}
		select {
		case in <- m:
			return true
		case <-ctx.Done():
			return false
		}
	})
	return finishProduce(ctx, p, start, sent, acks, failed, lat)
}

// franzProducerOpts are kgo's equivalents: acks all, idempotent unless
// disabled, no compression, no linger. kgo's default partitioner hashes keys
// with murmur2 like the others. In-flight requests per broker are what each
// client allows: kgo's idempotent producer always keeps up to 5 (Sarama's
// needs 1); without idempotence both are set to 5.
func franzProducerOpts(p produceParams) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(p.addrs...),
		kgo.ClientID("kafkabench"),
		kgo.DefaultProduceTopic(p.topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(0),
	}
	if !p.idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5))
	}
	return opts
}

func produceFranz(ctx context.Context, p produceParams) (roundResult, error) {
	cl, err := kgo.NewClient(franzProducerOpts(p)...)
	if err != nil {
		return roundResult{}, err
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		return roundResult{}, err
	}
	acks, failed, lat := newCounter(), new(atomic.Int64), new(sampler)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
		acks.add(1)
	}
	start := time.Now()
	sent := sendLoop(p, start, func(i int) bool {
		r := &kgo.Record{Key: p.keys[i%len(p.keys)], Value: p.value}
		if i%sampleEvery == 0 {
			t := time.Now()
			cl.Produce(ctx, r, func(r *kgo.Record, err error) { lat.add(time.Since(t)); promise(r, err) })
		} else {
			cl.Produce(ctx, r, promise)
		}
		return ctx.Err() == nil
	})
	return finishProduce(ctx, p, start, sent, acks, failed, lat)
}
