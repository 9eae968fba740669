package kafka

import (
	"context"
	"fmt"
	"sync"
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

// stateMachine publishes the consumer's state to any number of waiters.
// Only the consumer's controller goroutine calls set; readers never block
// the controller and the controller never blocks on readers.
type stateMachine struct {
	mu      sync.Mutex
	state   State
	applied uint64                  // last intent the controller has carried out
	changed chan struct{}           // closed and replaced on every change
	entered map[State]chan struct{} // closed and replaced when the state is entered
}

func newStateMachine() *stateMachine {
	m := &stateMachine{changed: make(chan struct{}), entered: make(map[State]chan struct{})}
	for s := Initialising; s <= Closed; s++ {
		m.entered[s] = make(chan struct{})
	}
	return m
}

func (m *stateMachine) get() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

func (m *stateMachine) set(s State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enter(s)
}

// transition moves from one state to another only if the machine is in
// from: Sarama's session callbacks use it so that a session starting while
// the controller stops cannot flip Stopping back to Consuming.
func (m *stateMachine) transition(from, to State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == from {
		m.enter(to)
	}
}

// enter changes the state; m.mu must be held.
func (m *stateMachine) enter(s State) {
	if m.state == s {
		return
	}
	m.state = s
	close(m.entered[s])
	m.entered[s] = make(chan struct{})
	close(m.changed)
	m.changed = make(chan struct{})
}

// settle records that the intent numbered seq has been carried out.
func (m *stateMachine) settle(seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq <= m.applied {
		return
	}
	m.applied = seq
	close(m.changed)
	m.changed = make(chan struct{})
}

// enteredChan returns a channel closed the next time s is entered.
func (m *stateMachine) enteredChan(s State) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch, ok := m.entered[s]; ok {
		return ch
	}
	return nil // an unknown state is never entered
}

// wait blocks until cond holds for (state, applied intent) or ctx ends.
func (m *stateMachine) wait(ctx context.Context, cond func(State, uint64) bool) error {
	for {
		m.mu.Lock()
		ok, ch := cond(m.state, m.applied), m.changed
		m.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
