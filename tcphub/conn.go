package tcphub

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// Reasons a connection ends, passed to OnDisconnect (wrapped or as is).
var (
	// ErrHeartbeatTimeout: nothing was received for twice the heartbeat.
	ErrHeartbeatTimeout = errors.New("tcphub: heartbeat timeout")
	// ErrHandshakeTimeout: no valid hello within the handshake deadline.
	ErrHandshakeTimeout = errors.New("tcphub: handshake timeout")
	// ErrReplaced: a newer connection of the same device replaced this one.
	ErrReplaced = errors.New("tcphub: replaced by a newer connection of the device")
	// ErrTooManyConnections: the server was at MaxConnections.
	ErrTooManyConnections = errors.New("tcphub: too many connections")
	// ErrProtocol wraps the wire error of a frame the device got wrong.
	ErrProtocol = errors.New("tcphub: protocol error")
)

const (
	// closeLinger is how long a connection that was sent its last frame
	// stays half-open for the device to read it and close, so that closing
	// with unread input (a TCP reset) does not destroy that frame.
	closeLinger = 2 * time.Second
	// slowWriteGrace bounds the attempt to tell a slow consumer why it is
	// being disconnected.
	slowWriteGrace = time.Second
	// readBufSize is the size of the pooled read buffers (the minimum
	// wire.NewReader uses as is).
	readBufSize = 4096
)

// readBufs holds read buffers between bursts of frames: an idle connection
// holds none (see readLoop), and borrows one only while frames are
// arriving.
var readBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}

// Outgoing queue states.
const (
	qOpen   uint8 = iota // frames accepted
	qFlush               // no more frames; the writer writes what is queued, then half-closes
	qLinger              // all written and half-closed; waiting for the device to close
	qClosed              // hard closed
)

// conn is one device connection. Its reader goroutine (serve) owns the
// handshake, the read loop and the teardown (on plain TCP it lends the
// handling of each burst of frames to a goroutine it waits for, see
// burstAside: the reader-only state below is still touched by one goroutine
// at a time); its writer goroutine (writeLoop) owns every write after
// accept. Other goroutines only call enqueue, fatal, flushClose and abort,
// which never block.
type conn struct {
	srv      *Server
	nc       net.Conn
	id       string
	remote   string
	accepted time.Time

	// device and client are set by the reader before the connection is
	// registered and never change after.
	device string
	client string
	// deviceBytes and idBytes are device and id for record keys and
	// headers, shared by every request of the connection.
	deviceBytes []byte
	idBytes     []byte

	wwg sync.WaitGroup // the writer, while one runs

	qmu       sync.Mutex
	queue     [][]byte // encoded frames; nil when empty
	qstate    uint8
	writing   bool // a writer goroutine is running
	slow      bool
	sessionUp bool // welcome queued
	reason    error
	linger    *time.Timer

	rmu     sync.Mutex
	pending []*request          // handed to the producer, not yet answered, in arrival order
	held    map[string][][]byte // responses that arrived before their ack
	timer   *time.Timer         // ProduceTimeout of the oldest pending request
	timerOn bool
	stopped bool // the connection is finished: no more timer

	// Reader-only state.
	authed     bool
	tokens     float64
	tokensAt   time.Time
	deadlineAt time.Time
	hdr        [4]byte
	pre        prefixReader
}

// prefixReader yields the bytes read while the connection was idle, then
// reads the connection.
type prefixReader struct {
	buf []byte
	r   io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.r.Read(b)
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		srv:      s,
		nc:       nc,
		id:       "c-" + randomHex(8),
		remote:   nc.RemoteAddr().String(),
		accepted: time.Now(),
	}
}

func (c *conn) info() ConnInfo {
	return ConnInfo{ID: c.id, DeviceID: c.device, RemoteAddr: c.remote, Client: c.client, ConnectedAt: c.accepted}
}

func (c *conn) logger() *slog.Logger {
	l := c.srv.log.With("conn", c.id, "remote", c.remote)
	if c.device != "" {
		l = l.With("device", c.device)
	}
	return l
}

// serve runs the connection to its end. A panic while serving it ends
// only this connection.
func (c *conn) serve() {
	var err error
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tcphub: panic serving the connection: %v", r)
			c.logger().Error("panic serving a connection", "panic", r, "stack", string(debug.Stack()))
		}
		c.finish(err)
	}()
	err = c.run()
}

