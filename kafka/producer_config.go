package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
)

// Acks is how many replicas must have a record before Kafka acknowledges it.
type Acks int8

// Acknowledgement levels. The zero value, AcksAll, is the only one that
// survives the loss of the partition leader.
const (
	AcksAll    Acks = iota // every in-sync replica (default)
	AcksLeader             // the partition leader only
	AcksNone               // no acknowledgement: fire and forget
)

// Compression is a record batch compression codec.
type Compression string

// Compression codecs. The zero value is no compression.
const (
	CompressionNone   Compression = ""
	CompressionGzip   Compression = "gzip"
	CompressionSnappy Compression = "snappy"
	CompressionLZ4    Compression = "lz4"
	CompressionZstd   Compression = "zstd"
)

// Producer defaults, applied to zero-valued fields of ProducerConfig.
const (
	DefaultMaxMessageBytes  = 1_000_000
	DefaultRetryMax         = 10
	DefaultRetryBackoff     = 100 * time.Millisecond
	DefaultMaxRetryBackoff  = 2 * time.Second
	DefaultOutputBufferSize = 256
	DefaultErrorsBufferSize = 256
)

// ProducerConfig configures a Producer. BrokerAddrs and Topic are required;
// every other field has the documented default when left zero. NewProducer
// copies the config: changing it afterwards has no effect.
type ProducerConfig struct {
	// BrokerAddrs are the bootstrap brokers, host:port. Required.
	BrokerAddrs []string
	// Topic receives records that do not name a topic. Required.
	Topic string

	// Engine is the client library beneath: EngineSarama or EngineFranz.
	// Default: the KAFKAHUB_ENGINE environment variable (EnvEngine), else
	// EngineSarama.
	Engine Engine

	// KafkaVersion is the protocol version to speak. Default "3.6.0".
	KafkaVersion string
	// ClientID identifies the client in broker logs and quotas.
	// Default "kafkahub".
	ClientID string
	// RequiredAcks. Default AcksAll.
	RequiredAcks Acks
	// DisableIdempotence turns off the idempotent producer. Idempotence
	// (no duplicates from retries, order kept) is on by default with
	// AcksAll and always off with the other levels.
	DisableIdempotence bool
	// Compression of record batches. Default none.
	Compression Compression
	// MaxMessageBytes is the largest record accepted; larger ones fail
	// with ErrMessageTooLarge without reaching Kafka. Default 1,000,000,
	// which matches the broker's default limit.
	MaxMessageBytes int
	// FlushFrequency, FlushBytes and FlushMessages make the producer wait
	// to batch records. Default 0: send as soon as possible (records that
	// arrive while a request is in flight are still batched).
	FlushFrequency time.Duration
	FlushBytes     int
	FlushMessages  int
	// RetryMax is how many times a failed produce request is retried
	// before the records fail. Default 10.
	RetryMax int
	// RetryBackoff is the wait before the first retry; it doubles with
	// each retry up to 2 s. Default 100 ms. With the defaults a record is
	// retried for about 13 s, long enough for a leader election.
	RetryBackoff time.Duration

	// MinRetryPeriod and MaxRetryPeriod bound the exponential backoff
	// between initialisation attempts while the cluster is unreachable.
	// Defaults 200 ms and 30 s.
	MinRetryPeriod time.Duration
	MaxRetryPeriod time.Duration
	// DialTimeout bounds each connection attempt. Default 10 s.
	DialTimeout time.Duration
	// MinBrokersHealthy is how many brokers must answer for Checker to
	// report anything better than CRITICAL. Default 1.
	MinBrokersHealthy int

	// OutputBufferSize is the capacity of the Output channel. Default 256.
	OutputBufferSize int
	// ErrorsBufferSize is the capacity of the Errors channel. Errors that
	// do not fit are logged and dropped (see Producer.DroppedErrors), so
	// a user who never reads Errors never blocks the producer.
	// Default 256.
	ErrorsBufferSize int

	// TraceHeader is the header that carries the trace id of the context
	// given to Send. Default "trace-id".
	TraceHeader string
	// TraceIDFunc extracts the trace id from a context. Default TraceID
	// (set with WithTraceID); supply one to read an OpenTelemetry span or
	// your own request id. It must not panic.
	TraceIDFunc func(context.Context) string

	// Telemetry sets tracing and metrics; Hooks adds instrumentation of
	// your own (docs/OBSERVABILITY.md). Default: traces through the
	// OpenTelemetry globals, no metrics, no hooks.
	Telemetry Telemetry
	Hooks     []ProducerHooks

	// SecurityConfig sets TLS and SASL. Nil: plaintext.
	SecurityConfig *SecurityConfig
	// Logger receives the producer's logs. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns a copy of the config with every zero field set to its
// documented default: the settings a producer built from it really uses.
func (c ProducerConfig) WithDefaults() ProducerConfig { return c.withDefaults() }

func (c ProducerConfig) withDefaults() ProducerConfig {
	c.BrokerAddrs = append([]string(nil), c.BrokerAddrs...)
	c.Hooks = append([]ProducerHooks(nil), c.Hooks...)
	c.Engine = orDefault(c.Engine, defaultEngine())
	c.KafkaVersion = orDefault(c.KafkaVersion, DefaultKafkaVersion)
	c.ClientID = orDefault(c.ClientID, DefaultClientID)
	c.MaxMessageBytes = orDefault(c.MaxMessageBytes, DefaultMaxMessageBytes)
	c.RetryMax = orDefault(c.RetryMax, DefaultRetryMax)
	c.RetryBackoff = orDefault(c.RetryBackoff, DefaultRetryBackoff)
	c.MinRetryPeriod = orDefault(c.MinRetryPeriod, DefaultMinRetryPeriod)
	c.MaxRetryPeriod = orDefault(c.MaxRetryPeriod, DefaultMaxRetryPeriod)
	c.DialTimeout = orDefault(c.DialTimeout, DefaultDialTimeout)
	c.MinBrokersHealthy = orDefault(c.MinBrokersHealthy, DefaultMinBrokersHealthy)
	c.OutputBufferSize = orDefault(c.OutputBufferSize, DefaultOutputBufferSize)
	c.ErrorsBufferSize = orDefault(c.ErrorsBufferSize, DefaultErrorsBufferSize)
	c.TraceHeader = orDefault(c.TraceHeader, DefaultTraceHeader)
	if c.TraceIDFunc == nil {
		c.TraceIDFunc = TraceID
	}
	if c.SecurityConfig != nil {
		sec := *c.SecurityConfig
		c.SecurityConfig = &sec
	}
	c.Logger = loggerOrDefault(c.Logger)
	return c
}

// Validate reports the first invalid field as a *ConfigError (which matches
// ErrInvalidConfig). Zero fields are valid: they take their defaults.
func (c *ProducerConfig) Validate() error {
	if c == nil {
		return configErr("ProducerConfig", "is nil")
	}
	d := c.withDefaults()
	if err := validateEngine(d.Engine); err != nil {
		return err
	}
	if err := validateCommon(d.BrokerAddrs, d.MinRetryPeriod, d.MaxRetryPeriod, d.MinBrokersHealthy); err != nil {
		return err
	}
	if d.Topic == "" {
		return configErr("Topic", "is required")
	}
	if d.RequiredAcks < AcksAll || d.RequiredAcks > AcksNone {
		return configErr("RequiredAcks", "unknown value %d", d.RequiredAcks)
	}
	switch d.Compression {
	case CompressionNone, "none", CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd:
	default:
		return configErr("Compression", "unknown codec %q", d.Compression)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"MaxMessageBytes", d.MaxMessageBytes}, {"FlushBytes", d.FlushBytes}, {"FlushMessages", d.FlushMessages},
		{"RetryMax", d.RetryMax}, {"MinBrokersHealthy", d.MinBrokersHealthy},
		{"OutputBufferSize", d.OutputBufferSize}, {"ErrorsBufferSize", d.ErrorsBufferSize}} {
		if f.v < 0 {
			return configErr(f.name, "must not be negative, got %d", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"FlushFrequency", d.FlushFrequency}, {"RetryBackoff", d.RetryBackoff}, {"DialTimeout", d.DialTimeout}} {
		if f.v < 0 {
			return configErr(f.name, "must not be negative, got %v", f.v)
		}
	}
	if err := d.SecurityConfig.Validate(); err != nil {
		return err
	}
	_, err := d.saramaConfig()
	return err
}

func (c ProducerConfig) idempotent() bool {
	return c.RequiredAcks == AcksAll && !c.DisableIdempotence
}

// saramaConfig translates a defaulted config into Sarama's.
func (c ProducerConfig) saramaConfig() (*sarama.Config, error) {
	s, err := newSaramaConfig(c.KafkaVersion, c.ClientID, c.DialTimeout, c.SecurityConfig)
	if err != nil {
		return nil, err
	}
	p := &s.Producer
	switch c.RequiredAcks {
	case AcksAll:
		p.RequiredAcks = sarama.WaitForAll
	case AcksLeader:
		p.RequiredAcks = sarama.WaitForLocal
	case AcksNone:
		p.RequiredAcks = sarama.NoResponse
	}
	if c.idempotent() {
		p.Idempotent = true
		// Sarama's idempotent producer requires a single in-flight request
		// per broker to keep sequence numbers in order.
		s.Net.MaxOpenRequests = 1
	}
	switch c.Compression {
	case CompressionGzip:
		p.Compression = sarama.CompressionGZIP
	case CompressionSnappy:
		p.Compression = sarama.CompressionSnappy
	case CompressionLZ4:
		p.Compression = sarama.CompressionLZ4
	case CompressionZstd:
		p.Compression = sarama.CompressionZSTD
	}
	p.MaxMessageBytes = c.MaxMessageBytes
	p.Flush.Frequency = c.FlushFrequency
	p.Flush.Bytes = c.FlushBytes
	p.Flush.Messages = c.FlushMessages
	p.Retry.Max = c.RetryMax
	first := c.RetryBackoff
	p.Retry.BackoffFunc = func(retries, _ int) time.Duration {
		d := first << min(retries, 20)
		if d <= 0 || d > DefaultMaxRetryBackoff {
			return max(first, DefaultMaxRetryBackoff)
		}
		return d
	}
	p.Return.Successes = true
	p.Return.Errors = true
	p.Partitioner = newPartitioner
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return s, nil
}
