// Package tcphub is a TCP gateway between devices and Kafka, with the
// worker-side helpers. The Go device client is package tcphub/device,
// which links no Kafka client.
//
// Devices keep one long-lived TCP (or TLS) connection each and speak the
// protocol of docs/PROTOCOL.md (package wire). The gateway, a Server,
// writes every device request to a Kafka topic, keyed by device id,
// acknowledges it to the device only once Kafka has acknowledged the
// record (acks=all, idempotent producer), and delivers the workers'
// responses and pushes back to the right socket.
//
// # Routing across instances
//
// Each Server has an instance id and a reply topic of its own
// (ReplyTopicPrefix + InstanceID), which it reads from its newest offset.
// It stamps that topic into every request (header tcphub.reply-to); a
// worker answers with Reply, which produces to it, so a response costs one
// record however many instances run. Each instance also publishes, on a
// compacted presence topic, which devices it holds; a Pusher reads it to
// send a push to a device by id from any process.
//
// # Workers
//
// A worker consumes the request topic (for instance with
// kafka.ConsumerGroup), reads the gateway's headers with ParseRequest, and
// answers with Reply:
//
//	g.RegisterHandler(ctx, func(ctx context.Context, _ int, msg kafka.Message) error {
//		return tcphub.Reply(ctx, producer, msg, 200, answer(msg.Value()))
//	})
//
// # Devices
//
// Package tcphub/device is the Go client: it performs the handshake,
// matches acks and responses to requests, answers heartbeats, delivers
// pushes and reconnects with backoff; devices in other languages follow
// docs/PROTOCOL.md. docs/GATEWAY.md describes the design, the guarantees
// and the limits.
package tcphub