// hook runs a user hook, turning a panic into a log line.
func (c *conn) hook(name string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			c.logger().Error("hook panicked", "hook", name, "panic", r)
		}
	}()
	fn()
}

func (c *conn) run() error {
	s := c.srv
	if s.open.Add(1) > int64(s.cfg.MaxConnections) {
		s.m.refused.WithLabelValues("max_connections").Inc()
		if tc, ok := c.nc.(*tls.Conn); ok {
			_ = c.nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
			if tc.Handshake() != nil {
				return ErrTooManyConnections
			}
		}
		c.fatal("", wire.CodeUnavailable, "too many connections", s.cfg.GoodbyeDelay)
		return ErrTooManyConnections
	}
	if s.cfg.OnConnect != nil {
		c.hook("OnConnect", func() { s.cfg.OnConnect(c.info()) })
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		_ = c.nc.SetReadDeadline(c.accepted.Add(s.cfg.HandshakeTimeout))
		ctx, cancel := context.WithDeadline(s.baseCtx, c.accepted.Add(s.cfg.HandshakeTimeout))
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.m.refused.WithLabelValues("tls_handshake").Inc()
			return fmt.Errorf("tcphub: TLS handshake: %w", err)
		}
	}
	return c.readLoop()
}

// readLoop reads frames until an error. While idle it holds no read
// buffer: a plain TCP connection waits for readability with no buffer at
// all (see readLoopRaw); others (TLS) wait in Read with the 4-byte header
// array. Either way a pooled buffer is borrowed for the burst of frames
// that follows. The handshake deadline was armed at accept (see Serve), so
// that the reader of a plain TCP connection never runs the deadline code,
// whose depth would grow its stack for good.
func (c *conn) readLoop() error {
	if sc, ok := c.nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			return c.readLoopRaw(rc)
		}
	}
	for {
		c.setReadDeadline(true)
		n, err := c.nc.Read(c.hdr[:])
		if n == 0 {
			if err == nil {
				continue
			}
			return c.readError(err)
		}
		if err := c.readBurst(c.hdr[:n]); err != nil {
			return err
		}
	}
}

// firstReads are the buffers of the first read of a burst on plain TCP
// connections.
var firstReads = sync.Pool{New: func() any { return new([readBufSize]byte) }}

// rawRead is one wait for input on a plain TCP connection: the poller
// calls try when the socket may be readable, and try borrows a buffer only
// for the read itself, so an idle connection holds none, and a burst costs
// one read system call less than reading its header first.
type rawRead struct {
	buf *[readBufSize]byte
	n   int
	err error
}

func (rr *rawRead) try(fd uintptr) bool {
	b := firstReads.Get().(*[readBufSize]byte)
	for {
		rr.n, rr.err = syscall.Read(int(fd), b[:])
		if rr.err != syscall.EINTR {
			break
		}
	}
	if rr.err == syscall.EAGAIN {
		firstReads.Put(b)
		return false // wait until readable (or the deadline)
	}
	rr.buf = b
	return true
}

func (c *conn) readLoopRaw(rc syscall.RawConn) error {
	rr := &rawRead{}
	try := rr.try
	for {
		*rr = rawRead{}
		err := rc.Read(try)
		if rr.buf != nil {
			if err == nil && rr.err == nil && rr.n > 0 {
				err = c.burstAside(rr.buf[:rr.n])
				firstReads.Put(rr.buf)
				if err != nil {
					return err
				}
				continue
			}
			firstReads.Put(rr.buf)
		}
		switch {
		case err != nil:
			return c.readError(err)
		case rr.err != nil:
			return c.readError(&net.OpError{Op: "read", Net: "tcp", Addr: c.nc.RemoteAddr(), Err: os.NewSyscallError("read", rr.err)})
		default:
			return c.readError(io.EOF)
		}
	}
}

// burstAside runs readBurst, then re-arms the read deadline, on a
// goroutine of its own and waits for it. Handling frames (authentication,
// Kafka, encoding) needs a deep stack, and a goroutine's stack, once grown,
// does not shrink back to the 2 KiB minimum; keeping that work off the
// reader keeps the stack of every idle connection at 2 KiB. A panic there
// ends the connection like a panic on the reader.
func (c *conn) burstAside(first []byte) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				c.logger().Error("panic serving a connection", "panic", r, "stack", string(debug.Stack()))
				done <- fmt.Errorf("tcphub: panic serving the connection: %v", r)
			}
		}()
		err := c.readBurst(first)
		if err == nil {
			c.setReadDeadline(true)
		}
		done <- err
	}()
	return <-done
}

