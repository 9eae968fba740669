package kafkatest

import (
	"context"
	"sync"

	"github.com/kafkahub/kafkahub/kafka"
)

// states publishes a consumer's kafka.State to any number of waiters, with
// the meanings the real consumer gives StateWait, StateChan and
// StopAndWait. Waiters never hold its lock while they block.
type states struct {
	mu      sync.Mutex
	state   kafka.State
	applied uint64                        // last Start/Stop request carried out
	changed chan struct{}                 // closed and replaced on every change
	entered map[kafka.State]chan struct{} // closed and replaced on entering a state
}

func newStates(initial kafka.State) *states {
	s := &states{state: initial, changed: make(chan struct{}), entered: make(map[kafka.State]chan struct{})}
	for st := kafka.Initialising; st <= kafka.Closed; st++ {
		s.entered[st] = make(chan struct{})
	}
	return s
}

func (s *states) get() kafka.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *states) set(st kafka.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enter(st)
}

// transition changes the state only from the given one, so a rebalance
// cannot undo a concurrent Stop.
func (s *states) transition(from, to kafka.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == from {
		s.enter(to)
	}
}

func (s *states) enter(st kafka.State) {
	if s.state == st {
		return
	}
	s.state = st
	if ch, ok := s.entered[st]; ok {
		close(ch)
		s.entered[st] = make(chan struct{})
	}
	s.broadcast()
}

func (s *states) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// settle records that the Start/Stop request numbered seq was carried out.
func (s *states) settle(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > s.applied {
		s.applied = seq
		s.broadcast()
	}
}

func (s *states) enteredChan(st kafka.State) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entered[st] // nil for an unknown state: never entered
}

func (s *states) wait(ctx context.Context, cond func(kafka.State, uint64) bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(s.state, s.applied), s.changed
		s.mu.Unlock()
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

// waitState is StateWait.
func (s *states) waitState(ctx context.Context, want kafka.State) error {
	return s.wait(ctx, func(cur kafka.State, _ uint64) bool { return cur == want })
}

// waitStopped is the waiting half of StopAndWait for the request seq.
func (s *states) waitStopped(ctx context.Context, seq uint64) error {
	return s.wait(ctx, func(cur kafka.State, applied uint64) bool {
		switch cur {
		case kafka.Initialising, kafka.Closed:
			return true
		case kafka.Stopped:
			return applied >= seq
		}
		return false
	})
}
