package tcphub

import (
	"sync"
	"time"
)

// ipLimiter limits failed authentications per remote IP with a token
// bucket of perMinute tokens refilled over a minute. Buckets are swept
// lazily once full again, so it needs no goroutine.
type ipLimiter struct {
	perMinute float64
	mu        sync.Mutex
	buckets   map[string]*ipBucket
	lastSweep time.Time
}

type ipBucket struct {
	tokens float64
	at     time.Time
}

func newIPLimiter(perMinute int) *ipLimiter {
	return &ipLimiter{perMinute: float64(perMinute), buckets: map[string]*ipBucket{}}
}

func (l *ipLimiter) refill(b *ipBucket, now time.Time) {
	b.tokens = min(l.perMinute, b.tokens+now.Sub(b.at).Minutes()*l.perMinute)
	b.at = now
}

// allowed reports whether ip may try to authenticate.
func (l *ipLimiter) allowed(ip string) bool {
	if l.perMinute < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[ip]
	if b == nil {
		return true
	}
	l.refill(b, time.Now())
	return b.tokens >= 1
}

// failed records a failed authentication from ip.
func (l *ipLimiter) failed(ip string) {
	if l.perMinute < 0 {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[ip]
	if b == nil {
		b = &ipBucket{tokens: l.perMinute, at: now}
		l.buckets[ip] = b
	}
	l.refill(b, now)
	b.tokens = max(0, b.tokens-1)
	if len(l.buckets) > 1024 && now.Sub(l.lastSweep) > time.Minute {
		l.lastSweep = now
		for k, v := range l.buckets {
			if l.refill(v, now); v.tokens >= l.perMinute {
				delete(l.buckets, k)
			}
		}
	}
}
