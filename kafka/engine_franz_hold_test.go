package kafka_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// failCommits makes the embedded broker answer every OffsetCommit with
// COORDINATOR_NOT_AVAILABLE until the returned flag is cleared. kgo takes
// the code for a moved coordinator and retries, so a commit call does not
// return while the flag stays set (until kgo's retries or the call's
// context run out): what a member sees while its coordinator is dead and
// the partition leaders are alive. Fetches and heartbeats are untouched.
func failCommits(t *testing.T, cluster *kafkatest.Cluster) *atomic.Bool {
	t.Helper()
	fake := cluster.Fake()
	failing := new(atomic.Bool)
	failing.Store(true)
	fake.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !failing.Load() {
			return nil, nil, false // without KeepControl the control is dropped
		}
		fake.KeepControl()
		r := req.(*kmsg.OffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.CoordinatorNotAvailable.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return failing
}

// holdWatch is a slog.Handler that signals the franz-go engine's hold
// starting and ending, and drops everything else.
type holdWatch struct {
	started, ended chan struct{}
}

func newHoldWatch() *holdWatch {
	return &holdWatch{started: make(chan struct{}, 16), ended: make(chan struct{}, 16)}
}

func (w *holdWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *holdWatch) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *holdWatch) WithGroup(string) slog.Handler            { return w }

func (w *holdWatch) Handle(_ context.Context, r slog.Record) error {
	var ch chan struct{}
	switch {
	case r.Level == slog.LevelWarn && strings.Contains(r.Message, "holding records"):
		ch = w.started
	case r.Level == slog.LevelInfo && strings.Contains(r.Message, "hold ended"):
		ch = w.ended
	default:
		return nil
	}
	select {
	case ch <- struct{}{}:
	default:
	}
	return nil
}

// handledSet records which offsets of each partition were handled, and how
// many handler calls there were in all (duplicates included).
type handledSet struct {
	calls atomic.Int64
	mu    sync.Mutex
	seen  map[int32]map[int64]bool
}

func (h *handledSet) add(p int32, off int64) {
	h.calls.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen[p] == nil {
		h.seen[p] = map[int64]bool{}
	}
	h.seen[p][off] = true
}

// missing counts the offsets below hw not handled yet.
func (h *handledSet) missing(hw map[int32]int64) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n int64
	for p, end := range hw {
		n += end - int64(len(h.seen[p]))
	}
	return n
}

// steadyProducer writes to every partition of topic in turn, 2,000 records
// a second, until stop is called; stop waits for every delivery and fails
// the test on a delivery error. It keeps to the rate over time rather than
// per tick, so a loaded machine's late ticks do not thin the stream.
func steadyProducer(t *testing.T, cluster *kafkatest.Cluster, topic string, partitions int32) (sent *atomic.Int64, stop func()) {
	t.Helper()
	p := newProducer(t, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: topic})
	sent = new(atomic.Int64)
	var delivered atomic.Int64
	var failed atomic.Value
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		const every = 500 * time.Microsecond
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		for i := int32(0); ; {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			for due := int64(time.Since(start) / every); sent.Load() < due; {
				part := i % partitions
				i++
				select {
				case p.Channels().Output <- &kafka.ProducerMessage{Partition: &part, Value: []byte("v"),
					OnDelivery: func(d kafka.Delivery) {
						if d.Err != nil {
							failed.Store(d.Err)
						}
						delivered.Add(1)
					}}:
					sent.Add(1)
				case <-quit:
					return
				}
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(quit)
			<-done
		})
		require.Eventually(t, func() bool { return delivered.Load() == sent.Load() }, 60*time.Second, 10*time.Millisecond,
			"delivered %d of %d", delivered.Load(), sent.Load())
		if err, _ := failed.Load().(error); err != nil {
			t.Fatalf("delivery failed: %v", err)
		}
	}
	t.Cleanup(func() {
		once.Do(func() {
			close(quit)
			<-done
		})
	})
	return sent, stop
}

