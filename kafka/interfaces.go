package kafka

import "context"

// IProducer is the producer API that services depend on, so that their code
// accepts a *Producer in production and a mock or fake from kafkatest in
// tests. The names follow the dp-kafka wrapper's, familiar to its users.
type IProducer interface {
	Send(ctx context.Context, msg *ProducerMessage) error
	Channels() ProducerChannels
	IsInitialised() bool
	Initialise(ctx context.Context) error
	SetDefaultHeader(key string, value []byte)
	DeleteDefaultHeader(key string)
	DroppedErrors() uint64
	Checker(ctx context.Context) Health
	Close(ctx context.Context) error
}

// IConsumerGroup is the consumer group API that services depend on; see
// IProducer.
type IConsumerGroup interface {
	RegisterHandler(ctx context.Context, h Handler) error
	RegisterBatchHandler(ctx context.Context, h BatchHandler) error
	Start()
	Stop()
	StopAndWait(ctx context.Context) error
	State() State
	StateWait(ctx context.Context, s State) error
	StateEntered(s State) <-chan struct{}
	InState(s State) <-chan struct{}
	// Deprecated: StateChan is StateEntered; see ConsumerGroup.StateChan.
	StateChan(s State) <-chan struct{}
	Channels() ConsumerGroupChannels
	IsInitialised() bool
	Initialise(ctx context.Context) error
	DroppedErrors() uint64
	Checker(ctx context.Context) Health
	OnHealthChange(h Health)
	Assignment() []TopicPartition
	Pause(tps ...TopicPartition) error
	Resume(tps ...TopicPartition) error
	Paused() []TopicPartition
	Close(ctx context.Context) error
}

var (
	_ IProducer      = (*Producer)(nil)
	_ IConsumerGroup = (*ConsumerGroup)(nil)
)
