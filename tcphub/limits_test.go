package tcphub_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// dialFrom dials addr from a given loopback source address, so tests can
// play devices behind different addresses.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	nc, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

func rawFrom(t *testing.T, src, addr string) *rawDevice {
	nc := dialFrom(t, src, addr)
	return &rawDevice{t: t, nc: nc, r: wire.NewReader(nc, 0), w: wire.NewWriter(nc, 0)}
}

// TestPreAuthFloodFromOneAddress is the probe of issue 15: 500 silent
// sockets from one address, against a gateway with MaxConnections 100.
// Sockets that have not said hello used to take every slot, so a valid
// device from another address was refused. Now one address may hold
// MaxHandshakesPerAddress of them (the rest are refused at once with
// unavailable and after_ms), and the device is welcomed.
func TestPreAuthFloodFromOneAddress(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.MaxConnections = 100 })

	const flood = 500
	socks := make([]net.Conn, flood)
	for i := range socks {
		socks[i] = dialFrom(t, "127.0.0.1", gw.addr)
	}
	// A refused socket is told so, with when to retry.
	last := &rawDevice{t: t, nc: socks[flood-1], r: wire.NewReader(socks[flood-1], 0)}
	f := last.expect(wire.TypeError)
	assert.Equal(t, wire.CodeUnavailable, f.Code)
	assert.Positive(t, f.AfterMS)

	d := rawFrom(t, "127.0.0.2", gw.addr)
	d.send(wire.Frame{Type: wire.TypeHello, Device: "real-device"})
	f, err := d.next(time.Second)
	require.NoError(t, err, "the device must be answered within a second, not after the stalled sockets' handshake deadline")
	require.Equal(t, wire.TypeWelcome, f.Type, "got %+v", f)
	assert.Equal(t, wire.TypeAck, d.request("r-1", `{"ok":1}`).Type)

	open, sessions := gw.Connections()
	assert.Equal(t, 1, sessions)
	assert.LessOrEqual(t, open, tcphub.DefaultMaxHandshakesPerAddress+1, "stalled sockets held beyond the per-address cap")
}

// TestPreAuthGlobalCap: stalled sockets from many addresses fill at most
// MaxHandshakes slots; beyond, new sockets are refused, and once they go
// a device gets in again.
func TestPreAuthGlobalCap(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.MaxHandshakes = 8
		c.MaxHandshakesPerAddress = 2
	})
	var stalled []net.Conn
	for i := range 4 {
		for range 2 {
			stalled = append(stalled, dialFrom(t, fmt.Sprintf("127.0.1.%d", i+1), gw.addr))
		}
	}
	waitOpen(t, gw, 8)
	d := rawFrom(t, "127.0.2.1", gw.addr)
	f := d.expect(wire.TypeError)
	assert.Equal(t, wire.CodeUnavailable, f.Code, "the pre-auth pool is full")
	for _, s := range stalled {
		_ = s.Close()
	}
	waitOpen(t, gw, 0)
	rawFrom(t, "127.0.2.1", gw.addr).hello("after-the-flood")
}

