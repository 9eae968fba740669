package tcphub

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// Defaults applied to zero-valued fields of Config. They are constants, so
// no caller can change them for everyone.
const (
	DefaultAddr                  = ":7400"
	DefaultReplyTopicPrefix      = "tcphub.reply."
	DefaultPresenceTopic         = "tcphub.presence"
	DefaultHandshakeTimeout      = 10 * time.Second
	DefaultHeartbeat             = 30 * time.Second
	DefaultWriteTimeout          = 10 * time.Second
	DefaultMaxFrameSize          = wire.DefaultMaxFrameSize
	DefaultMaxConnections        = 100_000
	DefaultMaxInFlight           = 32
	DefaultQueueSize             = 256
	DefaultRateLimit             = 100.0
	DefaultProduceTimeout        = 10 * time.Second
	DefaultGoodbyeDelay          = 5 * time.Second
	DefaultRetryAfter            = time.Second
	DefaultAuthFailuresPerMinute = 10
	DefaultShutdownTimeout       = 30 * time.Second

	// Limits before authentication.
	DefaultMaxHandshakes            = 1024
	DefaultMaxHandshakesPerAddress  = 32
	DefaultMaxConnectionsPerAddress = 10_000
	DefaultMaxHelloSize             = 16 << 10

	// Byte budgets (the per-connection ones scale with MaxFrameSize when it
	// is set; these are their values at the default frame size).
	DefaultMaxConnBytes   = 4 * DefaultMaxFrameSize
	DefaultMaxServerBytes = 256 << 20
	DefaultByteRate       = 4 << 20
	DefaultMaxQueueBytes  = 4 * DefaultMaxFrameSize
)

// AuthLockout chooses what failed authentications are counted against.
type AuthLockout uint8

const (
	// LockoutAddressAndDevice counts failures per (remote IP, device id):
	// a device with a bad token is refused without locking out the other
	// devices behind the same NAT address. The default.
	LockoutAddressAndDevice AuthLockout = iota
	// LockoutAddress counts failures per remote IP, whatever the device
	// id: stricter against guessing across many device ids, but one
	// misconfigured device locks out every device behind its NAT.
	LockoutAddress
)

// ConnInfo describes a connection to the lifecycle hooks. DeviceID is empty
// until the device has authenticated.
type ConnInfo struct {
	// ID is the connection id, the welcome's sid and the tcphub.conn header.
	ID string
	// DeviceID is the authenticated device id.
	DeviceID string
	// RemoteAddr is the peer's address.
	RemoteAddr string
	// Client is the hello's cli field, for logs.
	Client string
	// ConnectedAt is when the connection was accepted.
	ConnectedAt time.Time
}

