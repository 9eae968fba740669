//go:build reliability

package reliability

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/device"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// TestGatewayUnderFaults: devices keep sending through the gateway while a
// broker restarts and then while every broker is unreachable for 8 s. Every
// request acknowledged to a device is in Kafka, and during the outage the
// devices get error frames (unavailable), not silence.
func TestGatewayUnderFaults(t *testing.T) {
	c := realCluster(t)
	ps := startProxies(t, c)
	topic := c.NewTopic(t, 3)
	ctx := ctxFor(t, 10*time.Minute)

	srv, err := tcphub.NewServer(tcphub.Config{
		BrokerAddrs: ps.addrs, RequestTopic: topic, Authenticator: tcphub.AllowAll(),
		InstanceID: topic + "-gw", CreateTopics: true,
		ProduceTimeout: 5 * time.Second, Logger: quiet,
	})
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
	}()

	const devices = 5
	var acked sync.Map
	var nAcked, nUnavailable, nOther atomic.Int64
	var slowest atomic.Int64 // longest wait for any answer, in ms
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for d := range devices {
		dev, err := device.Dial(ctx, l.Addr().String(), device.Options{DeviceID: fmt.Sprintf("dev-%d", d), Logger: quiet})
		require.NoError(t, err)
		defer dev.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				payload := fmt.Sprintf(`{"dev":%d,"seq":%d}`, d, seq)
				start := time.Now()
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := dev.Request(rctx, []byte(payload))
				cancel()
				if ms := time.Since(start).Milliseconds(); ms > slowest.Load() {
					slowest.Store(ms)
				}
				var se *device.ServerError
				switch {
				case err == nil:
					acked.Store(payload, true)
					nAcked.Add(1)
				case errors.As(err, &se) && se.Code == wire.CodeUnavailable:
					nUnavailable.Add(1)
					time.Sleep(100 * time.Millisecond) // the device backs off
				default:
					nOther.Add(1)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	progress := func(what string) {
		n := nAcked.Load()
		deadline := time.Now().Add(60 * time.Second)
		for nAcked.Load() < n+100 {
			if time.Now().After(deadline) {
				t.Fatalf("no progress after %s: %d acked", what, nAcked.Load())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	progress("start")

	victim := c.leaderOf(t, topic, 0)
	c.restartOnCleanup(t, victim)
	c.stopNode(t, victim)
	progress("broker stopped")
	c.restartNode(t, victim)
	c.waitReady(t)
	progress("broker restarted")

	before := nUnavailable.Load()
	ps.stop()
	time.Sleep(8 * time.Second) // the outage
	during := nUnavailable.Load() - before
	ps.start(t)
	progress("outage over")
	close(stop)
	wg.Wait()

	recs := testkit.ReadAll(ctx, t, c.Addrs(), topic)
	inKafka := make(map[string]bool, len(recs))
	for _, r := range recs {
		inKafka[string(r.Value)] = true
	}
	lost := 0
	acked.Range(func(k, _ any) bool {
		if !inKafka[k.(string)] {
			lost++
		}
		return true
	})
	figures(t, "gateway-under-faults", "devices", devices, "acknowledged", nAcked.Load(), "in_kafka", len(recs),
		"lost", lost, "unavailable_errors", nUnavailable.Load(), "unavailable_during_outage", during,
		"other_errors", nOther.Load(), "slowest_answer_ms", slowest.Load())
	assert.Zero(t, lost, "acknowledged requests missing from Kafka")
	assert.Positive(t, during, "devices heard unavailable during the outage")
	assert.Less(t, slowest.Load(), int64(30_000), "no request went unanswered")
}
