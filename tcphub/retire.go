package tcphub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
)

// RetireConfig names the instance RetireInstance retires and how to reach
// its cluster. BrokerAddrs and InstanceID are required.
type RetireConfig struct {
	// BrokerAddrs are the Kafka bootstrap brokers. Required.
	BrokerAddrs []string
	// Security sets TLS and SASL. Nil: plaintext.
	Security *kafka.SecurityConfig
	// InstanceID is the retired instance's id. Required: there is no
	// default, since the default names the host RetireInstance runs on.
	InstanceID string
	// ReplyTopicPrefix and PresenceTopic as the instance had them.
	// Defaults "tcphub.reply." and "tcphub.presence".
	ReplyTopicPrefix string
	PresenceTopic    string
	// Producer, when set, publishes an offline presence record for every
	// device presence still shows on the instance (it crashed, or its
	// last records were lost), so Pushers stop sending to it at once.
	// Nil: presence is left as it is.
	Producer kafka.IProducer
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// RetireInstance removes what a gateway instance that will not run again
// leaves in Kafka: its reply topic, with the responses and pushes nobody
// will read, and, when cfg.Producer is set, its devices' online records in
// presence. Run it after the instance has stopped for good (a scaled-down
// StatefulSet's last pods, a host taken out of service); a running instance
// with that id would lose its reply topic. Retiring an instance twice, or
// one that never ran, is harmless. ctx bounds the whole call.
func RetireInstance(ctx context.Context, cfg RetireConfig) error {
	if len(cfg.BrokerAddrs) == 0 {
		return configErr("BrokerAddrs", "at least one broker address is required")
	}
	if cfg.InstanceID == "" {
		return configErr("InstanceID", "required")
	}
	if cfg.ReplyTopicPrefix == "" {
		cfg.ReplyTopicPrefix = DefaultReplyTopicPrefix
	}
	if cfg.PresenceTopic == "" {
		cfg.PresenceTopic = DefaultPresenceTopic
	}
	if cfg.Producer != nil {
		if err := retirePresence(ctx, cfg); err != nil {
			return err
		}
	}
	topic := cfg.ReplyTopicPrefix + cfg.InstanceID
	if err := kafka.DeleteTopic(ctx, cfg.BrokerAddrs, cfg.Security, topic); err != nil {
		return fmt.Errorf("tcphub: retiring instance %s: %w", cfg.InstanceID, err)
	}
	return nil
}

// retirePresence publishes an offline record for each device presence
// shows on the instance, and waits for Kafka to have them.
func retirePresence(ctx context.Context, cfg RetireConfig) error {
	p, err := NewPusher(ctx, PusherConfig{
		BrokerAddrs: cfg.BrokerAddrs, Producer: cfg.Producer, PresenceTopic: cfg.PresenceTopic,
		Security: cfg.Security, Logger: cfg.Logger,
	})
	if errors.Is(err, ErrTopicMissing) {
		return nil // no presence: nothing names the instance
	}
	if err != nil {
		return fmt.Errorf("tcphub: retiring instance %s: %w", cfg.InstanceID, err)
	}
	defer p.Close()
	p.mu.Lock()
	var recs []Presence
	for _, rec := range p.devices {
		if rec.Instance == cfg.InstanceID {
			recs = append(recs, rec)
		}
	}
	p.mu.Unlock()
	for _, rec := range recs {
		rec.Online, rec.At = false, time.Now().UTC()
		if err := cfg.Producer.Send(ctx, presenceMessage(cfg.PresenceTopic, rec)); err != nil {
			return fmt.Errorf("tcphub: retiring instance %s: offline record of %s: %w", cfg.InstanceID, rec.Device, err)
		}
	}
	return nil
}