// Config configures a Server. BrokerAddrs, RequestTopic and Authenticator
// are required; every other field has the documented default when left zero.
// NewServer copies the config.
type Config struct {
	// BrokerAddrs are the Kafka bootstrap brokers, host:port. Required.
	BrokerAddrs []string
	// RequestTopic receives one record per device request. Required.
	RequestTopic string
	// Routes maps a request's route (the frame's to field) to a topic.
	// Requests naming a route not in the map are refused with not_found.
	// Nil: only the default route (RequestTopic).
	Routes map[string]string
	// Producer writes the requests and presence records: the service's own
	// producer, a kafkatest fake in tests. The server hands it records with
	// OnDelivery and acks a request when that reports success, so its
	// settings decide what an ack means; keep the defaults (AcksAll,
	// idempotent) for the guarantees of docs/GATEWAY.md. The server
	// initialises it in Start and never closes it. Nil: the server builds
	// one from BrokerAddrs, KafkaVersion, ClientID and Security, and closes
	// it on Shutdown.
	Producer kafka.IProducer
	// KafkaVersion is the Kafka protocol version. Default "3.6.0".
	KafkaVersion string
	// ClientID identifies the gateway to the brokers. Default
	// "tcphub-" + InstanceID.
	ClientID string
	// Security sets TLS and SASL towards Kafka. Nil: plaintext.
	Security *kafka.SecurityConfig

	// InstanceID names this gateway instance; it must be unique among the
	// running instances and is part of the reply topic's name, so only
	// letters, digits, '.', '_' and '-'. It should stay the same across
	// restarts, so that a restart reuses the instance's reply topic instead
	// of leaving one behind. Default: the HOSTNAME environment variable (a
	// Kubernetes pod's name, stable across restarts in a StatefulSet), else
	// the host name, with every other byte replaced by '-' and cut to 128
	// bytes (see DefaultInstanceID). Set it when several gateways share a
	// host name. RetireInstance removes a retired instance's topic.
	InstanceID string
	// ReplyTopicPrefix + InstanceID is this instance's reply topic.
	// Default "tcphub.reply.".
	ReplyTopicPrefix string
	// CreateTopics lets Start create the topics the gateway reads and
	// writes besides the request topics when they are missing: the reply
	// topic (1 partition) and, unless DisablePresence, the presence topic
	// (1 partition, cleanup.policy=compact), with ReplicationFactor. False:
	// they must exist, and Start fails with an error wrapping
	// ErrTopicMissing naming them. Request topics are never created.
	CreateTopics bool
	// PresenceTopic is the compacted topic where the gateway publishes which
	// instance holds each device. Default "tcphub.presence".
	PresenceTopic string
	// DisablePresence turns presence publishing off (Pusher then finds no
	// device).
	DisablePresence bool
	// ReplicationFactor of the topics the gateway creates (CreateTopics).
	// Default: 3, or the number of brokers when there are fewer.
	ReplicationFactor int16
	// ProduceTimeout bounds the wait for Kafka's acknowledgement of a
	// request, counted from its arrival; past it the device gets
	// unavailable. Default 10 s.
	ProduceTimeout time.Duration

	// Addr is the listen address of ListenAndServe. Default ":7400".
	Addr string
	// TLSConfig, when set, makes the gateway speak TLS. Set ClientAuth
	// (tls.RequireAndVerifyClientCert and ClientCAs) for mutual TLS; the
	// Authenticator then sees the client's certificates.
	TLSConfig *tls.Config
	// Authenticator checks each hello. Required: use HMACAuthenticator,
	// ClientCertAuthenticator, or AllowAll for tests.
	Authenticator Authenticator
	// AuthFailuresPerMinute is how many failed authentications one remote
	// IP (with AuthLockout LockoutAddress) or one device id from one remote
	// IP (the default) may have per minute, a token bucket of that size;
	// beyond it hellos are refused without being checked, with after_ms
	// saying when the next attempt will be checked. Default 10; negative:
	// no limit.
	AuthFailuresPerMinute int
	// AuthLockout is what AuthFailuresPerMinute counts against. Default
	// LockoutAddressAndDevice.
	AuthLockout AuthLockout

	// HandshakeTimeout bounds the time from accept (including TLS) to a
	// valid, authenticated hello. Default 10 s.
	HandshakeTimeout time.Duration
	// Heartbeat is the hb_ms announced in the welcome: devices send a frame
	// at least this often, and a connection silent for twice as long is
	// closed. Default 30 s.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a socket; a device that does not
	// read for that long is disconnected. Default 10 s.
	WriteTimeout time.Duration
	// MaxFrameSize is the largest envelope accepted, announced in the
	// welcome as max_frame. Default 1 MiB.
	MaxFrameSize int
	// MaxConnections is the most open connections; beyond it a new
	// connection gets an error frame (unavailable, after_ms) and is closed.
	// Default 100,000.
	MaxConnections int
	// MaxHandshakes is the most connections accepted and not yet welcomed
	// (TLS handshake and hello); beyond it new connections are refused
	// (unavailable with after_ms on plain TCP, a bare close with TLS), so
	// stalled sockets cannot take the connection slots of real devices.
	// Default 1024, or half of MaxConnections when that is less.
	MaxHandshakes int
	// MaxHandshakesPerAddress is the most connections not yet welcomed
	// from one remote IP; beyond it that address's new connections are
	// refused like beyond MaxHandshakes. A device completes its handshake
	// in a round trip or two, so even many devices behind one NAT rarely
	// have more than a few at once. Default 32; negative: no limit.
	MaxHandshakesPerAddress int
	// MaxConnectionsPerAddress is the most open connections from one
	// remote IP, welcomed or not. Raise it for large NATs (a carrier NAT
	// can hide thousands of devices behind one address). Default 10,000;
	// negative: no limit.
	MaxConnectionsPerAddress int
	// MaxHelloSize is the largest frame accepted before the welcome (a
	// canonically encoded hello with the longest fields is under 9 KiB); a
	// larger one gets too_large before its body is read. Default 16 KiB;
	// at most MaxFrameSize.
	MaxHelloSize int
	// MaxConnBytes bounds the bytes one connection holds on the way in:
	// the payloads of its requests not yet answered plus the frame being
	// read. The reader stops reading (TCP pushes back on the device) until
	// answers free enough. Default 4 × MaxFrameSize; at least MaxFrameSize.
	MaxConnBytes int
	// MaxServerBytes bounds the same bytes over all connections: a reader
	// that would exceed it waits, so a fleet pipelining large frames
	// back-pressures instead of growing the heap. Default 256 MiB; at
	// least MaxConnBytes.
	MaxServerBytes int64
	// ByteRate is the sustained bytes per second read from one connection
	// (a token bucket of MaxConnBytes bytes); a faster device is read more
	// slowly. Default 4 MiB/s; negative: no limit.
	ByteRate float64
	// MaxQueueBytes bounds the bytes of frames waiting to be written to one
	// socket, like QueueSize bounds their number: beyond either the device
	// is a slow consumer. A single frame larger than it is still queued
	// when the queue is empty. Default 4 × MaxFrameSize.
	MaxQueueBytes int
	// MaxInFlight is how many requests a device may have without ack or
	// error (max_inflight); more get too_many_in_flight. That many of a
	// device's records may be with the producer at once, handed over in
	// arrival order (which the idempotent producer keeps); their acks go
	// out in the same order. Default 32.
	MaxInFlight int
	// QueueSize bounds the frames waiting to be written to one socket;
	// when it is full the device is a slow consumer and is disconnected.
	// Default 256.
	QueueSize int
	// RateLimit is the sustained requests per second allowed to one
	// connection (a token bucket); excess requests get rate_limited.
	// Default 100; negative: no limit.
	RateLimit float64
	// RateBurst is the token bucket's size. Default: RateLimit rounded up,
	// at least 1.
	RateBurst int
	// RetryAfter is the after_ms suggested with unavailable errors.
	// Default 1 s.
	RetryAfter time.Duration
	// GoodbyeDelay is the after_ms of the goodbye sent on Shutdown: how long
	// devices should wait before reconnecting. Default 5 s.
	GoodbyeDelay time.Duration
	// ShutdownTimeout bounds the graceful shutdown Serve performs when its
	// context is cancelled. Default 30 s.
	ShutdownTimeout time.Duration

	// OnConnect is called when a connection is accepted, OnAuthenticated
	// when its device is welcomed, and OnDisconnect once it is closed, with
	// the reason (never nil). They run on the connection's goroutine: they
	// must be quick and must not block.
	OnConnect       func(ConnInfo)
	OnAuthenticated func(ConnInfo)
	OnDisconnect    func(ConnInfo, error)

	// Telemetry sets the gateway's tracing (a server span per request, a
	// span per delivery to a device) and is given to its producer, which
	// adds its send spans and kafkahub_producer_* metrics
	// (docs/OBSERVABILITY.md). Default: the OpenTelemetry globals, which
	// record nothing until the application installs an SDK, and the
	// gateway's own registry (MetricsHandler) for the producer's metrics.
	Telemetry kafka.Telemetry

	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger

	// answered, set only by tests (export_test.go), runs on the producer's
	// delivery goroutine once a request has been answered: the moment a
	// worker's response that raced the ack reaches the gateway.
	answered func()
}