// readBurst reads frames, starting with the bytes already read, until the
// input is drained.
func (c *conn) readBurst(first []byte) error {
	br := readBufs.Get().(*bufio.Reader)
	c.pre = prefixReader{buf: first, r: c.nc}
	br.Reset(&c.pre)
	defer func() {
		br.Reset(nil)
		readBufs.Put(br)
		c.pre = prefixReader{}
	}()
	fr := wire.NewReader(br, c.srv.cfg.MaxFrameSize)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return c.readError(err)
		}
		c.srv.m.frameIn(f.Type)
		if err := c.handle(&f); err != nil {
			return err
		}
		if br.Buffered() == 0 && len(c.pre.buf) == 0 {
			return nil
		}
		c.setReadDeadline(false)
	}
}

// setReadDeadline arms the read deadline: the handshake deadline before the
// welcome, twice the heartbeat after it. Within a burst (force false) it is
// re-armed only when a quarter of the idle timeout has passed, to keep the
// timer work per frame low.
func (c *conn) setReadDeadline(force bool) {
	if !c.authed {
		if force {
			_ = c.nc.SetReadDeadline(c.accepted.Add(c.srv.cfg.HandshakeTimeout))
		}
		return
	}
	idle := 2 * c.srv.cfg.Heartbeat
	now := time.Now()
	if !force && now.Sub(c.deadlineAt) < idle/4 {
		return
	}
	c.deadlineAt = now
	c.qmu.Lock()
	open := c.qstate == qOpen
	c.qmu.Unlock()
	if open { // once closing, the linger deadline stands
		_ = c.nc.SetReadDeadline(now.Add(idle))
	}
}

// readError turns a read error into the connection's end, telling the
// device when it is at fault.
func (c *conn) readError(err error) error {
	if code := wire.CodeOf(err); code != "" {
		msg := err.Error()
		if code == wire.CodeBadVersion {
			msg = "supported versions: " + strconv.Itoa(wire.Version)
		}
		c.fatal("", code, msg, 0)
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if !c.authed {
			c.fatal("", wire.CodeHandshakeTimeout, "no valid hello within "+c.srv.cfg.HandshakeTimeout.String(), 0)
			return ErrHandshakeTimeout
		}
		c.qmu.Lock()
		closing := c.qstate != qOpen
		c.qmu.Unlock()
		if !closing {
			return ErrHeartbeatTimeout
		}
	}
	return err
}

