//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"os"
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

	"github.com/kafkahub/kafkahub/internal/testkit"
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
	// Registered first: a proxy that fails to start must not leave the
	// ones before it listening for the next test (one such failure once
	// failed every fault test after it).
	t.Cleanup(ps.stop)
	for i, pair := range strings.Split(strings.TrimSpace(string(out)), ",") {
		listen, upstream, ok := strings.Cut(pair, ">")
		require.True(t, ok, "bad proxy-map entry %q", pair)
		p := toxiproxy.NewProxy(server, fmt.Sprintf("broker-%d", i+1), listen, upstream)
		ps.list = append(ps.list, p)
		require.NoError(t, p.Start(), "proxy %s: a port in the kernel's ephemeral range (%s) can be taken by any "+
			"outgoing connection; choose KAFKA_BASE_PORT so that it plus 10000 is below that range", listen, ephemeralRange())
		ps.addrs = append(ps.addrs, listen)
	}
	return ps
}

// ephemeralRange returns the local port range the kernel picks outgoing
// connections' ports from, as it reads it.
func ephemeralRange() string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b)), "-")
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

// traffic is a producer sending a steady stream of uniquely numbered
// records and a consumer group handling them, both through the proxies,
// for fault tests to run under.
type traffic struct {
	p *kafka.Producer
	g *kafka.ConsumerGroup

	acked           sync.Map // value -> true once Send returned nil
	nAcked, nFailed atomic.Int64
	stop, sent      chan struct{}
	total           int
	mu              sync.Mutex
	byValue         map[string]int       // handler calls per record value
	byOffset        map[string]int       // handler calls per partition/offset
	firstAt         map[string]time.Time // when each record value was first handled
}

func startTraffic(t *testing.T, ctx context.Context, addrs []string, topic, group string) *traffic {
	t.Helper()
	tr := &traffic{stop: make(chan struct{}), sent: make(chan struct{}), byValue: map[string]int{}, byOffset: map[string]int{},
		firstAt: map[string]time.Time{}}
	var err error
	tr.p, err = kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: addrs, Topic: topic, Logger: quiet,
		MaxRetryPeriod: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.p.Close(context.Background()) })
	require.NoError(t, tr.p.Initialise(ctx))
	tr.g, err = kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs: addrs, Topics: []string{topic}, GroupName: group, Logger: quiet,
		HeartbeatInterval: 500 * time.Millisecond, MaxRetryPeriod: 2 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.g.Close(context.Background()) })
	require.NoError(t, tr.g.RegisterHandler(ctx, func(_ context.Context, _ int, m kafka.Message) error {
		tr.mu.Lock()
		v := string(m.Value())
		if tr.byValue[v]++; tr.byValue[v] == 1 {
			tr.firstAt[v] = time.Now()
		}
		tr.byOffset[fmt.Sprintf("%d/%d", m.Partition(), m.Offset())]++
		tr.mu.Unlock()
		return nil
	}))
	tr.g.Start()

	// A steady stream of Sends to each of the topic's three partitions,
	// one goroutine per partition so that a partition whose leader is
	// unreachable does not hold up the others; each Send has its own
	// deadline, and what Kafka acknowledged is recorded. The goroutines
	// stop when stop is closed, the last one closing sent; they never
	// touch t.
	var senders sync.WaitGroup
	var total atomic.Int64
	for part := range int32(3) {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := 0; ; i++ {
				select {
				case <-tr.stop:
					return
				default:
				}
				v := fmt.Sprintf("m%d-%d", part, i)
				total.Add(1)
				sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := tr.p.Send(sctx, &kafka.ProducerMessage{Partition: &part, Key: fmt.Appendf(nil, "k%d", i%10), Value: []byte(v)})
				cancel()
				if err == nil {
					tr.acked.Store(v, true)
					tr.nAcked.Add(1)
				} else {
					tr.nFailed.Add(1)
				}
				time.Sleep(6 * time.Millisecond) // a steady rate, not a flood
			}
		}()
	}
	go func() {
		senders.Wait()
		tr.total = int(total.Load())
		close(tr.sent)
	}()
	return tr
}