// ConfigError describes one invalid Config field. It matches
// kafka.ErrInvalidConfig with errors.Is.
type ConfigError = kafka.ConfigError

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate reports the first invalid field as a *ConfigError, which matches
// kafka.ErrInvalidConfig. Zero fields are valid: they take their defaults.
func (c *Config) Validate() error {
	if len(c.BrokerAddrs) == 0 {
		return configErr("BrokerAddrs", "at least one broker address is required")
	}
	for i, a := range c.BrokerAddrs {
		if a == "" {
			return configErr("BrokerAddrs", "address %d is empty", i)
		}
	}
	if c.RequestTopic == "" {
		return configErr("RequestTopic", "required")
	}
	if !validTopic(c.RequestTopic) {
		return configErr("RequestTopic", "%q is not a valid topic name", c.RequestTopic)
	}
	for route, topic := range c.Routes {
		if route == "" || len(route) > wire.MaxIDLen {
			return configErr("Routes", "route %q must be 1 to %d bytes", route, wire.MaxIDLen)
		}
		if !validTopic(topic) {
			return configErr("Routes", "route %q: %q is not a valid topic name", route, topic)
		}
	}
	if err := c.checkInternalTopics(); err != nil {
		return err
	}
	if c.InstanceID != "" && (!topicName.MatchString(c.InstanceID) || len(c.InstanceID) > wire.MaxIDLen) {
		return configErr("InstanceID", "%q: use 1 to %d letters, digits, '.', '_' or '-'", c.InstanceID, wire.MaxIDLen)
	}
	if c.ReplyTopicPrefix != "" && !topicName.MatchString(c.ReplyTopicPrefix) {
		return configErr("ReplyTopicPrefix", "%q: use letters, digits, '.', '_' or '-'", c.ReplyTopicPrefix)
	}
	if c.PresenceTopic != "" && !validTopic(c.PresenceTopic) {
		return configErr("PresenceTopic", "%q is not a valid topic name", c.PresenceTopic)
	}
	if c.Authenticator == nil {
		return configErr("Authenticator", "required (HMACAuthenticator, ClientCertAuthenticator, or AllowAll for tests)")
	}
	if err := c.Security.Validate(); err != nil {
		return err
	}
	durations := []struct {
		name string
		d    time.Duration
	}{
		{"ProduceTimeout", c.ProduceTimeout}, {"HandshakeTimeout", c.HandshakeTimeout},
		{"Heartbeat", c.Heartbeat}, {"WriteTimeout", c.WriteTimeout}, {"RetryAfter", c.RetryAfter},
		{"GoodbyeDelay", c.GoodbyeDelay}, {"ShutdownTimeout", c.ShutdownTimeout},
	}
	for _, d := range durations {
		if d.d < 0 {
			return configErr(d.name, "must not be negative, got %v", d.d)
		}
	}
	if c.Heartbeat > 0 && c.Heartbeat < time.Millisecond {
		return configErr("Heartbeat", "must be at least 1ms, got %v", c.Heartbeat)
	}
	ints := []struct {
		name string
		n    int
	}{
		{"MaxFrameSize", c.MaxFrameSize}, {"MaxConnections", c.MaxConnections},
		{"MaxInFlight", c.MaxInFlight}, {"QueueSize", c.QueueSize}, {"RateBurst", c.RateBurst},
		{"MaxHandshakes", c.MaxHandshakes}, {"MaxHelloSize", c.MaxHelloSize},
		{"MaxConnBytes", c.MaxConnBytes}, {"MaxQueueBytes", c.MaxQueueBytes},
	}
	for _, x := range ints {
		if x.n < 0 {
			return configErr(x.name, "must not be negative, got %d", x.n)
		}
	}
	if c.MaxFrameSize > 1<<31-1 {
		return configErr("MaxFrameSize", "must fit in 31 bits, got %d", c.MaxFrameSize)
	}
	if c.ReplicationFactor < 0 {
		return configErr("ReplicationFactor", "must not be negative, got %d", c.ReplicationFactor)
	}
	if c.AuthLockout > LockoutAddress {
		return configErr("AuthLockout", "unknown value %d", c.AuthLockout)
	}
	frame := orDefault(c.MaxFrameSize, DefaultMaxFrameSize)
	if c.MaxHelloSize > frame {
		return configErr("MaxHelloSize", "must not exceed MaxFrameSize (%d), got %d", frame, c.MaxHelloSize)
	}
	if c.MaxHelloSize != 0 && c.MaxHelloSize < minHelloSize {
		return configErr("MaxHelloSize", "must be at least %d bytes, got %d", minHelloSize, c.MaxHelloSize)
	}
	if c.MaxConnBytes != 0 && c.MaxConnBytes < frame {
		return configErr("MaxConnBytes", "must be at least MaxFrameSize (%d), got %d", frame, c.MaxConnBytes)
	}
	connBytes := orDefault(c.MaxConnBytes, 4*frame)
	if c.MaxServerBytes < 0 || (c.MaxServerBytes != 0 && c.MaxServerBytes < int64(connBytes)) {
		return configErr("MaxServerBytes", "must be at least MaxConnBytes (%d), got %d", connBytes, c.MaxServerBytes)
	}
	return nil
}

