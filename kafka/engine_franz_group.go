package kafka

import "errors"

func newFranzGroup(g *ConsumerGroup) (groupEngine, error) { return nil, errFranzPending }

var errFranzPending = errors.New("the franz-go consumer engine is not built yet")
