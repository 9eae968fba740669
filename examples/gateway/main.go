// Command gateway runs a standalone tcphub gateway: devices on TCP (or
// TLS) port 7400, /healthz and /metrics on HTTP port 8080.
//
// Every setting is a flag with an environment variable of the same meaning;
// the flag wins. Kafka is reached through KAFKA_BROKERS and the other
// variables of kafka.ConfigFromEnv (KAFKA_SEC_PROTO, KAFKA_SASL_USER, ...),
// or -brokers. With neither it refuses to start, unless -embedded asks for
// a Kafka-protocol broker in the process (a demo: nothing is kept), so that
//
//	TCPHUB_HMAC_SECRET=0123456789abcdef0123456789abcdef go run ./examples/gateway -embedded -insecure-plaintext-tokens
//
// runs with nothing installed; examples/device talks to it.
//
// With OTEL_EXPORTER_OTLP_ENDPOINT set (e.g. http://localhost:4318), its
// spans (a server span per request, continuing a device's tp, and a span
// per delivery) are exported over OTLP; /metrics also has the gateway
// producer's kafkahub_producer_* metrics.
//
// Devices authenticate with HMAC tokens (TCPHUB_HMAC_SECRET or
// -hmac-secret-file; mint them with tcphub.NewToken or examples/token),
// or with client certificates when -tls-client-ca is set and no
// secret is. Tokens are bearer credentials, so HMAC authentication needs
// TLS (-tls-cert, -tls-key) unless -insecure-plaintext-tokens is given.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kafkahub/kafkahub/examples/internal/otlp"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
)

// env returns the variable's value, or def when it is unset.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gateway: %s=%q is not an integer\n", name, v)
			os.Exit(2)
		}
		return n
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, ok := os.LookupEnv(name); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gateway: %s=%q is not a number\n", name, v)
			os.Exit(2)
		}
		return f
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gateway: %s=%q is not a duration\n", name, v)
			os.Exit(2)
		}
		return d
	}
	return def
}

