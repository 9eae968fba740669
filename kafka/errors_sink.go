package kafka

import (
	"log/slog"
	"sync/atomic"
)

// errorSink is the buffered Errors channel of a producer or consumer. It
// never blocks the sender: a user who does not read Errors must not stall
// the client, so errors beyond the buffer are logged and counted.
type errorSink struct {
	ch      chan error
	dropped atomic.Uint64
	log     *slog.Logger
}

func newErrorSink(size int, log *slog.Logger) *errorSink {
	return &errorSink{ch: make(chan error, size), log: log}
}

func (s *errorSink) push(err error) {
	select {
	case s.ch <- err:
	default:
		n := s.dropped.Add(1)
		s.log.Error("error dropped: Errors channel full", "error", err, "dropped_total", n)
	}
}

// knownBrokers returns the brokers the cluster advertises once the engine
// has connected, else the bootstrap addresses: health checks ask every
// broker, not only the seeds.
func knownBrokers(eng interface{ brokers() []string }, bootstrap []string) []string {
	if eng != nil {
		if bs := eng.brokers(); len(bs) > 0 {
			return bs
		}
	}
	return bootstrap
}
