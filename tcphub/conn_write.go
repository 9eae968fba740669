package tcphub

import (
	"fmt"
	"net"
	"time"

	"github.com/kafkahub/kafkahub/tcphub/wire"
)

const (
	// closeLinger is how long a connection that was sent its last frame
	// stays half-open for the device to read it and close, so that closing
	// with unread input (a TCP reset) does not destroy that frame.
	closeLinger = 2 * time.Second
	// slowWriteGrace bounds the attempt to tell a slow consumer why it is
	// being disconnected.
	slowWriteGrace = time.Second
)

// Outgoing queue states.
const (
	qOpen   uint8 = iota // frames accepted
	qFlush               // no more frames; the writer writes what is queued, then half-closes
	qLinger              // all written and half-closed; waiting for the device to close
	qClosed              // hard closed
)

// send queues a frame built by the server itself.
func (c *conn) send(f wire.Frame) error {
	return c.enqueue(encode(f), f.Type)
}

// sendError queues an error frame that leaves the connection open.
func (c *conn) sendError(id string, code wire.Code, msg string, after time.Duration) {
	if c.enqueue(encode(*errorFrame(id, code, msg, after)), wire.TypeError) == nil {
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
	if len(c.queue) >= s.cfg.QueueSize || (c.qbytes+c.wbytes > 0 && c.qbytes+c.wbytes+len(b) > s.cfg.MaxQueueBytes) {
		dropped := len(c.queue) + 1
		clear(c.queue)
		c.queue = append(c.queue[:0], slowConsumerFrame)
		c.qbytes = len(slowConsumerFrame)
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
	c.qbytes += len(b)
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

// closeWith asks for the connection's end: last, when not nil, is queued
// as its last frame; the writer writes what is queued, then closes (see
// writeLoop). It never blocks, and does nothing once the end was asked for.
func (c *conn) closeWith(last *wire.Frame) {
	var b []byte
	if last != nil {
		b = encode(*last)
	}
	c.qmu.Lock()
	if c.qstate != qOpen {
		c.qmu.Unlock()
		return
	}
	if b != nil {
		c.queue = append(c.queue, b)
	}
	c.qstate = qFlush
	start := c.kickLocked()
	c.qmu.Unlock()
	c.startWriter(start)
	if last != nil {
		c.srv.m.frameOut(last.Type)
		if last.Type == wire.TypeError {
			c.srv.m.errors.WithLabelValues(string(last.Code)).Inc()
		}
	}
}

// errorFrame is an error frame built by the server.
func errorFrame(id string, code wire.Code, msg string, after time.Duration) *wire.Frame {
	return &wire.Frame{Type: wire.TypeError, ID: id, Code: code, Message: safeMsg(msg), AfterMS: durationMS(after)}
}

// goodbyeFrame tells the device to reconnect elsewhere after GoodbyeDelay.
func (c *conn) goodbyeFrame() *wire.Frame {
	return &wire.Frame{Type: wire.TypeGoodbye, Message: "draining", AfterMS: durationMS(c.srv.cfg.GoodbyeDelay)}
}

// goodbye queues a goodbye frame if the device has been welcomed; the
// connection stays open for the acks still owed.
func (c *conn) goodbye() {
	b := encode(*c.goodbyeFrame())
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

// abort closes the socket at once; a running writer fails and exits.
func (c *conn) abort() {
	c.qmu.Lock()
	c.qstate = qClosed
	clear(c.queue)
	c.queue = nil
	c.qbytes = 0
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
		c.wbytes = 0
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
		c.wbytes, c.qbytes = c.qbytes, 0
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
