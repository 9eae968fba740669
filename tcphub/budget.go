package tcphub

import (
	"sync"
	"sync/atomic"
	"time"
)

// byteBudget counts bytes held against a limit, the server-wide one, and
// each acquisition also against a connection's own counter and limit.
// acquire waits while the bytes would exceed either, which is how readers
// are back-pressured: a reader that waits does not read, and TCP pushes
// back on the device. The fast paths are atomic adds; waiters are woken by
// the releases that follow (every connection's release is also a release
// of the server's budget, so one wake channel serves both).
type byteBudget struct {
	limit   int64
	used    atomic.Int64
	waiters atomic.Int32
	mu      sync.Mutex
	wake    chan struct{} // closed (and replaced) by a release while someone waits
}

// tryAcquire takes n bytes if they fit both limits. A counter holding
// nothing always admits, so that a frame larger than a limit cannot wait
// for ever.
func (b *byteBudget) tryAcquire(n int64, local *atomic.Int64, localLimit int64) bool {
	if u := local.Add(n); u > localLimit && u != n {
		local.Add(-n)
		return false
	}
	if u := b.used.Add(n); u <= b.limit || u == n {
		return true
	}
	b.used.Add(-n)
	local.Add(-n)
	return false
}

// acquire takes n bytes, waiting until they fit. It gives up, returning
// false, once stop reports true; stop is polled every poll while waiting.
func (b *byteBudget) acquire(n int64, local *atomic.Int64, localLimit int64, poll time.Duration, stop func() bool) bool {
	if b.tryAcquire(n, local, localLimit) {
		return true
	}
	b.waiters.Add(1)
	defer b.waiters.Add(-1)
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		// Checked after taking wake, so a release in between is not missed.
		if b.tryAcquire(n, local, localLimit) {
			return true
		}
		if stop() {
			return false
		}
		if t == nil {
			t = time.NewTimer(poll)
		} else {
			t.Reset(poll)
		}
		select {
		case <-wake:
		case <-t.C:
		}
	}
}

// release gives n bytes back and wakes the waiters.
func (b *byteBudget) release(n int64, local *atomic.Int64) {
	if n == 0 {
		return
	}
	local.Add(-n)
	b.used.Add(-n)
	if b.waiters.Load() > 0 {
		b.mu.Lock()
		if b.wake != nil {
			close(b.wake)
			b.wake = nil
		}
		b.mu.Unlock()
	}
}
