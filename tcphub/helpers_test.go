package tcphub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// TestMain fails the package if any goroutine outlives the tests. The one
// exception is go-metrics' meter arbiter, a single process-wide goroutine
// Sarama starts on first use.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}

// quiet keeps expected warnings out of the test output; set TCPHUB_TEST_LOG
// to see them.
var quiet = func() *slog.Logger {
	if os.Getenv("TCPHUB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}()

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// gateway is a running Server on a loopback listener.
type gateway struct {
	*tcphub.Server
	addr   string
	served chan error
}

// startGateway starts a server for the cluster and request topic, with
// test-friendly defaults that cfg may override, and shuts it down at the
// end of the test.
func startGateway(t *testing.T, cluster *kafkatest.Cluster, topic string, tweak func(*tcphub.Config)) *gateway {
	t.Helper()
	cfg := tcphub.Config{
		BrokerAddrs:   cluster.Addrs(),
		RequestTopic:  topic,
		PresenceTopic: topic + ".presence",
		InstanceID:    kafkatest.UniqueName("gw"),
		CreateTopics:  true,
		Authenticator: tcphub.AllowAll(),
		Logger:        quiet,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := tcphub.NewServer(cfg)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, srv.Start(testCtx(t, 30*time.Second)))
	g := &gateway{Server: srv, addr: l.Addr().String(), served: make(chan error, 1)}
	go func() { g.served <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() { g.stop(t) })
	return g
}

func (g *gateway) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, g.Shutdown(ctx))
	select {
	case err := <-g.served:
		require.ErrorIs(t, err, tcphub.ErrServerClosed)
		g.served <- err // for a second stop
	case <-ctx.Done():
		t.Fatal("Serve did not return after Shutdown")
	}
}

// newProducer returns a producer closed at the end of the test.
func newProducer(t *testing.T, cluster *kafkatest.Cluster, topic string) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(testCtx(t, 30*time.Second), &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, p.Initialise(testCtx(t, 30*time.Second)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, p.Close(ctx))
	})
	return p
}

// startWorker consumes topic in a consumer group and answers each request
// with handle's status and payload through tcphub.Reply.
func startWorker(t *testing.T, cluster *kafkatest.Cluster, topic string, handle func(tcphub.RequestInfo, kafka.Message) (int, []byte)) {
	t.Helper()
	p := newProducer(t, cluster, topic)
	g, err := kafka.NewConsumerGroup(testCtx(t, 30*time.Second), &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: kafkatest.UniqueName("workers"), Logger: quiet,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, g.Close(ctx))
	})
	require.NoError(t, g.RegisterHandler(context.Background(), func(ctx context.Context, _ int, msg kafka.Message) error {
		ri, err := tcphub.ParseRequest(msg)
		if err != nil {
			return nil // not ours: skip
		}
		status, payload := handle(ri, msg)
		return tcphub.Reply(ctx, p, msg, status, payload)
	}))
	g.Start()
}

// echo answers 200 with the request's payload.
func echo(_ tcphub.RequestInfo, msg kafka.Message) (int, []byte) { return 200, msg.Value() }

// rawDevice speaks the wire protocol directly, to test the server's
// reactions frame by frame.
type rawDevice struct {
	t  *testing.T
	nc net.Conn
	r  *wire.Reader
	w  *wire.Writer
}

func dialRaw(t *testing.T, addr string) *rawDevice {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	return &rawDevice{t: t, nc: nc, r: wire.NewReader(nc, 0), w: wire.NewWriter(nc, 0)}
}

func (d *rawDevice) send(f wire.Frame) {
	d.t.Helper()
	_ = d.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	require.NoError(d.t, d.w.WriteFrame(f))
}

func (d *rawDevice) sendRaw(b []byte) {
	d.t.Helper()
	_ = d.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := d.nc.Write(b)
	require.NoError(d.t, err)
}

