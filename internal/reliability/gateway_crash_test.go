//go:build reliability

package reliability

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/device"
)

// Environment of a gateway child process (see TestGatewayChild).
const (
	childEnv         = "KAFKAHUB_GATEWAY_CHILD"
	childTopicEnv    = "KAFKAHUB_GATEWAY_TOPIC"
	childPresenceEnv = "KAFKAHUB_GATEWAY_PRESENCE"
)

// TestGatewayChild is not a test: it is one gateway instance that
// TestGatewayInstanceCrash runs in a child process (this test binary, run
// again), so that it can be killed with SIGKILL. It prints "LISTEN addr"
// and serves until its stdin closes.
func TestGatewayChild(t *testing.T) {
	instance := os.Getenv(childEnv)
	if instance == "" {
		t.Skip("run by TestGatewayInstanceCrash in a child process")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := tcphub.NewServer(tcphub.Config{
		BrokerAddrs: strings.Split(os.Getenv("KAFKA_BROKERS"), ","), RequestTopic: os.Getenv(childTopicEnv),
		PresenceTopic: os.Getenv(childPresenceEnv), InstanceID: instance, Authenticator: tcphub.AllowAll(),
		ProduceTimeout: 10 * time.Second, Logger: quiet, CreateTopics: true,
	})
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	fmt.Printf("LISTEN %s\n", l.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent holds it open
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	<-served
}

// gatewayProc is a gateway instance in a child process.
type gatewayProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
}

func startGatewayProc(t *testing.T, c *cluster, topic, presence, instance string) *gatewayProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGatewayChild$", "-test.timeout=30m")
	cmd.Env = append(os.Environ(), childEnv+"="+instance, childTopicEnv+"="+topic, childPresenceEnv+"="+presence,
		"KAFKA_BROKERS="+strings.Join(c.Addrs(), ","))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	g := &gatewayProc{cmd: cmd, stdin: stdin}
	t.Cleanup(g.stop)
	lines := bufio.NewScanner(stdout)
	listening := make(chan string, 1)
	go func() { // owned by the child: ends when its stdout closes
		defer close(listening)
		for lines.Scan() {
			if addr, ok := strings.CutPrefix(lines.Text(), "LISTEN "); ok {
				listening <- addr
			} else {
				fmt.Fprintf(os.Stderr, "gateway %s: %s\n", instance, lines.Text())
			}
		}
	}()
	select {
	case addr, ok := <-listening:
		if !ok {
			t.Fatalf("gateway %s exited without listening (its output is above)", instance)
		}
		g.addr = addr
	case <-time.After(120 * time.Second):
		t.Fatalf("gateway %s did not start listening", instance)
	}
	return g
}

// stop closes the child's stdin, which shuts it down, and waits for it;
// SIGKILL after 60 s.
func (g *gatewayProc) stop() {
	_ = g.stdin.Close()
	done := make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = g.cmd.Process.Kill()
		<-done
	}
}

// balancer spreads device connections over gateway instances round robin,
// as a deployment's TCP load balancer does; a backend that refuses the
// connection (a crashed instance) is skipped. Connections are piped byte
// for byte; when either side ends, both are closed.
type balancer struct {
	l        net.Listener
	backends []string
	next     atomic.Uint64
	mu       sync.Mutex
	conns    map[net.Conn]int // device-side connection -> backend index
	wg       sync.WaitGroup
}

func startBalancer(t *testing.T, backends []string) *balancer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &balancer{l: l, backends: backends, conns: map[net.Conn]int{}}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.close)
	return b
}

func (b *balancer) accept() {
	defer b.wg.Done()
	for {
		dc, err := b.l.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go b.pipe(dc)
	}
}

func (b *balancer) pipe(dc net.Conn) {
	defer b.wg.Done()
	defer dc.Close()
	var bc net.Conn
	idx := -1
	for range b.backends {
		i := int(b.next.Add(1) % uint64(len(b.backends)))
		c, err := net.DialTimeout("tcp", b.backends[i], 5*time.Second)
		if err == nil {
			bc, idx = c, i
			break
		}
	}
	if bc == nil {
		return
	}
	defer bc.Close()
	b.mu.Lock()
	b.conns[dc] = idx
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, dc)
		b.mu.Unlock()
	}()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(bc, dc); done <- struct{}{} }()
	go func() { _, _ = io.Copy(dc, bc); done <- struct{}{} }()
	<-done
	_ = dc.Close()
	_ = bc.Close()
	<-done
}

