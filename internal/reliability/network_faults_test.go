//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// proxies runs one toxiproxy proxy in front of each broker's PROXIED
// listener (see scripts/kafka/kafka proxy-map), in this process.
type proxies struct {
	list  []*toxiproxy.Proxy
	addrs []string
}

func startProxies(t *testing.T, c *cluster) *proxies {
	t.Helper()
	out, err := exec.Command(c.ctl, "proxy-map").Output()
	require.NoError(t, err)
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	ps := &proxies{}
	for i, pair := range strings.Split(strings.TrimSpace(string(out)), ",") {
		listen, upstream, ok := strings.Cut(pair, ">")
		require.True(t, ok, "bad proxy-map entry %q", pair)
		p := toxiproxy.NewProxy(server, fmt.Sprintf("broker-%d", i+1), listen, upstream)
		require.NoError(t, p.Start())
		ps.list = append(ps.list, p)
		ps.addrs = append(ps.addrs, listen)
	}
	t.Cleanup(ps.stop)
	return ps
}

func (ps *proxies) stop() {
	for _, p := range ps.list {
		p.Stop()
	}
}

func (ps *proxies) start(t *testing.T) {
	for _, p := range ps.list {
		require.NoError(t, p.Start())
	}
}

func (ps *proxies) addToxic(t *testing.T, spec string) {
	for _, p := range ps.list {
		_, err := p.Toxics.AddToxicJson(strings.NewReader(spec))
		require.NoError(t, err)
	}
}

func (ps *proxies) removeToxic(t *testing.T, name string) {
	for _, p := range ps.list {
		require.NoError(t, p.Toxics.RemoveToxic(context.Background(), name))
	}
}

