package device

import (
	"context"
	"sync"
	"time"
)

// pacer spaces a session's requests by the rate limit its welcome announced
// (rate_per_min and burst), with a token bucket like the server's, so that
// the client waits instead of earning rate_limited errors. It starts full,
// as the server's does, and after the server's: the client's is never
// ahead of it but for network jitter, and rate_limited is still handled.
type pacer struct {
	rate  float64 // tokens per second; 0: no limit
	burst float64
	mu    sync.Mutex
	level float64 // tokens; negative when requests have reserved future ones
	at    time.Time
}

func newPacer(ratePerMin, burst int) *pacer {
	if ratePerMin <= 0 {
		return &pacer{}
	}
	b := float64(max(burst, 1))
	return &pacer{rate: float64(ratePerMin) / 60, burst: b, level: b, at: time.Now()}
}

// wait reserves a token and waits until it is due, or until ctx ends or
// stop is closed, which give the token back and return false.
func (p *pacer) wait(ctx context.Context, stop1, stop2 <-chan struct{}) bool {
	if p.rate == 0 {
		return true
	}
	p.mu.Lock()
	now := time.Now()
	p.level = min(p.burst, p.level+now.Sub(p.at).Seconds()*p.rate)
	p.at = now
	p.level--
	due := time.Duration(0)
	if p.level < 0 {
		due = time.Duration(-p.level / p.rate * float64(time.Second))
	}
	p.mu.Unlock()
	if due == 0 {
		return true
	}
	t := time.NewTimer(due)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-stop1:
	case <-stop2:
	}
	p.mu.Lock()
	p.level++
	p.mu.Unlock()
	return false
}
