package tcphub_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	b, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(b)
}

// scrapeText is scrape for goroutines the test did not start (no
// FailNow): the body, whatever the status.
func scrapeText(h http.Handler) string {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

func TestHealthAndMetrics(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)

	// Before Start: 503.
	idle, err := tcphub.NewServer(tcphub.Config{BrokerAddrs: cluster.Addrs(), RequestTopic: topic, Authenticator: tcphub.AllowAll(), Logger: quiet})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	idle.HealthHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.NoError(t, idle.Shutdown(testCtx(t, time.Second)))

	gw := startGateway(t, cluster, topic, nil)
	d := dialRaw(t, gw.addr)
	d.hello("m-1")
	require.Equal(t, wire.TypeAck, d.request("r-1", `{}`).Type)
	d.send(wire.Frame{Type: wire.TypePing})
	d.expect(wire.TypePong)

	rec = httptest.NewRecorder()
	gw.HealthHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, "OK", body["status"])
	assert.Equal(t, gw.InstanceID(), body["instance"])
	assert.EqualValues(t, 1, body["sessions"])

	m := scrape(t, gw.MetricsHandler())
	id := `instance_id="` + gw.InstanceID() + `"`
	for _, want := range []string{
		`tcphub_acks_total{` + id + `} 1`,
		`tcphub_sessions{` + id + `} 1`,
		`tcphub_frames_in_total{` + id + `,type="request"} 1`,
		`tcphub_frames_in_total{` + id + `,type="ping"} 1`,
		`tcphub_frames_out_total{` + id + `,type="welcome"} 1`,
		`tcphub_frames_out_total{` + id + `,type="ack"} 1`,
		`tcphub_kafka_produce_seconds_count{` + id + `} 1`,
		`kafkahub_producer_records_total{topic="` + topic + `"} 1`,
		`tcphub_errors_total{code="slow_consumer",` + id + `} 0`,
		`tcphub_responses_undeliverable_total`,
		`go_goroutines`,
	} {
		assert.Contains(t, m, want)
	}

	// Draining: 503.
	gw.stop(t)
	rec = httptest.NewRecorder()
	gw.HealthHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
}
