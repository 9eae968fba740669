package otlp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExportsToTheEndpoint: with OTEL_EXPORTER_OTLP_ENDPOINT set, spans
// reach that endpoint's /v1/traces when the exporter shuts down; unset,
// nothing is installed.
func TestExportsToTheEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	_, _, enabled, err := FromEnv(context.Background())
	require.NoError(t, err)
	assert.False(t, enabled)

	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			posts.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tel, shutdown, enabled, err := FromEnv(ctx)
	require.NoError(t, err)
	require.True(t, enabled)
	_, span := tel.TracerProvider.Tracer("test").Start(ctx, "one")
	span.End()
	require.NoError(t, shutdown(ctx))
	assert.Positive(t, posts.Load(), "spans posted to /v1/traces")
}
