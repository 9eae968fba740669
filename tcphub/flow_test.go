package tcphub_test

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// failProduceTo makes the embedded broker refuse produce requests for topic
// with code while fail returns true.
func failProduceTo(cluster *kafkatest.Cluster, topic string, code int16, fail func() bool) {
	fake := cluster.Fake()
	fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		ours := false
		for _, rt := range r.Topics {
			ours = ours || rt.Topic == topic
		}
		if !ours || !fail() {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// TestAckOnlyAfterKafka: when Kafka refuses the record the device gets
// unavailable, never an ack, and the connection stays usable.
func TestAckOnlyAfterKafka(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	if cluster.Fake() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, nil)
	d := dialRaw(t, gw.addr)
	d.hello("dev-1")
	require.Equal(t, wire.TypeAck, d.request("before", `{}`).Type)

	var failing atomic.Bool
	failing.Store(true)
	failProduceTo(cluster, topic, kerr.TopicAuthorizationFailed.Code, failing.Load)
	f := d.request("denied", `{"x":1}`)
	require.Equal(t, wire.TypeError, f.Type, "%+v", f)
	assert.Equal(t, wire.CodeUnavailable, f.Code)
	assert.Equal(t, "denied", f.ID)
	assert.Positive(t, f.AfterMS)

	failing.Store(false)
	require.Equal(t, wire.TypeAck, d.request("denied", `{"x":1}`).Type, "resent with the same id, now acked")
	recs := testkit.ReadAll(testCtx(t, 30*time.Second), t, cluster.Addrs(), topic)
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.Headers[tcphub.HeaderRequest])
	}
	assert.Equal(t, []string{"before", "denied"}, ids)
}

// TestProduceTimeout: a request Kafka does not acknowledge within
// ProduceTimeout gets unavailable.
func TestProduceTimeout(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	if cluster.Fake() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.ProduceTimeout = 300 * time.Millisecond })
	d := dialRaw(t, gw.addr)
	d.hello("dev-1")
	require.Equal(t, wire.TypeAck, d.request("warm-up", `{}`).Type)
	release, _ := holdProduce(t, cluster, topic)
	start := time.Now()
	f := d.request("stuck", `{}`)
	assert.Equal(t, wire.CodeUnavailable, f.Code, "%+v", f)
	assert.Less(t, time.Since(start), 5*time.Second)
	release()
}

// holdProduce makes the embedded broker hold the first produce request for
// topic until release is called (also called at cleanup); held is closed
// once that request has reached the broker.
func holdProduce(t *testing.T, cluster *kafkatest.Cluster, topic string) (release func(), held <-chan struct{}) {
	fake := cluster.Fake()
	gate := make(chan struct{})
	arrived := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	var holding atomic.Bool
	fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.ProduceRequest)
		for _, rt := range r.Topics {
			if rt.Topic == topic && !holding.Swap(true) {
				close(arrived)
				fake.SleepControl(func() { <-gate })
			}
		}
		fake.KeepControl()
		return nil, nil, false
	})
	return release, arrived
}

func TestMaxInFlight(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	if cluster.Fake() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.MaxInFlight = 2 })
	d := dialRaw(t, gw.addr)
	w := d.hello("dev-1")
	assert.Equal(t, 2, w.MaxInFlight)
	require.Equal(t, wire.TypeAck, d.request("warm-up", `{}`).Type)

	release, _ := holdProduce(t, cluster, topic)
	fs := d.collect()
	for i := range 3 {
		d.send(wire.Frame{Type: wire.TypeRequest, ID: fmt.Sprintf("r-%d", i), Payload: []byte(`{}`)})
	}
	got := fs.waitFor(t, 10*time.Second, "too_many_in_flight", func(f []wire.Frame) bool {
		_, ok := find(f, wire.TypeError, "r-2")
		return ok
	})
	e, _ := find(got, wire.TypeError, "r-2")
	assert.Equal(t, wire.CodeTooManyInFlight, e.Code)
	_, acked := find(got, wire.TypeAck, "r-0")
	assert.False(t, acked, "nothing acked while Kafka holds the record")
	release()
	fs.waitFor(t, 30*time.Second, "acks after release", func(f []wire.Frame) bool {
		_, a0 := find(f, wire.TypeAck, "r-0")
		_, a1 := find(f, wire.TypeAck, "r-1")
		return a0 && a1
	})
	// A slot is free again.
	d.send(wire.Frame{Type: wire.TypeRequest, ID: "r-2", Payload: []byte(`{}`)})
	fs.waitFor(t, 30*time.Second, "ack of the resent request", func(f []wire.Frame) bool {
		_, ok := find(f, wire.TypeAck, "r-2")
		return ok
	})
}

