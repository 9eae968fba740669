//go:build reliability

package reliability

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// The rolling-restart scenario of a deploy: rollMembers members consume
// rollPartitions partitions while records flow at rollRate per second, and
// every member is replaced one by one (the new one starts, then the old one
// closes). It runs on the cluster named by KAFKA_BROKERS (CI: three real
// nodes) or, without it, on the embedded broker.
const (
	rollMembers    = 6
	rollPartitions = 12
	rollRate       = 1200 // records per second, spread evenly over the partitions
)

// stallGap is a handling gap that counts as a stall: ten times the normal
// gap between two records of a partition at rollRate.
const stallGap = 10 * time.Second / (rollRate / rollPartitions)

// handled is one handler call of the rolling restart.
type handled struct {
	partition int32
	offset    int64
	member    int
	at        time.Time
	latency   time.Duration // handled minus produced
}

// rollResult is what one rolling restart measured.
type rollResult struct {
	produced        int
	distinct        int
	duplicates      int
	retainedGapMax  time.Duration // longest handling gap of a partition that kept its owner
	retainedGapP99  time.Duration
	retainedStall   time.Duration // sum of retained partitions' gaps longer than stallGap
	movedGapMax     time.Duration // longest gap of a partition at its move to a new owner
	latencyP99Roll  time.Duration // end-to-end, while members were being replaced
	latencyP99Quiet time.Duration // end-to-end, before the roll
	revokedRetained int           // partitions revoked from a member that got them straight back
	retainedDetails []string      // with the cooperative strategy, each of them: when, and whether the member rejoined
	rebalanceSteps  int
}

