// Package kafka is a small, channel-based Kafka client built on
// github.com/IBM/sarama.
//
// A Producer sends records through a channel or with Send, which waits for
// the broker's acknowledgement. A ConsumerGroup consumes as a member of a
// consumer group and hands each message to a Handler run by NumWorkers
// workers (or batches to a BatchHandler, or messages to the Upstream
// channel), committing a message only after its handler returns. Its
// explicit state machine (Initialising, Stopped, Starting, Consuming,
// Stopping, Closing, Closed) is driven by Start, Stop and Close, which never
// block on the network.
//
// Both types are created even when the cluster is unreachable: they
// initialise in the background with exponential backoff and report it on
// their Initialised channel. Only an invalid config fails their
// constructors, with a *ConfigError naming the field.
//
// Every type here owns its goroutines and stops them in Close, which is
// idempotent and bounded by a context. Channels returned by Channels document
// who closes them; the library never closes a channel users send on.
//
// Both make OpenTelemetry spans through the API only (Telemetry): the W3C
// trace context of Send's context, or of ProducerMessage.Context, travels
// in record headers to the handler's context; nothing is recorded until
// the application installs an SDK. Prometheus metrics are registered on
// the Registerer given in Telemetry, none by default. ProducerHooks and
// ConsumerHooks take instrumentation of your own (docs/OBSERVABILITY.md).
//
// Logging goes through log/slog; pass a *slog.Logger in the config to choose
// where. The package changes no process-wide state (in particular it leaves
// sarama.Logger alone) and never creates topics implicitly.
package kafka
