package tcphub

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
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

const (
	tokenPrefixV1 = "v1."
	tokenPrefixV2 = "v2."
	// maxKeyIDLen bounds a key id, which travels in every v2 token.
	maxKeyIDLen = 32
)

// NewToken returns a token for deviceID valid for ttl, signed with secret,
// for provisioning devices whose gateway uses an HMACAuthenticator with the
// same secret. See NewTokenUntil for the format; NewKeyedToken makes tokens
// that name their key, for rotating secrets.
func NewToken(secret []byte, deviceID string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("tcphub: NewToken: ttl must be positive, got %v", ttl)
	}
	return NewTokenUntil(secret, deviceID, time.Now().Add(ttl))
}

// NewTokenUntil returns a version 1 token for deviceID that expires at
// expiry. A version 1 token is
//
//	v1.<expiry, Unix seconds>.<signature>
//
// where the signature is HMAC-SHA256 with the secret over
// "tcphub-token-v1\n" + deviceID + "\n" + expiry, in unpadded base64url. It
// is printable ASCII, as the hello's tok field requires; devices may send
// it as is or after "Bearer ". Tokens are bearer credentials: whoever holds
// one can use it from any address until it expires, so send them only over
// TLS.
func NewTokenUntil(secret []byte, deviceID string, expiry time.Time) (string, error) {
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("tcphub: token secret must be at least %d bytes, got %d", MinSecretLen, len(secret))
	}
	if err := wire.CheckDeviceID(deviceID); err != nil {
		return "", err
	}
	exp := strconv.FormatInt(expiry.Unix(), 10)
	return tokenPrefixV1 + exp + "." + base64.RawURLEncoding.EncodeToString(tokenMACv1(secret, deviceID, exp)), nil
}

// NewKeyedToken returns a version 2 token for deviceID that expires at
// expiry, signed with secret and naming keyID, so that an authenticator
// holding several keys (during a rotation, see WithPreviousKey) knows which
// one to check it with. A version 2 token is
//
//	v2.<key id>.<expiry, Unix seconds>.<signature>
//
// where the key id is 1 to 32 letters, digits, '_' or '-', and the
// signature is HMAC-SHA256 with the secret over
// "tcphub-token-v2\n" + keyID + "\n" + deviceID + "\n" + expiry, in
// unpadded base64url.
func NewKeyedToken(keyID string, secret []byte, deviceID string, expiry time.Time) (string, error) {
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("tcphub: token secret must be at least %d bytes, got %d", MinSecretLen, len(secret))
	}
	if err := checkKeyID(keyID); err != nil {
		return "", err
	}
	if err := wire.CheckDeviceID(deviceID); err != nil {
		return "", err
	}
	exp := strconv.FormatInt(expiry.Unix(), 10)
	return tokenPrefixV2 + keyID + "." + exp + "." + base64.RawURLEncoding.EncodeToString(tokenMACv2(secret, keyID, deviceID, exp)), nil
}

func tokenMACv1(secret []byte, deviceID, exp string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("tcphub-token-v1\n"))
	m.Write([]byte(deviceID))
	m.Write([]byte{'\n'})
	m.Write([]byte(exp))
	return m.Sum(nil)
}

func tokenMACv2(secret []byte, keyID, deviceID, exp string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("tcphub-token-v2\n"))
	m.Write([]byte(keyID))
	m.Write([]byte{'\n'})
	m.Write([]byte(deviceID))
	m.Write([]byte{'\n'})
	m.Write([]byte(exp))
	return m.Sum(nil)
}

func checkKeyID(id string) error {
	if id == "" || len(id) > maxKeyIDLen {
		return fmt.Errorf("%w: key id must be 1 to %d bytes, got %d", ErrInvalidConfig, maxKeyIDLen, len(id))
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("%w: key id %q: use letters, digits, '_' or '-'", ErrInvalidConfig, id)
		}
	}
	return nil
}

// hmacKey is one secret an HMACAuthenticator accepts.
type hmacKey struct {
	id     string
	secret []byte
	until  time.Time // zero: no end
}

// HMACAuthenticator accepts hellos whose token was made by NewToken (or
// NewKeyedToken) with one of its keys for the same device id and has not
// expired. Signatures are compared in constant time. It keeps no state per
// device, so any number of gateway instances can share the keys.
//
// Tokens are bearer credentials: a token seen on the wire can be replayed
// from any address until it expires (and replaces the owner's session, as
// any newer connection of a device does). Serve HMAC-authenticated
// devices over TLS only; NewServer logs a warning otherwise.
type HMACAuthenticator struct {
	keys        []hmacKey // keys[0] is the current key
	maxLifetime time.Duration
	now         func() time.Time
}

// HMACOption configures an HMACAuthenticator.
type HMACOption func(*HMACAuthenticator) error

// WithKeyID names the current secret, for the version 2 tokens made by
// NewKeyedToken. Default "0".
func WithKeyID(id string) HMACOption {
	return func(a *HMACAuthenticator) error {
		if err := checkKeyID(id); err != nil {
			return err
		}
		a.keys[0].id = id
		return nil
	}
}

