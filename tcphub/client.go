package tcphub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// Client defaults, applied to zero-valued fields of DialOptions.
const (
	DefaultClientName         = "tcphub-go/1"
	DefaultDialTimeout        = 10 * time.Second
	DefaultMinBackoff         = time.Second
	DefaultMaxBackoff         = 60 * time.Second
	DefaultPushBuffer         = 64
	DefaultResponseTTL        = 2 * time.Minute
	DefaultClientWriteTimeout = 10 * time.Second
)

// ErrConnectionLost is returned by Client.Request when the connection ended
// before the request's ack and the client does not reconnect.
var ErrConnectionLost = errors.New("tcphub: connection lost before the ack")

// DialOptions configures a Client. DeviceID is required.
type DialOptions struct {
	// DeviceID is the hello's dev. Required.
	DeviceID string
	// Token is the hello's tok, for instance from NewToken.
	Token string
	// ClientName is the hello's cli. Default "tcphub-go/1".
	ClientName string
	// TLSConfig enables TLS; add Certificates for mutual TLS.
	TLSConfig *tls.Config
	// DialTimeout bounds each TCP connect and the handshake (TLS and
	// hello/welcome). Default 10 s.
	DialTimeout time.Duration
	// WriteTimeout bounds each write. Default 10 s.
	WriteTimeout time.Duration
	// NoReconnect disables reconnecting: once the connection ends, requests
	// fail with ErrConnectionLost and Done is closed.
	NoReconnect bool
	// MinBackoff and MaxBackoff bound the reconnect delay after an
	// unplanned disconnect: random(0, min(MaxBackoff, MinBackoff×2^attempt)),
	// attempt reset after a session of 60 s. After a goodbye the delay is
	// its after_ms plus a random jitter of up to after_ms instead, and after
	// a fatal code that reconnecting cannot fix (unauthenticated,
	// bad_version, bad_frame, too_large, duplicate), MaxBackoff. Defaults
	// 1 s and 60 s, as the protocol recommends.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// PushBuffer is the capacity of the Pushes channel; pushes that do not
	// fit are dropped and counted (DroppedPushes). Default 64.
	PushBuffer int
	// ResponseTTL is how long after its ack a request waits for a
	// response before it is forgotten. Default 2 min.
	ResponseTTL time.Duration
	// OnSession is called (from the client's goroutine, must not block)
	// each time a session is welcomed, with its session id.
	OnSession func(sid string)
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Response is a worker's answer to a request.
type Response struct {
	ID          string
	Status      int
	ContentType string
	Payload     []byte
	Binary      bool // the payload came base64-encoded in pb
}

// Push is a message the server sent on its own initiative.
type Push struct {
	ID          string
	ContentType string
	Payload     []byte
	Binary      bool
}

// ServerError is an error frame from the server.
type ServerError struct {
	Code    wire.Code
	Message string
	// RequestID is the request it concerns; empty for a connection error.
	RequestID string
	// RetryAfter is the server's after_ms, 0 when absent.
	RetryAfter time.Duration
}

func (e *ServerError) Error() string {
	s := "tcphub: server error " + string(e.Code)
	if e.RequestID != "" {
		s += " for request " + e.RequestID
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Temporary reports whether resending the request (with the same id) may
// succeed: unavailable, internal, rate_limited and too_many_in_flight.
func (e *ServerError) Temporary() bool {
	switch e.Code {
	case wire.CodeUnavailable, wire.CodeInternal, wire.CodeRateLimited, wire.CodeTooManyInFlight:
		return true
	}
	return false
}

// Call is a request that Kafka has acknowledged; its worker's response
// may follow.
type Call struct {
	// ID is the request id.
	ID string
	// Sent is when the request was first written; Acked when its ack
	// arrived.
	Sent, Acked time.Time

	c       *Client
	payload []byte
	ct      string
	binary  bool
	route   string
	answer  chan wire.Frame // ack or error, capacity 1
	resp    chan Response   // capacity 1
}

// Response waits for the worker's response, or ctx. The call is forgotten
// afterwards either way.
func (call *Call) Response(ctx context.Context) (Response, error) {
	defer call.c.forget(call.ID)
	select {
	case r := <-call.resp:
		return r, nil
	case <-ctx.Done():
		return Response{}, fmt.Errorf("tcphub: waiting for the response to %s: %w", call.ID, ctx.Err())
	case <-call.c.closed:
		return Response{}, ErrClientClosed
	}
}

// RequestOption sets an optional property of a request.
type RequestOption func(*Call)

// WithRequestID sets the request id, to resend a request under the id it
// had (the protocol's rule for retries). By default a random id is used.
func WithRequestID(id string) RequestOption { return func(c *Call) { c.ID = id } }

// WithRoute sets the request's route (the frame's to field).
func WithRoute(route string) RequestOption { return func(c *Call) { c.route = route } }

// WithRequestContentType sets the payload's content type. By default a
// valid JSON payload goes as application/json in p, anything else as
// application/octet-stream in pb.
func WithRequestContentType(ct string) RequestOption { return func(c *Call) { c.ct = ct } }

// Client is a device's connection to a tcphub gateway: it performs the
// handshake, sends requests and matches their acks and responses by id,
// answers and sends heartbeats, delivers pushes, and reconnects with
// backoff, resending the requests that had no ack. It is safe for
// concurrent use.
type Client struct {
	addr string
	opts DialOptions
	log  *slog.Logger

	pushes        chan Push
	droppedPushes atomic.Uint64
	closed        chan struct{} // closed by Close
	done          chan struct{} // closed when every goroutine has exited
	closeOnce     sync.Once

	mu       sync.Mutex
	sess     *session
	sessWait chan struct{} // closed and replaced when sess changes
	calls    map[string]*Call
	lastTTL  time.Time
	pushIDs  [64]string
	pushNext int
}

type session struct {
	nc        net.Conn
	sid       string
	hb        time.Duration
	maxFrame  int
	sem       chan struct{} // in-flight slots: max_inflight
	welcomed  time.Time
	wmu       sync.Mutex
	done      chan struct{} // closed when the reader exits
	lastSent  atomic.Int64
	lastRecv  atomic.Int64
	draining  atomic.Bool
	goodbyeMS atomic.Int64 // -1 until a goodbye arrives
	fatal     atomic.Pointer[ServerError]
}

// Dial connects to the gateway at addr and performs the handshake, within
// ctx. It fails if the first connection or handshake fails (an
// unauthenticated device gets a *ServerError); after that, the client
// reconnects by itself unless NoReconnect is set.
func Dial(ctx context.Context, addr string, opts DialOptions) (*Client, error) {
	if err := checkDeviceID(opts.DeviceID); err != nil {
		return nil, err
	}
	opts.ClientName = orDefault(opts.ClientName, DefaultClientName)
	opts.DialTimeout = orDefault(opts.DialTimeout, DefaultDialTimeout)
	opts.WriteTimeout = orDefault(opts.WriteTimeout, DefaultClientWriteTimeout)
	opts.MinBackoff = orDefault(opts.MinBackoff, DefaultMinBackoff)
	opts.MaxBackoff = orDefault(opts.MaxBackoff, DefaultMaxBackoff)
	opts.PushBuffer = orDefault(opts.PushBuffer, DefaultPushBuffer)
	opts.ResponseTTL = orDefault(opts.ResponseTTL, DefaultResponseTTL)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Client{
		addr:     addr,
		opts:     opts,
		log:      opts.Logger.With("component", "tcphub.client", "device", opts.DeviceID),
		pushes:   make(chan Push, opts.PushBuffer),
		closed:   make(chan struct{}),
		done:     make(chan struct{}),
		sessWait: make(chan struct{}),
		calls:    map[string]*Call{},
	}
	sess, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	c.setSession(sess)
	go c.run(sess)
	return c, nil
}

// Pushes delivers the server's pushes, duplicates (by id) removed. It is
// closed after Close.
func (c *Client) Pushes() <-chan Push { return c.pushes }

// DroppedPushes returns how many pushes were dropped because Pushes was
// full.
func (c *Client) DroppedPushes() uint64 { return c.droppedPushes.Load() }

// SessionID returns the current session id (the welcome's sid), or "" while
// disconnected.
func (c *Client) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return ""
	}
	return c.sess.sid
}

// Done is closed once the client has stopped for good: after Close, or
// when the connection ends and NoReconnect is set.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection and stops reconnecting. Requests waiting for
// an ack fail with ErrClientClosed. It waits for the client's goroutines.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.mu.Lock()
		sess := c.sess
		c.mu.Unlock()
		if sess != nil {
			_ = sess.nc.Close()
		}
	})
	<-c.done
	return nil
}

