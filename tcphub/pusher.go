package tcphub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// PusherConfig configures a Pusher. BrokerAddrs and Producer are required.
type PusherConfig struct {
	// BrokerAddrs are the Kafka bootstrap brokers. Required.
	BrokerAddrs []string
	// Producer writes the pushes: the service's own producer, or a
	// kafkatest fake or mock in tests. Required; the Pusher does not close
	// it.
	Producer kafka.IProducer
	// PresenceTopic is the gateways' presence topic. Default
	// "tcphub.presence".
	PresenceTopic string
	// CreateTopics lets NewPusher create the presence topic (1 partition,
	// compacted) when it is missing. False: it must exist (a gateway with
	// CreateTopics creates it), else NewPusher fails with an error wrapping
	// ErrTopicMissing.
	CreateTopics bool
	// KafkaVersion, ClientID and Security configure the presence topic's
	// reader. Defaults "3.6.0", "tcphub-pusher", plaintext.
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
	presence *kafka.Reader
	wg       sync.WaitGroup // the goroutine applying presence records

	mu      sync.Mutex
	devices map[string]Presence // online devices only
	changed chan struct{}       // closed and replaced on every change

	closeOnce sync.Once
}

// NewPusher connects to Kafka, creates the presence topic if it is missing
// and CreateTopics is set, and reads it up to its current end before returning, so that Push knows
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
	rcfg := &kafka.ReaderConfig{
		BrokerAddrs: cfg.BrokerAddrs, Topic: cfg.PresenceTopic, From: kafka.ReadOldest,
		KafkaVersion: cfg.KafkaVersion, ClientID: cfg.ClientID, SecurityConfig: cfg.Security, Logger: cfg.Logger,
	}
	if err := rcfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pusher{cfg: cfg, log: cfg.Logger.With("component", "tcphub.pusher"), devices: map[string]Presence{}, changed: make(chan struct{})}
	if cfg.CreateTopics {
		if err := kafka.CreateTopic(ctx, cfg.BrokerAddrs, cfg.Security, presenceTopicSpec(cfg.PresenceTopic, 0)); err != nil {
			return nil, fmt.Errorf("tcphub: pusher: %w", err)
		}
	} else {
		topics, err := kafka.ListTopics(ctx, cfg.BrokerAddrs, cfg.Security)
		if err != nil {
			return nil, fmt.Errorf("tcphub: pusher: %w", err)
		}
		if !slices.Contains(topics, cfg.PresenceTopic) {
			return nil, fmt.Errorf("tcphub: pusher: %w: %s (create it, or set PusherConfig.CreateTopics)", ErrTopicMissing, cfg.PresenceTopic)
		}
	}
	r, err := kafka.NewReader(ctx, rcfg)
	if err != nil {
		return nil, fmt.Errorf("tcphub: pusher: %w", err)
	}
	p.presence = r
	// Caught up once each partition's record at end-1 (as of the start)
	// is applied.
	pending := r.Backlog()
	synced := make(chan struct{})
	p.wg.Add(1)
	go p.consume(pending, synced)
	select {
	case <-synced:
		return p, nil
	case <-ctx.Done():
		_ = p.Close()
		return nil, fmt.Errorf("tcphub: pusher: reading presence: %w", ctx.Err())
	}
}

// consume applies presence records until Close, closing synced once the
// records present at start (pending: partition to end offset) are applied.
func (p *Pusher) consume(pending map[int32]int64, synced chan<- struct{}) {
	defer p.wg.Done()
	if len(pending) == 0 {
		close(synced)
		synced = nil
	}
	for msg := range p.presence.Messages() {
		p.apply(msg)
		if end, ok := pending[msg.Partition()]; ok && msg.Offset() >= end-1 {
			delete(pending, msg.Partition())
			if len(pending) == 0 && synced != nil {
				close(synced)
				synced = nil
			}
		}
	}
}

func (p *Pusher) apply(msg kafka.Message) {
	if msg.Value() == nil { // a tombstone
		p.update(func(m map[string]Presence) { delete(m, string(msg.Key())) })
		return
	}
	var rec Presence
	if err := json.Unmarshal(msg.Value(), &rec); err != nil || rec.Device == "" {
		p.log.Warn("presence record ignored", "offset", msg.Offset(), "error", err)
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
// does not close the Producer. It is idempotent.
func (p *Pusher) Close() error {
	var err error
	p.closeOnce.Do(func() {
		err = p.presence.Close()
		p.wg.Wait()
	})
	return err
}