func TestRateLimit(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.RateLimit = 0.5; c.RateBurst = 3 })
	d := dialRaw(t, gw.addr)
	w := d.hello("chatty")
	assert.Equal(t, 30, w.RatePerMin, "the welcome announces the limit")
	assert.Equal(t, 3, w.Burst)
	for i := range 3 {
		require.Equal(t, wire.TypeAck, d.request(fmt.Sprintf("r-%d", i), `{}`).Type)
	}
	f := d.request("r-3", `{}`)
	require.Equal(t, wire.TypeError, f.Type)
	assert.Equal(t, wire.CodeRateLimited, f.Code)
	assert.Greater(t, f.AfterMS, 100, "after_ms says when a token is back")
	// Another device has its own bucket.
	other := dialRaw(t, gw.addr)
	other.hello("quiet")
	require.Equal(t, wire.TypeAck, other.request("q-1", `{}`).Type)

	// Defaults, and no limit.
	def := startGateway(t, cluster, topic, nil)
	w = dialRaw(t, def.addr).hello("default-rate")
	assert.Equal(t, 6000, w.RatePerMin)
	assert.Equal(t, 100, w.Burst)
	unlimited := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.RateLimit = -1 })
	w = dialRaw(t, unlimited.addr).hello("unlimited")
	assert.Zero(t, w.RatePerMin, "no limit: the fields are absent")
	assert.Zero(t, w.Burst)
}

func TestUnknownRoute(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	telemetry := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.Routes = map[string]string{"telemetry": telemetry} })
	d := dialRaw(t, gw.addr)
	d.hello("router")
	d.send(wire.Frame{Type: wire.TypeRequest, ID: "r-1", Route: "nowhere", Payload: []byte(`{}`)})
	f := d.expect(wire.TypeError)
	assert.Equal(t, wire.CodeNotFound, f.Code)
	d.send(wire.Frame{Type: wire.TypeRequest, ID: "r-2", Route: "telemetry", Payload: []byte(`{"t":1}`)})
	assert.Equal(t, "r-2", d.expect(wire.TypeAck).ID)
	recs := testkit.ReadAll(testCtx(t, 30*time.Second), t, cluster.Addrs(), telemetry)
	require.Len(t, recs, 1)
	assert.Equal(t, "telemetry", recs[0].Headers[tcphub.HeaderRoute])
}

