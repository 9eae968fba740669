// Command quickstart runs the whole tcphub path in one process: an embedded
// Kafka-protocol broker, a gateway, an echo worker and three simulated
// devices. Each device does a few round trips (device -> gateway -> Kafka
// -> worker -> Kafka -> gateway -> device), printing each with its latency,
// and receives one push sent by device id through presence. Then
// everything shuts down; the exit status is 0 only if every step worked.
//
//	go run ./examples/quickstart
//	go run ./examples/quickstart -trace   # and print the span tree of a round trip
//
// Point it at a real cluster with KAFKA_BROKERS=host1:9092,host2:9092.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/device"
)

func main() {
	devices := flag.Int("devices", 3, "simulated devices")
	trips := flag.Int("n", 3, "round trips per device")
	traced := flag.Bool("trace", false, "record OpenTelemetry spans in memory and print the first round trip's span tree")
	flag.Parse()
	var tel kafka.Telemetry
	var spans *tracetest.SpanRecorder
	if *traced {
		// An SDK that keeps every span in memory, instead of exporting
		// them to a collector.
		spans = tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		tel = kafka.Telemetry{TracerProvider: tp, Propagator: propagation.TraceContext{}}
	}
	if err := run(*devices, *trips, tel); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart: FAILED:", err)
		os.Exit(1)
	}
	if spans != nil {
		if err := printFirstTrip(os.Stdout, spans.Ended()); err != nil {
			fmt.Fprintln(os.Stderr, "quickstart: FAILED:", err)
			os.Exit(1)
		}
	}
	fmt.Println("quickstart: OK")
}

func run(devices, trips int, tel kafka.Telemetry) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := time.Now()

	requests := kafkatest.UniqueName("quickstart-requests")
	presence := requests + ".presence"
	cluster, err := kafkatest.StartCluster(kafkatest.Brokers(1), kafkatest.SeedTopics(3, requests))
	if err != nil {
		return err
	}
	defer cluster.Close()
	where := "embedded broker"
	if cluster.External() {
		where = "KAFKA_BROKERS"
	}
	fmt.Printf("kafka   %v (%s), request topic %s\n", cluster.Addrs(), where, requests)

	// 1. The gateway.
	secret := []byte("quickstart-secret-do-not-reuse!!")
	auth, err := tcphub.NewHMACAuthenticator(secret)
	if err != nil {
		return err
	}
	gw, err := tcphub.NewServer(tcphub.Config{
		BrokerAddrs:   cluster.Addrs(),
		RequestTopic:  requests,
		PresenceTopic: presence,
		CreateTopics:  true, // the reply and presence topics
		Authenticator: auth,
		Telemetry:     tel,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	if err := gw.Start(ctx); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ctx, l) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err = errors.Join(err, gw.Shutdown(sctx))
		if serr := <-served; !errors.Is(serr, tcphub.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		fmt.Printf("gateway shut down (%s in all)\n", time.Since(start).Round(time.Millisecond))
	}()
	fmt.Printf("gateway %s on %s, reply topic %s\n", gw.InstanceID(), l.Addr(), gw.ReplyTopic())

	// 2. The worker: consume requests, answer each through the reply
	// topic named in the request.
	producer, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: cluster.Addrs(), Topic: requests, Telemetry: tel, Logger: log})
	if err != nil {
		return err
	}
	defer closeProducer(producer)
	workers, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs: cluster.Addrs(), Topics: []string{requests}, GroupName: requests + "-echo", NumWorkers: 3,
		Telemetry: tel, Logger: log,
	})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err = errors.Join(err, workers.Close(cctx))
	}()
	if err := workers.RegisterHandler(ctx, func(ctx context.Context, _ int, msg kafka.Message) error {
		req, err := tcphub.ParseRequest(msg)
		if err != nil {
			return nil // not a gateway request: nothing to answer
		}
		answer := fmt.Appendf(nil, `{"device":%q,"echo":%s}`, req.DeviceID, msg.Value())
		return tcphub.Reply(ctx, producer, msg, 200, answer)
	}); err != nil {
		return err
	}
	workers.Start()

	// 3. A pusher, as any backend service would use to reach a device by
	// id without knowing its gateway instance.
	pusher, err := tcphub.NewPusher(ctx, tcphub.PusherConfig{BrokerAddrs: cluster.Addrs(), Producer: producer, PresenceTopic: presence, Logger: log})
	if err != nil {
		return err
	}
	defer pusher.Close()

	// 4. The devices.
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for i := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runDevice(ctx, l.Addr().String(), fmt.Sprintf("sensor-%d", i+1), secret, trips, pusher, tel, log); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// runDevice is one simulated device: round trips, then a push.
func runDevice(ctx context.Context, addr, id string, secret []byte, trips int, pusher *tcphub.Pusher, tel kafka.Telemetry, log *slog.Logger) error {
	token, err := tcphub.NewToken(secret, id, time.Hour)
	if err != nil {
		return err
	}
	c, err := device.Dial(ctx, addr, device.Options{DeviceID: id, Token: token, ClientName: "quickstart/1", Logger: log,
		TraceParent: traceParent})
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	defer c.Close()
	for n := 1; n <= trips; n++ {
		sent := time.Now()
		// With -trace the device's own span starts the trace: the request
		// carries it (the frame's tp) and the gateway continues it.
		rctx, span := ctx, trace.SpanFromContext(ctx)
		if tel.TracerProvider != nil {
			rctx, span = tel.TracerProvider.Tracer("quickstart/device").Start(ctx, "device round trip", trace.WithSpanKind(trace.SpanKindClient))
		}
		call, err := c.Request(rctx, fmt.Appendf(nil, `{"seq":%d,"temp_c":%.1f}`, n, 20+float64(n)/2))
		if err != nil {
			span.End()
			return fmt.Errorf("%s request %d: %w", id, n, err)
		}
		ack := time.Since(sent)
		resp, err := call.Response(ctx)
		span.End()
		if err != nil {
			return fmt.Errorf("%s request %d: %w", id, n, err)
		}
		fmt.Printf("%-9s round trip %d: ack %7s, response %7s  %d %s\n", id, n,
			ack.Round(10*time.Microsecond), time.Since(sent).Round(10*time.Microsecond), resp.Status, resp.Payload)
	}

	if _, err := pusher.WaitOnline(ctx, id); err != nil {
		return err
	}
	sent := time.Now()
	if err := pusher.Push(ctx, id, fmt.Appendf(nil, `{"cmd":"blink","for":%q}`, id)); err != nil {
		return fmt.Errorf("%s push: %w", id, err)
	}
	select {
	case p := <-c.Pushes():
		fmt.Printf("%-9s push in %7s: %s\n", id, time.Since(sent).Round(10*time.Microsecond), p.Payload)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: no push: %w", id, ctx.Err())
	}
}

func closeProducer(p *kafka.Producer) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = p.Close(ctx)
}

// traceParent gives the device client the W3C traceparent of the span in
// ctx: the device package links no tracing library, the application does.
func traceParent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}
