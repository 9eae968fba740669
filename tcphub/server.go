package tcphub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkahub/kafkahub/internal/gatewayloop"
	"github.com/kafkahub/kafkahub/kafka"
)

// Server is a tcphub gateway instance: it accepts device connections,
// writes their requests to Kafka, acknowledges them once Kafka has them, and
// delivers the workers' responses and pushes that arrive on its own reply
// topic.
//
// Create one with NewServer, start it with Serve or ListenAndServe (which
// connect to Kafka first, or Start to do that explicitly), and stop it with
// Shutdown. A Server is safe for concurrent use.
type Server struct {
	cfg        Config
	log        *slog.Logger
	m          *metrics
	reg        *registry
	authLimit  *ipLimiter
	replyTopic string
	// instanceBytes and replyToBytes are header values of every request.
	instanceBytes []byte
	replyToBytes  []byte
	presence      *presencePublisher
	loop          *gatewayloop.Loop // nil except in the gateway benchmark

	open     atomic.Int64 // accepted connections not yet torn down
	draining atomic.Bool  // goodbye sent: new requests refused
	requests gate         // requests accepted and not yet answered

	baseCtx    context.Context // ends when a shutdown runs out of time
	cancelBase context.CancelFunc

	tracing kafka.Tracing

	startMu sync.Mutex // serialises Start
	mu      sync.Mutex // guards the fields below
	started bool
	closing bool
	// Set by Start, read-only after it.
	producer   *kafka.Producer
	client     sarama.Client
	consumer   sarama.Consumer
	partitions []sarama.PartitionConsumer
	listeners  map[net.Listener]struct{}

	quit   chan struct{} // closed when Shutdown begins
	done   chan struct{} // closed when Shutdown has finished
	connWG sync.WaitGroup
	bgWG   sync.WaitGroup
}

// NewServer validates cfg and returns a server. It does not touch the
// network: Start (or Serve) connects to Kafka. Only an invalid config is an
// error; it matches ErrInvalidConfig.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	if _, err := kafka.SaramaConfig(c.KafkaVersion, c.ClientID, c.Security); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:        c,
		tracing:    c.Telemetry.Tracing(TracerName),
		log:        c.Logger.With("component", "tcphub", "instance", c.InstanceID),
		m:          newMetrics(c.InstanceID),
		reg:        newRegistry(),
		authLimit:  newIPLimiter(c.AuthFailuresPerMinute),
		replyTopic: c.replyTopic(),
		listeners:  map[net.Listener]struct{}{},
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.presence = newPresencePublisher(s)
	s.loop = gatewayloop.For(c.InstanceID)
	s.instanceBytes, s.replyToBytes = []byte(c.InstanceID), []byte(s.replyTopic)
	return s, nil
}

// InstanceID returns the instance's id.
func (s *Server) InstanceID() string { return s.cfg.InstanceID }

// ReplyTopic returns the topic this instance reads responses and pushes
// from. Workers find it in each request's tcphub.reply-to header.
func (s *Server) ReplyTopic() string { return s.replyTopic }

// Connections returns the number of open connections and, among them, of
// authenticated device sessions.
func (s *Server) Connections() (open, sessions int) { return s.reg.counts() }