// TestSlowConsumerDisconnected: a device that stops reading is
// disconnected once its queue fills, while another device's round trips
// keep completing.
func TestSlowConsumerDisconnected(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	var mu sync.Mutex
	reasons := map[string]error{}
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.QueueSize = 16
		c.RateLimit = -1
		c.OnDisconnect = func(ci tcphub.ConnInfo, err error) {
			mu.Lock()
			reasons[ci.DeviceID] = err
			mu.Unlock()
		}
	})
	startWorker(t, cluster, topic, echo)

	slow := dialRaw(t, gw.addr)
	slow.hello("slow")
	fast := dialRaw(t, gw.addr)
	fast.hello("fast")
	fs := fast.collect()

	// The fast device does round trips while the slow one is flooded.
	var roundTrips atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			id := fmt.Sprintf("f-%d", i)
			// Each write gets its own deadline: the one hello set
			// expires while a loaded machine is still flooding.
			_ = fast.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := fast.w.WriteFrame(wire.Frame{Type: wire.TypeRequest, ID: id, Payload: []byte(`{}`)}); err != nil {
				done <- err
				return
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				fs.mu.Lock()
				_, ok := find(fs.got, wire.TypeResponse, id)
				e, failed := find(fs.got, wire.TypeError, id)
				fs.mu.Unlock()
				if ok {
					break
				}
				if failed {
					done <- fmt.Errorf("request %s: %s %s", id, e.Code, e.Message)
					return
				}
				if time.Now().After(deadline) {
					done <- fmt.Errorf("no response to %s", id)
					return
				}
				select {
				case <-fs.notify:
				case <-time.After(5 * time.Millisecond):
				}
			}
			roundTrips.Add(1)
		}
		done <- nil
	}()

	big := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
	pushes := 0
	var err error
	for err == nil && pushes < 10_000 {
		err = gw.SendToDevice(context.Background(), "slow", big)
		pushes++
	}
	require.ErrorIs(t, err, tcphub.ErrSlowConsumer, "after %d pushes", pushes)
	t.Logf("slow consumer detected after %d pushes of 64 KiB", pushes)
	require.ErrorIs(t, gw.SendToDevice(context.Background(), "slow", big), tcphub.ErrNotConnected)

	// Round trips go on during and after the flood.
	before := roundTrips.Load()
	deadline := time.Now().Add(20 * time.Second)
	for roundTrips.Load() < before+3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
	assert.GreaterOrEqual(t, roundTrips.Load(), before+3)

	ctx2 := testCtx(t, 10*time.Second)
	for {
		mu.Lock()
		r := reasons["slow"]
		mu.Unlock()
		if r != nil {
			assert.ErrorIs(t, r, tcphub.ErrSlowConsumer)
			break
		}
		select {
		case <-ctx2.Done():
			t.Fatal("slow device not torn down")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestSlowConsumerByQueueBytes: the outgoing queue is bounded in bytes
// too (MaxQueueBytes), not only in frames: a device that stops reading
// while large pushes arrive is disconnected once they pass the byte
// bound, with far fewer frames queued than QueueSize.
func TestSlowConsumerByQueueBytes(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	const queueBytes, push = 256 << 10, 64 << 10
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.QueueSize = 100_000
		c.MaxQueueBytes = queueBytes
	})
	slow := dialRaw(t, gw.addr)
	slow.hello("slow")
	_ = slow.nc.(*net.TCPConn).SetReadBuffer(4096) // the kernel absorbs less before the queue grows

	big := []byte(`"` + strings.Repeat("x", push) + `"`)
	pushes := 0
	var err error
	for err == nil && pushes < 2_000 { // 125 MiB: far more than the socket buffers hold
		err = gw.SendToDevice(context.Background(), "slow", big)
		pushes++
	}
	require.ErrorIs(t, err, tcphub.ErrSlowConsumer, "after %d pushes of 64 KiB", pushes)
	t.Logf("slow consumer detected after %d pushes of 64 KiB", pushes)

	// What was dropped is what the queue held plus the refused push: at
	// most queueBytes of frames, each a little over 64 KiB.
	m := regexp.MustCompile(`(?m)^tcphub_queue_dropped_frames_total\{[^}]*\} (\d+)$`).FindStringSubmatch(scrape(t, gw.MetricsHandler()))
	require.NotNil(t, m, "tcphub_queue_dropped_frames_total")
	dropped, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	assert.Positive(t, dropped)
	assert.LessOrEqual(t, dropped, queueBytes/push+1, "frames queued beyond MaxQueueBytes")
}

// TestDuplicateDeviceReplacesOld: a second connection with the same device
// id wins; the first gets duplicate and is closed.
func TestDuplicateDeviceReplacesOld(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, nil)
	startWorker(t, cluster, topic, echo)
	old := dialRaw(t, gw.addr)
	oldWelcome := old.hello("twin")
	newer := dialRaw(t, gw.addr)
	newWelcome := newer.hello("twin")
	assert.NotEqual(t, oldWelcome.Session, newWelcome.Session)
	old.expectError(wire.CodeDuplicate)

	fs := newer.collect()
	newer.send(wire.Frame{Type: wire.TypeRequest, ID: "r-1", Payload: []byte(`{"v":1}`)})
	fs.waitFor(t, 30*time.Second, "response on the new connection", func(f []wire.Frame) bool {
		_, ok := find(f, wire.TypeResponse, "r-1")
		return ok
	})
	_, sessions := gw.Connections()
	assert.Equal(t, 1, sessions)
	require.NoError(t, gw.SendToConn(context.Background(), newWelcome.Session, []byte(`{}`)))
	assert.ErrorIs(t, gw.SendToConn(context.Background(), oldWelcome.Session, []byte(`{}`)), tcphub.ErrNotConnected)
}