// TestPreAuthFloodMemory measures the "before the welcome" row of
// docs/GATEWAY.md's worst case: the pre-auth pool full at the defaults,
// MaxHandshakes (1,024) sockets from 32 addresses (MaxHandshakesPerAddress
// each), each having sent the header of a MaxHelloSize frame and all of
// its body but the last byte, the most a socket can make the gateway hold
// before it is welcomed. 256 more such sockets, from other addresses, must
// be refused at accept and cost nothing. It asserts the growth of the live
// heap plus goroutine stacks stays under the documented bound, 38 KiB per
// connection; the test's own client sockets (under 1 KiB each) are
// counted in. Under -race the detector's instrumentation doubles the
// stacks, so there heap and stacks are bounded separately, like
// TestIdleConnectionMemory's.
//
// While the pool is full, a welcomed device keeps its session and a new
// one is refused at once with after_ms (as in TestPreAuthGlobalCap); when
// one stalled socket goes, the next device is welcomed.
func TestPreAuthFloodMemory(t *testing.T) {
	const (
		flood   = tcphub.DefaultMaxHandshakes
		perAddr = tcphub.DefaultMaxHandshakesPerAddress
		hello   = tcphub.DefaultMaxHelloSize
		extra   = 256
		// Per connection, docs/GATEWAY.md: 38 KiB, of which stacks are
		// about 8 KiB (16 KiB under -race). Measured: 33.4 to 34.9 KiB,
		// stacks 6.5 to 8.1 KiB: how deep each goroutine's stack grew
		// varies from run to run.
		bound, stackBound, raceStackBound = 38 << 10, 8 << 10, 16 << 10
	)
	raiseFileLimit(t, 2*(flood+extra)+256) // both ends of each socket, the broker, the rest

	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		// Memory does not depend on it; a loaded machine must not see the
		// first sockets time out while the last are still being opened.
		c.HandshakeTimeout = time.Minute
	})
	_, portText, err := net.SplitHostPort(gw.addr)
	require.NoError(t, err)
	port, err := strconv.Atoi(portText)
	require.NoError(t, err)

	// An unfinished maximal hello: a valid start, junk padding.
	body := []byte(`{"v":1,"t":"hello","dev":"flood","junk":"` + strings.Repeat("x", hello))[:hello-1]
	unfinished := append(binary.BigEndian.AppendUint32(nil, hello), body...)

	// The resident device goes once through the path the flood takes (its
	// hello is maximal and arrives in two parts), so buffers and pools made
	// on first use are in the baseline; then it stays welcomed.
	resident := rawFrom(t, "127.0.2.1", gw.addr)
	full, err := wire.AppendFrame(nil, wire.Frame{Type: wire.TypeHello, Device: "resident"})
	require.NoError(t, err)
	full = append(full[:len(full)-1], `,"junk":"`...)
	full = append(full, strings.Repeat("x", 4+hello-len(full)-2)...)
	full = append(full, `"}`...)
	binary.BigEndian.PutUint32(full, uint32(len(full)-4))
	require.Len(t, full, 4+hello)
	resident.sendRaw(full[:len(full)-1])
	waitDrained(t, port, 1)
	resident.sendRaw(full[len(full)-1:])
	resident.expect(wire.TypeWelcome)

	var socks []net.Conn
	t.Cleanup(func() {
		for _, s := range socks {
			_ = s.Close()
		}
	})
	stall := func(src string, refused bool) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		nc, err := d.Dial("tcp", gw.addr)
		require.NoError(t, err)
		socks = append(socks, nc)
		_ = nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write(unfinished); !refused {
			require.NoError(t, err, "socket %d", len(socks))
		}
	}

	before := measureStacks()
	goroutines := runtime.NumGoroutine()
	for i := range flood {
		stall(fmt.Sprintf("127.0.3.%d", i/perAddr+1), false)
	}
	for i := range extra { // the pool is full: refused, whatever their address
		stall(fmt.Sprintf("127.0.5.%d", i/perAddr+1), true)
	}
	waitDrained(t, port, flood+1) // the gateway has read every byte of the sockets it kept
	after := measureStacks()
	open, _ := gw.Connections()

	heap := float64(after.heap) - float64(before.heap)
	stacks := float64(after.stacks) - float64(before.stacks)
	t.Logf("%d unfinished %d-byte hellos: live heap +%.1f MiB, stacks +%.1f MiB, total %.1f MiB; per connection heap %.1f KiB, stacks %.1f KiB, total %.1f KiB; %.2f goroutines per connection",
		flood, hello, heap/(1<<20), stacks/(1<<20), (heap+stacks)/(1<<20), heap/flood/1024, stacks/flood/1024, (heap+stacks)/flood/1024,
		float64(runtime.NumGoroutine()-goroutines)/flood)
	assert.Equal(t, flood+1, open, "connections held: the flood, and the resident device")
	if raceEnabled {
		assert.Less(t, heap, float64(flood*(bound-stackBound)), "live heap over the documented bound (race build)")
		assert.Less(t, stacks, float64(flood*raceStackBound), "stacks per pre-auth connection (race build)")
	} else {
		assert.Less(t, heap+stacks, float64(flood*bound), "live heap and stacks over the documented bound")
	}

	// The pool is full: a new device is told so at once, with when to
	// retry; the welcomed device is not affected.
	f := rawFrom(t, "127.0.4.1", gw.addr).expect(wire.TypeError)
	assert.Equal(t, wire.CodeUnavailable, f.Code)
	assert.Positive(t, f.AfterMS)
	assert.Equal(t, wire.TypeAck, resident.request("r-1", `{"during":"flood"}`).Type)

	// One stalled socket goes: a device takes its slot.
	require.NoError(t, socks[0].Close())
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := rawFrom(t, "127.0.4.1", gw.addr)
		d.send(wire.Frame{Type: wire.TypeHello, Device: "newcomer"})
		f, err := d.next(5 * time.Second)
		require.NoError(t, err)
		if f.Type == wire.TypeWelcome {
			break
		}
		require.Equal(t, wire.CodeUnavailable, f.Code, "%+v", f)
		require.True(t, time.Now().Before(deadline), "no device welcomed after a stalled socket closed")
		_ = d.nc.Close()
		time.Sleep(20 * time.Millisecond) // the slot is freed just after the connection is unregistered
	}
	for _, s := range socks {
		_ = s.Close()
	}
	waitOpen(t, gw, 2)
}