// Do sends a request and waits for its ack and then its response, within
// ctx.
func (c *Client) Do(ctx context.Context, payload []byte, opts ...RequestOption) (Response, error) {
	call, err := c.Request(ctx, payload, opts...)
	if err != nil {
		return Response{}, err
	}
	return call.Response(ctx)
}

// Request sends a request and returns once the gateway has acknowledged it
// (Kafka has it), with a Call whose Response method waits for the worker's
// answer. An error frame for the request is returned as a *ServerError (see
// Temporary); resend with WithRequestID(call id) to keep the id. If the
// connection ends before the ack, the request is resent on the next
// connection with the same id, until ctx ends. Requests beyond the
// session's max_inflight wait for a slot.
func (c *Client) Request(ctx context.Context, payload []byte, opts ...RequestOption) (*Call, error) {
	call := &Call{c: c, payload: payload, answer: make(chan wire.Frame, 1), resp: make(chan Response, 1)}
	for _, o := range opts {
		o(call)
	}
	if call.ID == "" {
		call.ID = "r-" + randomHex(8)
	}
	f := wire.Frame{Type: wire.TypeRequest, ID: call.ID, Route: call.route}
	setPayload(&f, call.ct, payload)
	if err := f.Validate(); err != nil {
		return nil, err
	}
	frame, err := wire.AppendFrame(nil, f)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if _, dup := c.calls[call.ID]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("tcphub: request %s already in flight", call.ID)
	}
	c.sweepLocked()
	c.calls[call.ID] = call
	c.mu.Unlock()

	for {
		sess, err := c.waitSession(ctx)
		if err != nil {
			c.forget(call.ID)
			return nil, err
		}
		select {
		case sess.sem <- struct{}{}:
		case <-sess.done:
			continue
		case <-ctx.Done():
			c.forget(call.ID)
			return nil, ctx.Err()
		case <-c.closed:
			c.forget(call.ID)
			return nil, ErrClientClosed
		}
		if call.Sent.IsZero() {
			call.Sent = time.Now()
		}
		if err := sess.write(frame, c.opts.WriteTimeout); err != nil {
			if errors.Is(err, wire.ErrFrameTooLarge) {
				<-sess.sem
				c.forget(call.ID)
				return nil, err
			}
			_ = sess.nc.Close() // the stream may be cut mid-frame
			continue
		}
		select {
		case a := <-call.answer:
			if a.Type == wire.TypeAck {
				c.mu.Lock() // sweepLocked reads it
				call.Acked = time.Now()
				c.mu.Unlock()
				return call, nil
			}
			c.forget(call.ID)
			return nil, &ServerError{Code: a.Code, Message: a.Message, RequestID: a.ID, RetryAfter: time.Duration(a.AfterMS) * time.Millisecond}
		case <-sess.done:
			if c.opts.NoReconnect {
				c.forget(call.ID)
				return nil, ErrConnectionLost
			}
			// Resent, same id, on the next session.
		case <-ctx.Done():
			c.forget(call.ID)
			return nil, ctx.Err()
		case <-c.closed:
			c.forget(call.ID)
			return nil, ErrClientClosed
		}
	}
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

