package tcphub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// TestEndToEnd: device -> gateway -> Kafka -> worker -> Kafka -> gateway ->
// device, with the records' key, value and headers checked in Kafka, and a
// push by device id through presence.
func TestEndToEnd(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 3)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.InstanceID = kafkatest.UniqueName("gw") })
	startWorker(t, cluster, topic, func(ri tcphub.RequestInfo, msg kafka.Message) (int, []byte) {
		return 201, fmt.Appendf(nil, `{"device":%q,"echo":%s}`, ri.DeviceID, msg.Value())
	})

	d := dialRaw(t, gw.addr)
	welcome := d.hello("sensor-1")
	assert.NotEmpty(t, welcome.Session)
	assert.Equal(t, 30000, welcome.HeartbeatMS)
	assert.Equal(t, wire.DefaultMaxFrameSize, welcome.MaxFrame)
	assert.Equal(t, 32, welcome.MaxInFlight)

	fs := d.collect()
	d.send(wire.Frame{Type: wire.TypeRequest, ID: "r-1", Payload: []byte(`{"temp":21.5}`)})
	d.send(wire.Frame{Type: wire.TypeRequest, ID: "r-2", ContentType: "application/cbor", Payload: []byte{0xa1, 0x01, 0x02}, Binary: true})
	d.send(wire.Frame{Type: wire.TypePing, ID: "hb-1"})
	got := fs.waitFor(t, 30*time.Second, "acks and responses", func(f []wire.Frame) bool {
		_, r1 := find(f, wire.TypeResponse, "r-1")
		_, r2 := find(f, wire.TypeResponse, "r-2")
		return r1 && r2
	})
	_, pong := find(got, wire.TypePong, "hb-1")
	assert.True(t, pong, "ping answered")
	for _, id := range []string{"r-1", "r-2"} {
		ackAt, respAt := -1, -1
		for i, f := range got {
			if f.ID == id && f.Type == wire.TypeAck {
				ackAt = i
			}
			if f.ID == id && f.Type == wire.TypeResponse {
				respAt = i
			}
		}
		require.GreaterOrEqual(t, ackAt, 0, "ack of %s", id)
		assert.Less(t, ackAt, respAt, "ack of %s before its response", id)
	}
	r1, _ := find(got, wire.TypeResponse, "r-1")
	assert.Equal(t, 201, r1.Status)
	assert.JSONEq(t, `{"device":"sensor-1","echo":{"temp":21.5}}`, string(r1.Payload))
	assert.False(t, r1.Binary)
	r2, _ := find(got, wire.TypeResponse, "r-2")
	assert.True(t, r2.Binary, "a non-JSON payload comes back in pb")

	// The records in Kafka.
	recs := testkit.ReadAll(testCtx(t, 30*time.Second), t, cluster.Addrs(), topic)
	require.Len(t, recs, 2)
	byID := map[string]testkit.Record{}
	for _, r := range recs {
		byID[r.Headers[tcphub.HeaderRequest]] = r
	}
	rec := byID["r-1"]
	assert.Equal(t, "sensor-1", string(rec.Key))
	assert.Equal(t, `{"temp":21.5}`, string(rec.Value), "payload bytes exactly as sent")
	assert.Equal(t, "sensor-1", rec.Headers[tcphub.HeaderDevice])
	assert.Equal(t, welcome.Session, rec.Headers[tcphub.HeaderConn])
	assert.Equal(t, gw.InstanceID(), rec.Headers[tcphub.HeaderInstance])
	assert.Equal(t, gw.ReplyTopic(), rec.Headers[tcphub.HeaderReplyTo])
	assert.Equal(t, "application/json", rec.Headers[tcphub.HeaderContentType])
	assert.Len(t, rec.Headers[tcphub.HeaderTraceID], 16)
	assert.Equal(t, []byte{0xa1, 0x01, 0x02}, byID["r-2"].Value)
	assert.Equal(t, "application/cbor", byID["r-2"].Headers[tcphub.HeaderContentType])
	assert.Equal(t, rec.Partition, byID["r-2"].Partition, "one device, one partition")

	// A push by device id, through presence.
	p := newProducer(t, cluster, topic)
	pusher, err := tcphub.NewPusher(testCtx(t, 30*time.Second), tcphub.PusherConfig{
		BrokerAddrs: cluster.Addrs(), Producer: p, PresenceTopic: topic + ".presence", Logger: quiet,
	})
	require.NoError(t, err)
	defer pusher.Close()
	pres, err := pusher.WaitOnline(testCtx(t, 30*time.Second), "sensor-1")
	require.NoError(t, err)
	assert.Equal(t, gw.InstanceID(), pres.Instance)
	assert.Equal(t, welcome.Session, pres.Conn)
	require.NoError(t, pusher.Push(testCtx(t, 10*time.Second), "sensor-1", []byte(`{"cmd":"reboot"}`), tcphub.WithMessageID("m-1")))
	require.ErrorIs(t, pusher.Push(testCtx(t, 10*time.Second), "nobody", []byte(`{}`)), tcphub.ErrDeviceOffline)
	// And one in process.
	require.NoError(t, gw.SendToDevice(context.Background(), "sensor-1", []byte("raw bytes")))
	got = fs.waitFor(t, 30*time.Second, "pushes", func(f []wire.Frame) bool {
		n := 0
		for _, x := range f {
			if x.Type == wire.TypePush {
				n++
			}
		}
		return n == 2
	})
	push, ok := find(got, wire.TypePush, "m-1")
	require.True(t, ok)
	assert.JSONEq(t, `{"cmd":"reboot"}`, string(push.Payload))
	require.ErrorIs(t, gw.SendToDevice(context.Background(), "nobody", nil), tcphub.ErrNotConnected)

	// The device leaves: presence says so.
	_ = d.nc.Close()
	ctx := testCtx(t, 30*time.Second)
	for {
		if _, online := pusher.Lookup("sensor-1"); !online {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("presence still online after the device left")
		case <-time.After(10 * time.Millisecond):
		}
	}
}
