package tcphub_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/tcphub"
)

func TestConfigValidateNamesTheField(t *testing.T) {
	valid := func() tcphub.Config {
		return tcphub.Config{BrokerAddrs: []string{"localhost:9092"}, RequestTopic: "requests", Authenticator: tcphub.AllowAll()}
	}
	require.NoError(t, func() error { c := valid(); return c.Validate() }())
	cases := map[string]func(*tcphub.Config){
		"BrokerAddrs":       func(c *tcphub.Config) { c.BrokerAddrs = nil },
		"RequestTopic":      func(c *tcphub.Config) { c.RequestTopic = "" },
		"Authenticator":     func(c *tcphub.Config) { c.Authenticator = nil },
		"InstanceID":        func(c *tcphub.Config) { c.InstanceID = "has space" },
		"ReplyTopicPrefix":  func(c *tcphub.Config) { c.ReplyTopicPrefix = "a/b" },
		"PresenceTopic":     func(c *tcphub.Config) { c.PresenceTopic = "no way" },
		"Routes":            func(c *tcphub.Config) { c.Routes = map[string]string{"x": "bad topic"} },
		"HandshakeTimeout":  func(c *tcphub.Config) { c.HandshakeTimeout = -time.Second },
		"Heartbeat":         func(c *tcphub.Config) { c.Heartbeat = time.Microsecond },
		"QueueSize":         func(c *tcphub.Config) { c.QueueSize = -1 },
		"MaxInFlight":       func(c *tcphub.Config) { c.MaxInFlight = -1 },
		"ReplicationFactor": func(c *tcphub.Config) { c.ReplicationFactor = -1 },
		"KafkaVersion":      func(c *tcphub.Config) { c.KafkaVersion = "banana" },
	}
	for field, breakIt := range cases {
		c := valid()
		breakIt(&c)
		_, err := tcphub.NewServer(c)
		var ce *tcphub.ConfigError
		require.True(t, errors.As(err, &ce), "%s: %v", field, err)
		assert.Equal(t, field, ce.Field)
		assert.ErrorIs(t, err, tcphub.ErrInvalidConfig)
	}
}

// TestConfigNotShared: NewServer copies the config, so changing the
// caller's afterwards changes nothing.
func TestConfigNotShared(t *testing.T) {
	routes := map[string]string{"a": "topic-a"}
	addrs := []string{"localhost:9092"}
	s, err := tcphub.NewServer(tcphub.Config{BrokerAddrs: addrs, RequestTopic: "r", Routes: routes, Authenticator: tcphub.AllowAll(), Logger: quiet})
	require.NoError(t, err)
	routes["b"] = "topic-b"
	addrs[0] = "elsewhere:1"
	assert.Equal(t, "tcphub.reply."+s.InstanceID(), s.ReplyTopic())
	require.NoError(t, s.Shutdown(testCtx(t, time.Second)))
}

// TestDefaultInstanceIDIsStable: the default instance id comes from the
// host's name, so a restarted gateway reuses its reply topic.
func TestDefaultInstanceIDIsStable(t *testing.T) {
	t.Setenv("HOSTNAME", "gateway-7.pod x/y")
	assert.Equal(t, "gateway-7.pod-x-y", tcphub.DefaultInstanceID())
	t.Setenv("HOSTNAME", strings.Repeat("h", 300))
	assert.Len(t, tcphub.DefaultInstanceID(), 128)

	t.Setenv("HOSTNAME", "gateway-0")
	newServer := func() *tcphub.Server {
		s, err := tcphub.NewServer(tcphub.Config{BrokerAddrs: []string{"localhost:9092"}, RequestTopic: "r", Authenticator: tcphub.AllowAll(), Logger: quiet})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Shutdown(testCtx(t, time.Second))) })
		return s
	}
	s1, s2 := newServer(), newServer()
	assert.Equal(t, "gateway-0", s1.InstanceID())
	assert.Equal(t, "tcphub.reply.gateway-0", s1.ReplyTopic())
	assert.Equal(t, s1.ReplyTopic(), s2.ReplyTopic())
}
