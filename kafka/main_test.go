package kafka_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// Producer and consumer must stop all it started. The one exception is
// go-metrics' meter arbiter, a single process-wide goroutine Sarama's metrics
// start on first use; it is not per client and does not grow.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}
