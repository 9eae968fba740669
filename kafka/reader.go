package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// ReadFrom is where a Reader starts in each partition.
type ReadFrom int

// Starting positions. The zero value is ReadNewest.
const (
	// ReadNewest reads only the records produced after NewReader
	// returned: a live tail, as for replies meant for the running process.
	ReadNewest ReadFrom = iota
	// ReadOldest reads every record the partition still holds, then the
	// new ones: a replay, as for rebuilding a table from a compacted topic.
	ReadOldest
)

// Reader defaults, applied to zero-valued fields of ReaderConfig.
const DefaultReaderBufferSize = 256

// ReaderConfig configures a Reader. BrokerAddrs and Topic are required;
// every other field has the documented default when left zero. NewReader
// copies the config.
type ReaderConfig struct {
	// BrokerAddrs are the bootstrap brokers, host:port. Required.
	BrokerAddrs []string
	// Topic is the topic to read. Required.
	Topic string
	// Partitions are the partitions to read. Nil: every partition the
	// topic has when NewReader runs.
	Partitions []int32
	// From is where reading starts in each partition. Default ReadNewest.
	From ReadFrom

	// Engine is the client library beneath: EngineSarama or EngineFranz.
	// Default: the KAFKAHUB_ENGINE environment variable (EnvEngine), else
	// EngineSarama.
	Engine Engine
	// KafkaVersion is the protocol version to speak. Default "3.6.0".
	KafkaVersion string
	// ClientID identifies the client in broker logs and quotas.
	// Default "kafkahub".
	ClientID string
	// DialTimeout bounds each connection attempt. Default 10 s.
	DialTimeout time.Duration
	// MinRetryPeriod and MaxRetryPeriod bound the exponential backoff
	// between attempts to resume a partition whose reading failed, and
	// between NewReader's (at most 5) attempts to read a partition's
	// offsets. Defaults 200 ms and 30 s.
	MinRetryPeriod time.Duration
	MaxRetryPeriod time.Duration
	// BufferSize is the capacity of the Messages channel. Default 256.
	BufferSize int
	// TraceHeader is the header whose value becomes the trace id of each
	// message's Context. Default "trace-id".
	TraceHeader string
	// Telemetry's propagator puts the OpenTelemetry trace context of each
	// record's headers into its Context (the Reader makes no span). Its
	// Registerer is not used. Default: the OpenTelemetry globals.
	Telemetry Telemetry

	// SecurityConfig sets TLS and SASL. Nil: plaintext.
	SecurityConfig *SecurityConfig
	// Logger receives the reader's logs. Default slog.Default().
	Logger *slog.Logger
}

func (c ReaderConfig) withDefaults() ReaderConfig {
	c.BrokerAddrs = slices.Clone(c.BrokerAddrs)
	c.Partitions = slices.Clone(c.Partitions)
	c.Engine = orDefault(c.Engine, defaultEngine())
	c.KafkaVersion = orDefault(c.KafkaVersion, DefaultKafkaVersion)
	c.ClientID = orDefault(c.ClientID, DefaultClientID)
	c.DialTimeout = orDefault(c.DialTimeout, DefaultDialTimeout)
	c.MinRetryPeriod = orDefault(c.MinRetryPeriod, DefaultMinRetryPeriod)
	c.MaxRetryPeriod = orDefault(c.MaxRetryPeriod, DefaultMaxRetryPeriod)
	c.BufferSize = orDefault(c.BufferSize, DefaultReaderBufferSize)
	c.TraceHeader = orDefault(c.TraceHeader, DefaultTraceHeader)
	c.Logger = loggerOrDefault(c.Logger)
	return c
}

// Validate reports the first invalid field as a *ConfigError, which matches
// ErrInvalidConfig. Zero fields are valid where they have a default.
func (c *ReaderConfig) Validate() error {
	d := c.withDefaults()
	if err := validateCommon(d.BrokerAddrs, d.MinRetryPeriod, d.MaxRetryPeriod, DefaultMinBrokersHealthy); err != nil {
		return err
	}
	if d.Topic == "" {
		return configErr("Topic", "is required")
	}
	for _, p := range d.Partitions {
		if p < 0 {
			return configErr("Partitions", "partition %d is negative", p)
		}
	}
	if d.From != ReadNewest && d.From != ReadOldest {
		return configErr("From", "unknown position %d (want ReadNewest or ReadOldest)", d.From)
	}
	if d.BufferSize < 0 {
		return configErr("BufferSize", "must not be negative, got %d", d.BufferSize)
	}
	if d.DialTimeout < 0 {
		return configErr("DialTimeout", "must not be negative, got %v", d.DialTimeout)
	}
	if err := validateEngine(d.Engine); err != nil {
		return err
	}
	return d.SecurityConfig.Validate()
}

