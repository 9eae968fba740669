package tcphub_test

import (
	"errors"
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
	assert.Regexp(t, `^gw-[0-9a-f]{12}$`, s.InstanceID())
	assert.Equal(t, "tcphub.reply."+s.InstanceID(), s.ReplyTopic())
	s2, err := tcphub.NewServer(tcphub.Config{BrokerAddrs: addrs, RequestTopic: "r", Authenticator: tcphub.AllowAll(), Logger: quiet})
	require.NoError(t, err)
	assert.NotEqual(t, s.InstanceID(), s2.InstanceID())
	require.NoError(t, s.Shutdown(testCtx(t, time.Second)))
	require.NoError(t, s2.Shutdown(testCtx(t, time.Second)))
}
