// Package gatewayloop is the seam tcphub offers its gateway benchmark
// (cmd/gatewaybench) to measure the gateway's own ceiling without Kafka on
// its data path. It holds no state: a benchmark passes, as
// tcphub.Config.Producer, a producer that also implements Loop, and the
// server, when NewServer sees it, delivers the loop's replies as if it had
// read them from its reply topic. It is internal to the module, so tcphub's
// public API does not change.
package gatewayloop

import "github.com/kafkahub/kafkahub/kafka"

// Loop is a kafka.IProducer standing in for Kafka and the workers: it
// acknowledges the records it is given (through their OnDelivery) and
// answers requests on Replies. The gateway still connects to Kafka in Start
// (for its topics and its reply topic's reader).
type Loop interface {
	kafka.IProducer
	// Replies carries records that the gateway delivers as if it had read
	// them from its reply topic. The gateway stops reading it when it shuts
	// down; the loop never needs to close it.
	Replies() <-chan kafka.Message
}