// readerEngine is what a Reader needs of a client library once it has
// connected. Everything above it (positions, resuming after a failure,
// Messages, Close ordering) is written once, in this file.
type readerEngine interface {
	// partitions returns the topic's partitions.
	partitions(ctx context.Context, topic string) ([]int32, error)
	// bounds returns a partition's oldest offset and its end: the offset
	// the next record produced to it will get.
	bounds(ctx context.Context, topic string, partition int32) (oldest, end int64, err error)
	// read delivers the partition's records from offset on, in offset
	// order, to deliver, until ctx ends (it then returns nil) or reading
	// fails (it returns the error). deliver returns false when ctx ended
	// while it waited. Several reads of different partitions run at once.
	read(ctx context.Context, topic string, partition int32, offset int64, deliver func(record) bool) error
	// close releases the connections; called once, after every read has
	// returned.
	close() error
}

// newReaderEngine connects for cfg's engine, within ctx.
func newReaderEngine(ctx context.Context, cfg *ReaderConfig) (readerEngine, error) {
	// Each branch checks err itself: a nil *T returned as an interface
	// would not be nil.
	if cfg.Engine == EngineFranz {
		e, err := newFranzReader(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return e, nil
	}
	e, err := newSaramaReader(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Reader reads one topic (or some of its partitions) from the newest or the
// oldest offset, without a consumer group: nothing is committed, nothing
// rebalances, and any number of Readers see every record. It suits
// per-process topics (replies to this instance), tables rebuilt from a
// compacted topic, and tools that tail a topic.
//
// Records arrive on Messages in offset order within a partition. A
// partition whose reading fails (a broker lost for longer than the client
// retries, an offset no longer held) is resumed after a backoff from the
// next record, or from the oldest one still held if that record is gone:
// the Reader runs until Close. It is safe for concurrent use.
type Reader struct {
	cfg     ReaderConfig
	log     *slog.Logger
	eng     readerEngine
	tracing *tracing     // nil: Telemetry.DisableTracing
	out     chan Message // closed by Close, once every partition's goroutine has returned
	backlog map[int32]int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// NewReader connects, finds the partitions and their bounds, and starts
// reading each partition at the position cfg.From names, all within ctx.
// Records produced after NewReader returned are always read. On failure
// nothing is left running; an invalid config matches ErrInvalidConfig.
func NewReader(ctx context.Context, cfg *ReaderConfig) (*Reader, error) {
	if cfg == nil {
		return nil, configErr("ReaderConfig", "is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	// An engine may not look at ctx before its first network round trip,
	// and a select between its answer and ctx picks either: an ended ctx
	// must fail every time.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kafka: connecting to %v: %w", c.BrokerAddrs, err)
	}
	// Either step may be the first to reach a broker, so either may meet
	// the SASL refusal.
	eng, err := newReaderEngine(ctx, &c)
	if err != nil {
		return nil, explainAuth(c.SecurityConfig, err)
	}
	r := &Reader{cfg: c, log: c.Logger.With("component", "kafka.reader", "topic", c.Topic), eng: eng, backlog: map[int32]int64{}}
	starts, err := r.positions(ctx)
	if err != nil {
		_ = eng.close()
		return nil, explainAuth(c.SecurityConfig, err)
	}
	r.out = make(chan Message, c.BufferSize)
	if !c.Telemetry.DisableTracing {
		r.tracing = newTracing(c.Telemetry, "")
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	for _, p := range r.cfg.Partitions {
		r.wg.Add(1)
		go r.readPartition(p, starts[p])
	}
	return r, nil
}

// boundsAttempts is how many times NewReader asks for a partition's
// offsets before giving up: a topic created a moment before may not have
// its leaders known to every broker yet (NOT_LEADER_OR_FOLLOWER on a real
// cluster), which a retry after a short wait cures.
const boundsAttempts = 5

// bounds asks the engine for p's oldest and end offsets, retrying with
// backoff from MinRetryPeriod while ctx lasts.
func (r *Reader) bounds(ctx context.Context, p int32) (oldest, end int64, err error) {
	wait := r.cfg.MinRetryPeriod
	for attempt := 1; ; attempt++ {
		if oldest, end, err = r.eng.bounds(ctx, r.cfg.Topic, p); err == nil || attempt == boundsAttempts {
			return oldest, end, err
		}
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, r.cfg.MaxRetryPeriod)
	}
}

// positions resolves the partitions and returns where each one starts.
func (r *Reader) positions(ctx context.Context) (map[int32]int64, error) {
	if r.cfg.Partitions == nil {
		ps, err := r.eng.partitions(ctx, r.cfg.Topic)
		if err != nil {
			return nil, fmt.Errorf("kafka: partitions of %q: %w", r.cfg.Topic, err)
		}
		r.cfg.Partitions = ps
	}
	starts := make(map[int32]int64, len(r.cfg.Partitions))
	for _, p := range r.cfg.Partitions {
		oldest, end, err := r.bounds(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("kafka: offsets of %s/%d: %w", r.cfg.Topic, p, err)
		}
		starts[p] = end
		if r.cfg.From == ReadOldest && oldest < end {
			starts[p] = oldest
			r.backlog[p] = end
		}
	}
	return starts, nil
}

// Messages delivers the records read, in offset order within a partition.
// Their Commit and Release do nothing (there is no group). The Reader
// closes the channel on Close, after the last record it sends.
func (r *Reader) Messages() <-chan Message { return r.out }

// Partitions returns the partitions being read.
func (r *Reader) Partitions() []int32 { return slices.Clone(r.cfg.Partitions) }

// Backlog returns, for each partition that held records past the starting
// position when NewReader ran (only with ReadOldest), the partition's end
// then: the offset after its last record. The Reader has delivered all that
// the topic held at start once it has delivered, for each of these
// partitions, a record at end-1 or beyond. A table rebuilt from a compacted
// topic is complete at that point.
func (r *Reader) Backlog() map[int32]int64 {
	m := make(map[int32]int64, len(r.backlog))
	for p, e := range r.backlog {
		m[p] = e
	}
	return m
}

// Close stops reading, waits for the reader's goroutines, closes Messages
// and releases the connections. It is idempotent and safe to call
// concurrently; every call returns the first call's result.
func (r *Reader) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		r.wg.Wait()
		close(r.out)
		if err := r.eng.close(); err != nil {
			r.closeErr = fmt.Errorf("kafka: closing the reader of %q: %w", r.cfg.Topic, err)
		}
	})
	return r.closeErr
}

// readPartition reads one partition until Close, resuming after failures.
func (r *Reader) readPartition(p int32, next int64) {
	defer r.wg.Done()
	deliver := func(rec record) bool {
		select {
		case r.out <- r.newMessage(rec):
			next = rec.offset + 1
			return true
		case <-r.ctx.Done():
			return false
		}
	}
	delay := r.cfg.MinRetryPeriod
	for {
		err := r.eng.read(r.ctx, r.cfg.Topic, p, next, deliver)
		if r.ctx.Err() != nil {
			return
		}
		if err == nil {
			err = fmt.Errorf("reading ended")
		}
		r.log.Warn("reading a partition failed: resuming", "partition", p, "offset", next, "error", err, "in", delay)
		select {
		case <-time.After(delay + rand.N(delay/2+1)):
		case <-r.ctx.Done():
			return
		}
		delay = min(2*delay, r.cfg.MaxRetryPeriod)
		oldest, end, err := r.eng.bounds(r.ctx, r.cfg.Topic, p)
		if err != nil {
			continue
		}
		switch {
		case next < oldest:
			r.log.Warn("records no longer held were skipped", "partition", p, "from", next, "to", oldest)
			next = oldest
		case next > end:
			next = end
		}
	}
}

// readerMessage is the Message a Reader hands out.
type readerMessage struct {
	rec record
	ctx context.Context
}

func (r *Reader) newMessage(rec record) *readerMessage {
	ctx := r.ctx
	for _, h := range rec.headers {
		if h.Key == r.cfg.TraceHeader && len(h.Value) > 0 {
			ctx = WithTraceID(ctx, string(h.Value))
			break
		}
	}
	if r.tracing != nil && len(rec.headers) > 0 {
		ctx = r.tracing.extract(ctx, rec.headers)
	}
	return &readerMessage{rec: rec, ctx: ctx}
}

func (m *readerMessage) Topic() string            { return m.rec.topic }
func (m *readerMessage) Partition() int32         { return m.rec.partition }
func (m *readerMessage) Offset() int64            { return m.rec.offset }
func (m *readerMessage) Key() []byte              { return m.rec.key }
func (m *readerMessage) Value() []byte            { return m.rec.value }
func (m *readerMessage) Headers() []Header        { return m.rec.headers }
func (m *readerMessage) Timestamp() time.Time     { return m.rec.timestamp }
func (m *readerMessage) Context() context.Context { return m.ctx }

// Commit does nothing: a Reader has no group to commit to.
func (m *readerMessage) Commit() {}

// Release does nothing: a Reader does not wait for its messages.
func (m *readerMessage) Release() {}

// CommitAndRelease does nothing.
func (m *readerMessage) CommitAndRelease() {}

func (m *readerMessage) Header(key string) ([]byte, bool) {
	for _, h := range m.rec.headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}
