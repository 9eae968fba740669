package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/tcphub"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// memStats is the gateway process's memory, measured after garbage
// collection.
type memStats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	RSS        uint64 `json:"rss"`
	Goroutines int    `json:"goroutines"`
	Sessions   int    `json:"sessions"`
}

func (m memStats) total() int64 { return int64(m.HeapInuse + m.StackInuse) }

func measureMem() memStats {
	for range 3 { // several cycles, so idle goroutine stacks shrink
		runtime.GC()
	}
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memStats{HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, RSS: rss(), Goroutines: runtime.NumGoroutine()}
}

// cpuSeconds is the user and system CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// rss reads the process's resident set size from /proc.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// runGatewayChild runs one gateway instance and answers the parent's
// commands: mem, sessions, cpu start PATH, cpu stop, heap PATH, quit.
func runGatewayChild(o options) int {
	raiseNoFile()
	if o.memRate > 0 {
		runtime.MemProfileRate = o.memRate
	}
	fail := func(err error) int {
		fmt.Printf("ERR %v\n", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	secret, err := hex.DecodeString(o.secret)
	if err != nil {
		return fail(err)
	}
	auth, err := tcphub.NewHMACAuthenticator(secret)
	if err != nil {
		return fail(err)
	}
	cfg := tcphub.Config{
		BrokerAddrs:    strings.Split(o.brokers, ","),
		RequestTopic:   o.topic,
		PresenceTopic:  o.topic + ".presence",
		InstanceID:     "bench-gw",
		CreateTopics:   true,
		Authenticator:  auth,
		Heartbeat:      o.heartbeat,
		RateLimit:      -1,
		MaxConnections: 1 << 20,
		Logger:         log,
	}
	if o.loop {
		loop := newEchoLoop(o.topic)
		defer loop.Close(context.Background())
		cfg.Producer = loop
	} else if o.linger > 0 {
		// The gateway's own producer, but waiting up to o.linger to batch
		// records (FlushFrequency): fewer, larger produce requests.
		pctx, pcancel := context.WithTimeout(context.Background(), time.Minute)
		p, err := kafka.NewProducer(pctx, &kafka.ProducerConfig{
			BrokerAddrs: cfg.BrokerAddrs, Topic: cfg.RequestTopic, FlushFrequency: o.linger, Logger: log,
		})
		pcancel()
		if err != nil {
			return fail(err)
		}
		// Closed after the server's shutdown, which leaves a given producer open.
		defer func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer ccancel()
			_ = p.Close(cctx)
		}()
		cfg.Producer = p
	}
	srv, err := tcphub.NewServer(cfg)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err = srv.Start(ctx)
	cancel()
	if err != nil {
		return fail(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	fmt.Printf("ADDR %s\n", l.Addr())

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "mem":
			m := measureMem()
			_, m.Sessions = srv.Connections()
			b, _ := json.Marshal(m)
			fmt.Printf("MEM %s\n", b)
		case "rusage":
			// CPU seconds, and the heap's allocations (count and bytes) so
			// far: allocations count work, not time, so a loaded machine's
			// slowdowns do not inflate them (batching still changes them).
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("RUSAGE %.6f %d %d\n", cpuSeconds(), ms.Mallocs, ms.TotalAlloc)
		case "sessions":
			_, n := srv.Connections()
			fmt.Printf("SESSIONS %d\n", n)
		case "cpu":
			if len(f) == 3 && f[1] == "start" {
				pf, err := os.Create(f[2])
				if err == nil {
					err = pprof.StartCPUProfile(pf)
				}
				if err != nil {
					fmt.Printf("ERR %v\n", err)
					continue
				}
			} else {
				pprof.StopCPUProfile()
			}
			fmt.Println("OK")
		case "allocs":
			pf, err := os.Create(f[1])
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(pf, 0)
				_ = pf.Close()
			}
			if err != nil {
				fmt.Printf("ERR %v\n", err)
				continue
			}
			fmt.Println("OK")
		case "heap":
			pf, err := os.Create(f[1])
			if err == nil {
				err = pprof.WriteHeapProfile(pf)
				_ = pf.Close()
			}
			if err != nil {
				fmt.Printf("ERR %v\n", err)
				continue
			}
			fmt.Println("OK")
		case "quit":
			goto quit
		}
	}
quit:
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fail(fmt.Errorf("shutdown: %w", err))
	}
	<-served
	fmt.Println("BYE")
	return 0
}

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT socket option.
const ipBindAddressNoPort = 24

// runDevicesChild opens o.n idle, authenticated device connections to
// o.addr, prints READY and the seconds it took, and holds them until its
// standard input closes. A device is a socket and nothing else: no
// goroutine, no buffer.
func runDevicesChild(o options) int {
	raiseNoFile()
	secret, err := hex.DecodeString(o.secret)
	if err != nil {
		fmt.Printf("ERR %v\n", err)
		return 1
	}
	var srcs []*net.TCPAddr
	for _, s := range strings.Split(o.src, ",") {
		if s != "" {
			srcs = append(srcs, &net.TCPAddr{IP: net.ParseIP(s)})
		}
	}
	conns := make([]net.Conn, o.n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	start := time.Now()
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for firstErr.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= o.n {
					return
				}
				c, err := dialIdle(o, secret, srcs, i, &buf)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		fmt.Printf("ERR after %d connections: %v\n", next.Load(), *p)
		return 1
	}
	fmt.Printf("READY %.3f\n", time.Since(start).Seconds())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

func dialIdle(o options, secret []byte, srcs []*net.TCPAddr, i int, buf *[]byte) (net.Conn, error) {
	dev := fmt.Sprintf("%s-%07d", o.label, o.first+i)
	tok, err := tcphub.NewToken(secret, dev, time.Hour)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 30 * time.Second}
	if len(srcs) > 0 {
		d.LocalAddr = srcs[i%len(srcs)]
		// Let connect pick the port (per 4-tuple) instead of bind, whose
		// search for a free port of the address slows down as thousands
		// are taken.
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			})
			return errors.Join(err, serr)
		}
	}
	c, err := d.Dial("tcp", o.addr)
	if err != nil {
		return nil, err
	}
	if err := handshake(c, dev, tok, buf); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// handshake sends hello and reads the welcome without a buffered reader,
// so nothing stays allocated for an idle device.
func handshake(c net.Conn, dev, tok string, buf *[]byte) error {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	b, err := wire.AppendFrame((*buf)[:0], wire.Frame{Type: wire.TypeHello, Device: dev, Token: tok, Client: "gatewaybench"})
	if err != nil {
		return err
	}
	*buf = b
	if _, err := c.Write(b); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("reading welcome: %w", err)
	}
	n := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	if n > 64<<10 {
		return fmt.Errorf("welcome of %d bytes", n)
	}
	body := make([]byte, 4+n)
	copy(body, hdr[:])
	if _, err := io.ReadFull(c, body[4:]); err != nil {
		return fmt.Errorf("reading welcome: %w", err)
	}
	f, err := wire.NewReader(bytes.NewReader(body), 0).ReadFrame()
	if err != nil {
		return err
	}
	if f.Type != wire.TypeWelcome {
		return fmt.Errorf("got %s %s %s instead of welcome", f.Type, f.Code, f.Message)
	}
	return nil
}
