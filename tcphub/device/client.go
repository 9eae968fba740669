// Package device is the Go client of the tcphub device protocol
// (docs/PROTOCOL.md): what runs on a device, or on a machine standing in for
// many. It imports only tcphub/wire and the standard library, so a device
// binary links neither Kafka nor the gateway.
//
// Dial connects and performs the handshake; Client.Request sends a request
// and returns once the gateway acknowledged it (Kafka has it), Call.Response
// waits for the worker's answer, and Client.Do does both. Pushes arrive on
// Client.Pushes. The client answers and sends heartbeats, and reconnects
// with the protocol's backoff, resending the requests that had no ack with
// the same id.
package device

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// Client defaults, applied to zero-valued fields of Options.
const (
	DefaultClientName   = "tcphub-go/1"
	DefaultDialTimeout  = 10 * time.Second
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = 60 * time.Second
	DefaultPushBuffer   = 64
	DefaultResponseTTL  = 2 * time.Minute
	DefaultWriteTimeout = 10 * time.Second
)

var (
	// ErrConnectionLost is returned by Client.Request when the connection
	// ended before the request's ack and the client does not reconnect.
	ErrConnectionLost = errors.New("device: connection lost before the ack")
	// ErrClosed is returned by Client methods after Close.
	ErrClosed = errors.New("device: client closed")
)

// Options configures a Client. DeviceID is required.
type Options struct {
	// DeviceID is the hello's dev. Required.
	DeviceID string
	// Token is the hello's tok, for instance one minted by the gateway
	// operator's tcphub.NewToken.
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
	// TraceParent, when set, returns the W3C traceparent of the trace a
	// request belongs to (from the request's context), sent in the frame's
	// tp field so the gateway continues the device's trace; "" sends none.
	// The package links no tracing library: with OpenTelemetry, inject
	// the context with propagation.TraceContext into a map carrier and
	// return its "traceparent" (examples/quickstart does). It runs on the
	// goroutine that calls Request and must not block. Default nil.
	TraceParent func(ctx context.Context) string
}

// Response is a worker's answer to a request.
type Response struct {
	ID          string
	Status      int
	ContentType string
	Payload     []byte
	Binary      bool // the payload came base64-encoded in pb
	// TraceParent is the frame's tp: the W3C traceparent of the gateway's
	// span that delivered it, "" when the gateway does not trace.
	TraceParent string
}

// Push is a message the server sent on its own initiative.
type Push struct {
	ID          string
	ContentType string
	Payload     []byte
	Binary      bool
	TraceParent string // as in Response
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
	s := "device: server error " + string(e.Code)
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
		return Response{}, fmt.Errorf("device: waiting for the response to %s: %w", call.ID, ctx.Err())
	case <-call.c.closed:
		return Response{}, ErrClosed
	}
}

// RequestOption sets an optional property of a request.
type RequestOption func(*Call)

// WithRequestID sets the request id, to resend a request under the id it
// had (the protocol's rule for retries). By default a random id is used.
func WithRequestID(id string) RequestOption { return func(c *Call) { c.ID = id } }

// WithRoute sets the request's route (the frame's to field).
func WithRoute(route string) RequestOption { return func(c *Call) { c.route = route } }

// WithContentType sets the payload's content type. By default a
// valid JSON payload goes as application/json in p, anything else as
// application/octet-stream in pb.
func WithContentType(ct string) RequestOption { return func(c *Call) { c.ct = ct } }

// Client is a device's connection to a tcphub gateway: it performs the
// handshake, sends requests and matches their acks and responses by id,
// answers and sends heartbeats, delivers pushes, and reconnects with
// backoff, resending the requests that had no ack. It is safe for
// concurrent use.
type Client struct {
	addr string
	opts Options
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

// Dial connects to the gateway at addr and performs the handshake, within
// ctx. It fails if the first connection or handshake fails (an
// unauthenticated device gets a *ServerError); after that, the client
// reconnects by itself unless NoReconnect is set.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	if err := wire.CheckDeviceID(opts.DeviceID); err != nil {
		return nil, err
	}
	setDefault(&opts.ClientName, DefaultClientName)
	setDefault(&opts.DialTimeout, DefaultDialTimeout)
	setDefault(&opts.WriteTimeout, DefaultWriteTimeout)
	setDefault(&opts.MinBackoff, DefaultMinBackoff)
	setDefault(&opts.MaxBackoff, DefaultMaxBackoff)
	setDefault(&opts.PushBuffer, DefaultPushBuffer)
	setDefault(&opts.ResponseTTL, DefaultResponseTTL)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Client{
		addr:     addr,
		opts:     opts,
		log:      opts.Logger.With("component", "tcphub.device", "device", opts.DeviceID),
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
// an ack fail with ErrClosed. It waits for the client's goroutines.
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
// session's max_inflight wait for a slot, and requests beyond the rate
// limit the welcome announced (rate_per_min, burst) wait for their turn.
// With Options.TraceParent set, what it returns for ctx goes in the
// request's tp field and a tracing gateway continues that trace (the
// response's TraceParent names the gateway's delivery span).
func (c *Client) Request(ctx context.Context, payload []byte, opts ...RequestOption) (*Call, error) {
	call := &Call{c: c, payload: payload, answer: make(chan wire.Frame, 1), resp: make(chan Response, 1)}
	for _, o := range opts {
		o(call)
	}
	if call.ID == "" {
		call.ID = wire.RandomID("r-")
	}
	f := wire.Frame{Type: wire.TypeRequest, ID: call.ID, Route: call.route, TraceParent: c.traceParent(ctx)}
	f.SetPayload(call.ct, payload)
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
		return nil, fmt.Errorf("device: request %s already in flight", call.ID)
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
		if !sess.pace.wait(ctx, sess.done, c.closed) {
			if ctx.Err() == nil && !isClosed(c.closed) {
				continue // the session ended: pace on the next one
			}
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
			return nil, ErrClosed
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
			return nil, ErrClosed
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
				return nil, ErrClosed
			case <-c.done:
				return nil, ErrConnectionLost
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closed:
			return nil, ErrClosed
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

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// setDefault sets *v to def when it is the zero value.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