// handle processes one decoded frame. A non-nil error ends the connection.
func (c *conn) handle(f *wire.Frame) error {
	if err := f.Validate(); err != nil {
		c.fatal("", wire.CodeOf(err), err.Error(), 0)
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
	c.fatal("", wire.CodeBadFrame, err.Error(), 0)
	return fmt.Errorf("%w: %w", ErrProtocol, err)
}

func (c *conn) onHello(f *wire.Frame) error {
	s := c.srv
	ip := remoteIP(c.nc.RemoteAddr())
	if !s.authLimit.allowed(ip) {
		s.m.authFailures.WithLabelValues("ip_rate_limited").Inc()
		c.fatal("", wire.CodeUnauthenticated, "too many failed authentications from this address", time.Minute)
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
		err = checkDeviceID(id.DeviceID)
	}
	if err != nil {
		s.authLimit.failed(ip)
		reason := "rejected"
		if errors.Is(err, context.DeadlineExceeded) {
			reason = "timeout"
		}
		s.m.authFailures.WithLabelValues(reason).Inc()
		c.logger().Info("authentication failed", "device", f.Device, "error", err)
		c.fatal("", wire.CodeUnauthenticated, authMessage(err), 0)
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
	})
	c.qmu.Lock()
	if c.qstate != qOpen {
		c.qmu.Unlock()
		return ErrServerClosed
	}
	if s.draining.Load() {
		c.qmu.Unlock()
		c.goodbyeAndClose()
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

	c.authed = true
	c.tokens = float64(s.cfg.RateBurst)
	c.tokensAt = time.Now()
	if old := s.reg.register(c); old != nil {
		old.fatal("", wire.CodeDuplicate, "replaced by a newer connection of the same device", 0)
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
	c.tokens = min(float64(c.srv.cfg.RateBurst), c.tokens+now.Sub(c.tokensAt).Seconds()*rate)
	c.tokensAt = now
	if c.tokens >= 1 {
		c.tokens--
		return 0, true
	}
	return max(time.Millisecond, time.Duration((1-c.tokens)/rate*float64(time.Second))), false
}

// Request states.
const (
	reqPending uint8 = iota // handed to the producer, no answer yet
	reqAcked                // Kafka has it
	reqFailed               // not written, or not known to be written in time
)

// request is a device request on its way to Kafka. The record, its
// headers and the request are one allocation.
type request struct {
	c       *conn
	id      string
	arrived time.Time
	state   uint8 // under c.rmu
	msg     kafka.ProducerMessage
	headers [8]kafka.Header
	trace   [16]byte
	idBytes []byte
}

// Header values that are the same for every request of a connection, or of
// the server, made once.
var (
	ctJSONBytes   = []byte(ContentTypeJSON)
	ctBinaryBytes = []byte(ContentTypeBinary)
)

func (c *conn) newRequest(f *wire.Frame, topic string) *request {
	s := c.srv
	r := &request{c: c, id: f.ID, arrived: time.Now(), idBytes: []byte(f.ID)}
	var ct []byte
	switch {
	case f.ContentType != "":
		ct = []byte(f.ContentType)
	case f.Binary:
		ct = ctBinaryBytes
	default:
		ct = ctJSONBytes
	}
	const hexDigits = "0123456789abcdef"
	for i, v := 0, rand.Uint64(); i < len(r.trace); i, v = i+1, v>>4 {
		r.trace[i] = hexDigits[v&15]
	}
	h := append(r.headers[:0],
		kafka.Header{Key: HeaderDevice, Value: c.deviceBytes},
		kafka.Header{Key: HeaderConn, Value: c.idBytes},
		kafka.Header{Key: HeaderRequest, Value: r.idBytes},
		kafka.Header{Key: HeaderInstance, Value: s.instanceBytes},
		kafka.Header{Key: HeaderReplyTo, Value: s.replyToBytes},
		kafka.Header{Key: HeaderContentType, Value: ct},
		kafka.Header{Key: HeaderTraceID, Value: r.trace[:]},
	)
	if f.Route != "" {
		h = append(h, kafka.Header{Key: HeaderRoute, Value: []byte(f.Route)})
	}
	r.msg = kafka.ProducerMessage{Topic: topic, Key: c.deviceBytes, Value: f.Payload, Headers: h, OnDelivery: r.delivered}
	return r
}

// produce hands a request's record to the producer. Only the reader calls
// it, so a connection's records reach the producer in frame order, and the
// idempotent producer keeps that order in the partition the device id
// selects. Many records of a connection may be in flight at once (up to
// MaxInFlight); their answers are sent in the same order (see complete).
// When the producer's buffer is full the reader waits, at most until the
// request's deadline.
func (c *conn) produce(r *request) {
	s := c.srv
	if s.loop != nil {
		s.loop.Produce(&r.msg)
		return
	}
	out := s.producer.Channels()
	select {
	case out.Output <- &r.msg:
		return
	default:
	}
	t := time.NewTimer(time.Until(r.arrived.Add(s.cfg.ProduceTimeout)))
	defer t.Stop()
	var err error
	select {
	case out.Output <- &r.msg:
		return
	case <-out.Closer:
		err = kafka.ErrClosed
	case <-s.baseCtx.Done():
		err = s.baseCtx.Err()
	case <-t.C:
		err = context.DeadlineExceeded
	}
	r.delivered(kafka.Delivery{Message: &r.msg, Topic: r.msg.Topic, Partition: -1, Offset: -1, Err: err})
}

// delivered is the record's OnDelivery: the producer's answer, called
// once, from the producer's goroutine (or by produce when the record never
// reached the producer).
func (r *request) delivered(d kafka.Delivery) {
	c := r.c
	s := c.srv
	s.m.produceLatency.Observe(time.Since(r.arrived).Seconds())
	c.rmu.Lock()
	if r.state != reqPending { // already answered: its deadline passed
		c.rmu.Unlock()
		return
	}
	r.state = reqAcked
	if d.Err != nil {
		r.state = reqFailed
	}
	out := c.completeLocked(nil)
	c.rmu.Unlock()
	if d.Err != nil {
		c.logger().Warn("request not written to Kafka", "request", r.id, "topic", r.msg.Topic, "error", d.Err)
	}
	c.answer(out)
}

// answered is a request taken off the pending list, with the responses
// that waited for its ack.
type answered struct {
	r    *request
	held [][]byte
}

// completeLocked takes the answered requests off the head of the pending
// list, in arrival order: acks (and errors) go out in the order the
// requests came in. The caller holds rmu and passes the result to answer.
func (c *conn) completeLocked(out []answered) []answered {
	n := 0
	for _, r := range c.pending {
		if r.state == reqPending {
			break
		}
		a := answered{r: r}
		if c.held != nil {
			a.held = c.held[r.id]
			delete(c.held, r.id)
		}
		out = append(out, a)
		n++
	}
	if n > 0 {
		clear(c.pending[:n])
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		if len(c.held) == 0 {
			c.held = nil
		}
	}
	return out
}

// answer queues the ack or error of each answered request, then the
// responses held for it, and lets the server's request count go.
func (c *conn) answer(out []answered) {
	s := c.srv
	for _, a := range out {
		if a.r.state == reqAcked {
			if c.enqueue(encode(wire.Frame{Type: wire.TypeAck, ID: a.r.id}), wire.TypeAck) == nil {
				s.m.acks.Inc()
			}
		} else {
			c.sendError(a.r.id, wire.CodeUnavailable, "not written to Kafka", s.cfg.RetryAfter)
		}
		for _, b := range a.held {
			_ = c.enqueue(b, wire.TypeResponse)
		}
		s.requests.leave()
	}
}

// armTimerLocked makes sure the deadline timer runs while requests are
// pending. The caller holds rmu.
func (c *conn) armTimerLocked() {
	if c.timerOn || len(c.pending) == 0 {
		return
	}
	d := time.Until(c.pending[0].arrived.Add(c.srv.cfg.ProduceTimeout))
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.expire)
	} else {
		c.timer.Reset(d)
	}
	c.timerOn = true
}

