package device

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// run keeps the client connected: heartbeats during a session, then a
// delay and a reconnect, until Close.
func (c *Client) run(sess *session) {
	defer close(c.done)
	defer close(c.pushes)
	attempt := 0
	for {
		c.heartbeat(sess)
		<-sess.done
		c.setSession(nil)
		if time.Since(sess.welcomed) >= 60*time.Second {
			attempt = 0
		}
		if c.opts.NoReconnect {
			return
		}
		delay := c.backoff(attempt)
		if ms := sess.goodbyeMS.Load(); ms >= 0 {
			after := time.Duration(ms) * time.Millisecond
			if after > 0 {
				delay = after + rand.N(after)
			} else {
				delay = rand.N(time.Second)
			}
		} else if se := sess.fatal.Load(); se != nil && permanent(se.Code) {
			delay = c.opts.MaxBackoff
		}
		attempt++
		for {
			c.log.Debug("reconnecting", "in", delay)
			select {
			case <-c.closed:
				return
			case <-time.After(delay):
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-c.closed:
					cancel()
				case <-ctx.Done():
				}
			}()
			next, err := c.connect(ctx)
			cancel()
			if err == nil {
				sess = next
				c.setSession(sess)
				break
			}
			c.log.Info("reconnect failed", "error", err)
			var se *ServerError
			switch {
			case errors.As(err, &se) && se.Code == "goodbye":
				after := max(se.RetryAfter, time.Millisecond)
				delay = after + rand.N(after)
			case errors.As(err, &se) && permanent(se.Code):
				delay = c.opts.MaxBackoff
			default:
				delay = c.backoff(attempt)
			}
			attempt++
		}
	}
}

// backoff is full jitter: random(0, min(MaxBackoff, MinBackoff×2^attempt)).
func (c *Client) backoff(attempt int) time.Duration {
	ceiling := c.opts.MaxBackoff
	if attempt < 30 {
		ceiling = min(ceiling, c.opts.MinBackoff<<attempt)
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling)
}

func permanent(code wire.Code) bool {
	switch code {
	case wire.CodeUnauthenticated, wire.CodeBadVersion, wire.CodeBadFrame, wire.CodeTooLarge, wire.CodeDuplicate:
		return true
	}
	return false
}

// heartbeat pings when nothing was sent for half the heartbeat, and closes
// the connection when nothing was received for twice the heartbeat. It
// returns when the session ends or the client closes.
func (c *Client) heartbeat(s *session) {
	tick := time.NewTicker(max(s.hb/4, time.Millisecond))
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-s.done:
			return
		case <-c.closed:
			_ = s.nc.Close()
			<-s.done
			return
		case <-tick.C:
			now := time.Now().UnixNano()
			if time.Duration(now-s.lastRecv.Load()) > 2*s.hb {
				c.log.Info("heartbeat timeout: reconnecting")
				_ = s.nc.Close()
				continue
			}
			if time.Duration(now-s.lastSent.Load()) >= s.hb/2 {
				n++
				_ = s.writeFrame(wire.Frame{Type: wire.TypePing, ID: "hb-" + strconv.Itoa(n)}, c.opts.WriteTimeout)
			}
		}
	}
}
