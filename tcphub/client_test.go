package tcphub_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/device"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

func TestClientRequestsPushesHeartbeats(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.Heartbeat = 400 * time.Millisecond })
	startWorker(t, cluster, topic, echo)

	sessions := make(chan string, 4)
	c, err := device.Dial(testCtx(t, 10*time.Second), gw.addr, device.Options{
		DeviceID: "client-1", Logger: quiet, OnSession: func(sid string) { sessions <- sid },
	})
	require.NoError(t, err)
	defer c.Close()
	sid := <-sessions
	assert.Equal(t, sid, c.SessionID())

	call, err := c.Request(testCtx(t, 10*time.Second), []byte(`{"a":1}`))
	require.NoError(t, err)
	assert.False(t, call.Acked.Before(call.Sent))
	resp, err := call.Response(testCtx(t, 30*time.Second))
	require.NoError(t, err)
	assert.Equal(t, 200, resp.Status)
	assert.JSONEq(t, `{"a":1}`, string(resp.Payload))
	assert.Equal(t, "application/json", resp.ContentType)

	resp, err = c.Do(testCtx(t, 30*time.Second), []byte{0, 1, 2}, device.WithContentType("application/x-raw"))
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 1, 2}, resp.Payload)
	assert.True(t, resp.Binary)

	// Pushes, duplicates dropped.
	require.NoError(t, gw.SendToDevice(context.Background(), "client-1", []byte(`{"p":1}`), tcphub.WithMessageID("m-1")))
	require.NoError(t, gw.SendToDevice(context.Background(), "client-1", []byte(`{"p":1}`), tcphub.WithMessageID("m-1")))
	require.NoError(t, gw.SendToDevice(context.Background(), "client-1", []byte(`{"p":2}`), tcphub.WithMessageID("m-2")))
	for _, want := range []string{"m-1", "m-2"} {
		select {
		case p := <-c.Pushes():
			assert.Equal(t, want, p.ID)
		case <-time.After(10 * time.Second):
			t.Fatalf("no push %s", want)
		}
	}

	// Idle for several heartbeats: the client's pings keep the session.
	time.Sleep(1500 * time.Millisecond)
	assert.Equal(t, sid, c.SessionID())
	_, err = c.Request(testCtx(t, 10*time.Second), []byte(`{}`))
	require.NoError(t, err)
	select {
	case s := <-sessions:
		t.Fatalf("reconnected (session %s) although heartbeats flowed", s)
	default:
	}

	// A refused request is a ServerError.
	_, err = c.Request(testCtx(t, 10*time.Second), []byte(`{}`), device.WithRoute("nowhere"))
	var se *device.ServerError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, wire.CodeNotFound, se.Code)
	assert.False(t, se.Temporary())
}

// TestClientReconnectsAfterGoodbye: the gateway shuts down, the client
// waits the goodbye's delay, reconnects to the instance that replaced it
// on the same address, and goes on.
func TestClientReconnectsAfterGoodbye(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	startWorker(t, cluster, topic, echo)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	serveOn := func() *gateway {
		gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.GoodbyeDelay = 200 * time.Millisecond })
		// startGateway listens on a port of its own; serve addr too.
		l, err := net.Listen("tcp", addr)
		require.NoError(t, err)
		go func() { _ = gw.Serve(context.Background(), l) }()
		gw.addr = addr
		return gw
	}
	first := serveOn()
	sessions := make(chan string, 4)
	c, err := device.Dial(testCtx(t, 10*time.Second), addr, device.Options{
		DeviceID: "roamer", Logger: quiet, MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		OnSession: func(sid string) { sessions <- sid },
	})
	require.NoError(t, err)
	defer c.Close()
	sid1 := <-sessions
	_, err = c.Do(testCtx(t, 30*time.Second), []byte(`{"n":1}`))
	require.NoError(t, err)

	start := time.Now()
	first.stop(t)
	second := serveOn()
	var sid2 string
	select {
	case sid2 = <-sessions:
	case <-time.After(20 * time.Second):
		t.Fatal("no reconnect")
	}
	assert.NotEqual(t, sid1, sid2)
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "waited for the goodbye's after_ms")
	resp, err := c.Do(testCtx(t, 30*time.Second), []byte(`{"n":2}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"n":2}`, string(resp.Payload))
	_, sessionsHere := second.Connections()
	assert.Equal(t, 1, sessionsHere)
}

// TestClientResendsAfterConnectionLoss: a request without ack when the
// connection drops is resent with the same id on the next connection.
func TestClientResendsAfterConnectionLoss(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	if cluster.Fake() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, nil)
	sessions := make(chan string, 4)
	c, err := device.Dial(testCtx(t, 10*time.Second), gw.addr, device.Options{
		DeviceID: "resender", Logger: quiet, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		OnSession: func(sid string) { sessions <- sid },
	})
	require.NoError(t, err)
	defer c.Close()
	first := <-sessions
	_, err = c.Request(testCtx(t, 10*time.Second), []byte(`{}`)) // warm up the producer
	require.NoError(t, err)

	release, held := holdProduce(t, cluster, topic)
	result := make(chan error, 1)
	var call *device.Call
	go func() {
		var err error
		call, err = c.Request(testCtx(t, 30*time.Second), []byte(`{"important":true}`), device.WithRequestID("r-keep"))
		result <- err
	}()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach Kafka")
	}
	require.NoError(t, gw.SendToConn(context.Background(), first, nil))
	// Drop the connection from the server side by replacing it.
	raw := dialRaw(t, gw.addr)
	raw.hello("resender")
	_ = raw.nc.Close()
	release()
	select {
	case err := <-result:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("request neither acked nor failed")
	}
	assert.Equal(t, "r-keep", call.ID)
	select {
	case sid := <-sessions:
		assert.NotEqual(t, first, sid)
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not reconnect")
	}
}

func TestClientRefusesFramesOverTheServerLimit(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.MaxFrameSize = 512 })
	c, err := device.Dial(testCtx(t, 10*time.Second), gw.addr, device.Options{DeviceID: "big", Logger: quiet})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Request(testCtx(t, 10*time.Second), make([]byte, 1024))
	require.ErrorIs(t, err, wire.ErrFrameTooLarge)
	_, err = c.Request(testCtx(t, 10*time.Second), []byte(`{"small":true}`))
	require.NoError(t, err, "the connection is still usable")
}
