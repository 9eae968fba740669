package kafka

import "errors"

// Placeholder until the franz-go engine lands: the configuration is
// accepted so that the seam compiles.
var errFranzPending = errors.New("the franz-go engine is not built yet")

func newFranzProducer(p *Producer) (producerEngine, error) { return nil, errFranzPending }

func newFranzGroup(g *ConsumerGroup) (groupEngine, error) { return nil, errFranzPending }
