// Package statemachine publishes a consumer's state to any number of
// waiters. The kafka package's ConsumerGroup and kafkatest's fake and mock
// consumers share it, so StateWait, StateEntered, InState and StopAndWait
// mean the same thing on all of them.
//
// Only the owner changes the state; readers never block the owner, and no
// waiter holds the lock while it waits.
package statemachine

import (
	"context"
	"sync"
)

// Machine holds a state of type S and the number of the last request (a
// Start or Stop) its owner has carried out.
type Machine[S comparable] struct {
	mu      sync.Mutex
	state   S
	applied uint64
	changed chan struct{}       // closed and replaced on every change
	entered map[S]chan struct{} // closed and replaced when the state is entered
}

// New returns a machine in state initial that knows the given states.
func New[S comparable](initial S, states ...S) *Machine[S] {
	m := &Machine[S]{state: initial, changed: make(chan struct{}), entered: make(map[S]chan struct{}, len(states))}
	for _, s := range states {
		m.entered[s] = make(chan struct{})
	}
	return m
}

// Get returns the current state.
func (m *Machine[S]) Get() S {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// Set enters state s.
func (m *Machine[S]) Set(s S) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enter(s)
}

// Transition enters to only if the machine is in from, so that a callback
// racing with the owner (a session starting while it stops) cannot undo the
// owner's change.
func (m *Machine[S]) Transition(from, to S) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == from {
		m.enter(to)
	}
}

func (m *Machine[S]) enter(s S) {
	if m.state == s {
		return
	}
	m.state = s
	if ch, ok := m.entered[s]; ok {
		close(ch)
		m.entered[s] = make(chan struct{})
	}
	m.broadcast()
}

func (m *Machine[S]) broadcast() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Settle records that request number seq has been carried out.
func (m *Machine[S]) Settle(seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq > m.applied {
		m.applied = seq
		m.broadcast()
	}
}

// Entered returns a channel closed the next time s is entered (not if the
// machine is in s already), or nil (never ready) for a state the machine
// does not know.
func (m *Machine[S]) Entered(s S) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.entered[s]
}

// closedChan is returned by In for the current state.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// In returns a channel that is closed if the machine is in s now, and
// otherwise closed the next time s is entered; nil (never ready) for a
// state the machine does not know. The channel is a snapshot: once closed
// it stays closed after s is left, so a waiter asks again for each wait.
func (m *Machine[S]) In(s S) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == s {
		if _, ok := m.entered[s]; ok {
			return closedChan
		}
	}
	return m.entered[s]
}

// Wait blocks until cond holds for (state, last request carried out), or
// ctx ends.
func (m *Machine[S]) Wait(ctx context.Context, cond func(state S, applied uint64) bool) error {
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

// WaitFor blocks until the machine is in state s, or ctx ends.
func (m *Machine[S]) WaitFor(ctx context.Context, s S) error {
	return m.Wait(ctx, func(cur S, _ uint64) bool { return cur == s })
}

// WaitForOr blocks until the machine is in state s (it returns nil), or in
// one of ends other than s, states from which s is never reached again (it
// returns errEnd), or ctx ends (it returns ctx's error). A consumer's
// closing states are such ends: without them a wait for Consuming on a
// closed consumer would last until ctx ends.
func (m *Machine[S]) WaitForOr(ctx context.Context, s S, errEnd error, ends ...S) error {
	ended := false
	err := m.Wait(ctx, func(cur S, _ uint64) bool {
		if cur == s {
			return true
		}
		for _, e := range ends {
			if cur == e {
				ended = true
				return true
			}
		}
		return false
	})
	if err == nil && ended {
		return errEnd
	}
	return err
}

// WaitSettled blocks until request seq has been carried out and the machine
// rests in settled, or the machine is in one of final (states in which
// nothing is in flight whatever was asked), or ctx ends. It returns the
// state it found (settled or one of final) and nil, or ctx's error.
func (m *Machine[S]) WaitSettled(ctx context.Context, seq uint64, settled S, final ...S) (S, error) {
	var found S
	err := m.Wait(ctx, func(cur S, applied uint64) bool {
		found = cur
		for _, f := range final {
			if cur == f {
				return true
			}
		}
		return cur == settled && applied >= seq
	})
	return found, err
}
