package main

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkahub/kafkahub/kafka"
)

// latencyParams: produce rate records/s for limit, each carrying its send
// time, into a fresh topic a group of the same client already consumes.
type latencyParams struct {
	addrs      []string
	topic      string
	group      string
	rate       int
	limit      time.Duration
	size       int
	partitions int
}

type latencyRun func(ctx context.Context, p latencyParams) (roundResult, error)

func latencyRuns() []impl[latencyRun] {
	return []impl[latencyRun]{
		{"kafkahub", func(ctx context.Context, p latencyParams) (roundResult, error) {
			return latencyKafkahub(ctx, p, kafka.EngineSarama)
		}},
		{"kafkahub-franz", func(ctx context.Context, p latencyParams) (roundResult, error) {
			return latencyKafkahub(ctx, p, kafka.EngineFranz)
		}},
		{"sarama", latencySarama},
		{"franz-go", latencyFranz},
	}
}

// epoch is the process's monotonic time origin: values carry nanoseconds
// since epoch, so producer and consumer clocks are the same clock.
var epoch = time.Now()

func stampedValue(size int) []byte {
	v := make([]byte, max(size, 8))
	binary.LittleEndian.PutUint64(v, uint64(time.Since(epoch)))
	return v
}

func valueAge(v []byte) (time.Duration, bool) {
	if len(v) < 8 {
		return 0, false
	}
	return time.Since(epoch) - time.Duration(binary.LittleEndian.Uint64(v)), true
}

// latencies collects every produce-to-handler latency of a round.
type latencies struct {
	mu   sync.Mutex
	ds   []time.Duration
	seen *counter
}

func newLatencies(capacity int) *latencies {
	return &latencies{ds: make([]time.Duration, 0, capacity), seen: newCounter()}
}

func (l *latencies) record(v []byte) {
	if d, ok := valueAge(v); ok {
		l.mu.Lock()
		l.ds = append(l.ds, d)
		l.mu.Unlock()
	}
	l.seen.add(1)
}

// paced calls send(i) for rate records a second during limit, and returns
// the number sent and the time the first was sent.
func paced(ctx context.Context, rate int, limit time.Duration, send func(i int)) (int, time.Time) {
	total := int(float64(rate) * limit.Seconds())
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	sent := 0
	for sent < total {
		due := min(total, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; sent < due; sent++ {
			send(sent)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return sent, start
		}
	}
	return sent, start
}

// settle gives a freshly assigned consumer time to issue its first fetch, so
// the first records are not measured against the group join.
const settle = 500 * time.Millisecond

// finishLatency waits (bounded) for every record sent to be seen.
func finishLatency(ctx context.Context, p latencyParams, sent int, start time.Time, l *latencies) (roundResult, error) {
	l.seen.setTarget(int64(sent))
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	var end time.Time
	select {
	case <-l.seen.done:
		end = l.seen.end
	case <-t.C:
		end = time.Now()
	case <-ctx.Done():
		return roundResult{}, ctx.Err()
	}
	n := l.seen.n.Load()
	l.mu.Lock()
	ds := l.ds
	l.ds = nil
	l.mu.Unlock()
	return roundResult{msgs: n, bytes: n * int64(p.size), seconds: end.Sub(start).Seconds(),
		errors: int64(sent) - n, lat: ds}, nil
}

func latencyKafkahub(ctx context.Context, p latencyParams, engine kafka.Engine) (roundResult, error) {
	l := newLatencies(int(float64(p.rate) * p.limit.Seconds()))
	g, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs: p.addrs, Topics: []string{p.topic}, GroupName: p.group, Engine: engine, Logger: quietLogger,
	})
	if err != nil {
		return roundResult{}, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = g.Close(cctx)
	}()
	if err := g.RegisterHandler(ctx, func(_ context.Context, _ int, m kafka.Message) error {
		l.record(m.Value())
		return nil
	}); err != nil {
		return roundResult{}, err
	}
	g.Start()
	if err := g.StateWait(ctx, kafka.Consuming); err != nil {
		return roundResult{}, err
	}
	kp, closeIt, err := newKafkahubProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: p.addrs, Topic: p.topic, Engine: engine, Logger: quietLogger})
	if err != nil {
		return roundResult{}, err
	}
	defer closeIt()
	time.Sleep(settle)
	out := kp.Channels().Output
	keys := keysFor(1000)
	sent, start := paced(ctx, p.rate, p.limit, func(i int) {
		m := &kafka.ProducerMessage{Key: keys[i%len(keys)], Value: stampedValue(p.size)}
		select {
		case out <- m:
		case <-ctx.Done():
		}
	})
	return finishLatency(ctx, p, sent, start, l)
}

