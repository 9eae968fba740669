package kafka

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names share the kafkahub_ prefix and tcphub's style (snake case,
// _total counters, _seconds histograms). docs/OBSERVABILITY.md documents
// each one; TestMetricsDocumented keeps that table and this file in step.

// latencyBuckets span a local broker's sub-millisecond acknowledgement to
// a retried record's seconds.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// registrar registers collectors on a Registerer, reusing the collector
// already registered under the same description: producers and consumers
// sharing a Registerer share their collectors. It keeps the first error.
type registrar struct {
	reg prometheus.Registerer
	err error
}

func register[C prometheus.Collector](r *registrar, c C) C {
	if err := r.reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		if r.err == nil {
			r.err = configErr("Telemetry.Registerer", "%v", err)
		}
	}
	return c
}

func (r *registrar) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

func (r *registrar) histogramVec(name, help string, labels ...string) *prometheus.HistogramVec {
	return register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: latencyBuckets}, labels))
}

// producerMetrics are a producer's collectors.
type producerMetrics struct {
	records, bytes, errors *prometheus.CounterVec
	latency                *prometheus.HistogramVec
	waiting                prometheus.Gauge
	inits                  *prometheus.CounterVec

	topics sync.Map // topic -> *producerTopic
}

// producerTopic holds one topic's children, resolved once.
type producerTopic struct {
	records, bytes, errors prometheus.Counter
	latency                prometheus.Observer
}

func newProducerMetrics(reg prometheus.Registerer) (*producerMetrics, error) {
	r := &registrar{reg: reg}
	m := &producerMetrics{
		records: r.counterVec("kafkahub_producer_records_total", "Records Kafka acknowledged, by topic.", "topic"),
		bytes:   r.counterVec("kafkahub_producer_bytes_total", "Key and value bytes of the records Kafka acknowledged, by topic.", "topic"),
		errors:  r.counterVec("kafkahub_producer_errors_total", "Records that failed (refused by Kafka, retries spent, too large), by topic.", "topic"),
		latency: r.histogramVec("kafkahub_producer_send_to_ack_seconds", "Time from a record's hand-over to the client to its acknowledgement or failure, by topic.", "topic"),
		waiting: register(r, prometheus.NewGauge(prometheus.GaugeOpts{Name: "kafkahub_producer_records_waiting",
			Help: "Records handed to the client and not yet acknowledged or failed."})),
		inits: r.counterVec("kafkahub_producer_init_attempts_total", "Connection attempts, by result (ok, error).", "result"),
	}
	return m, r.err
}

func (m *producerMetrics) topic(t string) *producerTopic {
	if v, ok := m.topics.Load(t); ok {
		return v.(*producerTopic)
	}
	pt := &producerTopic{records: m.records.WithLabelValues(t), bytes: m.bytes.WithLabelValues(t),
		errors: m.errors.WithLabelValues(t), latency: m.latency.WithLabelValues(t)}
	v, _ := m.topics.LoadOrStore(t, pt)
	return v.(*producerTopic)
}

func (m *producerMetrics) hooks() ProducerHooks {
	return ProducerHooks{
		OnInitialise: func(err error) { m.inits.WithLabelValues(result(err)).Inc() },
		OnSend: func(ctx context.Context, _ string, _ *ProducerMessage) context.Context {
			m.waiting.Inc()
			return ctx
		},
		OnDelivered: func(_ context.Context, d Delivery, elapsed time.Duration) {
			m.waiting.Dec()
			t := m.topic(d.Topic)
			t.latency.Observe(elapsed.Seconds())
			if d.Err != nil {
				t.errors.Inc()
				return
			}
			t.records.Inc()
			t.bytes.Add(float64(len(d.Message.Key) + len(d.Message.Value)))
		},
	}
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// consumerMetrics are a consumer's collectors, curried with its group.
type consumerMetrics struct {
	handled, errors, retries, deadLettered, panics, marked *prometheus.CounterVec
	duration                                               prometheus.ObserverVec
	lag                                                    *prometheus.GaugeVec
	commits, rebalances                                    prometheus.Counter
	rebalanceDuration                                      prometheus.Observer
	inits                                                  *prometheus.CounterVec

	topics sync.Map // topic -> *consumerTopic
	lags   sync.Map // TopicPartition -> prometheus.Gauge

	joinMu    sync.Mutex
	joinStart time.Time // zero: not joining
}

type consumerTopic struct {
	handled, errors, retries, deadLettered, panics, marked prometheus.Counter
	duration                                               prometheus.Observer
}

func newConsumerMetrics(reg prometheus.Registerer, group string) (*consumerMetrics, error) {
	r := &registrar{reg: reg}
	g := prometheus.Labels{"group": group}
	byTopic := func(name, help string) *prometheus.CounterVec {
		return r.counterVec(name, help, "group", "topic").MustCurryWith(g)
	}
	m := &consumerMetrics{
		handled:      byTopic("kafkahub_consumer_records_handled_total", "Records the consumer is done with (handled, skipped or dead-lettered; committed), by topic."),
		errors:       byTopic("kafkahub_consumer_handler_errors_total", "Handler calls that returned an error or panicked, by topic (records of a batch count once per call)."),
		retries:      byTopic("kafkahub_consumer_handler_retries_total", "Handler calls retried after a failure, by topic."),
		deadLettered: byTopic("kafkahub_consumer_dead_lettered_total", "Records written to the dead-letter topic, by topic of origin."),
		panics:       byTopic("kafkahub_consumer_handler_panics_total", "Handler calls that panicked (recovered), by topic."),
		marked:       byTopic("kafkahub_consumer_offsets_marked_total", "Records whose offsets were marked for commit, by topic."),
		duration: r.histogramVec("kafkahub_consumer_handler_seconds", "Duration of each handler (or batch handler) call, by topic.",
			"group", "topic").MustCurryWith(g),
		lag: register(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kafkahub_consumer_lag",
			Help: "High watermark minus the next offset to commit, per assigned partition, as of the last marked record."},
			[]string{"group", "topic", "partition"})).MustCurryWith(g),
		commits: r.counterVec("kafkahub_consumer_commits_total", "Commits of marked offsets made on request (Message.Commit, rebalance, Stop, Close); periodic ones are not counted.",
			"group").With(g),
		rebalances: r.counterVec("kafkahub_consumer_rebalances_total", "Assignments received (each one ends a join or rebalance).", "group").With(g),
		rebalanceDuration: r.histogramVec("kafkahub_consumer_rebalance_seconds", "Time from starting to join the group (Start, or the end of an assignment) to the next assignment.",
			"group").With(g),
		inits: r.counterVec("kafkahub_consumer_init_attempts_total", "Connection attempts, by result (ok, error).", "group", "result").MustCurryWith(g),
	}
	return m, r.err
}

