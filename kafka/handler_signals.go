package kafka

import "github.com/kafkahub/kafkahub/internal/handling"

// Signals a Handler or BatchHandler can give through its error. The
// consumer tests for them with errors.Is, so they survive further wrapping
// (fmt.Errorf("...: %w", kafka.Permanent(err))). kafkatest's fake consumer
// obeys them too.
var (
	// ErrPermanent is carried by an error made with Permanent.
	ErrPermanent = handling.ErrPermanent
	// ErrNoCommit may be returned as it is, or is carried by an error made
	// with NoCommit.
	ErrNoCommit = handling.ErrNoCommit
)

// Permanent marks a handler error that retrying cannot cure (a payload
// that does not decode, a record that breaks a business rule): the handler
// is not called again, and the message goes straight to DeadLetterTopic
// if set, or is skipped; either way it is committed and reported on Errors
// as a *HandlerError (Attempts 1 unless earlier attempts failed with other
// errors). The error's text is unchanged. Permanent(nil) is nil.
func Permanent(err error) error { return handling.Permanent(err) }

// NoCommit marks a handler error that asks the consumer not to commit the
// message (or batch): it is not retried, not dead-lettered and not
// reported on Errors (it is logged), and it is not marked for commit; the
// partition goes on with its next message. NoCommit wins over Permanent.
// NoCommit(nil) is nil; return ErrNoCommit for the signal without a cause.
//
// Offsets are positions: committing a later message of the same partition
// commits this one too. So the message is delivered again only if no later
// message of its partition is committed before the partition changes owner
// (a rebalance, Stop, Close, a crash). Use it for the last message a
// handler takes before it stops the consumer, or when a later handler
// failure will stop the partition anyway; it does not hold a partition
// back. A handler that called Message.Commit has committed already.
func NoCommit(err error) error { return handling.NoCommit(err) }
