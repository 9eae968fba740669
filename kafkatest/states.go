package kafkatest

import (
	"context"

	"github.com/kafkahub/kafkahub/internal/statemachine"
	"github.com/kafkahub/kafkahub/kafka"
)

// newStates returns the state machine the real consumer uses, so the fake
// and the mock give StateWait, StateEntered, InState and StopAndWait the same meanings.
func newStates(initial kafka.State) *statemachine.Machine[kafka.State] {
	return statemachine.New(initial, kafka.Initialising, kafka.Stopped, kafka.Starting, kafka.Consuming,
		kafka.Stopping, kafka.Closing, kafka.Closed)
}

// waitState is StateWait as the real consumer does it: a closing consumer
// never reaches s, so the wait ends with kafka.ErrClosed.
func waitState(ctx context.Context, m *statemachine.Machine[kafka.State], s kafka.State) error {
	return m.WaitForOr(ctx, s, kafka.ErrClosed, kafka.Closing, kafka.Closed)
}

// stoppedOrClosed is the real consumer's StopAndWait result: a consumer
// that came to rest in Closed was closed, not stopped.
func stoppedOrClosed(found kafka.State, err error) error {
	if err == nil && found == kafka.Closed {
		return kafka.ErrClosed
	}
	return err
}
