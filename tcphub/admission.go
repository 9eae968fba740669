package tcphub

import (
	"net"
	"sync"
	"time"

	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// admission enforces, at accept, the limits that keep unauthenticated
// sockets from crowding out devices: connections not yet welcomed
// (MaxHandshakes, and per remote IP MaxHandshakesPerAddress) and open
// connections per remote IP (MaxConnectionsPerAddress). A connection is
// counted from accept (admit) until it is welcomed (welcomed) and until it
// ends (release).
type admission struct {
	maxHandshakes     int
	perAddrHandshakes int // negative: no limit
	perAddrConns      int // negative: no limit

	mu         sync.Mutex
	handshakes int
	addrs      map[string]*addrCount
}

type addrCount struct{ handshakes, conns int }

func newAdmission(c *Config) *admission {
	return &admission{
		maxHandshakes: c.MaxHandshakes, perAddrHandshakes: c.MaxHandshakesPerAddress,
		perAddrConns: c.MaxConnectionsPerAddress, addrs: map[string]*addrCount{},
	}
}

// admit counts a new connection from ip, or returns the reason (a metric
// label) it is refused.
func (a *admission) admit(ip string) (refused string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ac := a.addrs[ip]
	switch {
	case a.handshakes >= a.maxHandshakes:
		return "max_handshakes"
	case ac != nil && a.perAddrHandshakes >= 0 && ac.handshakes >= a.perAddrHandshakes:
		return "address_handshakes"
	case ac != nil && a.perAddrConns >= 0 && ac.conns >= a.perAddrConns:
		return "address_connections"
	}
	if ac == nil {
		ac = &addrCount{}
		a.addrs[ip] = ac
	}
	a.handshakes++
	ac.handshakes++
	ac.conns++
	return ""
}

// welcomed moves a connection of ip from the handshakes to the sessions.
func (a *admission) welcomed(ip string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.handshakes--
	a.addrs[ip].handshakes--
}

// release forgets a connection of ip that has ended; handshaking tells
// whether it was never welcomed.
func (a *admission) release(ip string, handshaking bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ac := a.addrs[ip]
	if handshaking {
		a.handshakes--
		ac.handshakes--
	}
	if ac.conns--; ac.conns == 0 {
		delete(a.addrs, ip)
	}
}

// refuseAtAccept answers a connection refused by admission without a
// goroutine: on plain TCP with an unavailable error frame (best effort,
// bounded by a short deadline), with TLS by closing, since a handshake
// would spend on the flood the CPU the limit is there to save.
func refuseAtAccept(nc net.Conn, tlsOn bool, after time.Duration) {
	if !tlsOn {
		_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = nc.Write(refusedFrame(after))
	}
	_ = nc.Close()
}

func refusedFrame(after time.Duration) []byte {
	return encode(wire.Frame{Type: wire.TypeError, Code: wire.CodeUnavailable, Message: "too many connections from this address or not yet authenticated", AfterMS: durationMS(after)})
}
