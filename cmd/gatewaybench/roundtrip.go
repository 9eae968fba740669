package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

const (
	warmUp    = 2 * time.Second
	ringSize  = 1 << 13 // request start times kept per device
	pacers    = 4       // goroutines offering the fixed rate
	drainWait = 5 * time.Second
)

// payload is the request body: ~100 bytes of JSON.
var payload = []byte(`{"sensor":"t-17","temp":21.5,"unit":"C","battery":0.87,"fw":"2.3.1","note":"gatewaybench payload"}`)

func tokenFor(env *benchEnv, dev string) (string, error) {
	secret, err := hex.DecodeString(env.secret)
	if err != nil {
		return "", err
	}
	return tcphub.NewToken(secret, dev, time.Hour)
}

// rtDevice is one device of the round-trip scenarios: a socket, a reader
// goroutine, and the start time of each request by sequence number.
type rtDevice struct {
	c     net.Conn
	wmu   sync.Mutex
	buf   []byte
	seq   uint64
	start [ringSize]atomic.Int64 // scheduled send time, ns after t0

	// Reader-only until the reader exits.
	acks, resps []int32 // µs, requests scheduled in the measured window
	errs        int64
	done        chan struct{}

	outstanding atomic.Int64 // requests without response or error
}

// load is one round-trip run's traffic.
type load struct {
	t0         time.Time    // times are ns after t0
	recFrom    atomic.Int64 // requests scheduled in [recFrom, recTo) are measured
	recTo      atomic.Int64
	stop       atomic.Bool
	maxWindow  atomic.Bool // closed loop: each response sends the next request
	probing    atomic.Bool
	printed    atomic.Int64
	sentInWin  atomic.Int64
	probeReply chan struct{}
}

func (l *load) now() int64 { return int64(time.Since(l.t0)) }

func (l *load) measured(sched int64) bool {
	return sched >= l.recFrom.Load() && sched < l.recTo.Load()
}

func (d *rtDevice) send(l *load, sched int64) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.seq++
	id := strconv.AppendUint([]byte("r"), d.seq, 10)
	d.start[d.seq%ringSize].Store(sched)
	b, err := wire.AppendFrame(d.buf[:0], wire.Frame{Type: wire.TypeRequest, ID: string(id), Payload: payload})
	if err != nil {
		return err
	}
	d.buf = b
	d.outstanding.Add(1)
	if l.measured(sched) {
		l.sentInWin.Add(1)
	}
	_, err = d.c.Write(b)
	return err
}

func (d *rtDevice) read(l *load) {
	defer close(d.done)
	br := bufio.NewReaderSize(d.c, 16<<10)
	var body []byte
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if n > 1<<20 {
			return
		}
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		f, ok := quickParse(body)
		if !ok {
			var err error
			if f, err = wire.NewReader(bytes.NewReader(append(hdr[:], body...)), 0).ReadFrame(); err != nil {
				return
			}
		}
		now := l.now()
		var sched int64 = -1
		if len(f.ID) > 1 {
			if seq, err := strconv.ParseUint(f.ID[1:], 10, 64); err == nil {
				sched = d.start[seq%ringSize].Load()
			}
		}
		in := l.measured(sched)
		switch f.Type {
		case wire.TypeAck:
			if in {
				d.acks = append(d.acks, int32((now-sched)/1000))
			}
		case wire.TypeResponse:
			d.outstanding.Add(-1)
			if in {
				d.resps = append(d.resps, int32((now-sched)/1000))
			}
			if l.probing.Load() {
				select {
				case l.probeReply <- struct{}{}:
				default:
				}
			}
			if l.maxWindow.Load() && !l.stop.Load() {
				if d.send(l, l.now()) != nil {
					return
				}
			}
		case wire.TypeError:
			d.outstanding.Add(-1)
			if in {
				d.errs++
			}
			if l.printed.Add(1) <= 3 {
				fmt.Fprintf(os.Stderr, "gatewaybench: error frame %s: %s\n", f.Code, f.Message)
			}
			if l.maxWindow.Load() && !l.stop.Load() {
				time.Sleep(time.Millisecond)
				if d.send(l, l.now()) != nil {
					return
				}
			}
		}
	}
}

