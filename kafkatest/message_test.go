package kafkatest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

var _ kafka.Message = (*kafkatest.Message)(nil)

func TestNewMessageDefaults(t *testing.T) {
	before := time.Now()
	m := kafkatest.NewMessage("orders", []byte(`{"id":1}`))
	assert.Equal(t, "orders", m.Topic())
	assert.Equal(t, int32(0), m.Partition())
	assert.Equal(t, int64(0), m.Offset())
	assert.Nil(t, m.Key())
	assert.Equal(t, []byte(`{"id":1}`), m.Value())
	assert.Empty(t, m.Headers())
	assert.False(t, m.Timestamp().Before(before))
	assert.Equal(t, "", kafka.TraceID(m.Context()))
	assert.NoError(t, m.Context().Err())
	assert.Equal(t, "orders/0@0", m.String())
}

func TestNewMessageOptions(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	type ctxKey struct{}
	base := context.WithValue(context.Background(), ctxKey{}, "v")
	m := kafkatest.NewMessage("orders", []byte("x"),
		kafkatest.WithKey("k"),
		kafkatest.WithHeader("h", "v1"),
		kafkatest.WithHeader("h", []byte("v2")),
		kafkatest.WithHeader(kafka.DefaultTraceHeader, "trace-42"),
		kafkatest.WithPartition(2),
		kafkatest.WithOffset(7),
		kafkatest.WithTimestamp(ts),
		kafkatest.WithContext(base),
	)
	assert.Equal(t, []byte("k"), m.Key())
	assert.Equal(t, int32(2), m.Partition())
	assert.Equal(t, int64(7), m.Offset())
	assert.Equal(t, ts, m.Timestamp())
	assert.Equal(t, []kafka.Header{{Key: "h", Value: []byte("v1")}, {Key: "h", Value: []byte("v2")},
		{Key: kafka.DefaultTraceHeader, Value: []byte("trace-42")}}, m.Headers())
	v, ok := m.Header("h")
	assert.True(t, ok)
	assert.Equal(t, []byte("v1"), v, "the first header with the key")
	_, ok = m.Header("missing")
	assert.False(t, ok)
	assert.Equal(t, "trace-42", kafka.TraceID(m.Context()), "trace id from the trace header")
	assert.Equal(t, "v", m.Context().Value(ctxKey{}), "built on the given context")

	m = kafkatest.NewMessage("t", nil, kafkatest.WithKey([]byte{0, 1}))
	assert.Equal(t, []byte{0, 1}, m.Key())
}

func TestMessageTraceIDInContextWins(t *testing.T) {
	ctx := kafka.WithTraceID(context.Background(), "from-ctx")
	m := kafkatest.NewMessage("t", nil, kafkatest.WithContext(ctx), kafkatest.WithHeader("trace-id", "from-header"))
	assert.Equal(t, "from-ctx", kafka.TraceID(m.Context()))
	m = kafkatest.NewMessage("t", nil, kafkatest.WithHeader("trace-id", ""), kafkatest.WithHeader("trace-id", "second"))
	assert.Equal(t, "second", kafka.TraceID(m.Context()), "an empty trace header is skipped, as by the real consumer")
}

func TestMessageRecordsCommitAndRelease(t *testing.T) {
	m := kafkatest.NewMessage("t", nil)
	assert.False(t, m.IsCommitted())
	assert.False(t, m.IsReleased())
	m.Commit()
	assert.True(t, m.IsCommitted())
	assert.False(t, m.IsReleased())
	m.Release()
	m.Release() // harmless
	m.CommitAndRelease()
	assert.Equal(t, 2, m.Commits())
	assert.Equal(t, 3, m.Releases())
	assert.True(t, m.IsReleased())
}

// TestHandlerCalledDirectly is the simplest use: no consumer at all.
func TestHandlerCalledDirectly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := kafkatest.NewMessage("t", []byte("x"), kafkatest.WithContext(ctx))
	handler := func(ctx context.Context, _ int, msg kafka.Message) error { return ctx.Err() }
	require.ErrorIs(t, handler(m.Context(), 0, m), context.Canceled)
}
