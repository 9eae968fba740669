package tcphub

import (
	"errors"

	"github.com/kafkahub/kafkahub/kafka"
)

var (
	// ErrInvalidConfig is wrapped by every configuration error (it is
	// kafka.ErrInvalidConfig); the concrete error is a *ConfigError.
	ErrInvalidConfig = kafka.ErrInvalidConfig

	// ErrServerClosed is returned by Serve and ListenAndServe after
	// Shutdown, and by the in-process send methods once the server is
	// shutting down.
	ErrServerClosed = errors.New("tcphub: server closed")

	// ErrNotConnected is returned by SendToDevice and SendToConn when no
	// such device or connection is connected to this instance.
	ErrNotConnected = errors.New("tcphub: not connected to this instance")

	// ErrSlowConsumer is returned by SendToDevice and SendToConn when the
	// connection's outgoing queue was full: the device has been
	// disconnected and the message dropped.
	ErrSlowConsumer = errors.New("tcphub: slow consumer disconnected")

	// ErrNotGatewayRequest is returned by Reply and ParseRequest for a
	// record that lacks the headers the gateway puts on requests.
	ErrNotGatewayRequest = errors.New("tcphub: not a gateway request")

	// ErrDeviceOffline is returned by Pusher.Push when presence does not
	// show the device connected to any instance.
	ErrDeviceOffline = errors.New("tcphub: device offline")

	// ErrTopicMissing is wrapped by Start's error when a topic the gateway
	// needs does not exist and Config.CreateTopics is false.
	ErrTopicMissing = errors.New("tcphub: topic missing")

	// ErrUnauthenticated is wrapped by the errors authenticators return for
	// refused credentials.
	ErrUnauthenticated = errors.New("tcphub: unauthenticated")
)
