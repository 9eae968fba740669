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
