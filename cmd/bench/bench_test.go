package main

// Benchmarks for profiling one implementation at a time with the go tool:
//
//	go test ./cmd/bench -run '^$' -bench 'Produce/(kafkahub-output|sarama)$' \
//	    -benchtime 300000x -count 3 -cpuprofile /tmp/cpu.out -memprofile /tmp/mem.out
//
// One op is one record, so allocs/op is allocations per record (client
// setup included, amortised over -benchtime). The embedded broker runs in a
// child process (this test binary, see TestMain), so profiles and
// allocation counts are the client's alone; with KAFKA_BROKERS set they run
// against that cluster.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

var (
	benchOnce   sync.Once
	benchBroker *broker
	benchErr    error
)

func TestMain(m *testing.M) {
	if n, ok := os.LookupEnv(childEnv); ok {
		os.Exit(serveChild(n))
	}
	code := m.Run()
	if benchBroker != nil {
		benchBroker.close()
	}
	os.Exit(code)
}

func sharedBroker(b *testing.B) *broker {
	b.Helper()
	benchOnce.Do(func() { benchBroker, benchErr = startBroker(1, false) })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchBroker
}

const benchPartitions = 6

func BenchmarkProduce(b *testing.B) {
	for _, size := range []int{100, 1024} {
		for _, im := range producers() {
			b.Run(fmt.Sprintf("%s/%s", sizeName(size), im.name), func(b *testing.B) {
				br := sharedBroker(b)
				topic, err := br.newTopic("b", benchPartitions)
				if err != nil {
					b.Fatal(err)
				}
				defer br.deleteTopic(topic)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				p := produceParams{addrs: br.addrs, topic: topic, n: b.N, limit: time.Hour, idempotent: true,
					senders: 256, keys: keysFor(1000), value: make([]byte, size)}
				b.ReportAllocs()
				b.SetBytes(int64(size))
				b.ResetTimer()
				cpu0 := cpuTime()
				r, err := im.run(ctx, p)
				cpu := cpuTime() - cpu0
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.rate(), "msgs/s")
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
			})
		}
	}
}

func BenchmarkConsume(b *testing.B) {
	for _, size := range []int{100, 1024} {
		for _, im := range consumers() {
			b.Run(fmt.Sprintf("%s/%s", sizeName(size), im.name), func(b *testing.B) {
				br := sharedBroker(b)
				topic, err := br.newTopic("b", benchPartitions)
				if err != nil {
					b.Fatal(err)
				}
				defer br.deleteTopic(topic)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				b.StopTimer()
				total, err := prefill(ctx, produceParams{addrs: br.addrs, topic: topic, n: b.N, limit: time.Hour,
					keys: keysFor(1000), value: make([]byte, size)})
				if err != nil {
					b.Fatal(err)
				}
				p := consumeParams{addrs: br.addrs, topic: topic, group: topic + "-g", total: total, size: size,
					limit: time.Hour, partitions: benchPartitions, batch: 500}
				b.ReportAllocs()
				b.SetBytes(int64(size))
				b.ResetTimer()
				b.StartTimer()
				cpu0 := cpuTime()
				r, err := im.run(ctx, p)
				cpu := cpuTime() - cpu0
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.rate(), "msgs/s")
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
			})
		}
	}
}

// TestMurmur2MatchesFranzGo checks that raw Sarama gets the same key
// placement as kafkahub and franz-go (both Java-compatible murmur2).
func TestMurmur2MatchesFranzGo(t *testing.T) {
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	var sp sarama.Partitioner = murmur2Partitioner{}
	for i, key := range keysFor(500) {
		n := int32(i%12 + 1)
		want := tp.Partition(&kgo.Record{Key: key}, int(n))
		got, err := sp.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(key)}, n)
		if err != nil || int(got) != want {
			t.Fatalf("key %q over %d partitions: sarama partitioner %d (%v), franz-go %d", key, n, got, err, want)
		}
	}
}

