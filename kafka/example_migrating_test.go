package kafka_test

// The examples docs/MIGRATING.md quotes: each shows the kafkahub form of a
// dp-kafka v4 construct, or the setting that keeps a dp-kafka behaviour.
// Those that need a cluster are compiled, not run; the others run with
// kafkatest's fakes and check their output.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafka/avro"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// dpKafkaProducerConfig is a producer configured to behave as a dp-kafka
// v4 producer did where kafkahub's defaults differ (docs/MIGRATING.md,
// "Behaviour that changes silently").
func dpKafkaProducerConfig(brokers []string, topic string) *kafka.ProducerConfig {
	return &kafka.ProducerConfig{
		BrokerAddrs:       brokers,
		Topic:             topic,
		KafkaVersion:      "1.0.2",          // dp-kafka's documented default; kafkahub's is 3.6.0
		RequiredAcks:      kafka.AcksLeader, // Sarama's default; also turns idempotence off
		TraceHeader:       "traceid",        // dp-kafka's header name; kafkahub's is trace-id
		MinBrokersHealthy: 2,                // dp-kafka services' usual setting; kafkahub's default is 1
		// TLS as a non-nil dp-kafka SecurityConfig meant; kafkahub's zero
		// SecurityConfig is plaintext.
		SecurityConfig: &kafka.SecurityConfig{TLS: true},
	}
}

// dpKafkaConsumerConfig is the consumer counterpart.
func dpKafkaConsumerConfig(brokers []string, topic, group string, numWorkers, batchSize int) *kafka.ConsumerGroupConfig {
	return &kafka.ConsumerGroupConfig{
		BrokerAddrs:        brokers,
		Topics:             []string{topic}, // one Topic in dp-kafka, a list here
		GroupName:          group,
		KafkaVersion:       "1.0.2",
		NumWorkers:         numWorkers,
		BatchSize:          batchSize,
		InitialOffset:      kafka.OffsetNewest,         // Sarama's default; kafkahub starts a new group at the oldest
		HeartbeatInterval:  3 * time.Second,            // Sarama's default; kafkahub's is 1 s
		HandlerRetries:     -1,                         // no retry: a failed message is skipped (and reported on Errors) at once
		TraceHeader:        "traceid",                  // as the producer's
		MinBrokersHealthy:  2,                          // as the producer's
		UpstreamBufferSize: max(numWorkers, batchSize), // dp-kafka's Upstream buffer
		SecurityConfig:     &kafka.SecurityConfig{TLS: true},
	}
}