// next reads one frame within d.
func (d *rawDevice) next(timeout time.Duration) (wire.Frame, error) {
	_ = d.nc.SetReadDeadline(time.Now().Add(timeout))
	return d.r.ReadFrame()
}

func (d *rawDevice) expect(typ wire.Type) wire.Frame {
	d.t.Helper()
	f, err := d.next(10 * time.Second)
	require.NoError(d.t, err, "waiting for %s", typ)
	require.Equal(d.t, typ, f.Type, "got %+v", f)
	return f
}

// expectError reads an error frame with that code, then the end of the
// stream.
func (d *rawDevice) expectError(code wire.Code) wire.Frame {
	d.t.Helper()
	f := d.expect(wire.TypeError)
	require.Equal(d.t, code, f.Code, "msg %q", f.Message)
	d.expectClosed()
	return f
}

func (d *rawDevice) expectClosed() {
	d.t.Helper()
	f, err := d.next(10 * time.Second)
	require.Error(d.t, err, "expected the server to close, got %+v", f)
	require.True(d.t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err), "expected EOF, got %v", err)
	_ = d.nc.Close() // as a device does once the server has closed
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

func (d *rawDevice) hello(device string) wire.Frame {
	d.t.Helper()
	d.send(wire.Frame{Type: wire.TypeHello, Device: device, Client: "raw-test/1"})
	return d.expect(wire.TypeWelcome)
}

// request sends a request and returns the frames up to its ack or error.
func (d *rawDevice) request(id string, payload string) wire.Frame {
	d.t.Helper()
	d.send(wire.Frame{Type: wire.TypeRequest, ID: id, Payload: []byte(payload)})
	for {
		f, err := d.next(20 * time.Second)
		require.NoError(d.t, err, "waiting for the ack of %s", id)
		if (f.Type == wire.TypeAck || f.Type == wire.TypeError) && f.ID == id {
			return f
		}
	}
}

// frames collects frames read by a goroutine, for tests that read while
// doing something else.
type frames struct {
	mu     sync.Mutex
	got    []wire.Frame
	notify chan struct{}
	done   chan struct{}
	err    error
}

func (d *rawDevice) collect() *frames {
	fs := &frames{notify: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(fs.done)
		for {
			_ = d.nc.SetReadDeadline(time.Now().Add(time.Minute))
			f, err := d.r.ReadFrame()
			fs.mu.Lock()
			if err != nil {
				fs.err = err
				fs.mu.Unlock()
				return
			}
			fs.got = append(fs.got, f)
			fs.mu.Unlock()
			select {
			case fs.notify <- struct{}{}:
			default:
			}
		}
	}()
	d.t.Cleanup(func() {
		_ = d.nc.Close()
		<-fs.done
	})
	return fs
}

// waitFor waits until pred holds for the frames collected so far.
func (fs *frames) waitFor(t *testing.T, d time.Duration, what string, pred func([]wire.Frame) bool) []wire.Frame {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		fs.mu.Lock()
		got := append([]wire.Frame(nil), fs.got...)
		err := fs.err
		fs.mu.Unlock()
		if pred(got) {
			return got
		}
		if err != nil {
			t.Fatalf("%s: connection ended (%v) after %d frames: %s", what, err, len(got), summary(got))
		}
		select {
		case <-fs.notify:
		case <-fs.done:
		case <-timer.C:
			t.Fatalf("%s: not within %v; got %d frames: %s", what, d, len(got), summary(got))
		}
	}
}

func summary(fs []wire.Frame) string {
	s := ""
	for i, f := range fs {
		if i == 20 {
			return s + " ..."
		}
		s += fmt.Sprintf(" %s/%s%s", f.Type, f.ID, f.Code)
	}
	return s
}

func find(fs []wire.Frame, typ wire.Type, id string) (wire.Frame, bool) {
	for _, f := range fs {
		if f.Type == typ && f.ID == id {
			return f, true
		}
	}
	return wire.Frame{}, false
}
