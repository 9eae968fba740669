package kafkatest

import (
	"github.com/kafkahub/kafkahub/internal/statemachine"
	"github.com/kafkahub/kafkahub/kafka"
)

// newStates returns the state machine the real consumer uses, so the fake
// and the mock give StateWait, StateChan and StopAndWait the same meanings.
func newStates(initial kafka.State) *statemachine.Machine[kafka.State] {
	return statemachine.New(initial, kafka.Initialising, kafka.Stopped, kafka.Starting, kafka.Consuming,
		kafka.Stopping, kafka.Closing, kafka.Closed)
}
