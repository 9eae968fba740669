package kafka

import (
	"context"
	"errors"
	"fmt"
)

// errFranzReaderPending refuses the franz-go engine for a Reader until it
// has one.
var errFranzReaderPending = errors.New("the franz-go engine has no Reader yet")

// newFranzReader is the franz-go engine of a Reader.
func newFranzReader(_ context.Context, _ *ReaderConfig) (readerEngine, error) {
	return nil, fmt.Errorf("kafka: Reader: %w", errFranzReaderPending)
}
