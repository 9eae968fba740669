package tcphub

import "sync"

// registry indexes the open connections: all of them (for shutdown), and
// the authenticated ones by connection id and by device id, each lookup one
// map access under a read lock.
type registry struct {
	mu     sync.RWMutex
	all    map[*conn]struct{}
	byConn map[string]*conn
	byDev  map[string]*conn
}

func newRegistry() *registry {
	return &registry{all: map[*conn]struct{}{}, byConn: map[string]*conn{}, byDev: map[string]*conn{}}
}

func (r *registry) track(c *conn) {
	r.mu.Lock()
	r.all[c] = struct{}{}
	r.mu.Unlock()
}

// register indexes an authenticated connection and returns the connection
// it replaces for the same device, if any.
func (r *registry) register(c *conn) (old *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old = r.byDev[c.device]
	r.byDev[c.device] = c
	r.byConn[c.id] = c
	return old
}

// remove drops c from every index. current reports whether c was still its
// device's connection (false when a newer connection replaced it).
func (r *registry) remove(c *conn) (current bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.all, c)
	if r.byConn[c.id] == c {
		delete(r.byConn, c.id)
	}
	if c.device != "" && r.byDev[c.device] == c {
		delete(r.byDev, c.device)
		return true
	}
	return false
}

func (r *registry) conn(id string) *conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byConn[id]
}

func (r *registry) device(id string) *conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byDev[id]
}

func (r *registry) snapshot() []*conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*conn, 0, len(r.all))
	for c := range r.all {
		out = append(out, c)
	}
	return out
}

func (r *registry) counts() (conns, sessions int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.all), len(r.byDev)
}