// rollingRestart runs the scenario with the given strategy and heartbeat.
func rollingRestart(t *testing.T, c *kafkatest.Cluster, strategy kafka.RebalanceStrategy, heartbeat time.Duration) rollResult {
	t.Helper()
	topic := c.NewTopic(t, rollPartitions)
	group := kafkatest.UniqueName("roll")

	var mu sync.Mutex
	var events []handled
	var rollStart atomic.Int64 // unix nanos when the first replacement began

	// revokedRetained counts partitions a member lost and got straight back:
	// with an eager strategy every rebalance does that to every partition.
	var revokedRetained atomic.Int32
	// retainedDetails says, for each partition counted in revokedRetained,
	// when it went and came back, and whether the member rejoined the
	// group in between (it had lost its membership), for a failure's report.
	var retainedDetails []string
	began := time.Now()
	type revocation struct {
		at    time.Duration // since began
		joins int32         // the member's OnJoining calls by then
	}
	type ownerState struct {
		mu      sync.Mutex
		revoked map[int32]revocation
		joins   atomic.Int32
	}

	newMember := func(id int) *kafka.ConsumerGroup {
		st := &ownerState{revoked: map[int32]revocation{}}
		cfg := &kafka.ConsumerGroupConfig{
			BrokerAddrs: c.Addrs(), Topics: []string{topic}, GroupName: group,
			NumWorkers: rollPartitions, RebalanceStrategy: strategy, HeartbeatInterval: heartbeat,
			Logger: quiet,
			OnRevoked: func(_ context.Context, tps []kafka.TopicPartition) {
				st.mu.Lock()
				for _, tp := range tps {
					st.revoked[tp.Partition] = revocation{at: time.Since(began), joins: st.joins.Load()}
				}
				st.mu.Unlock()
			},
			OnAssigned: func(_ context.Context, tps []kafka.TopicPartition) {
				st.mu.Lock()
				for _, tp := range tps {
					if r, ok := st.revoked[tp.Partition]; ok {
						revokedRetained.Add(1)
						delete(st.revoked, tp.Partition)
						if strategy == kafka.RebalanceCooperativeSticky {
							mu.Lock()
							retainedDetails = append(retainedDetails, fmt.Sprintf("member %d partition %d: revoked at %v, assigned back at %v, rejoined in between: %t",
								id, tp.Partition, r.at.Round(time.Millisecond), time.Since(began).Round(time.Millisecond), st.joins.Load() > r.joins))
							mu.Unlock()
						}
					}
				}
				st.mu.Unlock()
			},
			Hooks: []kafka.ConsumerHooks{{OnJoining: func() { st.joins.Add(1) }}},
		}
		g, err := kafka.NewConsumerGroup(ctxFor(t, 30*time.Second), cfg)
		require.NoError(t, err)
		require.NoError(t, g.RegisterHandler(context.Background(), func(_ context.Context, _ int, m kafka.Message) error {
			now := time.Now()
			sent := int64(binary.BigEndian.Uint64(m.Value()))
			mu.Lock()
			events = append(events, handled{partition: m.Partition(), offset: m.Offset(), member: id, at: now, latency: now.Sub(time.Unix(0, sent))})
			mu.Unlock()
			return nil
		}))
		g.Start()
		return g
	}
	closeMember := func(g *kafka.ConsumerGroup) {
		require.NoError(t, g.Close(ctxFor(t, 60*time.Second)))
	}

	// settled: every partition is owned by exactly one of members.
	settled := func(members []*kafka.ConsumerGroup) bool {
		seen := map[int32]int{}
		for _, g := range members {
			for _, tp := range g.Assignment() {
				seen[tp.Partition]++
			}
		}
		if len(seen) != rollPartitions {
			return false
		}
		for _, n := range seen {
			if n != 1 {
				return false
			}
		}
		return true
	}

	members := make([]*kafka.ConsumerGroup, rollMembers)
	for i := range members {
		members[i] = newMember(i)
	}
	defer func() {
		for _, g := range members {
			_ = g.Close(context.Background())
		}
	}()
	require.Eventually(t, func() bool { return settled(members) }, 120*time.Second, 20*time.Millisecond, "the group forms")

	// The producer sends rollRate records a second, a timestamp in each.
	p, err := kafka.NewProducer(ctxFor(t, 30*time.Second), &kafka.ProducerConfig{BrokerAddrs: c.Addrs(), Topic: topic, Logger: quiet})
	require.NoError(t, err)
	var acked, failed atomic.Int64
	stop := make(chan struct{})
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		tick := time.NewTicker(time.Second / (rollRate / rollPartitions))
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				for part := range int32(rollPartitions) {
					v := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
					m := &kafka.ProducerMessage{Partition: &part, Value: v, OnDelivery: func(d kafka.Delivery) {
						if d.Err != nil {
							failed.Add(1)
						} else {
							acked.Add(1)
						}
					}}
					select {
					case p.Channels().Output <- m:
					case <-stop:
						return
					}
				}
			}
		}
	}()

	// Quiet period, then the roll.
	quietFor := 3 * time.Second
	waitFor(t, quietFor)
	rollStart.Store(time.Now().UnixNano())
	steps := 0
	next := rollMembers
	for i := range members {
		fresh := newMember(next)
		next++
		all := append(slices.Clone(members), fresh)
		require.Eventually(t, func() bool { return len(fresh.Assignment()) > 0 && settled(all) }, 120*time.Second, 20*time.Millisecond,
			"step %d: the new member gets partitions", i)
		old := members[i]
		members[i] = fresh
		closeMember(old)
		require.Eventually(t, func() bool { return settled(members) }, 120*time.Second, 20*time.Millisecond,
			"step %d: the group settles after the old member leaves", i)
		steps += 2
	}
	rollEnd := time.Now()
	waitFor(t, 2*time.Second)
	close(stop)
	<-prodDone
	require.NoError(t, p.Close(ctxFor(t, 60*time.Second)))
	require.Zero(t, failed.Load(), "every record was acknowledged")

	total := int(acked.Load())
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		seen := map[[2]int64]bool{}
		for _, e := range events {
			seen[[2]int64{int64(e.partition), e.offset}] = true
		}
		return len(seen) == total
	}, 120*time.Second, 50*time.Millisecond, "every acknowledged record is handled")

	mu.Lock()
	defer mu.Unlock()
	res := rollResult{produced: total, revokedRetained: int(revokedRetained.Load()), rebalanceSteps: steps,
		retainedDetails: retainedDetails}
	seen := map[[2]int64]int{}
	byPart := map[int32][]handled{}
	var quietLat, rollLat []time.Duration
	rs := time.Unix(0, rollStart.Load())
	for _, e := range events {
		k := [2]int64{int64(e.partition), e.offset}
		seen[k]++
		if seen[k] > 1 {
			res.duplicates++
			continue
		}
		byPart[e.partition] = append(byPart[e.partition], e)
		switch {
		case e.at.Before(rs):
			quietLat = append(quietLat, e.latency)
		case e.at.Before(rollEnd):
			rollLat = append(rollLat, e.latency)
		}
	}
	res.distinct = len(seen)
	var retainedGaps []time.Duration
	for _, evs := range byPart {
		slices.SortFunc(evs, func(a, b handled) int { return int(a.offset - b.offset) })
		for i := 1; i < len(evs); i++ {
			if evs[i].at.Before(rs) || evs[i-1].at.After(rollEnd) {
				continue
			}
			gap := evs[i].at.Sub(evs[i-1].at)
			if evs[i].member == evs[i-1].member {
				if gap > stallGap {
					res.retainedStall += gap
				}
				retainedGaps = append(retainedGaps, gap)
				res.retainedGapMax = max(res.retainedGapMax, gap)
			} else {
				res.movedGapMax = max(res.movedGapMax, gap)
			}
		}
	}
	res.retainedGapP99 = percentile(retainedGaps, 0.99)
	res.latencyP99Quiet = percentile(quietLat, 0.99)
	res.latencyP99Roll = percentile(rollLat, 0.99)
	return res
}

