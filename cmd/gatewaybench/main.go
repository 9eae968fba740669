// Command gatewaybench measures the tcphub gateway: memory per idle device
// connection, and request round trips (device → gateway → Kafka → echo
// worker → Kafka → gateway → device) at a fixed offered rate and at the
// most the system sustains, through Kafka and with Kafka replaced by an
// in-memory loop (the gateway's own ceiling).
//
//	go run ./cmd/gatewaybench                 # full run, about 8 minutes
//	go run ./cmd/gatewaybench -quick          # about 1 minute
//	go run ./cmd/gatewaybench -json -svg docs/bench-gateway-memory.svg
//
// The gateway runs in a child process (this program started again with
// -role gateway), and idle devices in others (-role devices), so that each
// figure is the gateway's alone. Kafka is the embedded broker
// (kafkatest.StartCluster) in this process, or the cluster named by
// KAFKA_BROKERS. Everything listens and connects on loopback only, every
// phase is bounded in time, and every child exits when this process does.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	role string

	quick      bool
	jsonOut    bool
	scenarios  string
	conns      string
	devices    int
	rate       int
	window     int
	duration   time.Duration
	runs       int
	partitions int
	perProcess int
	svg        string
	profileDir string
	cpuProfile string
	maxRate    bool

	// Child options.
	brokers   string
	topic     string
	secret    string
	addr      string
	n         int
	first     int
	src       string
	loop      bool
	heartbeat time.Duration
	label     string
	memRate   int
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "", "internal: run as a child (gateway or devices)")
	flag.BoolVar(&o.quick, "quick", false, "a short run (about a minute): 10k connections, one run of 5 s per round-trip scenario")
	flag.BoolVar(&o.jsonOut, "json", false, "print one JSON object per scenario and line instead of the table")
	flag.StringVar(&o.scenarios, "scenarios", "connections,roundtrip,gateway-only", "scenarios to run, comma-separated")
	flag.StringVar(&o.conns, "conns", "10000,50000,100000", "idle connection counts, comma-separated")
	flag.IntVar(&o.devices, "devices", 200, "devices sending requests in the round-trip scenarios")
	flag.IntVar(&o.rate, "rate", 10000, "offered request rate (requests/s, all devices together) of the fixed-rate round-trip scenarios")
	flag.BoolVar(&o.maxRate, "max", true, "run the max-rate round-trip scenarios too")
	flag.IntVar(&o.window, "window", 16, "requests each device keeps outstanding in the max-rate scenarios")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "measurement time of each round-trip run (after a 2 s warm-up)")
	flag.IntVar(&o.runs, "runs", 3, "runs of each round-trip scenario; the row shown is the median run by p99 (fixed rate) or throughput (max)")
	flag.IntVar(&o.partitions, "partitions", 16, "partitions of the request topic")
	flag.IntVar(&o.perProcess, "per-process", 0, "most connections per gateway (and device) process; 0: the open-file limit less a margin")
	flag.StringVar(&o.svg, "svg", "", "write a chart of memory per connection to this SVG file")
	flag.StringVar(&o.profileDir, "profile", "", "write the gateway's CPU profiles (round trips) and heap profiles (connections) to this directory")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write this process's CPU profile (embedded broker, echo worker and load generator) to this file")
	// Child flags.
	flag.StringVar(&o.brokers, "brokers", "", "internal")
	flag.StringVar(&o.topic, "topic", "", "internal")
	flag.StringVar(&o.secret, "secret", "", "internal")
	flag.StringVar(&o.addr, "addr", "", "internal")
	flag.IntVar(&o.n, "n", 0, "internal")
	flag.IntVar(&o.first, "first", 0, "internal")
	flag.StringVar(&o.src, "src", "", "internal")
	flag.BoolVar(&o.loop, "loop", false, "internal")
	flag.DurationVar(&o.heartbeat, "heartbeat", 10*time.Minute, "internal")
	flag.StringVar(&o.label, "label", "", "internal")
	flag.IntVar(&o.memRate, "memprofilerate", 0, "internal")
	flag.Parse()

	switch o.role {
	case "gateway":
		os.Exit(runGatewayChild(o))
	case "devices":
		os.Exit(runDevicesChild(o))
	case "":
	default:
		fmt.Fprintln(os.Stderr, "gatewaybench: unknown -role", o.role)
		os.Exit(2)
	}
	if o.quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["conns"] {
			o.conns = "10000"
		}
		if !set["duration"] {
			o.duration = 5 * time.Second
		}
		if !set["runs"] {
			o.runs = 1
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "gatewaybench:", err)
		os.Exit(1)
	}
}

