package tcphub

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
)

// Presence is a record of the presence topic, keyed by device id: which
// gateway instance holds the device's connection. The gateway publishes one
// when a device is welcomed (Online true) and when its connection ends
// (Online false).
type Presence struct {
	Device   string    `json:"device"`
	Instance string    `json:"instance"`
	ReplyTo  string    `json:"reply_to"`
	Conn     string    `json:"conn"`
	Online   bool      `json:"online"`
	At       time.Time `json:"at"`
}

// presenceTopicSpec is the presence topic: compacted, so it keeps the
// latest record of each device.
func presenceTopicSpec(name string, rf int16) kafka.TopicSpec {
	return kafka.TopicSpec{Name: name, Partitions: 1, ReplicationFactor: rf, Config: map[string]string{"cleanup.policy": "compact"}}
}

// presenceMessage is the record of rec on the presence topic.
func presenceMessage(topic string, rec Presence) *kafka.ProducerMessage {
	value, _ := json.Marshal(rec) // cannot fail: plain fields
	return &kafka.ProducerMessage{
		Topic: topic, Key: []byte(rec.Device), Value: value,
		Headers: []kafka.Header{{Key: HeaderContentType, Value: []byte(ContentTypeJSON)}},
	}
}

// presencePublisher writes presence records in the background, so a
// handshake never waits for Kafka. Records pending for the same device are
// coalesced, keeping the latest: the topic is compacted to the latest per
// device anyway.
type presencePublisher struct {
	s       *Server
	mu      sync.Mutex
	pending map[string]Presence
	order   []string
	stopped bool
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
}

func newPresencePublisher(s *Server) *presencePublisher {
	return &presencePublisher{
		s: s, pending: map[string]Presence{},
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
	}
}

func (p *presencePublisher) publish(c *conn, online bool) {
	if p.s.cfg.DisablePresence {
		return
	}
	rec := Presence{Device: c.device, Instance: p.s.cfg.InstanceID, ReplyTo: p.s.replyTopic, Conn: c.id, Online: online, At: time.Now().UTC()}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	if _, ok := p.pending[rec.Device]; !ok {
		p.order = append(p.order, rec.Device)
	}
	p.pending[rec.Device] = rec
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run hands pending records to the producer until stop, then hands over
// what is left; Producer.Close flushes them.
func (p *presencePublisher) run() {
	defer p.s.bgWG.Done()
	defer close(p.done)
	for {
		select {
		case <-p.wake:
			p.flush()
		case <-p.quit:
			p.flush()
			return
		}
	}
}

func (p *presencePublisher) flush() {
	p.mu.Lock()
	pending, order := p.pending, p.order
	if len(order) == 0 {
		p.mu.Unlock()
		return
	}
	p.pending, p.order = map[string]Presence{}, nil
	p.mu.Unlock()
	out := p.s.producer.Channels()
	for _, dev := range order {
		rec := pending[dev]
		msg := presenceMessage(p.s.cfg.PresenceTopic, rec)
		msg.OnDelivery = func(d kafka.Delivery) {
			if d.Err != nil {
				p.s.m.presenceFailures.Inc()
				p.s.log.Warn("presence not published", "device", dev, "online", rec.Online, "error", d.Err)
				return
			}
			p.s.m.presencePublished.Inc()
		}
		select {
		case out.Output <- msg:
		case <-out.Closer:
			return
		}
	}
}

// stop publishes what is pending and stops the publisher.
func (p *presencePublisher) stop() {
	p.mu.Lock()
	already := p.stopped
	p.stopped = true
	p.mu.Unlock()
	if !already {
		close(p.quit)
	}
	<-p.done
}