// raiseFileLimit makes sure the process may open n files, raising the soft
// limit to the hard one if needed (Go does so at start since 1.19), and
// skips the test when the hard limit is lower.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Skipf("needs %d open files; the hard limit (ulimit -Hn) is %d", n, lim.Max)
	}
	raised := lim
	raised.Cur = lim.Max
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised))
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
}

type heapAndStacks struct{ heap, stacks uint64 }

// measureStacks returns the live heap and the goroutine stacks after
// forced collections (several, so that pooled buffers are dropped and
// stacks that can shrink have shrunk).
func measureStacks() heapAndStacks {
	for range 3 {
		runtime.GC()
	}
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return heapAndStacks{heap: s[0].Value.Uint64(), stacks: s[1].Value.Uint64()}
}

// waitDrained waits until at least want TCP connections accepted on the
// loopback port are established and no byte sent on any connection to or
// from it is left unread in the kernel: the gateway has read everything
// the devices sent. It reads /proc/net/tcp (Linux, as the tests' other
// loopback addresses assume).
func waitDrained(t *testing.T, port, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		accepted, queued, err := tcpQueues(port)
		if err != nil {
			t.Skipf("cannot read the kernel's socket table: %v", err)
		}
		if accepted >= want && queued == 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "%d of %d connections accepted, %d bytes unread or unsent", accepted, want, queued)
		time.Sleep(10 * time.Millisecond)
	}
}

// tcpQueues reads /proc/net/tcp: the established connections whose local
// port is port, and the bytes queued (to send or to read) on every
// established connection to or from it.
func tcpQueues(port int) (accepted int, queued uint64, err error) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, 0, err
	}
	hexPort := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || f[3] != "01" { // 01: ESTABLISHED
			continue
		}
		local, remote := strings.HasSuffix(f[1], hexPort), strings.HasSuffix(f[2], hexPort)
		if !local && !remote {
			continue
		}
		if local {
			accepted++
		}
		tx, rx, ok := strings.Cut(f[4], ":")
		if !ok {
			return 0, 0, fmt.Errorf("bad queue field %q", f[4])
		}
		for _, q := range []string{tx, rx} {
			n, err := strconv.ParseUint(q, 16, 64)
			if err != nil {
				return 0, 0, err
			}
			queued += n
		}
	}
	return accepted, queued, nil
}

func waitOpen(t *testing.T, gw *gateway, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if open, _ := gw.Connections(); open == want {
			return
		}
		require.True(t, time.Now().Before(deadline), "open connections did not reach %d", want)
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHelloSizeLimit: before the welcome, a frame announcing more than
// MaxHelloSize is refused from its header (too_large), instead of the
// server holding up to 1 MiB for the handshake deadline; a hello with the
// longest token still fits.
func TestHelloSizeLimit(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, nil)

	d := dialRaw(t, gw.addr)
	hdr := binary.BigEndian.AppendUint32(nil, 1<<20-1)
	d.sendRaw(append(hdr, `{"v":1,"t":"hello","dev":"d1","junk":"`...))
	f, err := d.next(5 * time.Second)
	require.NoError(t, err, "refused from the header, not at the handshake deadline")
	assert.Equal(t, wire.CodeTooLarge, f.Code, "%+v", f)

	big := dialRaw(t, gw.addr)
	big.send(wire.Frame{Type: wire.TypeHello, Device: strings.Repeat("d", wire.MaxIDLen), Token: strings.Repeat(`"`, 4096), Client: strings.Repeat("c", 128)})
	big.expect(wire.TypeWelcome)
	// After the welcome, the frame limit is max_frame again.
	assert.Equal(t, wire.TypeAck, big.request("r-1", `"`+strings.Repeat("x", 100_000)+`"`).Type)
}

