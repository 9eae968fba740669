package kafka

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by operations on a Producer or consumer that has
	// been closed or is closing.
	ErrClosed = errors.New("kafka: closed")

	// ErrNotInitialised is returned when an operation needs a connection to
	// the cluster and initialisation has not succeeded yet.
	ErrNotInitialised = errors.New("kafka: not initialised")

	// ErrInvalidConfig is wrapped by every configuration error, so callers
	// can test for it with errors.Is. The concrete error is a *ConfigError.
	ErrInvalidConfig = errors.New("kafka: invalid config")

	// ErrMessageTooLarge is returned when a record is larger than the
	// producer's MaxMessageBytes; it is rejected before it reaches Kafka.
	ErrMessageTooLarge = errors.New("kafka: message too large")
)

// ConfigError describes one invalid configuration field.
type ConfigError struct {
	Field  string // the config field, as spelled in the struct (e.g. "Topic")
	Reason string // what is wrong with it
}

// Error implements error.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("kafka: invalid config: %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidConfig) true for every ConfigError.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