// ExampleProducerConfig_dpKafkaBehaviour prints the settings that keep
// dp-kafka's behaviour next to kafkahub's defaults.
func ExampleProducerConfig_dpKafkaBehaviour() {
	dp := dpKafkaProducerConfig([]string{"broker1:9092"}, "orders").WithDefaults()
	def := kafka.ProducerConfig{}.WithDefaults()
	fmt.Println("KafkaVersion:", def.KafkaVersion, "->", dp.KafkaVersion)
	fmt.Println("RequiredAcks all:", def.RequiredAcks == kafka.AcksAll, "->", dp.RequiredAcks == kafka.AcksAll)
	fmt.Println("TraceHeader:", def.TraceHeader, "->", dp.TraceHeader)
	fmt.Println("MinBrokersHealthy:", def.MinBrokersHealthy, "->", dp.MinBrokersHealthy)
	if err := dp.Validate(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// KafkaVersion: 3.6.0 -> 1.0.2
	// RequiredAcks all: true -> false
	// TraceHeader: trace-id -> traceid
	// MinBrokersHealthy: 1 -> 2
}

// ExampleConsumerGroupConfig_dpKafkaBehaviour does the same for a consumer.
func ExampleConsumerGroupConfig_dpKafkaBehaviour() {
	dp := dpKafkaConsumerConfig([]string{"broker1:9092"}, "orders", "billing", 4, 1).WithDefaults()
	def := kafka.ConsumerGroupConfig{}.WithDefaults()
	fmt.Println("InitialOffset oldest:", def.InitialOffset == kafka.OffsetOldest, "->", dp.InitialOffset == kafka.OffsetOldest)
	fmt.Println("HandlerRetries:", def.HandlerRetries, "->", dp.HandlerRetries)
	fmt.Println("HeartbeatInterval:", def.HeartbeatInterval, "->", dp.HeartbeatInterval)
	fmt.Println("UpstreamBufferSize:", def.UpstreamBufferSize, "->", dp.UpstreamBufferSize)
	if err := dp.Validate(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// InitialOffset oldest: true -> false
	// HandlerRetries: 3 -> -1
	// HeartbeatInterval: 1s -> 3s
	// UpstreamBufferSize: 0 -> 4
}

// ExampleConfigFromEnv builds a producer from the KAFKA_* variables a
// dp-kafka service already sets (KAFKA_SEC_PROTO=TLS turns TLS on).
func ExampleConfigFromEnv() {
	env, err := kafka.ConfigFromEnv()
	if err != nil {
		log.Fatal(err) // names the variable that does not parse
	}
	ctx := context.Background()
	producer, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{
		BrokerAddrs:    env.BrokerAddrs,
		KafkaVersion:   env.KafkaVersion,
		SecurityConfig: env.Security,
		Topic:          "content-published",
	})
	if err != nil {
		log.Fatal(err) // only an invalid config: no connection is needed
	}
	defer producer.Close(ctx)
}

// ExampleSendValue is dp-kafka's producer.Send(ctx, schema, event) in one
// line: the Avro codec encodes, SendValue sends and waits for the ack.
func ExampleSendValue() {
	type contentPublished struct {
		URL          string `avro:"url"`
		DataType     string `avro:"data_type"`
		CollectionID string `avro:"collection_id"`
	}
	schema, err := avro.New(`{"type": "record", "name": "ContentPublished", "fields": [
		{"name": "url", "type": "string"},
		{"name": "data_type", "type": "string"},
		{"name": "collection_id", "type": "string"}]}`)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	producer := kafkatest.NewProducer(&kafka.ProducerConfig{Topic: "content-published"}) // a *kafka.Producer in production
	defer producer.Close(ctx)

	event := contentPublished{URL: "/economy", DataType: "legacy", CollectionID: "c1"}
	if err := kafka.SendValue(ctx, producer, schema, nil, event); err != nil {
		log.Fatal(err)
	}

	var got contentPublished
	if err := schema.Unmarshal(producer.Messages()[0].Value(), &got); err != nil { // what a handler does
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", got)
	// Output: {URL:/economy DataType:legacy CollectionID:c1}
}

// ExampleProducer_Channels_noWait keeps dp-kafka's Send timing: a record
// on Output is queued, not awaited, and a failure goes to Errors. Its
// Context's OpenTelemetry trace context goes into the headers; the request
// id header (TraceHeader) only Send adds by itself.
func ExampleProducer_Channels_noWait() {
	ctx := context.Background()
	producer, err := kafka.NewProducer(ctx, &kafka.ProducerConfig{BrokerAddrs: []string{"broker1:9092"}, Topic: "orders"})
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Close(ctx)
	select {
	case producer.Channels().Output <- &kafka.ProducerMessage{
		Value:   []byte("payload"),
		Context: ctx,
		Headers: []kafka.Header{{Key: "traceid", Value: []byte(kafka.TraceID(ctx))}},
	}:
	case <-producer.Channels().Closer:
	}
}

// ExampleProducer_Channels_logErrors is dp-kafka's LogErrors: one
// goroutine logs what Errors reports; it ends when Close closes Errors.
func ExampleProducer_Channels_logErrors() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: noTime}))
	producer := kafkatest.NewProducer(&kafka.ProducerConfig{Topic: "orders"}) // a *kafka.Producer in production
	producer.FailNext(errors.New("broker unavailable"))

	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for err := range producer.Channels().Errors {
			logger.Error("kafka producer error", "error", err)
		}
	}()

	producer.Channels().Output <- &kafka.ProducerMessage{Value: []byte("x")}
	ctx := context.Background()
	if err := producer.Close(ctx); err != nil {
		log.Fatal(err)
	}
	<-logged
	// Output: level=ERROR msg="kafka producer error" error="kafka: producing to \"orders\": broker unavailable"
}

