package kafka

import (
	"fmt"

	"github.com/kafkahub/kafkahub/internal/statemachine"
)

// State is the state of a ConsumerGroup.
type State int32

// The states of a ConsumerGroup. A consumer moves
//
//	Initialising -> Stopped                  once connected
//	Stopped -> Starting -> Consuming         on Start (Starting while joining the group)
//	Consuming -> Starting -> Consuming       on a rebalance
//	Starting|Consuming -> Stopping -> Stopped  on Stop (handlers finish, offsets are committed, the group is left)
//	any -> Closing -> Closed                 on Close
const (
	Initialising State = iota
	Stopped
	Starting
	Consuming
	Stopping
	Closing
	Closed
)

var stateNames = [...]string{"Initialising", "Stopped", "Starting", "Consuming", "Stopping", "Closing", "Closed"}

// String returns the state's name.
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

func newStateMachine() *statemachine.Machine[State] {
	return statemachine.New(Initialising, Initialising, Stopped, Starting, Consuming, Stopping, Closing, Closed)
}