func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*q))]
}

// waitFor lets the scenario run for d: the traffic is the point, not a
// condition to wait on.
func waitFor(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-time.After(d):
	case <-t.Context().Done():
		t.Fatal("test ended")
	}
}

func (r rollResult) figures(t *testing.T, name string) {
	figures(t, name, "produced", r.produced, "distinct", r.distinct, "lost", r.produced-r.distinct,
		"duplicated", r.duplicates, "rebalances", r.rebalanceSteps, "revoked_and_kept", r.revokedRetained,
		"retained_gap_max_ms", r.retainedGapMax.Milliseconds(), "retained_gap_p99_ms", r.retainedGapP99.Milliseconds(),
		"retained_stall_ms", r.retainedStall.Milliseconds(),
		"moved_gap_max_ms", r.movedGapMax.Milliseconds(),
		"latency_p99_quiet_ms", r.latencyP99Quiet.Milliseconds(), "latency_p99_roll_ms", r.latencyP99Roll.Milliseconds())
	for _, d := range r.retainedDetails {
		t.Log(d)
	}
}

// TestRollingRestartEagerVsCooperative replaces every member of a 6-member
// group one by one while records flow, with the default eager strategy and
// with cooperative-sticky, in one run. Both lose nothing. With cooperative
// no partition is revoked from a member that keeps it, so partitions that
// do not move never stall; with eager every rebalance revokes every
// partition, and its handling gaps show it.
func TestRollingRestartEagerVsCooperative(t *testing.T) {
	c := kafkatest.NewCluster(t)
	eager3s := rollingRestart(t, c, kafka.RebalanceRange, 3*time.Second)
	eager3s.figures(t, "rolling-restart-eager-hb3s")
	eager := rollingRestart(t, c, kafka.RebalanceRange, 0)
	eager.figures(t, "rolling-restart-eager-hb1s")
	coop := rollingRestart(t, c, kafka.RebalanceCooperativeSticky, 0)
	coop.figures(t, "rolling-restart-cooperative-hb1s")

	for name, r := range map[string]rollResult{"eager-hb3s": eager3s, "eager": eager, "cooperative": coop} {
		assert.Equal(t, r.produced, r.distinct, "%s: lost %d", name, r.produced-r.distinct)
		// Members leave gracefully, committing at every revocation: a
		// record is handled twice only if it was in flight when its
		// partition moved, at most one per partition per move.
		assert.LessOrEqual(t, r.duplicates, rollPartitions*r.rebalanceSteps, "%s: duplicates", name)
	}
	assert.Zero(t, coop.revokedRetained, "cooperative: no partition revoked from a member that kept it")
	assert.Positive(t, eager.revokedRetained, "eager: rebalances revoke partitions that stay (the stall cooperative removes)")
	// The gaps themselves (stall, moved wait, latency) are printed above,
	// not asserted: on a shared 2-core machine they follow its load as much
	// as the strategy (on three real brokers at load ~20 every partition
	// shows 100 ms gaps). The property behind them is asserted: cooperative
	// never revokes a partition from a member that keeps it.
}