func TestPercentileAndMedian(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	if got := percentile(ds, 50); got != 3 {
		t.Errorf("p50 = %v, want 3", got)
	}
	if got := percentile(ds, 100); got != 5 {
		t.Errorf("p100 = %v, want 5", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
}

// TestEveryImplementationStopsCleanly runs each implementation of each
// scenario once, briefly, on a broker of its own, and then checks that no
// goroutine outlives them (the program's runs must leave nothing behind).
func TestEveryImplementationStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and every client")
	}
	before := goleak.IgnoreCurrent()
	br, err := startBroker(1, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	keys, value := keysFor(100), make([]byte, 100)
	for _, im := range producers() {
		topic, err := br.newTopic("leak", 3)
		if err != nil {
			t.Fatal(err)
		}
		r, err := im.run(ctx, produceParams{addrs: br.addrs, topic: topic, n: 2000, limit: time.Minute,
			idempotent: true, senders: 16, keys: keys, value: value})
		if err != nil || r.msgs != 2000 {
			t.Errorf("produce %s: %d records, %v", im.name, r.msgs, err)
		}
		br.deleteTopic(topic)
	}
	topic, err := br.newTopic("leak", 3)
	if err != nil {
		t.Fatal(err)
	}
	total, err := prefill(ctx, produceParams{addrs: br.addrs, topic: topic, n: 3000, limit: time.Minute, keys: keys, value: value})
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range consumers() {
		r, err := im.run(ctx, consumeParams{addrs: br.addrs, topic: topic, group: topic + "-" + im.name, total: total,
			size: 100, limit: time.Minute, partitions: 3, batch: 100})
		if err != nil || r.msgs < total {
			t.Errorf("consume %s: %d of %d records, %v", im.name, r.msgs, total, err)
		}
	}
	br.deleteTopic(topic)
	for _, im := range latencyRuns() {
		topic, err := br.newTopic("leak", 3)
		if err != nil {
			t.Fatal(err)
		}
		r, err := im.run(ctx, latencyParams{addrs: br.addrs, topic: topic, group: topic + "-g", rate: 1000,
			limit: 300 * time.Millisecond, size: 100, partitions: 3})
		if err != nil || r.msgs != 300 || len(r.lat) != 300 {
			t.Errorf("latency %s: %d records, %d samples, %v", im.name, r.msgs, len(r.lat), err)
		}
		br.deleteTopic(topic)
	}
	br.close()
	// go-metrics' meter arbiter is one process-wide goroutine Sarama starts
	// on first use (see kafka/main_test.go).
	goleak.VerifyNone(t, before, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}

func TestRoundOrderRotates(t *testing.T) {
	ims := []string{"a", "b", "c"}
	for round, want := range [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"a", "b", "c"}} {
		if got := roundOrder(ims, round); !slices.Equal(got, want) {
			t.Errorf("round %d: %v, want %v", round, got, want)
		}
	}
	if got := roundOrder(ims, 1); ims[0] != "a" || got[0] != "b" {
		t.Errorf("roundOrder changed its argument: %v", ims)
	}
}

// TestPairedRatioIsTheMedianOfRounds: a machine that slows down over the
// run moves both implementations of a round alike, so the paired ratio
// stays 2 while the ratio of medians would not.
func TestPairedRatioIsTheMedianOfRounds(t *testing.T) {
	round := func(msgs int64, seconds, cpu float64) roundResult {
		return roundResult{msgs: msgs, seconds: seconds, cpuUsPerMsg: cpu}
	}
	a := []roundResult{round(200, 1, 1), round(100, 1, 2), round(20, 1, 10)}
	b := []roundResult{round(100, 1, 2), round(50, 1, 4), round(10, 1, 20), round(5, 1, 40)}
	got := paired(a, b)
	if got.MsgsPerS != 2 || got.CPUusPerMsg != 0.5 {
		t.Errorf("paired = %+v, want 2 and 0.5", got)
	}
}