// waitHealth polls Checker until it reports want; polling is the point of
// a health check.
func waitHealth(t *testing.T, check func(context.Context) kafka.Health, want kafka.HealthStatus, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var h kafka.Health
	for time.Since(start) < within {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		h = check(ctx)
		cancel()
		if h.Status == want {
			return time.Since(start)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("health %v not reached within %v; last: %v %s", want, within, h.Status, h.Message)
	return 0
}

// TestNetworkFaults: with a proxy in front of every broker, latency,
// connection resets and a 10 s outage of all brokers. Producer and consumer
// recover by themselves, Checker reports CRITICAL during the outage and OK
// after, and nothing acknowledged is lost.
func TestNetworkFaults(t *testing.T) {
	c := realCluster(t)
	ps := startProxies(t, c)
	topic := c.NewTopic(t, 3)
	ctx := ctxFor(t, 10*time.Minute)

	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: ps.addrs, Topic: topic, Logger: quiet,
		MaxRetryPeriod: 2 * time.Second})
	require.NoError(t, err)
	defer p.Close(context.Background())
	require.NoError(t, p.Initialise(ctx))

	var mu sync.Mutex
	received := map[string]int{}
	g, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs: ps.addrs, Topics: []string{topic}, GroupName: kafkatest.UniqueName("faults"), Logger: quiet,
		HeartbeatInterval: 500 * time.Millisecond, MaxRetryPeriod: 2 * time.Second,
	})
	require.NoError(t, err)
	defer g.Close(context.Background())
	require.NoError(t, g.RegisterHandler(ctx, func(_ context.Context, _ int, m kafka.Message) error {
		mu.Lock()
		received[string(m.Value())]++
		mu.Unlock()
		return nil
	}))
	g.Start()

	// A steady stream of Sends, each with its own deadline, recording what
	// Kafka acknowledged.
	var acked sync.Map
	var nAcked, nFailed atomic.Int64
	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		i := 0
		defer func() { sent <- i }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprintf("m%d", i)
			i++
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := p.Send(sctx, &kafka.ProducerMessage{Key: fmt.Appendf(nil, "k%d", i%10), Value: []byte(v)})
			cancel()
			if err == nil {
				acked.Store(v, true)
				nAcked.Add(1)
			} else {
				nFailed.Add(1)
			}
			time.Sleep(2 * time.Millisecond) // a steady rate, not a flood
		}
	}()
	progress := func(what string) {
		n := nAcked.Load()
		deadline := time.Now().Add(60 * time.Second)
		for nAcked.Load() < n+50 {
			if time.Now().After(deadline) {
				t.Fatalf("no progress after %s: %d acked", what, nAcked.Load())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	progress("start")

	ps.addToxic(t, `{"name":"lat","type":"latency","stream":"downstream","attributes":{"latency":200,"jitter":50}}`)
	progress("latency 200 ms")
	ps.removeToxic(t, "lat")

	ps.addToxic(t, `{"name":"reset","type":"reset_peer","stream":"upstream","toxicity":0.3,"attributes":{"timeout":500}}`)
	time.Sleep(3 * time.Second) // the fault window
	ps.removeToxic(t, "reset")
	progress("connection resets")

	ps.stop()
	outage := time.Now()
	critical := waitHealth(t, p.Checker, kafka.HealthCritical, 10*time.Second)
	gCritical := waitHealth(t, g.Checker, kafka.HealthCritical, 10*time.Second)
	time.Sleep(time.Until(outage.Add(10 * time.Second))) // hold the outage for 10 s
	ps.start(t)
	ok := waitHealth(t, p.Checker, kafka.HealthOK, 60*time.Second)
	progress("outage")

	close(stop)
	total := <-sent
	// Every acknowledged record reaches the consumer.
	deadline := time.Now().Add(120 * time.Second)
	missing := 0
	for {
		missing = 0
		mu.Lock()
		acked.Range(func(k, _ any) bool {
			if received[k.(string)] == 0 {
				missing++
			}
			return true
		})
		mu.Unlock()
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.NoError(t, g.StopAndWait(ctx))
	mu.Lock()
	dups := 0
	for _, n := range received {
		dups += n - 1
	}
	mu.Unlock()
	figures(t, "network-faults", "sent", total, "acknowledged", nAcked.Load(), "failed", nFailed.Load(),
		"lost", missing, "duplicated", dups, "critical_after", critical.Round(time.Millisecond),
		"consumer_critical_after", gCritical.Round(time.Millisecond), "ok_after_restore", ok.Round(time.Millisecond))
	assert.Zero(t, missing, "acknowledged records never consumed")
}

// TestClusterDownAtStart: producer and consumer built while no broker runs
// initialise by themselves once the cluster starts 10 s later.
func TestClusterDownAtStart(t *testing.T) {
	c := realCluster(t)
	topic := c.NewTopic(t, 3)
	c.restartOnCleanup(t, 1, 2, 3)
	c.run(t, "stop")
	ctx := ctxFor(t, 5*time.Minute)

	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: c.Addrs(), Topic: topic, Logger: quiet,
		MaxRetryPeriod: 2 * time.Second})
	require.NoError(t, err)
	defer p.Close(context.Background())
	g, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{BrokerAddrs: c.Addrs(), Topics: []string{topic},
		GroupName: kafkatest.UniqueName("late"), Logger: quiet, MaxRetryPeriod: 2 * time.Second})
	require.NoError(t, err)
	defer g.Close(context.Background())
	got := make(chan string, 100)
	require.NoError(t, g.RegisterHandler(ctx, func(_ context.Context, _ int, m kafka.Message) error {
		got <- string(m.Value())
		return nil
	}))
	g.Start() // asked while initialising: honoured once connected
	assert.False(t, p.IsInitialised())
	assert.Equal(t, kafka.Initialising, g.State())

	time.Sleep(10 * time.Second) // the cluster stays down for 10 s, as specified
	start := time.Now()
	for _, id := range []int32{1, 2, 3} {
		c.restartNode(t, id)
	}
	c.waitReady(t)
	require.NoError(t, p.Initialise(ctx))
	require.NoError(t, g.StateWait(ctx, kafka.Consuming))
	initialised := time.Since(start)
	for i := range 100 {
		require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: fmt.Appendf(nil, "%d", i)}))
	}
	seen := map[string]bool{}
	for len(seen) < 100 {
		select {
		case v := <-got:
			seen[v] = true
		case <-ctx.Done():
			t.Fatalf("consumed %d of 100", len(seen))
		}
	}
	figures(t, "cluster-down-at-start", "down_seconds", 10, "initialised_after_start", initialised.Round(time.Millisecond),
		"sent", 100, "acknowledged", 100, "received", len(seen), "lost", 100-len(seen))
}