// TestStaticMembershipRestartMovesNothing: a member with a GroupInstanceID
// that closes and comes back within the session timeout gets its partitions
// back without a rebalance: the other member sees no revocation and no new
// assignment. Each of the two members is restarted in turn, so the group's
// leader is restarted too.
func TestStaticMembershipRestartMovesNothing(t *testing.T) {
	c := kafkatest.NewCluster(t)
	topic := c.NewTopic(t, 4)
	group := kafkatest.UniqueName("static")
	var events [2]atomic.Int32
	start := func(i int) *kafka.ConsumerGroup {
		cb := func(context.Context, []kafka.TopicPartition) { events[i].Add(1) }
		g, err := kafka.NewConsumerGroup(ctxFor(t, 30*time.Second), &kafka.ConsumerGroupConfig{
			BrokerAddrs: c.Addrs(), Topics: []string{topic}, GroupName: group,
			GroupInstanceID: fmt.Sprintf("member-%d", i), SessionTimeout: 30 * time.Second, HeartbeatInterval: time.Second,
			OnAssigned: cb, OnRevoked: cb, Logger: quiet})
		require.NoError(t, err)
		require.NoError(t, g.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return nil }))
		g.Start()
		return g
	}
	members := []*kafka.ConsumerGroup{start(0), start(1)}
	defer func() {
		for _, g := range members {
			_ = g.Close(context.Background())
		}
	}()
	require.Eventually(t, func() bool { return len(members[0].Assignment()) == 2 && len(members[1].Assignment()) == 2 },
		120*time.Second, 20*time.Millisecond)
	// Let the group's first rebalance settle fully before counting.
	waitFor(t, 2*time.Second)

	var backMS []int64
	for i := range members {
		other := 1 - i
		before, otherBefore := members[i].Assignment(), members[other].Assignment()
		events[other].Store(0)
		restarted := time.Now()
		require.NoError(t, members[i].Close(ctxFor(t, 60*time.Second)))
		members[i] = start(i)
		require.Eventually(t, func() bool { return len(members[i].Assignment()) == 2 }, 60*time.Second, 20*time.Millisecond)
		backMS = append(backMS, time.Since(restarted).Milliseconds())
		waitFor(t, 3*time.Second) // a rebalance, if one were coming, would show on the other member by now
		assert.Equal(t, before, members[i].Assignment(), "member %d gets its own partitions back", i)
		assert.Equal(t, otherBefore, members[other].Assignment(), "member %d keeps its partitions", other)
		assert.Zero(t, events[other].Load(), "restarting member %d: the other saw no revocation or assignment, so no rebalance", i)
	}
	figures(t, "static-membership", "restarts", len(members), "restart_to_assigned_ms", backMS)
}
