package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// quiet keeps expected warnings (retries, dropped errors) out of test output.
var quiet = slog.New(slog.DiscardHandler)

func newProducer(t *testing.T, cfg *kafka.ProducerConfig) *kafka.Producer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := kafka.NewProducer(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, p.Close(ctx))
	})
	return p
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestProducerSendKeysHeadersPartitions(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 4)
	other := cluster.NewTopic(t, 1)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	ctx := testCtx(t, 30*time.Second)

	p.SetDefaultHeader("service", []byte("billing"))
	p.SetDefaultHeader("env", []byte("test"))

	require.NoError(t, p.Send(kafka.WithTraceID(ctx, "trace-123"), &kafka.ProducerMessage{
		Key: []byte("device-1"), Value: []byte("v1"),
		Headers: []kafka.Header{{Key: "env", Value: []byte("override")}, {Key: "h", Value: []byte("x")}},
	}))
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("to-p2"), Partition: new(int32(2))}))
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Topic: other, Value: []byte("elsewhere")}))
	// The same key lands on the same partition every time.
	for i := range 5 {
		require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Key: []byte("device-7"), Value: []byte(strconv.Itoa(i))}))
	}

	recs := testkit.ReadAll(ctx, t, cluster.Addrs(), topic)
	require.Len(t, recs, 7)
	byValue := map[string]testkit.Record{}
	d7 := map[int32]bool{}
	var d7order []string
	for _, r := range recs {
		byValue[string(r.Value)] = r
		if string(r.Key) == "device-7" {
			d7[r.Partition] = true
			d7order = append(d7order, string(r.Value))
		}
	}
	v1 := byValue["v1"]
	assert.Equal(t, "device-1", string(v1.Key))
	assert.Equal(t, map[string]string{"service": "billing", "env": "override", "h": "x", "trace-id": "trace-123"}, v1.Headers)
	assert.Equal(t, int32(2), byValue["to-p2"].Partition)
	assert.NotContains(t, byValue["to-p2"].Headers, "trace-id", "no trace header without a trace id")
	assert.Len(t, d7, 1, "one key, one partition")
	assert.Equal(t, []string{"0", "1", "2", "3", "4"}, d7order, "per-key order")

	o := testkit.ReadAll(ctx, t, cluster.Addrs(), other)
	require.Len(t, o, 1)
	assert.Equal(t, "elsewhere", string(o[0].Value))

	p.DeleteDefaultHeader("service")
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Topic: other, Value: []byte("after-delete")}))
	o = testkit.ReadAll(ctx, t, cluster.Addrs(), other)
	require.Len(t, o, 2)
	assert.Equal(t, map[string]string{"env": "test"}, o[1].Headers)
}

func TestProducerSendRejectsPartitionOutOfRange(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 2)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	err := p.Send(testCtx(t, 30*time.Second), &kafka.ProducerMessage{Value: []byte("x"), Partition: new(int32(5))})
	var perr *kafka.ProducerError
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, topic, perr.Topic)
}

func TestProducerOutputChannelAndDeliveryCallback(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 3)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	ctx := testCtx(t, 30*time.Second)

	const n = 100
	deliveries := make(chan kafka.Delivery, n)
	for i := range n {
		select {
		case p.Channels().Output <- &kafka.ProducerMessage{
			Key: []byte(strconv.Itoa(i % 7)), Value: []byte(strconv.Itoa(i)),
			OnDelivery: func(d kafka.Delivery) { deliveries <- d },
		}:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	seen := map[string]bool{}
	for range n {
		select {
		case d := <-deliveries:
			require.NoError(t, d.Err)
			require.GreaterOrEqual(t, d.Offset, int64(0))
			require.Equal(t, topic, d.Topic)
			seen[string(d.Message.Value)] = true
		case <-ctx.Done():
			t.Fatalf("only %d deliveries: %v", len(seen), ctx.Err())
		}
	}
	assert.Len(t, seen, n)
	assert.Len(t, testkit.ReadAll(ctx, t, cluster.Addrs(), topic), n)
}

// TestProducerCloseFlushesOutput: records accepted on Output before Close are
// delivered, not dropped.
func TestProducerCloseFlushesOutput(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 3)
	ctx := testCtx(t, 30*time.Second)
	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, OutputBufferSize: 500, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, p.Initialise(ctx))
	for i := range 500 {
		p.Channels().Output <- &kafka.ProducerMessage{Value: []byte(strconv.Itoa(i))}
	}
	require.NoError(t, p.Close(ctx))
	require.NoError(t, p.Close(ctx), "Close is idempotent")
	if err, open := <-p.Channels().Errors; open {
		t.Errorf("Errors held an error after Close: %v", err)
		for err := range p.Channels().Errors {
			t.Errorf("and: %v", err)
		}
	}
	assert.Len(t, testkit.ReadAll(ctx, t, cluster.Addrs(), topic), 500)
	assert.ErrorIs(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("late")}), kafka.ErrClosed)
}