// ExampleConsumerGroup_OnHealthChange replaces dp-healthcheck's
// hc.Subscribe(consumer, checks...): the consumer consumes while the
// checks it follows are OK. Here a loop polls them; a health library's
// callback can call OnHealthChange the same way.
func ExampleConsumerGroup_OnHealthChange() {
	consumer, err := kafkatest.NewConsumer(nil, nil) // a *kafka.ConsumerGroup in production
	if err != nil {
		log.Fatal(err)
	}
	producer := kafkatest.NewProducer(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	follow := func(checks ...func(context.Context) kafka.Health) {
		worst := kafka.Health{Status: kafka.HealthOK, CheckedAt: time.Now()}
		for _, check := range checks {
			if h := check(ctx); h.Status > worst.Status {
				worst.Status, worst.Message = h.Status, h.Message
			}
		}
		consumer.OnHealthChange(worst) // Start on OK, Stop otherwise
	}
	follow(producer.Checker, consumer.Checker) // in a service: on every tick of a time.Ticker
	if err := consumer.StateWait(ctx, kafka.Consuming); err != nil {
		log.Fatal(err)
	}
	fmt.Println(consumer.State())

	if err := producer.Close(ctx); err != nil { // its Checker now reports CRITICAL
		log.Fatal(err)
	}
	follow(producer.Checker, consumer.Checker)
	if err := consumer.StateWait(ctx, kafka.Stopped); err != nil {
		log.Fatal(err)
	}
	fmt.Println(consumer.State())
	if err := consumer.Close(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// Consuming
	// Stopped
}

// ExampleConsumerGroup_Channels_upstream reads Upstream as a dp-kafka
// consumer loop did; ranging ends when Close closes Upstream.
func ExampleConsumerGroup_Channels_upstream() {
	ctx := context.Background()
	consumer, err := kafka.NewConsumerGroup(ctx, &kafka.ConsumerGroupConfig{
		BrokerAddrs: []string{"broker1:9092"}, Topics: []string{"orders"}, GroupName: "billing",
	})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for msg := range consumer.Channels().Upstream {
			trace, _ := msg.Header("traceid") // GetHeader(key) in dp-kafka
			fmt.Printf("%s (trace %s)\n", msg.Value(), trace)
			msg.CommitAndRelease()
		}
	}()
	consumer.Start()
	defer consumer.Close(ctx)
}

// ExampleConsumerGroup_RegisterHandler_migrating: a dp-kafka handler keeps
// its signature. Errors can now say whether a retry may help.
func ExampleConsumerGroup_RegisterHandler_migrating() {
	schema, err := avro.New(`{"type": "record", "name": "order", "fields": [{"name": "id", "type": "string"}]}`)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	consumer, err := kafka.NewConsumerGroup(ctx, dpKafkaConsumerConfig([]string{"broker1:9092"}, "orders", "billing", 4, 1))
	if err != nil {
		log.Fatal(err)
	}
	defer consumer.Close(ctx)
	err = consumer.RegisterHandler(ctx, func(ctx context.Context, workerID int, msg kafka.Message) error {
		var order struct {
			ID string `avro:"id"`
		}
		if err := schema.Unmarshal(msg.Value(), &order); err != nil {
			return kafka.Permanent(err) // no retry can fix it: dead-letter or skip at once
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	consumer.Start()
}

// ExampleProducerMessage_dpKafkaPartition keeps each key on the partition
// dp-kafka's producer (Sarama's default hash partitioner, FNV-1a) chose,
// for a cut-over during which both write to one topic; kafkahub hashes
// keys with murmur2, as the Java client does.
func ExampleProducerMessage_dpKafkaPartition() {
	dpKafkaPartition := func(topic string, key []byte, partitions int32) (int32, error) {
		return sarama.NewHashPartitioner(topic).Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(key)}, partitions)
	}
	key := []byte("customer-42")
	p, err := dpKafkaPartition("orders", key, 12)
	if err != nil {
		log.Fatal(err)
	}
	msg := &kafka.ProducerMessage{Key: key, Value: []byte("..."), Partition: &p}
	fmt.Println(*msg.Partition)
	// Output: 6
}

// ExampleDrainTopics is dp-kafka's DrainTopics: DrainTopicConfig's
// Timeout becomes ctx; each DrainTopicInput a DrainTarget.
func ExampleDrainTopics() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	drained, err := kafka.DrainTopics(ctx, &kafka.ConsumerGroupConfig{BrokerAddrs: []string{"broker1:9092"}},
		kafka.DrainTarget{Topic: "myTopic-1", GroupName: "myGroup-1"},
		kafka.DrainTarget{Topic: "myTopic-2", GroupName: "myGroup-2"},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(drained)
}

// noTime drops slog's time attribute, so example output is stable.
func noTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