// minHelloSize leaves room for a hello with the longest fields.
const minHelloSize = 1024

// checkInternalTopics refuses a request topic or route that is the
// presence topic or a reply topic (of this instance or any other): through
// it a device could forge presence or responses for other devices.
func (c *Config) checkInternalTopics() error {
	presence := orDefault(c.PresenceTopic, DefaultPresenceTopic)
	prefix := orDefault(c.ReplyTopicPrefix, DefaultReplyTopicPrefix)
	internal := func(topic string) string {
		switch {
		case topic == presence:
			return "the presence topic"
		case strings.HasPrefix(topic, prefix):
			return "a reply topic (prefix " + prefix + ")"
		}
		return ""
	}
	if what := internal(c.RequestTopic); what != "" {
		return configErr("RequestTopic", "%q is %s", c.RequestTopic, what)
	}
	for route, topic := range c.Routes {
		if what := internal(topic); what != "" {
			return configErr("Routes", "route %q: %q is %s", route, topic, what)
		}
	}
	return nil
}

func validTopic(s string) bool {
	return len(s) <= 249 && topicName.MatchString(s) && s != "." && s != ".."
}

// withDefaults returns a copy of c with defaults applied. The copy shares no
// mutable state with c.
func (c Config) withDefaults() Config {
	c.BrokerAddrs = append([]string(nil), c.BrokerAddrs...)
	if c.Routes != nil {
		routes := make(map[string]string, len(c.Routes))
		for k, v := range c.Routes {
			routes[k] = v
		}
		c.Routes = routes
	}
	if c.KafkaVersion == "" {
		c.KafkaVersion = kafka.DefaultKafkaVersion
	}
	if c.InstanceID == "" {
		c.InstanceID = DefaultInstanceID()
	}
	if c.ClientID == "" {
		c.ClientID = "tcphub-" + c.InstanceID
	}
	if c.ReplyTopicPrefix == "" {
		c.ReplyTopicPrefix = DefaultReplyTopicPrefix
	}
	if c.PresenceTopic == "" {
		c.PresenceTopic = DefaultPresenceTopic
	}
	c.ProduceTimeout = orDefault(c.ProduceTimeout, DefaultProduceTimeout)
	c.Addr = orDefault(c.Addr, DefaultAddr)
	if c.AuthFailuresPerMinute == 0 {
		c.AuthFailuresPerMinute = DefaultAuthFailuresPerMinute
	}
	c.HandshakeTimeout = orDefault(c.HandshakeTimeout, DefaultHandshakeTimeout)
	c.Heartbeat = orDefault(c.Heartbeat, DefaultHeartbeat)
	c.WriteTimeout = orDefault(c.WriteTimeout, DefaultWriteTimeout)
	c.MaxFrameSize = orDefault(c.MaxFrameSize, DefaultMaxFrameSize)
	c.MaxConnections = orDefault(c.MaxConnections, DefaultMaxConnections)
	c.MaxInFlight = orDefault(c.MaxInFlight, DefaultMaxInFlight)
	c.QueueSize = orDefault(c.QueueSize, DefaultQueueSize)
	c.RateLimit = orDefault(c.RateLimit, DefaultRateLimit)
	if c.RateBurst == 0 {
		c.RateBurst = max(1, int(c.RateLimit+0.999999))
	}
	// Stalled handshakes may take at most half the connection slots.
	c.MaxHandshakes = orDefault(c.MaxHandshakes, max(1, min(DefaultMaxHandshakes, c.MaxConnections/2)))
	c.MaxHandshakesPerAddress = orDefault(c.MaxHandshakesPerAddress, DefaultMaxHandshakesPerAddress)
	c.MaxConnectionsPerAddress = orDefault(c.MaxConnectionsPerAddress, DefaultMaxConnectionsPerAddress)
	c.MaxHelloSize = orDefault(c.MaxHelloSize, min(DefaultMaxHelloSize, c.MaxFrameSize))
	c.MaxConnBytes = orDefault(c.MaxConnBytes, 4*c.MaxFrameSize)
	c.MaxServerBytes = orDefault(c.MaxServerBytes, max(DefaultMaxServerBytes, int64(c.MaxConnBytes)))
	c.ByteRate = orDefault(c.ByteRate, DefaultByteRate)
	c.MaxQueueBytes = orDefault(c.MaxQueueBytes, 4*c.MaxFrameSize)
	c.RetryAfter = orDefault(c.RetryAfter, DefaultRetryAfter)
	c.GoodbyeDelay = orDefault(c.GoodbyeDelay, DefaultGoodbyeDelay)
	c.ShutdownTimeout = orDefault(c.ShutdownTimeout, DefaultShutdownTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TLSConfig != nil {
		c.TLSConfig = serverTLS(c.TLSConfig)
	}
	return c
}

// serverTLS returns a copy of tc with safe defaults where tc leaves them
// unset: TLS 1.2 at least, and for TLS 1.2 only forward-secret AEAD
// suites (Go's defaults still include CBC ones). TLS 1.3 suites are not
// configurable and are all AEAD.
func serverTLS(tc *tls.Config) *tls.Config {
	tc = tc.Clone()
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	if tc.CipherSuites == nil {
		tc.CipherSuites = []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		}
	}
	return tc
}

