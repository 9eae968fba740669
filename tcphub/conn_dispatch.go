package tcphub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// handle processes one decoded frame. A non-nil error ends the connection.
func (c *conn) handle(f *wire.Frame) error {
	if err := f.Validate(); err != nil {
		c.closeWith(errorFrame("", wire.CodeOf(err), err.Error(), 0))
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if !f.Type.FromDevice() {
		return c.protocolError("t: %s is not a frame devices send", f.Type)
	}
	if !c.authed {
		if f.Type != wire.TypeHello {
			return c.protocolError("t: expected hello, got %s", f.Type)
		}
		return c.onHello(f)
	}
	switch f.Type {
	case wire.TypeHello:
		return c.protocolError("t: hello after welcome")
	case wire.TypeRequest:
		c.onRequest(f)
	case wire.TypePing:
		c.send(wire.Frame{Type: wire.TypePong, ID: f.ID})
	case wire.TypePong:
		// A sign of life; the read deadline was re-armed.
	case wire.TypeError:
		c.logger().Info("device reported an error", "code", f.Code, "msg", f.Message)
	}
	return nil
}

func (c *conn) protocolError(format string, args ...any) error {
	err := fmt.Errorf("%w: %s", wire.ErrInvalidFrame, fmt.Sprintf(format, args...))
	c.closeWith(errorFrame("", wire.CodeBadFrame, err.Error(), 0))
	return fmt.Errorf("%w: %w", ErrProtocol, err)
}

func (c *conn) onHello(f *wire.Frame) error {
	s := c.srv
	ip := remoteIP(c.nc.RemoteAddr())
	if wait, ok := s.authLimit.allowed(ip, f.Device); !ok {
		s.m.authFailures.WithLabelValues("ip_rate_limited").Inc()
		c.closeWith(errorFrame("", wire.CodeUnauthenticated, "too many failed authentications from this address", wait))
		return fmt.Errorf("%w: too many failed authentications from %s", ErrUnauthenticated, ip)
	}
	var tlsState *tls.ConnectionState
	if tc, ok := c.nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		tlsState = &st
	}
	ctx, cancel := context.WithDeadline(s.baseCtx, c.accepted.Add(s.cfg.HandshakeTimeout))
	id, err := c.authenticate(ctx, AuthRequest{DeviceID: f.Device, Token: f.Token, Client: f.Client, RemoteAddr: c.nc.RemoteAddr(), TLS: tlsState})
	cancel()
	if err == nil && id.DeviceID != "" {
		err = wire.CheckDeviceID(id.DeviceID)
	}
	if err != nil {
		s.authLimit.failed(ip, f.Device)
		reason := "rejected"
		if errors.Is(err, context.DeadlineExceeded) {
			reason = "timeout"
		}
		s.m.authFailures.WithLabelValues(reason).Inc()
		c.logger().Info("authentication failed", "device", f.Device, "error", err)
		c.closeWith(errorFrame("", wire.CodeUnauthenticated, authMessage(err), 0))
		if !errors.Is(err, ErrUnauthenticated) {
			err = fmt.Errorf("%w: %w", ErrUnauthenticated, err)
		}
		return err
	}
	c.device = id.DeviceID
	if c.device == "" {
		c.device = f.Device
	}
	c.client = f.Client
	c.deviceBytes = []byte(c.device)
	c.idBytes = []byte(c.id)

	welcome := encode(wire.Frame{
		Type: wire.TypeWelcome, Session: c.id,
		HeartbeatMS: int(s.cfg.Heartbeat / time.Millisecond), MaxFrame: s.cfg.MaxFrameSize, MaxInFlight: s.cfg.MaxInFlight,
		RatePerMin: s.ratePerMin, Burst: s.rateBurst,
	})
	c.qmu.Lock()
	if c.qstate != qOpen {
		c.qmu.Unlock()
		return ErrServerClosed
	}
	if s.draining.Load() {
		c.qmu.Unlock()
		c.closeWith(c.goodbyeFrame())
		return ErrServerClosed
	}
	// The welcome is queued now but written only once the connection is
	// registered: a device that holds its welcome is its device id's
	// connection, so a hello sent after it (a reconnect) always replaces
	// it. Writing it earlier let a second connection's hello register
	// first and then be replaced by the older one.
	c.queue = append(c.queue, welcome)
	c.sessionUp = true
	c.qmu.Unlock()

	// No longer a handshake, before the welcome can be written and the
	// device open its next connection (finish releases by c.authed).
	c.authed = true
	s.admission.welcomed(ip)
	c.tokens = float64(s.cfg.RateBurst)
	c.tokensAt = time.Now().UnixNano()
	if old := s.reg.register(c); old != nil {
		old.closeWith(errorFrame("", wire.CodeDuplicate, "replaced by a newer connection of the same device", 0))
		old.setReason(ErrReplaced)
	}
	c.qmu.Lock()
	start := c.kickLocked()
	c.qmu.Unlock()
	c.startWriter(start)
	s.m.frameOut(wire.TypeWelcome)
	s.m.sessions.Inc()
	s.presence.publish(c, true)
	if s.cfg.OnAuthenticated != nil {
		c.hook("OnAuthenticated", func() { s.cfg.OnAuthenticated(c.info()) })
	}
	return nil
}

// authenticate calls the Authenticator, turning a panic into an error.
func (c *conn) authenticate(ctx context.Context, req AuthRequest) (id Identity, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tcphub: Authenticator panicked: %v", r)
		}
	}()
	return c.srv.cfg.Authenticator.Authenticate(ctx, req)
}

func (c *conn) onRequest(f *wire.Frame) {
	s := c.srv
	topic := s.cfg.RequestTopic
	if f.Route != "" {
		t, ok := s.cfg.Routes[f.Route]
		if !ok {
			c.sendError(f.ID, wire.CodeNotFound, "unknown route "+f.Route, 0)
			return
		}
		topic = t
	}
	c.rmu.Lock()
	busy := len(c.pending) >= s.cfg.MaxInFlight
	c.rmu.Unlock()
	if busy {
		c.sendError(f.ID, wire.CodeTooManyInFlight, "max_inflight is "+strconv.Itoa(s.cfg.MaxInFlight), 0)
		return
	}
	if wait, ok := c.takeToken(); !ok {
		c.sendError(f.ID, wire.CodeRateLimited, "over "+strconv.FormatFloat(s.cfg.RateLimit, 'f', -1, 64)+" requests/s", wait)
		return
	}
	if !s.requests.enter() {
		c.sendError(f.ID, wire.CodeUnavailable, "server shutting down", s.cfg.GoodbyeDelay)
		return
	}
	r := c.newRequest(f, topic)
	// The frame's reserved bytes now stand for the record until the
	// producer is done with it (see delivered).
	r.cost, c.frameCost = c.frameCost, 0
	c.traceRequest(r, f)
	c.rmu.Lock()
	c.pending = append(c.pending, r)
	c.armTimerLocked()
	c.rmu.Unlock()
	c.produce(r)
}

// takeToken applies the per-connection rate limit. When refused it returns
// how long until a token is available.
func (c *conn) takeToken() (time.Duration, bool) {
	rate := c.srv.cfg.RateLimit
	if rate < 0 {
		return 0, true
	}
	now := time.Now()
	c.tokens = min(float64(c.srv.cfg.RateBurst), c.tokens+time.Duration(now.UnixNano()-c.tokensAt).Seconds()*rate)
	c.tokensAt = now.UnixNano()
	if c.tokens >= 1 {
		c.tokens--
		return 0, true
	}
	return max(time.Millisecond, time.Duration((1-c.tokens)/rate*float64(time.Second))), false
}
