package tcphub_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/device"
)

// A gateway, a worker answering through tcphub.Reply, and a device doing
// one round trip and receiving a push. The embedded broker stands in for
// Kafka (or KAFKA_BROKERS names a real cluster).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	requests := kafkatest.UniqueName("example-requests")
	cluster, err := kafkatest.StartCluster(kafkatest.Brokers(1), kafkatest.SeedTopics(3, requests))
	if err != nil {
		panic(err)
	}
	defer cluster.Close()

	// The gateway.
	srv, err := tcphub.NewServer(tcphub.Config{
		BrokerAddrs:   cluster.Addrs(),
		RequestTopic:  requests,
		PresenceTopic: requests + ".presence",
		InstanceID:    requests + "-gw",  // default: the host name, stable across restarts
		CreateTopics:  true,              // the reply and presence topics
		Authenticator: tcphub.AllowAll(), // see NewHMACAuthenticator
		Logger:        quiet,
	})
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	defer func() {
		_ = srv.Shutdown(ctx)
		<-served
	}()

	// A worker: consume the requests, answer each one.
	producer, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: requests, Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer producer.Close(ctx)
	workers, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{requests}, GroupName: requests + "-workers", Logger: quiet,
	})
	if err != nil {
		panic(err)
	}
	defer workers.Close(ctx)
	_ = workers.RegisterHandler(ctx, func(ctx context.Context, _ int, msg kafka.Message) error {
		return tcphub.Reply(ctx, producer, msg, 200, fmt.Appendf(nil, `{"echo":%s}`, msg.Value()))
	})
	workers.Start()

	// A device.
	dev, err := device.Dial(ctx, l.Addr().String(), device.Options{DeviceID: "sensor-42", Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer dev.Close()
	call, err := dev.Request(ctx, []byte(`{"temp":21.5}`))
	if err != nil {
		panic(err)
	}
	fmt.Println("acked: Kafka has", call.ID != "")
	resp, err := call.Response(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("response %d: %s\n", resp.Status, resp.Payload)

	// A push from the gateway's process; Pusher does it from anywhere.
	if err := srv.SendToDevice(ctx, "sensor-42", []byte(`{"cmd":"blink"}`)); err != nil {
		panic(err)
	}
	push := <-dev.Pushes()
	fmt.Printf("push: %s\n", push.Payload)
	// Output:
	// acked: Kafka has true
	// response 200: {"echo":{"temp":21.5}}
	// push: {"cmd":"blink"}
}

// Tokens for HMACAuthenticator: the provisioning side signs a device id
// with the shared secret; every gateway instance checks it with the same
// secret, no lookup needed.
func ExampleNewToken() {
	secret := []byte("a shared secret of at least 16 bytes")
	token, err := tcphub.NewToken(secret, "sensor-42", 24*time.Hour)
	if err != nil {
		panic(err)
	}
	auth, err := tcphub.NewHMACAuthenticator(secret)
	if err != nil {
		panic(err)
	}
	id, err := auth.Authenticate(context.Background(), tcphub.AuthRequest{DeviceID: "sensor-42", Token: token})
	fmt.Println(id.DeviceID, err)
	_, err = auth.Authenticate(context.Background(), tcphub.AuthRequest{DeviceID: "sensor-43", Token: token})
	fmt.Println(err)
	// Output:
	// sensor-42 <nil>
	// tcphub: unauthenticated: bad token
}
