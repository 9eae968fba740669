// Package scram is a client for the SCRAM SASL mechanisms (RFC 5802 and
// RFC 7677) as Kafka uses them: SCRAM-SHA-256 and SCRAM-SHA-512, without
// channel binding. It satisfies sarama.SCRAMClient, so the kafka package
// needs no third-party SCRAM module.
package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// ErrProtocol is wrapped by every error caused by an unexpected server
// message.
var ErrProtocol = errors.New("scram: protocol error")

// Client runs one SCRAM conversation. Create one per authentication.
type Client struct {
	newHash func() hash.Hash

	user, pass string
	nonce      string
	clientBare string
	serverSig  []byte
	step       int
	done       bool
}

// NewSHA256 returns a SCRAM-SHA-256 client.
func NewSHA256() *Client { return &Client{newHash: sha256.New} }

// NewSHA512 returns a SCRAM-SHA-512 client.
func NewSHA512() *Client { return &Client{newHash: sha512.New} }

// Begin starts a conversation for the user. The authorization id is not
// supported by Kafka and must be empty.
func (c *Client) Begin(user, pass, authzID string) error {
	if authzID != "" {
		return fmt.Errorf("scram: authorization id is not supported")
	}
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("scram: nonce: %w", err)
	}
	*c = Client{newHash: c.newHash, user: user, pass: pass, nonce: base64.RawStdEncoding.EncodeToString(b[:])}
	return nil
}

// Step takes the server's last message ("" at the start) and returns the
// next client message.
func (c *Client) Step(challenge string) (string, error) {
	c.step++
	switch c.step {
	case 1:
		c.clientBare = "n=" + escapeName(c.user) + ",r=" + c.nonce
		return "n,," + c.clientBare, nil
	case 2:
		return c.final(challenge)
	case 3:
		return "", c.verify(challenge)
	default:
		return "", fmt.Errorf("%w: unexpected step %d", ErrProtocol, c.step)
	}
}

// Done reports whether the conversation has completed successfully.
func (c *Client) Done() bool { return c.done }

func (c *Client) final(serverFirst string) (string, error) {
	attrs := parse(serverFirst)
	nonce, salt64, iter := attrs["r"], attrs["s"], attrs["i"]
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return "", fmt.Errorf("%w: server nonce does not extend the client nonce", ErrProtocol)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return "", fmt.Errorf("%w: salt: %v", ErrProtocol, err)
	}
	n, err := strconv.Atoi(iter)
	if err != nil || n < 1 {
		return "", fmt.Errorf("%w: iteration count %q", ErrProtocol, iter)
	}
	salted, err := pbkdf2.Key(c.newHash, c.pass, salt, n, c.newHash().Size())
	if err != nil {
		return "", fmt.Errorf("scram: deriving key: %w", err)
	}
	clientKey := c.hmac(salted, "Client Key")
	h := c.newHash()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	withoutProof := "c=biws,r=" + nonce
	authMsg := c.clientBare + "," + serverFirst + "," + withoutProof
	sig := c.hmac(storedKey, authMsg)
	proof := make([]byte, len(clientKey))
	for i := range clientKey {
		proof[i] = clientKey[i] ^ sig[i]
	}
	c.serverSig = c.hmac(c.hmac(salted, "Server Key"), authMsg)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

func (c *Client) verify(serverFinal string) error {
	attrs := parse(serverFinal)
	if e, ok := attrs["e"]; ok {
		return fmt.Errorf("%w: server rejected authentication: %s", ErrProtocol, e)
	}
	got, err := base64.StdEncoding.DecodeString(attrs["v"])
	if err != nil || subtle.ConstantTimeCompare(got, c.serverSig) != 1 {
		return fmt.Errorf("%w: server signature does not match", ErrProtocol)
	}
	c.done = true
	return nil
}

func (c *Client) hmac(key []byte, msg string) []byte {
	m := hmac.New(c.newHash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func parse(msg string) map[string]string {
	out := make(map[string]string)
	for _, kv := range strings.Split(msg, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && len(k) == 1 {
			out[k] = v
		}
	}
	return out
}

// escapeName applies RFC 5802's saslname escaping.
func escapeName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}
