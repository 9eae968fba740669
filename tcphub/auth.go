package tcphub

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// AuthRequest is what an Authenticator gets to decide on a hello.
type AuthRequest struct {
	// DeviceID is the hello's dev field.
	DeviceID string
	// Token is the hello's tok field (possibly empty).
	Token string
	// Client is the hello's cli field, for logs.
	Client string
	// RemoteAddr is the peer's address.
	RemoteAddr net.Addr
	// TLS is the connection's TLS state, with the verified client
	// certificates under mutual TLS; nil on plain TCP.
	TLS *tls.ConnectionState
}

// Identity is an authenticated device.
type Identity struct {
	// DeviceID is the device id the session runs under: the key of its
	// Kafka records and the name pushes are addressed to. Empty means the
	// hello's device id.
	DeviceID string
}

// Authenticator decides whether a hello may open a session. It is called
// once per connection, on the connection's goroutine, with a context that
// ends at the handshake deadline. A returned error refuses the device with
// unauthenticated; wrap ErrUnauthenticated to have the error's text sent
// to the device, otherwise it gets a generic message.
type Authenticator interface {
	Authenticate(ctx context.Context, req AuthRequest) (Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, req AuthRequest) (Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, req AuthRequest) (Identity, error) {
	return f(ctx, req)
}

// AllowAll accepts every device under the id it announces, without a
// token. It is meant for tests and trusted networks.
func AllowAll() Authenticator {
	return AuthenticatorFunc(func(_ context.Context, req AuthRequest) (Identity, error) {
		return Identity{DeviceID: req.DeviceID}, nil
	})
}

// MinSecretLen is the shortest secret HMACAuthenticator and NewToken accept.
const MinSecretLen = 16

const tokenPrefix = "v1."

// NewToken returns a token for deviceID valid for ttl, signed with secret,
// for provisioning devices whose gateway uses an HMACAuthenticator with the
// same secret. See NewTokenUntil for the format.
func NewToken(secret []byte, deviceID string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("tcphub: NewToken: ttl must be positive, got %v", ttl)
	}
	return NewTokenUntil(secret, deviceID, time.Now().Add(ttl))
}

// NewTokenUntil returns a token for deviceID that expires at expiry. A token
// is
//
//	v1.<expiry, Unix seconds>.<signature>
//
// where the signature is HMAC-SHA256 with the secret over
// "tcphub-token-v1\n" + deviceID + "\n" + expiry, in unpadded base64url. It
// is printable ASCII, as the hello's tok field requires; devices may send
// it as is or after "Bearer ".
func NewTokenUntil(secret []byte, deviceID string, expiry time.Time) (string, error) {
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("tcphub: token secret must be at least %d bytes, got %d", MinSecretLen, len(secret))
	}
	if err := wire.CheckDeviceID(deviceID); err != nil {
		return "", err
	}
	exp := strconv.FormatInt(expiry.Unix(), 10)
	return tokenPrefix + exp + "." + base64.RawURLEncoding.EncodeToString(tokenMAC(secret, deviceID, exp)), nil
}

func tokenMAC(secret []byte, deviceID, exp string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("tcphub-token-v1\n"))
	m.Write([]byte(deviceID))
	m.Write([]byte{'\n'})
	m.Write([]byte(exp))
	return m.Sum(nil)
}

// HMACAuthenticator accepts hellos whose token was made by NewToken with
// the same secret for the same device id and has not expired. The
// signature is compared in constant time. It keeps no state per device, so
// any number of gateway instances can share the secret.
type HMACAuthenticator struct {
	secret []byte
	now    func() time.Time
}

// NewHMACAuthenticator returns an authenticator for tokens signed with
// secret, which must be at least MinSecretLen bytes (32 random bytes are
// recommended).
func NewHMACAuthenticator(secret []byte) (*HMACAuthenticator, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("%w: HMAC secret must be at least %d bytes, got %d", ErrInvalidConfig, MinSecretLen, len(secret))
	}
	return &HMACAuthenticator{secret: slices.Clone(secret), now: time.Now}, nil
}

// Authenticate implements Authenticator.
func (a *HMACAuthenticator) Authenticate(_ context.Context, req AuthRequest) (Identity, error) {
	tok := strings.TrimPrefix(req.Token, "Bearer ")
	if tok == "" {
		return Identity{}, fmt.Errorf("%w: token required", ErrUnauthenticated)
	}
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok {
		return Identity{}, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	exp, sig, ok := strings.Cut(rest, ".")
	if !ok || exp == "" {
		return Identity{}, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	expiry, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	// Signature first, so a forged token learns nothing from the expiry check.
	if !hmac.Equal(got, tokenMAC(a.secret, req.DeviceID, exp)) {
		return Identity{}, fmt.Errorf("%w: bad token", ErrUnauthenticated)
	}
	if a.now().Unix() >= expiry {
		return Identity{}, fmt.Errorf("%w: token expired", ErrUnauthenticated)
	}
	return Identity{DeviceID: req.DeviceID}, nil
}

// ClientCertAuthenticator accepts a device over mutual TLS when its
// verified client certificate names the device id, as the subject's
// common name or a DNS name. Configure the server's TLSConfig with
// ClientAuth tls.RequireAndVerifyClientCert and the devices' CA in
// ClientCAs.
func ClientCertAuthenticator() Authenticator {
	return AuthenticatorFunc(func(_ context.Context, req AuthRequest) (Identity, error) {
		if req.TLS == nil || len(req.TLS.VerifiedChains) == 0 || len(req.TLS.VerifiedChains[0]) == 0 {
			return Identity{}, fmt.Errorf("%w: verified client certificate required", ErrUnauthenticated)
		}
		leaf := req.TLS.VerifiedChains[0][0]
		if leaf.Subject.CommonName == req.DeviceID || slices.Contains(leaf.DNSNames, req.DeviceID) {
			return Identity{DeviceID: req.DeviceID}, nil
		}
		return Identity{}, fmt.Errorf("%w: certificate does not name device %s", ErrUnauthenticated, req.DeviceID)
	})
}

// authMessage is the msg sent to a refused device.
func authMessage(err error) string {
	if !errors.Is(err, ErrUnauthenticated) {
		return "authentication failed"
	}
	msg := strings.TrimPrefix(err.Error(), ErrUnauthenticated.Error()+": ")
	return safeMsg(msg)
}

// safeMsg makes s fit an error frame's msg: at most 1024 bytes of UTF-8
// without control characters.
func safeMsg(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
	for len(s) > 1024 {
		s = strings.ToValidUTF8(s[:1024], "")
	}
	return s
}
