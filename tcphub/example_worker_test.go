package tcphub_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
)

// answerReading is a worker's handler, the code under test: it answers
// each gateway request with the device id it came from. It takes a
// kafka.IProducer, so production passes the service's *kafka.Producer and
// a unit test a kafkatest mock or fake.
func answerReading(ctx context.Context, replies kafka.IProducer, msg kafka.Message) error {
	req, err := tcphub.ParseRequest(msg)
	if err != nil {
		return nil // not a gateway request: skip it
	}
	return tcphub.Reply(ctx, replies, msg, 200, fmt.Appendf(nil, `{"device":%q,"ok":true}`, req.DeviceID))
}

// A worker unit-tested without a broker: kafkatest.NewMessage builds the
// request record the gateway writes, and a kafkatest.MockProducer checks the
// response record Reply produces to the instance's reply topic.
func ExampleReply_unitTest() {
	t := &exampleT{} // in a test: the test's *testing.T
	replies := kafkatest.NewMockProducer(t)
	replies.ExpectSend().
		WithTopic("tcphub.reply.gw-1").WithKey("sensor-1").
		WithValue(`{"device":"sensor-1","ok":true}`).
		WithHeader(tcphub.HeaderKind, tcphub.KindResponse).
		WithHeader(tcphub.HeaderRequest, "r-17").
		WithHeader(tcphub.HeaderStatus, "200").
		WithHeader(tcphub.HeaderConn, "c-1")

	request := kafkatest.NewMessage("requests", []byte(`{"temp":21.5}`),
		kafkatest.WithKey("sensor-1"),
		kafkatest.WithHeader(tcphub.HeaderDevice, "sensor-1"),
		kafkatest.WithHeader(tcphub.HeaderConn, "c-1"),
		kafkatest.WithHeader(tcphub.HeaderRequest, "r-17"),
		kafkatest.WithHeader(tcphub.HeaderReplyTo, "tcphub.reply.gw-1"))
	fmt.Println("answer:", answerReading(context.Background(), replies, request))
	fmt.Println("not a request:", answerReading(context.Background(), replies, kafkatest.NewMessage("requests", []byte("x"))))
	fmt.Println("failures:", t.finish())
	// Output:
	// answer: <nil>
	// not a request: <nil>
	// failures: []
}

// exampleT stands in for the *testing.T an example does not have: it
// records failures and runs cleanups when finish is called.
type exampleT struct {
	testing.TB // only the methods below are used
	mu         sync.Mutex
	failures   []string
	cleanups   []func()
}

func (t *exampleT) Helper() {}
func (t *exampleT) Errorf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures = append(t.failures, fmt.Sprintf(format, args...))
}
func (t *exampleT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *exampleT) finish() []string {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failures
}