func (m *consumerMetrics) topic(t string) *consumerTopic {
	if v, ok := m.topics.Load(t); ok {
		return v.(*consumerTopic)
	}
	ct := &consumerTopic{handled: m.handled.WithLabelValues(t), errors: m.errors.WithLabelValues(t),
		retries: m.retries.WithLabelValues(t), deadLettered: m.deadLettered.WithLabelValues(t),
		panics: m.panics.WithLabelValues(t), marked: m.marked.WithLabelValues(t), duration: m.duration.WithLabelValues(t)}
	v, _ := m.topics.LoadOrStore(t, ct)
	return v.(*consumerTopic)
}

func (m *consumerMetrics) lagGauge(tp TopicPartition) prometheus.Gauge {
	if v, ok := m.lags.Load(tp); ok {
		return v.(prometheus.Gauge)
	}
	v, _ := m.lags.LoadOrStore(tp, m.lag.WithLabelValues(tp.Topic, strconv.Itoa(int(tp.Partition))))
	return v.(prometheus.Gauge)
}

func (m *consumerMetrics) hooks() ConsumerHooks {
	return ConsumerHooks{
		OnInitialise: func(err error) { m.inits.WithLabelValues(result(err)).Inc() },
		OnJoining: func() {
			m.joinMu.Lock()
			if m.joinStart.IsZero() {
				m.joinStart = time.Now()
			}
			m.joinMu.Unlock()
		},
		OnAssigned: func([]TopicPartition, int32) {
			m.rebalances.Inc()
			m.joinMu.Lock()
			start := m.joinStart
			m.joinStart = time.Time{}
			m.joinMu.Unlock()
			if !start.IsZero() {
				m.rebalanceDuration.Observe(time.Since(start).Seconds())
			}
		},
		OnRevoked: func(tps []TopicPartition) {
			// A partition that moved away is another member's to report.
			for _, tp := range tps {
				m.lags.Delete(tp)
				m.lag.DeleteLabelValues(tp.Topic, strconv.Itoa(int(tp.Partition)))
			}
		},
		OnAttempt: func(_ context.Context, msgs []Message, _ int, elapsed time.Duration, err error) {
			t := m.topic(msgs[0].Topic())
			t.duration.Observe(elapsed.Seconds())
			if err != nil {
				t.errors.Inc()
				if errors.Is(err, ErrHandlerPanic) {
					t.panics.Inc()
				}
			}
		},
		OnRetry: func(_ context.Context, msgs []Message, _ int, _ time.Duration, _ error) {
			m.topic(msgs[0].Topic()).retries.Inc()
		},
		OnHandled: func(_ context.Context, msgs []Message, o HandleOutcome) {
			if o.Interrupted || o.NoCommit {
				return
			}
			t := m.topic(msgs[0].Topic())
			t.handled.Add(float64(len(msgs)))
			if o.DeadLettered {
				t.deadLettered.Add(float64(len(msgs)))
			}
		},
		OnMarked: func(tp TopicPartition, offset, highWater int64, count int) {
			m.topic(tp.Topic).marked.Add(float64(count))
			if highWater >= 0 {
				m.lagGauge(tp).Set(float64(max(highWater-(offset+1), 0)))
			}
		},
		OnCommit: func() { m.commits.Inc() },
	}
}

// stateCollector exports a consumer's state as kafkahub_consumer_state
// {group, state}: 1 for the current state, 0 for the others, read at
// scrape time.
type stateCollector struct {
	desc  *prometheus.Desc
	state func() State
}

func registerState(reg prometheus.Registerer, group string, state func() State) *stateCollector {
	c := &stateCollector{
		desc: prometheus.NewDesc("kafkahub_consumer_state", "The consumer's state: 1 for the current one, 0 for the others.",
			[]string{"state"}, prometheus.Labels{"group": group}),
		state: state,
	}
	if err := reg.Register(c); err != nil {
		// Another member of the same group in this process reports it.
		return nil
	}
	return c
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.state()
	for s := Initialising; s <= Closed; s++ {
		v := 0.0
		if s == now {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, s.String())
	}
}
