package kafkatest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

var (
	_ kafka.IConsumerGroup = (*kafkatest.MockConsumerGroup)(nil)
	_ kafka.IConsumerGroup = (*kafkatest.Consumer)(nil)
)

// healthWiring is code under test: it follows the cluster's health.
func healthWiring(g kafka.IConsumerGroup, results ...kafka.Health) {
	for _, h := range results {
		g.OnHealthChange(h)
	}
}

func TestMockConsumerGroupScript(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockConsumerGroup(ft)
	assert.Equal(t, kafka.Stopped, m.State())
	assert.True(t, m.IsInitialised())

	m.ExpectRegisterHandler()
	m.ExpectStart()
	m.ExpectStop()
	m.ExpectStart().ThenState(kafka.Starting)
	m.ExpectStopAndWait()
	m.ExpectClose()

	var handled []string
	require.NoError(t, m.RegisterHandler(context.Background(), func(_ context.Context, _ int, msg kafka.Message) error {
		handled = append(handled, string(msg.Value()))
		return nil
	}))
	require.NotNil(t, m.Handler())
	require.NoError(t, m.Handler()(context.Background(), 0, kafkatest.NewMessage("t", []byte("hello"))))
	assert.Equal(t, []string{"hello"}, handled)

	t0 := time.Now()
	consuming := m.StateEntered(kafka.Consuming)
	healthWiring(m,
		kafka.Health{Status: kafka.HealthOK, CheckedAt: t0},
		kafka.Health{Status: kafka.HealthCritical, CheckedAt: t0.Add(time.Second)},
		kafka.Health{Status: kafka.HealthOK, CheckedAt: t0.Add(500 * time.Millisecond)}, // older: ignored
		kafka.Health{Status: kafka.HealthOK, CheckedAt: t0.Add(2 * time.Second)},
	)
	<-consuming
	assert.Equal(t, kafka.Starting, m.State(), "ThenState overrides the usual state")
	m.SetState(kafka.Consuming)
	require.NoError(t, m.StateWait(context.Background(), kafka.Consuming))

	require.NoError(t, m.StopAndWait(context.Background()))
	assert.Equal(t, kafka.Stopped, m.State())
	ch := m.Channels()
	require.NoError(t, m.Close(context.Background()))
	require.NoError(t, m.Close(context.Background()), "a second Close needs no expectation")
	assert.Equal(t, kafka.Closed, m.State())
	for _, c := range []<-chan struct{}{ch.Closer, ch.Closed, ch.Initialised} {
		<-c
	}
	_, open := <-ch.Errors
	assert.False(t, open)
	_, open = <-ch.Upstream
	assert.False(t, open)
	assert.Equal(t, kafka.HealthCritical, m.Checker(context.Background()).Status)
	assert.Empty(t, ft.finish())
}

func TestMockConsumerGroupReturnedErrors(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockConsumerGroup(ft)
	m.ExpectRegisterBatchHandler().Return(kafka.ErrHandlerRegistered)
	m.ExpectStopAndWait().Return(context.DeadlineExceeded)
	m.ExpectClose().Return(context.DeadlineExceeded).ThenState(kafka.Closing)
	m.SetState(kafka.Consuming)
	m.SetHealth(kafka.Health{Status: kafka.HealthWarning})

	require.ErrorIs(t, m.RegisterBatchHandler(context.Background(), func(context.Context, []kafka.Message) error { return nil }),
		kafka.ErrHandlerRegistered)
	assert.Nil(t, m.BatchHandler(), "not registered when the call fails")
	assert.Equal(t, kafka.HealthWarning, m.Checker(context.Background()).Status)
	require.ErrorIs(t, m.StopAndWait(context.Background()), context.DeadlineExceeded)
	assert.Equal(t, kafka.Consuming, m.State(), "a failed call leaves the state alone")
	require.ErrorIs(t, m.Close(context.Background()), context.DeadlineExceeded)
	assert.Equal(t, kafka.Closing, m.State())
	select {
	case <-m.Channels().Closed:
		t.Fatal("Closed closed by a failed Close")
	default:
	}
	assert.Empty(t, ft.finish())
}