// expire answers unavailable to the pending requests whose ProduceTimeout
// has passed (their records may still land in Kafka), and re-arms the timer
// for the oldest remaining one. The timer is armed for the oldest pending
// request's deadline and not moved when requests complete: when it fires
// early it only re-arms.
func (c *conn) expire() {
	now := time.Now()
	timeout := c.srv.cfg.ProduceTimeout
	c.rmu.Lock()
	c.timerOn = false
	if c.stopped {
		c.rmu.Unlock()
		return
	}
	for _, r := range c.pending {
		if r.state == reqPending && !now.Before(r.arrived.Add(timeout)) {
			r.state = reqFailed
		}
	}
	out := c.completeLocked(nil)
	c.armTimerLocked()
	c.rmu.Unlock()
	for _, a := range out {
		if a.r.state == reqFailed {
			c.logger().Warn("request not acknowledged by Kafka in time", "request", a.r.id, "topic", a.r.msg.Topic, "timeout", timeout)
		}
	}
	c.answer(out)
}

// abandonPending runs when the connection is finished: nobody can be told
// about the requests still waiting for Kafka (the device resends them after
// reconnecting, and their records may still land), so they are dropped
// from the server's count now, and the deadline timer is stopped.
func (c *conn) abandonPending() {
	c.rmu.Lock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
	}
	for _, r := range c.pending {
		if r.state == reqPending {
			r.state = reqFailed
		}
	}
	out := c.completeLocked(nil)
	c.held = nil
	c.rmu.Unlock()
	for range out {
		c.srv.requests.leave()
	}
}

// holdResponse keeps a response whose request is still waiting for Kafka's
// answer (or for the answers of requests before it), so that the device
// gets the ack first; it is queued right after the ack. It reports false
// when the request is not pending.
func (c *conn) holdResponse(id string, b []byte) bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	pending := false
	for _, r := range c.pending {
		pending = pending || r.id == id
	}
	if !pending {
		return false
	}
	if c.held == nil {
		c.held = map[string][][]byte{}
	}
	c.held[id] = append(c.held[id], b)
	return true
}

// send queues a frame built by the server itself.
func (c *conn) send(f wire.Frame) error {
	return c.enqueue(encode(f), f.Type)
}

func (c *conn) sendError(id string, code wire.Code, msg string, after time.Duration) {
	f := wire.Frame{Type: wire.TypeError, ID: id, Code: code, Message: safeMsg(msg), AfterMS: durationMS(after)}
	if c.enqueue(encode(f), wire.TypeError) == nil {
		c.srv.m.errors.WithLabelValues(string(code)).Inc()
	}
}

