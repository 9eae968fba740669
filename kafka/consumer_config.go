package kafka

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkahub/kafkahub/internal/handling"
)

// InitialOffset is where a group with no committed offset starts reading.
type InitialOffset int8

// Initial offsets. The zero value, OffsetOldest, loses nothing: a new group
// reads what the topic already holds.
const (
	OffsetOldest InitialOffset = iota
	OffsetNewest
)

// RebalanceStrategy assigns partitions to the members of a group.
type RebalanceStrategy string

// Rebalance strategies. Range, round robin and sticky are eager: at every
// rebalance every member stops every partition, commits, and rejoins.
// Cooperative sticky (KIP-429) moves only the partitions that change owner:
// the others keep being handled through the rebalance. Every member of a
// group must use the same protocol (eager or cooperative); see
// docs/CONSUMER.md for moving a live group from one to the other.
const (
	RebalanceRange             RebalanceStrategy = "range" // default
	RebalanceRoundRobin        RebalanceStrategy = "roundrobin"
	RebalanceSticky            RebalanceStrategy = "sticky"
	RebalanceCooperativeSticky RebalanceStrategy = "cooperative-sticky"
)

// Consumer defaults, applied to zero-valued fields of ConsumerGroupConfig.
const (
	DefaultNumWorkers          = 1
	DefaultBatchSize           = 1
	DefaultBatchWaitTime       = 200 * time.Millisecond
	DefaultSessionTimeout      = 10 * time.Second
	DefaultHeartbeatInterval   = time.Second
	DefaultRebalanceTimeout    = 60 * time.Second
	DefaultCommitInterval      = time.Second
	DefaultHandlerRetries      = 3
	DefaultHandlerRetryBackoff = 100 * time.Millisecond
	DefaultMaxHandlerBackoff   = handling.MaxBackoff
	DefaultUpstreamBufferSize  = 0
)

