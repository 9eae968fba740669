package kafka

import (
	"context"
	"slices"

	"github.com/kafkahub/kafkahub/internal/rebalance"
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
// callbacks one at a time, and holds the pause gates of the claim loops:
// rebalance.Tracker, shared with kafkatest's fake consumer, under the names
// the engines call.
type assignment struct {
	t *rebalance.Tracker[TopicPartition]
}

// tpKey orders TopicPartitions for rebalance.Tracker.
var tpKey rebalance.Key[TopicPartition] = func(tp TopicPartition) (string, int32) { return tp.Topic, tp.Partition }

func newAssignment(onAssigned, onRevoked RebalanceCallback, log interface{ Error(string, ...any) }) *assignment {
	return &assignment{t: rebalance.New(tpKey, rebalance.Callback[TopicPartition](onAssigned),
		rebalance.Callback[TopicPartition](onRevoked), log.Error)}
}

// assigned records tps and calls OnAssigned. Engines call it before any
// claim loop of tps starts.
func (a *assignment) assigned(ctx context.Context, tps []TopicPartition) { a.t.Assigned(ctx, tps) }

// revoked forgets tps and calls OnRevoked. Engines call it after the claim
// loops of tps have returned and their marks are committed, before the
// partitions are released to their next owner.
func (a *assignment) revoked(ctx context.Context, tps []TopicPartition) { a.t.Revoked(ctx, tps) }

// list returns the current assignment, sorted.
func (a *assignment) list() []TopicPartition { return a.t.Assignment() }

func compareTP(a, b TopicPartition) int { return tpKey.Compare(a, b) }

// pause closes the gate of each partition; it reports the ones newly paused.
func (a *assignment) pause(tps []TopicPartition) []TopicPartition { return a.t.Pause(tps) }

// resume opens the gates; it reports the partitions that were paused.
func (a *assignment) resume(tps []TopicPartition) []TopicPartition { return a.t.Resume(tps) }

// pausedList returns the paused partitions, sorted.
func (a *assignment) pausedList() []TopicPartition { return a.t.Paused() }

// anyPaused reports whether some partition is paused, with one atomic load.
func (a *assignment) anyPaused() bool { return a.t.AnyPaused() }

// gate waits while the partition is paused. It reports false when ctx
// ended first. Without any paused partition it costs one atomic load.
func (a *assignment) gate(ctx context.Context, topic string, partition int32) bool {
	return a.t.Gate(ctx, TopicPartition{topic, partition})
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