func latencySarama(ctx context.Context, p latencyParams) (roundResult, error) {
	l := newLatencies(int(float64(p.rate) * p.limit.Seconds()))
	cclient, err := sarama.NewClient(p.addrs, saramaConsumerConfig())
	if err != nil {
		return roundResult{}, err
	}
	defer cclient.Close()
	ready := make(chan struct{})
	var once sync.Once
	stop, err := saramaGroup(cclient, p.group, p.topic, saramaHandler{
		onMessage: func(m *sarama.ConsumerMessage) { l.record(m.Value) },
		ready:     func() { once.Do(func() { close(ready) }) },
	})
	if err != nil {
		return roundResult{}, err
	}
	defer stop()
	select {
	case <-ready:
	case <-ctx.Done():
		return roundResult{}, ctx.Err()
	}
	pclient, err := sarama.NewClient(p.addrs, saramaProducerConfig(true))
	if err != nil {
		return roundResult{}, err
	}
	defer pclient.Close()
	ap, err := sarama.NewAsyncProducerFromClient(pclient)
	if err != nil {
		return roundResult{}, err
	}
	var readers sync.WaitGroup
	readers.Go(func() {
		for range ap.Successes() {
		}
	})
	readers.Go(func() {
		for err := range ap.Errors() {
			logf("sarama produce: %v", err)
		}
	})
	defer func() {
		ap.AsyncClose()
		readers.Wait()
	}()
	time.Sleep(settle)
	keys := keysFor(1000)
	sent, start := paced(ctx, p.rate, p.limit, func(i int) {
		m := &sarama.ProducerMessage{Topic: p.topic, Key: sarama.ByteEncoder(keys[i%len(keys)]), Value: sarama.ByteEncoder(stampedValue(p.size))}
		select {
		case ap.Input() <- m:
		case <-ctx.Done():
		}
	})
	return finishLatency(ctx, p, sent, start, l)
}

func latencyFranz(ctx context.Context, p latencyParams) (roundResult, error) {
	l := newLatencies(int(float64(p.rate) * p.limit.Seconds()))
	ready := make(chan struct{})
	var once sync.Once
	ccl, err := kgo.NewClient(franzConsumerOpts(consumeParams{addrs: p.addrs, group: p.group, topic: p.topic},
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			once.Do(func() { close(ready) })
		}))...)
	if err != nil {
		return roundResult{}, err
	}
	pollCtx, cancelPoll := context.WithCancel(ctx)
	var poller sync.WaitGroup
	poller.Go(func() {
		for pollCtx.Err() == nil {
			fs := ccl.PollFetches(pollCtx)
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) { l.record(r.Value) })
		}
	})
	defer func() {
		cancelPoll()
		poller.Wait()
		ccl.Close()
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		return roundResult{}, ctx.Err()
	}
	pcl, err := kgo.NewClient(franzProducerOpts(produceParams{addrs: p.addrs, topic: p.topic, idempotent: true})...)
	if err != nil {
		return roundResult{}, err
	}
	defer pcl.Close()
	time.Sleep(settle)
	keys := keysFor(1000)
	sent, start := paced(ctx, p.rate, p.limit, func(i int) {
		pcl.Produce(ctx, &kgo.Record{Key: keys[i%len(keys)], Value: stampedValue(p.size)}, func(_ *kgo.Record, err error) {
			if err != nil && !errors.Is(err, context.Canceled) {
				logf("franz-go produce: %v", err)
			}
		})
	})
	return finishLatency(ctx, p, sent, start, l)
}
