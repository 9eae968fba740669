package tcphub_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/device"
)

// TestThreeInstances: three gateways share the request and presence topics
// and one pool of workers. Each response reaches the device on the
// instance that sent its request, and a push by device id reaches the
// device wherever it is connected.
func TestThreeInstances(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 3)
	presence := topic + ".presence"
	startWorker(t, cluster, topic, func(ri tcphub.RequestInfo, msg kafka.Message) (int, []byte) {
		return 200, fmt.Appendf(nil, `{"device":%q,"instance":%q,"echo":%s}`, ri.DeviceID, ri.Instance, msg.Value())
	})

	var gws []*gateway
	var clients []*device.Client
	for i := range 3 {
		gw := startGateway(t, cluster, topic, func(c *tcphub.Config) {
			c.InstanceID = kafkatest.UniqueName(fmt.Sprintf("gw-%d", i))
			c.PresenceTopic = presence
		})
		gws = append(gws, gw)
		c, err := device.Dial(testCtx(t, 10*time.Second), gw.addr, device.Options{DeviceID: fmt.Sprintf("dev-%d", i), Logger: quiet})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		clients = append(clients, c)
	}

	// Round trips from every device at once.
	errs := make(chan error, 3)
	for i, c := range clients {
		go func() {
			for n := range 5 {
				resp, err := c.Do(testCtx(t, 30*time.Second), fmt.Appendf(nil, `{"n":%d}`, n))
				if err != nil {
					errs <- err
					return
				}
				var body struct {
					Device, Instance string
					Echo             struct{ N int }
				}
				if err := json.Unmarshal(resp.Payload, &body); err != nil {
					errs <- err
					return
				}
				if body.Device != fmt.Sprintf("dev-%d", i) || body.Instance != gws[i].InstanceID() || body.Echo.N != n {
					errs <- fmt.Errorf("device %d got %s", i, resp.Payload)
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		require.NoError(t, <-errs)
	}

	// Pushes by device id, from a process that knows no instance.
	p := newProducer(t, cluster, topic)
	pusher, err := tcphub.NewPusher(testCtx(t, 30*time.Second), tcphub.PusherConfig{BrokerAddrs: cluster.Addrs(), Producer: p, PresenceTopic: presence, Logger: quiet})
	require.NoError(t, err)
	defer pusher.Close()
	for i := range clients {
		dev := fmt.Sprintf("dev-%d", i)
		pres, err := pusher.WaitOnline(testCtx(t, 30*time.Second), dev)
		require.NoError(t, err)
		assert.Equal(t, gws[i].InstanceID(), pres.Instance)
		assert.Equal(t, gws[i].ReplyTopic(), pres.ReplyTo)
		require.NoError(t, pusher.Push(testCtx(t, 10*time.Second), dev, fmt.Appendf(nil, `{"for":%q}`, dev)))
	}
	for i, c := range clients {
		select {
		case push := <-c.Pushes():
			assert.JSONEq(t, fmt.Sprintf(`{"for":"dev-%d"}`, i), string(push.Payload))
		case <-time.After(30 * time.Second):
			t.Fatalf("dev-%d got no push", i)
		}
	}
	for i, c := range clients {
		select {
		case push := <-c.Pushes():
			t.Errorf("dev-%d got a second push: %s", i, push.Payload)
		default:
		}
	}
	// Nothing was routed to an instance that did not hold the device.
	for _, gw := range gws {
		assert.Contains(t, scrape(t, gw.MetricsHandler()),
			`tcphub_responses_undeliverable_total{instance_id="`+gw.InstanceID()+`",reason="not_connected"} 0`)
	}
}