// enqueue adds an encoded frame to the outgoing queue without ever
// blocking. When the queue is full the device is not reading: it is sent
// slow_consumer (best effort) and disconnected, and the frame is dropped.
func (c *conn) enqueue(b []byte, t wire.Type) error {
	s := c.srv
	c.qmu.Lock()
	if c.qstate != qOpen {
		c.qmu.Unlock()
		return ErrNotConnected
	}
	if len(c.queue) >= s.cfg.QueueSize {
		dropped := len(c.queue) + 1
		clear(c.queue)
		c.queue = append(c.queue[:0], slowConsumerFrame)
		c.qstate = qFlush
		c.slow = true
		if c.reason == nil {
			c.reason = ErrSlowConsumer
		}
		start := c.kickLocked()
		c.qmu.Unlock()
		c.startWriter(start)
		// Cut short a write the device is stalling, so the writer gets to
		// the slow_consumer frame or gives up quickly.
		_ = c.nc.SetWriteDeadline(time.Now().Add(slowWriteGrace))
		s.m.queueDrops.Add(float64(dropped))
		s.m.slowDisconnects.Inc()
		s.m.errors.WithLabelValues(string(wire.CodeSlowConsumer)).Inc()
		c.logger().Warn("slow consumer disconnected", "dropped_frames", dropped)
		return ErrSlowConsumer
	}
	c.queue = append(c.queue, b)
	start := c.kickLocked()
	c.qmu.Unlock()
	c.startWriter(start)
	s.m.frameOut(t)
	return nil
}

var slowConsumerFrame = encode(wire.Frame{Type: wire.TypeError, Code: wire.CodeSlowConsumer, Message: "outgoing queue full"})

// kickLocked reports whether a writer goroutine must be started: there is
// something to write (or a close to carry out) and none is running. The
// caller holds qmu and calls startWriter after unlocking.
func (c *conn) kickLocked() bool {
	if c.writing || c.qstate >= qLinger || (len(c.queue) == 0 && c.qstate == qOpen) {
		return false
	}
	c.writing = true
	c.wwg.Add(1)
	return true
}

func (c *conn) startWriter(start bool) {
	if start {
		go c.writeLoop()
	}
}

// fatal queues an error frame as the connection's last frame: the writer
// writes what is queued, then closes.
func (c *conn) fatal(id string, code wire.Code, msg string, after time.Duration) {
	b := encode(wire.Frame{Type: wire.TypeError, ID: id, Code: code, Message: safeMsg(msg), AfterMS: durationMS(after)})
	c.qmu.Lock()
	if c.qstate != qOpen {
		c.qmu.Unlock()
		return
	}
	c.queue = append(c.queue, b)
	c.qstate = qFlush
	start := c.kickLocked()
	c.qmu.Unlock()
	c.startWriter(start)
	c.srv.m.frameOut(wire.TypeError)
	c.srv.m.errors.WithLabelValues(string(code)).Inc()
}

// goodbye queues a goodbye frame if the device has been welcomed; the
// connection stays open for the acks still owed.
func (c *conn) goodbye() {
	b := encode(wire.Frame{Type: wire.TypeGoodbye, Message: "draining", AfterMS: durationMS(c.srv.cfg.GoodbyeDelay)})
	c.qmu.Lock()
	if c.qstate != qOpen || !c.sessionUp {
		c.qmu.Unlock()
		return
	}
	c.queue = append(c.queue, b)
	start := c.kickLocked()
	c.qmu.Unlock()
	c.startWriter(start)
	c.srv.m.frameOut(wire.TypeGoodbye)
}

// goodbyeAndClose answers a hello that arrives while draining.
func (c *conn) goodbyeAndClose() {
	b := encode(wire.Frame{Type: wire.TypeGoodbye, Message: "draining", AfterMS: durationMS(c.srv.cfg.GoodbyeDelay)})
	c.qmu.Lock()
	if c.qstate != qOpen {
		c.qmu.Unlock()
		return
	}
	c.queue = append(c.queue, b)
	c.qstate = qFlush
	start := c.kickLocked()
	c.qmu.Unlock()
	c.startWriter(start)
	c.srv.m.frameOut(wire.TypeGoodbye)
}

