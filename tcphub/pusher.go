package tcphub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/IBM/sarama"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// PusherConfig configures a Pusher. BrokerAddrs and Producer are required.
type PusherConfig struct {
	// BrokerAddrs are the Kafka bootstrap brokers. Required.
	BrokerAddrs []string
	// Producer writes the pushes. Required; the Pusher does not close it.
	Producer *kafka.Producer
	// PresenceTopic is the gateways' presence topic. Default
	// "tcphub.presence".
	PresenceTopic string
	// KafkaVersion, ClientID and Security configure the presence
	// consumer. Defaults "3.6.0", "tcphub-pusher", plaintext.
	KafkaVersion string
	ClientID     string
	Security     *kafka.SecurityConfig
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Pusher sends pushes to devices by id from any process (typically a
// worker), without knowing which gateway instance holds each device. It
// reads the presence topic from its oldest offset into an in-memory map of
// device to instance, and produces each push to the reply topic of the
// instance that last announced the device.
//
// Presence is eventually consistent: a push sent just after a device
// moved to another instance can go to the old one and be dropped there, and
// a gateway that crashed never announced its devices offline, so Push
// sends to its (unread) reply topic until the devices reconnect elsewhere.
// Pushes are at most once.
type Pusher struct {
	cfg      PusherConfig
	log      *slog.Logger
	client   sarama.Client
	consumer sarama.Consumer
	pcs      []sarama.PartitionConsumer
	wg       sync.WaitGroup

	mu      sync.Mutex
	devices map[string]Presence // online devices only
	changed chan struct{}       // closed and replaced on every change

	closeOnce sync.Once
}

// NewPusher connects to Kafka, creates the presence topic if it is missing,
// and reads it up to its current end before returning, so that Push knows
// every device announced so far. ctx bounds all of this; on failure
// nothing is left running.
func NewPusher(ctx context.Context, cfg PusherConfig) (*Pusher, error) {
	if len(cfg.BrokerAddrs) == 0 {
		return nil, configErr("BrokerAddrs", "at least one broker address is required")
	}
	if cfg.Producer == nil {
		return nil, configErr("Producer", "required")
	}
	if cfg.PresenceTopic == "" {
		cfg.PresenceTopic = DefaultPresenceTopic
	}
	if !validTopic(cfg.PresenceTopic) {
		return nil, configErr("PresenceTopic", "%q is not a valid topic name", cfg.PresenceTopic)
	}
	if cfg.KafkaVersion == "" {
		cfg.KafkaVersion = kafka.DefaultKafkaVersion
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "tcphub-pusher"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.BrokerAddrs = append([]string(nil), cfg.BrokerAddrs...)
	scfg, err := kafka.SaramaConfig(cfg.KafkaVersion, cfg.ClientID, cfg.Security)
	if err != nil {
		return nil, err
	}
	p := &Pusher{cfg: cfg, log: cfg.Logger.With("component", "tcphub.pusher"), devices: map[string]Presence{}, changed: make(chan struct{})}
	if err := p.start(ctx, scfg); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Pusher) start(ctx context.Context, scfg *sarama.Config) error {
	// sarama.NewClient is not bounded by ctx: run it aside.
	type result struct {
		c   sarama.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := sarama.NewClient(p.cfg.BrokerAddrs, scfg)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return fmt.Errorf("tcphub: pusher connecting to %v: %w", p.cfg.BrokerAddrs, r.err)
		}
		p.client = r.c
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				_ = r.c.Close()
			}
		}()
		return fmt.Errorf("tcphub: pusher connecting: %w", ctx.Err())
	}
	if err := kafka.CreateTopic(ctx, p.cfg.BrokerAddrs, p.cfg.Security, presenceTopicSpec(p.cfg.PresenceTopic, 0)); err != nil {
		return fmt.Errorf("tcphub: pusher: %w", err)
	}
	consumer, err := sarama.NewConsumerFromClient(p.client)
	if err != nil {
		return fmt.Errorf("tcphub: pusher: %w", err)
	}
	p.consumer = consumer
	parts, err := p.client.Partitions(p.cfg.PresenceTopic)
	if err != nil {
		return fmt.Errorf("tcphub: pusher: partitions of %s: %w", p.cfg.PresenceTopic, err)
	}
	synced := make(chan struct{}, len(parts))
	for _, part := range parts {
		oldest, err := p.client.GetOffset(p.cfg.PresenceTopic, part, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("tcphub: pusher: %w", err)
		}
		end, err := p.client.GetOffset(p.cfg.PresenceTopic, part, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("tcphub: pusher: %w", err)
		}
		pc, err := consumer.ConsumePartition(p.cfg.PresenceTopic, part, oldest)
		if err != nil {
			return fmt.Errorf("tcphub: pusher: consuming %s/%d: %w", p.cfg.PresenceTopic, part, err)
		}
		p.pcs = append(p.pcs, pc)
		if end <= oldest {
			synced <- struct{}{}
			end = -1
		}
		p.wg.Add(1)
		go p.consume(pc, end, synced)
	}
	for range parts {
		select {
		case <-synced:
		case <-ctx.Done():
			return fmt.Errorf("tcphub: pusher: reading presence: %w", ctx.Err())
		}
	}
	return nil
}