// TestRecordTooLarge: a payload that fits max_frame but makes a record
// over the producer's MaxMessageBytes gets the non-retryable
// record_too_large, not unavailable (which devices resend for ever); the
// connection stays open.
func TestRecordTooLarge(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, nil)
	d := dialRaw(t, gw.addr)
	d.hello("big-sender")
	// A JSON string whose record value is exactly MaxMessageBytes: the
	// headers make the record just too large.
	payload := `"` + strings.Repeat("x", kafka.DefaultMaxMessageBytes-2) + `"`
	d.send(wire.Frame{Type: wire.TypeRequest, ID: "r-big", Payload: []byte(payload)})
	f := d.expect(wire.TypeError)
	assert.Equal(t, "r-big", f.ID)
	assert.Equal(t, wire.CodeRecordTooLarge, f.Code, "%+v", f)
	assert.False(t, f.Code.Fatal())
	assert.Zero(t, f.AfterMS)
	assert.Equal(t, wire.TypeAck, d.request("r-small", `{"ok":1}`).Type, "the connection stays open")
}

// heldProducer stands in for Kafka as the gateway's producer
// (Config.Producer): it acknowledges each record after hold (or at once
// once closed), so requests stay in flight as long as Kafka keeps them
// waiting, and it counts the payload bytes it holds for requests (records
// of topic; presence records pass through uncounted).
type heldProducer struct {
	topic   string
	hold    time.Duration
	held    atomic.Int64
	maxHeld atomic.Int64
	in      chan *kafka.ProducerMessage
	errs    chan error
	ready   chan struct{}
	closer  chan struct{} // closed by Close
	closed  chan struct{} // closed when every record was acknowledged
	once    sync.Once
	wg      sync.WaitGroup // the run goroutine and the held records
}

var _ kafka.IProducer = (*heldProducer)(nil)

func newHeldProducer(topic string, hold time.Duration) *heldProducer {
	p := &heldProducer{
		topic: topic, hold: hold, in: make(chan *kafka.ProducerMessage, 64), errs: make(chan error),
		ready: make(chan struct{}), closer: make(chan struct{}), closed: make(chan struct{}),
	}
	close(p.ready)
	p.wg.Add(1)
	go p.run()
	return p
}

func (p *heldProducer) run() {
	defer p.wg.Done()
	for {
		select {
		case msg := <-p.in:
			p.accept(msg)
		case <-p.closer:
			return
		}
	}
}

// accept holds msg for hold, counting its bytes, then acknowledges it.
func (p *heldProducer) accept(msg *kafka.ProducerMessage) {
	size := int64(len(msg.Value))
	if msg.Topic != p.topic {
		size = 0
	}
	n := p.held.Add(size)
	for m := p.maxHeld.Load(); n > m && !p.maxHeld.CompareAndSwap(m, n); m = p.maxHeld.Load() {
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTimer(p.hold)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.closer:
		}
		p.held.Add(-size)
		if msg.OnDelivery != nil {
			msg.OnDelivery(kafka.Delivery{Message: msg, Topic: msg.Topic})
		}
	}()
}

// Send is not what the gateway uses (it hands records to Output); the
// stand-in does not support it.
func (p *heldProducer) Send(context.Context, *kafka.ProducerMessage) error {
	return errors.New("heldProducer: Send is not supported")
}

func (p *heldProducer) Channels() kafka.ProducerChannels {
	return kafka.ProducerChannels{Output: p.in, Errors: p.errs, Initialised: p.ready, Closer: p.closer, Closed: p.closed}
}
func (p *heldProducer) IsInitialised() bool              { return true }
func (p *heldProducer) Initialise(context.Context) error { return nil }
func (p *heldProducer) SetDefaultHeader(string, []byte)  {}
func (p *heldProducer) DeleteDefaultHeader(string)       {}
func (p *heldProducer) DroppedErrors() uint64            { return 0 }
func (p *heldProducer) Checker(context.Context) kafka.Health {
	return kafka.Health{Status: kafka.HealthOK}
}

