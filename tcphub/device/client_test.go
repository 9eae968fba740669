package device_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkahub/kafkahub/tcphub/device"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// TestMain fails the package if any goroutine outlives the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeGateway accepts one connection and runs script on it; the tests of
// the client against the real gateway are in package tcphub.
func fakeGateway(t *testing.T, script func(r *wire.Reader, w *wire.Writer)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
		script(wire.NewReader(nc, 0), wire.NewWriter(nc, 0))
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	return l.Addr().String()
}

func welcome(t *testing.T, r *wire.Reader, w *wire.Writer) wire.Frame {
	hello, err := r.ReadFrame()
	if !assert.NoError(t, err) {
		return wire.Frame{}
	}
	assert.NoError(t, w.WriteFrame(wire.Frame{Type: wire.TypeWelcome, Session: "c-1", HeartbeatMS: 30000, MaxFrame: 1024, MaxInFlight: 2}))
	return hello
}

func TestClientRoundTripWithoutKafka(t *testing.T) {
	hellos := make(chan wire.Frame, 1)
	addr := fakeGateway(t, func(r *wire.Reader, w *wire.Writer) {
		hellos <- welcome(t, r, w)
		for {
			f, err := r.ReadFrame()
			if err != nil {
				return
			}
			if f.Type != wire.TypeRequest {
				continue
			}
			if f.Route == "nowhere" {
				_ = w.WriteFrame(wire.Frame{Type: wire.TypeError, ID: f.ID, Code: wire.CodeNotFound, Message: "unknown route"})
				continue
			}
			_ = w.WriteFrame(wire.Frame{Type: wire.TypeAck, ID: f.ID})
			resp := wire.Frame{Type: wire.TypeResponse, ID: f.ID, Status: 200}
			resp.SetPayload(f.PayloadContentType(), f.Payload)
			_ = w.WriteFrame(resp)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := device.Dial(ctx, addr, device.Options{DeviceID: "d-1", Token: "tok", NoReconnect: true})
	require.NoError(t, err)
	defer c.Close()
	hello := <-hellos
	assert.Equal(t, "d-1", hello.Device)
	assert.Equal(t, "tok", hello.Token)
	assert.Equal(t, device.DefaultClientName, hello.Client)
	assert.Equal(t, "c-1", c.SessionID())

	resp, err := c.Do(ctx, []byte(`{"a":1}`))
	require.NoError(t, err)
	assert.Equal(t, 200, resp.Status)
	assert.Equal(t, `{"a":1}`, string(resp.Payload))
	assert.Equal(t, wire.ContentTypeJSON, resp.ContentType)

	resp, err = c.Do(ctx, []byte{0, 1}, device.WithContentType("application/x-raw"), device.WithRequestID("r-raw"))
	require.NoError(t, err)
	assert.Equal(t, "r-raw", resp.ID)
	assert.True(t, resp.Binary)
	assert.Equal(t, "application/x-raw", resp.ContentType)

	_, err = c.Request(ctx, []byte(`{}`), device.WithRoute("nowhere"))
	var se *device.ServerError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, wire.CodeNotFound, se.Code)
	assert.False(t, se.Temporary())

	_, err = c.Request(ctx, make([]byte, 2048))
	require.ErrorIs(t, err, wire.ErrFrameTooLarge, "over the welcome's max_frame")

	require.NoError(t, c.Close())
	_, err = c.Request(ctx, []byte(`{}`))
	require.True(t, errors.Is(err, device.ErrClosed) || errors.Is(err, device.ErrConnectionLost), "%v", err)
}

func TestDialRefusedIsServerError(t *testing.T) {
	addr := fakeGateway(t, func(r *wire.Reader, w *wire.Writer) {
		if _, err := r.ReadFrame(); err == nil {
			_ = w.WriteFrame(wire.Frame{Type: wire.TypeError, Code: wire.CodeUnauthenticated, Message: "bad token"})
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := device.Dial(ctx, addr, device.Options{DeviceID: "d-1", NoReconnect: true})
	var se *device.ServerError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, wire.CodeUnauthenticated, se.Code)

	_, err = device.Dial(ctx, addr, device.Options{DeviceID: "bad id"})
	require.ErrorIs(t, err, wire.ErrInvalidFrame)
}

// TestClientPacesByTheWelcomesRate: with rate_per_min 600 (one request
// every 100 ms) and burst 2, five requests reach the gateway no faster than
// the bucket allows: the fifth at least 300 ms after the welcome was sent
// (the client's bucket starts full when the welcome arrives, later).
func TestClientPacesByTheWelcomesRate(t *testing.T) {
	welcomed := make(chan time.Time, 1)
	arrivals := make(chan time.Time, 5)
	addr := fakeGateway(t, func(r *wire.Reader, w *wire.Writer) {
		if _, err := r.ReadFrame(); err != nil {
			return
		}
		welcomed <- time.Now()
		_ = w.WriteFrame(wire.Frame{Type: wire.TypeWelcome, Session: "c-1", HeartbeatMS: 30000, MaxFrame: 1024, MaxInFlight: 8, RatePerMin: 600, Burst: 2})
		for {
			f, err := r.ReadFrame()
			if err != nil {
				return
			}
			if f.Type == wire.TypeRequest {
				arrivals <- time.Now()
				_ = w.WriteFrame(wire.Frame{Type: wire.TypeAck, ID: f.ID})
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := device.Dial(ctx, addr, device.Options{DeviceID: "d-1", NoReconnect: true})
	require.NoError(t, err)
	defer c.Close()
	for range 5 {
		_, err := c.Request(ctx, []byte(`{}`))
		require.NoError(t, err)
	}
	start := <-welcomed
	var last time.Time
	for range 5 {
		last = <-arrivals
	}
	// Two requests from the burst, then three tokens of 100 ms each.
	assert.GreaterOrEqual(t, last.Sub(start), 300*time.Millisecond)
}