// Start connects the server to Kafka: it starts the producer, creates the
// reply topic (and the presence topic) if missing, and starts reading the
// reply topic from its newest offset. It retries with exponential backoff
// until it succeeds or ctx ends. Serve calls it; call it first to know
// that the gateway is ready before devices connect. Calling it again after
// success does nothing.
func (s *Server) Start(ctx context.Context) error {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	s.mu.Lock()
	started, closing := s.started, s.closing
	s.mu.Unlock()
	if closing {
		return ErrServerClosed
	}
	if started {
		return nil
	}
	// Shutdown must not wait for a start that waits for Kafka.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	delay := 200 * time.Millisecond
	for {
		err := s.startOnce(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrInvalidConfig) || errors.Is(err, ErrServerClosed) {
			return err
		}
		s.log.Warn("cannot start: retrying", "error", err, "in", delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("tcphub: starting: %w (last error: %w)", ctx.Err(), err)
		case <-s.quit:
			return ErrServerClosed
		case <-time.After(delay + rand.N(delay/2)):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

func (s *Server) startOnce(ctx context.Context) (err error) {
	cfg := s.cfg
	if cfg.Telemetry.Registerer == nil {
		// The producer's kafkahub_producer_* metrics join the gateway's.
		cfg.Telemetry.Registerer = s.m.reg
	}
	producer, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{
		BrokerAddrs: cfg.BrokerAddrs, Topic: cfg.RequestTopic, KafkaVersion: cfg.KafkaVersion,
		ClientID: cfg.ClientID, SecurityConfig: cfg.Security, Logger: cfg.Logger,
		Telemetry: cfg.Telemetry,
	})
	if err != nil {
		return err
	}
	var client sarama.Client
	var consumer sarama.Consumer
	var pcs []sarama.PartitionConsumer
	defer func() {
		if err == nil {
			return
		}
		for _, pc := range pcs {
			_ = pc.Close()
		}
		if consumer != nil {
			_ = consumer.Close()
		}
		if client != nil {
			_ = client.Close()
		}
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = producer.Close(closeCtx)
	}()
	if err := producer.Initialise(ctx); err != nil {
		return err
	}
	scfg, err := kafka.SaramaConfig(cfg.KafkaVersion, cfg.ClientID, cfg.Security)
	if err != nil {
		return err
	}
	client, err = sarama.NewClient(cfg.BrokerAddrs, scfg)
	if err != nil {
		return fmt.Errorf("connecting to %v: %w", cfg.BrokerAddrs, err)
	}
	// One partition is enough for a reply topic: it carries only this
	// instance's share of the responses.
	if err := kafka.CreateTopic(ctx, cfg.BrokerAddrs, cfg.Security, kafka.TopicSpec{
		Name: s.replyTopic, Partitions: 1, ReplicationFactor: cfg.ReplicationFactor,
	}); err != nil {
		return err
	}
	if !cfg.DisablePresence {
		if err := kafka.CreateTopic(ctx, cfg.BrokerAddrs, cfg.Security, presenceTopicSpec(cfg.PresenceTopic, cfg.ReplicationFactor)); err != nil {
			return err
		}
	}
	consumer, err = sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("reply consumer: %w", err)
	}
	parts, err := client.Partitions(s.replyTopic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", s.replyTopic, err)
	}
	for _, p := range parts {
		// Newest: replies produced before this instance started are for
		// sockets of an earlier run, which no longer exist.
		pc, err := consumer.ConsumePartition(s.replyTopic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("consuming %s/%d: %w", s.replyTopic, p, err)
		}
		pcs = append(pcs, pc)
	}

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.producer, s.client, s.consumer, s.partitions = producer, client, consumer, pcs
	s.started = true
	s.mu.Unlock()
	for _, pc := range pcs {
		s.bgWG.Add(1)
		go s.deliverLoop(pc)
	}
	if s.loop != nil {
		s.bgWG.Add(1)
		go s.loopReplies()
	}
	s.bgWG.Add(1)
	go s.presence.run()
	s.log.Info("gateway started", "request_topic", cfg.RequestTopic, "reply_topic", s.replyTopic)
	return nil
}

// ListenAndServe listens on cfg.Addr (TCP) and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("tcphub: %w", err)
	}
	return s.Serve(ctx, l)
}

// Serve starts the server if needed (see Start), then accepts connections
// on l until Shutdown is called or ctx ends; it closes l. When ctx ends it
// shuts the server down gracefully, within cfg.ShutdownTimeout, and returns
// once that is done. It returns ErrServerClosed after a shutdown. With
// TLSConfig set, l must be a plain TCP listener: the server runs the TLS
// handshake itself, within the handshake deadline. Serve may be called
// with several listeners.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if err := s.Start(ctx); err != nil {
		_ = l.Close()
		return err
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		_ = s.Shutdown(sctx)
	})
	defer stop()

	backoff := 5 * time.Millisecond
	for {
		nc, err := l.Accept()
		if err != nil {
			select {
			case <-s.quit:
				if ctx.Err() != nil {
					<-s.done
				}
				return ErrServerClosed
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				s.mu.Lock()
				delete(s.listeners, l)
				s.mu.Unlock()
				return err
			}
			s.m.acceptErrors.Inc()
			s.log.Error("accept failed: retrying", "error", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.quit:
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			_ = nc.Close()
			continue
		}
		s.connWG.Add(1)
		s.mu.Unlock()
		if s.cfg.TLSConfig != nil {
			nc = tls.Server(nc, s.cfg.TLSConfig)
		}
		c := newConn(s, nc)
		// The handshake deadline, armed here rather than on the
		// connection's reader (see conn.readLoop).
		_ = nc.SetReadDeadline(c.accepted.Add(s.cfg.HandshakeTimeout))
		s.reg.track(c)
		s.m.accepted.Inc()
		s.m.connections.Inc()
		go func() {
			defer s.connWG.Done()
			c.serve()
		}()
	}
}

