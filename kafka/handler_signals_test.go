package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// TestConsumerPermanentErrorGoesStraightToDeadLetters: with retries an hour
// apart, only a handler error marked Permanent gets to the dead-letter
// topic within the test's minute.
func TestConsumerPermanentErrorGoesStraightToDeadLetters(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	dlt := cluster.NewTopic(t, 1)
	produceN(t, cluster, topic, 3, 1)
	ctx := testCtx(t, 60*time.Second)
	group := kafkatest.UniqueName("g")
	var attempts atomic.Int32
	g := newGroup(t, &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group,
		HandlerRetries: 5, HandlerRetryBackoff: time.Hour, DeadLetterTopic: dlt,
	})
	require.NoError(t, g.RegisterHandler(ctx, func(_ context.Context, _ int, m kafka.Message) error {
		if string(m.Value()) == "1" {
			attempts.Add(1)
			return fmt.Errorf("decoding: %w", kafka.Permanent(errBoom))
		}
		return nil
	}))
	g.Start()
	var herr *kafka.HandlerError
	select {
	case err := <-g.Channels().Errors:
		require.ErrorAs(t, err, &herr)
	case <-ctx.Done():
		t.Fatal("no HandlerError reported")
	}
	require.ErrorIs(t, herr, kafka.ErrPermanent)
	require.ErrorIs(t, herr, errBoom)
	assert.Equal(t, 1, herr.Attempts)
	assert.True(t, herr.DeadLettered)
	assert.Equal(t, int32(1), attempts.Load())
	require.NoError(t, g.StopAndWait(ctx))
	assert.Equal(t, map[int32]int64{0: 3}, committed(t, cluster, group, topic))
	dead := testkit.ReadAll(ctx, t, cluster.Addrs(), dlt)
	require.Len(t, dead, 1)
	assert.Equal(t, "decoding: boom", dead[0].Headers[kafka.HeaderDLTError], "the mark does not change the text")
}

// TestConsumerNoCommitLeavesTheMessageForTheNextSession: the last message
// of a partition, answered with ErrNoCommit, is neither committed nor
// reported (HandlerRetries -1 would otherwise skip and commit it at once),
// and a new session delivers it again.
func TestConsumerNoCommitLeavesTheMessageForTheNextSession(t *testing.T) {
	cluster := kafkatest.NewCluster(t)
	topic := cluster.NewTopic(t, 1)
	produceN(t, cluster, topic, 2, 1)
	ctx := testCtx(t, 60*time.Second)
	group := kafkatest.UniqueName("g")
	logged := make(chan struct{}, 1)
	var calls atomic.Int32
	g := newGroup(t, &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: group, HandlerRetries: -1,
		Logger: slog.New(&logWatch{substr: "asked not to commit", seen: logged}),
	})
	handled := make(chan string, 4)
	require.NoError(t, g.RegisterHandler(ctx, func(_ context.Context, _ int, m kafka.Message) error {
		if string(m.Value()) == "1" && calls.Add(1) == 1 {
			return kafka.ErrNoCommit
		}
		handled <- string(m.Value())
		return nil
	}))
	g.Start()
	select {
	case <-logged:
	case <-ctx.Done():
		t.Fatal("the consumer did not take the NoCommit signal")
	}
	require.NoError(t, g.StopAndWait(ctx))
	assert.Equal(t, map[int32]int64{0: 1}, committed(t, cluster, group, topic), "only the first message is committed")
	assert.Empty(t, g.Channels().Errors, "NoCommit is not a failure")
	assert.Equal(t, "0", <-handled)

	g.Start()
	select {
	case v := <-handled:
		assert.Equal(t, "1", v, "delivered again")
	case <-ctx.Done():
		t.Fatal("the uncommitted message was not delivered again")
	}
	require.NoError(t, g.StopAndWait(ctx))
	assert.Equal(t, map[int32]int64{0: 2}, committed(t, cluster, group, topic))
}

// logWatch is a slog.Handler that signals once a message containing substr
// is logged.
type logWatch struct {
	substr string
	seen   chan struct{}
}

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *logWatch) WithGroup(string) slog.Handler            { return w }

func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, w.substr) {
		select {
		case w.seen <- struct{}{}:
		default:
		}
	}
	return nil
}
