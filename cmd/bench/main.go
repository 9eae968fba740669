// Command bench measures kafkahub's Producer and ConsumerGroup against the
// raw Sarama client they wrap and against franz-go's kgo, on the same broker.
//
//	go run ./cmd/bench                  # embedded broker, human table
//	go run ./cmd/bench -json -svg docs/bench-throughput-embedded.svg
//	KAFKA_BROKERS=127.0.0.1:19092 go run ./cmd/bench -json
//	go run ./cmd/bench -chart-from results.jsonl -svg chart.svg
//
// By default the embedded kafkatest cluster runs in a child process (this
// same executable), so the figures for CPU, allocations and RSS are the
// client's alone. Each scenario alternates the implementations A B C A B C
// for -rounds rounds, every round on a fresh topic (consume: a fresh group on
// one pre-filled topic), and reports the median round and its ratio to raw
// Sarama and to franz-go.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

var quietLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// impl is one named implementation of a scenario.
type impl[F any] struct {
	name string
	run  F
}

type options struct {
	n          int
	limit      time.Duration
	sizes      []int
	partitions int
	rounds     int
	scenarios  []string
	impls      []string
	senders    int
	batch      int
	rate       int
	latLimit   time.Duration
	jsonOut    bool
	svg        string
	chartFrom  string
	cpuProf    string
	memProf    string
	brokers    int
	inProcess  bool
}

var allScenarios = []string{"produce", "produce-noidem", "consume", "latency"}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.n, "n", 1_000_000, "records per round at most (produce, and the consume topic)")
	fs.DurationVar(&o.limit, "duration", 4*time.Second, "a produce or consume round stops after this long even before -n records")
	sizes := fs.String("size", "100,1024", "value sizes in bytes, comma-separated: each is its own scenario")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of every topic")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds per implementation; the median is reported")
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "scenarios to run: "+strings.Join(allScenarios, ","))
	impls := fs.String("impls", "", "only these implementations (comma-separated names, as in the table); empty: all")
	fs.IntVar(&o.senders, "senders", 256, "goroutines calling Send (kafkahub-send, kafkahub-franz-send), SendMessage (sarama-sync) and ProduceSync (franz-sync)")
	fs.IntVar(&o.batch, "batch", 500, "BatchSize of kafkahub-batch")
	fs.IntVar(&o.rate, "rate", 5000, "records per second in the latency scenario")
	fs.DurationVar(&o.latLimit, "latency-duration", 4*time.Second, "how long the latency scenario produces per round")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON object per scenario and implementation on stdout (the table goes to stderr)")
	fs.StringVar(&o.svg, "svg", "", "write a throughput bar chart (SVG) to this file")
	fs.StringVar(&o.chartFrom, "chart-from", "", "run nothing: draw the -svg chart from this file of earlier -json output")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&o.memProf, "memprofile", "", "write an allocation profile of the whole run to this file")
	fs.IntVar(&o.brokers, "brokers", 1, "brokers of the embedded cluster")
	fs.BoolVar(&o.inProcess, "inprocess", false, "run the embedded cluster in this process (its work then shows in CPU, allocations and RSS)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, s := range strings.Split(*sizes, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < 8 {
			return o, fmt.Errorf("-size: %q is not a size of at least 8 bytes", s)
		}
		o.sizes = append(o.sizes, v)
	}
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(allScenarios, s) {
			return o, fmt.Errorf("-scenarios: unknown scenario %q", s)
		}
		o.scenarios = append(o.scenarios, s)
	}
	for _, s := range strings.Split(*impls, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.impls = append(o.impls, s)
		}
	}
	switch {
	case o.n < 1, o.rounds < 1, o.partitions < 1, o.senders < 1, o.batch < 1, o.rate < 1:
		return o, fmt.Errorf("-n, -rounds, -partitions, -senders, -batch and -rate must be positive")
	case o.limit <= 0, o.latLimit <= 0:
		return o, fmt.Errorf("-duration and -latency-duration must be positive")
	}
	return o, nil
}