func TestProducerConcurrentSend(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 6)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	ctx := testCtx(t, 60*time.Second)

	const workers, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if i == each/2 {
					// Default headers change while others send.
					p.SetDefaultHeader("worker", []byte(strconv.Itoa(w)))
				}
				errs <- p.Send(ctx, &kafka.ProducerMessage{Key: []byte(strconv.Itoa(w)), Value: []byte(fmt.Sprintf("%d-%d", w, i))})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	recs := testkit.ReadAll(ctx, t, cluster.Addrs(), topic)
	require.Len(t, recs, workers*each)
	next := map[string]int{}
	for _, r := range recs {
		var w, i int
		_, err := fmt.Sscanf(string(r.Value), "%d-%d", &w, &i)
		require.NoError(t, err)
		require.Equal(t, next[string(r.Key)], i, "order of key %s", r.Key)
		next[string(r.Key)]++
	}
}

// TestProducerInitialisesWhenClusterComesUp starts the producer first and the
// cluster later: the producer must connect by itself.
func TestProducerInitialisesWhenClusterComesUp(t *testing.T) {
	if kafkatest.External() {
		t.Skip("needs to start the embedded cluster on a chosen port")
	}
	port := testkit.FreePort(t)
	ctx := testCtx(t, 30*time.Second)
	cfg := &kafka.ProducerConfig{
		BrokerAddrs:    []string{fmt.Sprintf("127.0.0.1:%d", port)},
		Topic:          "late-topic",
		MinRetryPeriod: 20 * time.Millisecond,
		MaxRetryPeriod: 200 * time.Millisecond,
	}
	p := newProducer(t, cfg)
	require.False(t, p.IsInitialised())
	h := p.Checker(ctx)
	assert.Equal(t, kafka.HealthCritical, h.Status, h.Message)

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := p.Send(short, &kafka.ProducerMessage{Value: []byte("x")})
	cancel()
	require.ErrorIs(t, err, kafka.ErrNotInitialised)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	cluster := kafkatest.NewCluster(t, kafkatest.Ports(port), kafkatest.SeedTopics(1, "late-topic"))
	select {
	case <-p.Channels().Initialised:
	case <-ctx.Done():
		t.Fatal("producer did not initialise after the cluster came up")
	}
	require.True(t, p.IsInitialised())
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("after")}))
	assert.Len(t, testkit.ReadAll(ctx, t, cluster.Addrs(), "late-topic"), 1)
	h = p.Checker(ctx)
	assert.Equal(t, kafka.HealthOK, h.Status, h.Message)
}

// failProduce makes the embedded broker answer every produce request with
// code until the returned stop function is called.
func failProduce(t *testing.T, cluster *kafkatest.Cluster, code int16, times int) (count func() int) {
	var mu sync.Mutex
	n := 0
	cluster.Fake().ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if times >= 0 && n > times {
			return nil, nil, false
		}
		cluster.Fake().KeepControl()
		r := req.(*kmsg.ProduceRequest)
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func TestProducerSendReturnsBrokerError(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	if cluster.Fake() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	topic := cluster.NewTopic(t, 1)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, p.Initialise(ctx))

	failProduce(t, cluster, kerr.TopicAuthorizationFailed.Code, -1)
	err := p.Send(ctx, &kafka.ProducerMessage{Value: []byte("denied")})
	var perr *kafka.ProducerError
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, "denied", string(perr.Msg.Value))
	assert.Contains(t, err.Error(), "authoriz")
}

// TestProducerRetriesTransientErrorsWithoutDuplicates: retriable errors are
// retried until the record is stored, once. The refused attempts write
// nothing, so this shows retrying, not idempotence: that is
// TestProducerIdempotenceSurvivesALostResponse.
func TestProducerRetriesTransientErrorsWithoutDuplicates(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	if cluster.Fake() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	topic := cluster.NewTopic(t, 1)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, RetryBackoff: 10 * time.Millisecond})
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, p.Initialise(ctx))

	count := failProduce(t, cluster, kerr.NotEnoughReplicas.Code, 2)
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("once")}))
	assert.GreaterOrEqual(t, count(), 3, "two failures then a success")
	assert.Len(t, testkit.ReadAll(ctx, t, cluster.Addrs(), topic), 1)
}