// Close acknowledges every record held; records still in Output when it
// is called are dropped (nobody tells their senders, as after a real
// producer's Close deadline).
func (p *heldProducer) Close(context.Context) error {
	p.once.Do(func() {
		close(p.closer)
		p.wg.Wait()
		close(p.errs)
		close(p.closed)
	})
	return nil
}

// TestInFlightBytesBounded is the memory probe of issue 15: devices
// pipelining maximum frames against a Kafka that takes its time. Without
// byte budgets each held MaxInFlight (32) records of a frame's size, 30 MiB
// live per connection at the defaults. Now the bytes held per connection
// stay under MaxConnBytes (and the server's under MaxServerBytes), and the
// live heap under the bound of docs/GATEWAY.md: per connection
// MaxConnBytes + MaxFrameSize (one frame being decoded), per server the
// lesser of that times the connections and MaxServerBytes plus a frame per
// connection.
//
// By default it runs at a 64 KiB max_frame, which exercises the same
// budgets in a second; with TCPHUB_PROBE set (CI does, without the race
// detector, which makes decoding megabyte frames take minutes) it runs at
// the defaults (1 MiB frames) with 20 and 50 devices, the figures
// docs/GATEWAY.md gives:
//
//	TCPHUB_PROBE=1 go test -run TestInFlightBytesBounded -v ./tcphub/
func TestInFlightBytesBounded(t *testing.T) {
	type probe struct {
		devices     int
		frame       int
		serverBytes int64
	}
	probes := []probe{
		{20, 64 << 10, 0},       // 20 × 256 KiB
		{20, 64 << 10, 1 << 20}, // a server budget below 20 × 256 KiB: readers wait for it
	}
	if os.Getenv("TCPHUB_PROBE") != "" {
		probes = []probe{
			{20, tcphub.DefaultMaxFrameSize, 0},        // defaults: 20 × 4 MiB under the 256 MiB server budget
			{50, tcphub.DefaultMaxFrameSize, 0},        // defaults
			{20, tcphub.DefaultMaxFrameSize, 24 << 20}, // a server budget below 20 × 4 MiB
		}
	}
	for _, p := range probes {
		t.Run(fmt.Sprintf("%d devices, %d KiB frames, server budget %d KiB", p.devices, p.frame>>10, p.serverBytes>>10), func(t *testing.T) {
			probeInFlight(t, p.devices, p.frame, p.serverBytes)
		})
	}
}

func probeInFlight(t *testing.T, devices, frameSize int, serverBytes int64) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	// Kafka keeps each record 2 s: long enough for every device to fill
	// its budget, and slow enough that the heap sampled after a collection
	// is not dominated by what the devices send during the collection.
	loop := newHeldProducer(topic, 2*time.Second)
	t.Cleanup(func() { _ = loop.Close(context.Background()) }) // after the gateway's shutdown
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.Producer = loop
		c.MaxFrameSize = frameSize
		c.MaxServerBytes = serverBytes
		c.RateLimit = -1
	})

	// About the largest request frame max_frame allows.
	payload := strings.Repeat("a", frameSize-64)
	frame, err := wire.AppendFrame(nil, wire.Frame{Type: wire.TypeRequest, ID: "r-000000", Payload: []byte(`"` + payload + `"`)})
	require.NoError(t, err)
	require.LessOrEqual(t, len(frame)-4, frameSize)

	base := liveHeap()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var acked atomic.Int64
	var conns []net.Conn
	for i := range devices {
		nc := dialFrom(t, "127.0.0.1", gw.addr)
		conns = append(conns, nc)
		d := &rawDevice{t: t, nc: nc, r: wire.NewReader(nc, 0), w: wire.NewWriter(nc, 0)}
		d.hello(fmt.Sprintf("pipeliner-%02d", i))
		wg.Add(2)
		go func() { // read acks until the connection closes
			defer wg.Done()
			for {
				f, err := d.r.ReadFrame()
				if err != nil {
					return
				}
				if f.Type == wire.TypeAck {
					acked.Add(1)
				}
			}
		}()
		go func() { // pipeline maximum frames without waiting for acks
			defer wg.Done()
			for off := 0; ; {
				select {
				case <-stop:
					return
				default:
				}
				_ = nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
				n, err := nc.Write(frame[off:])
				if off = (off + n) % len(frame); err != nil && !isTimeout(err) {
					return
				}
			}
		}()
	}
	var peak uint64
	time.Sleep(time.Second) // every device sends its first 4 MiB at once (ByteRate's burst)
	for range 4 {
		time.Sleep(250 * time.Millisecond)
		if h := liveHeap(); h > base+peak {
			peak = h - base
			if p := os.Getenv("TCPHUB_PROBE_PROFILE"); p != "" {
				f, _ := os.Create(p)
				_ = pprof.WriteHeapProfile(f)
				_ = f.Close()
			}
		}
	}
	close(stop)
	connBytes := uint64(4 * frameSize) // MaxConnBytes' default
	perConn := connBytes + uint64(frameSize)
	bound := uint64(devices) * perConn
	heldBound := uint64(devices) * connBytes
	if serverBytes > 0 {
		bound = uint64(serverBytes) + uint64(devices*frameSize)
		heldBound = uint64(serverBytes)
	}
	t.Logf("%d devices: %d acks, at most %.1f MiB held by Kafka, live heap peak +%.1f MiB (bound %.1f MiB)",
		devices, acked.Load(), float64(loop.maxHeld.Load())/(1<<20), float64(peak)/(1<<20), float64(bound)/(1<<20))
	assert.Positive(t, acked.Load(), "the devices made progress")
	assert.LessOrEqual(t, uint64(loop.maxHeld.Load()), heldBound, "bytes in flight over the budget")
	assert.LessOrEqual(t, peak, bound+2<<20, "live heap over the documented bound (2 MiB for the rest of the process)")
	for _, nc := range conns {
		_ = nc.Close()
	}
	wg.Wait()
}