// consume applies one partition's presence records, signalling synced once
// it has read up to end (the offset after the last record at start).
func (p *Pusher) consume(pc sarama.PartitionConsumer, end int64, synced chan<- struct{}) {
	defer p.wg.Done()
	for msg := range pc.Messages() {
		p.apply(msg)
		if end >= 0 && msg.Offset >= end-1 {
			synced <- struct{}{}
			end = -1
		}
	}
}

func (p *Pusher) apply(msg *sarama.ConsumerMessage) {
	if msg.Value == nil { // a tombstone
		p.update(func(m map[string]Presence) { delete(m, string(msg.Key)) })
		return
	}
	var rec Presence
	if err := json.Unmarshal(msg.Value, &rec); err != nil || rec.Device == "" {
		p.log.Warn("presence record ignored", "offset", msg.Offset, "error", err)
		return
	}
	p.update(func(m map[string]Presence) {
		if rec.Online {
			m[rec.Device] = rec
			return
		}
		// An offline record ends only the connection it names: a device
		// that reconnected (maybe on another instance) before its old
		// connection was noticed gone stays online.
		if cur, ok := m[rec.Device]; ok && cur.Conn == rec.Conn {
			delete(m, rec.Device)
		}
	})
}

func (p *Pusher) update(fn func(map[string]Presence)) {
	p.mu.Lock()
	fn(p.devices)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// Lookup returns the presence of a device known to be online.
func (p *Pusher) Lookup(deviceID string) (Presence, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rec, ok := p.devices[deviceID]
	return rec, ok
}

// WaitOnline waits until presence shows the device online, or ctx ends.
func (p *Pusher) WaitOnline(ctx context.Context, deviceID string) (Presence, error) {
	for {
		p.mu.Lock()
		rec, ok := p.devices[deviceID]
		changed := p.changed
		p.mu.Unlock()
		if ok {
			return rec, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Presence{}, fmt.Errorf("tcphub: waiting for %s to be online: %w", deviceID, ctx.Err())
		}
	}
}

// Push produces a push for the device to the reply topic of the instance
// presence names, and waits for Kafka's acknowledgement. It returns
// ErrDeviceOffline when presence shows the device offline or unknown. The
// payload goes in the frame's p field when it is JSON, else in pb (see
// WithContentType); WithMessageID sets the push id (default random).
func (p *Pusher) Push(ctx context.Context, deviceID string, payload []byte, opts ...SendOption) error {
	rec, ok := p.Lookup(deviceID)
	if !ok {
		return fmt.Errorf("%w: %s", ErrDeviceOffline, deviceID)
	}
	o := applyOptions(opts)
	id := o.messageID
	if id == "" {
		id = wire.RandomID("m-")
	}
	ct := o.contentType
	if ct == "" {
		ct = wire.DefaultContentType(payload)
	}
	headers := append([]kafka.Header{
		{Key: HeaderKind, Value: []byte(KindPush)},
		{Key: HeaderDevice, Value: []byte(deviceID)},
		{Key: HeaderConn, Value: []byte(rec.Conn)},
		{Key: HeaderMessage, Value: []byte(id)},
		{Key: HeaderContentType, Value: []byte(ct)},
	}, o.headers...)
	err := p.cfg.Producer.Send(ctx, &kafka.ProducerMessage{Topic: rec.ReplyTo, Key: []byte(deviceID), Value: payload, Headers: headers})
	if err != nil {
		return fmt.Errorf("tcphub: push to %s via %s: %w", deviceID, rec.ReplyTo, err)
	}
	return nil
}

// Close stops reading presence and releases the Pusher's connections. It
// does not close the Producer.
func (p *Pusher) Close() error {
	var errs []error
	p.closeOnce.Do(func() {
		for _, pc := range p.pcs {
			if err := pc.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		p.wg.Wait()
		if p.consumer != nil {
			if err := p.consumer.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if p.client != nil {
			if err := p.client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}
