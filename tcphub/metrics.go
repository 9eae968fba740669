package tcphub

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// metrics are the server's Prometheus collectors, registered in a registry
// of the server's own: two servers in one process never collide, and
// nothing is registered globally.
type metrics struct {
	reg *prometheus.Registry

	connections       prometheus.Gauge
	sessions          prometheus.Gauge
	accepted          prometheus.Counter
	refused           *prometheus.CounterVec
	acceptErrors      prometheus.Counter
	framesIn          map[wire.Type]prometheus.Counter
	framesInOther     prometheus.Counter
	framesOut         map[wire.Type]prometheus.Counter
	acks              prometheus.Counter
	errors            *prometheus.CounterVec
	queueDrops        prometheus.Counter
	slowDisconnects   prometheus.Counter
	authFailures      *prometheus.CounterVec
	produceLatency    prometheus.Histogram
	responses         prometheus.Counter
	pushes            prometheus.Counter
	undeliverable     *prometheus.CounterVec
	presenceFailures  prometheus.Counter
	presencePublished prometheus.Counter
}

var frameTypes = []wire.Type{
	wire.TypeHello, wire.TypeWelcome, wire.TypeRequest, wire.TypeAck, wire.TypeError,
	wire.TypeResponse, wire.TypePush, wire.TypePing, wire.TypePong, wire.TypeGoodbye,
}

func newMetrics(instance string) *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{reg: reg, labels: prometheus.Labels{"instance_id": instance}}
	m := &metrics{
		reg:             reg,
		connections:     f.gauge("tcphub_connections", "Open TCP connections, authenticated or not."),
		sessions:        f.gauge("tcphub_sessions", "Authenticated device sessions."),
		accepted:        f.counter("tcphub_connections_accepted_total", "Connections accepted."),
		refused:         f.counterVec("tcphub_connections_refused_total", "Connections refused before a session, by reason.", "reason"),
		acceptErrors:    f.counter("tcphub_accept_errors_total", "Errors returned by the listener's Accept."),
		framesInOther:   f.counter("tcphub_frames_in_unknown_total", "Frames received that could not be decoded or had an unknown type."),
		acks:            f.counter("tcphub_acks_total", "Requests acknowledged to devices after Kafka acknowledged them."),
		errors:          f.counterVec("tcphub_errors_total", "Error frames sent to devices, by code.", "code"),
		queueDrops:      f.counter("tcphub_queue_dropped_frames_total", "Frames dropped because a connection's outgoing queue was full."),
		slowDisconnects: f.counter("tcphub_slow_consumer_disconnects_total", "Connections closed because their outgoing queue filled up."),
		authFailures:    f.counterVec("tcphub_auth_failures_total", "Refused hellos, by reason.", "reason"),
		produceLatency: f.histogram("tcphub_kafka_produce_seconds", "Time from a request's arrival to Kafka's acknowledgement (or failure).",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}),
		responses:         f.counter("tcphub_responses_delivered_total", "Worker responses queued to a device."),
		pushes:            f.counter("tcphub_pushes_delivered_total", "Pushes queued to a device (from Kafka or SendToDevice/SendToConn)."),
		undeliverable:     f.counterVec("tcphub_responses_undeliverable_total", "Records on the reply topic that reached no device, by reason.", "reason"),
		presenceFailures:  f.counter("tcphub_presence_failures_total", "Presence records Kafka did not acknowledge."),
		presencePublished: f.counter("tcphub_presence_published_total", "Presence records acknowledged by Kafka."),
		framesIn:          map[wire.Type]prometheus.Counter{},
		framesOut:         map[wire.Type]prometheus.Counter{},
	}
	in := f.counterVec("tcphub_frames_in_total", "Frames received from devices, by type.", "type")
	out := f.counterVec("tcphub_frames_out_total", "Frames queued to devices, by type.", "type")
	for _, t := range frameTypes {
		// Children are resolved once, so counting a frame is one atomic add.
		m.framesIn[t] = in.WithLabelValues(string(t))
		m.framesOut[t] = out.WithLabelValues(string(t))
	}
	for _, c := range []wire.Code{wire.CodeBadFrame, wire.CodeBadVersion, wire.CodeUnauthenticated, wire.CodeTooLarge,
		wire.CodeRateLimited, wire.CodeTooManyInFlight, wire.CodeUnavailable, wire.CodeInternal, wire.CodeSlowConsumer,
		wire.CodeHandshakeTimeout, wire.CodeDuplicate, wire.CodeNotFound} {
		m.errors.WithLabelValues(string(c)) // present at 0 from the start
	}
	for _, r := range []string{"not_connected", "bad_record", "connection_closing"} {
		m.undeliverable.WithLabelValues(r)
	}
	for _, r := range []string{"rejected", "timeout", "ip_rate_limited"} {
		m.authFailures.WithLabelValues(r)
	}
	for _, r := range []string{"max_connections", "tls_handshake"} {
		m.refused.WithLabelValues(r)
	}
	return m
}

func (m *metrics) frameIn(t wire.Type) {
	if c, ok := m.framesIn[t]; ok {
		c.Inc()
		return
	}
	m.framesInOther.Inc()
}

func (m *metrics) frameOut(t wire.Type) {
	if c, ok := m.framesOut[t]; ok {
		c.Inc()
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

type factory struct {
	reg    *prometheus.Registry
	labels prometheus.Labels
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: f.labels})
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: f.labels})
	f.reg.MustRegister(g)
	return g
}

func (f factory) counterVec(name, help, label string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: f.labels}, []string{label})
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, ConstLabels: f.labels, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}
