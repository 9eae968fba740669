package kafka

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// RebalanceCallback is called with the partitions a rebalance assigned to
// or revoked from this member; see ConsumerGroupConfig.OnAssigned and
// OnRevoked. ctx ends when the consumption period ends.
type RebalanceCallback func(ctx context.Context, partitions []TopicPartition)

// assignment tracks what the engine has assigned, runs the rebalance
// callbacks one at a time, and holds the pause gates of the claim loops.
type assignment struct {
	onAssigned, onRevoked RebalanceCallback
	log                   interface {
		Error(msg string, args ...any)
	}

	// cbMu serialises the callbacks, whichever engine goroutine reports.
	cbMu sync.Mutex

	mu      sync.Mutex
	current map[TopicPartition]struct{}
	paused  map[TopicPartition]chan struct{} // closed on Resume
	npaused atomic.Int32                     // len(paused), read on the hot path without mu
}

func newAssignment(onAssigned, onRevoked RebalanceCallback, log interface{ Error(string, ...any) }) *assignment {
	return &assignment{onAssigned: onAssigned, onRevoked: onRevoked, log: log,
		current: map[TopicPartition]struct{}{}, paused: map[TopicPartition]chan struct{}{}}
}

// assigned records tps and calls OnAssigned. Engines call it before any
// claim loop of tps starts.
func (a *assignment) assigned(ctx context.Context, tps []TopicPartition) {
	a.mu.Lock()
	for _, tp := range tps {
		a.current[tp] = struct{}{}
	}
	a.mu.Unlock()
	a.call(ctx, "OnAssigned", a.onAssigned, tps)
}

// revoked forgets tps and calls OnRevoked. Engines call it after the claim
// loops of tps have returned and their marks are committed, before the
// partitions are released to their next owner.
func (a *assignment) revoked(ctx context.Context, tps []TopicPartition) {
	a.mu.Lock()
	for _, tp := range tps {
		delete(a.current, tp)
	}
	a.mu.Unlock()
	a.call(ctx, "OnRevoked", a.onRevoked, tps)
}

func (a *assignment) call(ctx context.Context, name string, cb RebalanceCallback, tps []TopicPartition) {
	if cb == nil || len(tps) == 0 {
		return
	}
	a.cbMu.Lock()
	defer a.cbMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			a.log.Error(name+" panicked; ignored", "panic", fmt.Sprint(r))
		}
	}()
	cb(ctx, slices.Clone(tps))
}

// list returns the current assignment, sorted.
func (a *assignment) list() []TopicPartition {
	a.mu.Lock()
	out := make([]TopicPartition, 0, len(a.current))
	for tp := range a.current {
		out = append(out, tp)
	}
	a.mu.Unlock()
	slices.SortFunc(out, compareTP)
	return out
}

func compareTP(a, b TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return int(a.Partition - b.Partition)
}

// pause closes the gate of each partition; it reports the ones newly paused.
func (a *assignment) pause(tps []TopicPartition) []TopicPartition {
	a.mu.Lock()
	defer a.mu.Unlock()
	var added []TopicPartition
	for _, tp := range tps {
		if _, ok := a.paused[tp]; !ok {
			a.paused[tp] = make(chan struct{})
			added = append(added, tp)
		}
	}
	a.npaused.Store(int32(len(a.paused)))
	return added
}

// resume opens the gates; it reports the partitions that were paused.
func (a *assignment) resume(tps []TopicPartition) []TopicPartition {
	a.mu.Lock()
	defer a.mu.Unlock()
	var removed []TopicPartition
	for _, tp := range tps {
		if ch, ok := a.paused[tp]; ok {
			close(ch)
			delete(a.paused, tp)
			removed = append(removed, tp)
		}
	}
	a.npaused.Store(int32(len(a.paused)))
	return removed
}

// pausedList returns the paused partitions, sorted.
func (a *assignment) pausedList() []TopicPartition {
	a.mu.Lock()
	out := make([]TopicPartition, 0, len(a.paused))
	for tp := range a.paused {
		out = append(out, tp)
	}
	a.mu.Unlock()
	slices.SortFunc(out, compareTP)
	return out
}

// gate waits while the partition is paused. It reports false when ctx
// ended first. Without any paused partition it costs one atomic load.
func (a *assignment) gate(ctx context.Context, topic string, partition int32) bool {
	for a.npaused.Load() > 0 {
		a.mu.Lock()
		ch, ok := a.paused[TopicPartition{topic, partition}]
		a.mu.Unlock()
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

// Assignment returns the partitions currently assigned to this member,
// sorted by topic and partition; empty while not consuming.
func (g *ConsumerGroup) Assignment() []TopicPartition { return g.assign.list() }

// Pause stops handling the given partitions while keeping them assigned:
// the member stays in the group, no rebalance happens, and fetching stops
// so records do not pile up. A handler already running finishes. Pausing a
// partition that is not assigned now holds it when it is assigned later;
// pauses outlive rebalances until Resume. After Close it returns ErrClosed.
func (g *ConsumerGroup) Pause(tps ...TopicPartition) error {
	if g.isClosed() {
		return ErrClosed
	}
	if added := g.assign.pause(tps); len(added) > 0 {
		if r := g.eng.Load(); r != nil {
			r.pause(added)
		}
	}
	return nil
}

// Resume lets paused partitions be handled again, from where they stopped.
// After Close it returns ErrClosed.
func (g *ConsumerGroup) Resume(tps ...TopicPartition) error {
	if g.isClosed() {
		return ErrClosed
	}
	if removed := g.assign.resume(tps); len(removed) > 0 {
		if r := g.eng.Load(); r != nil {
			r.resume(removed)
		}
	}
	return nil
}

// Paused returns the paused partitions, sorted.
func (g *ConsumerGroup) Paused() []TopicPartition { return g.assign.pausedList() }

func (g *ConsumerGroup) isClosed() bool {
	select {
	case <-g.closer:
		return true
	default:
		return false
	}
}

// toTPs flattens a topic -> partitions map.
func toTPs(m map[string][]int32) []TopicPartition {
	var out []TopicPartition
	for t, ps := range m {
		for _, p := range ps {
			out = append(out, TopicPartition{t, p})
		}
	}
	slices.SortFunc(out, compareTP)
	return out
}

// fromTPs groups partitions by topic.
func fromTPs(tps []TopicPartition) map[string][]int32 {
	out := make(map[string][]int32, 1)
	for _, tp := range tps {
		out[tp.Topic] = append(out[tp.Topic], tp.Partition)
	}
	return out
}