// TestResponseRacingItsAck: the worker's response reaches the gateway in
// the instant the request is answered, after it has left the pending list
// (so the response is not held) but, before the fix, before its ack was
// queued: a CI run on the franz-go engine saw the response first. The hook
// stops the producer's delivery goroutine right after the request is
// answered until the response has reached the gateway.
func TestResponseRacingItsAck(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	var gwp atomic.Pointer[gateway]
	var waited atomic.Int32
	var raced atomic.Bool // the response arrived while the hook held the delivery goroutine
	hookDone := make(chan struct{})
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		tcphub.SetAnsweredHook(c, func() {
			g := gwp.Load()
			if g == nil || waited.Add(1) != 1 {
				return // only the first request
			}
			defer close(hookDone)
			want := `tcphub_responses_delivered_total{instance_id="` + g.InstanceID() + `"} 1`
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if strings.Contains(scrapeText(g.MetricsHandler()), want) {
					raced.Store(true)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	})
	gwp.Store(gw)
	startWorker(t, cluster, topic, echo)
	d := dialRaw(t, gw.addr)
	d.hello("racer")
	d.send(wire.Frame{Type: wire.TypeRequest, ID: "r-1", Payload: []byte(`{"n":1}`)})
	f, err := d.next(30 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, wire.TypeAck, f.Type, "the first frame after the request: got %+v", f)
	f, err = d.next(30 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, wire.TypeResponse, f.Type, "got %+v", f)
	select {
	case <-hookDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the hook did not return")
	}
	assert.EqualValues(t, 1, waited.Load())
	assert.True(t, raced.Load(), "the response reached the gateway inside the window the test holds open; otherwise the test showed nothing")
}

// TestResponseNeverBeforeAck: a response that reaches the gateway while its
// request still waits for Kafka's acknowledgement is held until the ack is
// queued.
func TestResponseNeverBeforeAck(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	if cluster.Fake() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, nil)
	d := dialRaw(t, gw.addr)
	w := d.hello("eager")
	require.Equal(t, wire.TypeAck, d.request("warm-up", `{}`).Type)
	p := newProducer(t, cluster, topic)

	release, held := holdProduce(t, cluster, topic)
	fs := d.collect()
	d.send(wire.Frame{Type: wire.TypeRequest, ID: "early", Payload: []byte(`{}`)})
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach Kafka")
	}
	// A worker's answer, faster than the gateway's ack.
	require.NoError(t, p.Send(testCtx(t, 10*time.Second), &kafka.ProducerMessage{
		Topic: gw.ReplyTopic(), Key: []byte("eager"), Value: []byte(`{"fast":true}`),
		Headers: []kafka.Header{
			{Key: tcphub.HeaderConn, Value: []byte(w.Session)}, {Key: tcphub.HeaderDevice, Value: []byte("eager")},
			{Key: tcphub.HeaderRequest, Value: []byte("early")}, {Key: tcphub.HeaderStatus, Value: []byte("200")},
		},
	}))
	want := `tcphub_responses_delivered_total{instance_id="` + gw.InstanceID() + `"} 1`
	ctx := testCtx(t, 10*time.Second)
	for !strings.Contains(scrape(t, gw.MetricsHandler()), want) {
		select {
		case <-ctx.Done():
			t.Fatal("the gateway did not receive the response")
		case <-time.After(5 * time.Millisecond):
		}
	}
	fs.mu.Lock()
	_, early := find(fs.got, wire.TypeResponse, "early")
	fs.mu.Unlock()
	assert.False(t, early, "response sent before the ack")
	release()
	got := fs.waitFor(t, 30*time.Second, "ack and response", func(f []wire.Frame) bool {
		_, ok := find(f, wire.TypeResponse, "early")
		return ok
	})
	ackAt, respAt := -1, -1
	for i, f := range got {
		switch {
		case f.Type == wire.TypeAck && f.ID == "early":
			ackAt = i
		case f.Type == wire.TypeResponse && f.ID == "early":
			respAt = i
		}
	}
	require.GreaterOrEqual(t, ackAt, 0)
	assert.Less(t, ackAt, respAt)
}
