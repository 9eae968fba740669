package kafkatest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/kafkahub/kafkahub/kafkatest"
)

// ExampleStartCluster starts the embedded cluster outside a test, as the
// examples do, and creates a topic on it.
func ExampleStartCluster() {
	cluster, err := kafkatest.StartCluster(kafkatest.Brokers(1))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cluster.CreateTopic(ctx, kafkatest.UniqueName("readings"), 3); err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready")
	// Output: ready
}
