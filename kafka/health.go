package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// HealthStatus is the outcome of a health check.
type HealthStatus int

// Health statuses, from best to worst.
const (
	// HealthOK: enough brokers answer and every topic exists.
	HealthOK HealthStatus = iota
	// HealthWarning: enough brokers answer but a topic is missing.
	HealthWarning
	// HealthCritical: fewer than MinBrokersHealthy brokers answer, or the
	// client is closed.
	HealthCritical
)

// String returns "OK", "WARNING" or "CRITICAL".
func (s HealthStatus) String() string {
	switch s {
	case HealthOK:
		return "OK"
	case HealthWarning:
		return "WARNING"
	case HealthCritical:
		return "CRITICAL"
	}
	return fmt.Sprintf("HealthStatus(%d)", int(s))
}

// Health is the result of a Checker call.
type Health struct {
	Status    HealthStatus
	Message   string // names what failed; "" when OK
	CheckedAt time.Time
}

// checkHealth asks each broker, over a connection of its own, for the
// topics' metadata. Its own connections keep a hung broker from stalling the
// client's traffic, and can be closed when ctx ends so nothing outlives the
// check.
func checkHealth(ctx context.Context, addrs []string, cfg *sarama.Config, topics []string, minHealthy int) Health {
	now := time.Now()
	type result struct {
		addr    string
		err     error
		missing []string
	}
	results := make(chan result, len(addrs))
	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := sarama.NewBroker(addr)
			done := make(chan struct{})
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				select {
				case <-ctx.Done():
					_ = b.Close()
				case <-done:
				}
			}()
			r := result{addr: addr}
			defer func() {
				close(done)
				<-stopped
				_ = b.Close()
				results <- r
			}()
			if err := b.Open(cfg); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
				r.err = err
				return
			}
			// Version 4 is the first that can say "do not auto-create": a health
			// check must not create the topic it is checking for.
			md, err := b.GetMetadata(&sarama.MetadataRequest{Version: 4, Topics: topics, AllowAutoTopicCreation: false})
			if err != nil {
				r.err = err
				return
			}
			for _, t := range md.Topics {
				if errors.Is(t.Err, sarama.ErrUnknownTopicOrPartition) {
					r.missing = append(r.missing, t.Name)
				}
			}
		}()
	}
	wg.Wait()
	close(results)

	healthy := 0
	var failed []string
	missing := map[string]bool{}
	for r := range results {
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", r.addr, r.err))
			continue
		}
		healthy++
		for _, t := range r.missing {
			missing[t] = true
		}
	}
	if healthy < minHealthy {
		return Health{Status: HealthCritical, CheckedAt: now, Message: fmt.Sprintf(
			"%d of %d brokers answered, need %d: %s", healthy, len(addrs), minHealthy, strings.Join(failed, "; "))}
	}
	if len(missing) > 0 {
		var names []string
		for _, t := range topics {
			if missing[t] {
				names = append(names, t)
			}
		}
		return Health{Status: HealthWarning, CheckedAt: now, Message: "topic missing: " + strings.Join(names, ", ")}
	}
	return Health{Status: HealthOK, CheckedAt: now}
}