// loseProduceResponse makes the embedded broker write the next produce
// request and then lose its response: the request is replayed to the same
// broker on a separate connection (so the batch is stored), and the
// producer's own connection is closed before any answer. The producer sees
// a broken connection and retries a batch the broker already holds.
func loseProduceResponse(t *testing.T, cluster *kafkatest.Cluster) (written <-chan error) {
	t.Helper()
	fake := cluster.Fake()
	done := make(chan error, 1)
	var once sync.Once
	fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		first := false
		once.Do(func() { first = true })
		if !first {
			return nil, nil, false // the replay itself, and the retry: handled normally
		}
		fake.KeepControl() // stays for the replay, which must pass through
		node := fake.CurrentNode()
		fake.SleepControl(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// The replay speaks the request's own version: Produce v13
			// names topics by id, older versions by name.
			versions := kversion.Stable()
			versions.SetMaxKeyVersion(int16(kmsg.Produce), req.GetVersion())
			replay, err := kgo.NewClient(kgo.SeedBrokers(cluster.Addrs()...), kgo.MaxVersions(versions))
			if err != nil {
				done <- err
				return
			}
			defer replay.Close()
			resp, err := replay.Broker(int(node)).Request(ctx, req)
			if err == nil {
				for _, rt := range resp.(*kmsg.ProduceResponse).Topics {
					for _, rp := range rt.Partitions {
						err = errors.Join(err, kerr.ErrorForCode(rp.ErrorCode))
					}
				}
			}
			done <- err
		})
		return nil, errors.New("kfake: produce response lost"), true
	})
	return done
}

// TestProducerIdempotenceSurvivesALostResponse: the broker writes a batch
// and its response is lost; the producer retries it. Idempotence (on by
// default) makes the broker recognise the retry, so the record is stored
// once. The second subtest shows the fault is real: without idempotence
// the same fault stores the record twice.
func TestProducerIdempotenceSurvivesALostResponse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		disable bool
		want    int
	}{{"idempotent", false, 1}, {"without idempotence the retry is a duplicate", true, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
			if cluster.Fake() == nil {
				t.Skip("fault injection needs the embedded broker")
			}
			topic := cluster.NewTopic(t, 1)
			cfg := &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, RetryBackoff: 10 * time.Millisecond,
				DisableIdempotence: tc.disable}
			p := newProducer(t, cfg)
			ctx := testCtx(t, 30*time.Second)
			require.NoError(t, p.Initialise(ctx))

			written := loseProduceResponse(t, cluster)
			require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("once")}))
			select {
			case err := <-written:
				require.NoError(t, err, "the broker stored the batch whose response was lost")
			case <-ctx.Done():
				t.Fatal("the produce request never reached the broker")
			}
			assert.Len(t, testkit.ReadAll(ctx, t, cluster.Addrs(), topic), tc.want)
		})
	}
}

// TestProducerCloseWithUnreadErrors: a user who never reads Errors must not
// block the producer, nor Close.
func TestProducerCloseWithUnreadErrors(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	if cluster.Fake() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	topic := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 30*time.Second)
	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, ErrorsBufferSize: 2, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, p.Initialise(ctx))
	failProduce(t, cluster, kerr.TopicAuthorizationFailed.Code, -1)

	const n = 20
	for i := range n {
		p.Channels().Output <- &kafka.ProducerMessage{Value: []byte(strconv.Itoa(i))}
	}
	require.NoError(t, p.Close(ctx))
	var got []error
	for err := range p.Channels().Errors {
		got = append(got, err)
	}
	assert.Len(t, got, 2, "the buffer's worth of errors is kept")
	assert.Equal(t, uint64(n-2), p.DroppedErrors(), "the rest is counted as dropped")
}

// TestProducerCloseBeforeInitialisation: records waiting in Output are
// reported as failed, not lost silently, and Close does not wait for a
// cluster that never comes.
func TestProducerCloseBeforeInitialisation(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{
		BrokerAddrs: []string{fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))}, Topic: "t", Logger: quiet,
	})
	require.NoError(t, err)
	require.False(t, p.IsInitialised())
	delivered := make(chan kafka.Delivery, 1)
	p.Channels().Output <- &kafka.ProducerMessage{Value: []byte("a")}
	p.Channels().Output <- &kafka.ProducerMessage{Value: []byte("b"), OnDelivery: func(d kafka.Delivery) { delivered <- d }}
	require.NoError(t, p.Close(ctx))
	d := <-delivered
	require.ErrorIs(t, d.Err, kafka.ErrClosed)
	require.ErrorIs(t, d.Err, kafka.ErrNotInitialised)
	err = <-p.Channels().Errors
	require.ErrorIs(t, err, kafka.ErrClosed)
	var perr *kafka.ProducerError
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, "a", string(perr.Msg.Value))
	require.ErrorIs(t, p.Initialise(ctx), kafka.ErrClosed)
	assert.Equal(t, kafka.HealthCritical, p.Checker(ctx).Status)
}