// Shutdown stops the server gracefully: it stops accepting, sends every
// device goodbye (with GoodbyeDelay as after_ms), answers new requests with
// unavailable, waits for the acks of requests already accepted, writes the
// frames still queued and closes the connections, publishes their offline
// presence, closes the reply consumer and flushes and closes the Kafka
// producer. If ctx ends first, the remaining requests are abandoned
// (their devices get no ack and resend), connections are closed at once,
// and Shutdown returns ctx's error once everything has stopped. No
// goroutine of the server outlives Shutdown. Calling it again waits for
// the first call.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		select {
		case <-s.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.closing = true
	close(s.quit)
	listeners := s.listeners
	s.listeners = nil
	s.mu.Unlock()
	defer close(s.done)
	// Waiting for Start (if it is running) ensures started is final.
	s.startMu.Lock()
	s.startMu.Unlock() //nolint:staticcheck // an empty critical section is the point

	for l := range listeners {
		_ = l.Close()
	}
	s.draining.Store(true)
	s.requests.close()
	for _, c := range s.reg.snapshot() {
		c.goodbye()
	}
	var result error
	if err := s.requests.wait(ctx); err != nil {
		result = err
	}
	for _, c := range s.reg.snapshot() {
		c.setReason(ErrServerClosed)
		c.closeWith(nil)
	}
	if err := waitGroup(ctx, &s.connWG); err != nil {
		result = err
		s.cancelBase()
		for _, c := range s.reg.snapshot() {
			c.abort()
		}
		s.connWG.Wait()
	}
	s.cancelBase()

	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		s.log.Info("gateway stopped (it had not started)")
		return result
	}
	s.presence.stop()
	for _, pc := range s.partitions {
		_ = pc.Close()
	}
	if err := s.consumer.Close(); err != nil {
		s.log.Warn("closing reply consumer", "error", err)
	}
	pctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
	}
	if err := s.producer.Close(pctx); err != nil {
		result = errors.Join(result, err)
		<-s.producer.Channels().Closed
	}
	s.bgWG.Wait()
	if err := s.client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
		s.log.Warn("closing Kafka client", "error", err)
	}
	s.log.Info("gateway stopped")
	return result
}

// MetricsHandler serves the server's Prometheus metrics, from a registry of
// its own (nothing is registered globally).
func (s *Server) MetricsHandler() http.Handler { return s.m.handler() }

// waitGroup waits for wg or ctx.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gate counts requests between acceptance and answer, and refuses new ones
// once closed. Entering costs two atomic operations.
type gate struct {
	n      atomic.Int64
	closed atomic.Bool
	idle   chan struct{} // capacity 1, made lazily by close
	mu     sync.Mutex
}

func (g *gate) enter() bool {
	g.n.Add(1)
	if g.closed.Load() {
		g.leave()
		return false
	}
	return true
}

func (g *gate) leave() {
	if g.n.Add(-1) == 0 && g.closed.Load() {
		g.mu.Lock()
		ch := g.idle
		g.mu.Unlock()
		if ch != nil {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

func (g *gate) close() {
	g.mu.Lock()
	if g.idle == nil {
		g.idle = make(chan struct{}, 1)
	}
	g.mu.Unlock()
	g.closed.Store(true)
}

// wait returns once the gate is closed and empty, or ctx's error.
func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	ch := g.idle
	g.mu.Unlock()
	tick := time.NewTicker(50 * time.Millisecond) // in case a signal raced the check
	defer tick.Stop()
	for g.n.Load() != 0 {
		select {
		case <-ch:
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
