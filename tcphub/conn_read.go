package tcphub

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// readBufSize is the size of the pooled read buffers (the minimum
// wire.NewReader uses as is).
const readBufSize = 4096

// readBufs holds read buffers between bursts of frames: an idle connection
// holds none (see readLoop), and borrows one only while frames are
// arriving.
var readBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}

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
	defer c.releaseFrame()
	for {
		if err := c.reserveFrame(br); err != nil {
			return c.readError(err)
		}
		f, err := fr.ReadFrame()
		if err != nil {
			return c.readError(err)
		}
		c.srv.m.frameIn(f.Type)
		err = c.handle(&f)
		c.releaseFrame() // unless a request took the bytes over
		if err != nil {
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
	if !force && time.Duration(now.UnixNano()-c.deadlineAt) < idle/4 {
		return
	}
	c.deadlineAt = now.UnixNano()
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
		c.closeWith(errorFrame("", code, msg, 0))
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if !c.authed {
			c.closeWith(errorFrame("", wire.CodeHandshakeTimeout, "no valid hello within "+c.srv.cfg.HandshakeTimeout.String(), 0))
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

// budgetPoll is how often a reader waiting for byte budget checks whether
// its connection or the server is closing.
const budgetPoll = 50 * time.Millisecond

// reserveFrame runs before each frame is read, on its announced length:
// before the welcome it refuses frames over MaxHelloSize; then it waits
// for the connection's ByteRate, and for the frame's bytes to fit
// MaxConnBytes and MaxServerBytes. Waiting is back-pressure: nothing is
// read meanwhile, so the device's TCP window closes. The bytes stay
// reserved until releaseFrame, or until the producer is done with the
// request the frame became (see onRequest). Malformed lengths are left to
// ReadFrame.
func (c *conn) reserveFrame(br *bufio.Reader) error {
	hdr, err := br.Peek(4)
	if err != nil {
		return nil // ReadFrame reports it
	}
	s := c.srv
	n := int64(binary.BigEndian.Uint32(hdr))
	if !c.authed && n > int64(s.cfg.MaxHelloSize) {
		return fmt.Errorf("%w: announced %d bytes before the welcome, limit %d", wire.ErrFrameTooLarge, n, s.cfg.MaxHelloSize)
	}
	if n == 0 || n > int64(s.cfg.MaxFrameSize) {
		return nil
	}
	waited := c.throttle(n)
	if !s.inBudget.tryAcquire(n, &c.inBytes, int64(s.cfg.MaxConnBytes)) {
		if !s.inBudget.acquire(n, &c.inBytes, int64(s.cfg.MaxConnBytes), budgetPoll, c.closing) {
			return ErrServerClosed
		}
		waited = true
	}
	c.frameCost = n
	if waited {
		c.setReadDeadline(true) // the wait is not the device's silence
	}
	return nil
}

// releaseFrame gives back the bytes of the frame just read, unless a
// request took them over.
func (c *conn) releaseFrame() {
	if c.frameCost != 0 {
		c.srv.inBudget.release(c.frameCost, &c.inBytes)
		c.frameCost = 0
	}
}

// throttle applies ByteRate to a frame of n bytes, sleeping until the
// token bucket (of MaxConnBytes bytes) has them. It reports whether it
// slept.
func (c *conn) throttle(n int64) bool {
	rate := c.srv.cfg.ByteRate
	if rate < 0 {
		return false
	}
	burst := float64(c.srv.cfg.MaxConnBytes)
	now := time.Now().UnixNano()
	if c.byteAt == 0 {
		c.byteTokens = burst
	} else {
		c.byteTokens = min(burst, c.byteTokens+float64(now-c.byteAt)/1e9*rate)
	}
	c.byteAt = now
	c.byteTokens -= float64(n)
	if c.byteTokens >= 0 {
		return false
	}
	wait := time.Duration(-c.byteTokens / rate * float64(time.Second))
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.srv.quit:
	}
	return true
}

// closing reports whether the connection's end was asked for (Shutdown
// does that too, once the answers owed are queued), so that a reader
// waiting for budget stops waiting.
func (c *conn) closing() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.qstate != qOpen
}