func TestProducerConcurrentClose(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 30*time.Second)
	p, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Logger: quiet})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { assert.NoError(t, p.Close(ctx)) })
		wg.Go(func() {
			err := p.Send(ctx, &kafka.ProducerMessage{Value: []byte("x")})
			if err != nil {
				assert.ErrorIs(t, err, kafka.ErrClosed)
			}
		})
	}
	wg.Wait()
	select {
	case <-p.Channels().Closed:
	default:
		t.Fatal("Closed not closed after Close returned")
	}
}

func TestProducerChecker(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	ctx := testCtx(t, 30*time.Second)

	ok := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	h := ok.Checker(ctx)
	assert.Equal(t, kafka.HealthOK, h.Status, h.Message)

	missing := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: kafkatest.UniqueName("missing")})
	h = missing.Checker(ctx)
	assert.Equal(t, kafka.HealthWarning, h.Status, h.Message)
	assert.Contains(t, h.Message, "topic missing")

	n := len(cluster.Addrs())
	tooMany := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, MinBrokersHealthy: n + 1})
	h = tooMany.Checker(ctx)
	assert.Equal(t, kafka.HealthCritical, h.Status)
	assert.Contains(t, h.Message, fmt.Sprintf("%d of %d brokers answered, need %d", n, n, n+1))
}

func TestProducerCheckerCriticalWhenClusterGone(t *testing.T) {
	if kafkatest.External() {
		t.Skip("stops the embedded cluster")
	}
	cluster, err := kafkatest.StartCluster(kafkatest.Brokers(1), kafkatest.SeedTopics(1, "gone"))
	require.NoError(t, err)
	defer cluster.Close()
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: "gone"})
	ctx := testCtx(t, 30*time.Second)
	require.Equal(t, kafka.HealthOK, p.Checker(ctx).Status)
	cluster.Close()
	h := p.Checker(ctx)
	assert.Equal(t, kafka.HealthCritical, h.Status, h.Message)
}

func TestProducerTraceIDFuncPanicIsContained(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	p := newProducer(t, &kafka.ProducerConfig{
		BrokerAddrs: cluster.Addrs(), Topic: topic,
		TraceIDFunc: func(ctx context.Context) string { return ctx.Value("x").(string) },
	})
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: []byte("x")}))
	recs := testkit.ReadAll(ctx, t, cluster.Addrs(), topic)
	require.Len(t, recs, 1)
	assert.Empty(t, recs[0].Headers)
}

// TestBrokerRefusesMessageTooLarge: a record within the producer's
// MaxMessageBytes but over its topic's max.message.bytes is refused by the
// broker (MESSAGE_TOO_LARGE), and that refusal is ErrMessageTooLarge on
// both engines, as the local check's is: tcphub answers it record_too_large
// (not retryable) rather than unavailable, which a device would resend.
func TestBrokerRefusesMessageTooLarge(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	for _, engine := range []kafka.Engine{kafka.EngineSarama, kafka.EngineFranz} {
		t.Run(string(engine), func(t *testing.T) {
			ctx := testCtx(t, 60*time.Second)
			topic := kafkatest.UniqueName(t.Name())
			require.NoError(t, kafka.CreateTopic(ctx, cluster.Addrs(), nil, kafka.TopicSpec{
				Name: topic, Partitions: 1, Config: map[string]string{"max.message.bytes": "2048"},
			}))
			p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, Engine: engine,
				MaxRetryPeriod: 10 * time.Second})
			err := p.Send(ctx, &kafka.ProducerMessage{Value: make([]byte, 8192)})
			require.ErrorIs(t, err, kafka.ErrMessageTooLarge)
			require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Value: make([]byte, 100)}), "a record under the topic's limit")
		})
	}
}

func TestProducerMessageTooLarge(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic, MaxMessageBytes: 1024})
	err := p.Send(testCtx(t, 30*time.Second), &kafka.ProducerMessage{Value: make([]byte, 4096)})
	require.True(t, errors.Is(err, kafka.ErrMessageTooLarge), "got %v", err)
}
