package tcphub_test

import (
	"context"
	"errors"
	"go/build"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// TestGatewayUsesGivenProducer: with Config.Producer set, requests go to
// that producer (here the kafkatest fake, which acks at once) and are acked
// from its delivery reports; Shutdown leaves it open for its owner.
func TestGatewayUsesGivenProducer(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	fake := kafkatest.NewProducer(&kafka.ProducerConfig{Topic: topic})
	defer fake.Close(context.Background())
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.Producer = fake })

	d := dialRaw(t, gw.addr)
	d.hello("given-producer")
	ack := d.request("r-1", `{"n":1}`)
	require.Equal(t, wire.TypeAck, ack.Type, "%+v", ack)

	var req *kafkatest.Message
	for _, m := range fake.Messages() {
		if m.Topic() == topic {
			req = m
		}
	}
	require.NotNil(t, req, "the request record went to the given producer")
	assert.Equal(t, `{"n":1}`, string(req.Value()))
	dev, _ := req.Header(tcphub.HeaderDevice)
	assert.Equal(t, "given-producer", string(dev))

	gw.stop(t)
	require.NoError(t, fake.Send(testCtx(t, 10*time.Second), &kafka.ProducerMessage{Value: []byte("after")}),
		"the gateway does not close a producer it was given")
}

// TestGatewayFailedProducerIsUnavailable: a given producer's failure
// reaches the device as unavailable.
func TestGatewayFailedProducerIsUnavailable(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	fake := kafkatest.NewProducer(&kafka.ProducerConfig{Topic: topic})
	defer fake.Close(context.Background())
	fake.FailWhen(func(m *kafka.ProducerMessage) error {
		if m.Topic == topic {
			return errors.New("refused")
		}
		return nil
	})
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.Producer = fake })
	d := dialRaw(t, gw.addr)
	d.hello("failing-producer")
	f := d.request("r-1", `{}`)
	require.Equal(t, wire.TypeError, f.Type, "%+v", f)
	assert.Equal(t, wire.CodeUnavailable, f.Code)
}

// TestGatewayImportsNoSarama: the gateway reaches Kafka only through
// package kafka, so a second engine beneath it changes nothing here.
func TestGatewayImportsNoSarama(t *testing.T) {
	p, err := build.Default.Import("github.com/kafkahub/kafkahub/tcphub", ".", 0)
	require.NoError(t, err)
	require.Contains(t, p.Imports, "github.com/kafkahub/kafkahub/kafka", "the walk sees imports")
	bad := slices.DeleteFunc(slices.Clone(p.Imports), func(imp string) bool {
		return !strings.Contains(imp, "sarama") && !strings.Contains(imp, "franz-go")
	})
	assert.Empty(t, bad, "package tcphub imports a Kafka client library directly")
}
