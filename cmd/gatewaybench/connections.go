package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// gatewayProc is a gateway child and its address.
type gatewayProc struct {
	*child
	addr string
}

func startGateway(env *benchEnv, name, topic string, loop bool, extra ...string) (*gatewayProc, error) {
	args := []string{"-role", "gateway", "-brokers", joinAddrs(env.brokers), "-topic", topic, "-secret", env.secret}
	args = append(args, extra...)
	if loop {
		args = append(args, "-loop")
	}
	c, err := startChild(name, args...)
	if err != nil {
		return nil, err
	}
	addr, err := c.expect("ADDR ", 2*time.Minute)
	if err != nil {
		_ = c.stop(5 * time.Second)
		return nil, err
	}
	return &gatewayProc{child: c, addr: addr}, nil
}

func (g *gatewayProc) mem() (memStats, error) {
	var m memStats
	s, err := g.ask("mem", "MEM ", time.Minute)
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal([]byte(s), &m)
}

func (g *gatewayProc) rusage() (float64, error) {
	s, err := g.ask("rusage", "RUSAGE ", 30*time.Second)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(s, 64)
}

func (g *gatewayProc) sessions() (int, error) {
	s, err := g.ask("sessions", "SESSIONS ", 30*time.Second)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// quit shuts the gateway down gracefully and waits for it.
func (g *gatewayProc) quit() error {
	_, err := g.ask("quit", "BYE", time.Minute)
	return errors.Join(err, g.stop(10*time.Second))
}

func joinAddrs(a []string) string {
	s := ""
	for i, x := range a {
		if i > 0 {
			s += ","
		}
		s += x
	}
	return s
}

// connectionsScenario opens n idle authenticated device connections and
// measures the gateway's memory for them. When n is more than one process
// may hold (the open-file limit), the connections are spread over several
// gateway instances, each with its own device process, and the memory is
// the sum over them.
func connectionsScenario(ctx context.Context, o options, env *benchEnv, n int) (result, error) {
	r := result{Scenario: "connections", Impl: "tcphub", Conns: n, Broker: env.brokerKind, Load1: load1()}
	inst := (n + o.perProcess - 1) / o.perProcess
	r.Instances = inst
	if inst > 1 && !o.jsonOut {
		fmt.Fprintf(os.Stderr, "gatewaybench: %d connections exceed the open-file limit of one process (%d usable): spreading them over %d gateway instances\n",
			n, o.perProcess, inst)
	}
	topic, err := env.newTopic(ctx, "gwbench-idle", 1)
	if err != nil {
		return r, err
	}
	gws := make([]*gatewayProc, inst)
	errs := make(chan error, inst)
	for k := range inst {
		go func() {
			var extra []string
			if o.profileDir != "" && k == 0 {
				// Every allocation sampled: an exact heap profile.
				extra = []string{"-memprofilerate", "1"}
			}
			g, err := startGateway(env, fmt.Sprintf("gateway-%d", k), topic, false, extra...)
			gws[k] = g
			errs <- err
		}()
	}
	var startErr error
	for range inst {
		startErr = errors.Join(startErr, <-errs)
	}
	defer func() {
		for _, g := range gws {
			if g != nil {
				if err := g.quit(); err != nil {
					fmt.Fprintln(os.Stderr, "gatewaybench:", err)
				}
			}
		}
	}()
	if startErr != nil {
		return r, startErr
	}

	// One connection through the handshake per instance first, so that
	// lazily made process-wide state is not counted.
	before := make([]memStats, inst)
	for k, g := range gws {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			return r, err
		}
		defer c.Close()
		dev := fmt.Sprintf("warm-%d", k)
		tok, err := tokenFor(env, dev)
		if err != nil {
			return r, err
		}
		var buf []byte
		if err := handshake(c, dev, tok, &buf); err != nil {
			return r, fmt.Errorf("warm-up connection: %w", err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	for k, g := range gws {
		if before[k], err = g.mem(); err != nil {
			return r, err
		}
	}

	per := make([]int, inst)
	for i := range n {
		per[i%inst]++
	}
	devs := make([]*child, inst)
	defer func() {
		for _, d := range devs {
			if d != nil {
				_ = d.stop(30 * time.Second)
			}
		}
	}()
	first := 0
	for k, g := range gws {
		// A source address per 5,000 connections (127.1.k.j, never
		// 127.0.0.1), so that no address runs short of ephemeral ports.
		var src string
		for j := range (per[k] + 4999) / 5000 {
			if j > 0 {
				src += ","
			}
			src += fmt.Sprintf("127.1.%d.%d", k, j+1)
		}
		d, err := startChild(fmt.Sprintf("devices-%d", k), "-role", "devices", "-addr", g.addr, "-n", strconv.Itoa(per[k]),
			"-first", strconv.Itoa(first), "-src", src, "-secret", env.secret, "-label", "idle")
		if err != nil {
			return r, err
		}
		devs[k] = d
		first += per[k]
	}
	for _, d := range devs {
		s, err := d.expect("READY ", 10*time.Minute)
		if err != nil {
			return r, err
		}
		secs, _ := strconv.ParseFloat(s, 64)
		r.ConnectSeconds = max(r.ConnectSeconds, secs)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for k, g := range gws {
		for {
			s, err := g.sessions()
			if err != nil {
				return r, err
			}
			if s >= per[k]+1 {
				break
			}
			if time.Now().After(deadline) {
				return r, fmt.Errorf("gateway %d: %d sessions, want %d", k, s, per[k]+1)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(time.Second) // presence records written, writers gone
	var heap, stack, rssDelta, gor int64
	for k, g := range gws {
		after, err := g.mem()
		if err != nil {
			return r, err
		}
		if after.Sessions != per[k]+1 {
			return r, fmt.Errorf("gateway %d: %d sessions at measurement, want %d", k, after.Sessions, per[k]+1)
		}
		heap += after.total() - before[k].total()
		stack += int64(after.StackInuse) - int64(before[k].StackInuse)
		rssDelta += int64(after.RSS) - int64(before[k].RSS)
		gor += int64(after.Goroutines - before[k].Goroutines)
		r.RSSMiB += float64(after.RSS) / (1 << 20)
		if o.profileDir != "" && k == 0 {
			p := filepath.Join(o.profileDir, fmt.Sprintf("gateway-heap-%d.pprof", n))
			if _, err := g.ask("heap "+p, "OK", time.Minute); err != nil {
				return r, err
			}
		}
	}
	r.HeapPerConnKiB = float64(heap) / float64(n) / 1024
	r.RSSPerConnKiB = float64(rssDelta) / float64(n) / 1024
	r.GoroutinesPerConn = float64(gor) / float64(n)
	r.StackPerConnKiB = float64(stack) / float64(n) / 1024
	return r, nil
}