// sweepLocked forgets acked calls whose response did not come within
// ResponseTTL, at most once per TTL/4.
func (c *Client) sweepLocked() {
	now := time.Now()
	if now.Sub(c.lastTTL) < c.opts.ResponseTTL/4 {
		return
	}
	c.lastTTL = now
	for id, call := range c.calls {
		if !call.Acked.IsZero() && now.Sub(call.Acked) > c.opts.ResponseTTL {
			delete(c.calls, id)
		}
	}
}

// waitSession returns the current session once there is one that is not
// draining.
func (c *Client) waitSession(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		sess, wait := c.sess, c.sessWait
		c.mu.Unlock()
		if sess != nil && !sess.draining.Load() {
			select {
			case <-sess.done:
			default:
				return sess, nil
			}
		}
		select {
		case <-c.done:
			return nil, ErrConnectionLost
		default:
		}
		var sessDone <-chan struct{}
		if sess != nil {
			sessDone = sess.done
		}
		select {
		case <-wait:
		case <-sessDone:
			// Wake again when the session is replaced.
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-c.closed:
				return nil, ErrClientClosed
			case <-c.done:
				return nil, ErrConnectionLost
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closed:
			return nil, ErrClientClosed
		case <-c.done:
			return nil, ErrConnectionLost
		}
	}
}

