package tcphub_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkahub/kafkahub/kafkatest"
	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// TestIdleConnectionMemory measures the gateway's memory per idle,
// authenticated connection: the growth of HeapInuse+StackInuse after 2,000
// connections (TCPHUB_MEMTEST sets another number), divided by their
// number, and asserts it stays under 6 KiB. The devices run in a child
// process so that their sockets do not count. For example
//
//	TCPHUB_MEMTEST=20000 go test -run TestIdleConnectionMemory -v ./tcphub/
//
// (the open-file limit must allow a socket per connection in each
// process).
//
// The race detector's instrumentation makes each reader goroutine's stack
// grow from 2 KiB to 4 KiB, which is not the gateway's cost: under -race the
// heap and the stacks are bounded separately (heap under 3.5 KiB, stacks
// under 4.5 KiB per connection), and .ci/run also runs the test without
// -race, where the 6 KiB bound applies.
func TestIdleConnectionMemory(t *testing.T) {
	if addr := os.Getenv("TCPHUB_MEMTEST_DEVICES_FOR"); addr != "" {
		runIdleDevices(t, addr)
		return
	}
	n := 2000
	if v := os.Getenv("TCPHUB_MEMTEST"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "TCPHUB_MEMTEST")
	}
	cluster := kafkatest.NewCluster(t, kafkatest.Brokers(1))
	topic := cluster.NewTopic(t, 1)
	gw := startGateway(t, cluster, topic, nil)

	// Warm up: one connection through its whole life, so lazily made
	// process-wide state (pools, timers) is not counted.
	d := dialRaw(t, gw.addr)
	d.hello("warm-up")
	before := measure()
	goroutines := runtime.NumGoroutine()

	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleConnectionMemory$", "-test.v")
	cmd.Env = append(os.Environ(), "TCPHUB_MEMTEST_DEVICES_FOR="+gw.addr, "TCPHUB_MEMTEST_N="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	lines := bufio.NewScanner(stdout)
	ready := false
	for lines.Scan() {
		if lines.Text() == "READY" {
			ready = true
			break
		}
		t.Log(lines.Text())
	}
	require.True(t, ready, "the device process did not connect")
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, sessions := gw.Connections(); sessions == n+1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "sessions did not reach %d", n+1)
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let presence records and writers settle
	after := measure()
	if path := os.Getenv("TCPHUB_MEMTEST_PROFILE"); path != "" {
		f, err := os.Create(path)
		require.NoError(t, err)
		require.NoError(t, pprof.WriteHeapProfile(f))
		require.NoError(t, f.Close())
	}
	perConn := float64(after.total()-before.total()) / float64(n)
	t.Logf("%d idle connections: heap in use +%d B, stacks +%d B, total %.0f B (%.2f KiB) per connection, %.2f goroutines per connection",
		n, after.heap-before.heap, after.stack-before.stack, perConn, perConn/1024, float64(runtime.NumGoroutine()-goroutines)/float64(n))
	fmt.Printf("memory per idle connection: %.0f bytes\n", perConn)
	heapPer := float64(after.heap) - float64(before.heap)
	stackPer := float64(after.stack) - float64(before.stack)
	heapPer, stackPer = heapPer/float64(n), stackPer/float64(n)
	if raceEnabled {
		assert.Less(t, heapPer, 3.5*1024, "heap per idle connection (race build)")
		assert.Less(t, stackPer, 4.5*1024, "stack per idle connection (race build: 4 KiB reader stacks)")
		return
	}
	assert.Less(t, perConn, 6*1024.0, "memory per idle connection")
}

type memSample struct{ heap, stack uint64 }

func (m memSample) total() int64 { return int64(m.heap + m.stack) }

func measure() memSample {
	for range 3 { // several cycles, so idle goroutine stacks shrink
		runtime.GC()
	}
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapInuse, stack: ms.StackInuse}
}

// runIdleDevices is the child process: it opens the connections, says
// hello on each, prints READY and holds them until stdin closes.
func runIdleDevices(t *testing.T, addr string) {
	n, _ := strconv.Atoi(os.Getenv("TCPHUB_MEMTEST_N"))
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		conns = append(conns, c)
		require.NoError(t, wire.NewWriter(c, 0).WriteFrame(wire.Frame{Type: wire.TypeHello, Device: fmt.Sprintf("idle-%06d", i)}))
		f, err := wire.NewReader(c, 0).ReadFrame()
		require.NoError(t, err)
		require.Equal(t, wire.TypeWelcome, f.Type)
	}
	fmt.Println("READY")
	_, _ = io.Copy(io.Discard, os.Stdin)
}