// progress waits until 50 more records are acknowledged.
func (tr *traffic) progress(t *testing.T, what string) {
	t.Helper()
	n := tr.nAcked.Load()
	deadline := time.Now().Add(90 * time.Second)
	for tr.nAcked.Load() < n+50 {
		if time.Now().After(deadline) {
			t.Fatalf("no progress after %s: %d acked", what, tr.nAcked.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// trafficResult is what finish measured.
type trafficResult struct {
	sent, acked, failed int64
	// lost: acknowledged records the consumer never handled.
	lost int
	// producerDups: records the topic holds more than once (the producer
	// wrote them twice); redeliveries: handler calls beyond the first for
	// one partition offset (the consumer handled a stored record again).
	producerDups, redeliveries int
}

// handledBetween counts the records first handled in [from, to].
func (tr *traffic) handledBetween(from, to time.Time) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, at := range tr.firstAt {
		if !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

// finish stops sending, waits until every acknowledged record has been
// handled (or 120 s), stops the consumer, and reads the topic back.
func (tr *traffic) finish(t *testing.T, ctx context.Context, c *cluster, topic string) trafficResult {
	t.Helper()
	close(tr.stop)
	<-tr.sent
	deadline := time.Now().Add(120 * time.Second)
	missing := 0
	for {
		missing = 0
		tr.mu.Lock()
		tr.acked.Range(func(k, _ any) bool {
			if tr.byValue[k.(string)] == 0 {
				missing++
			}
			return true
		})
		tr.mu.Unlock()
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.NoError(t, tr.g.StopAndWait(ctx))
	r := trafficResult{sent: int64(tr.total), acked: tr.nAcked.Load(), failed: tr.nFailed.Load(), lost: missing}
	inTopic := map[string]int{}
	for _, rec := range testkit.ReadAll(ctx, t, c.Addrs(), topic) {
		inTopic[string(rec.Value)]++
	}
	for _, n := range inTopic {
		r.producerDups += n - 1
	}
	tr.mu.Lock()
	for _, n := range tr.byOffset {
		r.redeliveries += n - 1
	}
	tr.mu.Unlock()
	return r
}

// TestNetworkFaults: with a proxy in front of every broker, latency,
// connection resets and a 10 s outage of all brokers. Producer and consumer
// recover by themselves, both Checkers report CRITICAL during the outage and
// OK after, nothing acknowledged is lost, nothing is written twice, and the
// consumer's redeliveries stay within what was handled while the faults
// lasted.
func TestNetworkFaults(t *testing.T) {
	c := realCluster(t)
	ps := startProxies(t, c)
	topic := c.NewTopic(t, 3)
	ctx := ctxFor(t, 10*time.Minute)
	tr := startTraffic(t, ctx, ps.addrs, topic, kafkatest.UniqueName("faults"))
	tr.progress(t, "start")

	ps.addToxic(t, `{"name":"lat","type":"latency","stream":"downstream","attributes":{"latency":200,"jitter":50}}`)
	tr.progress(t, "latency 200 ms")
	ps.removeToxic(t, "lat")

	faultsFrom := time.Now()
	ps.addToxic(t, `{"name":"reset","type":"reset_peer","stream":"upstream","toxicity":0.3,"attributes":{"timeout":500}}`)
	time.Sleep(3 * time.Second) // the fault window
	ps.removeToxic(t, "reset")
	tr.progress(t, "connection resets")

	ps.stop()
	outage := time.Now()
	critical := waitHealth(t, tr.p.Checker, kafka.HealthCritical, 10*time.Second)
	gCritical := waitHealth(t, tr.g.Checker, kafka.HealthCritical, 10*time.Second)
	time.Sleep(time.Until(outage.Add(10 * time.Second))) // hold the outage for 10 s
	ps.start(t)
	ok := waitHealth(t, tr.p.Checker, kafka.HealthOK, 60*time.Second)
	gOK := waitHealth(t, tr.g.Checker, kafka.HealthOK, 60*time.Second)
	tr.progress(t, "outage")
	faultsTo := time.Now()

	r := tr.finish(t, ctx, c, topic)
	bound := tr.handledBetween(faultsFrom.Add(-kafka.DefaultCommitInterval), faultsTo.Add(kafka.DefaultCommitInterval))
	figures(t, "network-faults", "sent", r.sent, "acknowledged", r.acked, "failed", r.failed,
		"lost", r.lost, "producer_duplicates", r.producerDups, "consumer_redeliveries", r.redeliveries,
		"redelivery_bound", bound, "critical_after", critical.Round(time.Millisecond), "consumer_critical_after", gCritical.Round(time.Millisecond),
		"ok_after_restore", ok.Round(time.Millisecond), "consumer_ok_after_restore", gOK.Round(time.Millisecond))
	assert.Zero(t, r.lost, "acknowledged records never consumed")
	assert.Zero(t, r.producerDups, "records written twice: idempotence held across resets and the outage")
	// Redeliveries are records handled while commits failed (resets, the
	// outage) whose offsets were not committed when the member's session
	// ended: at most what was handled from one commit interval before the
	// faults to one after they ended.
	assert.LessOrEqual(t, r.redeliveries, bound, "redeliveries: at most what was handled while commits could fail")
}

// TestBrokerBlackhole: the proxy of the broker leading partition 0 drops
// every byte in both directions for 30 s without closing any connection
// (a cable pulled, not a reset), while records are produced and consumed.
// Producer and consumer recover by themselves, Checker says OK again, and
// nothing acknowledged is lost.
func TestBrokerBlackhole(t *testing.T) {
	c := realCluster(t)
	ps := startProxies(t, c)
	topic := c.NewTopic(t, 3)
	ctx := ctxFor(t, 10*time.Minute)
	tr := startTraffic(t, ctx, ps.addrs, topic, kafkatest.UniqueName("blackhole"))
	tr.progress(t, "start")

	victim := c.leaderOf(t, topic, 0)
	proxy := ps.list[victim-1]
	elsewhere := 0 // partitions led by another broker
	for part := range int32(3) {
		if c.leaderOf(t, topic, part) != victim {
			elsewhere++
		}
	}
	before := tr.nAcked.Load()
	for _, stream := range []string{"upstream", "downstream"} {
		_, err := proxy.Toxics.AddToxicJson(strings.NewReader(
			`{"name":"hole-` + stream + `","type":"timeout","stream":"` + stream + `","attributes":{"timeout":0}}`))
		require.NoError(t, err)
	}
	time.Sleep(30 * time.Second) // the blackhole, as specified
	during := tr.nAcked.Load() - before
	for _, stream := range []string{"upstream", "downstream"} {
		require.NoError(t, proxy.Toxics.RemoveToxic(context.Background(), "hole-"+stream))
	}
	restored := time.Now()
	tr.progress(t, "blackhole removed")
	recovered := time.Since(restored)
	ok := waitHealth(t, tr.p.Checker, kafka.HealthOK, 90*time.Second)
	gOK := waitHealth(t, tr.g.Checker, kafka.HealthOK, 90*time.Second)

	r := tr.finish(t, ctx, c, topic)
	figures(t, "broker-blackhole", "blackholed_node", victim, "partitions_led_elsewhere", elsewhere, "blackhole_seconds", 30, "sent", r.sent,
		"acknowledged", r.acked, "acked_during_blackhole", during, "failed", r.failed, "lost", r.lost,
		"producer_duplicates", r.producerDups, "consumer_redeliveries", r.redeliveries,
		"progress_after_restore", recovered.Round(time.Millisecond), "ok_after_restore", ok.Round(time.Millisecond),
		"consumer_ok_after_restore", gOK.Round(time.Millisecond))
	assert.Zero(t, r.lost, "acknowledged records never consumed")
	assert.Zero(t, r.producerDups, "records written twice")
	if elsewhere > 0 {
		assert.Positive(t, during, "partitions led by the other brokers kept taking records during the blackhole")
	}
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