func (c *Client) setSession(s *session) {
	c.mu.Lock()
	c.sess = s
	close(c.sessWait)
	c.sessWait = make(chan struct{})
	c.mu.Unlock()
	if s != nil && c.opts.OnSession != nil {
		c.opts.OnSession(s.sid)
	}
}

// connect dials and performs the handshake.
func (c *Client) connect(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	d := net.Dialer{}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("tcphub: dial %s: %w", c.addr, err)
	}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	if c.opts.TLSConfig != nil {
		tc := tls.Client(nc, c.opts.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("tcphub: TLS handshake with %s: %w", c.addr, err)
		}
		nc = tc
	}
	s := &session{nc: nc, done: make(chan struct{})}
	s.goodbyeMS.Store(-1)
	if err := wire.NewWriter(nc, 0).WriteFrame(wire.Frame{Type: wire.TypeHello, Device: c.opts.DeviceID, Token: c.opts.Token, Client: c.opts.ClientName}); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("tcphub: sending hello: %w", err)
	}
	r := wire.NewReader(nc, wire.DefaultMaxFrameSize)
	f, err := r.ReadFrame()
	if err == nil {
		err = f.Validate()
	}
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("tcphub: reading welcome: %w", err)
	}
	switch f.Type {
	case wire.TypeWelcome:
	case wire.TypeError:
		_ = nc.Close()
		return nil, &ServerError{Code: f.Code, Message: f.Message, RetryAfter: time.Duration(f.AfterMS) * time.Millisecond}
	case wire.TypeGoodbye:
		_ = nc.Close()
		return nil, &ServerError{Code: "goodbye", Message: f.Message, RetryAfter: time.Duration(f.AfterMS) * time.Millisecond}
	default:
		_ = nc.Close()
		return nil, fmt.Errorf("tcphub: expected welcome, got %s", f.Type)
	}
	_ = nc.SetDeadline(time.Time{})
	s.sid = f.Session
	s.hb = time.Duration(f.HeartbeatMS) * time.Millisecond
	s.maxFrame = f.MaxFrame
	s.sem = make(chan struct{}, f.MaxInFlight)
	s.welcomed = time.Now()
	now := time.Now().UnixNano()
	s.lastSent.Store(now)
	s.lastRecv.Store(now)
	go c.read(s, r)
	return s, nil
}