func TestMockConsumerGroupFailures(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockConsumerGroup(ft)
	m.ExpectStart().Return(errors.New("meaningless")) // Start returns nothing
	m.ExpectStop()
	m.ExpectStopAndWait()
	m.ExpectClose()

	m.Start()
	m.Start() // Stop was expected
	require.NoError(t, m.StopAndWait(context.Background()), "the mismatch used up one expectation only")
	err := m.RegisterHandler(context.Background(), func(context.Context, int, kafka.Message) error { return nil })
	require.Error(t, err, "Close was expected")
	assert.Nil(t, m.Handler())
	m.Stop() // nothing left
	failures := ft.finish()
	require.Equal(t, []string{
		"kafkatest: MockConsumerGroup: Start returns nothing; Return(meaningless) is meaningless",
		"kafkatest: MockConsumerGroup: call 2: Start(), but expected Stop()",
		"kafkatest: MockConsumerGroup: call 4: RegisterHandler(handler), but expected Close()",
		"kafkatest: MockConsumerGroup: unexpected call 5: Stop(): no more calls were expected",
	}, failures)
}

func TestMockConsumerGroupUnmetExpectations(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockConsumerGroup(ft)
	m.ExpectStart()
	m.ExpectStopAndWait().Return(context.Canceled)
	m.ExpectClose().ThenState(kafka.Closed)
	m.Start()
	require.Error(t, m.ExpectationsWereMet())
	require.Equal(t, []string{"kafkatest: MockConsumerGroup: 2 expected calls were not made:\n" +
		"\t2. StopAndWait() returning context canceled\n" +
		"\t3. Close() then Closed"}, ft.finish())
}

func TestMockConsumerGroupPauseResume(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockConsumerGroup(ft)
	assert.Empty(t, m.Assignment())
	m.SetAssignment(tp("t", 1), tp("t", 0))
	assert.Equal(t, []kafka.TopicPartition{tp("t", 0), tp("t", 1)}, m.Assignment(), "sorted, as a real consumer's")
	m.SetAssignment(tp("t", 2))
	assert.Equal(t, []kafka.TopicPartition{tp("t", 2)}, m.Assignment(), "replaced")

	m.ExpectPause(tp("t", 1), tp("t", 0))
	m.ExpectResume(tp("t", 1))
	m.ExpectPause(tp("t", 2)).Return(kafka.ErrClosed)
	require.NoError(t, m.Pause(tp("t", 1), tp("t", 0)))
	assert.Equal(t, []kafka.TopicPartition{tp("t", 0), tp("t", 1)}, m.Paused())
	require.NoError(t, m.Resume(tp("t", 1)))
	assert.Equal(t, []kafka.TopicPartition{tp("t", 0)}, m.Paused())
	require.ErrorIs(t, m.Pause(tp("t", 2)), kafka.ErrClosed)
	assert.Equal(t, []kafka.TopicPartition{tp("t", 0)}, m.Paused(), "a failed Pause pauses nothing")
	assert.Empty(t, ft.finish())
}

func TestMockConsumerGroupPauseMismatches(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockConsumerGroup(ft)
	m.ExpectPause(tp("t", 0))
	m.ExpectResume(tp("t", 0))
	m.ExpectStart()

	require.Error(t, m.Pause(tp("t", 1)), "another partition")
	require.Error(t, m.Resume(), "no partition")
	m.Start()
	require.Error(t, m.Resume(tp("t", 0)), "nothing left")
	require.NoError(t, m.ExpectationsWereMet(), "the script is used up")
	assert.Empty(t, m.Paused(), "a mismatched Pause pauses nothing")
	require.Equal(t, []string{
		"kafkatest: MockConsumerGroup: call 1: Pause(t/1), but expected Pause(t/0)",
		"kafkatest: MockConsumerGroup: call 2: Resume(), but expected Resume(t/0)",
		"kafkatest: MockConsumerGroup: unexpected call 4: Resume(t/0): no more calls were expected",
	}, ft.finish())
}

func TestMockConsumerGroupPauseUnmet(t *testing.T) {
	ft := &fakeT{TB: t}
	m := kafkatest.NewMockConsumerGroup(ft)
	m.ExpectPause(tp("t", 0), tp("u", 3)).Return(kafka.ErrClosed)
	m.ExpectResume(tp("t", 0))
	m.ExpectStop()
	m.ExpectPause()
	require.ErrorIs(t, m.Pause(tp("t", 0), tp("u", 3)), kafka.ErrClosed)
	require.Equal(t, []string{"kafkatest: MockConsumerGroup: 3 expected calls were not made:\n" +
		"\t2. Resume(t/0)\n" +
		"\t3. Stop()\n" +
		"\t4. Pause()"}, ft.finish())
}
