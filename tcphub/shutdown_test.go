package tcphub_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// loadDevice sends pipelined requests until the server says goodbye, and
// records what was acked.
type loadDevice struct {
	d        *rawDevice
	name     string
	acked    []string
	refused  map[wire.Code]int
	goodbye  wire.Frame
	afterBye int // frames other than ack/error received after the goodbye
	done     chan error
}

func runLoad(t *testing.T, addr, name string, window int, total *atomic.Int64) *loadDevice {
	ld := &loadDevice{d: dialRaw(t, addr), name: name, refused: map[wire.Code]int{}, done: make(chan error, 1)}
	ld.d.hello(name)
	slots := make(chan struct{}, window)
	stop := make(chan struct{})
	var stopOnce sync.Once
	go func() { // reader
		defer stopOnce.Do(func() { close(stop) })
		for {
			_ = ld.d.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			f, err := ld.d.r.ReadFrame()
			if err != nil {
				_ = ld.d.nc.Close() // as a device does when the server closes
				if ld.goodbye.Type == "" {
					ld.done <- fmt.Errorf("%s: connection ended without goodbye: %w", name, err)
					return
				}
				ld.done <- nil
				return
			}
			switch f.Type {
			case wire.TypeAck:
				ld.acked = append(ld.acked, f.ID)
				total.Add(1)
				<-slots
			case wire.TypeError:
				ld.refused[f.Code]++
				if f.ID != "" {
					<-slots
				}
			case wire.TypeGoodbye:
				ld.goodbye = f
				stopOnce.Do(func() { close(stop) })
			default:
				if ld.goodbye.Type != "" {
					ld.afterBye++
				}
			}
		}
	}()
	go func() { // writer
		for i := 0; ; i++ {
			select {
			case slots <- struct{}{}:
			case <-stop:
				return
			}
			_ = ld.d.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if ld.d.w.WriteFrame(wire.Frame{Type: wire.TypeRequest, ID: fmt.Sprintf("%s-%d", name, i), Payload: fmt.Appendf(nil, `{"n":%d}`, i)}) != nil {
				return
			}
		}
	}()
	return ld
}

// TestGracefulShutdownLosesNoAck: devices write continuously while the
// gateway shuts down; every request that was acked is in Kafka, and every
// device got a goodbye first.
func TestGracefulShutdownLosesNoAck(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 3)
	var disconnects sync.Map
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.RateLimit = -1
		c.GoodbyeDelay = 1500 * time.Millisecond
		c.OnDisconnect = func(ci tcphub.ConnInfo, err error) { disconnects.Store(ci.DeviceID, err) }
	})
	var total atomic.Int64
	var devices []*loadDevice
	for i := range 5 {
		devices = append(devices, runLoad(t, gw.addr, fmt.Sprintf("load-%d", i), 8, &total))
	}
	ctx := testCtx(t, 30*time.Second)
	for total.Load() < 200 {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d acks before the shutdown", total.Load())
		case <-time.After(time.Millisecond):
		}
	}
	start := time.Now()
	gw.stop(t)
	t.Logf("shutdown took %v with %d acks so far", time.Since(start), total.Load())

	acked := map[string]bool{}
	for _, ld := range devices {
		select {
		case err := <-ld.done:
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatalf("%s: still connected after shutdown", ld.name)
		}
		assert.Equal(t, 1500, ld.goodbye.AfterMS, "%s got goodbye", ld.name)
		for _, id := range ld.acked {
			acked[id] = true
		}
		err, _ := disconnects.Load(ld.name)
		assert.ErrorIs(t, err.(error), tcphub.ErrServerClosed, ld.name)
	}
	require.NotEmpty(t, acked)

	inKafka := map[string]bool{}
	for _, r := range testkit.ReadAll(testCtx(t, 30*time.Second), t, cluster.Addrs(), topic) {
		inKafka[r.Headers[tcphub.HeaderRequest]] = true
	}
	missing := 0
	for id := range acked {
		if !inKafka[id] {
			missing++
			t.Errorf("request %s was acked but is not in Kafka", id)
		}
	}
	t.Logf("%d requests acked, %d records in Kafka, %d acked and missing", len(acked), len(inKafka), missing)

	// The devices are announced offline.
	p := newProducer(t, cluster, topic)
	pusher, err := tcphub.NewPusher(testCtx(t, 30*time.Second), tcphub.PusherConfig{
		BrokerAddrs: cluster.Addrs(), Producer: p, PresenceTopic: topic + ".presence", Logger: quiet,
	})
	require.NoError(t, err)
	defer pusher.Close()
	for _, ld := range devices {
		_, online := pusher.Lookup(ld.name)
		assert.False(t, online, "%s still online in presence", ld.name)
	}
}

// TestShutdownDeadline: when ctx ends before Kafka acknowledges, Shutdown
// gives up on the remaining requests (no ack is sent for them), still stops
// everything, and returns ctx's error.
func TestShutdownDeadline(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	if cluster.Fake() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, nil)
	d := dialRaw(t, gw.addr)
	d.hello("stuck")
	require.Equal(t, wire.TypeAck, d.request("warm-up", `{}`).Type)
	release, held := holdProduce(t, cluster, topic)
	fs := d.collect()
	d.send(wire.Frame{Type: wire.TypeRequest, ID: "held", Payload: []byte(`{}`)})
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach Kafka")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	go func() {
		// Once the device is disconnected, let Kafka answer, so the
		// producer's close can finish.
		for !fs.ended() {
			time.Sleep(time.Millisecond)
		}
		release()
	}()
	err := gw.Shutdown(ctx)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	got := fs.waitFor(t, 10*time.Second, "close", func([]wire.Frame) bool { return fs.ended() })
	_, acked := find(got, wire.TypeAck, "held")
	assert.False(t, acked, "no ack for a request Kafka had not acknowledged when the shutdown gave up")
	_, bye := find(got, wire.TypeGoodbye, "")
	assert.True(t, bye)
}

func (fs *frames) ended() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.err != nil
}
