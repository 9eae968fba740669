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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	authLimit  *authLimiter
	admission  *admission
	inBudget   *byteBudget // MaxServerBytes: request bytes held by all connections
	replyTopic string
	// instanceBytes and replyToBytes are header values of every request.
	instanceBytes []byte
	replyToBytes  []byte
	presence      *presencePublisher
	// ratePerMin and rateBurst announce the rate limit in the welcome
	// (zero: no limit).
	ratePerMin, rateBurst int
	// loopReplies are the replies of the benchmark's in-memory stand-in
	// for Kafka, when Config.Producer is one (see internal/gatewayloop);
	// nil otherwise.
	loopReplies <-chan kafka.Message

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
	producer    kafka.IProducer
	ownProducer bool          // built by Start from the config, closed by Shutdown
	replies     *kafka.Reader // the reply topic, from its newest offset
	listeners   map[net.Listener]struct{}

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
	if c.Producer == nil {
		if err := c.producerConfig().Validate(); err != nil {
			return nil, err
		}
	}
	if err := c.replyReaderConfig(c.replyTopic()).Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:        c,
		tracing:    c.Telemetry.Tracing(TracerName),
		log:        c.Logger.With("component", "tcphub", "instance", c.InstanceID),
		m:          newMetrics(c.InstanceID),
		reg:        newRegistry(),
		authLimit:  newAuthLimiter(c.AuthFailuresPerMinute, c.AuthLockout),
		admission:  newAdmission(&c),
		inBudget:   &byteBudget{limit: c.MaxServerBytes},
		replyTopic: c.replyTopic(),
		listeners:  map[net.Listener]struct{}{},
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.presence = newPresencePublisher(s)
	if l, ok := c.Producer.(gatewayloop.Loop); ok {
		s.loopReplies = l.Replies()
	}
	s.instanceBytes, s.replyToBytes = []byte(c.InstanceID), []byte(s.replyTopic)
	if _, bearer := c.Authenticator.(interface{ bearerTokens() }); bearer && c.TLSConfig == nil {
		s.log.Warn("HMAC tokens over plain TCP: a token seen on the network can be replayed from any address until it expires, and takes over the device's session; set TLSConfig")
	}
	if c.RateLimit >= 0 {
		// Rounded down, so that a device keeping to it is never refused.
		s.ratePerMin, s.rateBurst = int(min(max(c.RateLimit*60, 1), 1<<31-1)), c.RateBurst
	}
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

// Start connects the server to Kafka: it starts the producer (or
// initialises Config.Producer), creates the reply topic and the presence
// topic if they are missing and Config.CreateTopics is set (else checks that
// they exist, failing with ErrTopicMissing), and starts reading the reply
// topic from its newest offset. It retries with exponential backoff until it
// succeeds or ctx ends; an invalid config and a missing topic end it at
// once. Serve calls it; call it first to know
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
		if errors.Is(err, ErrInvalidConfig) || errors.Is(err, ErrServerClosed) || errors.Is(err, ErrTopicMissing) {
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
	producer, own := cfg.Producer, false
	if producer == nil {
		pcfg := cfg.producerConfig()
		if pcfg.Telemetry.Registerer == nil {
			// The producer's kafkahub_producer_* metrics join the gateway's.
			pcfg.Telemetry.Registerer = s.m.reg
		}
		p, err := kafka.NewProducer(ctx, pcfg)
		if err != nil {
			return err
		}
		producer, own = p, true
	}
	var replies *kafka.Reader
	defer func() {
		if err == nil {
			return
		}
		if replies != nil {
			_ = replies.Close()
		}
		if own {
			closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = producer.Close(closeCtx)
		}
	}()
	if err := producer.Initialise(ctx); err != nil {
		return err
	}
	if err := s.ensureTopics(ctx); err != nil {
		return err
	}
	// Newest: replies produced before this instance started are for
	// sockets of an earlier run, which no longer exist.
	replies, err = kafka.NewReader(ctx, cfg.replyReaderConfig(s.replyTopic))
	if err != nil {
		return fmt.Errorf("reply topic: %w", err)
	}

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.producer, s.ownProducer, s.replies = producer, own, replies
	s.started = true
	s.mu.Unlock()
	s.bgWG.Add(1)
	go s.deliverLoop(replies.Messages())
	if s.loopReplies != nil {
		s.bgWG.Add(1)
		go s.deliverLoopReplies()
	}
	s.bgWG.Add(1)
	go s.presence.run()
	s.log.Info("gateway started", "request_topic", cfg.RequestTopic, "reply_topic", s.replyTopic)
	return nil
}

// ensureTopics creates the reply and presence topics when CreateTopics is
// set, and otherwise checks that they exist.
func (s *Server) ensureTopics(ctx context.Context) error {
	cfg := s.cfg
	// One partition is enough for a reply topic: it carries only this
	// instance's share of the responses.
	specs := []kafka.TopicSpec{{Name: s.replyTopic, Partitions: 1, ReplicationFactor: cfg.ReplicationFactor}}
	if !cfg.DisablePresence {
		specs = append(specs, presenceTopicSpec(cfg.PresenceTopic, cfg.ReplicationFactor))
	}
	if cfg.CreateTopics {
		for _, spec := range specs {
			if err := kafka.CreateTopic(ctx, cfg.BrokerAddrs, cfg.Security, spec); err != nil {
				return err
			}
		}
		return nil
	}
	topics, err := kafka.ListTopics(ctx, cfg.BrokerAddrs, cfg.Security)
	if err != nil {
		return err
	}
	var missing []string
	for _, spec := range specs {
		if !slices.Contains(topics, spec.Name) {
			missing = append(missing, spec.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s (create them, or set Config.CreateTopics)", ErrTopicMissing, strings.Join(missing, ", "))
	}
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
		ip := remoteIP(nc.RemoteAddr())
		if reason := s.admission.admit(ip); reason != "" {
			s.m.refused.WithLabelValues(reason).Inc()
			refuseAtAccept(nc, s.cfg.TLSConfig != nil, s.cfg.RetryAfter)
			continue
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			s.admission.release(ip, true)
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
// presence, closes the reply topic's reader and, when the server built its
// producer, flushes and closes it (a Config.Producer is left open for its
// owner, who closes it after Shutdown). If ctx ends first, the remaining requests are abandoned
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
	if err := s.replies.Close(); err != nil {
		s.log.Warn("closing the reply topic's reader", "error", err)
	}
	if s.ownProducer {
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
	}
	s.bgWG.Wait()
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
