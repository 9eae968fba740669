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

// StateEntered returns a channel closed the next time the consumer enters
// state s; not if it is in s already (check State first, or use InState).
// Use it in a select to see a transition happen, such as the Starting of
// the next rebalance. Nobody else closes it; a new channel is made for
// every entry.
func (g *ConsumerGroup) StateEntered(s State) <-chan struct{} { return g.states.Entered(s) }

// InState returns a channel that is closed if the consumer is in state s
// now, and otherwise closed when it next enters s: dp-kafka's state
// channels, which a select waiting for a state needs. The channel is a
// snapshot: it stays closed after s is left, so ask again for each wait.
func (g *ConsumerGroup) InState(s State) <-chan struct{} { return g.states.In(s) }

// stoppedOrClosed turns what StopAndWait waited for into its result: a
// consumer that came to rest in Closed was closed, not stopped.
func stoppedOrClosed(found State, err error) error {
	if err == nil && found == Closed {
		return ErrClosed
	}
	return err
}
