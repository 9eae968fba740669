package tcphub

import (
	"sync"
	"time"
)

// authLimiter limits failed authentications per key (a remote IP, or a
// remote IP and a device id, see AuthLockout) with a token bucket of
// perMinute tokens refilled over a minute. Buckets are swept lazily once
// full again, so it needs no goroutine; past maxAuthBuckets keys (a flood
// of made-up device ids) new keys fall back to their address alone, so
// memory stays bounded and guessing across ids is still limited.
type authLimiter struct {
	perMinute float64
	byAddress bool
	mu        sync.Mutex
	buckets   map[string]*authBucket
	lastSweep time.Time
}

// maxAuthBuckets bounds the limiter's map (about 100 bytes a key).
const maxAuthBuckets = 65536

type authBucket struct {
	tokens float64
	at     time.Time
}

func newAuthLimiter(perMinute int, scope AuthLockout) *authLimiter {
	return &authLimiter{perMinute: float64(perMinute), byAddress: scope == LockoutAddress, buckets: map[string]*authBucket{}}
}

func (l *authLimiter) refill(b *authBucket, now time.Time) {
	b.tokens = min(l.perMinute, b.tokens+now.Sub(b.at).Minutes()*l.perMinute)
	b.at = now
}

// keys returns the bucket key of (ip, device), and the address-only key
// it falls back to.
func (l *authLimiter) keys(ip, device string) (string, string) {
	if l.byAddress {
		return ip, ip
	}
	return ip + "\x00" + device, ip
}

// allowed reports whether device may try to authenticate from ip, and if
// not, how long until it may.
func (l *authLimiter) allowed(ip, device string) (time.Duration, bool) {
	if l.perMinute < 0 {
		return 0, true
	}
	key, fallback := l.keys(ip, device)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range []string{key, fallback} {
		if b := l.buckets[k]; b != nil {
			if l.refill(b, now); b.tokens < 1 {
				return max(time.Millisecond, time.Duration((1-b.tokens)/l.perMinute*float64(time.Minute))), false
			}
		}
	}
	return 0, true
}

// failed records a failed authentication of device from ip.
func (l *authLimiter) failed(ip, device string) {
	if l.perMinute < 0 {
		return
	}
	key, fallback := l.keys(ip, device)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) > 1024 && now.Sub(l.lastSweep) > time.Second {
			l.sweep(now)
		}
		if len(l.buckets) >= maxAuthBuckets {
			key = fallback
			b = l.buckets[key]
		}
		if b == nil {
			b = &authBucket{tokens: l.perMinute, at: now}
			l.buckets[key] = b
		}
	}
	l.refill(b, now)
	b.tokens = max(0, b.tokens-1)
}

// sweep drops the buckets that are full again. The caller holds mu.
func (l *authLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, v := range l.buckets {
		if l.refill(v, now); v.tokens >= l.perMinute {
			delete(l.buckets, k)
		}
	}
}