// DefaultInstanceID is the InstanceID of a Config that names none: the
// HOSTNAME environment variable, else the host name the kernel reports,
// with every byte other than letters, digits, '.', '_' and '-' replaced by
// '-' and cut to 128 bytes; "gw" when both are empty.
func DefaultInstanceID() string {
	name := os.Getenv("HOSTNAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > wire.MaxIDLen {
		b = b[:wire.MaxIDLen]
	}
	if len(b) == 0 {
		return "gw"
	}
	return string(b)
}

// producerConfig is the config of the producer the server builds when
// Config.Producer is nil.
func (c *Config) producerConfig() *kafka.ProducerConfig {
	return &kafka.ProducerConfig{
		BrokerAddrs: c.BrokerAddrs, Topic: c.RequestTopic, KafkaVersion: c.KafkaVersion,
		ClientID: c.ClientID, SecurityConfig: c.Security, Logger: c.Logger,
		Telemetry: c.Telemetry,
	}
}

// replyReaderConfig is the config of the reader of the reply topic.
func (c *Config) replyReaderConfig(topic string) *kafka.ReaderConfig {
	return &kafka.ReaderConfig{
		BrokerAddrs: c.BrokerAddrs, Topic: topic, From: kafka.ReadNewest, KafkaVersion: c.KafkaVersion,
		ClientID: c.ClientID, SecurityConfig: c.Security, Telemetry: c.Telemetry, Logger: c.Logger,
	}
}

// replyTopic returns the reply topic of the instance: ReplyTopicPrefix +
// InstanceID.
func (c *Config) replyTopic() string { return c.ReplyTopicPrefix + c.InstanceID }

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
