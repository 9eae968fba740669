package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// roundResult is what one implementation achieved in one round.
type roundResult struct {
	msgs    int64
	bytes   int64
	seconds float64
	errors  int64
	// lat holds latency samples: send-to-ack for produce, produce-to-handler
	// for the latency scenario, empty for consume.
	lat []time.Duration

	// Filled in by measureRound.
	rssMiB        float64
	allocsPerMsg  float64
	allocBytesMsg float64
	cpuUsPerMsg   float64 // client CPU (user+system) per record, µs
}

func (r roundResult) rate() float64 {
	if r.seconds <= 0 {
		return 0
	}
	return float64(r.msgs) / r.seconds
}

// measureRound runs fn with the process memory statistics reset around it:
// the heap is returned to the OS first, the peak-RSS mark is cleared, and
// allocation counters are read before and after. With the broker in a
// child process (the default), every figure is the client's own.
func measureRound(fn func() (roundResult, error)) (roundResult, error) {
	runtime.GC()
	debug.FreeOSMemory()
	hwmReset := resetPeakRSS()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	sampler := startRSSSampler(!hwmReset)
	cpu0 := cpuTime()

	r, err := fn()

	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&after)
	peak := sampler.stop()
	if hwmReset {
		peak = readStatusKiB("VmHWM:")
	}
	r.rssMiB = float64(peak) / 1024
	if r.msgs > 0 {
		r.allocsPerMsg = float64(after.Mallocs-before.Mallocs) / float64(r.msgs)
		r.allocBytesMsg = float64(after.TotalAlloc-before.TotalAlloc) / float64(r.msgs)
		r.cpuUsPerMsg = float64(cpu) / float64(time.Microsecond) / float64(r.msgs)
	}
	return r, err
}

// cpuTime is the CPU time (user and system, all threads) this process has
// used. With the broker in its child process, that is the client's alone,
// and much less sensitive than throughput to other work on the machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS clears VmHWM (Linux: writing 5 to clear_refs), so that
// VmHWM read after the round is the round's own peak.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// readStatusKiB returns a kB field of /proc/self/status, or 0.
func readStatusKiB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(field)) {
			continue
		}
		fs := bytes.Fields(line[len(field):])
		if len(fs) == 0 {
			return 0
		}
		v, _ := strconv.ParseInt(string(fs[0]), 10, 64)
		return v
	}
	return 0
}

// rssSampler polls VmRSS where VmHWM cannot be reset.
type rssSampler struct {
	stopCh chan struct{}
	done   chan struct{}
	peak   atomic.Int64
}

func startRSSSampler(enabled bool) *rssSampler {
	s := &rssSampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	if !enabled {
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if v := readStatusKiB("VmRSS:"); v > s.peak.Load() {
				s.peak.Store(v)
			}
			select {
			case <-s.stopCh:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() int64 {
	select {
	case <-s.done:
	default:
		close(s.stopCh)
		<-s.done
	}
	return s.peak.Load()
}

// counter counts messages (acks or consumed records) and closes done when
// the count reaches a target that may be set after counting has begun.
type counter struct {
	n      atomic.Int64
	target atomic.Int64
	once   sync.Once
	done   chan struct{}
	end    time.Time // when the target was reached; read after done
}

func newCounter() *counter {
	c := &counter{done: make(chan struct{})}
	c.target.Store(1<<63 - 1)
	return c
}

func (c *counter) add(k int64) {
	if c.n.Add(k) >= c.target.Load() {
		c.finish()
	}
}

func (c *counter) setTarget(t int64) {
	c.target.Store(t)
	if c.n.Load() >= t {
		c.finish()
	}
}

func (c *counter) finish() {
	c.once.Do(func() {
		c.end = time.Now()
		close(c.done)
	})
}

// sampler keeps one latency sample in every `every` messages; it is safe for
// concurrent use.
type sampler struct {
	mu      sync.Mutex
	samples []time.Duration
}

const sampleEvery = 64

func (s *sampler) add(d time.Duration) {
	s.mu.Lock()
	s.samples = append(s.samples, d)
	s.mu.Unlock()
}

func (s *sampler) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.samples
	s.samples = nil
	return out
}

// percentile returns the p-th percentile (0-100) of ds, sorting ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(p / 100 * float64(len(ds)-1))
	return ds[i]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
