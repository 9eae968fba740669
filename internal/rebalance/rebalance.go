// Package rebalance holds what a consumer group member knows of its
// partitions: the current assignment, the rebalance callbacks run one at a
// time, and the pause gates its claim loops wait at. kafka.ConsumerGroup
// and kafkatest's fake Consumer share it, so Pause, Resume and the
// callbacks behave the same in tests as in production.
package rebalance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Key gives a partition's topic and number, by which lists are sorted. The
// partition type is defined by the kafka package, which imports this one.
type Key[K any] func(K) (topic string, partition int32)

// Compare orders partitions by topic, then by number.
func (key Key[K]) Compare(a, b K) int {
	at, ap := key(a)
	bt, bp := key(b)
	if c := strings.Compare(at, bt); c != 0 {
		return c
	}
	return int(ap - bp)
}

// Callback is called with the partitions assigned or revoked.
type Callback[K any] func(ctx context.Context, partitions []K)

// Tracker tracks what is assigned, runs the rebalance callbacks one at a
// time, and holds the pause gates of the claim loops. Its zero value is not
// usable; see New.
type Tracker[K comparable] struct {
	key                   Key[K]
	onAssigned, onRevoked Callback[K]
	logError              func(msg string, args ...any)

	// cbMu serialises the callbacks, whichever goroutine reports.
	cbMu sync.Mutex

	mu      sync.Mutex
	current map[K]struct{}
	paused  map[K]chan struct{} // closed on Resume
	npaused atomic.Int32        // len(paused), read on the hot path without mu
}

// New returns a Tracker with nothing assigned or paused. Either callback
// may be nil; logError reports a callback's panic.
func New[K comparable](key Key[K], onAssigned, onRevoked Callback[K], logError func(msg string, args ...any)) *Tracker[K] {
	return &Tracker[K]{key: key, onAssigned: onAssigned, onRevoked: onRevoked, logError: logError,
		current: map[K]struct{}{}, paused: map[K]chan struct{}{}}
}

// Assigned records ps and calls OnAssigned. Call it before any claim loop
// of ps starts.
func (t *Tracker[K]) Assigned(ctx context.Context, ps []K) {
	t.mu.Lock()
	for _, p := range ps {
		t.current[p] = struct{}{}
	}
	t.mu.Unlock()
	t.call(ctx, "OnAssigned", t.onAssigned, ps)
}

// Revoked forgets ps and calls OnRevoked. Call it after the claim loops of
// ps have returned and their marks are committed, before the partitions go
// to their next owner.
func (t *Tracker[K]) Revoked(ctx context.Context, ps []K) {
	t.mu.Lock()
	for _, p := range ps {
		delete(t.current, p)
	}
	t.mu.Unlock()
	t.call(ctx, "OnRevoked", t.onRevoked, ps)
}

func (t *Tracker[K]) call(ctx context.Context, name string, cb Callback[K], ps []K) {
	if cb == nil || len(ps) == 0 {
		return
	}
	t.cbMu.Lock()
	defer t.cbMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			t.logError(name+" panicked; ignored", "panic", fmt.Sprint(r))
		}
	}()
	cb(ctx, slices.Clone(ps))
}

// Assignment returns the current assignment, sorted.
func (t *Tracker[K]) Assignment() []K {
	t.mu.Lock()
	defer t.mu.Unlock()
	return sorted(t.key, t.current)
}

// Pause closes the gate of each partition; it reports the ones newly
// paused.
func (t *Tracker[K]) Pause(ps []K) []K {
	t.mu.Lock()
	defer t.mu.Unlock()
	var added []K
	for _, p := range ps {
		if _, ok := t.paused[p]; !ok {
			t.paused[p] = make(chan struct{})
			added = append(added, p)
		}
	}
	t.npaused.Store(int32(len(t.paused)))
	return added
}

// Resume opens the gates; it reports the partitions that were paused.
func (t *Tracker[K]) Resume(ps []K) []K {
	t.mu.Lock()
	defer t.mu.Unlock()
	var removed []K
	for _, p := range ps {
		if ch, ok := t.paused[p]; ok {
			close(ch)
			delete(t.paused, p)
			removed = append(removed, p)
		}
	}
	t.npaused.Store(int32(len(t.paused)))
	return removed
}

// Paused returns the paused partitions, sorted.
func (t *Tracker[K]) Paused() []K {
	t.mu.Lock()
	defer t.mu.Unlock()
	return sorted(t.key, t.paused)
}

// AnyPaused reports whether some partition is paused, with one atomic load.
func (t *Tracker[K]) AnyPaused() bool { return t.npaused.Load() > 0 }

// Gate waits while p is paused. It reports false when ctx ended first.
// Without any paused partition it costs one atomic load.
func (t *Tracker[K]) Gate(ctx context.Context, p K) bool {
	for t.npaused.Load() > 0 {
		t.mu.Lock()
		ch, ok := t.paused[p]
		t.mu.Unlock()
		if !ok {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// sorted lists the keys of m in order.
func sorted[K comparable, V any](key Key[K], m map[K]V) []K {
	out := make([]K, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, key.Compare)
	return out
}
