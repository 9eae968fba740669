package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkahub/kafkahub/kafka"
)

// consumeParams is one consume round: a fresh group reads a topic filled
// beforehand with total records of size bytes.
type consumeParams struct {
	addrs      []string
	topic      string
	group      string
	total      int64
	size       int
	limit      time.Duration // stop after this long even if not done
	partitions int
	batch      int // BatchSize of kafkahub-batch
}

type consumer = func(ctx context.Context, p consumeParams) (roundResult, error)

func consumers() []impl[consumer] {
	out := instrumented("kafkahub-1w", func(ctx context.Context, p consumeParams, t telemetry) (roundResult, error) {
		return consumeKafkahub(ctx, p, kafka.EngineSarama, 1, false, t)
	}, telDefault, telOff, telSDK, telMetrics, telAgain)
	for _, e := range []struct {
		prefix string
		engine kafka.Engine
	}{{"kafkahub", kafka.EngineSarama}, {"kafkahub-franz", kafka.EngineFranz}} {
		if e.engine == kafka.EngineFranz {
			out = append(out, impl[consumer]{e.prefix + "-1w", func(ctx context.Context, p consumeParams) (roundResult, error) {
				return consumeKafkahub(ctx, p, e.engine, 1, false, telDefault)
			}})
		}
		out = append(out,
			impl[consumer]{e.prefix + "-Nw", func(ctx context.Context, p consumeParams) (roundResult, error) {
				return consumeKafkahub(ctx, p, e.engine, p.partitions, false, telDefault)
			}},
			impl[consumer]{e.prefix + "-batch", func(ctx context.Context, p consumeParams) (roundResult, error) {
				return consumeKafkahub(ctx, p, e.engine, 1, true, telDefault)
			}})
	}
	return append(out, impl[consumer]{"sarama", consumeSarama}, impl[consumer]{"franz-go", consumeFranz})
}

// waitConsumed waits until every record was seen or the time limit, and
// measures from start to the last record seen.
func waitConsumed(ctx context.Context, p consumeParams, start time.Time, seen *counter) (roundResult, error) {
	t := time.NewTimer(max(0, p.limit-time.Since(start)))
	defer t.Stop()
	var n int64
	var d time.Duration
	select {
	case <-seen.done:
		n, d = seen.n.Load(), seen.end.Sub(start)
	case <-t.C:
		n, d = seen.n.Load(), time.Since(start)
	case <-ctx.Done():
		return roundResult{}, fmt.Errorf("consumed %d of %d: %w", seen.n.Load(), p.total, ctx.Err())
	}
	return roundResult{msgs: n, bytes: n * int64(p.size), seconds: d.Seconds()}, nil
}

// consumeKafkahub measures a ConsumerGroup on engine with a no-op Handler on
// workers, or with a no-op BatchHandler of p.batch records, instrumented as
// t says (telemetry.go).
func consumeKafkahub(ctx context.Context, p consumeParams, engine kafka.Engine, workers int, batch bool, t telemetry) (roundResult, error) {
	cfg := &kafka.ConsumerGroupConfig{
		BrokerAddrs: p.addrs,
		Engine:      engine,
		Topics:      []string{p.topic},
		GroupName:   p.group,
		NumWorkers:  workers,
		Logger:      quietLogger,
	}
	var stop func()
	cfg.Telemetry, stop = kafkaTelemetry(t)
	defer stop()
	if batch {
		cfg.BatchSize = p.batch
		// Only the last, partial batch of each partition waits for this.
		cfg.BatchWaitTime = 20 * time.Millisecond
	}
	g, err := kafka.NewConsumerGroup(ctx, cfg)
	if err != nil {
		return roundResult{}, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := g.Close(cctx); err != nil {
			logf("closing kafkahub consumer: %v", err)
		}
	}()
	select {
	case <-g.Channels().Initialised:
	case <-ctx.Done():
		return roundResult{}, ctx.Err()
	}
	seen := newCounter()
	seen.setTarget(p.total)
	if batch {
		err = g.RegisterBatchHandler(ctx, func(_ context.Context, msgs []kafka.Message) error {
			seen.add(int64(len(msgs)))
			return nil
		})
	} else {
		err = g.RegisterHandler(ctx, func(context.Context, int, kafka.Message) error {
			seen.add(1)
			return nil
		})
	}
	if err != nil {
		return roundResult{}, err
	}
	start := time.Now()
	g.Start()
	return waitConsumed(ctx, p, start, seen)
}