type options struct {
	listen, httpAddr                 string
	brokers                          string
	requestTopic, presenceTopic      string
	replyPrefix, instanceID          string
	createTopics                     bool
	createPartitions                 int
	tlsCert, tlsKey, tlsClientCA     string
	hmacSecretFile                   string
	insecureAllowAll                 bool
	insecurePlaintextTokens          bool
	hmacKeyID, hmacPreviousFile      string
	hmacPreviousUntil                string
	maxTokenLifetime                 time.Duration
	embedded                         bool
	heartbeat, handshake, goodbye    time.Duration
	maxConns, maxInFlight, queueSize int
	rateLimit                        float64
	logLevel                         string
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", env("TCPHUB_LISTEN", ":7400"), "device listen address (TCPHUB_LISTEN)")
	flag.StringVar(&o.httpAddr, "http", env("TCPHUB_HTTP", ":8080"), "HTTP address for /healthz and /metrics (TCPHUB_HTTP)")
	flag.StringVar(&o.brokers, "brokers", "", "Kafka brokers, comma-separated (default: KAFKA_BROKERS)")
	flag.BoolVar(&o.embedded, "embedded", false, "with no brokers configured, start an in-process Kafka-protocol broker (a demo: nothing is kept)")
	flag.StringVar(&o.requestTopic, "request-topic", env("TCPHUB_REQUEST_TOPIC", "tcphub.requests"), "topic receiving device requests (TCPHUB_REQUEST_TOPIC)")
	flag.IntVar(&o.createPartitions, "create-request-topic", envInt("TCPHUB_CREATE_REQUEST_TOPIC", 0), "create the request topic with this many partitions if missing; 0: do not (TCPHUB_CREATE_REQUEST_TOPIC)")
	flag.StringVar(&o.presenceTopic, "presence-topic", env("TCPHUB_PRESENCE_TOPIC", tcphub.DefaultPresenceTopic), "compacted presence topic (TCPHUB_PRESENCE_TOPIC)")
	flag.StringVar(&o.replyPrefix, "reply-prefix", env("TCPHUB_REPLY_PREFIX", tcphub.DefaultReplyTopicPrefix), "reply topic prefix (TCPHUB_REPLY_PREFIX)")
	flag.StringVar(&o.instanceID, "instance-id", env("TCPHUB_INSTANCE_ID", ""), "instance id, unique among running gateways and stable across restarts; default the host name (TCPHUB_INSTANCE_ID)")
	flag.BoolVar(&o.createTopics, "create-topics", true, "create this instance's reply topic and the presence topic if missing")
	flag.StringVar(&o.tlsCert, "tls-cert", env("TCPHUB_TLS_CERT", ""), "server certificate file: enables TLS (TCPHUB_TLS_CERT)")
	flag.StringVar(&o.tlsKey, "tls-key", env("TCPHUB_TLS_KEY", ""), "server key file (TCPHUB_TLS_KEY)")
	flag.StringVar(&o.tlsClientCA, "tls-client-ca", env("TCPHUB_TLS_CLIENT_CA", ""), "CA file for device certificates: requires mutual TLS (TCPHUB_TLS_CLIENT_CA)")
	flag.StringVar(&o.hmacSecretFile, "hmac-secret-file", env("TCPHUB_HMAC_SECRET_FILE", ""), "file holding the HMAC token secret (or set TCPHUB_HMAC_SECRET)")
	flag.BoolVar(&o.insecureAllowAll, "insecure-allow-all", false, "accept every device without credentials (tests only)")
	flag.StringVar(&o.hmacKeyID, "hmac-key-id", env("TCPHUB_HMAC_KEY_ID", ""), "key id of the HMAC secret, named by v2 tokens; default 0 (TCPHUB_HMAC_KEY_ID)")
	flag.StringVar(&o.hmacPreviousFile, "hmac-previous-secret-file", env("TCPHUB_HMAC_PREVIOUS_SECRET_FILE", ""), "during a rotation: file holding the previous secret as <key id>:<secret> (TCPHUB_HMAC_PREVIOUS_SECRET_FILE)")
	flag.StringVar(&o.hmacPreviousUntil, "hmac-previous-until", env("TCPHUB_HMAC_PREVIOUS_UNTIL", ""), "end of the rotation window, RFC 3339; empty: no end (TCPHUB_HMAC_PREVIOUS_UNTIL)")
	flag.DurationVar(&o.maxTokenLifetime, "max-token-lifetime", envDuration("TCPHUB_MAX_TOKEN_LIFETIME", 0), "refuse tokens expiring further away than this; 0: no maximum (TCPHUB_MAX_TOKEN_LIFETIME)")
	flag.BoolVar(&o.insecurePlaintextTokens, "insecure-plaintext-tokens", false, "allow HMAC tokens over plain TCP, where anyone on the path can replay them (tests only)")
	flag.DurationVar(&o.heartbeat, "heartbeat", envDuration("TCPHUB_HEARTBEAT", tcphub.DefaultHeartbeat), "heartbeat interval announced to devices (TCPHUB_HEARTBEAT)")
	flag.DurationVar(&o.handshake, "handshake-timeout", envDuration("TCPHUB_HANDSHAKE_TIMEOUT", tcphub.DefaultHandshakeTimeout), "handshake deadline (TCPHUB_HANDSHAKE_TIMEOUT)")
	flag.DurationVar(&o.goodbye, "goodbye-delay", envDuration("TCPHUB_GOODBYE_DELAY", tcphub.DefaultGoodbyeDelay), "reconnect delay suggested on shutdown (TCPHUB_GOODBYE_DELAY)")
	flag.IntVar(&o.maxConns, "max-connections", envInt("TCPHUB_MAX_CONNECTIONS", tcphub.DefaultMaxConnections), "most open connections (TCPHUB_MAX_CONNECTIONS)")
	flag.IntVar(&o.maxInFlight, "max-inflight", envInt("TCPHUB_MAX_INFLIGHT", tcphub.DefaultMaxInFlight), "most unacknowledged requests per device (TCPHUB_MAX_INFLIGHT)")
	flag.IntVar(&o.queueSize, "queue-size", envInt("TCPHUB_QUEUE_SIZE", tcphub.DefaultQueueSize), "outgoing frames queued per device before it is a slow consumer (TCPHUB_QUEUE_SIZE)")
	flag.Float64Var(&o.rateLimit, "rate-limit", envFloat("TCPHUB_RATE_LIMIT", tcphub.DefaultRateLimit), "requests per second per device; negative: no limit (TCPHUB_RATE_LIMIT)")
	flag.StringVar(&o.logLevel, "log-level", env("TCPHUB_LOG_LEVEL", "info"), "debug, info, warn or error (TCPHUB_LOG_LEVEL)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	kenv, err := kafka.ConfigFromEnv()
	if err != nil {
		return err
	}
	brokers := kenv.BrokerAddrs
	if o.brokers != "" {
		brokers = strings.Split(o.brokers, ",")
	}
	if len(brokers) == 0 {
		if !o.embedded {
			return errors.New("no Kafka configured: set KAFKA_BROKERS (see kafka.ConfigFromEnv) or -brokers, or pass -embedded for an in-process broker (a demo: nothing is kept)")
		}
		cluster, err := kafkatest.StartCluster(kafkatest.Brokers(1))
		if err != nil {
			return err
		}
		defer cluster.Close()
		brokers = cluster.Addrs()
		if o.createPartitions == 0 {
			o.createPartitions = 3
		}
		log.Warn("-embedded: using an in-process broker; nothing is kept", "brokers", brokers)
	}
	if o.createPartitions > 0 {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := kafka.CreateTopic(cctx, brokers, kenv.Security, kafka.TopicSpec{Name: o.requestTopic, Partitions: int32(o.createPartitions)})
		cancel()
		if err != nil {
			return err
		}
	}

	tel, stopTracing, traced, err := otlp.FromEnv(ctx)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = stopTracing(sctx) // flush the last spans
	}()
	if traced {
		log.Info("exporting traces over OTLP")
	}

	cfg := tcphub.Config{
		BrokerAddrs:      brokers,
		KafkaVersion:     kenv.KafkaVersion,
		Security:         kenv.Security,
		RequestTopic:     o.requestTopic,
		PresenceTopic:    o.presenceTopic,
		ReplyTopicPrefix: o.replyPrefix,
		InstanceID:       o.instanceID,
		CreateTopics:     o.createTopics,
		Addr:             o.listen,
		Heartbeat:        o.heartbeat,
		HandshakeTimeout: o.handshake,
		GoodbyeDelay:     o.goodbye,
		MaxConnections:   o.maxConns,
		MaxInFlight:      o.maxInFlight,
		QueueSize:        o.queueSize,
		RateLimit:        o.rateLimit,
		Telemetry:        tel,
		Logger:           log,
	}
	if cfg.TLSConfig, err = tlsConfig(o); err != nil {
		return err
	}
	if cfg.Authenticator, err = authenticator(o); err != nil {
		return err
	}
	if _, hmac := cfg.Authenticator.(*tcphub.HMACAuthenticator); hmac && cfg.TLSConfig == nil && !o.insecurePlaintextTokens {
		return errors.New("HMAC tokens are bearer credentials: serve them over TLS (-tls-cert and -tls-key), or pass -insecure-plaintext-tokens for a test setup")
	}
	gw, err := tcphub.NewServer(cfg)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/healthz", gw.HealthHandler())
	mux.Handle("/metrics", gw.MetricsHandler())
	hs := &http.Server{Addr: o.httpAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	httpErr := make(chan error, 1)
	go func() { httpErr <- hs.ListenAndServe() }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()

	log.Info("starting", "listen", o.listen, "http", o.httpAddr, "instance", gw.InstanceID(), "reply_topic", gw.ReplyTopic(), "tls", cfg.TLSConfig != nil)
	served := make(chan error, 1)
	go func() { served <- gw.ListenAndServe(ctx) }() // a signal cancels ctx: graceful shutdown
	select {
	case err := <-served:
		if errors.Is(err, tcphub.ErrServerClosed) {
			log.Info("stopped")
			return nil
		}
		return err
	case err := <-httpErr:
		sctx, cancel := context.WithTimeout(context.Background(), tcphub.DefaultShutdownTimeout)
		defer cancel()
		_ = gw.Shutdown(sctx)
		<-served
		return fmt.Errorf("http: %w", err)
	}
}

func tlsConfig(o options) (*tls.Config, error) {
	if o.tlsCert == "" && o.tlsKey == "" {
		if o.tlsClientCA != "" {
			return nil, errors.New("-tls-client-ca needs -tls-cert and -tls-key")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS key pair: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.tlsClientCA != "" {
		pem, err := os.ReadFile(o.tlsClientCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", o.tlsClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

func authenticator(o options) (tcphub.Authenticator, error) {
	secret := []byte(os.Getenv("TCPHUB_HMAC_SECRET"))
	if o.hmacSecretFile != "" {
		b, err := os.ReadFile(o.hmacSecretFile)
		if err != nil {
			return nil, err
		}
		secret = []byte(strings.TrimSpace(string(b)))
	}
	switch {
	case len(secret) > 0:
		opts, err := hmacOptions(o)
		if err != nil {
			return nil, err
		}
		return tcphub.NewHMACAuthenticator(secret, opts...)
	case o.tlsClientCA != "":
		return tcphub.ClientCertAuthenticator(), nil
	case o.insecureAllowAll:
		return tcphub.AllowAll(), nil
	}
	return nil, errors.New("no device authentication: set TCPHUB_HMAC_SECRET (or -hmac-secret-file), -tls-client-ca, or -insecure-allow-all for tests")
}

// hmacOptions turns the rotation and lifetime flags into HMAC options.
func hmacOptions(o options) ([]tcphub.HMACOption, error) {
	var opts []tcphub.HMACOption
	if o.hmacKeyID != "" {
		opts = append(opts, tcphub.WithKeyID(o.hmacKeyID))
	}
	if o.hmacPreviousFile != "" {
		b, err := os.ReadFile(o.hmacPreviousFile)
		if err != nil {
			return nil, err
		}
		id, prev, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
		if !ok {
			return nil, fmt.Errorf("%s: want <key id>:<secret>", o.hmacPreviousFile)
		}
		var until time.Time
		if o.hmacPreviousUntil != "" {
			if until, err = time.Parse(time.RFC3339, o.hmacPreviousUntil); err != nil {
				return nil, fmt.Errorf("-hmac-previous-until: %w", err)
			}
		}
		opts = append(opts, tcphub.WithPreviousKey(id, []byte(prev), until))
	}
	if o.maxTokenLifetime > 0 {
		opts = append(opts, tcphub.WithMaxTokenLifetime(o.maxTokenLifetime))
	}
	return opts, nil
}