func (s *session) write(frame []byte, timeout time.Duration) error {
	if len(frame)-4 > s.maxFrame {
		return fmt.Errorf("%w: %d bytes, server limit %d", wire.ErrFrameTooLarge, len(frame)-4, s.maxFrame)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := s.nc.Write(frame)
	if err == nil {
		s.lastSent.Store(time.Now().UnixNano())
	}
	return err
}

func (s *session) writeFrame(f wire.Frame, timeout time.Duration) error {
	b, err := wire.AppendFrame(nil, f)
	if err != nil {
		return err
	}
	return s.write(b, timeout)
}

// read dispatches the session's frames until the connection ends.
func (c *Client) read(s *session, r *wire.Reader) {
	defer close(s.done)
	for {
		f, err := r.ReadFrame()
		if err == nil {
			err = f.Validate()
		}
		if err != nil {
			_ = s.nc.Close()
			return
		}
		s.lastRecv.Store(time.Now().UnixNano())
		switch f.Type {
		case wire.TypeAck, wire.TypeError:
			if f.Type == wire.TypeError && f.ID == "" {
				se := &ServerError{Code: f.Code, Message: f.Message, RetryAfter: time.Duration(f.AfterMS) * time.Millisecond}
				s.fatal.Store(se)
				c.log.Warn("server error", "code", f.Code, "msg", f.Message)
				continue // the server closes the connection
			}
			c.mu.Lock()
			call := c.calls[f.ID]
			c.mu.Unlock()
			if call != nil {
				select {
				case call.answer <- f:
					select { // free the in-flight slot
					case <-s.sem:
					default:
					}
				default:
				}
			}
		case wire.TypeResponse:
			c.mu.Lock()
			call := c.calls[f.ID]
			c.mu.Unlock()
			if call != nil {
				select {
				case call.resp <- Response{ID: f.ID, Status: f.Status, ContentType: contentTypeOf(&f), Payload: f.Payload, Binary: f.Binary}:
				default: // a duplicate
				}
			}
		case wire.TypePush:
			if c.seenPush(f.ID) {
				continue
			}
			select {
			case c.pushes <- Push{ID: f.ID, ContentType: contentTypeOf(&f), Payload: f.Payload, Binary: f.Binary}:
			default:
				c.droppedPushes.Add(1)
				c.log.Warn("push dropped: Pushes channel full", "id", f.ID)
			}
		case wire.TypePing:
			_ = s.writeFrame(wire.Frame{Type: wire.TypePong, ID: f.ID}, c.opts.WriteTimeout)
		case wire.TypeGoodbye:
			s.goodbyeMS.Store(int64(f.AfterMS))
			s.draining.Store(true)
			c.log.Info("server said goodbye", "msg", f.Message, "after_ms", f.AfterMS)
		}
	}
}

func contentTypeOf(f *wire.Frame) string {
	switch {
	case f.ContentType != "":
		return f.ContentType
	case f.Binary:
		return ContentTypeBinary
	case len(f.Payload) > 0:
		return ContentTypeJSON
	}
	return ""
}

func (c *Client) seenPush(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pushIDs {
		if p == id {
			return true
		}
	}
	c.pushIDs[c.pushNext] = id
	c.pushNext = (c.pushNext + 1) % len(c.pushIDs)
	return false
}

// run keeps the client connected: heartbeats during a session, then a
// delay and a reconnect, until Close.
func (c *Client) run(sess *session) {
	defer close(c.done)
	defer close(c.pushes)
	attempt := 0
	for {
		c.heartbeat(sess)
		<-sess.done
		c.setSession(nil)
		if time.Since(sess.welcomed) >= 60*time.Second {
			attempt = 0
		}
		if c.opts.NoReconnect {
			return
		}
		delay := c.backoff(attempt)
		if ms := sess.goodbyeMS.Load(); ms >= 0 {
			after := time.Duration(ms) * time.Millisecond
			if after > 0 {
				delay = after + rand.N(after)
			} else {
				delay = rand.N(time.Second)
			}
		} else if se := sess.fatal.Load(); se != nil && permanent(se.Code) {
			delay = c.opts.MaxBackoff
		}
		attempt++
		for {
			c.log.Debug("reconnecting", "in", delay)
			select {
			case <-c.closed:
				return
			case <-time.After(delay):
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-c.closed:
					cancel()
				case <-ctx.Done():
				}
			}()
			next, err := c.connect(ctx)
			cancel()
			if err == nil {
				sess = next
				c.setSession(sess)
				break
			}
			c.log.Info("reconnect failed", "error", err)
			var se *ServerError
			switch {
			case errors.As(err, &se) && se.Code == "goodbye":
				after := max(se.RetryAfter, time.Millisecond)
				delay = after + rand.N(after)
			case errors.As(err, &se) && permanent(se.Code):
				delay = c.opts.MaxBackoff
			default:
				delay = c.backoff(attempt)
			}
			attempt++
		}
	}
}

// backoff is full jitter: random(0, min(MaxBackoff, MinBackoff×2^attempt)).
func (c *Client) backoff(attempt int) time.Duration {
	ceiling := c.opts.MaxBackoff
	if attempt < 30 {
		ceiling = min(ceiling, c.opts.MinBackoff<<attempt)
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling)
}

func permanent(code wire.Code) bool {
	switch code {
	case wire.CodeUnauthenticated, wire.CodeBadVersion, wire.CodeBadFrame, wire.CodeTooLarge, wire.CodeDuplicate:
		return true
	}
	return false
}

// heartbeat pings when nothing was sent for half the heartbeat, and closes
// the connection when nothing was received for twice the heartbeat. It
// returns when the session ends or the client closes.
func (c *Client) heartbeat(s *session) {
	tick := time.NewTicker(max(s.hb/4, time.Millisecond))
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-s.done:
			return
		case <-c.closed:
			_ = s.nc.Close()
			<-s.done
			return
		case <-tick.C:
			now := time.Now().UnixNano()
			if time.Duration(now-s.lastRecv.Load()) > 2*s.hb {
				c.log.Info("heartbeat timeout: reconnecting")
				_ = s.nc.Close()
				continue
			}
			if time.Duration(now-s.lastSent.Load()) >= s.hb/2 {
				n++
				_ = s.writeFrame(wire.Frame{Type: wire.TypePing, ID: "hb-" + strconv.Itoa(n)}, c.opts.WriteTimeout)
			}
		}
	}
}
