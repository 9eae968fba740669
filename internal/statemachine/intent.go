package statemachine

import "sync"

// Intent is the last request made of a consumer's owner goroutine (consume
// or not), numbered so that a caller can wait until that very request is
// carried out (Machine.Settle, Machine.WaitSettled). Requests never block:
// the newest wins, and Wake tells the owner to look.
type Intent struct {
	mu      sync.Mutex
	consume bool
	seq     uint64
	wake    chan struct{}
}

// NewIntent returns an intent not to consume.
func NewIntent() *Intent { return &Intent{wake: make(chan struct{}, 1)} }

// Set records the request and returns its number.
func (in *Intent) Set(consume bool) uint64 {
	in.mu.Lock()
	in.consume = consume
	in.seq++
	seq := in.seq
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default: // a wake-up is already pending; the owner will read the newest
	}
	return seq
}

// Get returns the newest request and its number.
func (in *Intent) Get() (consume bool, seq uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.consume, in.seq
}

// Wake receives a value after one or more calls to Set.
func (in *Intent) Wake() <-chan struct{} { return in.wake }