// saramaConsumerConfig reproduces kafkahub's consumer settings
// (kafka/consumer_config.go) with its defaults.
func saramaConsumerConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = "kafkabench"
	c.Metadata.Full = false
	c.Metadata.AllowAutoTopicCreation = false
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = true
	c.Consumer.Offsets.AutoCommit.Interval = kafka.DefaultCommitInterval
	c.Consumer.Group.Session.Timeout = kafka.DefaultSessionTimeout
	c.Consumer.Group.Heartbeat.Interval = kafka.DefaultHeartbeatInterval
	c.Consumer.Group.Rebalance.Timeout = kafka.DefaultRebalanceTimeout
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	return c
}

// saramaHandler is the minimal correct ConsumeClaim: mark every message.
type saramaHandler struct {
	onMessage func(*sarama.ConsumerMessage)
	ready     func()
}

func (h saramaHandler) Setup(sarama.ConsumerGroupSession) error {
	if h.ready != nil {
		h.ready()
	}
	return nil
}

func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.onMessage(m)
			sess.MarkMessage(m, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}

// saramaGroup runs a Sarama consumer group until stop is called, calling
// Consume again after each rebalance as Sarama requires.
func saramaGroup(client sarama.Client, name, topic string, h saramaHandler) (stop func(), err error) {
	group, err := sarama.NewConsumerGroupFromClient(name, client)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{topic}, h); err != nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
					return
				}
				logf("sarama consume: %v", err)
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	})
	wg.Go(func() {
		for err := range group.Errors() {
			logf("sarama group: %v", err)
		}
	})
	return func() {
		cancel()
		if err := group.Close(); err != nil {
			logf("closing sarama group: %v", err)
		}
		wg.Wait()
	}, nil
}

func consumeSarama(ctx context.Context, p consumeParams) (roundResult, error) {
	// Connecting is outside the measured time, as kafkahub connects in
	// NewConsumerGroup before Start.
	client, err := sarama.NewClient(p.addrs, saramaConsumerConfig())
	if err != nil {
		return roundResult{}, err
	}
	defer client.Close()
	seen := newCounter()
	seen.setTarget(p.total)
	start := time.Now()
	stop, err := saramaGroup(client, p.group, p.topic, saramaHandler{onMessage: func(*sarama.ConsumerMessage) { seen.add(1) }})
	if err != nil {
		return roundResult{}, err
	}
	defer stop()
	return waitConsumed(ctx, p, start, seen)
}

// franzConsumerOpts: a group member reading from the start, autocommitting
// every second like the others.
func franzConsumerOpts(p consumeParams, extra ...kgo.Opt) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(p.addrs...),
		kgo.ClientID("kafkabench"),
		kgo.ConsumerGroup(p.group),
		kgo.ConsumeTopics(p.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitInterval(kafka.DefaultCommitInterval),
	}, extra...)
}

func consumeFranz(ctx context.Context, p consumeParams) (roundResult, error) {
	seen := newCounter()
	seen.setTarget(p.total)
	start := time.Now()
	cl, err := kgo.NewClient(franzConsumerOpts(p)...)
	if err != nil {
		return roundResult{}, err
	}
	defer cl.Close()
	pollCtx, cancel := context.WithDeadline(ctx, start.Add(p.limit))
	defer cancel()
	for pollCtx.Err() == nil {
		fs := cl.PollFetches(pollCtx)
		if fs.IsClientClosed() {
			break
		}
		n := int64(0)
		fs.EachRecord(func(*kgo.Record) { n++ })
		seen.add(n)
		select {
		case <-seen.done:
			cancel()
		default:
		}
	}
	return waitConsumed(ctx, p, start, seen)
}

// prefill writes the consume scenario's records with franz-go (the fastest
// here) and reports how many Kafka acknowledged.
func prefill(ctx context.Context, pp produceParams) (int64, error) {
	r, err := produceFranz(ctx, pp)
	if err != nil {
		return 0, err
	}
	if r.errors > 0 {
		return 0, fmt.Errorf("prefill: %d records failed", r.errors)
	}
	return r.msgs, nil
}