// liveHeap is the heap a forced collection marked live (allocations made
// after it, counted in MemStats.HeapAlloc, are left out).
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestByteRate: one connection is read no faster than ByteRate, plus the
// burst of MaxConnBytes (and one frame), however fast the device sends.
func TestByteRate(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	const frameSize, rate = 64 << 10, 1 << 20
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.MaxFrameSize = frameSize
		c.ByteRate = rate
		c.RateLimit = -1
		c.MaxInFlight = 1000
	})
	d := dialRaw(t, gw.addr)
	d.hello("fast-sender")
	payload := `"` + strings.Repeat("b", frameSize-100) + `"`
	frame, err := wire.AppendFrame(nil, wire.Frame{Type: wire.TypeRequest, ID: "r-1", Payload: []byte(payload)})
	require.NoError(t, err)
	fs := d.collect()
	start := time.Now()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // as fast as the socket takes them
		defer close(done)
		for off := 0; ; {
			select {
			case <-stop:
				return
			default:
			}
			_ = d.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			n, err := d.nc.Write(frame[off:])
			if off = (off + n) % len(frame); err != nil && !isTimeout(err) {
				return
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	got := fs.waitFor(t, 10*time.Second, "some acks", func(f []wire.Frame) bool { return len(f) > 1 })
	elapsed := time.Since(start)
	close(stop)
	<-done
	acks := 0
	for _, f := range got {
		if f.Type == wire.TypeAck {
			acks++
		}
	}
	read := float64(acks * len(frame))
	limit := float64(4*frameSize) + rate*elapsed.Seconds() + float64(len(frame))
	t.Logf("%d frames (%.0f KiB) acked in %v; limit %.0f KiB", acks, read/1024, elapsed.Round(time.Millisecond), limit/1024)
	assert.Positive(t, acks)
	assert.LessOrEqual(t, read, limit, "read faster than ByteRate")
}

// TestPreAuthFloodTLS: stalled TLS handshakes from one address are capped
// too (the extra ones closed at accept, without a handshake), and a device
// from another address completes its TLS handshake and is welcomed.
func TestPreAuthFloodTLS(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	cert := selfSigned(t)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	})
	for range 200 {
		dialFrom(t, "127.0.0.1", gw.addr) // never starts its handshake
	}
	waitOpen(t, gw, tcphub.DefaultMaxHandshakesPerAddress)

	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	nc := dialFrom(t, "127.0.0.2", gw.addr)
	tc := tls.Client(nc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	require.NoError(t, tc.Handshake())
	require.NoError(t, wire.NewWriter(tc, 0).WriteFrame(wire.Frame{Type: wire.TypeHello, Device: "tls-device"}))
	f, err := wire.NewReader(tc, 0).ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, wire.TypeWelcome, f.Type, "%+v", f)
}
