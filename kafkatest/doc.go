// Package kafkatest is what users of kafkahub need in their own tests.
//
// NewCluster starts an in-process Kafka-protocol cluster (franz-go's kfake)
// on loopback, so a test needs no Docker and no JVM; with KAFKA_BROKERS set
// it uses that cluster instead, so the same test runs against real Apache
// Kafka. StartCluster does the same outside tests.
package kafkatest