// ConsumerGroupConfig configures a ConsumerGroup. BrokerAddrs, Topics and
// GroupName are required; every other field has the documented default when
// left zero. NewConsumerGroup copies the config.
type ConsumerGroupConfig struct {
	// BrokerAddrs are the bootstrap brokers, host:port. Required.
	BrokerAddrs []string
	// Topics to consume. Required, at least one.
	Topics []string
	// GroupName is the consumer group id. Required.
	GroupName string

	// Engine is the client library beneath: EngineSarama or EngineFranz.
	// Default: the KAFKAHUB_ENGINE environment variable (EnvEngine), else
	// EngineSarama.
	Engine Engine

	// KafkaVersion is the protocol version to speak. Default "3.6.0".
	KafkaVersion string
	// ClientID identifies the client to the brokers. Default "kafkahub".
	ClientID string
	// InitialOffset applies when the group has no committed offset for a
	// partition. Default OffsetOldest.
	InitialOffset InitialOffset

	// NumWorkers is how many handler calls may run at once. Messages of
	// one partition are handled one after another, in order; different
	// partitions in parallel, up to NumWorkers. Default 1.
	NumWorkers int
	// BatchSize is the largest batch given to a BatchHandler. Default 1.
	BatchSize int
	// BatchWaitTime is how long a BatchHandler batch may wait for more
	// messages, counted from its first message. Default 200 ms.
	BatchWaitTime time.Duration

	// SessionTimeout, HeartbeatInterval and RebalanceTimeout are the group
	// membership timings. Defaults 10 s, 1 s and 60 s. Members learn of a
	// rebalance at their next heartbeat, so a partition that moves waits
	// up to about one HeartbeatInterval (docs/CONSUMER.md has the
	// measurements behind the 1 s default). With the cooperative protocol
	// the Sarama engine heartbeats at half the interval, because a move
	// takes two rounds; franz-go heartbeats once 500 ms into each round.
	// A handler must return within RebalanceTimeout of its context being
	// cancelled.
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	RebalanceTimeout  time.Duration
	// RebalanceStrategy. Default RebalanceRange (docs/CONSUMER.md says why,
	// and when to choose RebalanceCooperativeSticky).
	RebalanceStrategy RebalanceStrategy
	// RebalanceFallback is a second strategy offered to the group, for
	// moving a live group from one strategy to another in two rolling
	// restarts (docs/CONSUMER.md). While any offered strategy is eager the
	// member speaks the eager protocol. Default "" (none).
	RebalanceFallback RebalanceStrategy
	// GroupInstanceID, when set, makes this member static (KIP-345): a
	// member that leaves and comes back with the same id within
	// SessionTimeout gets its partitions back without a rebalance. Each
	// member of a group needs its own id (a pod name, a host name). With
	// it set, Stop and Close do not leave the group: the partitions wait
	// for the member until SessionTimeout, then move. Default "" (dynamic
	// membership).
	GroupInstanceID string

	// OnAssigned is called with the partitions a rebalance gives this
	// member, before any of their messages is handled. OnRevoked is called
	// with the partitions taken away, after their handlers have returned
	// and their offsets are committed, before the next owner gets them.
	// Both run on the engine's rebalance goroutine, never concurrently
	// with each other, and hold up the rebalance while they run: return
	// quickly. A panic is recovered and logged. Default nil.
	OnAssigned RebalanceCallback
	OnRevoked  RebalanceCallback
	// CommitInterval is how often marked offsets are committed. Offsets
	// are also committed at every rebalance, on Stop and on Close.
	// Default 1 s.
	CommitInterval time.Duration

	// HandlerRetries is how many times a failed handler call (an error or
	// a panic) is retried, with backoff doubling from HandlerRetryBackoff
	// (default 100 ms) up to 10 s. Default 3; -1 means no retry. After the
	// last retry the message goes to DeadLetterTopic if set; otherwise it
	// is skipped. Either way it is committed and reported on Errors as a
	// *HandlerError. A message whose handler was interrupted by a
	// rebalance, Stop or Close is never committed: the next owner gets it.
	HandlerRetries      int
	HandlerRetryBackoff time.Duration
	// DeadLetterTopic receives messages that still fail after the retries,
	// with their key, value and headers plus the kafkahub.dlt.* headers.
	// A message is committed only once the dead-letter topic has it.
	DeadLetterTopic string

	// UpstreamBufferSize is the capacity of the Upstream channel. Default 0.
	UpstreamBufferSize int
	// ErrorsBufferSize is the capacity of the Errors channel; errors that do
	// not fit are logged and dropped (see DroppedErrors). Default 256.
	ErrorsBufferSize int

	// MinRetryPeriod and MaxRetryPeriod bound the backoff between
	// initialisation attempts and between failed attempts to join the
	// group. Defaults 200 ms and 30 s.
	MinRetryPeriod time.Duration
	MaxRetryPeriod time.Duration
	// DialTimeout bounds each connection attempt. Default 10 s.
	DialTimeout time.Duration
	// MinBrokersHealthy is how many brokers must answer for Checker to
	// report anything better than CRITICAL. Default 1.
	MinBrokersHealthy int

	// TraceHeader is the header whose value becomes the trace id of the
	// handler's context (see TraceID). Default "trace-id".
	TraceHeader string

	// Telemetry sets tracing and metrics; Hooks adds instrumentation of
	// your own (docs/OBSERVABILITY.md). Default: traces through the
	// OpenTelemetry globals, no metrics, no hooks.
	Telemetry Telemetry
	Hooks     []ConsumerHooks

	// SecurityConfig sets TLS and SASL. Nil: plaintext.
	SecurityConfig *SecurityConfig
	// Logger receives the consumer's logs. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns a copy of the config with every zero field set to its
// documented default: the settings a consumer built from it really uses.
func (c ConsumerGroupConfig) WithDefaults() ConsumerGroupConfig { return c.withDefaults() }

func (c ConsumerGroupConfig) withDefaults() ConsumerGroupConfig {
	c.BrokerAddrs = append([]string(nil), c.BrokerAddrs...)
	c.Topics = append([]string(nil), c.Topics...)
	c.Hooks = append([]ConsumerHooks(nil), c.Hooks...)
	c.Engine = orDefault(c.Engine, defaultEngine())
	c.KafkaVersion = orDefault(c.KafkaVersion, DefaultKafkaVersion)
	c.ClientID = orDefault(c.ClientID, DefaultClientID)
	c.NumWorkers = orDefault(c.NumWorkers, DefaultNumWorkers)
	c.BatchSize = orDefault(c.BatchSize, DefaultBatchSize)
	c.BatchWaitTime = orDefault(c.BatchWaitTime, DefaultBatchWaitTime)
	c.SessionTimeout = orDefault(c.SessionTimeout, DefaultSessionTimeout)
	c.HeartbeatInterval = orDefault(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.RebalanceTimeout = orDefault(c.RebalanceTimeout, DefaultRebalanceTimeout)
	c.RebalanceStrategy = orDefault(c.RebalanceStrategy, RebalanceRange)
	c.CommitInterval = orDefault(c.CommitInterval, DefaultCommitInterval)
	c.HandlerRetries = orDefault(c.HandlerRetries, DefaultHandlerRetries)
	c.HandlerRetryBackoff = orDefault(c.HandlerRetryBackoff, DefaultHandlerRetryBackoff)
	c.ErrorsBufferSize = orDefault(c.ErrorsBufferSize, DefaultErrorsBufferSize)
	c.MinRetryPeriod = orDefault(c.MinRetryPeriod, DefaultMinRetryPeriod)
	c.MaxRetryPeriod = orDefault(c.MaxRetryPeriod, DefaultMaxRetryPeriod)
	c.DialTimeout = orDefault(c.DialTimeout, DefaultDialTimeout)
	c.MinBrokersHealthy = orDefault(c.MinBrokersHealthy, DefaultMinBrokersHealthy)
	c.TraceHeader = orDefault(c.TraceHeader, DefaultTraceHeader)
	if c.SecurityConfig != nil {
		sec := *c.SecurityConfig
		c.SecurityConfig = &sec
	}
	c.Logger = loggerOrDefault(c.Logger)
	return c
}

// Validate reports the first invalid field as a *ConfigError (which matches
// ErrInvalidConfig). Zero fields are valid: they take their defaults.
func (c *ConsumerGroupConfig) Validate() error {
	if c == nil {
		return configErr("ConsumerGroupConfig", "is nil")
	}
	d := c.withDefaults()
	if err := validateEngine(d.Engine); err != nil {
		return err
	}
	if err := validateCommon(d.BrokerAddrs, d.MinRetryPeriod, d.MaxRetryPeriod, d.MinBrokersHealthy); err != nil {
		return err
	}
	if len(d.Topics) == 0 {
		return configErr("Topics", "at least one topic is required")
	}
	seen := map[string]bool{}
	for i, t := range d.Topics {
		if t == "" {
			return configErr("Topics", "topic %d is empty", i)
		}
		if seen[t] {
			return configErr("Topics", "topic %q is listed twice", t)
		}
		seen[t] = true
	}
	if d.GroupName == "" {
		return configErr("GroupName", "is required")
	}
	if d.NumWorkers < 1 {
		return configErr("NumWorkers", "must be at least 1, got %d", d.NumWorkers)
	}
	if d.BatchSize < 1 {
		return configErr("BatchSize", "must be at least 1, got %d", d.BatchSize)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"BatchWaitTime", d.BatchWaitTime}, {"SessionTimeout", d.SessionTimeout}, {"HeartbeatInterval", d.HeartbeatInterval},
		{"RebalanceTimeout", d.RebalanceTimeout}, {"CommitInterval", d.CommitInterval},
		{"HandlerRetryBackoff", d.HandlerRetryBackoff}, {"DialTimeout", d.DialTimeout}} {
		if f.v <= 0 {
			return configErr(f.name, "must be positive, got %v", f.v)
		}
	}
	if d.HeartbeatInterval >= d.SessionTimeout {
		return configErr("HeartbeatInterval", "must be less than SessionTimeout (%v), got %v", d.SessionTimeout, d.HeartbeatInterval)
	}
	if d.HandlerRetries < -1 {
		return configErr("HandlerRetries", "must be -1 (no retry) or more, got %d", d.HandlerRetries)
	}
	if d.InitialOffset != OffsetOldest && d.InitialOffset != OffsetNewest {
		return configErr("InitialOffset", "unknown value %d", d.InitialOffset)
	}
	switch d.RebalanceStrategy {
	case RebalanceRange, RebalanceRoundRobin, RebalanceSticky, RebalanceCooperativeSticky:
	default:
		return configErr("RebalanceStrategy", "unknown strategy %q (want range, roundrobin, sticky or cooperative-sticky)", d.RebalanceStrategy)
	}
	switch d.RebalanceFallback {
	case "", RebalanceRange, RebalanceRoundRobin, RebalanceSticky, RebalanceCooperativeSticky:
		if d.RebalanceFallback == d.RebalanceStrategy {
			return configErr("RebalanceFallback", "is the RebalanceStrategy itself (%q)", d.RebalanceFallback)
		}
	default:
		return configErr("RebalanceFallback", "unknown strategy %q (want range, roundrobin, sticky or cooperative-sticky)", d.RebalanceFallback)
	}
	if seen[d.DeadLetterTopic] {
		return configErr("DeadLetterTopic", "%q is also consumed: failures would loop", d.DeadLetterTopic)
	}
	if d.UpstreamBufferSize < 0 {
		return configErr("UpstreamBufferSize", "must not be negative, got %d", d.UpstreamBufferSize)
	}
	if d.ErrorsBufferSize < 0 {
		return configErr("ErrorsBufferSize", "must not be negative, got %d", d.ErrorsBufferSize)
	}
	if err := d.SecurityConfig.Validate(); err != nil {
		return err
	}
	_, err := d.saramaConfig()
	return err
}

func (c ConsumerGroupConfig) saramaConfig() (*sarama.Config, error) {
	s, err := newSaramaConfig(c.KafkaVersion, c.ClientID, c.DialTimeout, c.SecurityConfig)
	if err != nil {
		return nil, err
	}
	s.Consumer.Return.Errors = true
	s.Consumer.Offsets.Initial = sarama.OffsetOldest
	if c.InitialOffset == OffsetNewest {
		s.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	// Marking is cheap; Sarama commits what was marked every interval and
	// when a session ends.
	s.Consumer.Offsets.AutoCommit.Enable = true
	s.Consumer.Offsets.AutoCommit.Interval = c.CommitInterval
	s.Consumer.Group.Session.Timeout = c.SessionTimeout
	s.Consumer.Group.Heartbeat.Interval = c.HeartbeatInterval
	if c.cooperative() {
		// A cooperative rebalance that moves a partition takes two rounds:
		// the second starts when the old owner has revoked it and rejoins,
		// and the other members learn of it at their next heartbeat. At the
		// full interval a moved partition waited 1.2 intervals (a heartbeat
		// plus the round); franz-go heartbeats once 500 ms into every
		// round for the same reason. Half the interval costs one more small
		// request per interval per member.
		s.Consumer.Group.Heartbeat.Interval = c.HeartbeatInterval / 2
	}
	s.Consumer.Group.Rebalance.Timeout = c.RebalanceTimeout
	s.Consumer.Group.InstanceId = c.GroupInstanceID
	s.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{saramaStrategy(c.RebalanceStrategy)}
	if c.RebalanceFallback != "" {
		s.Consumer.Group.Rebalance.GroupStrategies = append(s.Consumer.Group.Rebalance.GroupStrategies, saramaStrategy(c.RebalanceFallback))
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return s, nil
}

func saramaStrategy(r RebalanceStrategy) sarama.BalanceStrategy {
	switch r {
	case RebalanceRoundRobin:
		return sarama.NewBalanceStrategyRoundRobin()
	case RebalanceSticky:
		return sarama.NewBalanceStrategySticky()
	case RebalanceCooperativeSticky:
		return sarama.NewBalanceStrategyCooperativeSticky()
	default:
		return sarama.NewBalanceStrategyRange()
	}
}

// cooperative reports whether the member speaks the cooperative protocol:
// only when every strategy it offers is cooperative.
func (c ConsumerGroupConfig) cooperative() bool {
	return c.RebalanceStrategy == RebalanceCooperativeSticky &&
		(c.RebalanceFallback == "" || c.RebalanceFallback == RebalanceCooperativeSticky)
}
