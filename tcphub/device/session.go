package device

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// session is one connection of a Client, from its welcome to its end.
type session struct {
	nc        net.Conn
	sid       string
	hb        time.Duration
	maxFrame  int
	sem       chan struct{} // in-flight slots: max_inflight
	pace      *pacer        // the welcome's rate limit
	welcomed  time.Time
	wmu       sync.Mutex
	done      chan struct{} // closed when the reader exits
	lastSent  atomic.Int64
	lastRecv  atomic.Int64
	draining  atomic.Bool
	goodbyeMS atomic.Int64 // -1 until a goodbye arrives
	fatal     atomic.Pointer[ServerError]
}

// connect dials and performs the handshake.
func (c *Client) connect(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	d := net.Dialer{}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("device: dial %s: %w", c.addr, err)
	}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	if c.opts.TLSConfig != nil {
		tc := tls.Client(nc, c.opts.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("device: TLS handshake with %s: %w", c.addr, err)
		}
		nc = tc
	}
	s := &session{nc: nc, done: make(chan struct{})}
	s.goodbyeMS.Store(-1)
	if err := wire.NewWriter(nc, 0).WriteFrame(wire.Frame{Type: wire.TypeHello, Device: c.opts.DeviceID, Token: c.opts.Token, Client: c.opts.ClientName}); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("device: sending hello: %w", err)
	}
	r := wire.NewReader(nc, wire.DefaultMaxFrameSize)
	f, err := r.ReadFrame()
	if err == nil {
		err = f.Validate()
	}
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("device: reading welcome: %w", err)
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
		return nil, fmt.Errorf("device: expected welcome, got %s", f.Type)
	}
	_ = nc.SetDeadline(time.Time{})
	s.sid = f.Session
	s.hb = time.Duration(f.HeartbeatMS) * time.Millisecond
	s.maxFrame = f.MaxFrame
	s.sem = make(chan struct{}, f.MaxInFlight)
	s.pace = newPacer(f.RatePerMin, f.Burst)
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
				case call.resp <- Response{ID: f.ID, Status: f.Status, ContentType: f.PayloadContentType(), Payload: f.Payload, Binary: f.Binary, TraceParent: f.TraceParent}:
				default: // a duplicate
				}
			}
		case wire.TypePush:
			if c.seenPush(f.ID) {
				continue
			}
			select {
			case c.pushes <- Push{ID: f.ID, ContentType: f.PayloadContentType(), Payload: f.Payload, Binary: f.Binary, TraceParent: f.TraceParent}:
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
