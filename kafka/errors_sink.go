package kafka

import (
	"log/slog"
	"sync/atomic"

	"github.com/IBM/sarama"
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

// knownBrokers returns the brokers the cluster advertises once client has
// connected, else the bootstrap addresses: health checks ask every broker,
// not only the seeds.
func knownBrokers(client sarama.Client, bootstrap []string) []string {
	if client != nil {
		if bs := client.Brokers(); len(bs) > 0 {
			addrs := make([]string, len(bs))
			for i, b := range bs {
				addrs[i] = b.Addr()
			}
			return addrs
		}
	}
	return bootstrap
}