// flushClose stops accepting frames; the writer writes what is queued and
// closes.
func (c *conn) flushClose() {
	c.qmu.Lock()
	if c.qstate == qOpen {
		c.qstate = qFlush
	}
	start := c.kickLocked()
	c.qmu.Unlock()
	c.startWriter(start)
}

// abort closes the socket at once; a running writer fails and exits.
func (c *conn) abort() {
	c.qmu.Lock()
	c.qstate = qClosed
	clear(c.queue)
	c.queue = nil
	if c.linger != nil {
		c.linger.Stop()
	}
	c.qmu.Unlock()
	_ = c.nc.Close()
}

func (c *conn) setReason(err error) {
	c.qmu.Lock()
	if c.reason == nil {
		c.reason = err
	}
	c.qmu.Unlock()
}

// writeLoop is the connection's writer. It runs only while there is
// something to write, so an idle connection costs no writer goroutine (nor
// its stack); at most one runs at a time. It writes the queued frames a
// batch per system call, each write bounded by WriteTimeout, and carries
// out a requested close once the queue is empty.
func (c *conn) writeLoop() {
	defer c.wwg.Done()
	var batch [][]byte
	for {
		c.qmu.Lock()
		st, slow := c.qstate, c.slow
		if st >= qLinger || len(c.queue) == 0 {
			c.writing = false
			c.queue = nil // an idle connection keeps no slice
			halfClose := st == qFlush
			if halfClose {
				c.qstate = qLinger
				c.linger = time.AfterFunc(closeLinger, func() { _ = c.nc.Close() })
			}
			c.qmu.Unlock()
			if halfClose {
				c.halfClose()
			}
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.qmu.Unlock()

		timeout := c.srv.cfg.WriteTimeout
		if slow {
			timeout = slowWriteGrace
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
		var err error
		if len(batch) == 1 {
			// A plain write: writev would keep an iovec array in the
			// socket for the connection's life.
			_, err = c.nc.Write(batch[0])
		} else {
			bufs := net.Buffers(batch)
			_, err = bufs.WriteTo(c.nc)
		}
		clear(batch)
		batch = batch[:0]
		if err != nil {
			c.setReason(fmt.Errorf("tcphub: write: %w", err))
			c.abort()
			c.qmu.Lock()
			c.writing = false
			c.qmu.Unlock()
			return
		}
	}
}

// halfClose ends the write side after the last frame, so the device reads
// everything and then EOF; the connection is closed when the device closes
// its side, or after closeLinger.
func (c *conn) halfClose() {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := c.nc.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(closeLinger))
}

// finish tears the connection down once its reader has stopped.
func (c *conn) finish(err error) {
	s := c.srv
	c.setReason(err)
	c.qmu.Lock()
	flushing := c.qstate == qFlush || c.qstate == qLinger
	c.qmu.Unlock()
	if flushing {
		// The device may still be reading our last frames: keep reading
		// (and discarding) until it closes, the writer gives up, or the
		// linger ends, so the close does not reset them away.
		_ = c.nc.SetReadDeadline(time.Now().Add(s.cfg.WriteTimeout + closeLinger))
		_, _ = io.Copy(io.Discard, c.nc)
	}
	c.abort()
	c.abandonPending()
	c.wwg.Wait()

	c.qmu.Lock()
	reason := c.reason
	c.qmu.Unlock()
	current := s.reg.remove(c)
	if c.authed {
		s.m.sessions.Dec()
		if current {
			s.presence.publish(c, false)
		}
		if s.cfg.OnDisconnect != nil {
			c.hook("OnDisconnect", func() { s.cfg.OnDisconnect(c.info(), reason) })
		}
		c.logger().Debug("device disconnected", "reason", reason)
	} else if s.cfg.OnDisconnect != nil && !errors.Is(reason, ErrTooManyConnections) {
		c.hook("OnDisconnect", func() { s.cfg.OnDisconnect(c.info(), reason) })
	}
	s.open.Add(-1)
	s.m.connections.Dec()
}

func encode(f wire.Frame) []byte {
	b, err := wire.AppendFrame(make([]byte, 0, 64), f)
	if err != nil {
		// Only server-built frames come here; they always encode.
		panic(fmt.Sprintf("tcphub: encoding %s frame: %v", f.Type, err))
	}
	return b
}

func durationMS(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(min(max(d/time.Millisecond, 1), 1<<31-1))
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
