package kafka

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestFranzSlowPartitionPausesAlone: a partition whose handler is stuck
// fills its claim to the high mark and has its fetching paused; the poll
// loop is not held up, so another partition's new records are still
// handled; once the handler returns, the partition resumes and every record
// is handled.
func TestFranzSlowPartitionPausesAlone(t *testing.T) {
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "bp"))
	require.NoError(t, err)
	t.Cleanup(fake.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)

	p, err := NewProducer(ctx, &ProducerConfig{BrokerAddrs: fake.ListenAddrs(), Topic: "bp", Engine: EngineFranz, Logger: quiet})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close(ctx)) }()
	send := func(part int32, n int, value []byte) {
		for range n {
			require.NoError(t, p.Send(ctx, &ProducerMessage{Partition: &part, Value: value}))
		}
	}
	const slowN = franzHighBytes/1024 + 1000 // more than the high mark in bytes
	send(0, slowN, make([]byte, 1024))

	g, err := NewConsumerGroup(ctx, &ConsumerGroupConfig{BrokerAddrs: fake.ListenAddrs(), Topics: []string{"bp"},
		GroupName: "bp-g", Engine: EngineFranz, NumWorkers: 2, Logger: quiet})
	require.NoError(t, err)
	defer func() { require.NoError(t, g.Close(ctx)) }()
	release := make(chan struct{})
	var handled [2]atomic.Int32
	require.NoError(t, g.RegisterHandler(ctx, func(hctx context.Context, _ int, m Message) error {
		if m.Partition() == 0 {
			select {
			case <-release:
			case <-hctx.Done():
				return hctx.Err()
			}
		}
		handled[m.Partition()].Add(1)
		return nil
	}))
	g.Start()

	paused := func() bool {
		r := g.eng.Load()
		if r == nil {
			return false
		}
		e := r.groupEngine.(*franzGroup)
		e.mu.Lock()
		defer e.mu.Unlock()
		_, full := e.full[TopicPartition{"bp", 0}]
		return full
	}
	require.Eventually(t, paused, 60*time.Second, 10*time.Millisecond, "the stuck partition's fetching is paused")
	send(1, 100, []byte("x"))
	require.Eventually(t, func() bool { return handled[1].Load() == 100 }, 60*time.Second, 10*time.Millisecond,
		"the other partition's records are handled while partition 0 is stuck (%d of 100)", handled[1].Load())
	require.Zero(t, handled[0].Load())

	close(release)
	require.Eventually(t, func() bool { return handled[0].Load() == slowN }, 60*time.Second, 10*time.Millisecond,
		"after the handler returns every record of partition 0 is handled (%d of %d)", handled[0].Load(), slowN)
	require.False(t, paused(), "and its fetching resumed")
}

// TestFranzHoldRules: which commit outcomes start and end the franz-go
// engine's hold, and that a hold cannot outlive the marks it guards.
func TestFranzHoldRules(t *testing.T) {
	h := &franzHold{after: time.Hour, log: slog.New(slog.DiscardHandler)}
	require.Nil(t, h.wait())

	for _, err := range []error{kerr.NotCoordinator, kerr.CoordinatorNotAvailable, kerr.CoordinatorLoadInProgress, kerr.RequestTimedOut} {
		require.Equal(t, commitFailed, classifyCommitErr(err), err)
	}
	for _, err := range []error{kerr.RebalanceInProgress, kerr.IllegalGeneration, kerr.UnknownMemberID, kerr.FencedInstanceID} {
		require.Equal(t, commitUnsettled, classifyCommitErr(err), err)
	}
	require.Equal(t, commitAccepted, classifyCommitErr(kerr.TopicAuthorizationFailed), "a partition's own refusal")

	h.committing()(commitUnsettled, kerr.RebalanceInProgress)
	require.Nil(t, h.wait(), "a membership error does not start a hold")
	h.committing()(commitFailed, kerr.CoordinatorNotAvailable)
	held := h.wait()
	require.NotNil(t, held, "a coordinator error does")
	h.committing()(commitUnsettled, kerr.RebalanceInProgress)
	require.NotNil(t, h.wait(), "a membership error does not end it")
	h.committing()(commitAccepted, nil)
	require.Nil(t, h.wait(), "an answered commit ends it")
	select {
	case <-held:
	default:
		t.Fatal("the feeders waiting on the hold are not released")
	}

	// A commit call still out after h.after holds, before it returns.
	h.after = 10 * time.Millisecond
	settle := h.committing()
	require.Eventually(t, func() bool { return h.wait() != nil }, 30*time.Second, time.Millisecond)
	settle(commitAccepted, nil)
	require.Nil(t, h.wait())

	// Nothing left to commit ends a hold; a pending mark keeps it.
	s := &franzSession{claims: map[TopicPartition]*franzClaim{}, hold: h}
	c := &franzClaim{committed: 5}
	c.marked.Store(7)
	s.claims[TopicPartition{"t", 0}] = c
	h.committing()(commitFailed, kerr.NotCoordinator)
	s.commit(nil) // what stop commits when the claims it stops have no marks
	require.NotNil(t, h.wait(), "a claim's mark still waits")
	delete(s.claims, TopicPartition{"t", 0})
	s.commit(nil)
	require.Nil(t, h.wait(), "the claim whose mark failed is gone")
}
