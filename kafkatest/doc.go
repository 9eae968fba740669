// Package kafkatest is what users of kafkahub need in their own tests.
//
// Most tests need no broker. Services depend on kafka.IProducer and
// kafka.IConsumerGroup, and this package has a stand-in for each:
//
//   - NewMessage builds a kafka.Message to hand a handler directly; it
//     records whether it was committed and released.
//   - Consumer is an in-memory consumer group that runs a handler exactly
//     as kafka.ConsumerGroup does (same retry policy, per-partition order,
//     NumWorkers, batches, dead letters, OnAssigned and OnRevoked, Pause
//     and Resume, sharing the real consumer's code for the last two), with
//     messages the test queues and rebalances it simulates. It says what
//     was committed, and WaitIdle replaces sleeping.
//   - Producer is an in-memory producer that records what Kafka would
//     store and can be told to fail.
//   - NewMockProducer and NewMockConsumerGroup script the calls a service
//     must make, in order (Pause and Resume with their partitions), and
//     fail the test on a call that does not fit or an expectation left
//     unmet.
//
// For the tests that do need Kafka, NewCluster starts an in-process
// Kafka-protocol cluster (franz-go's kfake) on loopback, so a test needs no
// Docker and no JVM; with KAFKA_BROKERS set it uses that cluster instead,
// so the same test runs against real Apache Kafka. StartCluster does the
// same outside tests.
package kafkatest
