package tcphub_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// frameBytes is a length header followed by body.
func frameBytes(body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(b, body...)
}

// TestBadFramesAnsweredAndServerSurvives sends broken streams on many
// connections; each gets the right error and is closed, and a well-behaved
// device keeps working throughout.
func TestBadFramesAnsweredAndServerSurvives(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	var mu sync.Mutex
	reasons := map[string]error{}
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.MaxFrameSize = 1024
		c.OnDisconnect = func(ci tcphub.ConnInfo, err error) {
			mu.Lock()
			reasons[ci.ID] = err
			mu.Unlock()
		}
	})
	good := dialRaw(t, gw.addr)
	good.hello("good-device")

	cases := []struct {
		name  string
		hello bool
		send  []byte
		code  wire.Code
	}{
		{"oversized header", true, binary.BigEndian.AppendUint32(nil, 1<<30), wire.CodeTooLarge},
		{"just over max_frame", true, frameBytes(`{"v":1,"t":"request","id":"x","p":"` + strings.Repeat("a", 1024) + `"}`), wire.CodeTooLarge},
		{"empty frame", true, frameBytes(""), wire.CodeBadFrame},
		{"garbage", true, frameBytes("\x00\x01garbage\xff"), wire.CodeBadFrame},
		{"not an object", true, frameBytes(`[1,2,3]`), wire.CodeBadFrame},
		{"both p and pb", true, frameBytes(`{"v":1,"t":"request","id":"x","p":1,"pb":"AA=="}`), wire.CodeBadFrame},
		{"request without id", true, frameBytes(`{"v":1,"t":"request","p":1}`), wire.CodeBadFrame},
		{"unknown type", true, frameBytes(`{"v":1,"t":"teleport"}`), wire.CodeBadFrame},
		{"server-only type", true, frameBytes(`{"v":1,"t":"ack","id":"x"}`), wire.CodeBadFrame},
		{"hello twice", true, frameBytes(`{"v":1,"t":"hello","dev":"again"}`), wire.CodeBadFrame},
		{"request before hello", false, frameBytes(`{"v":1,"t":"request","id":"x","p":1}`), wire.CodeBadFrame},
		{"bad version", false, frameBytes(`{"v":2,"t":"hello","dev":"d"}`), wire.CodeBadVersion},
		{"id with a space", true, frameBytes(`{"v":1,"t":"request","id":"a b"}`), wire.CodeBadFrame},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := dialRaw(t, gw.addr)
			if tc.hello {
				d.hello("bad-" + string(rune('a'+i)))
			}
			d.sendRaw(tc.send)
			f := d.expectError(tc.code)
			assert.Empty(t, f.ID)
			assert.NotEmpty(t, f.Message)
			// The well-behaved device is unaffected.
			ack := good.request("ok-"+string(rune('a'+i)), `{"n":1}`)
			require.Equal(t, wire.TypeAck, ack.Type, "%+v", ack)
		})
	}

	t.Run("truncated frame", func(t *testing.T) {
		d := dialRaw(t, gw.addr)
		welcome := d.hello("truncating")
		d.sendRaw(frameBytes(`{"v":1,"t":"request","id":"cut","p":{"a":1}}`)[:20])
		_ = d.nc.Close()
		waitGone(t, gw, welcome.Session)
		ack := good.request("after-truncated", `{}`)
		require.Equal(t, wire.TypeAck, ack.Type)
		ctx := testCtx(t, 10*time.Second)
		for {
			mu.Lock()
			err := reasons[welcome.Session]
			mu.Unlock()
			if err != nil {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("OnDisconnect not called")
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	t.Run("protocol errors are the disconnect reason", func(t *testing.T) {
		ctx := testCtx(t, 10*time.Second)
		for {
			mu.Lock()
			n := 0
			for _, err := range reasons {
				if errors.Is(err, tcphub.ErrProtocol) {
					n++
				}
			}
			mu.Unlock()
			if n >= len(cases) {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%d protocol errors reported to OnDisconnect, want %d", n, len(cases))
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
}

// waitGone waits until the connection has been torn down.
func waitGone(t *testing.T, gw *gateway, connID string) {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	for gw.SendToConn(context.Background(), connID, []byte(`{}`)) != tcphub.ErrNotConnected {
		select {
		case <-ctx.Done():
			t.Fatalf("connection %s still open", connID)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestHandshakeTimeout(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.HandshakeTimeout = 700 * time.Millisecond })

	silent := dialRaw(t, gw.addr)
	start := time.Now()
	silent.expectError(wire.CodeHandshakeTimeout)
	assert.GreaterOrEqual(t, time.Since(start), 600*time.Millisecond)

	// Half a hello is no better than none.
	partial := dialRaw(t, gw.addr)
	partial.sendRaw(frameBytes(`{"v":1,"t":"hello","dev":"slow"}`)[:10])
	partial.expectError(wire.CodeHandshakeTimeout)

	// A prompt hello is welcomed, and the deadline no longer applies.
	d := dialRaw(t, gw.addr)
	d.hello("prompt")
	time.Sleep(800 * time.Millisecond) // longer than the handshake deadline
	require.Equal(t, wire.TypeAck, d.request("r-1", `{}`).Type)
}

// TestHeartbeat: pings are answered; a silent session is closed after
// twice the heartbeat, without an error frame.
func TestHeartbeat(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	var mu sync.Mutex
	var reason error
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.Heartbeat = 300 * time.Millisecond
		c.OnDisconnect = func(ci tcphub.ConnInfo, err error) {
			if ci.DeviceID == "silent" {
				mu.Lock()
				reason = err
				mu.Unlock()
			}
		}
	})

	live := dialRaw(t, gw.addr)
	w := live.hello("live")
	assert.Equal(t, 300, w.HeartbeatMS)
	silent := dialRaw(t, gw.addr)
	silent.hello("silent")
	start := time.Now()

	// live pings every 100 ms for 1 s and stays.
	for i := range 10 {
		id := "hb-" + string(rune('0'+i))
		live.send(wire.Frame{Type: wire.TypePing, ID: id})
		pong := live.expect(wire.TypePong)
		assert.Equal(t, id, pong.ID)
		time.Sleep(100 * time.Millisecond)
	}
	silent.expectClosed()
	assert.GreaterOrEqual(t, time.Since(start), 550*time.Millisecond)
	mu.Lock()
	assert.ErrorIs(t, reason, tcphub.ErrHeartbeatTimeout)
	mu.Unlock()
	require.Equal(t, wire.TypeAck, live.request("still-here", `{}`).Type)
}

// TestIdleTimeoutCountsCompleteFrames: the bytes of a frame still arriving
// are not a sign of life (PROTOCOL.md section 8): a device that dribbles
// one frame a byte at a time is closed for silence while its bytes still
// come.
func TestIdleTimeoutCountsCompleteFrames(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.Heartbeat = 300 * time.Millisecond })
	d := dialRaw(t, gw.addr)
	d.hello("dribbler")

	// A 200-byte ping at one byte per 50 ms: 10 s to arrive whole, against
	// an idle timeout of 600 ms.
	prefix := `{"v":1,"t":"ping","junk":"`
	frame := frameBytes(prefix + strings.Repeat("j", 200-len(prefix)-2) + `"}`)
	require.Len(t, frame, 204)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range frame {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			_ = d.nc.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := d.nc.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	d.expectClosed()
	close(stop)
	<-done
	assert.Less(t, time.Since(start), 5*time.Second, "closed while the frame's bytes were still arriving")
}

func TestMaxConnections(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.MaxConnections = 2 })
	a := dialRaw(t, gw.addr)
	a.hello("a")
	b := dialRaw(t, gw.addr)
	b.hello("b")
	c := dialRaw(t, gw.addr)
	f := c.expectError(wire.CodeUnavailable)
	assert.Positive(t, f.AfterMS)
	_ = a.nc.Close()
	ctx := testCtx(t, 10*time.Second)
	for {
		if open, _ := gw.Connections(); open < 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("closed connection still counted")
		case <-time.After(5 * time.Millisecond):
		}
	}
	d := dialRaw(t, gw.addr)
	d.hello("d")
}

// TestPanicsStayInTheirConnection: a panicking Authenticator refuses the
// device, panicking hooks are logged, and the server goes on.
func TestPanicsStayInTheirConnection(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.Authenticator = tcphub.AuthenticatorFunc(func(_ context.Context, req tcphub.AuthRequest) (tcphub.Identity, error) {
			if req.DeviceID == "boom" {
				panic("authenticator bug")
			}
			return tcphub.Identity{}, nil
		})
		c.OnConnect = func(tcphub.ConnInfo) { panic("hook bug") }
		c.OnAuthenticated = func(tcphub.ConnInfo) { panic("hook bug") }
		c.OnDisconnect = func(tcphub.ConnInfo, error) { panic("hook bug") }
	})
	d := dialRaw(t, gw.addr)
	d.send(wire.Frame{Type: wire.TypeHello, Device: "boom"})
	f := d.expectError(wire.CodeUnauthenticated)
	assert.Equal(t, "authentication failed", f.Message)
	ok := dialRaw(t, gw.addr)
	ok.hello("fine")
	require.Equal(t, wire.TypeAck, ok.request("r-1", `{}`).Type)
}