// waitFor waits for ch until d has passed; it reports whether ch fired.
func waitFor(ch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// TestFranzHoldsRecordsWhileCommitsFail: on the franz-go engine a group
// consuming a steady stream stops handling new records once its commits
// have failed for a while (a dead group coordinator while the partition
// leaders live), instead of handling records it cannot commit, which the
// next session would handle again; it resumes when a commit succeeds, and
// every record is handled and committed in the end.
//
// The bound on what is handled after the hold engaged: per partition, the
// claim's channel (kafka.FranzClaimBuffer), the record the claim loop has
// taken out of it to wait for a worker, and the one record a feeder or the
// poll loop was putting into it when the hold began; plus one handler call
// per worker that had started before and returns after the snapshot. A
// worker's burst takes from the channel, so it is within the first term.
func TestFranzHoldsRecordsWhileCommitsFail(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	if cluster.Fake() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	const partitions, workers = 4, 2
	topic := cluster.NewTopic(t, partitions)
	group := kafkatest.UniqueName("g")
	ctx := testCtx(t, 240*time.Second)

	watch := newHoldWatch()
	h := &handledSet{seen: map[int32]map[int64]bool{}}
	g := newGroup(t, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group,
		Engine: kafka.EngineFranz, NumWorkers: workers, CommitInterval: 200 * time.Millisecond, Logger: slog.New(watch)})
	require.NoError(t, g.RegisterHandler(ctx, func(_ context.Context, _ int, m kafka.Message) error {
		h.add(m.Partition(), m.Offset())
		return nil
	}))
	sent, stopProducing := steadyProducer(t, cluster, topic, partitions)
	g.Start()
	require.Eventually(t, func() bool { return h.calls.Load() >= 2000 }, 60*time.Second, 10*time.Millisecond,
		"handling under way (%d handled)", h.calls.Load())

	// The engine holds once a commit has gone unanswered for
	// max(2 x CommitInterval, 2 x HeartbeatInterval, 1 s) = 2 s here; the
	// first commit after the failures start is at most one CommitInterval
	// later. The rest is for a loaded 2-core machine.
	const engageBound = 200*time.Millisecond + 2*time.Second + 8*time.Second
	failing := failCommits(t, cluster)
	failStart := time.Now()
	atFail := h.calls.Load()
	engaged := waitFor(watch.started, engageBound)
	engagedAfter := time.Since(failStart)
	atHold, sentAtHold := h.calls.Load(), sent.Load()
	if !engaged {
		t.Errorf("no hold within %v of the commits failing; %d records handled meanwhile", engageBound, atHold-atFail)
	}

	// Nothing may happen now. The window lasts until the stream has
	// produced twice the bound since the hold (so the bound means
	// something), however long a loaded machine takes to get there.
	bound := int64(partitions*(kafka.FranzClaimBuffer+2) + workers)
	windowStart := time.Now()
	require.Eventually(t, func() bool { return sent.Load()-sentAtHold > 2*bound }, 60*time.Second, 10*time.Millisecond,
		"the stream goes on during the hold (%d produced since)", sent.Load()-sentAtHold)
	window := time.Since(windowStart)
	afterHold := h.calls.Load() - atHold
	producedInWindow := sent.Load() - sentAtHold
	t.Logf("FIGURES hold engaged=%v after %v; handled from the failures to the hold: %d; handled in the %v after it: %d (bound %d) while %d were produced",
		engaged, engagedAfter.Round(time.Millisecond), atHold-atFail, window.Round(time.Millisecond), afterHold, bound, producedInWindow)
	assert.LessOrEqual(t, afterHold, bound, "records handled after the hold engaged")

	failing.Store(false)
	liftedAt := time.Now()
	require.True(t, waitFor(watch.ended, 60*time.Second), "the hold ends once a commit succeeds")
	before := h.calls.Load()
	require.Eventually(t, func() bool { return h.calls.Load() > before+1000 }, 60*time.Second, 10*time.Millisecond,
		"handling resumes after the hold (%d handled since)", h.calls.Load()-before)
	t.Logf("FIGURES hold ended %v after the commits succeeded again", time.Since(liftedAt).Round(time.Millisecond))

	stopProducing()
	hw := highWater(t, cluster, topic)
	require.Eventually(t, func() bool { return h.missing(hw) == 0 }, 120*time.Second, 10*time.Millisecond,
		"every record handled at least once (%d missing)", h.missing(hw))
	require.NoError(t, g.StopAndWait(ctx))
	var total int64
	for _, end := range hw {
		total += end
	}
	t.Logf("FIGURES %d records, %d handler calls, %d handled twice", total, h.calls.Load(), h.calls.Load()-total)
	assert.Equal(t, hw, committed(t, cluster, group, topic), "the committed offsets reach the end")
}

// TestFranzCloseDuringCommitHold: Close while the franz-go engine holds
// records for failing commits returns once the commits in flight have
// given up (RebalanceTimeout each: the one the committer is in and the
// final one), not never: the feeders waiting on the hold watch their
// claims' contexts, and the committer starts no commit after the period
// ended. TestMain's goleak check covers what it started.
func TestFranzCloseDuringCommitHold(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	if cluster.Fake() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	topic := cluster.NewTopic(t, 2)
	ctx := testCtx(t, 120*time.Second)
	watch := newHoldWatch()
	const rebalanceTimeout = 3 * time.Second
	ctxNew, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	g, err := kafka.NewConsumerGroup(ctxNew, &kafka.ConsumerGroupConfig{BrokerAddrs: cluster.Addrs(), Topics: []string{topic},
		GroupName: kafkatest.UniqueName("g"), Engine: kafka.EngineFranz, CommitInterval: 200 * time.Millisecond,
		RebalanceTimeout: rebalanceTimeout, Logger: slog.New(watch)})
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			require.NoError(t, g.Close(context.Background()))
		}
	})
	var handled atomic.Int64
	require.NoError(t, g.RegisterHandler(ctx, func(context.Context, int, kafka.Message) error {
		handled.Add(1)
		return nil
	}))
	_, stopProducing := steadyProducer(t, cluster, topic, 2)
	g.Start()
	require.Eventually(t, func() bool { return handled.Load() >= 500 }, 60*time.Second, 10*time.Millisecond,
		"handling under way (%d handled)", handled.Load())
	failCommits(t, cluster)
	require.True(t, waitFor(watch.started, 30*time.Second), "the hold engages")
	stopProducing()

	start := time.Now()
	closeCtx, cancelClose := context.WithTimeout(ctx, 60*time.Second)
	defer cancelClose()
	require.NoError(t, g.Close(closeCtx))
	closed = true
	took := time.Since(start)
	t.Logf("FIGURES Close during a hold took %v", took.Round(time.Millisecond))
	// Two commits at most: the one in flight and the final one. A third
	// (the committer starting another after the period ended) would add a
	// whole RebalanceTimeout; the slack is for the rest on a loaded machine.
	assert.Less(t, took, 2*rebalanceTimeout+4*time.Second, "Close is bounded by the commits' own timeouts")
}