func main() {
	if n, ok := os.LookupEnv(childEnv); ok {
		os.Exit(serveChild(n))
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if o.chartFrom != "" {
		if o.svg == "" {
			fmt.Fprintln(os.Stderr, "-chart-from needs -svg")
			os.Exit(2)
		}
		if err := chartFromJSON(o.chartFrom, o.svg); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	b, err := startBroker(o.brokers, o.inProcess)
	if err != nil {
		return err
	}
	defer b.close()

	tableOut := os.Stdout
	if o.jsonOut {
		tableOut = os.Stderr
	}
	m := describeMachine()
	fmt.Fprintf(tableOut, "broker: %s %v; %s\n", b.kind, b.addrs, m)
	fmt.Fprintf(tableOut, "rounds %d, -n %d, -duration %v, partitions %d, load average at start %s\n\n",
		o.rounds, o.n, o.limit, o.partitions, loadAvg())

	r := &runner{o: o, b: b, tableOut: tableOut}
	started := time.Now()
	for _, s := range o.scenarios {
		for _, size := range o.sizes {
			var err error
			switch s {
			case "produce":
				err = r.produce(size, true)
			case "produce-noidem":
				err = r.produce(size, false)
			case "consume":
				err = r.consume(size)
			case "latency":
				err = r.latency(size)
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", s, sizeName(size), err)
			}
		}
	}
	fmt.Fprintf(tableOut, "total %v, load average at end %s\n", time.Since(started).Round(time.Second), loadAvg())
	if o.svg != "" {
		title := fmt.Sprintf("Throughput, %s broker (median of %d rounds; %s)", b.kind, o.rounds, m)
		if err := os.WriteFile(o.svg, []byte(renderSVG(title, r.summaries)), 0o644); err != nil {
			return err
		}
	}
	if o.memProf != "" {
		f, err := os.Create(o.memProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	return nil
}

// runner runs scenarios and keeps their summaries for the chart.
type runner struct {
	o         options
	b         *broker
	tableOut  *os.File
	summaries []summary
}

func selected[F any](all []impl[F], only []string) []impl[F] {
	var out []impl[F]
	for _, im := range all {
		if len(only) == 0 && !strings.HasSuffix(im.name, againSuffix) || slices.Contains(only, im.name) {
			out = append(out, im)
		}
	}
	return out
}

func sizeName(size int) string {
	if size%1024 == 0 {
		return fmt.Sprintf("%dKiB", size/1024)
	}
	return fmt.Sprintf("%dB", size)
}

// alternate runs round r of every implementation before round r+1 of any,
// and returns each implementation's rounds by name. Each round starts one
// implementation later than the one before (round order): a run inherits
// the broker's state from the run before it (the garbage of a deleted
// topic, a batch size settling), which in a fixed order made the same code
// measure up to 1.46x apart depending on its place.
func alternate[F any](rounds int, ims []impl[F], scenario string, one func(round int, im impl[F]) (roundResult, error)) (map[string][]roundResult, error) {
	res := make(map[string][]roundResult, len(ims))
	for round := range rounds {
		for _, im := range roundOrder(ims, round) {
			r, err := one(round, im)
			if err != nil {
				return nil, fmt.Errorf("%s round %d: %w", im.name, round+1, err)
			}
			logf("%-22s round %d/%d %-16s %10.0f msgs/s  %7.3f s  %5.2f µs CPU/msg  rss %6.1f MiB  %5.1f allocs/msg  load %s",
				scenario, round+1, rounds, im.name, r.rate(), r.seconds, r.cpuUsPerMsg, r.rssMiB, r.allocsPerMsg, loadAvg())
			res[im.name] = append(res[im.name], r)
		}
	}
	return res, nil
}

// roundOrder is ims rotated left by round.
func roundOrder[T any](ims []T, round int) []T {
	if len(ims) == 0 {
		return ims
	}
	k := round % len(ims)
	return append(slices.Clone(ims[k:]), ims[:k]...)
}

func names[F any](ims []impl[F]) []string {
	out := make([]string, len(ims))
	for i, im := range ims {
		out[i] = im.name
	}
	return out
}

func (r *runner) produce(size int, idempotent bool) error {
	scenario := "produce-" + sizeName(size)
	if !idempotent {
		scenario = "produce-noidem-" + sizeName(size)
	}
	ims := selected(producers(), r.o.impls)
	if len(ims) == 0 {
		return nil
	}
	keys, value := keysFor(1000), make([]byte, size)
	res, err := alternate(r.o.rounds, ims, scenario, func(_ int, im impl[producer]) (roundResult, error) {
		topic, err := r.b.newTopic(scenario, r.o.partitions)
		if err != nil {
			return roundResult{}, err
		}
		defer r.b.deleteTopic(topic)
		ctx, cancel := context.WithTimeout(context.Background(), r.o.limit+drainTimeout+30*time.Second)
		defer cancel()
		p := produceParams{addrs: r.b.addrs, topic: topic, n: r.o.n, limit: r.o.limit, idempotent: idempotent,
			senders: r.o.senders, keys: keys, value: value}
		return measureRound(func() (roundResult, error) { return im.run(ctx, p) })
	})
	if err != nil {
		return err
	}
	r.report(scenario, size, names(ims), res)
	return nil
}

func (r *runner) consume(size int) error {
	scenario := "consume-" + sizeName(size)
	ims := selected(consumers(), r.o.impls)
	if len(ims) == 0 {
		return nil
	}
	topic, err := r.b.newTopic(scenario, r.o.partitions)
	if err != nil {
		return err
	}
	defer r.b.deleteTopic(topic)
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.o.limit+drainTimeout+30*time.Second)
	total, err := prefill(ctx, produceParams{addrs: r.b.addrs, topic: topic, n: r.o.n, limit: 2 * r.o.limit,
		idempotent: false, keys: keysFor(1000), value: make([]byte, size)})
	cancel()
	if err != nil {
		return err
	}
	logf("%s: topic pre-filled with %d records", scenario, total)
	res, err := alternate(r.o.rounds, ims, scenario, func(round int, im impl[consumer]) (roundResult, error) {
		ctx, cancel := context.WithTimeout(context.Background(), r.o.limit+2*time.Minute)
		defer cancel()
		p := consumeParams{addrs: r.b.addrs, topic: topic, group: fmt.Sprintf("%s-%s-%d", topic, im.name, round),
			total: total, size: size, limit: r.o.limit, partitions: r.o.partitions, batch: r.o.batch}
		return measureRound(func() (roundResult, error) { return im.run(ctx, p) })
	})
	if err != nil {
		return err
	}
	r.report(scenario, size, names(ims), res)
	return nil
}

func (r *runner) latency(size int) error {
	scenario := fmt.Sprintf("latency-%d/s-%s", r.o.rate, sizeName(size))
	ims := selected(latencyRuns(), r.o.impls)
	if len(ims) == 0 {
		return nil
	}
	res, err := alternate(r.o.rounds, ims, scenario, func(_ int, im impl[latencyRun]) (roundResult, error) {
		topic, err := r.b.newTopic("latency", r.o.partitions)
		if err != nil {
			return roundResult{}, err
		}
		defer r.b.deleteTopic(topic)
		ctx, cancel := context.WithTimeout(context.Background(), r.o.latLimit+2*time.Minute)
		defer cancel()
		p := latencyParams{addrs: r.b.addrs, topic: topic, group: topic + "-g", rate: r.o.rate,
			limit: r.o.latLimit, size: size, partitions: r.o.partitions}
		return measureRound(func() (roundResult, error) { return im.run(ctx, p) })
	})
	if err != nil {
		return err
	}
	r.report(scenario, size, names(ims), res)
	return nil
}

// describeMachine summarises what the figures depend on.
func describeMachine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := readMemTotalGiB()
	return fmt.Sprintf("%d CPUs (%s), %.1f GiB RAM, %s", runtime.NumCPU(), cpu, mem, runtime.Version())
}

func readMemTotalGiB() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / (1 << 20)
			}
		}
	}
	return 0
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
