// Package gatewayloop is a seam of tcphub for the gateway benchmark
// (internal/gatewaybench): it lets a process replace Kafka on the gateway's
// request and reply paths with an in-memory loop, to measure the gateway's
// own ceiling. It is internal to the module, so tcphub's public API does
// not change; nothing outside the benchmark installs a loop.
package gatewayloop

import (
	"sync/atomic"

	"github.com/kafkahub/kafkahub/kafka"
)

// Loop stands in for Kafka on a gateway instance's data path. The gateway
// still connects to Kafka in Start (for its topics and presence), but
// request records go to Produce and responses come from Replies.
type Loop struct {
	// Produce receives each request record, in frame order for a
	// connection. It must call msg.OnDelivery exactly once, from any
	// goroutine, and must not block for long.
	Produce func(msg *kafka.ProducerMessage)
	// Replies carries records that the gateway delivers as if it had read
	// them from its reply topic. The gateway stops reading it when it
	// shuts down.
	Replies <-chan kafka.Message
}

var hook atomic.Pointer[func(instanceID string) *Loop]

// Install makes every tcphub server created afterwards ask f for its loop;
// f returning nil keeps Kafka. Install(nil) removes the hook.
func Install(f func(instanceID string) *Loop) {
	if f == nil {
		hook.Store(nil)
		return
	}
	hook.Store(&f)
}

// For returns the loop of a new server, or nil (the normal case).
func For(instanceID string) *Loop {
	if f := hook.Load(); f != nil {
		return (*f)(instanceID)
	}
	return nil
}