// quickParse reads the type and id of a frame in the server's canonical
// encoding ({"v":1,"t":"ack","id":"r17",...}) without decoding the rest,
// to keep the load generator's share of the CPU small; anything else goes
// to the wire decoder.
func quickParse(b []byte) (wire.Frame, bool) {
	var f wire.Frame
	rest, ok := bytes.CutPrefix(b, []byte(`{"v":1,"t":"`))
	if !ok {
		return f, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return f, false
	}
	f.Type = wire.Type(rest[:i])
	if f.Type != wire.TypeAck && f.Type != wire.TypeResponse {
		return f, false
	}
	rest, ok = bytes.CutPrefix(rest[i+1:], []byte(`,"id":"`))
	if !ok {
		return f, false
	}
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return f, false
	}
	f.ID = string(rest[:j])
	return f, true
}

// echoWorker answers every request with its own payload through
// tcphub.Reply, from a consumer group with a worker per partition.
type echoWorker struct {
	producer *kafka.Producer
	group    *kafka.ConsumerGroup
}

func startEchoWorker(ctx context.Context, env *benchEnv, topic string, partitions int) (*echoWorker, error) {
	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: env.brokers, Topic: topic, Logger: env.quiet})
	if err != nil {
		return nil, err
	}
	w := &echoWorker{producer: p}
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.Initialise(ictx); err != nil {
		w.close()
		return nil, err
	}
	g, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs: env.brokers, Topics: []string{topic}, GroupName: topic + "-echo",
		NumWorkers: partitions, Logger: env.quiet,
	})
	if err != nil {
		w.close()
		return nil, err
	}
	w.group = g
	if err := g.RegisterHandler(ctx, func(ctx context.Context, _ int, msg kafka.Message) error {
		return tcphub.Reply(ctx, p, msg, 200, msg.Value())
	}); err != nil {
		w.close()
		return nil, err
	}
	g.Start()
	return w, nil
}

func (w *echoWorker) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if w.group != nil {
		_ = w.group.Close(ctx)
	}
	_ = w.producer.Close(ctx)
}