// result is one scenario's row, printed as a table line or a JSON object.
type result struct {
	Scenario       string  `json:"scenario"`
	Impl           string  `json:"impl"`
	Conns          int     `json:"conns"`
	Msgs           int64   `json:"msgs"`
	Seconds        float64 `json:"seconds"`
	MsgsPerS       float64 `json:"msgs_per_s"`
	P50ms          float64 `json:"p50_ms"`
	P99ms          float64 `json:"p99_ms"`
	P999ms         float64 `json:"p999_ms"`
	RSSMiB         float64 `json:"rss_mib"`
	HeapPerConnKiB float64 `json:"heap_per_conn_kib"`
	ConnectSeconds float64 `json:"connect_seconds"`

	// Round trips: the ack path alone (request sent → ack read), the
	// offered rate (0: max), requests answered with an error frame and
	// requests without a response at the end.
	AckP50ms  float64 `json:"ack_p50_ms,omitempty"`
	AckP99ms  float64 `json:"ack_p99_ms,omitempty"`
	AckP999ms float64 `json:"ack_p999_ms,omitempty"`
	Rate      int     `json:"rate,omitempty"`
	Errors    int64   `json:"errors,omitempty"`
	Lost      int64   `json:"lost,omitempty"`
	// Connections: RSS growth per connection, goroutines per connection
	// and the gateway processes the connections were spread over.
	RSSPerConnKiB     float64 `json:"rss_per_conn_kib,omitempty"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn,omitempty"`
	StackPerConnKiB   float64 `json:"stack_per_conn_kib,omitempty"` // the part of heap_per_conn_kib that is goroutine stacks
	Instances         int     `json:"instances,omitempty"`

	// CPU time per round trip in the measured window, in µs: the gateway
	// process, and this process (load generator, echo worker and the
	// embedded broker).
	GatewayCPUus float64 `json:"gateway_cpu_us_per_msg,omitempty"`
	OtherCPUus   float64 `json:"other_cpu_us_per_msg,omitempty"`

	Broker string  `json:"broker"`
	Load1  float64 `json:"load1"`
	Runs   int     `json:"runs,omitempty"`
}

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	soft, hard := raiseNoFile()
	if o.perProcess <= 0 {
		o.perProcess = int(soft) - 256
	}
	if o.perProcess < 1000 {
		return fmt.Errorf("the open-file limit (%d) is too low: raise it (ulimit -n) to at least a few thousand", soft)
	}
	if !o.jsonOut {
		fmt.Printf("gatewaybench: RLIMIT_NOFILE %d (hard %d): at most %d connections per process\n", soft, hard, o.perProcess)
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	env, err := startEnv(ctx, o)
	if err != nil {
		return err
	}
	defer env.close()
	if !o.jsonOut {
		fmt.Printf("gatewaybench: Kafka: %s %v; machine: %d CPUs; load average at start %.2f\n\n",
			env.brokerKind, env.brokers, numCPU(), load1())
	}

	var results []result
	emit := func(r result) {
		results = append(results, r)
		if o.jsonOut {
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
		} else {
			printRow(os.Stdout, r)
		}
	}
	want := map[string]bool{}
	for _, s := range strings.Split(o.scenarios, ",") {
		want[strings.TrimSpace(s)] = true
	}
	if !o.jsonOut {
		printHeader(os.Stdout)
	}
	if want["connections"] {
		for _, f := range strings.Split(o.conns, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				return fmt.Errorf("-conns: bad count %q", f)
			}
			r, err := connectionsScenario(ctx, o, env, n)
			if err != nil {
				return fmt.Errorf("connections %d: %w", n, err)
			}
			emit(r)
		}
	}
	for _, loop := range []bool{false, true} {
		name := "roundtrip"
		if loop {
			name = "gateway-only"
		}
		if !want[name] {
			continue
		}
		rates := []int{o.rate}
		if o.maxRate {
			rates = append(rates, 0)
		}
		for _, rate := range rates {
			r, err := roundTripRuns(ctx, o, env, loop, rate)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			emit(r)
		}
	}
	if o.svg != "" {
		var rows []result
		for _, r := range results {
			if r.Scenario == "connections" {
				rows = append(rows, r)
			}
		}
		if len(rows) > 0 {
			if err := os.WriteFile(o.svg, memorySVG(rows), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// roundTripRuns runs one round-trip scenario o.runs times and returns the
// median run: by p99 at a fixed rate, by throughput at max.
func roundTripRuns(ctx context.Context, o options, env *benchEnv, loop bool, rate int) (result, error) {
	var rs []result
	for i := range max(1, o.runs) {
		r, err := roundTrip(ctx, o, env, loop, rate, i)
		if err != nil {
			return result{}, err
		}
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b result) int {
		if rate > 0 {
			return cmpFloat(a.P99ms, b.P99ms)
		}
		return cmpFloat(a.MsgsPerS, b.MsgsPerS)
	})
	m := rs[len(rs)/2]
	m.Runs = len(rs)
	return m, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func printHeader(w io.Writer) {
	fmt.Fprintf(w, "%-20s %7s %9s %7s %10s %8s %8s %8s %8s %8s %7s %8s %8s %9s %9s %8s %6s %5s\n",
		"scenario", "conns", "msgs", "s", "msgs/s", "p50 ms", "p99 ms", "p999 ms", "ack p50", "ack p99", "gw µs", "other µs",
		"rss MiB", "KiB/conn", "rssKiB/c", "connect", "inst", "load")
}

func printRow(w io.Writer, r result) {
	dash := func(v float64, f string) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf(f, v)
	}
	fmt.Fprintf(w, "%-20s %7d %9d %7.1f %10s %8s %8s %8s %8s %8s %7s %8s %8s %9s %9s %8s %6d %5.2f\n",
		r.Scenario, r.Conns, r.Msgs, r.Seconds, dash(r.MsgsPerS, "%.0f"),
		dash(r.P50ms, "%.2f"), dash(r.P99ms, "%.2f"), dash(r.P999ms, "%.2f"),
		dash(r.AckP50ms, "%.2f"), dash(r.AckP99ms, "%.2f"), dash(r.GatewayCPUus, "%.1f"), dash(r.OtherCPUus, "%.1f"),
		dash(r.RSSMiB, "%.0f"), dash(r.HeapPerConnKiB, "%.2f"), dash(r.RSSPerConnKiB, "%.2f"),
		dash(r.ConnectSeconds, "%.2fs"), r.Instances, r.Load1)
	if r.Errors > 0 || r.Lost > 0 {
		fmt.Fprintf(w, "%-20s   (%d error frames, %d requests without a response)\n", "", r.Errors, r.Lost)
	}
}

// raiseNoFile raises the soft open-file limit to the hard one and returns
// both. Children inherit it.
func raiseNoFile() (soft, hard uint64) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 1024, 1024
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return l.Cur, l.Max
}

func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
