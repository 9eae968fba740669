package tcphub_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// readToEOF reads frames until the server ends the stream, within d, and
// fails on anything but a clean end (a reset would have destroyed frames).
func readToEOF(t *testing.T, nc net.Conn, d time.Duration) []wire.Frame {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(d))
	r := wire.NewReader(nc, 0)
	var got []wire.Frame
	for {
		f, err := r.ReadFrame()
		if err != nil {
			require.True(t, errors.Is(err, io.EOF), "after %d frames (%s): want a clean end of stream, got %v", len(got), summary(got), err)
			return got
		}
		got = append(got, f)
	}
}

// TestHalfCloseGetsEveryAnswer: a device that sends its hello and requests
// in one go and then shuts its write side still receives the welcome and
// the ack (or error) of every request, then the end of the stream.
func TestHalfCloseGetsEveryAnswer(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, nil)

	const rounds, requests = 5, 4
	for round := range rounds {
		nc, err := net.DialTimeout("tcp", gw.addr, 5*time.Second)
		require.NoError(t, err)
		var out []byte
		out, err = wire.AppendFrame(out, wire.Frame{Type: wire.TypeHello, Device: fmt.Sprintf("half-%d", round)})
		require.NoError(t, err)
		for i := range requests {
			out, err = wire.AppendFrame(out, wire.Frame{Type: wire.TypeRequest, ID: fmt.Sprintf("r-%d", i), Payload: []byte(`{"n":1}`)})
			require.NoError(t, err)
		}
		_, err = nc.Write(out)
		require.NoError(t, err)
		require.NoError(t, nc.(*net.TCPConn).CloseWrite())

		got := readToEOF(t, nc, 30*time.Second)
		_ = nc.Close()
		require.NotEmpty(t, got, "round %d: nothing received", round)
		require.Equal(t, wire.TypeWelcome, got[0].Type, "round %d: %s", round, summary(got))
		for i := range requests {
			id := fmt.Sprintf("r-%d", i)
			_, acked := find(got, wire.TypeAck, id)
			require.True(t, acked, "round %d: no ack for %s: %s", round, id, summary(got))
		}
	}
}

// TestErrorFrameBeforeCloseDelivered: the error frame that ends a
// connection reaches the device every time, whether the device shuts its
// write side right after its bad input or leaves unread bytes behind it.
func TestErrorFrameBeforeCloseDelivered(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	refuse := tcphub.AuthenticatorFunc(func(_ context.Context, req tcphub.AuthRequest) (tcphub.Identity, error) {
		if req.Token != "good" {
			return tcphub.Identity{}, fmt.Errorf("%w: bad token", tcphub.ErrUnauthenticated)
		}
		return tcphub.Identity{DeviceID: req.DeviceID}, nil
	})
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
		c.Authenticator = refuse
		c.AuthFailuresPerMinute = -1 // this test fails authentication on purpose, many times
		c.MaxFrameSize = 1024
	})

	hello := func(dev, tok string) []byte {
		b, err := wire.AppendFrame(nil, wire.Frame{Type: wire.TypeHello, Device: dev, Token: tok})
		require.NoError(t, err)
		return b
	}
	oversized := binary.BigEndian.AppendUint32(nil, 4096) // over MaxFrameSize
	oversized = append(oversized, make([]byte, 4096)...)  // and its body, which the server never reads

	cases := []struct {
		name      string
		send      func(i int) []byte
		halfClose bool
		code      wire.Code
	}{
		{"unauthenticated then half-close", func(i int) []byte { return hello(fmt.Sprintf("u-%d", i), "bad") }, true, wire.CodeUnauthenticated},
		{"too_large then half-close", func(i int) []byte { return append(hello(fmt.Sprintf("t-%d", i), "good"), oversized...) }, true, wire.CodeTooLarge},
		{"too_large with unread bytes", func(i int) []byte { return append(hello(fmt.Sprintf("v-%d", i), "good"), oversized...) }, false, wire.CodeTooLarge},
	}
	const rounds = 20
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := range rounds {
				nc, err := net.DialTimeout("tcp", gw.addr, 5*time.Second)
				require.NoError(t, err)
				_, err = nc.Write(tc.send(i))
				require.NoError(t, err)
				if tc.halfClose {
					require.NoError(t, nc.(*net.TCPConn).CloseWrite())
				}
				got := readToEOF(t, nc, 30*time.Second)
				_ = nc.Close()
				require.NotEmpty(t, got, "round %d: no frame before the close", i)
				last := got[len(got)-1]
				require.Equal(t, wire.TypeError, last.Type, "round %d: %s", i, summary(got))
				require.Equal(t, tc.code, last.Code, "round %d: %s", i, summary(got))
			}
		})
	}
}