// roundTrip runs o.devices devices against a fresh gateway: at the offered
// rate (rate > 0), or each keeping o.window requests outstanding (rate 0).
func roundTrip(ctx context.Context, o options, env *benchEnv, loop bool, rate, run int) (result, error) {
	name := "roundtrip"
	if loop {
		name = "gateway-only"
	}
	scen := name + "@max"
	if rate > 0 {
		scen = fmt.Sprintf("%s@%d/s", name, rate)
	}
	r := result{Scenario: scen, Impl: "tcphub", Conns: o.devices, Rate: rate, Broker: env.kind(loop), Load1: load1(), Instances: 1}
	topic, err := env.newTopic(ctx, "gwbench-rt", int32(o.partitions))
	if err != nil {
		return r, err
	}
	gw, err := startGateway(env, "gateway", topic, loop)
	if err != nil {
		return r, err
	}
	defer func() {
		if err := gw.quit(); err != nil {
			fmt.Fprintln(os.Stderr, "gatewaybench:", err)
		}
	}()
	if !loop {
		w, err := startEchoWorker(ctx, env, topic, o.partitions)
		if err != nil {
			return r, err
		}
		defer w.close()
	}

	l := &load{t0: time.Now(), probeReply: make(chan struct{}, 1)}
	l.recFrom.Store(-1)
	l.recTo.Store(-1)
	l.probing.Store(true)
	devs := make([]*rtDevice, 0, o.devices)
	defer func() {
		for _, d := range devs {
			_ = d.c.Close()
			<-d.done
		}
	}()
	for i := range o.devices {
		dev := fmt.Sprintf("rt-%d-%05d", run, i)
		tok, err := tokenFor(env, dev)
		if err != nil {
			return r, err
		}
		c, err := net.Dial("tcp", gw.addr)
		if err != nil {
			return r, err
		}
		d := &rtDevice{c: c, done: make(chan struct{})}
		if err := handshake(c, dev, tok, &d.buf); err != nil {
			_ = c.Close()
			return r, err
		}
		devs = append(devs, d)
		go d.read(l)
	}
	// Wait until a request makes the whole trip (the worker's group has
	// its partitions).
	probeDeadline := time.Now().Add(90 * time.Second)
	for got := false; !got; {
		if time.Now().After(probeDeadline) {
			return r, errors.New("no response to a probe request within 90 s")
		}
		if err := devs[0].send(l, l.now()); err != nil {
			return r, err
		}
		select {
		case <-l.probeReply:
			got = true
		case <-time.After(500 * time.Millisecond):
		}
	}
	l.probing.Store(false)
	// Wait for the probes' stragglers.
	waitOutstanding(devs, drainWait)

	begin := time.Duration(l.now())
	l.recFrom.Store(int64(begin + warmUp))
	l.recTo.Store(int64(begin + warmUp + o.duration))
	end := begin + warmUp + o.duration
	var profiling bool
	var wg sync.WaitGroup
	if rate > 0 {
		np := min(pacers, len(devs))
		for g := range np {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pace(l, devs, g, np, float64(rate)/float64(np), begin, end)
			}()
		}
	} else {
		l.maxWindow.Store(true)
		for _, d := range devs {
			for range o.window {
				if err := d.send(l, l.now()); err != nil {
					return r, err
				}
			}
		}
	}
	time.Sleep(warmUp)
	gwCPU0, err := gw.rusage()
	if err != nil {
		return r, err
	}
	cpu0 := cpuSeconds()
	if o.profileDir != "" {
		p := filepath.Join(o.profileDir, fmt.Sprintf("gateway-cpu-%s-%d.pprof", sanitize(scen), run))
		if _, err := gw.ask("cpu start "+p, "OK", 10*time.Second); err != nil {
			return r, err
		}
		profiling = true
	}
	time.Sleep(time.Until(l.t0.Add(end)))
	gwCPU1, err := gw.rusage()
	if err != nil {
		return r, err
	}
	cpu1 := cpuSeconds()
	l.stop.Store(true)
	wg.Wait()
	if profiling {
		if _, err := gw.ask("cpu stop", "OK", 10*time.Second); err != nil {
			return r, err
		}
		p := filepath.Join(o.profileDir, fmt.Sprintf("gateway-allocs-%s-%d.pprof", sanitize(scen), run))
		if _, err := gw.ask("allocs "+p, "OK", 30*time.Second); err != nil {
			return r, err
		}
	}
	waitOutstanding(devs, drainWait)
	for _, d := range devs {
		_ = d.c.Close()
		<-d.done
	}
	var acks, resps []int32
	for _, d := range devs {
		acks = append(acks, d.acks...)
		resps = append(resps, d.resps...)
		r.Errors += d.errs
	}
	devs = nil
	r.Msgs = int64(len(resps))
	r.Seconds = o.duration.Seconds()
	r.MsgsPerS = float64(r.Msgs) / r.Seconds
	r.Lost = l.sentInWin.Load() - r.Msgs - r.Errors
	if r.Msgs > 0 {
		r.GatewayCPUus = (gwCPU1 - gwCPU0) / float64(r.Msgs) * 1e6
		r.OtherCPUus = (cpu1 - cpu0) / float64(r.Msgs) * 1e6
	}
	r.P50ms, r.P99ms, r.P999ms = percentiles(resps)
	r.AckP50ms, r.AckP99ms, r.AckP999ms = percentiles(acks)
	if m, err := gw.mem(); err == nil {
		r.RSSMiB = float64(m.RSS) / (1 << 20)
	}
	return r, nil
}

// pace offers rate requests/s over the pacer's share of the devices, each
// request stamped with the time it was due, so that a late send counts in
// its latency (no coordinated omission).
func pace(l *load, devs []*rtDevice, g, np int, rate float64, begin, end time.Duration) {
	var mine []*rtDevice
	for i := g; i < len(devs); i += np {
		mine = append(mine, devs[i])
	}
	if len(mine) == 0 {
		return
	}
	var k int64
	next := 0
	for !l.stop.Load() {
		now := l.now()
		if now >= int64(end) {
			return
		}
		// Request k is due at begin + k/rate: send every request whose
		// time has come.
		due := int64(float64(now-int64(begin))/1e9*rate) + 1
		for ; k < due; k++ {
			sched := int64(begin) + int64(float64(k)/rate*1e9)
			if err := mine[next].send(l, sched); err != nil {
				return
			}
			next = (next + 1) % len(mine)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func waitOutstanding(devs []*rtDevice, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var n int64
		for _, dv := range devs {
			n += dv.outstanding.Load()
		}
		if n <= 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// percentiles returns p50, p99 and p99.9 in milliseconds.
func percentiles(us []int32) (p50, p99, p999 float64) {
	if len(us) == 0 {
		return 0, 0, 0
	}
	slices.Sort(us)
	at := func(q float64) float64 {
		i := min(len(us)-1, int(q*float64(len(us))))
		return float64(us[i]) / 1000
	}
	return at(0.50), at(0.99), at(0.999)
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}
