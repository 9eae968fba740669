package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Header is one Kafka record header. Keys need not be unique.
type Header struct {
	Key   string
	Value []byte
}

// ProducerMessage is a record to produce.
//
// The producer does not modify a ProducerMessage; do not modify it yourself
// until its delivery is reported.
type ProducerMessage struct {
	// Topic overrides the producer's Topic for this record when not empty.
	Topic string
	// Key selects the partition (murmur2, like the Java client) and so keeps
	// records with one key in order. Nil: any partition.
	Key []byte
	// Value is the record's payload.
	Value []byte
	// Headers are sent after the producer's default headers; a header here
	// replaces a default header with the same key.
	Headers []Header
	// Partition, when not nil, sends the record to that partition and
	// ignores Key for partitioning: new(int32(3)).
	Partition *int32
	// Context, when not nil, is the context of a record sent on Output:
	// its trace context goes into the record's headers (Send uses its own
	// context argument instead). Nil: context.Background().
	Context context.Context
	// OnDelivery, when not nil, is called exactly once with the outcome,
	// from the producer's own goroutine: it must return quickly. Messages
	// with OnDelivery do not report failures on the Errors channel.
	OnDelivery func(Delivery)
}

// Delivery is the outcome of producing one record.
type Delivery struct {
	Message   *ProducerMessage
	Topic     string
	Partition int32
	Offset    int64 // -1 when Err is not nil
	Err       error // nil when Kafka acknowledged the record
}

// ProducerError is a failed delivery, as sent on the producer's Errors
// channel and returned by Send.
type ProducerError struct {
	Topic string
	Msg   *ProducerMessage
	Err   error
}

// Error implements error.
func (e *ProducerError) Error() string {
	return fmt.Sprintf("kafka: producing to %q: %v", e.Topic, e.Err)
}

// Unwrap returns the underlying error.
func (e *ProducerError) Unwrap() error { return e.Err }

// Is maps the engines' size errors onto ErrMessageTooLarge.
func (e *ProducerError) Is(target error) bool {
	return target == ErrMessageTooLarge &&
		(errors.Is(e.Err, sarama.ErrMessageSizeTooLarge) || errors.Is(e.Err, kerr.MessageTooLarge))
}

// envelope travels with a record through the engine so the delivery report
// finds its way back to the caller.
type envelope struct {
	msg     *ProducerMessage
	deliver func(Delivery) // nil: report failures on Errors
	trace   string
	ctx     context.Context // Send's; after the hooks, the one they returned
	topic   string          // set by dispatch: msg.Topic or the producer's
	headers []Header        // set by dispatch: defaults, msg.Headers, trace
	start   time.Time       // when the hooks saw it (only if one needs timing)
	sent    bool            // the hooks saw it: OnDelivered is owed
}