// on counts the device connections currently piped to backend i.
func (b *balancer) on(i int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, idx := range b.conns {
		if idx == i {
			n++
		}
	}
	return n
}

func (b *balancer) close() {
	_ = b.l.Close()
	b.mu.Lock()
	for c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// TestGatewayInstanceCrash: three gateway instances in child processes
// behind a TCP balancer; 300 devices (tcphub's Go client) send requests
// continuously and wait for each response. One instance is killed with
// SIGKILL. Its devices reconnect through the balancer to the other two;
// requests without an ack are resent by the client under the same id, and
// a request acked by the dead instance whose response never came (the
// response went to the dead instance's reply topic: Reply delivers at most
// once) is resent by the device under the same id after 10 s without a
// response. Every request a device saw acked is in Kafka, and every
// request id gets its response.
func TestGatewayInstanceCrash(t *testing.T) {
	const devices, think, responseWait = 300, 250 * time.Millisecond, 10 * time.Second
	c := realCluster(t)
	topic := c.NewTopic(t, 6)
	presence := topic + ".presence"
	ctx := ctxFor(t, 15*time.Minute)

	// Workers: echo each request through tcphub.Reply.
	wp, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: c.Addrs(), Topic: topic, Logger: quiet})
	require.NoError(t, err)
	defer wp.Close(context.Background())
	workers, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs: c.Addrs(), Topics: []string{topic}, GroupName: kafkatest.UniqueName("crash-workers"),
		Logger: quiet, NumWorkers: 8,
	})
	require.NoError(t, err)
	defer workers.Close(context.Background())
	require.NoError(t, workers.RegisterHandler(ctx, func(ctx context.Context, _ int, m kafka.Message) error {
		if _, err := tcphub.ParseRequest(m); err != nil {
			return nil // not a gateway request
		}
		return tcphub.Reply(ctx, wp, m, 200, m.Value())
	}))
	workers.Start()

	var gws []*gatewayProc
	var addrs []string
	for i := range 3 {
		g := startGatewayProc(t, c, topic, presence, kafkatest.UniqueName(fmt.Sprintf("gw%d", i)))
		gws = append(gws, g)
		addrs = append(addrs, g.addr)
	}
	lb := startBalancer(t, addrs)

	type devState struct {
		cl       *device.Client
		sessions []time.Time // welcome times, under mu
	}
	var mu sync.Mutex
	devs := make([]*devState, devices)
	for d := range devices {
		dv := &devState{}
		devs[d] = dv
		cl, err := device.Dial(ctx, lb.l.Addr().String(), device.Options{
			DeviceID: fmt.Sprintf("dev-%03d", d), Logger: quiet,
			MinBackoff: 200 * time.Millisecond, MaxBackoff: 5 * time.Second,
			OnSession: func(string) {
				mu.Lock()
				dv.sessions = append(dv.sessions, time.Now())
				mu.Unlock()
			},
		})
		require.NoError(t, err)
		dv.cl = cl
		defer cl.Close()
	}

	var acked, answered sync.Map // request id -> true
	var issued, nAcked, nAnswered, ackResends, responseResends, requestErrors atomic.Int64
	var stopping atomic.Bool
	var wg sync.WaitGroup
	for d, dv := range devs {
		wg.Add(1)
		go func() { // never touches t
			defer wg.Done()
			for seq := 0; !stopping.Load(); seq++ {
				id := fmt.Sprintf("d%03d-%d", d, seq)
				payload := fmt.Appendf(nil, `{"dev":%d,"seq":%d}`, d, seq)
				issued.Add(1)
				for {
					sid := dv.cl.SessionID()
					rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
					call, err := dv.cl.Request(rctx, payload, device.WithRequestID(id))
					cancel()
					if err != nil {
						if ctx.Err() != nil || errors.Is(err, device.ErrClosed) {
							return
						}
						requestErrors.Add(1) // e.g. unavailable while Kafka is slow: resend
						time.Sleep(100 * time.Millisecond)
						continue
					}
					if _, loaded := acked.LoadOrStore(id, true); !loaded {
						nAcked.Add(1)
					}
					if now := dv.cl.SessionID(); sid != "" && now != sid {
						ackResends.Add(1) // acked on a later connection: the client resent it
					}
					rctx, cancel = context.WithTimeout(ctx, responseWait)
					resp, err := call.Response(rctx)
					cancel()
					if err == nil && resp.ID == id {
						answered.Store(id, true)
						nAnswered.Add(1)
						break
					}
					if ctx.Err() != nil || errors.Is(err, device.ErrClosed) {
						return
					}
					responseResends.Add(1)
				}
				time.Sleep(think)
			}
		}()
	}
	progress := func(what string, more int64) {
		t.Helper()
		n := nAnswered.Load()
		deadline := time.Now().Add(120 * time.Second)
		for nAnswered.Load() < n+more {
			if time.Now().After(deadline) {
				t.Fatalf("no progress after %s: %d answered (wanted %d more than %d in 120 s); %d acknowledged, %d request errors, %d resent after an unanswered response",
					what, nAnswered.Load(), more, n, nAcked.Load(), requestErrors.Load(), responseResends.Load())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	progress("start", 3*devices)

	victimDevices := lb.on(0)
	killedAt := time.Now()
	require.NoError(t, gws[0].cmd.Process.Signal(syscall.SIGKILL))
	_ = gws[0].cmd.Wait()
	// Every device of the dead instance is welcomed again elsewhere.
	reconnects := func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		var out []time.Duration
		for _, dv := range devs {
			for _, at := range dv.sessions {
				if at.After(killedAt) {
					out = append(out, at.Sub(killedAt))
					break
				}
			}
		}
		return out
	}
	deadline := time.Now().Add(120 * time.Second)
	for len(reconnects()) < victimDevices {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d devices of the killed instance reconnected", len(reconnects()), victimDevices)
		}
		time.Sleep(50 * time.Millisecond)
	}
	progress("the crash", 3*devices)
	stopping.Store(true)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(3 * time.Minute):
		t.Fatalf("devices still waiting for responses: %d issued, %d answered", issued.Load(), nAnswered.Load())
	}

	// Every acked request is in Kafka.
	inKafka := map[string]int{}
	for _, r := range testkit.ReadAll(ctx, t, c.Addrs(), topic) {
		inKafka[r.Headers[tcphub.HeaderRequest]]++
	}
	lost, kafkaDups := 0, 0
	acked.Range(func(k, _ any) bool {
		if inKafka[k.(string)] == 0 {
			lost++
		}
		return true
	})
	for _, n := range inKafka {
		kafkaDups += n - 1
	}
	unanswered := 0
	acked.Range(func(k, _ any) bool {
		if _, ok := answered.Load(k); !ok {
			unanswered++
		}
		return true
	})
	rc := reconnects()
	slices.Sort(rc)
	pct := func(p float64) time.Duration {
		if len(rc) == 0 {
			return 0
		}
		return rc[min(len(rc)-1, int(p*float64(len(rc))))].Round(time.Millisecond)
	}
	connected := 0
	for _, dv := range devs {
		if dv.cl.SessionID() != "" {
			connected++
		}
	}
	figures(t, "gateway-instance-crash", "instances", 3, "devices", devices, "devices_on_killed", victimDevices,
		"reconnected", len(rc), "reconnect_p50", pct(0.5), "reconnect_p99", pct(0.99),
		"requests", issued.Load(), "acknowledged", nAcked.Load(), "answered", nAnswered.Load(), "lost", lost,
		"unanswered", unanswered, "resent_before_ack", ackResends.Load(), "resent_after_lost_response", responseResends.Load(),
		"request_errors", requestErrors.Load(), "in_kafka_twice", kafkaDups, "connected_at_end", connected)
	assert.Positive(t, victimDevices, "the killed instance held devices")
	assert.GreaterOrEqual(t, len(rc), victimDevices, "every device of the killed instance reconnected")
	assert.Zero(t, lost, "acknowledged requests missing from Kafka")
	assert.EqualValues(t, issued.Load(), nAnswered.Load(), "every request id got its response")
	assert.Zero(t, unanswered, "acknowledged requests without a response")
	assert.Equal(t, devices, connected, "every device is connected at the end")
	assert.Zero(t, lb.on(0), "no device is on the killed instance")
}
