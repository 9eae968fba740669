package tcphub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

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

// conn is one device connection. Its reader goroutine (serve) owns the
// handshake, the read loop and the teardown (on plain TCP it lends the
// handling of each burst of frames to a goroutine it waits for, see
// burstAside: the reader-only state below is still touched by one goroutine
// at a time); its writer goroutine (writeLoop) owns every write after
// accept. Other goroutines only call enqueue, closeWith and abort,
// which never block.
//
// The code is split by lock domain: conn_read.go (reader-only state),
// conn_dispatch.go (frame handling on the reader), conn_inflight.go
// (requests on their way to Kafka and the order of their answers, under
// rmu) and conn_write.go (the outgoing queue and the writer, under qmu).
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

	qmu    sync.Mutex
	queue  [][]byte // encoded frames; nil when empty
	qbytes int      // bytes in queue
	wbytes int      // bytes of the batch the writer is writing
	reason error
	linger *time.Timer

	rmu     sync.Mutex
	pending []*request          // handed to the producer, not yet answered, in arrival order
	held    map[string][][]byte // responses that arrived before their ack
	timer   *time.Timer         // ProduceTimeout of the oldest pending request
	drained chan struct{}       // closed when pending empties; made by awaitAnswers

	// inBytes are the bytes this connection holds against MaxConnBytes
	// (and the server's MaxServerBytes): the frame being read and the
	// requests the producer has not answered. See reserveFrame.
	inBytes atomic.Int64

	// Reader-only state.
	frameCost  int64   // bytes reserved for the frame just read, until handed to a request
	byteTokens float64 // ByteRate token bucket
	byteAt     int64   // when byteTokens was computed, Unix nanoseconds
	tokens     float64
	tokensAt   int64 // when tokens was computed, Unix nanoseconds
	deadlineAt int64 // when the read deadline was last armed, Unix nanoseconds
	pre        prefixReader

	// The small fields of every lock domain sit together, so that the
	// struct stays in the 416-byte allocation class: one more word per
	// connection is 32 bytes more at every idle connection.
	hdr       [4]byte // reader-only
	authed    bool    // reader-only
	qstate    uint8   // qmu
	writing   bool    // qmu: a writer goroutine is running
	slow      bool    // qmu
	sessionUp bool    // qmu: welcome queued
	timerOn   bool    // rmu
	stopped   bool    // rmu: the connection is finished: no more timer
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		srv:      s,
		nc:       nc,
		id:       wire.RandomID("c-"),
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
		c.closeWith(errorFrame("", wire.CodeUnavailable, "too many connections", s.cfg.GoodbyeDelay))
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

// finish tears the connection down once its reader has stopped.
func (c *conn) finish(err error) {
	s := c.srv
	c.setReason(err)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The device shut its write side, and may still be reading: it
		// gets the answers owed to it (each within ProduceTimeout), then
		// the end of the stream.
		if c.authed {
			c.awaitAnswers()
		}
		c.closeWith(nil)
	}
	c.qmu.Lock()
	flushing := c.qstate == qFlush || c.qstate == qLinger
	c.qmu.Unlock()
	if flushing {
		// The device may still be reading our last frames: keep reading
		// (and discarding) until it closes, the writer gives up, or the
		// linger ends, so the close does not reset them away; then let the
		// writer finish writing them (each write is bounded by
		// WriteTimeout; in this state no other writer can start) before
		// closing.
		_ = c.nc.SetReadDeadline(time.Now().Add(s.cfg.WriteTimeout + closeLinger))
		_, _ = io.Copy(io.Discard, c.nc)
		c.wwg.Wait()
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
	s.admission.release(remoteIP(c.nc.RemoteAddr()), !c.authed)
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
