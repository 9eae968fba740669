package tcphub_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub"
)

// topicCount counts the cluster's topics whose names start with prefix
// (each test's own: a real cluster is shared with other tests running at
// the same time), and returns them.
func topicCount(t *testing.T, cluster *kafkatest.Cluster, prefix string) (int, []string) {
	t.Helper()
	all, err := kafka.ListTopics(testCtx(t, 30*time.Second), cluster.Addrs(), nil)
	require.NoError(t, err)
	var topics []string
	for _, name := range all {
		if strings.HasPrefix(name, prefix) {
			topics = append(topics, name)
		}
	}
	return len(topics), topics
}

// TestRestartsCreateNoTopics: a gateway with the default instance id,
// restarted 10 times against one cluster, leaves the number of topics as
// its first start made it.
func TestRestartsCreateNoTopics(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	t.Setenv("HOSTNAME", kafkatest.UniqueName("gateway-0"))
	run := func() string {
		srv, err := tcphub.NewServer(tcphub.Config{
			BrokerAddrs: cluster.Addrs(), RequestTopic: topic, PresenceTopic: topic + ".presence",
			ReplyTopicPrefix: topic + ".reply.", CreateTopics: true, Authenticator: tcphub.AllowAll(), Logger: quiet,
		})
		require.NoError(t, err)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(context.Background(), l) }()
		d := dialRaw(t, l.Addr().String())
		d.hello("restarted-device")
		require.NoError(t, srv.Shutdown(testCtx(t, 30*time.Second)))
		require.ErrorIs(t, <-served, tcphub.ErrServerClosed)
		return srv.ReplyTopic()
	}
	reply := run()
	before, topics := topicCount(t, cluster, topic)
	assert.Equal(t, []string{topic, topic + ".presence", reply}, topics)
	for i := range 10 {
		assert.Equal(t, reply, run(), "restart %d", i+1)
		after, topics := topicCount(t, cluster, topic)
		require.Equal(t, before, after, "restart %d changed the topics: %v", i+1, topics)
	}
}

// TestStartNeedsTopicsUnlessCreating: without CreateTopics a missing reply
// or presence topic fails Start at once, naming it; once provisioned, Start
// succeeds and creates nothing.
func TestStartNeedsTopicsUnlessCreating(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	cfg := tcphub.Config{
		BrokerAddrs: cluster.Addrs(), RequestTopic: topic, PresenceTopic: topic + ".presence",
		ReplyTopicPrefix: topic + ".reply.", InstanceID: "gw-1", Authenticator: tcphub.AllowAll(), Logger: quiet,
	}
	srv, err := tcphub.NewServer(cfg)
	require.NoError(t, err)
	err = srv.Start(testCtx(t, 30*time.Second))
	require.ErrorIs(t, err, tcphub.ErrTopicMissing)
	assert.Contains(t, err.Error(), srv.ReplyTopic())
	assert.Contains(t, err.Error(), cfg.PresenceTopic)
	require.NoError(t, srv.Shutdown(testCtx(t, time.Second)))
	n, _ := topicCount(t, cluster, topic)
	assert.Equal(t, 1, n, "nothing created but the request topic")

	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, cluster.CreateTopic(ctx, srv.ReplyTopic(), 1))
	require.NoError(t, kafka.CreateTopic(ctx, cluster.Addrs(), nil, kafka.TopicSpec{Name: cfg.PresenceTopic, Partitions: 1, Config: map[string]string{"cleanup.policy": "compact"}}))
	before, _ := topicCount(t, cluster, topic)
	srv, err = tcphub.NewServer(cfg)
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	require.NoError(t, srv.Shutdown(testCtx(t, 30*time.Second)))
	after, _ := topicCount(t, cluster, topic)
	assert.Equal(t, before, after)

	_, err = tcphub.NewPusher(ctx, tcphub.PusherConfig{BrokerAddrs: cluster.Addrs(), Producer: newProducer(t, cluster, topic), PresenceTopic: topic + ".nowhere", Logger: quiet})
	require.ErrorIs(t, err, tcphub.ErrTopicMissing)
}

// TestRetireInstance: retiring an instance that crashed deletes its reply
// topic and marks the devices presence still shows on it offline.
func TestRetireInstance(t *testing.T) {
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	presence := topic + ".presence"
	gw := startGateway(t, cluster, topic, func(c *tcphub.Config) { c.ReplyTopicPrefix = topic + ".reply." })
	gw.stop(t)
	_, topics := topicCount(t, cluster, topic)
	require.Equal(t, []string{topic, presence, gw.ReplyTopic()}, topics)

	// The instance "crashed" holding a device: its online record stands.
	p := newProducer(t, cluster, topic)
	rec, err := json.Marshal(tcphub.Presence{Device: "orphan", Instance: gw.InstanceID(), ReplyTo: gw.ReplyTopic(), Conn: "c-1", Online: true})
	require.NoError(t, err)
	ctx := testCtx(t, 60*time.Second)
	require.NoError(t, p.Send(ctx, &kafka.ProducerMessage{Topic: presence, Key: []byte("orphan"), Value: rec}))
	pusher, err := tcphub.NewPusher(ctx, tcphub.PusherConfig{BrokerAddrs: cluster.Addrs(), Producer: p, PresenceTopic: presence, Logger: quiet})
	require.NoError(t, err)
	defer pusher.Close()
	_, online := pusher.Lookup("orphan")
	require.True(t, online)

	retire := tcphub.RetireConfig{
		BrokerAddrs: cluster.Addrs(), InstanceID: gw.InstanceID(), ReplyTopicPrefix: topic + ".reply.",
		PresenceTopic: presence, Producer: p, Logger: quiet,
	}
	require.NoError(t, tcphub.RetireInstance(ctx, retire))
	_, topics = topicCount(t, cluster, topic)
	assert.Equal(t, []string{topic, presence}, topics, "the reply topic is gone")
	require.Eventually(t, func() bool { _, ok := pusher.Lookup("orphan"); return !ok }, 30*time.Second, 10*time.Millisecond,
		"the orphan is offline for a live Pusher")
	require.NoError(t, tcphub.RetireInstance(ctx, retire), "retiring twice is harmless")

	err = tcphub.RetireInstance(ctx, tcphub.RetireConfig{BrokerAddrs: cluster.Addrs()})
	require.ErrorIs(t, err, tcphub.ErrInvalidConfig)
}