// WithPreviousKey keeps accepting tokens signed with an older secret until
// the given time, the end of a rotation window: deploy the new secret as
// the current one with the old one here, switch token provisioning to the
// new secret, and devices get new tokens while their old ones still work.
// Version 1 tokens (which name no key) are checked against every key;
// version 2 tokens only against the key they name. A zero until accepts
// the key without end.
func WithPreviousKey(id string, secret []byte, until time.Time) HMACOption {
	return func(a *HMACAuthenticator) error {
		if err := checkKeyID(id); err != nil {
			return err
		}
		if len(secret) < MinSecretLen {
			return fmt.Errorf("%w: HMAC secret of key %s must be at least %d bytes, got %d", ErrInvalidConfig, id, MinSecretLen, len(secret))
		}
		a.keys = append(a.keys, hmacKey{id: id, secret: slices.Clone(secret), until: until})
		return nil
	}
}

// WithMaxTokenLifetime refuses tokens whose expiry is more than d away, so
// that a token minted for "year 9999" is not a credential for ever. Zero:
// no maximum.
func WithMaxTokenLifetime(d time.Duration) HMACOption {
	return func(a *HMACAuthenticator) error {
		if d < 0 {
			return fmt.Errorf("%w: maximum token lifetime must not be negative, got %v", ErrInvalidConfig, d)
		}
		a.maxLifetime = d
		return nil
	}
}

// NewHMACAuthenticator returns an authenticator for tokens signed with
// secret (the current key), which must be at least MinSecretLen bytes (32
// random bytes are recommended). Options add a key id, previous keys for a
// rotation window, and a maximum token lifetime.
func NewHMACAuthenticator(secret []byte, opts ...HMACOption) (*HMACAuthenticator, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("%w: HMAC secret must be at least %d bytes, got %d", ErrInvalidConfig, MinSecretLen, len(secret))
	}
	a := &HMACAuthenticator{keys: []hmacKey{{id: "0", secret: slices.Clone(secret)}}, now: time.Now}
	for _, o := range opts {
		if err := o(a); err != nil {
			return nil, err
		}
	}
	for i, k := range a.keys {
		for _, o := range a.keys[:i] {
			if o.id == k.id {
				return nil, fmt.Errorf("%w: key id %q given twice", ErrInvalidConfig, k.id)
			}
		}
	}
	return a, nil
}

// String describes the authenticator without its secrets.
func (a *HMACAuthenticator) String() string {
	ids := make([]string, len(a.keys))
	for i, k := range a.keys {
		ids[i] = k.id
	}
	return fmt.Sprintf("HMACAuthenticator{keys: %v, max lifetime: %v}", ids, a.maxLifetime)
}

// Format implements fmt.Formatter so that no verb prints the secrets.
func (a *HMACAuthenticator) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, a.String()) }

// bearerTokens marks authenticators whose credentials can be replayed by
// whoever sees them (see NewServer's warning about plain TCP).
func (a *HMACAuthenticator) bearerTokens() {}

var errMalformedToken = fmt.Errorf("%w: malformed token", ErrUnauthenticated)

// Authenticate implements Authenticator.
func (a *HMACAuthenticator) Authenticate(_ context.Context, req AuthRequest) (Identity, error) {
	tok := strings.TrimPrefix(req.Token, "Bearer ")
	if tok == "" {
		return Identity{}, fmt.Errorf("%w: token required", ErrUnauthenticated)
	}
	now := a.now()
	var exp, sig string
	var candidates []hmacKey
	var mac func(k hmacKey) []byte
	switch {
	case strings.HasPrefix(tok, tokenPrefixV1):
		var ok bool
		exp, sig, ok = strings.Cut(tok[len(tokenPrefixV1):], ".")
		if !ok {
			return Identity{}, errMalformedToken
		}
		candidates = a.keys
		mac = func(k hmacKey) []byte { return tokenMACv1(k.secret, req.DeviceID, exp) }
	case strings.HasPrefix(tok, tokenPrefixV2):
		parts := strings.SplitN(tok[len(tokenPrefixV2):], ".", 3)
		if len(parts) != 3 {
			return Identity{}, errMalformedToken
		}
		kid := parts[0]
		exp, sig = parts[1], parts[2]
		for _, k := range a.keys {
			if k.id == kid {
				candidates = []hmacKey{k}
			}
		}
		if candidates == nil {
			return Identity{}, fmt.Errorf("%w: unknown key id", ErrUnauthenticated)
		}
		mac = func(k hmacKey) []byte { return tokenMACv2(k.secret, kid, req.DeviceID, exp) }
	default:
		return Identity{}, errMalformedToken
	}
	expiry, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || exp == "" {
		return Identity{}, errMalformedToken
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return Identity{}, errMalformedToken
	}
	// Signature first, so a forged token learns nothing from the expiry
	// check. Every candidate key is tried, so the time taken does not tell
	// which one matched.
	var signer *hmacKey
	for i := range candidates {
		if hmac.Equal(got, mac(candidates[i])) && signer == nil {
			signer = &candidates[i]
		}
	}
	if signer == nil {
		return Identity{}, fmt.Errorf("%w: bad token", ErrUnauthenticated)
	}
	if !signer.until.IsZero() && !now.Before(signer.until) {
		return Identity{}, fmt.Errorf("%w: token signed with retired key %s", ErrUnauthenticated, signer.id)
	}
	if now.Unix() >= expiry {
		return Identity{}, fmt.Errorf("%w: token expired", ErrUnauthenticated)
	}
	if a.maxLifetime > 0 && expiry-now.Unix() > int64((a.maxLifetime+time.Second-1)/time.Second) {
		return Identity{}, fmt.Errorf("%w: token lifetime over the maximum of %v", ErrUnauthenticated, a.maxLifetime)
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
